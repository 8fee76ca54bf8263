//! The `Webhook` extractor: the middleware's delivery, or a verification of its own.

use std::{
    future::{Future, ready},
    ops::Deref,
    pin::Pin,
};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web, web::Bytes};
use agentsync_webhooks_core::{
    Accepted, Completion, Delivery, EventData, EventPayload, Receiver, Verifier, WebhookEvent,
};

use crate::{WebhookRejection, body};

/// A verified delivery, as a handler argument: `Webhook` for the typed [`EventData`], or
/// `Webhook<MyData>` to parse `data` as your own `Deserialize` type. Derefs to the
/// [`WebhookEvent`]; destructure `Webhook(delivery)` for the whole [`Delivery`].
///
/// Two ways to use it:
///
/// - **Behind [`WebhookMiddleware`](crate::WebhookMiddleware)** (recommended): it reads the
///   delivery the middleware stored (re-parsing `data` for a type other than `EventData`). The
///   middleware reports the handler's status to the receiver, so idempotency covers the handler,
///   and the body stays readable by other extractors.
/// - **Alone**, with a `web::Data<Receiver>`, `web::Data<Verifier>`, `Receiver` or `Verifier`
///   in the app data (the first found is used): it reads the body within the limit and verifies
///   it itself, parsing `data` as `D` directly. It consumes the body (read
///   [`raw_body`](Webhook::raw_body)), so a handler takes one `Webhook` in this mode (actix
///   builds all of a handler's extractors at once). Nothing wraps the handler, so the receiver
///   never learns its status: with a `Receiver` that has idempotency, the id is claimed (a store
///   failure is answered 503, a concurrent duplicate 409) but released when the request ends,
///   whatever the handler answered, so the sender's later retries are processed again
///   (verified, not de-duplicated). For idempotency, use
///   [`WebhookMiddleware::with_idempotency`](crate::WebhookMiddleware::with_idempotency).
///
/// With neither, every request is answered 500 with a message naming both fixes. A refused
/// request never reaches the handler: the [`WebhookRejection`] answers with the design table's
/// status and JSON body.
///
/// ```
/// use actix_web::{App, HttpResponse, test, web};
/// use agentsync_webhooks_actix::Webhook;
/// use agentsync_webhooks_core::{EventType, Signer, Verifier};
///
/// #[derive(serde::Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct RunDate {
///     run_date: String,
/// }
///
/// async fn psapi(event: Webhook<RunDate>) -> HttpResponse {
///     println!("{} from {}", event.event_type, event.webhook_id());
///     HttpResponse::Ok().body(event.into_event().data.run_date)
/// }
///
/// # actix_web::rt::System::new().block_on(async {
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// // No middleware: the extractor verifies with the verifier in the app data.
/// let app = test::init_service(
///     App::new()
///         .app_data(web::Data::new(Verifier::new(secret)?))
///         .route("/webhooks/psapi", web::post().to(psapi)),
/// )
/// .await;
///
/// let sent = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
/// let mut request = test::TestRequest::post().uri("/webhooks/psapi");
/// for header in sent.headers.to_pairs() {
///     request = request.insert_header(header);
/// }
/// let body = test::call_and_read_body(&app, request.set_payload(sent.body).to_request()).await;
/// assert_eq!(body, "2025-07-24");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Webhook<D = EventData>(pub Delivery<D>);

impl<D> Webhook<D> {
    /// The whole delivery: event, `webhook-id`, `webhook-timestamp`, raw body.
    pub fn delivery(&self) -> &Delivery<D> {
        &self.0
    }

    /// `webhook-id`: the same on every retry of this message (the idempotency key).
    pub fn webhook_id(&self) -> &str {
        &self.0.webhook_id
    }

    /// The body exactly as received and verified.
    pub fn raw_body(&self) -> &Bytes {
        &self.0.raw_body
    }

    /// The event, e.g. to move it into a background task.
    pub fn into_event(self) -> WebhookEvent<D> {
        self.0.event
    }

    /// The delivery.
    pub fn into_delivery(self) -> Delivery<D> {
        self.0
    }
}

/// Derefs to the event, so `webhook.event_type` and `webhook.data` read directly.
impl<D> Deref for Webhook<D> {
    type Target = WebhookEvent<D>;

    fn deref(&self) -> &WebhookEvent<D> {
        &self.0.event
    }
}

/// A standalone verification's completion, kept in the request extensions so that it lives
/// until the request ends (nothing after the handler can finish it without the middleware).
struct PendingCompletion {
    _completion: Completion,
}

const MISCONFIGURED: &str = "the Webhook extractor found neither a delivery verified by \
    WebhookMiddleware nor a verifier: wrap the route in WebhookMiddleware::new(verifier), or \
    register one with App::app_data(web::Data::new(verifier))";

impl<D: EventPayload + 'static> FromRequest for Webhook<D> {
    type Error = WebhookRejection;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if let Some(stored) = req.extensions().get::<Delivery>() {
            let webhook = stored
                .to_payload()
                .map(Webhook)
                .map_err(|e| WebhookRejection::new(e, Some(&stored.webhook_id)));
            return Box::pin(ready(webhook));
        }
        let Some(receiver) = receiver_from_app_data(req) else {
            return Box::pin(ready(Err(WebhookRejection::misconfigured(MISCONFIGURED))));
        };
        let payload = payload.take();
        let req = req.clone();
        Box::pin(async move {
            let Accepted {
                delivery,
                completion,
            } = body::accept::<D>(&receiver, req.headers(), payload)
                .await
                .map_err(|e| WebhookRejection::for_request(e, req.headers()))?;
            req.extensions_mut().insert(PendingCompletion {
                _completion: completion,
            });
            Ok(Webhook(delivery))
        })
    }
}

/// The receiver configured in the app data, if any.
fn receiver_from_app_data(req: &HttpRequest) -> Option<Receiver> {
    if let Some(receiver) = req.app_data::<web::Data<Receiver>>() {
        return Some(Receiver::clone(receiver));
    }
    if let Some(receiver) = req.app_data::<Receiver>() {
        return Some(receiver.clone());
    }
    let verifier = req
        .app_data::<web::Data<Verifier>>()
        .map(|v| Verifier::clone(v))
        .or_else(|| req.app_data::<Verifier>().cloned())?;
    Some(Receiver::new(verifier))
}
