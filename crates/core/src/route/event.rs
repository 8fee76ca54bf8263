//! What a routed handler receives: the typed data and the delivery around it.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::{Delivery, EventGroup, EventType, event::TimestampSource};

/// One event as a handler receives it: `data` typed as `T`, plus what a handler needs to log,
/// de-duplicate downstream or re-read the delivery.
///
/// `T` is the handler's choice: a typed payload such as
/// [`UpdatesAvailable`](crate::UpdatesAvailable), [`EventData`](crate::EventData) (typed by
/// `type`), [`ObjectData`](crate::ObjectData), [`RawData`](crate::RawData) (the JSON as sent),
/// `serde_json::Value`, or any `Deserialize` type of your own.
///
/// Build one with [`Event::from_delivery`] to unit-test a handler without a router:
///
/// ```
/// use agentsync_webhooks_core::{Delivery, EventType, UpdatesAvailable, event::samples};
/// use agentsync_webhooks_core::route::Event;
///
/// let body = samples::example_body(EventType::ProducerSyncUpdatesAvailable, "whe_1", 1_700_000_000);
/// let delivery = Delivery::<UpdatesAvailable>::parse("msg_1", 1_700_000_000, body.into())?;
/// let event = Event::from_delivery(delivery).with_attempt(3);
/// assert_eq!(event.data.updated_since(), "2025-07-24");
/// assert_eq!((event.webhook_id.as_str(), event.id.as_str(), event.attempt), ("msg_1", "whe_1", 3));
/// assert_eq!(event.known_type(), Some(EventType::ProducerSyncUpdatesAvailable));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event<T> {
    /// The payload, typed as the handler asked.
    pub data: T,
    /// `webhook-id`: the same on every retry and replay of this message; the key to
    /// de-duplicate on downstream and to find the delivery in the sender's portal.
    pub webhook_id: String,
    /// The event id (`whe_...`), or the `webhook-id` when the envelope has none.
    pub id: String,
    /// The `type` as sent.
    pub event_type: String,
    /// When the event occurred (the envelope's `timestamp`), or the `webhook-timestamp` when
    /// the envelope has none ([`timestamp_source`](Self::timestamp_source) says which).
    pub timestamp: DateTime<Utc>,
    /// Where [`timestamp`](Self::timestamp) came from.
    pub timestamp_source: TimestampSource,
    /// The ordering key the router gave this event ([`EventRouter::ordered_by`]), if any: the
    /// entity it is about (an NPN). Workers never run two events of one key at once.
    ///
    /// [`EventRouter::ordered_by`]: super::EventRouter::ordered_by
    pub ordering_key: Option<String>,
    /// The event is older than the newest event of its key already processed. Only a handler
    /// that opted in with [`EventRouter::receive_stale`](super::EventRouter::receive_stale)
    /// ever sees `true`: the others' stale events are recorded as stale and not run.
    pub stale: bool,
    /// The signed `webhook-timestamp` of the stored attempt, in seconds since the Unix epoch.
    pub webhook_timestamp: i64,
    /// Which attempt this is: 1 inline and on a worker's first run, then 2, 3, ... on retries
    /// (a re-claim after a killed worker counts too).
    pub attempt: u32,
    /// When the receiver accepted the delivery, in milliseconds since the Unix epoch, for
    /// deliveries that went through a queue.
    pub received_at_ms: Option<i64>,
    /// The body exactly as received and verified (shared, not copied).
    pub raw_body: Bytes,
}

impl<T> Event<T> {
    /// The event of a parsed delivery, as attempt 1.
    ///
    /// ```
    /// use agentsync_webhooks_core::{Delivery, EventData, EventType, event::samples};
    /// use agentsync_webhooks_core::route::Event;
    ///
    /// let body = samples::example_body(EventType::ContractUpdated, "whe_2", 1_700_000_000);
    /// let delivery = Delivery::<EventData>::parse("msg_2", 1_700_000_000, body.into())?;
    /// assert_eq!(Event::from_delivery(delivery).attempt, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_delivery(delivery: Delivery<T>) -> Self {
        let Delivery {
            event,
            webhook_id,
            webhook_timestamp,
            raw_body,
        } = delivery;
        Self {
            data: event.data,
            webhook_id,
            id: event.id,
            event_type: event.event_type,
            timestamp: event.timestamp,
            timestamp_source: event.timestamp_source,
            ordering_key: None,
            stale: false,
            webhook_timestamp,
            attempt: 1,
            received_at_ms: None,
            raw_body,
        }
    }

    /// The same event as attempt `attempt`.
    ///
    /// ```
    /// # use agentsync_webhooks_core::{Delivery, EventData, EventType, event::samples};
    /// # use agentsync_webhooks_core::route::Event;
    /// # let body = samples::example_body(EventType::ContractUpdated, "whe_2", 1_700_000_000);
    /// # let delivery = Delivery::<EventData>::parse("msg_2", 1_700_000_000, body.into())?;
    /// let retried = Event::from_delivery(delivery).with_attempt(2);
    /// assert_eq!(retried.attempt, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The same event, accepted by a receiver at `received_at_ms` (milliseconds since the epoch).
    ///
    /// ```
    /// # use agentsync_webhooks_core::{Delivery, EventData, EventType, event::samples};
    /// # use agentsync_webhooks_core::route::Event;
    /// # let body = samples::example_body(EventType::ContractUpdated, "whe_2", 1_700_000_000);
    /// # let delivery = Delivery::<EventData>::parse("msg_2", 1_700_000_000, body.into())?;
    /// let event = Event::from_delivery(delivery).with_received_at_ms(1_700_000_000_250);
    /// assert_eq!(event.received_at_ms, Some(1_700_000_000_250));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_received_at_ms(mut self, received_at_ms: i64) -> Self {
        self.received_at_ms = Some(received_at_ms);
        self
    }

    /// How late the event arrived: received minus occurred, in milliseconds (negative when the
    /// sender's clock is ahead). Received is [`received_at_ms`](Self::received_at_ms) for a
    /// queued delivery and the attempt's `webhook-timestamp` inline (the verifier checked it
    /// is within its tolerance of this host's clock, so no clock is read per delivery). About
    /// zero when the `webhook-timestamp` stands in for a missing `timestamp`.
    ///
    /// ```
    /// # use agentsync_webhooks_core::{Delivery, EventData, EventType, event::samples};
    /// # use agentsync_webhooks_core::route::Event;
    /// let body = r#"{"type":"contract.updated","timestamp":"2023-11-14T22:13:20Z"}"#;
    /// let event = Event::from_delivery(Delivery::<EventData>::parse("msg_2", 1_700_000_000, body.into())?)
    ///     .with_received_at_ms(1_700_000_090_000);
    /// assert_eq!(event.delay_ms(), 90_000);
    /// assert_eq!(event.delay(), std::time::Duration::from_secs(90));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delay_ms(&self) -> i64 {
        let received = self
            .received_at_ms
            .unwrap_or_else(|| self.webhook_timestamp.saturating_mul(1000));
        received.saturating_sub(self.timestamp.timestamp_millis())
    }

    /// [`delay_ms`](Self::delay_ms) as a duration (zero when negative).
    pub fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(self.delay_ms()).unwrap_or(0))
    }

    /// The documented type, or `None` for a type this version does not know.
    ///
    /// ```
    /// # use agentsync_webhooks_core::{Delivery, EventData, EventType, event::samples};
    /// # use agentsync_webhooks_core::route::Event;
    /// # let body = samples::example_body(EventType::ContractUpdated, "whe_2", 1_700_000_000);
    /// # let event = Event::from_delivery(Delivery::<EventData>::parse("msg_2", 1_700_000_000, body.into())?);
    /// assert_eq!(event.known_type(), Some(EventType::ContractUpdated));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn known_type(&self) -> Option<EventType> {
        self.event_type.parse().ok()
    }

    /// The subscription group, for documented and future types alike.
    ///
    /// ```
    /// # use agentsync_webhooks_core::{Delivery, EventData, EventGroup, EventType, event::samples};
    /// # use agentsync_webhooks_core::route::Event;
    /// # let body = samples::example_body(EventType::ContractUpdated, "whe_2", 1_700_000_000);
    /// # let event = Event::from_delivery(Delivery::<EventData>::parse("msg_2", 1_700_000_000, body.into())?);
    /// assert_eq!(event.group(), Some(EventGroup::Contract));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group(&self) -> Option<EventGroup> {
        EventGroup::of(&self.event_type)
    }

    /// The same event with its data transformed, e.g. to hand a part of it to a helper.
    ///
    /// ```
    /// # use agentsync_webhooks_core::{Delivery, UpdatesAvailable, EventType, event::samples};
    /// # use agentsync_webhooks_core::route::Event;
    /// # let body = samples::example_body(EventType::ProducerSyncUpdatesAvailable, "whe_1", 1_700_000_000);
    /// # let event = Event::from_delivery(Delivery::<UpdatesAvailable>::parse("msg_1", 1_700_000_000, body.into())?);
    /// let since = event.map(|d| d.updated_since());
    /// assert_eq!(since.data, "2025-07-24");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Event<U> {
        Event {
            data: f(self.data),
            webhook_id: self.webhook_id,
            id: self.id,
            event_type: self.event_type,
            timestamp: self.timestamp,
            timestamp_source: self.timestamp_source,
            ordering_key: self.ordering_key,
            stale: self.stale,
            webhook_timestamp: self.webhook_timestamp,
            attempt: self.attempt,
            received_at_ms: self.received_at_ms,
            raw_body: self.raw_body,
        }
    }
}
