//! A stream entry's fields, read back into a delivery (and a dead letter's extras).

use agentsync_webhooks_core::{
    handoff::ReceivedDelivery,
    idempotency::{StoreError, StoreErrorKind},
};
use bytes::Bytes;

use crate::backend::{DeadLetter, attempt_count};

/// The fields of a stream entry, read back.
pub(super) struct Fields {
    pub(super) delivery: ReceivedDelivery,
    pub(super) attempts: i64,
    /// A keyed delivery's ordering key and occurred-at (ms).
    pub(super) order: Option<(String, i64)>,
    error: String,
    died_at_ms: i64,
}

impl Fields {
    pub(super) fn parse(raw: Vec<Vec<u8>>) -> Result<Self, StoreError> {
        let mut webhook_id = None;
        let mut event_type = None;
        let mut webhook_timestamp = None;
        let mut signature = None;
        let mut received_at_ms = None;
        let mut body = None;
        let mut attempts = 0;
        let mut error = String::new();
        let mut died_at_ms = 0;
        let mut key = None;
        let mut occurred_at_ms = None;
        let mut raw = raw.into_iter();
        while let (Some(name), Some(value)) = (raw.next(), raw.next()) {
            match name.as_slice() {
                b"id" => webhook_id = Some(text(value)?),
                b"type" => event_type = Some(text(value)?),
                b"ts" => webhook_timestamp = Some(number(&value)?),
                b"sig" => signature = Some(text(value)?),
                b"recv" => received_at_ms = Some(number(&value)?),
                b"body" => body = Some(Bytes::from(value)),
                b"a" => attempts = number(&value)?,
                b"err" => error = text(value)?,
                b"died" => died_at_ms = number(&value)?,
                b"ok" => key = Some(text(value)?),
                b"oat" => occurred_at_ms = Some(number(&value)?),
                _ => {}
            }
        }
        match (
            webhook_id,
            event_type,
            webhook_timestamp,
            signature,
            received_at_ms,
            body,
        ) {
            (
                Some(webhook_id),
                Some(event_type),
                Some(webhook_timestamp),
                Some(signature),
                Some(received_at_ms),
                Some(body),
            ) => Ok(Self {
                delivery: ReceivedDelivery {
                    webhook_id,
                    event_type,
                    webhook_timestamp,
                    signature,
                    received_at_ms,
                    body,
                },
                attempts,
                order: key.zip(occurred_at_ms),
                error,
                died_at_ms,
            }),
            _ => Err(malformed("a queue entry lacks a field")),
        }
    }

    pub(super) fn into_dead_letter(self) -> DeadLetter {
        DeadLetter {
            delivery: self.delivery,
            attempts: attempt_count(self.attempts),
            last_error: self.error,
            died_at_ms: self.died_at_ms,
        }
    }
}

fn text(value: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(value)
        .map_err(|_| malformed("a queue entry has a text field that is not UTF-8"))
}

fn number(value: &[u8]) -> Result<i64, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| malformed("a queue entry has a number field that is not a number"))
}

fn malformed(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Other, message)
}
