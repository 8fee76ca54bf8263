//! [warp] filters that hand your handler a verified, typed AgentSync webhook.
//!
//! - [`webhook`] (or [`webhook_with`] for a configured [`Receiver`], [`webhook_as`] for your own
//!   payload type) reads the body within the limit, verifies the signature and parses the event,
//!   extracting a [`Webhook`]; a refused delivery is a [`WebhookRejection`].
//! - [`Webhook::run`] runs your handler and records its reply's status with the delivery's
//!   completion (where idempotency hooks in), so that a retry of a handled event is answered as a
//!   duplicate and a retry of a failed one is processed again.
//! - [`recover`] answers every [`WebhookRejection`] with the status and JSON body every adapter
//!   sends, and passes any other rejection (404, 405, ...) on.
//!
//! # Why `then(|hook| hook.run(handler))`
//!
//! A warp filter cannot see the reply of the handler that comes after it, yet the completion
//! needs the reply's status. So the filter extracts a [`Webhook`] and its
//! [`run`](Webhook::run) method runs the handler and finishes the completion with the status of
//! what the handler returned. Handlers that would rather take the whole [`Webhook`] (for example
//! with `and_then`) end with [`Webhook::respond`]. A [`Webhook`] dropped without either (a
//! panic, a cancelled request, a `?` that rejects) drops its completion, which releases the
//! delivery so that the sender's retry is processed.
//!
//! ```
//! use agentsync_webhooks_core::{Delivery, EventData, Verifier};
//! use agentsync_webhooks_warp::{Webhook, webhook};
//! use warp::{Filter, Reply, http::StatusCode};
//!
//! async fn on_event(delivery: Delivery) -> impl Reply {
//!     match delivery.event.data {
//!         EventData::ProducerSyncUpdatesAvailable(d) => println!("pull updatedSince={}", d.updated_since()),
//!         other => println!("ignoring {:?}", other.event_type()),
//!     }
//!     StatusCode::NO_CONTENT
//! }
//!
//! let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let routes = warp::post()
//!     .and(warp::path!("webhooks" / "psapi"))
//!     .and(webhook(verifier))
//!     .then(|hook: Webhook| hook.run(on_event))
//!     .recover(agentsync_webhooks_warp::recover);
//! // warp::serve(routes).run(([127, 0, 0, 1], 3000)).await;
//! # let _ = routes;
//! # Ok::<(), agentsync_webhooks_core::SecretError>(())
//! ```
//!
//! # Idempotency
//!
//! warp has no layer object to configure: the filter takes a [`Receiver`], so the one call is
//! [`Receiver::with_idempotency`] on the receiver given to [`webhook_with`]:
//!
//! ```
//! use agentsync_webhooks_warp::{MemoryStore, Receiver, Verifier, Webhook, webhook_with};
//! use warp::{Filter, http::StatusCode};
//!
//! let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let routes = warp::path!("webhooks" / "psapi")
//!     .and(webhook_with(Receiver::new(verifier).with_idempotency(MemoryStore::new())))
//!     .then(|hook: Webhook| hook.respond(StatusCode::NO_CONTENT))
//!     .recover(agentsync_webhooks_warp::recover);
//! # let _ = routes;
//! # Ok::<(), agentsync_webhooks_core::SecretError>(())
//! ```
//!
//! The filter then claims each `webhook-id` once the signature holds: a retry of a delivery
//! whose reply was 2xx is refused with a [`WebhookRejection`] that [`recover`] answers `200` with
//! an empty body, one still being processed `409` with `Retry-After`, and a store that cannot
//! answer `503` with `Retry-After`, none of them reaching the handler. The status reaches the
//! store only through [`Webhook::run`] or [`Webhook::respond`] (or
//! [`Completion::finish`] after [`Webhook::into_parts`]); a non-2xx reply, a panic or a dropped
//! request releases the id so that the sender's retry is processed.
//!
//! # Bodies without `Content-Length`
//!
//! `warp::body::content_length_limit` refuses a chunked body with 411. These filters read the
//! body stream instead, chunk by chunk, up to [`Receiver::body_limit`]: a declared length over the
//! limit is refused with 413 before anything is read, and a stream that grows past it is refused
//! with 413 at the chunk that crosses it, so memory stays bounded either way.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::{future::poll_fn, ops::Deref, pin::pin, sync::Arc};

use agentsync_webhooks_core::{HeaderLookup, headers::content_length};
use warp::{
    Buf, Filter, Rejection, Reply, Stream,
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{CONTENT_TYPE, RETRY_AFTER},
    },
    reply::Response,
};

/// The core types that appear in this crate's signatures or configure its receiver, so that one
/// dependency is enough.
pub use agentsync_webhooks_core::{
    Completion, Delivery, EventData, EventPayload, Idempotency, MemoryStore, Receiver, Verifier,
    WebhookError,
};

/// Extracts the verified delivery as a [`Webhook`] with typed [`EventData`], using the default
/// body limit and no idempotency (see [`webhook_with`] for both).
///
/// Rejects with a [`WebhookRejection`]; add [`recover`] to answer it. See the
/// [crate documentation](crate) for the whole route.
pub fn webhook(
    verifier: Verifier,
) -> impl Filter<Extract = (Webhook,), Error = Rejection> + Clone + Send + Sync + 'static {
    webhook_with(Receiver::new(verifier))
}

/// Like [`webhook`], with a configured [`Receiver`]: its body limit and, with
/// [`Receiver::with_idempotency`], one processing per `webhook-id` (a duplicate of a handled
/// delivery is answered 200 without running the handler, one still in progress 409; see
/// [Idempotency](crate#idempotency)).
///
/// ```
/// use agentsync_webhooks_warp::{MemoryStore, Receiver, Verifier};
///
/// let receiver = Receiver::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
///     .with_body_limit(64 * 1024)
///     .with_idempotency(MemoryStore::new());
/// let filter = agentsync_webhooks_warp::webhook_with(receiver);
/// # let _ = filter;
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
pub fn webhook_with(
    receiver: Receiver,
) -> impl Filter<Extract = (Webhook,), Error = Rejection> + Clone + Send + Sync + 'static {
    webhook_as::<EventData>(receiver)
}

/// Like [`webhook_with`], with `data` parsed as your own type `D` whatever the event type: any
/// `serde::de::DeserializeOwned` type, or `serde_json::Value` for no typing at all.
///
/// A body whose `data` does not fit `D` is refused with 400 (`invalid_event_data`) before the
/// handler runs. To keep [`EventData`] and parse some events further, use
/// [`Delivery::reparse`] in the handler instead.
///
/// ```
/// use agentsync_webhooks_core::{Delivery, Receiver, Verifier};
/// use agentsync_webhooks_warp::{Webhook, webhook_as};
/// use warp::{Filter, http::StatusCode};
///
/// #[derive(serde::Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct RunDate {
///     run_date: String,
/// }
///
/// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// let route = warp::path!("webhooks" / "psapi")
///     .and(webhook_as::<RunDate>(Receiver::new(verifier)))
///     .then(|hook: Webhook<RunDate>| {
///         hook.run(|delivery: Delivery<RunDate>| async move {
///             println!("run date {}", delivery.event.data.run_date);
///             StatusCode::OK
///         })
///     });
/// # let _ = route;
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
pub fn webhook_as<D>(
    receiver: Receiver,
) -> impl Filter<Extract = (Webhook<D>,), Error = Rejection> + Clone + Send + Sync + 'static
where
    D: EventPayload + Send + 'static,
{
    let receiver = Arc::new(receiver);
    warp::header::headers_cloned()
        .and(warp::body::stream())
        .and_then(move |headers: HeaderMap, body| {
            let receiver = Arc::clone(&receiver);
            async move {
                accept(&receiver, &headers, body)
                    .await
                    .map_err(|error| warp::reject::custom(WebhookRejection::new(error, &headers)))
            }
        })
}

/// Collects the body within the limit and runs the core pipeline on it.
async fn accept<D: EventPayload>(
    receiver: &Receiver,
    headers: &HeaderMap,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
) -> Result<Webhook<D>, WebhookError> {
    let mut collector = receiver.collector(content_length(headers))?;
    let mut body = pin!(body);
    while let Some(chunk) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let mut chunk = chunk.map_err(|e| WebhookError::BodyRead(e.to_string()))?;
        while chunk.has_remaining() {
            let bytes = chunk.chunk();
            let len = bytes.len();
            collector.push(bytes)?;
            chunk.advance(len);
        }
    }
    let accepted = receiver.accept::<D>(headers, collector.finish()).await?;
    Ok(Webhook {
        delivery: accepted.delivery,
        completion: accepted.completion,
    })
}

/// The declared `Content-Length` (hyper has already refused a malformed one).
/// A verified delivery, extracted by [`webhook`], with the obligation to report how its handler
/// did.
///
/// Dereferences to the [`Delivery`] (`hook.event`, `hook.webhook_id`, `hook.raw_body`,
/// `hook.reparse::<T>()`). Hand it a handler with [`run`](Self::run), or answer it with
/// [`respond`](Self::respond); dropping it instead releases the delivery for a retry.
#[derive(Debug)]
pub struct Webhook<D = EventData> {
    delivery: Delivery<D>,
    completion: Completion,
}

impl<D> Webhook<D> {
    /// Runs `handler` on the delivery and answers with its reply, after recording the reply's
    /// status with the completion (a 2xx completes the delivery; anything else releases it so
    /// that the sender's retry is processed).
    ///
    /// ```
    /// use agentsync_webhooks_core::{Delivery, Verifier};
    /// use agentsync_webhooks_warp::{Webhook, webhook};
    /// use tokio::sync::mpsc;
    /// use warp::{Filter, http::StatusCode};
    ///
    /// let (jobs, _worker) = mpsc::channel::<Delivery>(64);
    /// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    /// let route = warp::path!("webhooks" / "psapi")
    ///     .and(webhook(verifier))
    ///     .then(move |hook: Webhook| {
    ///         let jobs = jobs.clone();
    ///         hook.run(move |delivery| async move {
    ///             match jobs.send(delivery).await {
    ///                 Ok(()) => StatusCode::ACCEPTED,
    ///                 // Not handled: a non-2xx makes the sender retry later.
    ///                 Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    ///             }
    ///         })
    ///     });
    /// # let _ = route;
    /// # Ok::<(), agentsync_webhooks_core::SecretError>(())
    /// ```
    pub async fn run<H, F, R>(self, handler: H) -> Response
    where
        H: FnOnce(Delivery<D>) -> F,
        F: Future<Output = R>,
        R: Reply,
    {
        let reply = handler(self.delivery).await;
        finish(self.completion, reply).await
    }

    /// Answers with `reply`, after recording its status with the completion: the last step of a
    /// handler that takes the [`Webhook`] itself (for example with `and_then`).
    ///
    /// ```
    /// use std::convert::Infallible;
    ///
    /// use agentsync_webhooks_warp::Webhook;
    /// use warp::{Reply, http::StatusCode};
    ///
    /// async fn on_webhook(hook: Webhook) -> Result<impl Reply, Infallible> {
    ///     println!("{} {}", hook.webhook_id, hook.event.event_type);
    ///     Ok(hook.respond(StatusCode::NO_CONTENT).await)
    /// }
    /// ```
    pub async fn respond(self, reply: impl Reply) -> Response {
        finish(self.completion, reply).await
    }

    /// The delivery and its completion, for full control: call
    /// [`Completion::finish`] with the status you answer with.
    pub fn into_parts(self) -> (Delivery<D>, Completion) {
        (self.delivery, self.completion)
    }

    /// The delivery.
    pub fn delivery(&self) -> &Delivery<D> {
        &self.delivery
    }
}

impl<D> Deref for Webhook<D> {
    type Target = Delivery<D>;

    fn deref(&self) -> &Delivery<D> {
        &self.delivery
    }
}

/// Renders `reply` and finishes `completion` with its status.
async fn finish(completion: Completion, reply: impl Reply) -> Response {
    let response = reply.into_response();
    completion.finish(response.status().as_u16()).await;
    response
}

/// Why [`webhook`] refused a request: the core [`WebhookError`] and the answer every adapter
/// sends for it.
///
/// Answer it with [`recover`] (or, in a `recover` function of your own, with
/// [`response`](Self::response)); left unanswered, warp turns it into a 500.
#[derive(Debug)]
pub struct WebhookRejection {
    error: WebhookError,
    rejection: agentsync_webhooks_core::Rejection,
}

impl warp::reject::Reject for WebhookRejection {}

impl WebhookRejection {
    /// The refusal of a request with `headers` for `error`. Logs it once, with the request's
    /// `webhook-id` (or `svix-id`) when it has a usable one.
    pub fn new(error: WebhookError, headers: &(impl HeaderLookup + ?Sized)) -> Self {
        let rejection = error.rejection_for(headers);
        Self { error, rejection }
    }

    /// Why the delivery was refused.
    pub fn error(&self) -> &WebhookError {
        &self.error
    }

    /// The framework-neutral answer: status, JSON body, `Retry-After`.
    pub fn rejection(&self) -> &agentsync_webhooks_core::Rejection {
        &self.rejection
    }

    /// The response every adapter sends for this error: status, JSON body (`Content-Type:
    /// application/json`) and `Retry-After` where the sender should come back.
    ///
    /// ```
    /// use agentsync_webhooks_core::WebhookError;
    /// use agentsync_webhooks_warp::WebhookRejection;
    ///
    /// let headers = [("webhook-id", "msg_1")];
    /// let response = WebhookRejection::new(WebhookError::InvalidTimestamp, &headers).response();
    /// assert_eq!(response.status(), 400);
    /// assert_eq!(response.headers()["content-type"], "application/json");
    /// ```
    pub fn response(&self) -> Response {
        let rejection = &self.rejection;
        let mut response = Response::new(rejection.body.clone().into());
        *response.status_mut() =
            StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if let Some(content_type) = rejection.content_type() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(seconds) = rejection.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Answers a [`WebhookRejection`] with the status and JSON body of the design's table, and
/// passes every other rejection on unchanged (so warp still answers 404, 405, ... itself).
///
/// Use it with [`Filter::recover`] on your routes:
///
/// ```
/// use agentsync_webhooks_core::Verifier;
/// use agentsync_webhooks_warp::{Webhook, webhook};
/// use warp::{Filter, http::StatusCode};
///
/// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// let routes = warp::path!("webhooks" / "psapi")
///     .and(webhook(verifier))
///     .then(|hook: Webhook| hook.respond(StatusCode::OK))
///     .or(warp::path!("health").map(|| "ok"))
///     .recover(agentsync_webhooks_warp::recover);
/// # let _ = routes;
/// # Ok::<(), agentsync_webhooks_core::SecretError>(())
/// ```
pub async fn recover(rejection: Rejection) -> Result<Response, Rejection> {
    match rejection.find::<WebhookRejection>() {
        Some(ours) => Ok(ours.response()),
        None => Err(rejection),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_HEADERS: [(&str, &str); 0] = [];

    #[test]
    fn retry_after_is_copied() {
        let response = WebhookRejection::new(
            WebhookError::StoreUnavailable {
                detail: "down".into(),
                retry_after_secs: 30,
            },
            &NO_HEADERS,
        )
        .response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "30");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn duplicate_is_an_empty_200_without_content_type() {
        let response = WebhookRejection::new(WebhookError::Duplicate, &NO_HEADERS).response();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get(CONTENT_TYPE).is_none());
        assert!(response.headers().get(RETRY_AFTER).is_none());
    }

    #[test]
    fn response_copies_the_core_rejection() {
        let error = WebhookError::InFlight {
            retry_after_secs: 5,
        };
        let ours = WebhookRejection::new(error.clone(), &[("webhook-id", "msg_1")]);
        assert_eq!(ours.error(), &error);
        let core = error.rejection(Some("msg_1"));
        assert_eq!(ours.rejection(), &core);
        let response = ours.response();
        assert_eq!(response.status(), core.status);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
    }
}
