//! The middleware: verify before the handler, report its status after.

use std::{
    future::{Future, Ready, ready},
    pin::Pin,
    rc::Rc,
};

use actix_web::{
    Error, HttpMessage,
    body::EitherBody,
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
};
use agentsync_webhooks_core::{Accepted, EventData, Idempotency, Receiver, Verifier};

use crate::{ActixHeaders, body, rejection_response};

/// actix-web middleware that lets only verified deliveries through to the handlers it wraps.
///
/// For each request it reads the body within the limit (a `Content-Length` over it is answered
/// 413 before reading; a streamed body is cut off at the limit), verifies and parses it with the
/// core, stores the [`Delivery`](agentsync_webhooks_core::Delivery) in the request extensions
/// (for the [`Webhook`](crate::Webhook) extractor, or `web::ReqData<Delivery>`), and puts the
/// same bytes back as the payload so that `Bytes`, `String` or `web::Json` still work. After the
/// handler answered, it reports the status to the core: with
/// [`with_idempotency`](Self::with_idempotency), that is what records a delivery as processed.
/// A refused delivery never reaches the handler: it gets the design table's status and JSON body.
///
/// Parsing uses [`EventData`](agentsync_webhooks_core::EventData): a documented type whose
/// `data` lacks a documented field is refused with 400 here, even when the handler asks for
/// `Webhook<MyData>`.
///
/// ```
/// use actix_web::{App, HttpResponse, web};
/// use agentsync_webhooks_actix::{Webhook, WebhookMiddleware};
/// use agentsync_webhooks_core::Verifier;
///
/// async fn psapi(Webhook(delivery): Webhook) -> HttpResponse {
///     println!("{} {}", delivery.webhook_id, delivery.event.event_type);
///     HttpResponse::NoContent().finish()
/// }
///
/// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// let app = App::new().service(
///     web::scope("/webhooks")
///         .wrap(WebhookMiddleware::new(verifier).body_limit(512 * 1024))
///         .route("/psapi", web::post().to(psapi)),
/// );
/// # drop(app);
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
#[derive(Debug, Clone)]
pub struct WebhookMiddleware {
    receiver: Receiver,
}

impl WebhookMiddleware {
    /// Verifies with `verifier`, with the default body limit (1 MiB).
    pub fn new(verifier: Verifier) -> Self {
        Self::from_receiver(Receiver::new(verifier))
    }

    /// Runs an already configured [`Receiver`] (body limit, idempotency).
    pub fn from_receiver(receiver: Receiver) -> Self {
        Self { receiver }
    }

    /// Sets the largest body accepted, in bytes; larger ones are answered 413.
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.receiver = self.receiver.with_body_limit(limit);
        self
    }

    /// Processes each `webhook-id` once: pass a store (such as
    /// [`MemoryStore`](crate::MemoryStore) for one process, `agentsync_webhooks_redis::RedisStore`
    /// for several) or an [`Idempotency`] to set its key prefix, lease, TTL or fail-open.
    ///
    /// The middleware claims the id once the signature holds. A retry of an id whose handler
    /// answered 2xx is answered `200` with an empty body, and one still being processed `409`
    /// with `Retry-After`, both without running the handler; a store that cannot answer gets
    /// `503` with `Retry-After` (fail-closed by default). A non-2xx answer, an error, a panic or
    /// a dropped request releases the id, so that the sender's retry is processed.
    ///
    /// Put the middleware on the whole scope of webhook routes; the [`Webhook`](crate::Webhook)
    /// extractor alone cannot de-duplicate (it never sees the handler's answer).
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
    pub fn with_idempotency(mut self, idempotency: impl Into<Idempotency>) -> Self {
        self.receiver = self.receiver.with_idempotency(idempotency);
        self
    }
}

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
            let Accepted {
                delivery,
                completion,
            } = match body::accept::<EventData>(&receiver, req.headers(), payload).await {
                Ok(accepted) => accepted,
                Err(error) => {
                    let rejection = error.rejection_for(&ActixHeaders(req.headers()));
                    let response = rejection_response(&rejection);
                    return Ok(req.into_response(response).map_into_right_body());
                }
            };
            // The same `Bytes`, shared, for any other extractor that reads the body.
            req.set_payload(Payload::from(delivery.raw_body.clone()));
            req.extensions_mut().insert(delivery);
            // On an error or a panic `completion` is dropped unfinished, which the core counts
            // as a failure, so that the sender's retry is processed.
            let response = service.call(req).await?;
            completion.finish(response.status().as_u16()).await;
            Ok(response.map_into_left_body())
        })
    }
}
