//! The layer and its service.

use std::task::{Context, Poll};

use agentsync_webhooks_core::{Accepted, EventData, Receiver, Verifier};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    BoxError, ResponseBody, ResponseFuture, VerifiedDelivery, collect_body, content_length, reject,
};

/// Verifies webhook deliveries before the inner service sees them.
///
/// ```no_run
/// # use agentsync_webhooks_core::Verifier;
/// # use agentsync_webhooks_tower::WebhookLayer;
/// # fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = std::env::var("AGENTSYNC_WEBHOOK_SECRET")?;
/// let layer = WebhookLayer::new(Verifier::new(&secret)?).body_limit(512 * 1024);
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
/// 4. reports the inner service's status to the receiver (idempotency) before answering.
#[derive(Debug, Clone)]
pub struct WebhookLayer {
    receiver: Receiver,
}

impl WebhookLayer {
    /// A layer verifying with `verifier`, with the default body limit.
    pub fn new(verifier: Verifier) -> Self {
        Self::from_receiver(Receiver::new(verifier))
    }

    /// A layer running an already configured receiver (limit and, later, idempotency).
    pub fn from_receiver(receiver: Receiver) -> Self {
        Self { receiver }
    }

    /// Sets the largest body accepted, in bytes (default 1 MiB, above what senders send).
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.receiver = self.receiver.with_body_limit(limit);
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
    receiver: Receiver,
}

impl<S> WebhookService<S> {
    /// Wraps `inner`, verifying with `receiver`.
    pub fn new(inner: S, receiver: Receiver) -> Self {
        Self { inner, receiver }
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
        let receiver = self.receiver.clone();
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
