//! The `Webhook` extractor: the delivery the middleware verified.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload};
use agentsync_webhooks_core::{
    Delivery, EventData, EventPayload,
    adapter::{self, Rejection},
};

use crate::WebhookRejection;

const MISCONFIGURED: &str = "the Webhook extractor found no delivery verified by \
    WebhookMiddleware: wrap the webhook routes in `.wrap(WebhookMiddleware::new(verifier))`";

/// A verified delivery, as a handler argument: `Webhook` for the typed [`EventData`], or
/// `Webhook<MyData>` to parse `data` as your own `Deserialize` type. Derefs to the
/// [`WebhookEvent`](agentsync_webhooks_core::WebhookEvent).
///
/// It reads the delivery that [`WebhookMiddleware`](crate::WebhookMiddleware) verified (parsing
/// `data` again for a type other than `EventData`), so the middleware must wrap the route: the
/// middleware is what reads the body within its limit and deadline, refuses before the handler
/// runs, and reports the handler's status for idempotency. On a route without it every request
/// is answered 500 with a message naming the fix. The body stays readable by other extractors
/// (`web::Bytes`, `web::Json`).
///
/// ```
/// use actix_web::{App, HttpResponse, test, web};
/// use agentsync_webhooks_actix::{Webhook, WebhookMiddleware};
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
/// let app = test::init_service(
///     App::new().service(
///         web::resource("/webhooks/psapi")
///             .wrap(WebhookMiddleware::new(Verifier::new(secret)?))
///             .route(web::post().to(psapi)),
///     ),
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
pub struct Webhook<D = EventData> {
    // Boxed as the port gave it: the handler's argument moves a pointer.
    delivery: Box<Delivery<D>>,
}

agentsync_webhooks_core::adapter::webhook_accessors!(Webhook);

impl<D: EventPayload + 'static> FromRequest for Webhook<D> {
    type Error = WebhookRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Taken, not cloned: the middleware needs it no more.
        let Some(stored) = req.extensions_mut().remove::<Box<Delivery>>() else {
            return ready(Err(Rejection::misconfigured(MISCONFIGURED).into()));
        };
        ready(
            adapter::into_payload(stored)
                .map(|delivery| Self { delivery })
                .map_err(Into::into),
        )
    }
}
