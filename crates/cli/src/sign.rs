//! `sign`: the headers a sender would put on a body, and a curl line that sends it.

use agentsync_webhooks_core::{Clock as _, DEFAULT_BODY_LIMIT, SystemClock, new_message_id};

use clap::Args;

use crate::{
    failure::Failure,
    input::{parse_message_id, read_stdin},
    keys::{self, SECRET_ENV},
    output::out,
};

/// `sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The signing secret (whsec_...), or a v1a signing key (whsk_...).
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    pub secret: String,
    /// The webhook-id; default: a fresh msg_ id.
    #[arg(long, value_parser = parse_message_id)]
    pub id: Option<String>,
    /// The webhook-timestamp in seconds since the Unix epoch; default: now.
    #[arg(long, allow_negative_numbers = true)]
    pub timestamp: Option<i64>,
    /// URL for the printed curl line.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/psapi")]
    pub url: String,
}

/// Signs stdin and prints `name: value` header lines, a blank line, then a ready `curl` command.
///
/// The header block alone (everything before the blank line) is what `verify --headers` reads.
/// A `whsk_` key signs `v1a`.
pub fn run(args: SignArgs) -> Result<(), Failure> {
    let signer = keys::signer(&args.secret)?;
    let id = args.id.unwrap_or_else(new_message_id);
    let timestamp = args
        .timestamp
        .unwrap_or_else(|| SystemClock.now_unix_secs());
    let body = read_stdin()?;
    if let Some(warning) = body_warning(body.len()) {
        eprintln!("warning: {warning}");
    }
    let headers = signer.sign(&id, timestamp, &body);
    let pairs = headers.to_pairs();
    for (name, value) in &pairs {
        out!("{name}: {value}");
    }
    out!();
    out!("{}", curl_line(&args.url, &pairs, &body));
    Ok(())
}

/// What a receiver will make of a body of `len` bytes, when that is a refusal.
fn body_warning(len: usize) -> Option<String> {
    if len == 0 {
        Some(
            "the body is empty (nothing on stdin?): the signature is valid, but receivers \
             answer 400 invalid_payload, an AgentSync delivery is a JSON envelope"
                .to_owned(),
        )
    } else if len > DEFAULT_BODY_LIMIT {
        Some(format!(
            "the body is {len} bytes, over the {} MiB receivers accept by default: they answer \
             413 payload_too_large without checking the signature",
            DEFAULT_BODY_LIMIT / (1024 * 1024)
        ))
    } else {
        None
    }
}

/// A `curl` command that POSTs exactly `body` with the signed headers.
fn curl_line(url: &str, headers: &[(&str, String)], body: &[u8]) -> String {
    let mut line = format!(
        "curl -sS -i -X POST {} -H 'content-type: application/json'",
        shell_quote(url)
    );
    for (name, value) in headers {
        line.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => {
            line.push_str(&format!(" --data-binary {}", shell_quote(text)));
        }
        // Not representable on a command line: send the same bytes from a file.
        _ => line.push_str(" --data-binary @body.bin  # the exact bytes that were signed"),
    }
    line
}

/// `text` in single quotes, safe for POSIX shells.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_of_bodies_receivers_refuse() {
        assert!(body_warning(0).unwrap().contains("empty"));
        assert_eq!(body_warning(DEFAULT_BODY_LIMIT), None);
        assert!(
            body_warning(DEFAULT_BODY_LIMIT + 1)
                .unwrap()
                .contains("413")
        );
    }

    #[test]
    fn quotes_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn curl_line_carries_every_header_and_the_body() {
        let line = curl_line(
            "http://127.0.0.1:1/x",
            &[("webhook-id", "msg_1".to_owned())],
            br#"{"a":1}"#,
        );
        assert!(line.contains("-H 'webhook-id: msg_1'"), "{line}");
        assert!(line.ends_with(r#"--data-binary '{"a":1}'"#), "{line}");
    }
}
