//! A verified delivery: the typed event plus what a receipt log needs.

use bytes::Bytes;

use crate::{EventData, EventPayload, WebhookError, WebhookEvent, event};

/// A delivery whose signature and timestamp held, parsed into a [`WebhookEvent`].
///
/// Keeps the `webhook-id` (the idempotency key), the signed `webhook-timestamp` and the raw body
/// (shared, not copied) so that a receipt can be logged and the delivery replayed byte for byte.
#[derive(Debug, Clone)]
pub struct Delivery<D = EventData> {
    /// The parsed event.
    pub event: WebhookEvent<D>,
    /// `webhook-id`; the same on every retry of this message.
    pub webhook_id: String,
    /// `webhook-timestamp` of this attempt, in seconds since the Unix epoch.
    pub webhook_timestamp: i64,
    /// The body exactly as received and verified.
    pub raw_body: Bytes,
}

impl<D: EventPayload> Delivery<D> {
    /// Parses an already-verified body (phase one, the envelope; phase two, `data`).
    pub fn parse(
        webhook_id: &str,
        webhook_timestamp: i64,
        raw_body: Bytes,
    ) -> Result<Self, WebhookError> {
        let event = event::parse(&raw_body, webhook_id, webhook_timestamp)?;
        Ok(Self {
            event,
            webhook_id: webhook_id.to_owned(),
            webhook_timestamp,
            raw_body,
        })
    }
}

impl<D> Delivery<D> {
    /// The same delivery with `data` parsed as another type, e.g. your own schema.
    pub fn reparse<E: EventPayload>(&self) -> Result<Delivery<E>, WebhookError> {
        Delivery::parse(
            &self.webhook_id,
            self.webhook_timestamp,
            self.raw_body.clone(),
        )
    }

    /// The event, dropping the delivery metadata.
    pub fn into_event(self) -> WebhookEvent<D> {
        self.event
    }
}
