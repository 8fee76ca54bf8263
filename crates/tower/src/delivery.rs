//! The verified delivery, as the layer hands it to the inner service.

use std::{ops::Deref, sync::Arc};

use agentsync_webhooks_core::{Delivery, EventData};

/// A delivery that passed verification, found in the request extensions behind
/// [`WebhookLayer`](crate::WebhookLayer).
///
/// Shared (`Arc`), so cloning it or the request's extensions costs nothing; derefs to the
/// [`Delivery`] (the typed event, `webhook-id`, `webhook-timestamp`, raw body).
///
/// ```
/// use agentsync_webhooks_core::{Delivery, EventData};
/// use agentsync_webhooks_tower::VerifiedDelivery;
///
/// fn handle(request: &http::Request<http_body_util::Full<bytes::Bytes>>) {
///     if let Some(delivery) = request.extensions().get::<VerifiedDelivery>() {
///         println!("{} {}", delivery.webhook_id, delivery.event.event_type);
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedDelivery(Arc<Delivery<EventData>>);

impl VerifiedDelivery {
    /// Wraps a verified delivery (the layer does this; tests of inner services may too).
    pub fn new(delivery: Delivery<EventData>) -> Self {
        Self(Arc::new(delivery))
    }

    /// The delivery.
    pub fn delivery(&self) -> &Delivery<EventData> {
        &self.0
    }

    /// The shared delivery.
    pub fn into_arc(self) -> Arc<Delivery<EventData>> {
        self.0
    }

    /// The delivery itself: moved out when this is its only handle, cloned otherwise.
    pub fn into_delivery(self) -> Delivery<EventData> {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
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
