//! The `Webhook` extractor.

use agentsync_webhooks_core::{
    Delivery, EventData, EventPayload,
    adapter::{self, Rejection},
};
use agentsync_webhooks_tower::VerifiedDelivery;
use axum_core::extract::FromRequestParts;
use http::request::Parts;

use crate::WebhookRejection;

const MISCONFIGURED: &str = "the Webhook extractor found no delivery verified by WebhookLayer: \
add `.route_layer(WebhookLayer::new(verifier))` to the webhook routes";

/// A verified webhook delivery, as a handler argument; derefs to its
/// [`WebhookEvent`](agentsync_webhooks_core::WebhookEvent).
///
/// `D` is what `data` is parsed into: [`EventData`] (one variant per documented type, plus
/// `Unknown`) by default, or your own `Deserialize` type (`Webhook<MyData>`, parsed again from
/// the verified bytes).
///
/// It takes the delivery that [`WebhookLayer`](crate::WebhookLayer) verified, so the layer must
/// wrap the route: the layer is what reads the body within its limit and deadline, refuses
/// before any extractor runs, and reports the handler's status for idempotency. On a route
/// without the layer every request is answered `500` with a message naming the fix. It does not
/// read the body, so it may come anywhere among the handler's arguments (a `Bytes` argument gets
/// the same verified bytes).
///
/// ```
/// use agentsync_webhooks_axum::{Webhook, WebhookLayer};
/// use agentsync_webhooks_core::Verifier;
/// use axum::{Router, http::StatusCode, routing::post};
///
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct RunDate {
///     run_date: String,
/// }
///
/// async fn psapi(event: Webhook<RunDate>) -> StatusCode {
///     println!("{} from {}: pull updatedSince={}", event.event_type, event.webhook_id(), event.data.run_date);
///     StatusCode::NO_CONTENT
/// }
///
/// # fn app() -> Result<Router, Box<dyn std::error::Error>> {
/// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// let app: Router = Router::new()
///     .route("/webhooks/psapi", post(psapi))
///     .route_layer(WebhookLayer::new(verifier));
/// # Ok(app)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Webhook<D = EventData> {
    // Boxed as the port gave it: the handler's argument moves a pointer.
    delivery: Box<Delivery<D>>,
}

agentsync_webhooks_core::adapter::webhook_accessors!(Webhook);

impl<S, D> FromRequestParts<S> for Webhook<D>
where
    S: Send + Sync,
    D: EventPayload + Send + 'static,
{
    type Rejection = WebhookRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Taken, not cloned: the delivery is moved out when this is its only handle.
        let Some(verified) = parts.extensions.remove::<VerifiedDelivery>() else {
            return Err(Rejection::misconfigured(MISCONFIGURED).into());
        };
        adapter::into_payload(Box::new(verified.into_delivery()))
            .map(|delivery| Self { delivery })
            .map_err(Into::into)
    }
}
