//! AgentSync events: the envelope, the documented types, their typed payloads and examples.

mod data;
mod raw;
pub mod samples;
mod time;
mod types;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use self::{
    data::{EventData, EventPayload, NpnActivated, NpnDeactivated, ObjectData, UpdatesAvailable},
    raw::RawData,
    types::{EventGroup, EventType, UnknownEventType},
};
use crate::WebhookError;

/// A verified AgentSync event: the envelope `{id, type, timestamp, data}` with `data` typed as
/// `D` ([`EventData`] unless you ask for your own type).
///
/// ```
/// use agentsync_webhooks_core::{EventData, WebhookEvent};
///
/// fn handle(event: WebhookEvent) {
///     match event.data {
///         EventData::ProducerSyncUpdatesAvailable(d) => println!("pull updatedSince={}", d.updated_since()),
///         EventData::ProducerSyncNpnActivated(d) => println!("start monitoring {}", d.npn),
///         EventData::Unknown { event_type, .. } => println!("ignoring {event_type}"),
///         other => println!("{:?}", other.event_type()),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent<D = EventData> {
    /// The event id (`whe_...`), or the `webhook-id` when the envelope has none.
    pub id: String,
    /// The `type` as sent.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event was generated, or the `webhook-timestamp` when the envelope has none
    /// ([`timestamp_source`](Self::timestamp_source) says which).
    pub timestamp: DateTime<Utc>,
    /// Where [`timestamp`](Self::timestamp) came from: the envelope, or the attempt's
    /// `webhook-timestamp` standing in for it.
    #[serde(skip)]
    pub timestamp_source: TimestampSource,
    /// The payload.
    pub data: D,
}

/// Where an event's occurred-at time came from.
///
/// AgentSync notes that `timestamp` is not in every schema: without it, the attempt's signed
/// `webhook-timestamp` stands in. That is when this attempt was sent, not when the event
/// occurred, so a delay measured from it is about zero, and a late retry looks new: the delay
/// histogram does not count such events, and logs and spans mark them
/// (`webhook.occurred_at_source = "webhook-timestamp"`).
///
/// ```
/// use agentsync_webhooks_core::{Delivery, EventData, event::TimestampSource};
///
/// let body = r#"{"type":"contract.updated","timestamp":"2025-07-24T22:51:05Z","data":{}}"#;
/// let event = Delivery::<EventData>::parse("msg_1", 1_753_397_465, body.into())?.event;
/// assert_eq!(event.timestamp_source, TimestampSource::Envelope);
///
/// let bare = Delivery::<EventData>::parse("msg_2", 1_753_397_465, r#"{"type":"contract.updated"}"#.into())?.event;
/// assert_eq!(bare.timestamp_source, TimestampSource::WebhookTimestamp);
/// assert_eq!(bare.timestamp.timestamp(), 1_753_397_465);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TimestampSource {
    /// The envelope's own `timestamp`: when the event occurred.
    #[default]
    Envelope,
    /// The attempt's `webhook-timestamp`, standing in for a missing `timestamp`.
    WebhookTimestamp,
}

impl TimestampSource {
    /// `envelope` or `webhook-timestamp`, as logs and spans show it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Envelope => "envelope",
            Self::WebhookTimestamp => "webhook-timestamp",
        }
    }
}

impl<D> WebhookEvent<D> {
    /// The documented type, or `None` for a type this version does not know.
    pub fn known_type(&self) -> Option<EventType> {
        self.event_type.parse().ok()
    }

    /// The subscription group, for documented and future types alike.
    pub fn group(&self) -> Option<EventGroup> {
        EventGroup::of(&self.event_type)
    }
}

/// The envelope as sent: only `type` is required (liberal in shape, per the design notes).
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(default, deserialize_with = "time::optional_instant")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// Phase one, the envelope; phase two, `data` by its `type`. `webhook_id` and `webhook_timestamp`
/// stand in for a missing `id` and `timestamp`.
pub(crate) fn parse<D: EventPayload>(
    body: &[u8],
    webhook_id: &str,
    webhook_timestamp: i64,
) -> Result<WebhookEvent<D>, WebhookError> {
    let invalid = |detail: String| WebhookError::InvalidPayload { detail };
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("not a JSON object".into()));
    }
    let envelope: RawEnvelope<'_> =
        serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    let (timestamp, timestamp_source) = match envelope.timestamp {
        Some(t) => (t, TimestampSource::Envelope),
        None => (
            DateTime::from_timestamp(webhook_timestamp, 0).ok_or_else(|| {
                invalid("no timestamp, and webhook-timestamp is out of range".into())
            })?,
            TimestampSource::WebhookTimestamp,
        ),
    };
    let data = match envelope.data {
        Some(data) => data,
        // Parsed only when needed: it is a JSON parse, on every delivery otherwise.
        None => serde_json::from_str("{}").map_err(|e| invalid(e.to_string()))?,
    };
    let data = D::from_data(&envelope.event_type, data)?;
    Ok(WebhookEvent {
        id: envelope
            .id
            .map_or_else(|| webhook_id.to_owned(), Cow::into_owned),
        event_type: envelope.event_type.into_owned(),
        timestamp,
        timestamp_source,
        data,
    })
}

#[cfg(test)]
mod tests;
