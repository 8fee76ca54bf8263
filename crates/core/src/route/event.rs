//! What a routed handler receives: the typed data and the delivery around it.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::{Delivery, EventGroup, EventType};

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
    /// When the event was generated, or the `webhook-timestamp` when the envelope has none.
    pub timestamp: DateTime<Utc>,
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
            webhook_timestamp: self.webhook_timestamp,
            attempt: self.attempt,
            received_at_ms: self.received_at_ms,
            raw_body: self.raw_body,
        }
    }
}
