//! The verified delivery, as the layer hands it to the inner service.

use std::ops::Deref;

use agentsync_webhooks_core::{Delivery, EventData};

/// A delivery that passed verification, found in the request extensions behind
/// [`WebhookLayer`](crate::WebhookLayer); derefs to the [`Delivery`] (the typed event,
/// `webhook-id`, `webhook-timestamp`, raw body).
///
/// Held by value, not behind an `Arc`: the request's extensions already box it, and the usual
/// reader (an extractor) takes it out rather than sharing it.
///
/// ```
/// use agentsync_webhooks_tower::VerifiedDelivery;
///
/// fn handle(request: &http::Request<http_body_util::Full<bytes::Bytes>>) {
///     if let Some(delivery) = request.extensions().get::<VerifiedDelivery>() {
///         println!("{} {}", delivery.webhook_id, delivery.event.event_type);
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedDelivery(Delivery<EventData>);

impl VerifiedDelivery {
    /// Wraps a verified delivery (the layer does this; tests of inner services may too).
    pub fn new(delivery: Delivery<EventData>) -> Self {
        Self(delivery)
    }

    /// The delivery.
    pub fn delivery(&self) -> &Delivery<EventData> {
        &self.0
    }

    /// The delivery itself.
    pub fn into_delivery(self) -> Delivery<EventData> {
        self.0
    }
}

impl Deref for VerifiedDelivery {
    type Target = Delivery<EventData>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<Delivery<EventData>> for VerifiedDelivery {
    fn from(delivery: Delivery<EventData>) -> Self {
        Self::new(delivery)
    }
}
