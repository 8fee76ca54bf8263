//! The layer and its service.

use std::{
    fmt::Display,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use agentsync_webhooks_core::{EventData, Receiver, adapter::Accepted};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt as _, Full};
use tower_layer::Layer;
use tower_service::Service;

use crate::{ResponseBody, VerifiedDelivery};

/// The future of [`WebhookService`]: the inner service's response, or the layer's own answer.
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

/// Verifies webhook deliveries before the inner service sees them.
///
/// ```no_run
/// # use agentsync_webhooks_core::Verifier;
/// # use agentsync_webhooks_tower::{MemoryStore, WebhookLayer};
/// # fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = WebhookLayer::new(Verifier::from_env()?)
///     .with_body_limit(512 * 1024)
///     .with_idempotency(MemoryStore::new());
/// // axum: Router::new().route("/webhooks/psapi", post(handler)).route_layer(layer)
/// # Ok(())
/// # }
/// ```
///
/// Per request, the service it builds runs the core's receive port
/// ([`Receiver::receive`]): the body limit (413), the body-read deadline (408), verification,
/// the claim or the handoff, the parse. A refusal is answered by the layer (the design table's
/// status, a JSON body with a stable code, a `tracing` event). An accepted delivery reaches the
/// inner service with a [`VerifiedDelivery`] in the request extensions and the same bytes
/// (shared, not copied) as a [`Full`] body; the inner service's status is then reported to the
/// receiver, so that with idempotency a 2xx marks the `webhook-id` processed and anything else
/// (an error, a panic, a dropped request) lets the sender's retry through.
///
/// With [`with_idempotency`](Self::with_idempotency), the sender's retry of a delivery that the
/// service answered 2xx is answered by the layer:
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
#[derive(Debug, Clone)]
pub struct WebhookLayer {
    receiver: Receiver,
}

agentsync_webhooks_core::adapter::receiver_config!(WebhookLayer);

impl<S> Layer<S> for WebhookLayer {
    type Service = WebhookService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebhookService {
            inner,
            receiver: Arc::new(self.receiver.clone()),
        }
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
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
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
    ReqBody::Error: Display,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone takes the place of the service that `poll_ready` made ready, which goes
        // into the future (tower's rule for services called later).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let receiver = Arc::clone(&self.receiver);
        // Taken apart here, not in the future: what the future captures it holds to the end.
        let (parts, body) = request.into_parts();
        Box::pin(async move {
            let size = body.size_hint().exact();
            let Accepted {
                delivery,
                completion,
            } = match receiver
                .receive::<EventData, _, _>(&parts.headers, size, body.into_data_stream())
                .await
            {
                Ok(accepted) => accepted,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            // In a block: a request that outlived its move into `call` would keep its 256
            // bytes in this future (which is boxed, and then too large for the allocator's
            // thread cache).
            let call = {
                let mut request = Request::from_parts(parts, Full::new(delivery.raw_body.clone()));
                // Out of the port's box and into the extensions' own: measured (callgrind),
                // this copy costs less than keeping the box in a box (an 8-byte allocation
                // more), by about 250 instructions a delivery, 1,250 with idempotency.
                request
                    .extensions_mut()
                    .insert(VerifiedDelivery::new(*delivery));
                inner.call(request)
            };
            // An error, a panic or a cancellation drops `completion`, which releases the
            // delivery so that the sender's retry is processed.
            let response = completion.in_span(call).await?;
            completion.finish(response.status().as_u16()).await;
            Ok(response.map(ResponseBody::inner))
        })
    }
}
