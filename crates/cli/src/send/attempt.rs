//! One signed HTTP attempt and how it ended.

use std::{
    error::Error as _,
    time::{Duration, Instant, SystemTime},
};

use agentsync_webhooks_core::{Clock as _, Signer, SystemClock};
use axum::body::Bytes;

use super::ATTEMPT_TIMEOUT;
use crate::{failure::Failure, http_client};

/// Longest response excerpt shown in the attempt log.
const RESPONSE_EXCERPT: usize = 200;
/// Width of the status column: the longest status text, "511 Network Authentication Required".
pub const STATUS_WIDTH: usize = 35;

/// Signs and POSTs deliveries to one endpoint.
pub struct Sender {
    client: reqwest::Client,
    url: reqwest::Url,
    signer: Signer,
    /// `--header` pairs, sent on every attempt.
    extra_headers: Vec<(String, String)>,
}

impl Sender {
    /// A sender keeping up to `connections` idle connections open for reuse.
    pub fn new(
        url: reqwest::Url,
        signer: Signer,
        extra_headers: Vec<(String, String)>,
        connections: u64,
    ) -> Result<Self, Failure> {
        Ok(Self {
            client: http_client::build(ATTEMPT_TIMEOUT, connections)?,
            url,
            signer,
            extra_headers,
        })
    }

    /// The endpoint.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// One attempt of delivery `id`: signed now, so every retry carries a fresh timestamp.
    pub async fn attempt(&self, id: &str, body: &Bytes) -> Attempt {
        let headers = self.signer.sign(id, SystemClock.now_unix_secs(), body);
        let mut request = self.client.post(self.url.clone());
        if !self.extra_headers.iter().any(|(n, _)| n == "content-type") {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers.to_pairs() {
            request = request.header(name, value);
        }
        for (name, value) in &self.extra_headers {
            request = request.header(name, value);
        }
        let at = SystemTime::now();
        let started = Instant::now();
        let outcome = match request.body(body.clone()).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => Outcome::Answered { status, body },
                    Err(error) => Outcome::from_error(&error),
                }
            }
            Err(error) => Outcome::from_error(&error),
        };
        Attempt {
            at,
            latency: started.elapsed(),
            outcome,
        }
    }
}

/// One attempt: when, how long, and how it ended.
#[derive(Debug)]
pub struct Attempt {
    /// When it was sent.
    pub at: SystemTime,
    /// Until the whole answer was read, or the attempt failed.
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// How an attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// The receiver answered.
    Answered {
        /// The HTTP status.
        status: u16,
        /// The response body.
        body: Bytes,
    },
    /// No answer within the timeout.
    TimedOut,
    /// No connection could be made.
    Unreachable(String),
    /// Anything else that went wrong on the way.
    Failed(String),
}

impl Outcome {
    fn from_error(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            return Self::TimedOut;
        }
        // reqwest's own message is generic; the cause (e.g. "Connection refused") is below it.
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        if error.is_connect() {
            Self::Unreachable(reason)
        } else {
            Self::Failed(reason)
        }
    }

    /// A 2xx: the sender stops retrying.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Answered { status, .. } if (200..300).contains(status))
    }
}

impl Attempt {
    /// A row of the "Message Attempts" log: time, result, status, duration, response excerpt.
    pub fn log_line(&self) -> String {
        let at = chrono::DateTime::<chrono::Utc>::from(self.at).format("%Y-%m-%d %H:%M:%S");
        let result = if self.outcome.is_success() {
            "Succeeded"
        } else {
            "Failed"
        };
        let (status, response) = match &self.outcome {
            Outcome::Answered { status, body } => (status_text(*status), excerpt(body)),
            Outcome::TimedOut => (
                "timeout".to_owned(),
                format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
            ),
            Outcome::Unreachable(reason) => ("no connection".to_owned(), reason.clone()),
            Outcome::Failed(reason) => ("error".to_owned(), reason.clone()),
        };
        format!(
            "{at}  {result:<9}  {status:<STATUS_WIDTH$}  {:>8}  {response}",
            human_latency(self.latency)
        )
        .trim_end()
        .to_owned()
    }
}

/// `401 Unauthorized`, or the bare code when it has no standard reason.
pub fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// The start of a response body, on one line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(RESPONSE_EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `0.8 ms`, `12.3 ms`, `1.20 s`.
pub fn human_latency(latency: Duration) -> String {
    let ms = latency.as_secs_f64() * 1_000.0;
    if ms < 1_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_reads_like_the_portal() {
        let attempt = Attempt {
            at: SystemTime::UNIX_EPOCH,
            latency: Duration::from_micros(2_500),
            outcome: Outcome::Answered {
                status: 401,
                body: Bytes::from_static(b"{\"error\":\n \"signature_mismatch\"}"),
            },
        };
        assert_eq!(
            attempt.log_line(),
            "1970-01-01 00:00:00  Failed     401 Unauthorized                       2.5 ms  \
             {\"error\": \"signature_mismatch\"}"
        );
    }

    #[test]
    fn the_columns_hold_every_status() {
        let widest = (100..=599)
            .map(|status| status_text(status).len())
            .max()
            .unwrap();
        assert_eq!(widest, STATUS_WIDTH);
        let row = |status| {
            Attempt {
                at: SystemTime::UNIX_EPOCH,
                latency: Duration::from_millis(3),
                outcome: Outcome::Answered {
                    status,
                    body: Bytes::from_static(b"x"),
                },
            }
            .log_line()
        };
        let duration_at = |line: String| line.find(" ms").unwrap();
        assert_eq!(duration_at(row(200)), duration_at(row(511)));
        assert_eq!(duration_at(row(200)), duration_at(row(599)));
    }

    #[test]
    fn long_responses_are_cut() {
        let long = "x".repeat(RESPONSE_EXCERPT + 10);
        assert_eq!(
            excerpt(long.as_bytes()).chars().count(),
            RESPONSE_EXCERPT + 1
        );
        assert_eq!(human_latency(Duration::from_millis(1_500)), "1.50 s");
    }
}
