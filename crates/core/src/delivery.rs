//! A verified delivery: the typed event plus what a receipt log needs.

use std::any::{Any, TypeId};

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

impl Delivery<EventData> {
    /// This delivery with `data` as `D`, for adapters that verified with [`EventData`] and hand a
    /// handler its own type: the delivery itself, moved, when `D` is `EventData`; otherwise
    /// `data` parsed again from the raw body.
    pub fn into_payload<D: EventPayload + 'static>(self) -> Result<Delivery<D>, WebhookError> {
        self.try_into_payload().map_err(|(error, _)| error)
    }

    /// [`into_payload`](Self::into_payload), giving back the delivery's id (moved, not
    /// copied) with the error.
    pub(crate) fn try_into_payload<D: EventPayload + 'static>(
        self,
    ) -> Result<Delivery<D>, (WebhookError, Option<String>)> {
        let mut slot = Some(self);
        if let Some(same) = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<Delivery<D>>>()
            .and_then(Option::take)
        {
            return Ok(same);
        }
        // `D` is another type, so the slot still holds the delivery.
        match slot {
            Some(delivery) => delivery
                .reparse()
                .map_err(|error| (error, Some(delivery.webhook_id))),
            None => Err((
                WebhookError::BodyRead("the delivery was already taken".into()),
                None,
            )),
        }
    }

    /// [`into_payload`](Self::into_payload) for a shared delivery: a clone when `D` is
    /// `EventData`, a re-parse otherwise (never both).
    pub fn to_payload<D: EventPayload + 'static>(&self) -> Result<Delivery<D>, WebhookError> {
        if TypeId::of::<D>() == TypeId::of::<EventData>() {
            self.clone().into_payload()
        } else {
            self.reparse()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, UpdatesAvailable, event::samples};

    fn delivery() -> Delivery {
        let body = samples::example_body(
            EventType::ProducerSyncUpdatesAvailable,
            "whe_1",
            1_700_000_000,
        );
        Delivery::parse("msg_1", 1_700_000_000, body.into()).unwrap()
    }

    #[test]
    fn same_type_is_moved_other_types_reparsed() {
        let original = delivery();
        let same = original.clone().into_payload::<EventData>().unwrap();
        assert_eq!(same.event, original.event);
        let typed = original.to_payload::<UpdatesAvailable>().unwrap();
        assert_eq!(typed.event.data.updated_since(), "2025-07-24");
        assert_eq!(typed.webhook_id, "msg_1");
        assert_eq!(
            original.to_payload::<EventData>().unwrap().event,
            original.event
        );
        assert_eq!(
            original
                .into_payload::<serde_json::Value>()
                .unwrap()
                .event
                .data["runDate"],
            "2025-07-24"
        );
    }
}
