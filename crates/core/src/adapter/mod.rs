//! For adapter authors: the receive port and what it returns. Users of an adapter do not need
//! this module; it is what the tower, axum, actix-web and warp adapters are built on.
//!
//! An adapter does five things and decides nothing:
//!
//! 1. turn its framework's request into headers (anything that implements
//!    [`HeaderLookup`](crate::HeaderLookup)), the body's exact size if the framework knows it,
//!    and the body as a [`Stream`](futures_core::Stream) of chunks;
//! 2. call [`Receiver::receive`](crate::Receiver::receive), the port, which applies the body
//!    limit and the body-read deadline, verifies, claims the `webhook-id` (idempotency) or stores
//!    the delivery (handoff), parses, and logs every refusal;
//! 3. on [`Accepted`], hand the [`Delivery`] to the handler;
//! 4. report the handler's status with [`Completion::finish`];
//! 5. on a [`Rejection`], copy it into its framework's response
//!    ([`Rejection::into_response`] for `http` 1).
//!
//! Every adapter's `Webhook<D>` gets the same accessors and `Deref` target from
//! [`webhook_accessors!`], so that moving from one framework to another changes imports, not
//! handlers.

#[cfg(feature = "receive")]
mod body;
pub mod metrics;
mod observe;
#[cfg(feature = "receive")]
mod port;
mod rejection;

pub use bytes::Bytes;

#[cfg(feature = "receive")]
pub(crate) use self::body::BodyCollector;
pub use self::observe::InSpan;
pub(crate) use self::observe::Observed;
#[cfg(feature = "receive")]
pub(crate) use self::observe::late_answer;
#[cfg(feature = "receive")]
pub use self::port::{FullBody, full_body};
pub use self::rejection::{ErrorBody, Rejection};
use crate::{Delivery, idempotency::ClaimGuard};
pub use crate::{receiver_config, webhook_accessors, webhook_rejection};

/// The delivery an adapter's layer verified as [`EventData`](crate::EventData), with `data` as
/// the handler's `D`: the box itself, moved, when `D` is `EventData`, parsed again otherwise,
/// and on failure the 400 that names the delivery. It takes and gives the box that
/// [`Accepted::delivery`] holds, so that a handler's argument carries a pointer, not the
/// delivery.
///
/// ```
/// use agentsync_webhooks_core::{Delivery, EventData, EventType, Signer, Verifier, adapter};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let request = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
/// let headers = request.headers.to_pairs();
/// let verified = Verifier::new(secret)?.verify(&headers, &request.body)?;
/// let delivery: Delivery = Delivery::parse(verified.id, verified.timestamp, request.body.into())?;
/// let same: Box<Delivery<EventData>> = adapter::into_payload(Box::new(delivery))?;
/// assert_eq!(same.event.event_type, "producersync.updates_available");
/// let value: Box<Delivery<serde_json::Value>> = adapter::into_payload(same)?;
/// assert_eq!(value.event.data["runDate"], "2025-07-24");
/// # Ok(()) }
/// ```
#[expect(
    clippy::result_large_err,
    reason = "the extractors return this `Rejection` as it is; boxing it would allocate per refusal"
)]
pub fn into_payload<D: crate::EventPayload + 'static>(
    delivery: Box<Delivery>,
) -> Result<Box<Delivery<D>>, Rejection> {
    let mut slot = Some(delivery);
    if let Some(same) = (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<Box<Delivery<D>>>>()
        .and_then(Option::take)
    {
        return Ok(same);
    }
    // `D` is another type, so the slot still holds the delivery.
    let Some(delivery) = slot else {
        return Err(Rejection::new(
            crate::WebhookError::BodyRead("the delivery was already taken".into()),
            None,
        ));
    };
    match delivery.reparse() {
        Ok(parsed) => Ok(Box::new(parsed)),
        Err(error) => Err(Rejection::new(error, Some(&delivery.webhook_id))),
    }
}

/// How an adapter's `Webhook<D>` holds its delivery, for [`webhook_accessors!`]: by value, or
/// boxed as [`Accepted::delivery`] gives it.
#[doc(hidden)]
pub trait HeldDelivery<D> {
    /// The delivery.
    fn held(&self) -> &Delivery<D>;
    /// The delivery, by value.
    fn into_held(self) -> Delivery<D>;
}

impl<D> HeldDelivery<D> for Delivery<D> {
    fn held(&self) -> &Delivery<D> {
        self
    }

    fn into_held(self) -> Delivery<D> {
        self
    }
}

impl<D> HeldDelivery<D> for Box<Delivery<D>> {
    fn held(&self) -> &Delivery<D> {
        self
    }

    fn into_held(self) -> Delivery<D> {
        *self
    }
}

/// The default body limit: 1 MiB, above the largest payload a Standard Webhooks sender sends.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A delivery that passed every check, with the obligation to report how its handler did.
///
/// Small on purpose: an `Accepted` moves several times per delivery (out of the port, through
/// every adapter's futures, into the framework's request), so the delivery, about 200 bytes,
/// is boxed once where it is parsed, and each later move copies a pointer, not the delivery.
#[derive(Debug)]
pub struct Accepted<D> {
    /// The verified, parsed delivery, for the handler (boxed: see above; `*accepted.delivery`
    /// for the value).
    pub delivery: Box<Delivery<D>>,
    /// To be finished with the handler's status.
    pub completion: Completion,
}

/// Reports the handler's outcome for one delivery: with idempotency, it holds the claim of its
/// `webhook-id`.
///
/// Call [`finish`](Self::finish) with the handler's status. If the handler panics or the request
/// is cancelled, just drop it: dropping an unfinished completion releases the claim (at once for
/// the memory store, in the background for stores that need I/O, or when the lease expires), so
/// that the sender's retry is processed.
#[derive(Debug)]
#[must_use = "finish the completion with the handler's status"]
pub struct Completion {
    // Boxed: a `Completion` moves several times per delivery, by value through every adapter's
    // layers, and under 128 bytes the compiler moves it in registers instead of calling
    // `memcpy`; the claim alone is about 100 bytes, and only idempotency users have one.
    claim: Option<Box<ClaimGuard>>,
    stored: bool,
    observed: Option<Observed>,
}

impl Completion {
    pub(crate) fn claimed(claim: Option<ClaimGuard>) -> Self {
        Self {
            claim: claim.map(Box::new),
            stored: false,
            observed: None,
        }
    }

    pub(crate) fn stored() -> Self {
        Self {
            claim: None,
            stored: true,
            observed: None,
        }
    }

    /// Records the handler's HTTP status for this delivery: a 2xx marks the id processed (its
    /// duplicates are then answered 200 without running the handler), anything else releases it
    /// so that the sender's retry runs the handler again. Store failures are logged, not
    /// returned: the response is already decided.
    ///
    /// The receipt is logged and counted when this is called; the future only writes to the
    /// idempotency store, and holds nothing else.
    pub fn finish(self, status: u16) -> impl std::future::Future<Output = ()> + Send {
        if let Some(observed) = &self.observed {
            observed.answered(status, self.stored);
        }
        let claim = self.claim;
        async move {
            if let Some(claim) = claim {
                claim.finish(status).await;
            }
        }
    }

    /// The delivery's span, opened by the port (`webhook.id`, `webhook.type`,
    /// `webhook.timestamp`, then `http.response.status_code` and `elapsed_ms`): adapters run the
    /// handler inside it, so that the handler's logs carry the delivery. `Span::none()` when no
    /// subscriber took `info` as the delivery arrived, or when it did not come through
    /// [`Receiver::receive`](crate::Receiver::receive).
    pub fn span(&self) -> tracing::Span {
        self.observed
            .as_ref()
            .and_then(Observed::span)
            .map_or_else(tracing::Span::none, tracing::Span::clone)
    }

    /// `future` (the handler) run inside the delivery's [`span`](Self::span).
    pub fn in_span<F: std::future::Future>(&self, future: F) -> InSpan<'_, F> {
        InSpan::new(self.observed.as_ref().and_then(Observed::span), future)
    }

    #[cfg(feature = "receive")]
    pub(crate) fn observe(&mut self, observed: Observed) {
        self.observed = Some(observed);
    }

    /// Whether this delivery holds an idempotency claim (false without idempotency, with the
    /// handoff, or when a fail-open receiver let it through while the store was unavailable).
    pub fn is_claimed(&self) -> bool {
        self.claim.is_some()
    }

    /// Whether this delivery was written to the handoff's queue before the handler runs (the
    /// handler then only acknowledges it).
    pub fn is_stored(&self) -> bool {
        self.stored
    }
}

/// Implements the accessors and the `Deref` (to [`WebhookEvent`](crate::WebhookEvent)) that
/// every adapter's `Webhook<D>` shares, for a struct with a `delivery: Delivery<D>` field (or
/// `Box<Delivery<D>>`, as [`Accepted::delivery`] gives it).
///
/// ```
/// use agentsync_webhooks_core::{Delivery, EventData};
///
/// /// A framework's handler argument.
/// pub struct Webhook<D = EventData> {
///     delivery: Delivery<D>,
/// }
///
/// agentsync_webhooks_core::adapter::webhook_accessors!(Webhook);
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! webhook_accessors {
    ($webhook:ident) => {
        impl<D> $webhook<D> {
            /// The whole delivery: event, `webhook-id`, `webhook-timestamp`, raw body.
            pub fn delivery(&self) -> &$crate::Delivery<D> {
                $crate::adapter::HeldDelivery::held(&self.delivery)
            }

            /// `webhook-id`: the same on every retry of this message (the idempotency key).
            pub fn webhook_id(&self) -> &str {
                &self.delivery().webhook_id
            }

            /// The signed `webhook-timestamp` of this attempt, in seconds since the Unix epoch.
            pub fn webhook_timestamp(&self) -> i64 {
                self.delivery().webhook_timestamp
            }

            /// The body exactly as received and verified.
            pub fn raw_body(&self) -> &$crate::adapter::Bytes {
                &self.delivery().raw_body
            }

            /// The event, e.g. to move it into a background task.
            pub fn into_event(self) -> $crate::WebhookEvent<D> {
                self.into_delivery().event
            }

            /// The delivery: event, `webhook-id`, `webhook-timestamp`, raw body.
            pub fn into_delivery(self) -> $crate::Delivery<D> {
                $crate::adapter::HeldDelivery::into_held(self.delivery)
            }
        }

        /// Derefs to the event, so `webhook.event_type` and `webhook.data` read directly.
        impl<D> ::core::ops::Deref for $webhook<D> {
            type Target = $crate::WebhookEvent<D>;

            fn deref(&self) -> &Self::Target {
                &self.delivery().event
            }
        }
    };
}

/// Implements the configuration methods that every adapter's layer, middleware or filter builder
/// shares, for a struct whose only field is `receiver: Receiver`: the same names as
/// [`Receiver`](crate::Receiver)'s own, forwarded to it.
///
/// ```
/// use agentsync_webhooks_core::{MemoryStore, Receiver, Verifier};
///
/// /// A framework's middleware.
/// pub struct WebhookMiddleware {
///     receiver: Receiver,
/// }
///
/// agentsync_webhooks_core::adapter::receiver_config!(WebhookMiddleware);
///
/// let middleware = WebhookMiddleware::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
///     .with_body_limit(64 * 1024)
///     .with_idempotency(MemoryStore::new());
/// assert_eq!(middleware.receiver().body_limit(), 64 * 1024);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! receiver_config {
    ($builder:ident) => {
        impl $builder {
            /// Verifies with `verifier`, with the default body limit (1 MiB) and body-read
            /// deadline (10 s), and no idempotency.
            pub fn new(verifier: $crate::Verifier) -> Self {
                Self::from_receiver($crate::Receiver::new(verifier))
            }

            /// Runs an already configured [`Receiver`]($crate::Receiver).
            pub fn from_receiver(receiver: $crate::Receiver) -> Self {
                Self { receiver }
            }

            /// Sets the largest body accepted, in bytes; a larger one is answered 413 before it
            /// is read (declared) or at the chunk that crosses the limit (streamed).
            pub fn with_body_limit(mut self, limit: usize) -> Self {
                self.receiver = self.receiver.with_body_limit(limit);
                self
            }

            /// Sets how long a body may take to arrive; a slower one is answered 408
            /// (`body_read_timeout`) without running the handler, and its connection is closed.
            pub fn with_body_read_timeout(mut self, timeout: ::std::time::Duration) -> Self {
                self.receiver = self.receiver.with_body_read_timeout(timeout);
                self
            }

            /// Sets how long a handler may take to answer before a warning that names the
            /// delivery and points to the handoff (default 3 s of the sender's 5 s).
            pub fn with_answer_budget(mut self, budget: ::std::time::Duration) -> Self {
                self.receiver = self.receiver.with_answer_budget(budget);
                self
            }

            /// Sets how late an event may arrive (received minus occurred) before the port logs
            /// a warning naming it (default 15 minutes).
            pub fn with_delay_warning(mut self, threshold: ::std::time::Duration) -> Self {
                self.receiver = self.receiver.with_delay_warning(threshold);
                self
            }

            /// Processes each `webhook-id` once: pass a store (such as `MemoryStore` for one
            /// process, `RedisStore` for several) or an `Idempotency` to set its key prefix,
            /// lease, TTL or fail-open. A retry of a delivery whose handler answered 2xx is
            /// answered 200 with an empty body, one still being processed 409 with
            /// `Retry-After`, a store that cannot answer 503 with `Retry-After`, none of them
            /// running the handler; a non-2xx answer, an error, a panic or a dropped request
            /// releases the id, so that the sender's retry is processed.
            pub fn with_idempotency(
                mut self,
                idempotency: impl Into<$crate::idempotency::Idempotency>,
            ) -> Self {
                self.receiver = self.receiver.with_idempotency(idempotency);
                self
            }

            /// Writes every verified delivery to a durable queue before the handler runs (the
            /// handler then only answers 202; workers do the work). A delivery already stored is
            /// answered 200 with an empty body, a queue that cannot be written 503 with
            /// `Retry-After`. Replaces idempotency: the queue de-duplicates.
            pub fn with_handoff(mut self, queue: impl $crate::handoff::Handoff) -> Self {
                self.receiver = self.receiver.with_handoff(queue);
                self
            }

            /// Runs `router` on every verified delivery, in the request, and answers with its
            /// result (200 processed, 500 failed so that the sender retries) instead of calling
            /// the framework's handler. For work longer than the sender's 5 s, prefer
            /// [`with_handoff`](Self::with_handoff) and the same router on workers.
            pub fn with_route(mut self, router: $crate::EventRouter) -> Self {
                self.receiver = self.receiver.with_route(router);
                self
            }

            /// The receiver every request goes through.
            pub fn receiver(&self) -> &$crate::Receiver {
                &self.receiver
            }
        }
    };
}

/// Defines an adapter's `WebhookRejection`: a newtype over the core [`Rejection`] that derefs to
/// it and converts from it, with `Display` and `Error`, so that every framework's rejection has
/// the same shape and only its response conversion differs. Doc comments and attributes given
/// before the name go on the type.
///
/// ```
/// use agentsync_webhooks_core::{WebhookError, adapter::Rejection};
///
/// agentsync_webhooks_core::adapter::webhook_rejection! {
///     /// Why a framework's extractor refused a request.
///     WebhookRejection
/// }
///
/// let rejection = WebhookRejection::from(Rejection::new(WebhookError::InvalidTimestamp, None));
/// assert_eq!((rejection.status(), rejection.code()), (400, "invalid_timestamp"));
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! webhook_rejection {
    ($(#[$meta:meta])* $rejection:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $rejection(pub $crate::adapter::Rejection);

        impl ::core::ops::Deref for $rejection {
            type Target = $crate::adapter::Rejection;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl ::core::convert::From<$crate::adapter::Rejection> for $rejection {
            fn from(rejection: $crate::adapter::Rejection) -> Self {
                Self(rejection)
            }
        }

        impl ::core::fmt::Display for $rejection {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::error::Error for $rejection {
            fn source(&self) -> ::core::option::Option<&(dyn ::std::error::Error + 'static)> {
                ::core::option::Option::Some(&self.0)
            }
        }
    };
}
