//! The command line: every subcommand, flag and default, in one place.

use std::path::PathBuf;

use agentsync_webhooks_core::{EventType, headers::MAX_ID_LEN};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    dlq::{QueueUrl, QueueUrlParser},
    events::{EventSelection, parse_event_type},
    http_client::parse_http_url,
    output::ColorChoice,
    send::{Override, Schedule},
};

/// The environment variable every subcommand reads the signing secret from.
pub const SECRET_ENV: &str = "AGENTSYNC_WEBHOOK_SECRET";

/// The environment variable `dlq` reads the queue URL from, as the services and examples do.
pub const QUEUE_URL_ENV: &str = "AGENTSYNC_QUEUE_URL";

/// Receive, send, sign and check AgentSync webhooks (Standard Webhooks / Svix signing).
#[derive(Debug, Parser)]
#[command(
    name = "agentsync-webhooks",
    version,
    after_help = "Exit status: 0 on success, 1 when a delivery or a check failed (or a queue \
                  could not be reached), 2 on bad input (a bad secret, an unknown event type, an \
                  unreadable file, a bad flag or queue URL)."
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a verifying receiver and print every delivery it gets (optionally forwarding
    /// verified ones to your app).
    Listen(ListenArgs),
    /// Sign and deliver events like AgentSync's sender does (or load-test a receiver).
    Send(SendArgs),
    /// Send deliveries saved by `listen --save` again, re-signed with a fresh timestamp.
    Replay(ReplayArgs),
    /// Print the webhook-* headers for a body read from stdin, and a ready curl line.
    Sign(SignArgs),
    /// Check a captured delivery (headers file + body on stdin) and explain why it fails.
    Verify(VerifyArgs),
    /// List the 21 documented event types by group.
    Events,
    /// The dead letters of a durable queue (SQLite, Redis, PostgreSQL): list, show, replay.
    Dlq {
        /// What to do.
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Signing secrets and keys.
    Secret {
        /// What to do.
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Print a shell completion script: `agentsync-webhooks completions bash > ...`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `secret ...`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a fresh whsec_ secret of 32 random bytes (or, with --v1a, an Ed25519 key pair).
    New {
        /// An Ed25519 (v1a) key pair instead: the whsk_ signing key on the first line (for
        /// `send`/`sign --secret`), the whpk_ public key on the second (for receivers).
        #[arg(long)]
        v1a: bool,
    },
}

/// How `listen` prints deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One readable line per delivery.
    Text,
    /// One JSON object per delivery (the banner goes to stderr), for scripts and `jq`.
    Json,
}

/// `dlq ...`.
#[derive(Debug, Subcommand)]
#[command(
    after_help = "The queue is the one the service writes to: --queue URL, or \
                        AGENTSYNC_QUEUE_URL (sqlite://PATH, redis://..., postgres://...); unset or \
                        empty, the SQLite file agentsync-webhooks-queue.sqlite3 in the working \
                        directory. Exit status: 1 when the queue cannot be reached or an id is \
                        not a dead letter, 2 on bad input."
)]
pub enum DlqCommand {
    /// One line per dead letter, oldest first (died at, webhook-id, type, attempts, last
    /// error), then the queue's counts.
    List(DlqListArgs),
    /// Everything about one dead letter: its headers, times, last error and body.
    Show(DlqShowArgs),
    /// Move dead letters back to the queue, due at once with their attempts reset (after the
    /// handler or its data was fixed).
    Replay(DlqReplayArgs),
}

/// The queue `dlq` works on.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue the service uses: sqlite://PATH, redis://HOST:PORT, postgres://USER@HOST/DB.
    /// Unset or empty: the SQLite file agentsync-webhooks-queue.sqlite3 in the working
    /// directory. Only its scheme and host are ever printed.
    #[arg(long, value_name = "URL", env = QUEUE_URL_ENV, hide_env_values = true,
          value_parser = QueueUrlParser)]
    pub queue: Option<QueueUrl>,
    /// The key prefix of a Redis queue, if the service sets one (RedisOptions::prefix); default
    /// agentsync-webhooks:queue:.
    #[arg(long, value_name = "PREFIX")]
    pub redis_prefix: Option<String>,
}

/// How `dlq list` and `dlq show` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DlqFormat {
    /// Readable lines.
    Text,
    /// JSON: one object per dead letter and line (the summary goes to stderr), for `jq`.
    Json,
}

/// `dlq list`.
#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// At most this many dead letters, the oldest first.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub limit: u64,
    /// Output: readable lines, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = DlqFormat::Text)]
    pub format: DlqFormat,
}

/// `dlq show`.
#[derive(Debug, Args)]
pub struct DlqShowArgs {
    /// The webhook-id of the dead letter.
    #[arg(value_name = "ID", value_parser = parse_message_id)]
    pub id: String,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Output: readable lines (the body pretty-printed when it is JSON), or one JSON object.
    #[arg(long, value_enum, default_value_t = DlqFormat::Text)]
    pub format: DlqFormat,
}

/// `dlq replay`.
#[derive(Debug, Args)]
pub struct DlqReplayArgs {
    /// The webhook-ids of the dead letters to replay (or --all).
    #[arg(value_name = "ID", value_parser = parse_message_id, conflicts_with = "all")]
    pub ids: Vec<String>,
    /// Replay every dead letter, oldest first.
    #[arg(long)]
    pub all: bool,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// `listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address or host name to bind; the default accepts connections from this machine only.
    #[arg(long, default_value = "127.0.0.1", value_parser = parse_host)]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Path that receives deliveries; repeat for several (`--path /a --path /b`).
    #[arg(long, default_value = "/webhooks/psapi", value_parser = parse_path)]
    pub path: Vec<String>,
    /// Signing secret (whsec_...), or a v1a key (whpk_...). Without one, a fresh secret is
    /// generated and printed.
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    pub secret: Option<String>,
    /// Forward each verified delivery to your app at this URL (exact body, webhook-*/svix-* and
    /// content-type headers as received); the sender gets the app's status and body.
    #[arg(long, value_name = "URL", value_parser = parse_http_url)]
    pub forward_to: Option<reqwest::Url>,
    /// Only these types (TYPE or GROUP, comma-separated); others are answered 200 and shown as
    /// filtered.
    #[arg(long, value_name = "TYPE|GROUP,...", value_parser = EventSelection::parse)]
    pub events: Option<EventSelection>,
    /// Output: one line per delivery, or one JSON object per delivery.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Colour the lines: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Also print each request's headers and raw body, refused ones too.
    #[arg(short, long)]
    pub verbose: bool,
    /// Save each delivery (headers and raw body as received) in this directory, one .http
    /// file each, for `replay`.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// Answer this fraction of verified deliveries with an error (0 to 1, or a percentage such
    /// as 30%), to rehearse retries; the error is --status, 500 by default.
    #[arg(long, value_name = "P", value_parser = parse_fail_rate)]
    pub fail_rate: Option<f64>,
    /// The status to answer verified deliveries with: all of them, or with --fail-rate the
    /// failing ones.
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(100..=599))]
    pub status: Option<u16>,
    /// Process every delivery, even a webhook-id already processed (by default a repeat is
    /// answered 200 without running the handler, as the library's idempotency does).
    #[arg(long)]
    pub no_idempotency: bool,
    /// Seconds a request body may take to arrive; a slower one is answered 408 and its
    /// connection closed, as the library does (the sender itself waits 5 s).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout: u64,
}

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

fn parse_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') && !path.contains(['?', '#', ' ', '{', '}', '*']) {
        Ok(path.to_owned())
    } else {
        Err("the path must start with / and hold no query, fragment, space, { } or *".to_owned())
    }
}

/// An IP address or a host name (resolved when binding).
fn parse_host(host: &str) -> Result<String, String> {
    let name_like = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if name_like || host.parse::<std::net::IpAddr>().is_ok() {
        Ok(host.to_owned())
    } else {
        Err("expected an IP address (127.0.0.1, ::1, 0.0.0.0) or a host name (localhost)".into())
    }
}

/// `0.3` or `30%`: a fraction from 0 to 1.
fn parse_fail_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    };
    match value {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err("expected a fraction from 0 to 1 (0.3) or a percentage (30%)".to_owned()),
    }
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

/// A `webhook-id` that receivers accept: 1 to `MAX_ID_LEN` visible ASCII characters.
fn parse_message_id(id: &str) -> Result<String, String> {
    let visible = id.bytes().all(|b| b.is_ascii_graphic());
    if id.is_empty() || id.len() > MAX_ID_LEN || !visible {
        return Err(format!(
            "a webhook-id is 1 to {MAX_ID_LEN} visible ASCII characters (no spaces), such as \
             msg_2Lh5UzG3ZR1n0dXdBDfpDXuHHm8"
        ));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn fail_rates_and_headers() {
        assert_eq!(parse_fail_rate("0.25"), Ok(0.25));
        assert_eq!(parse_fail_rate("30%"), Ok(0.3));
        for bad in ["", "1.5", "-0.1", "abc", "150%"] {
            assert!(parse_fail_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_header("X-Tenant: acme").unwrap(),
            ("x-tenant".to_owned(), "acme".to_owned())
        );
        for bad in ["novalue", "bad name:1", "webhook-id:x", "host:a", ":x"] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
        assert!(parse_host("localhost").is_ok());
        assert!(parse_host("::1").is_ok());
        assert!(parse_host("a b").is_err());
    }
}
