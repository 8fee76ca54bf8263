//! The seam between the receive port and a durable queue: what is written before a 2xx.
//!
//! With a handoff, the port answers a verified delivery only once [`Handoff::enqueue`] says the
//! delivery is stored (or was stored before: a duplicate). A store that cannot be written is
//! answered 503 with `Retry-After`, never 2xx, so the sender retries it. The de-duplication of a
//! `webhook-id` and its enqueue are one atomic step inside the store, which is why this seam
//! replaces the idempotency claim rather than following it.
//!
//! The queue engines (SQLite, Redis Streams, PostgreSQL), the workers and the dead letters live in
//! `agentsync-webhooks-queue`; this module is only what the port needs to call them.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::idempotency::StoreFuture;

/// A verified delivery as it is written to a queue: everything needed to process it later and to
/// verify and replay it byte for byte.
///
/// ```
/// use agentsync_webhooks_core::handoff::ReceivedDelivery;
///
/// let received = ReceivedDelivery {
///     webhook_id: "msg_1".into(),
///     event_type: "producersync.updates_available".into(),
///     webhook_timestamp: 1_700_000_000,
///     signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
///     received_at_ms: 1_700_000_000_123,
///     body: bytes::Bytes::from_static(br#"{"type":"producersync.updates_available"}"#),
/// };
/// assert_eq!(received.received_at_secs(), 1_700_000_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedDelivery {
    /// `webhook-id`: the queue's de-duplication key.
    pub webhook_id: String,
    /// The envelope's `type`, as sent (known or not).
    pub event_type: String,
    /// The signed `webhook-timestamp` of the attempt that was stored, in seconds.
    pub webhook_timestamp: i64,
    /// The `webhook-signature` header as received, so that the stored body can be verified again.
    pub signature: String,
    /// When the port accepted it, in milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The body exactly as received and verified.
    pub body: Bytes,
}

impl ReceivedDelivery {
    /// When the port accepted it, in whole seconds since the Unix epoch.
    pub fn received_at_secs(&self) -> i64 {
        self.received_at_ms.div_euclid(1000)
    }

    /// The headers that verify this delivery again: `webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`, as they were received.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (crate::headers::WEBHOOK_ID, self.webhook_id.clone()),
            (
                crate::headers::WEBHOOK_TIMESTAMP,
                self.webhook_timestamp.to_string(),
            ),
            (crate::headers::WEBHOOK_SIGNATURE, self.signature.clone()),
        ]
    }
}

/// Milliseconds since the Unix epoch now, as stored in [`ReceivedDelivery::received_at_ms`].
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What an [`enqueue`](Handoff::enqueue) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// The delivery is stored durably and will be processed by a worker.
    New,
    /// A delivery with this `webhook-id` is already stored (queued, running, done or dead): the
    /// port answers 200 with an empty body and stores nothing.
    Duplicate,
}

/// A durable queue the port writes verified deliveries to before answering 2xx.
///
/// `enqueue` must return only once the write holds (the engine acknowledged it in its durable
/// setting), and must de-duplicate by `webhook-id` in the same atomic step as the write.
pub trait Handoff: Send + Sync + 'static {
    /// Stores `delivery` unless its `webhook-id` is already known.
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> StoreFuture<'a, Enqueued>;
}

impl<T: Handoff + ?Sized> Handoff for std::sync::Arc<T> {
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> StoreFuture<'a, Enqueued> {
        (**self).enqueue(delivery)
    }
}
