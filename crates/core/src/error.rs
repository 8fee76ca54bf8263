//! Why a delivery was refused, and what every adapter answers for it.

use std::fmt;

/// Every reason a delivery can be refused.
///
/// Each variant has a stable machine-readable [`code`](WebhookError::code), the HTTP
/// [`status`](WebhookError::status) that every adapter answers with (the table in the design
/// notes), and a one-sentence message with the likely cause. No variant carries a secret or an
/// expected signature, so errors are safe to log and to send back to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A required header (`webhook-id`, `webhook-timestamp`, `webhook-signature`, or its `svix-*`
    /// twin) is absent.
    #[error(
        "the {0} header is missing: is the request coming from a Standard Webhooks sender, and does a proxy strip headers?"
    )]
    MissingHeader(&'static str),

    /// A header is present but unusable (empty, too long, not visible ASCII).
    #[error(
        "the {name} header is malformed ({reason}): check what the sender or a proxy put there"
    )]
    InvalidHeader {
        /// Which header.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// `webhook-timestamp` is not an integer number of seconds.
    #[error(
        "the webhook-timestamp header is not an integer number of seconds since the Unix epoch"
    )]
    InvalidTimestamp,

    /// The signed timestamp is older than the tolerance allows.
    #[error(
        "the webhook-timestamp is {age_secs} s in the past, beyond the {tolerance_secs} s tolerance: a replayed request, or this server's clock is wrong"
    )]
    TimestampTooOld {
        /// How far in the past, in seconds (saturating).
        age_secs: u64,
        /// The configured tolerance in seconds.
        tolerance_secs: u64,
    },

    /// The signed timestamp is further in the future than the tolerance allows.
    #[error(
        "the webhook-timestamp is {ahead_secs} s in the future, beyond the {tolerance_secs} s tolerance: this server's clock is probably behind"
    )]
    TimestampTooNew {
        /// How far in the future, in seconds (saturating).
        ahead_secs: u64,
        /// The configured tolerance in seconds.
        tolerance_secs: u64,
    },

    /// No signature in `webhook-signature` matches any configured secret or key.
    #[error(
        "no signature matches ({candidates} usable of {entries} entries): is this the signing secret of this endpoint, and did the framework re-serialise the body?"
    )]
    SignatureMismatch {
        /// How many entries the header had (up to the examined maximum).
        entries: usize,
        /// How many of them were well-formed signatures of a supported version.
        candidates: usize,
    },

    /// The body is larger than the configured limit.
    #[error(
        "the body is larger than the {limit} byte limit: raise the limit if AgentSync payloads really are this large"
    )]
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },

    /// The body could not be read (the client went away, or the transport failed).
    #[error("the request body could not be read: {0}")]
    BodyRead(String),

    /// The authenticated body is not a JSON envelope with a `type`.
    #[error(
        "the body is not a JSON webhook envelope with a \"type\" ({detail}): did something other than the webhook sender call this endpoint?"
    )]
    InvalidPayload {
        /// The parser's description (line, column, what was expected).
        detail: String,
    },

    /// A known event type whose `data` lacks or misstates a documented field.
    #[error(
        "the data of {event_type} does not match its documented schema at `{path}` ({detail}): replay the delivery once the schema is fixed"
    )]
    InvalidEventData {
        /// The event type, as sent.
        event_type: String,
        /// The serde path of the offending field, e.g. `runDate`.
        path: String,
        /// The parser's description.
        detail: String,
    },

    /// This webhook id was already processed successfully.
    #[error("this webhook id was already processed")]
    Duplicate,

    /// This webhook id is being processed right now by another request.
    #[error(
        "this webhook id is being processed by another request: retry after {retry_after_secs} s"
    )]
    InFlight {
        /// Seconds the sender should wait before retrying.
        retry_after_secs: u64,
    },

    /// The idempotency store could not be reached, so the delivery was not processed.
    #[error("the idempotency store is unavailable ({detail}): retry after {retry_after_secs} s")]
    StoreUnavailable {
        /// What the store said.
        detail: String,
        /// Seconds the sender should wait before retrying.
        retry_after_secs: u64,
    },
}

impl WebhookError {
    /// A stable, machine-readable code, used in error bodies and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::InvalidHeader { .. } => "invalid_header",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::TimestampTooOld { .. } => "timestamp_too_old",
            Self::TimestampTooNew { .. } => "timestamp_too_new",
            Self::SignatureMismatch { .. } => "signature_mismatch",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyRead(_) => "body_read_failed",
            Self::InvalidPayload { .. } => "invalid_payload",
            Self::InvalidEventData { .. } => "invalid_event_data",
            Self::Duplicate => "duplicate",
            Self::InFlight { .. } => "in_flight",
            Self::StoreUnavailable { .. } => "store_unavailable",
        }
    }

    /// The HTTP status every adapter answers with. Never 410, which makes Standard Webhooks
    /// senders disable the endpoint.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingHeader(_)
            | Self::InvalidHeader { .. }
            | Self::InvalidTimestamp
            | Self::BodyRead(_)
            | Self::InvalidPayload { .. }
            | Self::InvalidEventData { .. } => 400,
            Self::TimestampTooOld { .. }
            | Self::TimestampTooNew { .. }
            | Self::SignatureMismatch { .. } => 401,
            Self::PayloadTooLarge { .. } => 413,
            Self::Duplicate => 200,
            Self::InFlight { .. } => 409,
            Self::StoreUnavailable { .. } => 503,
        }
    }

    /// Seconds for a `Retry-After` header, where the answer asks the sender to come back.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::InFlight { retry_after_secs }
            | Self::StoreUnavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// [`rejection`](Self::rejection) with the request's `webhook-id` (or `svix-id`) for the log
    /// line, when the headers hold a usable one: what adapters call.
    pub fn rejection_for(&self, headers: &(impl crate::HeaderLookup + ?Sized)) -> Rejection {
        self.rejection(crate::headers::id_for_log(headers))
    }

    /// The response every adapter sends for this error, after logging it once.
    ///
    /// `webhook_id` is the delivery's id when the headers held one; it goes into the log line so
    /// that an operator can find the attempt in the sender's portal.
    pub fn rejection(&self, webhook_id: Option<&str>) -> Rejection {
        let code = self.code();
        let status = self.status();
        match status {
            200 => tracing::info!(code, webhook_id, "duplicate webhook delivery acknowledged"),
            500.. => {
                tracing::error!(code, webhook_id, status, error = %self, "webhook delivery refused")
            }
            _ => {
                tracing::warn!(code, webhook_id, status, error = %self, "webhook delivery refused")
            }
        }
        let body = if status == 200 {
            Vec::new()
        } else {
            serde_json::to_vec(&ErrorBody::new(code, self.to_string())).unwrap_or_default()
        };
        Rejection {
            status,
            body,
            retry_after: self.retry_after(),
        }
    }
}

/// The JSON body of every rejection: `{"error": "<code>", "message": "<sentence>"}`.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    /// The stable code, [`WebhookError::code`].
    pub error: &'a str,
    /// A sentence with the likely cause.
    #[serde(borrow)]
    pub message: std::borrow::Cow<'a, str>,
}

impl<'a> ErrorBody<'a> {
    fn new(error: &'a str, message: String) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }
}

/// A framework-neutral answer to a refused delivery; adapters copy it into their response type.
#[derive(Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status code.
    pub status: u16,
    /// The JSON body (`application/json`), or empty for an acknowledged duplicate.
    pub body: Vec<u8>,
    /// Seconds for a `Retry-After` header, if any.
    pub retry_after: Option<u64>,
}

impl Rejection {
    /// The `Content-Type` of [`body`](Self::body), if it has one.
    pub fn content_type(&self) -> Option<&'static str> {
        (!self.body.is_empty()).then_some("application/json")
    }

    /// A 500 for a misconfigured service (for example an extractor used with neither the layer
    /// nor a verifier), naming the fix.
    pub fn misconfigured(message: &str) -> Self {
        tracing::error!(code = "misconfigured", "{message}");
        let body = serde_json::to_vec(&ErrorBody::new("misconfigured", message.to_owned()))
            .unwrap_or_default();
        Self {
            status: 500,
            body,
            retry_after: None,
        }
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("status", &self.status)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_body_is_small_json_with_code() {
        let r = WebhookError::SignatureMismatch {
            entries: 2,
            candidates: 1,
        }
        .rejection(Some("msg_1"));
        assert_eq!(r.status, 401);
        let body: ErrorBody<'_> = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body.error, "signature_mismatch");
        assert!(body.message.contains("signing secret"));
        assert_eq!(r.content_type(), Some("application/json"));
    }

    #[test]
    fn duplicate_is_an_empty_200() {
        let r = WebhookError::Duplicate.rejection(None);
        assert_eq!((r.status, r.body.len(), r.content_type()), (200, 0, None));
    }

    #[test]
    fn retry_after_only_where_the_sender_should_come_back() {
        assert_eq!(
            WebhookError::InFlight {
                retry_after_secs: 5
            }
            .rejection(None)
            .retry_after,
            Some(5)
        );
        let r = WebhookError::StoreUnavailable {
            detail: "down".into(),
            retry_after_secs: 30,
        }
        .rejection(None);
        assert_eq!((r.status, r.retry_after), (503, Some(30)));
        assert_eq!(WebhookError::InvalidTimestamp.retry_after(), None);
    }

    #[test]
    fn no_status_is_410() {
        let all = [
            WebhookError::MissingHeader("webhook-id"),
            WebhookError::InvalidHeader {
                name: "webhook-id",
                reason: "empty",
            },
            WebhookError::InvalidTimestamp,
            WebhookError::TimestampTooOld {
                age_secs: 1,
                tolerance_secs: 0,
            },
            WebhookError::TimestampTooNew {
                ahead_secs: 1,
                tolerance_secs: 0,
            },
            WebhookError::SignatureMismatch {
                entries: 0,
                candidates: 0,
            },
            WebhookError::PayloadTooLarge { limit: 1 },
            WebhookError::BodyRead("reset".into()),
            WebhookError::InvalidPayload {
                detail: "eof".into(),
            },
            WebhookError::InvalidEventData {
                event_type: "t".into(),
                path: "p".into(),
                detail: "d".into(),
            },
            WebhookError::Duplicate,
            WebhookError::InFlight {
                retry_after_secs: 1,
            },
            WebhookError::StoreUnavailable {
                detail: "x".into(),
                retry_after_secs: 1,
            },
        ];
        let mut codes: Vec<_> = all.iter().map(WebhookError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len(), "codes are distinct");
        assert!(all.iter().all(|e| e.status() != 410));
    }
}
