//! The middleware: the port before the handler, its status reported after.

use std::{
    future::{Future, Ready, ready},
    pin::Pin,
    rc::Rc,
};

use actix_web::{
    Error, HttpMessage, ResponseError,
    body::EitherBody,
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
};
use agentsync_webhooks_core::{EventData, Receiver, adapter::Accepted};

use crate::{ActixHeaders, WebhookRejection};

/// actix-web middleware that lets only verified deliveries through to the handlers it wraps.
///
/// For each request it runs the core's receive port ([`Receiver::receive`]): the body limit
/// (413), the body-read deadline (408), verification, the claim or the handoff, the parse. A
/// refused delivery never reaches the handler: it gets the design table's status and JSON body.
/// An accepted one is stored in the request extensions (for the [`Webhook`](crate::Webhook)
/// extractor) with the same bytes put back as the payload, so that `web::Bytes` or `web::Json`
/// still work; after the handler answered, its status is reported to the core: with
/// [`with_idempotency`](Self::with_idempotency), that is what records a delivery as processed.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use actix_web::{App, HttpResponse, test, web};
/// use agentsync_webhooks_actix::{MemoryStore, Webhook, WebhookMiddleware};
/// use agentsync_webhooks_core::{EventType, Signer, Verifier};
///
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
///
/// async fn psapi(_: Webhook) -> HttpResponse {
///     RUNS.fetch_add(1, Ordering::SeqCst);
///     HttpResponse::Ok().body("done")
/// }
///
/// # actix_web::rt::System::new().block_on(async {
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let middleware = WebhookMiddleware::new(Verifier::new(secret)?).with_idempotency(MemoryStore::new());
/// let app = test::init_service(
///     App::new().service(web::scope("/webhooks").wrap(middleware).route("/psapi", web::post().to(psapi))),
/// )
/// .await;
///
/// // The sender delivers an event, then retries it (same `webhook-id`).
/// let sent = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
/// for expected_body in ["done", ""] {
///     let mut request = test::TestRequest::post().uri("/webhooks/psapi");
///     for header in sent.headers.to_pairs() {
///         request = request.insert_header(header);
///     }
///     let response = test::call_service(&app, request.set_payload(sent.body.clone()).to_request()).await;
///     assert_eq!(response.status(), 200);
///     assert_eq!(test::read_body(response).await, expected_body);
/// }
/// assert_eq!(RUNS.load(Ordering::SeqCst), 1); // the retry was answered by the middleware
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct WebhookMiddleware {
    receiver: Receiver,
}

agentsync_webhooks_core::adapter::receiver_config!(WebhookMiddleware);

impl<S, B> Transform<S, ServiceRequest> for WebhookMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = WebhookMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(WebhookMiddlewareService {
            service: Rc::new(service),
            receiver: Rc::new(self.receiver.clone()),
        }))
    }
}

/// The service [`WebhookMiddleware`] wraps around the inner one; built by actix, not by hand.
#[derive(Debug)]
pub struct WebhookMiddlewareService<S> {
    service: Rc<S>,
    receiver: Rc<Receiver>,
}

impl<S, B> Service<ServiceRequest> for WebhookMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let receiver = Rc::clone(&self.receiver);
        Box::pin(async move {
            let payload = req.take_payload();
            let headers = ActixHeaders(req.headers());
            let Accepted {
                delivery,
                completion,
            } = match receiver
                .receive::<EventData, _, _>(&headers, None, payload)
                .await
            {
                Ok(accepted) => accepted,
                Err(rejection) => {
                    let response = WebhookRejection(rejection).error_response();
                    return Ok(req.into_response(response).map_into_right_body());
                }
            };
            // The same `Bytes`, shared, for any other extractor that reads the body.
            req.set_payload(Payload::from(delivery.raw_body.clone()));
            req.extensions_mut().insert(delivery);
            // On an error or a panic `completion` is dropped unfinished, which the core counts
            // as a failure, so that the sender's retry is processed.
            let response = completion.in_span(service.call(req)).await?;
            completion.finish(response.status().as_u16()).await;
            Ok(response.map_into_left_body())
        })
    }
}
