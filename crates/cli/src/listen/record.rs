//! One printed line per request: readable text or a JSON object, with `--verbose` the headers
//! and raw body.

use std::path::PathBuf;

use axum::body::Bytes;

use super::Format;
use crate::{
    output::{Color, StdoutClosed, paint, write_text},
    send::status_text,
};

/// How a request ended, as the line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified and processed.
    Accepted,
    /// Verified, not among `--events`.
    Filtered,
    /// Verified, answered an error on purpose (`--fail-rate`, `--status`).
    FailedOnPurpose,
    /// Verified and forwarded; the app answered.
    Forwarded,
    /// Verified, but the app could not be reached.
    ForwardFailed(String),
    /// A webhook-id already processed: acknowledged, not processed.
    Duplicate,
    /// Refused by the library, with its error code and message.
    Refused {
        /// The stable error code.
        code: String,
        /// The message with its hint.
        message: String,
    },
    /// Another answer without an error body.
    Other,
    /// Not a webhook path.
    NotFound,
    /// A webhook path, but not a POST.
    MethodNotAllowed,
}

impl Outcome {
    /// The name in JSON lines.
    fn name(&self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Filtered => "filtered",
            Self::FailedOnPurpose => "failed_on_purpose",
            Self::Forwarded => "forwarded",
            Self::ForwardFailed(_) => "forward_failed",
            Self::Duplicate => "duplicate",
            Self::Refused { .. } => "refused",
            Self::Other => "other",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }

    fn color(&self, status: u16) -> Color {
        match self {
            Self::Accepted | Self::Forwarded if (200..300).contains(&status) => Color::Green,
            Self::Filtered | Self::Duplicate => Color::Yellow,
            _ => Color::Red,
        }
    }
}

/// Everything a line can show about one request.
#[derive(Debug, Clone)]
pub struct Record {
    /// When it arrived.
    pub at: chrono::DateTime<chrono::Utc>,
    /// `POST`.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The `webhook-id` (or `svix-id`), when printable.
    pub webhook_id: Option<String>,
    /// The `type`: from the handler when verified, else from the body when it has one.
    pub event_type: Option<String>,
    /// Whether the type is a documented one (verified deliveries only).
    pub unknown_type: bool,
    /// The status sent back.
    pub status: u16,
    /// How it ended.
    pub outcome: Outcome,
    /// The body's size as received.
    pub bytes: usize,
    /// Milliseconds from arrival to answer.
    pub ms: f64,
    /// The app's status, when forwarded.
    pub app_status: Option<u16>,
    /// Where `--save` put it.
    pub saved: Option<PathBuf>,
    /// The request headers (for `--verbose`).
    pub headers: Vec<(String, String)>,
    /// The raw body (for `--verbose`).
    pub body: Bytes,
}

/// Prints records as `--format`, `--color` and `--verbose` say.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Text or JSON.
    pub format: Format,
    /// Colour the outcome.
    pub color: bool,
    /// Headers and raw body too.
    pub verbose: bool,
}

impl Printer {
    /// Writes the record; an error once stdout has closed.
    pub fn print(&self, record: &Record) -> Result<(), StdoutClosed> {
        let text = match self.format {
            Format::Text => self.text(record),
            Format::Json => format!("{}\n", self.json(record)),
        };
        write_text(&text)
    }

    fn text(&self, record: &Record) -> String {
        let time = record.at.format("%H:%M:%S");
        let mut text = match record.outcome {
            Outcome::NotFound => format!(
                "{time}  {} {} -> 404 (deliveries go to POST on the listening path)\n",
                record.method, record.path
            ),
            Outcome::MethodNotAllowed => format!(
                "{time}  {} {} -> 405 (deliveries are POSTs)\n",
                record.method, record.path
            ),
            _ => {
                let outcome = format!("{} {}", record.status, describe(record));
                format!(
                    "{time}  {:<34}  {:<42}  {}\n",
                    record.webhook_id.as_deref().unwrap_or("-"),
                    record.event_type.as_deref().unwrap_or("-"),
                    paint(&outcome, record.outcome.color(record.status), self.color)
                )
            }
        };
        if self.verbose {
            for (name, value) in &record.headers {
                text.push_str(&format!("    {name}: {value}\n"));
            }
            let body = String::from_utf8_lossy(&record.body);
            text.push_str(&paint(
                &format!("    body ({} bytes):\n", record.body.len()),
                Color::Dim,
                self.color,
            ));
            for line in body.lines() {
                text.push_str(&format!("    {line}\n"));
            }
            text.push('\n');
        }
        text
    }

    fn json(&self, record: &Record) -> serde_json::Value {
        let (code, message) = match &record.outcome {
            Outcome::Refused { code, message } => (Some(code.as_str()), Some(message.as_str())),
            Outcome::ForwardFailed(message) => (Some("forward_failed"), Some(message.as_str())),
            _ => (None, None),
        };
        let mut line = serde_json::json!({
            "time": record.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "method": record.method,
            "path": record.path,
            "webhook_id": record.webhook_id,
            "type": record.event_type,
            "status": record.status,
            "outcome": record.outcome.name(),
            "code": code,
            "message": message,
            "bytes": record.bytes,
            "ms": (record.ms * 1000.0).round() / 1000.0,
            "app_status": record.app_status,
            "saved": record.saved.as_ref().map(|p| p.display().to_string()),
        });
        if self.verbose {
            line["headers"] = record
                .headers
                .iter()
                .map(|(n, v)| serde_json::json!([n, v]))
                .collect();
            line["body"] = String::from_utf8_lossy(&record.body).into();
        }
        line
    }
}

/// `accepted`, `duplicate: ...`, `signature_mismatch: ...` after the status.
fn describe(record: &Record) -> String {
    match &record.outcome {
        Outcome::Accepted if record.unknown_type => "accepted (unknown type)".to_owned(),
        Outcome::Accepted => "accepted".to_owned(),
        Outcome::Filtered => "filtered: not in --events, handler not run".to_owned(),
        Outcome::FailedOnPurpose => "failed on purpose (--fail-rate/--status)".to_owned(),
        Outcome::Forwarded => format!(
            "forwarded: the app answered {}",
            record
                .app_status
                .map_or_else(|| "-".to_owned(), status_text)
        ),
        Outcome::ForwardFailed(reason) => format!("not forwarded: {reason}"),
        Outcome::Duplicate => "duplicate: already processed, handler not run".to_owned(),
        Outcome::Refused { code, message } => format!("{code}: {message}"),
        Outcome::Other | Outcome::NotFound | Outcome::MethodNotAllowed => {
            status_text(record.status)
                .split_once(' ')
                .map_or_else(String::new, |(_, reason)| reason.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome, status: u16) -> Record {
        Record {
            at: chrono::DateTime::UNIX_EPOCH,
            method: "POST".into(),
            path: "/webhooks/psapi".into(),
            webhook_id: Some("msg_1".into()),
            event_type: Some("contract.updated".into()),
            unknown_type: false,
            status,
            outcome,
            bytes: 2,
            ms: 1.23456,
            app_status: None,
            saved: None,
            headers: vec![("webhook-id".into(), "msg_1".into())],
            body: Bytes::from_static(b"{}"),
        }
    }

    const TEXT: Printer = Printer {
        format: Format::Text,
        color: false,
        verbose: false,
    };

    #[test]
    fn text_lines_show_type_status_and_outcome() {
        let refused = Outcome::Refused {
            code: "signature_mismatch".into(),
            message: "no signature matches".into(),
        };
        let line = TEXT.text(&record(refused, 401));
        assert!(line.contains("contract.updated"), "{line}");
        assert!(
            line.ends_with("401 signature_mismatch: no signature matches\n"),
            "{line}"
        );
        let line = TEXT.text(&record(Outcome::Duplicate, 200));
        assert!(line.ends_with("200 duplicate: already processed, handler not run\n"));
        let line = TEXT.text(&record(Outcome::Other, 500));
        assert!(line.ends_with("500 Internal Server Error\n"), "{line}");
        let coloured = Printer {
            color: true,
            ..TEXT
        }
        .text(&record(Outcome::Accepted, 200));
        assert!(
            coloured.contains("\x1b[32m200 accepted\x1b[0m"),
            "{coloured}"
        );
    }

    #[test]
    fn json_lines_carry_every_field() {
        let printer = Printer {
            format: Format::Json,
            verbose: true,
            ..TEXT
        };
        let mut forwarded = record(Outcome::Forwarded, 201);
        forwarded.app_status = Some(201);
        let line = printer.json(&forwarded);
        assert_eq!(line["outcome"], "forwarded");
        assert_eq!(line["app_status"], 201);
        assert_eq!(line["type"], "contract.updated");
        assert_eq!(line["ms"], 1.235);
        assert_eq!(line["body"], "{}");
        assert_eq!(line["headers"][0][0], "webhook-id");
    }
}
