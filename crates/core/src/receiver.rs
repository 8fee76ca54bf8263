//! The one pipeline every adapter runs: limit, verify, parse, and (with idempotency) claim.

use bytes::Bytes;

use crate::{
    BodyCollector, Delivery, EventPayload, HeaderLookup, Verifier, WebhookError,
    body::DEFAULT_BODY_LIMIT,
    idempotency::{ClaimGuard, Idempotency},
};

/// Everything an adapter needs to accept deliveries: the verifier, the body limit and, if
/// enabled, idempotency.
///
/// Adapters hold one (it is cheap to clone), translate their request into headers and body,
/// call [`accept`](Receiver::accept), and after the handler ran report its status with
/// [`Completion::finish`]. Every decision lives here, so every framework answers alike.
#[derive(Debug, Clone)]
pub struct Receiver {
    verifier: Verifier,
    body_limit: usize,
    idempotency: Option<Idempotency>,
}

impl Receiver {
    /// A receiver with the default body limit.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            body_limit: DEFAULT_BODY_LIMIT,
            idempotency: None,
        }
    }

    /// Sets the largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`]).
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// Processes each `webhook-id` once: pass a store (such as
    /// [`MemoryStore`](crate::idempotency::MemoryStore)) for the defaults, or an
    /// [`Idempotency`] to set the key prefix, lease, TTL or fail-open.
    ///
    /// [`accept`](Self::accept) then claims the id once the signature holds, answering a
    /// duplicate of a processed id with [`WebhookError::Duplicate`] (200, empty), one being
    /// processed with [`WebhookError::InFlight`] (409) and a store failure with
    /// [`WebhookError::StoreUnavailable`] (503), without running the handler.
    /// [`Completion::finish`] records a 2xx as processed and releases the id otherwise;
    /// dropping the completion unfinished (a panic, a cancelled request) releases it too.
    ///
    /// ```
    /// use agentsync_webhooks_core::{Receiver, Verifier, idempotency::{Idempotency, MemoryStore}};
    ///
    /// let verifier = Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    /// let receiver = Receiver::new(verifier.clone()).with_idempotency(MemoryStore::new());
    /// let namespaced = Receiver::new(verifier)
    ///     .with_idempotency(Idempotency::new(MemoryStore::new()).with_key_prefix("billing:"));
    /// assert_eq!(namespaced.idempotency().map(Idempotency::key_prefix), Some("billing:"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_idempotency(mut self, idempotency: impl Into<Idempotency>) -> Self {
        self.idempotency = Some(idempotency.into());
        self
    }

    /// The idempotency settings, if enabled (to [`forget`](Idempotency::forget) an id).
    pub fn idempotency(&self) -> Option<&Idempotency> {
        self.idempotency.as_ref()
    }

    /// The largest body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// A collector for a body of declared length `content_length`, bounded by the limit.
    pub fn collector(&self, content_length: Option<u64>) -> Result<BodyCollector, WebhookError> {
        BodyCollector::new(content_length, self.body_limit)
    }

    /// Verifies, claims (with idempotency) and parses a delivery whose body was collected within
    /// the limit.
    ///
    /// The id is claimed after the signature holds and before the body is parsed; a body that
    /// then fails to parse releases the claim. The returned future is `Send` whatever `D` is.
    pub async fn accept<D: EventPayload>(
        &self,
        headers: &(impl HeaderLookup + ?Sized),
        body: Bytes,
    ) -> Result<Accepted<D>, WebhookError> {
        if body.len() > self.body_limit {
            return Err(WebhookError::PayloadTooLarge {
                limit: self.body_limit,
            });
        }
        let verified = self.verifier.verify(headers, &body)?;
        let claim = match &self.idempotency {
            Some(idempotency) => idempotency.claim(verified.id).await?,
            None => None,
        };
        // The parse result must not outlive this statement: holding a `D` across the release's
        // `.await` would make the future `Send` only for `Send` payloads.
        let err = match Delivery::parse(verified.id, verified.timestamp, body) {
            Ok(delivery) => {
                return Ok(Accepted {
                    delivery,
                    completion: Completion { claim },
                });
            }
            Err(err) => err,
        };
        if let Some(claim) = claim {
            claim.release().await;
        }
        Err(err)
    }
}

/// A delivery that passed every check, with the obligation to report how its handler did.
#[derive(Debug)]
pub struct Accepted<D> {
    /// The verified, parsed delivery, for the handler.
    pub delivery: Delivery<D>,
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
    claim: Option<ClaimGuard>,
}

impl Completion {
    /// Records the handler's HTTP status for this delivery: a 2xx marks the id processed (its
    /// duplicates are then answered 200 without running the handler), anything else releases it
    /// so that the sender's retry runs the handler again. Store failures are logged, not
    /// returned: the response is already decided.
    pub async fn finish(self, status: u16) {
        if let Some(claim) = self.claim {
            claim.finish(status).await;
        }
    }

    /// Whether this delivery holds an idempotency claim (false without idempotency, or when a
    /// fail-open receiver let it through while the store was unavailable).
    pub fn is_claimed(&self) -> bool {
        self.claim.is_some()
    }
}
