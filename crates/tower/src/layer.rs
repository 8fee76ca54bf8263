//! The layer and its service.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use agentsync_webhooks_core::{Accepted, EventData, Receiver, Verifier};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    BoxError, Idempotency, ResponseBody, ResponseFuture, VerifiedDelivery, collect_body,
    content_length, reject,
};

/// Verifies webhook deliveries before the inner service sees them.
///
/// ```no_run
/// # use agentsync_webhooks_core::Verifier;
/// # use agentsync_webhooks_tower::{MemoryStore, WebhookLayer};
/// # fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = WebhookLayer::new(Verifier::from_env()?)
///     .body_limit(512 * 1024)
///     .with_idempotency(MemoryStore::new());
/// // axum: Router::new().route("/webhooks/psapi", post(handler)).route_layer(layer)
/// # Ok(())
/// # }
/// ```
///
/// Per request, the service it builds:
/// 1. answers `413` to a `Content-Length` over the limit without reading the body, and stops
///    reading a body without one at the chunk that passes the limit;
/// 2. verifies and parses the delivery with the core [`Receiver`], answering a refusal itself
///    (the design table's status, a JSON body with a stable code, a `tracing` event);
/// 3. calls the inner service with a [`VerifiedDelivery`] in the request extensions and the
///    same bytes (shared, not copied) as a [`Full`] body;
/// 4. reports the inner service's status to the receiver before answering: with
///    [`with_idempotency`](Self::with_idempotency), a 2xx marks the `webhook-id` processed, and
///    anything else (or an error, a panic, a dropped request) lets the sender's retry through.
#[derive(Debug, Clone)]
pub struct WebhookLayer {
    receiver: Receiver,
}

impl WebhookLayer {
    /// A layer verifying with `verifier`, with the default body limit.
    pub fn new(verifier: Verifier) -> Self {
        Self::from_receiver(Receiver::new(verifier))
    }

    /// A layer running an already configured receiver (body limit, idempotency).
    pub fn from_receiver(receiver: Receiver) -> Self {
        Self { receiver }
    }

    /// Sets the largest body accepted, in bytes (default 1 MiB, above what senders send).
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.receiver = self.receiver.with_body_limit(limit);
        self
    }

    /// Processes each `webhook-id` once: pass a store (such as
    /// [`MemoryStore`](crate::MemoryStore) for one process, `agentsync_webhooks_redis::RedisStore`
    /// for several) or an [`Idempotency`] to set its key prefix, lease, TTL or fail-open.
    ///
    /// The layer claims the id once the signature holds. A retry of an id whose service answered
    /// 2xx is answered `200` with an empty body, and one still being processed `409` with
    /// `Retry-After`, both without calling the service; a store that cannot answer gets `503`
    /// with `Retry-After` (fail-closed by default). A non-2xx answer, an error, a panic or a
    /// dropped request releases the id, so that the sender's retry is processed.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
    ///
    /// use agentsync_webhooks_core::{EventType, Signer, Verifier};
    /// use agentsync_webhooks_tower::{MemoryStore, WebhookLayer};
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    /// let runs = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&runs);
    /// let service = ServiceBuilder::new()
    ///     .layer(WebhookLayer::new(Verifier::new(secret)?).with_idempotency(MemoryStore::new()))
    ///     .service(service_fn(move |_: Request<Full<Bytes>>| {
    ///         counter.fetch_add(1, Ordering::SeqCst);
    ///         async { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("done")))) }
    ///     }));
    ///
    /// // The sender delivers an event, then retries it (same `webhook-id`).
    /// let signed = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
    /// for expected_body in ["done", ""] {
    ///     let mut request = Request::post("/webhooks/psapi").body(Full::new(Bytes::from(signed.body.clone())))?;
    ///     *request.headers_mut() = signed.headers.to_header_map();
    ///     let response = service.clone().oneshot(request).await?;
    ///     assert_eq!(response.status(), 200);
    ///     let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
    ///     assert_eq!(body, expected_body);
    /// }
    /// assert_eq!(runs.load(Ordering::SeqCst), 1); // the retry was answered by the layer
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_idempotency(mut self, idempotency: impl Into<Idempotency>) -> Self {
        self.receiver = self.receiver.with_idempotency(idempotency);
        self
    }

    /// The receiver every request goes through.
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }
}

impl<S> Layer<S> for WebhookLayer {
    type Service = WebhookService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebhookService::new(inner, self.receiver.clone())
    }
}

/// The service built by [`WebhookLayer`].
#[derive(Debug, Clone)]
pub struct WebhookService<S> {
    inner: S,
    // Shared: each request's future holds a pointer, not a copy of the configuration.
    receiver: Arc<Receiver>,
}

impl<S> WebhookService<S> {
    /// Wraps `inner`, verifying with `receiver`.
    pub fn new(inner: S, receiver: Receiver) -> Self {
        Self {
            inner,
            receiver: Arc::new(receiver),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for WebhookService<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let collector = match self
            .receiver
            .collector(content_length(&parts.headers, &body))
        {
            Ok(collector) => collector,
            Err(error) => {
                return ResponseFuture::ready(
                    reject(&error, &parts.headers).map(ResponseBody::rejection),
                );
            }
        };
        // The clone takes the place of the service that `poll_ready` made ready, which goes
        // into the future (tower's rule for services called later).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let receiver = Arc::clone(&self.receiver);
        ResponseFuture::pending(Box::pin(async move {
            let rejection = |error| Ok(reject(&error, &parts.headers).map(ResponseBody::rejection));
            let body = match collect_body(collector, body).await {
                Ok(body) => body,
                Err(error) => return rejection(error),
            };
            let Accepted {
                delivery,
                completion,
            } = match receiver
                .accept::<EventData>(&parts.headers, body.clone())
                .await
            {
                Ok(accepted) => accepted,
                Err(error) => return rejection(error),
            };
            let mut request = Request::from_parts(parts, Full::new(body));
            request
                .extensions_mut()
                .insert(VerifiedDelivery::new(delivery));
            // An error, a panic or a cancellation drops `completion`, which releases the
            // delivery so that the sender's retry is processed.
            let response = inner.call(request).await?;
            completion.finish(response.status().as_u16()).await;
            Ok(response.map(ResponseBody::inner))
        }))
    }
}
