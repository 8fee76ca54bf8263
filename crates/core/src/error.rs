//! Why a delivery was refused, and what every adapter answers for it.

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

    /// The body did not fully arrive within the body-read deadline (a slow or stalled client).
    #[error(
        "the request body did not fully arrive within {timeout_ms} ms: a slow or stalled client, or a proxy that buffers badly"
    )]
    BodyReadTimeout {
        /// The configured deadline in milliseconds.
        timeout_ms: u64,
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

    /// The idempotency store or the handoff's queue could not be reached, so the delivery was
    /// neither processed nor stored.
    #[error(
        "the idempotency store or queue is unavailable ({detail}): retry after {retry_after_secs} s"
    )]
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
            Self::BodyReadTimeout { .. } => "body_read_timeout",
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
            Self::BodyReadTimeout { .. } => 408,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
            WebhookError::BodyReadTimeout { timeout_ms: 1 },
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
