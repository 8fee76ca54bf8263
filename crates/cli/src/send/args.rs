//! `send`'s flags, their defaults and the parsers of their values.

use std::path::PathBuf;

use agentsync_webhooks_core::EventType;
use clap::Args;

use super::{payload::Override, schedule::Schedule};
use crate::{
    events::{EventSelection, parse_event_type},
    http_client::parse_http_url,
    input::parse_message_id,
    keys::SECRET_ENV,
};

/// `send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Endpoint URL, e.g. http://127.0.0.1:8080/webhooks/psapi.
    #[arg(long, value_parser = parse_http_url)]
    pub url: reqwest::Url,
    /// The endpoint's signing secret (whsec_...), or a v1a signing key (whsk_...).
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    pub secret: String,
    /// Event type: one of the 21 documented types. Sends its documented example payload.
    #[arg(long, value_name = "TYPE", value_parser = parse_event_type,
          required_unless_present_any = ["body", "events"])]
    pub event: Option<EventType>,
    /// Several types in one run (TYPE or GROUP, comma-separated, or all), each with its
    /// example payload; with --count they take turns.
    #[arg(long, value_name = "TYPE|GROUP,...", value_parser = EventSelection::parse,
          conflicts_with_all = ["event", "data", "body"])]
    pub events: Option<EventSelection>,
    /// JSON file (or - for stdin) to send as the event's `data` instead of the example.
    #[arg(long, value_name = "FILE|-", requires = "event")]
    pub data: Option<PathBuf>,
    /// Change one field of the payload: `data.npn=123`, `data.runDate=2025-01-31`, `id=whe_1`
    /// (a value takes the type of the field it replaces; new fields are JSON, else text).
    /// Repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = Override::parse,
          conflicts_with = "body")]
    pub overrides: Vec<Override>,
    /// File (or - for stdin) sent byte for byte as the whole body (a captured delivery, a
    /// malformed payload); replaces --event and --data.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["event", "data"])]
    pub body: Option<PathBuf>,
    /// An extra request header, `NAME:VALUE`; repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// The webhook-id (message id) to send; default: a fresh msg_ id.
    #[arg(long, value_parser = parse_message_id, conflicts_with = "events")]
    pub id: Option<String>,
    /// Retry schedule: `quick` (default: immediately, 0.5 s, 1 s, 2 s, 4 s, 8 s), `svix` (the
    /// real one: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), `none`, or delays
    /// such as `0,250ms,1s`. Delays get ±10% jitter. With --count, no retries unless given.
    #[arg(long, value_parser = Schedule::parse)]
    pub schedule: Option<Schedule>,
    /// Load mode: send this many deliveries, then print requests/s, latency and status counts.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=crate::send::MAX_COUNT))]
    pub count: Option<u64>,
    /// Load mode: deliveries in flight at once.
    #[arg(long, default_value_t = 10, requires = "count",
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Send the same message again (same webhook-id and body), as a replay does; with
    /// --count, every delivery reuses one webhook-id and body.
    #[arg(long)]
    pub duplicate: bool,
}

/// `NAME:VALUE`, a valid HTTP header that does not replace a signing header.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once(':') else {
        return Err("expected NAME:VALUE, e.g. x-tenant:acme".to_owned());
    };
    let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() || name.is_empty() {
        return Err(format!("{name:?} is not a valid header name"));
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(format!("the value of {name} is not a valid header value"));
    }
    if name.starts_with("webhook-") || name.starts_with("svix-") {
        return Err(format!(
            "{name} is a signing header that send makes itself (use --id for the webhook-id)"
        ));
    }
    if ["content-length", "host", "transfer-encoding", "connection"].contains(&name.as_str()) {
        return Err(format!("{name} is set by the HTTP client"));
    }
    Ok((name, value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("X-Tenant: acme").unwrap(),
            ("x-tenant".to_owned(), "acme".to_owned())
        );
        for bad in ["novalue", "bad name:1", "webhook-id:x", "host:a", ":x"] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }
}
