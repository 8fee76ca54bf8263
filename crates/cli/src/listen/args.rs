//! `listen`'s flags, their defaults and the parsers of their values.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::{
    events::EventSelection, http_client::parse_http_url, keys::SECRET_ENV, output::ColorChoice,
};

/// How `listen` prints deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One readable line per delivery.
    Text,
    /// One JSON object per delivery (the banner goes to stderr), for scripts and `jq`.
    Json,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_rates_and_hosts() {
        assert_eq!(parse_fail_rate("0.25"), Ok(0.25));
        assert_eq!(parse_fail_rate("30%"), Ok(0.3));
        for bad in ["", "1.5", "-0.1", "abc", "150%"] {
            assert!(parse_fail_rate(bad).is_err(), "{bad}");
        }
        assert!(parse_host("localhost").is_ok());
        assert!(parse_host("::1").is_ok());
        assert!(parse_host("a b").is_err());
    }
}
