//! The `Webhook` extractor: the middleware's delivery, or a verification of its own.

use std::{
    any::Any,
    future::{Future, ready},
    ops::{Deref, DerefMut},
    pin::Pin,
};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use agentsync_webhooks_core::{
    Accepted, Completion, Delivery, EventData, EventPayload, Receiver, Verifier, WebhookError,
};

use crate::{WebhookRejection, body, headers::webhook_id};

/// A verified delivery, as a handler argument: `Webhook` for the typed [`EventData`], or
/// `Webhook<MyData>` to parse `data` as your own type.
///
/// Behind [`WebhookMiddleware`](crate::WebhookMiddleware) it reads the delivery the middleware
/// stored (and re-parses it for your own type). Without the middleware it verifies the request
/// itself with the first of `web::Data<Receiver>`, `web::Data<Verifier>`, `Receiver` or
/// `Verifier` found in the app data; with none of them it answers 500 naming the fix. A refused
/// request never reaches the handler: the [`WebhookRejection`] answers with the design table's
/// status and JSON body.
///
/// Without the middleware the extractor consumes the body (read it from
/// [`Delivery::raw_body`]), so a handler takes one `Webhook` (actix builds all of a handler's
/// extractors at once), and nothing sees the handler's status: use the middleware where the core
/// must learn the outcome (idempotency), or several extractors read the body.
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
/// async fn psapi(Webhook(delivery): Webhook<RunDate>) -> HttpResponse {
///     HttpResponse::Ok().body(delivery.event.data.run_date)
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
    /// The delivery.
    pub fn into_inner(self) -> Delivery<D> {
        self.0
    }
}

impl<D> Deref for Webhook<D> {
    type Target = Delivery<D>;

    fn deref(&self) -> &Delivery<D> {
        &self.0
    }
}

impl<D> DerefMut for Webhook<D> {
    fn deref_mut(&mut self) -> &mut Delivery<D> {
        &mut self.0
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
            let webhook = as_payload(stored)
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
            let reject = |e| WebhookRejection::new(e, webhook_id(req.headers()));
            let Accepted {
                delivery,
                completion,
            } = body::accept(&receiver, req.headers(), payload)
                .await
                .map_err(reject)?;
            let webhook = as_payload(&delivery).map_err(reject)?;
            let mut extensions = req.extensions_mut();
            extensions.insert(delivery);
            extensions.insert(PendingCompletion {
                _completion: completion,
            });
            Ok(Webhook(webhook))
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

/// The stored delivery as `Delivery<D>`: a clone when `D` is [`EventData`], else a re-parse of
/// the verified body.
fn as_payload<D: EventPayload + 'static>(stored: &Delivery) -> Result<Delivery<D>, WebhookError> {
    let mut same = None::<Delivery<D>>;
    if let Some(slot) = (&mut same as &mut dyn Any).downcast_mut::<Option<Delivery>>() {
        *slot = Some(stored.clone());
    }
    match same {
        Some(delivery) => Ok(delivery),
        None => stored.reparse(),
    }
}
