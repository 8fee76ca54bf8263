//! The command line: every subcommand, flag and default, in one place.

use std::{net::IpAddr, path::PathBuf};

use agentsync_webhooks_core::{EventGroup, EventType};
use clap::{Args, Parser, Subcommand};

use crate::send::Schedule;

/// The environment variable every subcommand reads the signing secret from.
pub const SECRET_ENV: &str = "AGENTSYNC_WEBHOOK_SECRET";

/// Receive, send, sign and check AgentSync webhooks (Standard Webhooks / Svix signing).
#[derive(Debug, Parser)]
#[command(
    name = "agentsync-webhooks",
    version,
    after_help = "Exit status: 0 on success, 1 when a delivery or a check failed, 2 on bad input \
                  (a bad secret, an unknown event type, an unreadable file, a bad flag)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a verifying receiver and print every delivery it gets.
    Listen(ListenArgs),
    /// Sign and deliver events like AgentSync's sender does (or load-test a receiver).
    Send(SendArgs),
    /// Print the webhook-* headers for a body read from stdin, and a ready curl line.
    Sign(SignArgs),
    /// Check a captured delivery (headers file + body on stdin) and explain why it fails.
    Verify(VerifyArgs),
    /// Signing secrets.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a fresh whsec_ secret of 32 random bytes.
    New,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to bind; the default accepts connections from this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Path that receives deliveries.
    #[arg(long, default_value = "/webhooks/psapi", value_parser = parse_path)]
    pub path: String,
    /// Signing secret (whsec_...). Without one, a fresh secret is generated and printed.
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    pub secret: Option<String>,
    /// Also print each delivery's JSON body, pretty.
    #[arg(short, long)]
    pub verbose: bool,
    /// Process every delivery, even a webhook-id already processed (by default a repeat is
    /// answered 200 without running the handler, as the library's idempotency does).
    #[arg(long)]
    pub no_idempotency: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Endpoint URL, e.g. http://127.0.0.1:8080/webhooks/psapi.
    #[arg(long)]
    pub url: String,
    /// The endpoint's signing secret (whsec_...).
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    pub secret: String,
    /// Event type: one of the 21 documented types. Sends its documented example payload.
    #[arg(long, value_name = "TYPE", value_parser = parse_event_type, required_unless_present = "body")]
    pub event: Option<EventType>,
    /// JSON file (or - for stdin) to send as the event's `data` instead of the example.
    #[arg(long, value_name = "FILE|-", requires = "event")]
    pub data: Option<PathBuf>,
    /// File (or - for stdin) sent byte for byte as the whole body (a captured delivery, a
    /// malformed payload); replaces --event and --data.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["event", "data"])]
    pub body: Option<PathBuf>,
    /// The webhook-id (message id) to send; default: a fresh msg_ id.
    #[arg(long)]
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

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The signing secret (whsec_...).
    #[arg(long, env = SECRET_ENV, hide_env_values = true)]
    pub secret: String,
    /// The webhook-id; default: a fresh msg_ id.
    #[arg(long)]
    pub id: Option<String>,
    /// The webhook-timestamp in seconds since the Unix epoch; default: now.
    #[arg(long, allow_negative_numbers = true)]
    pub timestamp: Option<i64>,
    /// URL for the printed curl line.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/psapi")]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signing secret (whsec_...).
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

/// One of the documented types; on anything else, the list of all of them.
pub fn parse_event_type(name: &str) -> Result<EventType, String> {
    name.parse().map_err(|_| {
        format!(
            "not a documented AgentSync event type\n\n{}",
            known_event_types()
        )
    })
}

/// Every documented event type, grouped as the portal subscribes to them.
pub fn known_event_types() -> String {
    let mut text = String::from("Known event types:");
    for group in EventGroup::ALL {
        text.push_str(&format!("\n  {group}:"));
        for event_type in group.types() {
            text.push_str(&format!("\n    {event_type}"));
        }
    }
    text
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
    fn unknown_event_type_lists_all_21() {
        let message = parse_event_type("producersync.nope").unwrap_err();
        for event_type in EventType::ALL {
            assert!(message.contains(event_type.as_str()), "{event_type}");
        }
    }
}
