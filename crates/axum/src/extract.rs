//! The `Webhook` extractor.

use std::{any::Any, ops::Deref};

use agentsync_webhooks_core::{
    Accepted, Delivery, EventData, EventPayload, Receiver, Rejection, Verifier, WebhookEvent,
};
use agentsync_webhooks_tower::{VerifiedDelivery, collect_body, content_length};
use axum_core::extract::{FromRef, FromRequest, Request};
use bytes::Bytes;

use crate::WebhookRejection;

const MISCONFIGURED: &str = "the Webhook extractor found neither a verified delivery nor a verifier: \
add `.route_layer(WebhookLayer::new(verifier))` to the webhook routes, \
or give the router the verifier as its state with `.with_state(verifier)`";

/// A verified webhook delivery, as a handler argument; derefs to its [`WebhookEvent`].
///
/// `D` is what `data` is parsed into: [`EventData`] (one variant per documented type, plus
/// `Unknown`) by default, or your own `Deserialize` type (`Webhook<MyData>`).
///
/// It reads the body, so it comes last among the handler's arguments. Two ways to use it:
///
/// - **Behind [`WebhookLayer`](crate::WebhookLayer)** (recommended): the layer has verified the
///   delivery already; the extractor takes it from the request extensions (and re-parses `data`
///   for a type other than `EventData`). The layer reports the handler's status to the receiver,
///   so idempotency covers the handler.
/// - **Alone**, with the router's state being a [`Verifier`] or a [`Receiver`]
///   (`Router::new().route(..).with_state(verifier)`): the extractor collects the body within
///   the limit and verifies it itself. Nothing wraps the handler in this mode, so the receiver
///   never learns its status: deliveries are verified but not de-duplicated. A `Receiver` with
///   idempotency still claims each id (a store failure is answered 503), but releases it as soon
///   as the extractor returns, so the sender's retries run the handler again. Use
///   [`WebhookLayer::with_idempotency`](crate::WebhookLayer::with_idempotency) when you need
///   idempotency. When the router's state is your own type, use [`WebhookFromState`], which
///   takes the receiver from it through `FromRef`.
///
/// With neither, every request is answered `500` with a message naming both fixes.
///
/// ```
/// use agentsync_webhooks_axum::Webhook;
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
/// let app: Router = Router::new().route("/webhooks/psapi", post(psapi)).with_state(verifier);
/// # Ok(app)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Webhook<D = EventData> {
    delivery: Delivery<D>,
}

impl<D> Webhook<D> {
    /// The whole delivery: event, `webhook-id`, `webhook-timestamp`, raw body.
    pub fn delivery(&self) -> &Delivery<D> {
        &self.delivery
    }

    /// `webhook-id`: the same on every retry of this message (the idempotency key).
    pub fn webhook_id(&self) -> &str {
        &self.delivery.webhook_id
    }

    /// The body exactly as received and verified.
    pub fn raw_body(&self) -> &Bytes {
        &self.delivery.raw_body
    }

    /// The event, e.g. to move it into a background task.
    pub fn into_event(self) -> WebhookEvent<D> {
        self.delivery.event
    }

    /// The delivery.
    pub fn into_delivery(self) -> Delivery<D> {
        self.delivery
    }
}

impl<D> Deref for Webhook<D> {
    type Target = WebhookEvent<D>;

    fn deref(&self) -> &Self::Target {
        &self.delivery.event
    }
}

impl<S, D> FromRequest<S> for Webhook<D>
where
    S: Send + Sync + 'static,
    D: EventPayload + Send + 'static,
{
    type Rejection = WebhookRejection;

    async fn from_request(mut request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Taken, not cloned: the body extractor runs last, so nothing else needs it after us.
        if let Some(verified) = request.extensions_mut().remove::<VerifiedDelivery>() {
            return verified
                .into_delivery()
                .into_payload()
                .map(|delivery| Self { delivery })
                .map_err(|error| WebhookRejection::new(&error, request.headers()));
        }
        let Some(receiver) = receiver_from_state(state) else {
            return Err(Rejection::misconfigured(MISCONFIGURED).into());
        };
        verify_alone(&receiver, request)
            .await
            .map(|delivery| Self { delivery })
    }
}

/// A verified webhook delivery for routers whose state is your own type: the extractor verifies
/// by itself with the [`Receiver`] that the state provides through [`FromRef`], and a state that
/// provides none is a compile error. Derefs to [`Webhook`].
///
/// As with [`Webhook`] used alone, nothing wraps the handler, so deliveries are verified but not
/// de-duplicated; [`WebhookLayer`](crate::WebhookLayer) is the setup that covers idempotency.
///
/// ```
/// use agentsync_webhooks_axum::WebhookFromState;
/// use agentsync_webhooks_core::{Receiver, Verifier};
/// use axum::{Router, extract::FromRef, http::StatusCode, routing::post};
///
/// #[derive(Clone)]
/// struct AppState {
///     receiver: Receiver,
///     database_url: String,
/// }
///
/// // Or `#[derive(FromRef)]` on `AppState`, with axum's `macros` feature.
/// impl FromRef<AppState> for Receiver {
///     fn from_ref(state: &AppState) -> Self {
///         state.receiver.clone()
///     }
/// }
///
/// async fn psapi(event: WebhookFromState) -> StatusCode {
///     println!("{} {}", event.webhook_id(), event.event_type);
///     StatusCode::NO_CONTENT
/// }
///
/// # fn app() -> Result<Router, Box<dyn std::error::Error>> {
/// let receiver = Receiver::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?);
/// let state = AppState { receiver, database_url: "postgres://localhost/app".into() };
/// let app: Router = Router::new().route("/webhooks/psapi", post(psapi)).with_state(state);
/// # Ok(app)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct WebhookFromState<D = EventData>(pub Webhook<D>);

impl<D> Deref for WebhookFromState<D> {
    type Target = Webhook<D>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S, D> FromRequest<S> for WebhookFromState<D>
where
    Receiver: FromRef<S>,
    S: Send + Sync,
    D: EventPayload + Send + 'static,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        verify_alone(&Receiver::from_ref(state), request)
            .await
            .map(|delivery| Self(Webhook { delivery }))
    }
}

/// Extractor-only mode: collect the body within the limit, verify, parse.
async fn verify_alone<D: EventPayload>(
    receiver: &Receiver,
    request: Request,
) -> Result<Delivery<D>, WebhookRejection> {
    let (parts, body) = request.into_parts();
    let accepted = async {
        let collector = receiver.collector(content_length(&parts.headers, &body))?;
        let body = collect_body(collector, body).await?;
        receiver.accept::<D>(&parts.headers, body).await
    };
    match accepted.await {
        Ok(Accepted {
            delivery,
            completion,
        }) => {
            // Nothing wraps the handler here, so its status cannot be reported; releasing at
            // once keeps the sender's retries processable (at-least-once).
            drop(completion);
            Ok(delivery)
        }
        Err(error) => Err(WebhookRejection::new(&error, &parts.headers)),
    }
}

/// The receiver of extractor-only mode: the router's state, when it is one (or a verifier).
fn receiver_from_state<S: 'static>(state: &S) -> Option<Receiver> {
    let state = state as &dyn Any;
    state.downcast_ref::<Receiver>().cloned().or_else(|| {
        state
            .downcast_ref::<Verifier>()
            .map(|verifier| Receiver::new(verifier.clone()))
    })
}
