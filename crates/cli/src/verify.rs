//! `verify`: check a captured delivery and say why it fails.

use agentsync_webhooks_core::{
    EventData, FixedClock, HeaderLookup as _, Verifier, WebhookError,
    headers::{SVIX_TIMESTAMP, WEBHOOK_TIMESTAMP},
};
use std::path::PathBuf;

use axum::body::Bytes;
use clap::Args;

use crate::{
    failure::{Failure, bad_secret},
    input::read_stdin,
    keys::{self, SECRET_ENV},
    output::out,
};

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signing secret (whsec_...), or a v1a public key (whpk_...).
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    pub secret: String,
    /// File with the captured headers: `name: value` lines (an HTTP request dump works), or a
    /// JSON object of header names to values.
    #[arg(long, value_name = "FILE")]
    pub headers: PathBuf,
    /// Check the signature as of the capture's own webhook-timestamp, for old captures.
    #[arg(long)]
    pub ignore_timestamp: bool,
}

/// Verifies the body on stdin against the captured headers, as a receiver would, and explains
/// a failure beyond the core's message where the capture allows (old timestamp, added newline,
/// re-serialised JSON).
pub fn run(args: VerifyArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.headers).map_err(|e| {
        Failure::bad_input(format!(
            "cannot read --headers {}: {e}",
            args.headers.display()
        ))
    })?;
    let headers = parse_headers(&text)
        .map_err(|e| Failure::bad_input(format!("--headers {}: {e}", args.headers.display())))?;
    let body = Bytes::from(read_stdin()?);

    let capture_time = capture_timestamp(&headers);
    // Once, so that a short secret is warned about once.
    keys::verifier_builder(&args.secret)?;
    // --ignore-timestamp: judge the capture as of its own timestamp.
    let verifier = verifier_at(&args.secret, capture_time.filter(|_| args.ignore_timestamp))?;

    match verifier.verify_delivery::<EventData>(&headers, body.clone()) {
        Ok(delivery) => {
            let signed_at = chrono::DateTime::from_timestamp(delivery.webhook_timestamp, 0)
                .map(|t| t.format(" (%Y-%m-%d %H:%M:%S UTC)").to_string())
                .unwrap_or_default();
            out!("valid: the signature matches and the body is a well-formed delivery");
            out!("  webhook-id         {}", delivery.webhook_id);
            out!(
                "  webhook-timestamp  {}{signed_at}",
                delivery.webhook_timestamp
            );
            out!("  type               {}", delivery.event.event_type);
            out!("  event id           {}", delivery.event.id);
            Ok(())
        }
        Err(error) => {
            let mut message = format!(
                "invalid: {} (a receiver answers {}): {error}",
                error.code(),
                error.status()
            );
            let at_capture = match (&error, capture_time) {
                (
                    WebhookError::TimestampTooOld { .. } | WebhookError::TimestampTooNew { .. },
                    Some(at),
                ) => Some(verifier_at(&args.secret, Some(at))?),
                _ => None,
            };
            for hint in explain(
                &error,
                at_capture.as_ref().unwrap_or(&verifier),
                &headers,
                &body,
            ) {
                message.push_str("\n  ");
                message.push_str(&hint);
            }
            Err(Failure::failed(message))
        }
    }
}

fn verifier_at(secret: &str, at: Option<i64>) -> Result<Verifier, Failure> {
    let builder = if keys::is_v1a(secret) {
        keys::verifier_builder(secret)?
    } else {
        Verifier::builder().secret(secret).map_err(bad_secret)?
    };
    let builder = match at {
        Some(at) => builder.clock(FixedClock::new(at)),
        None => builder,
    };
    builder.build().map_err(bad_secret)
}

/// Further causes the capture itself can show, each as one sentence.
fn explain(
    error: &WebhookError,
    verifier: &Verifier,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<String> {
    let mut hints = Vec::new();
    if matches!(
        error,
        WebhookError::TimestampTooOld { .. } | WebhookError::TimestampTooNew { .. }
    ) {
        match verifier.verify(headers, body) {
            Ok(_) => {
                hints.push(
                    "The signature itself is valid: only the timestamp is outside the replay \
                     window. Re-run with --ignore-timestamp to check an old capture."
                        .to_owned(),
                );
                return hints;
            }
            Err(other) => hints.push(format!(
                "As of the capture's own timestamp it still fails: {}: {other}",
                other.code()
            )),
        }
    }
    let mismatch = |e: &WebhookError| matches!(e, WebhookError::SignatureMismatch { .. });
    let still_mismatched = match verifier.verify(headers, body) {
        Err(e) => mismatch(&e),
        Ok(_) => false,
    };
    if !still_mismatched {
        return hints;
    }
    let trimmed = body.trim_ascii_end();
    if trimmed.len() < body.len() && verifier.verify(headers, trimmed).is_ok() {
        hints.push(
            "The body matches without its trailing whitespace/newline: whatever saved the \
             capture (an editor, echo, a shell heredoc) added it. Verify the exact bytes."
                .to_owned(),
        );
    } else if let Some(compact) = minified(body)
        && verifier.verify(headers, &compact).is_ok()
    {
        hints.push(
            "The body matches once its whitespace is removed: the capture was pretty-printed. \
             Receivers must verify the raw bytes as received."
                .to_owned(),
        );
    } else {
        hints.push(
            "Check that this is the signing secret of the endpoint that received the delivery \
             (each endpoint has its own) and that the body is the raw bytes as received."
                .to_owned(),
        );
    }
    hints
}

/// `body` without the whitespace outside JSON strings (key order and numbers untouched), if
/// it is JSON and had any.
fn minified(body: &[u8]) -> Option<Vec<u8>> {
    serde_json::from_slice::<Box<serde_json::value::RawValue>>(body).ok()?;
    let mut out = Vec::with_capacity(body.len());
    let (mut in_string, mut escaped) = (false, false);
    for &byte in body {
        if in_string {
            out.push(byte);
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !byte.is_ascii_whitespace() {
            in_string = byte == b'"';
            out.push(byte);
        }
    }
    (out.len() < body.len()).then_some(out)
}

/// The capture's `webhook-timestamp` (or `svix-timestamp`), if it is an integer.
fn capture_timestamp(headers: &[(String, String)]) -> Option<i64> {
    let raw = headers
        .header(WEBHOOK_TIMESTAMP)
        .or_else(|| headers.header(SVIX_TIMESTAMP))?;
    std::str::from_utf8(raw).ok()?.trim().parse().ok()
}

/// Header pairs from a capture: a JSON object of names to values, or `name: value` lines (an HTTP
/// request dump, `curl -v` output, or what `sign` prints), up to the first blank line after them.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let trimmed = text.trim_start();
    let pairs = if trimmed.starts_with('{') {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(trimmed)
            .map_err(|e| format!("not a JSON object of header names to values: {e}"))?;
        object
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(value) => Ok((name.to_ascii_lowercase(), value)),
                _ => Err(format!("the value of {name} is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let mut pairs = Vec::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let line = line.strip_prefix("> ").unwrap_or(line);
            if line.trim().is_empty() || line == ">" {
                if pairs.is_empty() {
                    continue;
                }
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue; // a request line such as `POST /webhooks HTTP/1.1`
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                continue;
            }
            pairs.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        pairs
    };
    if pairs.is_empty() {
        return Err("no headers found: expected `name: value` lines or a JSON object".to_owned());
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_http_dump_up_to_the_body() {
        let dump = "POST http://127.0.0.1:8080/webhooks HTTP/1.1\r\nWebhook-Id: msg_1\r\n\
                    webhook-timestamp:  17 \r\n\r\n{\"type\": \"x: y\"}";
        let pairs = parse_headers(dump).unwrap();
        assert_eq!(
            pairs,
            [
                ("webhook-id".to_owned(), "msg_1".to_owned()),
                ("webhook-timestamp".to_owned(), "17".to_owned())
            ]
        );
        assert_eq!(capture_timestamp(&pairs), Some(17));
    }

    #[test]
    fn minifies_outside_strings_only() {
        let pretty = b"{\n  \"b\": \"x \\\" y\",\n  \"a\": [1, 2]\n}\n";
        assert_eq!(
            minified(pretty).unwrap(),
            br#"{"b":"x \" y","a":[1,2]}"#.to_vec()
        );
        assert_eq!(minified(br#"{"a":1}"#), None);
        assert_eq!(minified(b"not json"), None);
        assert_eq!(
            minified(b"{ \"n\": 1e400 }").unwrap(),
            br#"{"n":1e400}"#.to_vec()
        );
    }

    #[test]
    fn reads_curl_verbose_and_json() {
        let curl = "> POST /x HTTP/1.1\n> svix-id: msg_2\n>\n";
        assert_eq!(parse_headers(curl).unwrap()[0].1, "msg_2");
        let json = r#"{"Webhook-Id": "msg_3"}"#;
        assert_eq!(parse_headers(json).unwrap()[0].0, "webhook-id");
        assert!(parse_headers(r#"{"webhook-id": 3}"#).is_err());
        assert!(parse_headers("nothing here\n").is_err());
    }
}
