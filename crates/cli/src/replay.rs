//! `replay`: deliveries saved by `listen --save` sent again, re-signed with a fresh timestamp
//! (the same webhook-id and body, as a replay from the portal), or with `--as-captured` exactly
//! as they were (to reproduce a stale-timestamp refusal).

use std::path::PathBuf;

use agentsync_webhooks_core::{Clock as _, Signer, SystemClock, new_message_id};
use clap::Args;

use crate::{
    capture::Capture,
    failure::Failure,
    http_client::{self, parse_http_url},
    keys::{self, SECRET_ENV},
    output::out,
    send::{ATTEMPT_TIMEOUT, status_text},
};

/// `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Files saved by `listen --save` (an HTTP request dump: request line, headers, blank
    /// line, body).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where to send them, e.g. http://127.0.0.1:8080/webhooks/psapi.
    #[arg(long, value_parser = parse_http_url)]
    pub url: reqwest::Url,
    /// The signing secret (whsec_...) or v1a key (whsk_...) to re-sign with.
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    pub secret: Option<String>,
    /// Send the captured headers as they are (old timestamp and signature): reproduces a
    /// stale-timestamp refusal. Needs no secret.
    #[arg(long)]
    pub as_captured: bool,
}

/// Headers the HTTP client sets itself, never copied from a capture.
const CLIENT_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-connection",
];

/// The signing headers, replaced when re-signing.
const SIGNING_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
];

/// Sends every file once, in order; fails (exit 1) if any was not answered 2xx.
pub async fn run(args: ReplayArgs) -> Result<(), Failure> {
    let signer = match (&args.secret, args.as_captured) {
        (_, true) => None,
        (Some(secret), false) => Some(keys::signer(secret)?),
        (None, false) => {
            return Err(Failure::bad_input(
                "replay re-signs each delivery with a fresh timestamp: give --secret (or set \
                 AGENTSYNC_WEBHOOK_SECRET), or --as-captured to send the captured headers as \
                 they are",
            ));
        }
    };
    // Every file is read before anything is sent.
    let mut captures = Vec::new();
    for file in &args.files {
        let bytes = std::fs::read(file)
            .map_err(|e| Failure::bad_input(format!("cannot read {}: {e}", file.display())))?;
        let capture = Capture::parse(&bytes)
            .map_err(|e| Failure::bad_input(format!("{}: {e}", file.display())))?;
        captures.push((file, capture));
    }
    let client = http_client::build(ATTEMPT_TIMEOUT, 1)?;
    let mut failed = 0;
    for (file, capture) in &captures {
        let (id, headers) = match &signer {
            Some(signer) => resigned(capture, signer),
            None => (
                capture_id(capture).unwrap_or("-").to_owned(),
                sendable(capture).collect(),
            ),
        };
        let mut request = client.post(args.url.clone()).body(capture.body.clone());
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await.unwrap_or_default();
                let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                if !status.is_success() {
                    failed += 1;
                }
                format!("{}  {}", status_text(status.as_u16()), excerpt.trim())
            }
            Err(error) => {
                failed += 1;
                let mut cause = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(inner) = source {
                    cause = inner.to_string();
                    source = inner.source();
                }
                format!("no answer: {cause}")
            }
        };
        out!("{}  {id}  -> {}", file.display(), result.trim_end());
    }
    match failed {
        0 => Ok(()),
        n => Err(Failure::failed(format!(
            "{n} of {} replayed deliveries were not answered 2xx",
            captures.len()
        ))),
    }
}

/// The captured headers that may be sent again.
fn sendable(capture: &Capture) -> impl Iterator<Item = (String, String)> + '_ {
    capture
        .headers
        .iter()
        .filter(|(name, _)| !CLIENT_HEADERS.contains(&name.as_str()))
        .cloned()
}

fn capture_id(capture: &Capture) -> Option<&str> {
    capture
        .header("webhook-id")
        .or_else(|| capture.header("svix-id"))
}

/// The captured headers with fresh signing headers: the same webhook-id (a fresh one if the
/// capture had none), now as the timestamp, under the names the capture used (`svix-*` or
/// `webhook-*`).
fn resigned(capture: &Capture, signer: &Signer) -> (String, Vec<(String, String)>) {
    let id = capture_id(capture).map_or_else(new_message_id, str::to_owned);
    let svix_names = capture.header("webhook-id").is_none() && capture.header("svix-id").is_some();
    let signed = signer.sign(&id, SystemClock.now_unix_secs(), &capture.body);
    let mut headers: Vec<(String, String)> = sendable(capture)
        .filter(|(name, _)| !SIGNING_HEADERS.contains(&name.as_str()))
        .collect();
    for (name, value) in signed.to_pairs() {
        let name = if svix_names {
            name.replacen("webhook-", "svix-", 1)
        } else {
            name.to_owned()
        };
        headers.push((name, value));
    }
    (id, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resigning_replaces_only_the_signing_headers() {
        let capture = Capture {
            method: "POST".into(),
            path: "/x".into(),
            headers: vec![
                ("host".into(), "127.0.0.1:1".into()),
                ("content-type".into(), "application/json".into()),
                ("svix-id".into(), "msg_1".into()),
                ("svix-timestamp".into(), "1".into()),
                ("svix-signature".into(), "v1,old".into()),
            ],
            body: b"{}".to_vec(),
        };
        let signer = Signer::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let (id, headers) = resigned(&capture, &signer);
        assert_eq!(id, "msg_1");
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "svix-id",
                "svix-timestamp",
                "svix-signature"
            ]
        );
        assert!(headers.iter().all(|(_, v)| v != "v1,old" && v != "1"));
    }
}
