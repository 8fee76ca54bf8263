//! The one pipeline every adapter runs: limit, verify, parse, and (with idempotency) claim.

use bytes::Bytes;

use crate::{
    BodyCollector, Delivery, EventPayload, HeaderLookup, Verifier, WebhookError,
    body::DEFAULT_BODY_LIMIT,
};

/// Everything an adapter needs to accept deliveries: the verifier and the body limit.
///
/// Adapters hold one (it is cheap to clone), translate their request into headers and body,
/// call [`accept`](Receiver::accept), and after the handler ran tell the result to
/// [`Accepted::finish`]. Every decision lives here, so every framework answers alike.
#[derive(Debug, Clone)]
pub struct Receiver {
    verifier: Verifier,
    body_limit: usize,
}

impl Receiver {
    /// A receiver with the default body limit.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Sets the largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`]).
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
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

    /// Verifies and parses a delivery whose body was collected within the limit.
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
        let delivery = self.verifier.verify_delivery(headers, body)?;
        Ok(Accepted {
            delivery,
            completion: Completion { _private: () },
        })
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

/// Reports the handler's outcome for one delivery.
#[derive(Debug)]
#[must_use = "finish the completion with the handler's status"]
pub struct Completion {
    _private: (),
}

impl Completion {
    /// Records the handler's HTTP status for this delivery.
    pub async fn finish(self, status: u16) {
        let _ = status;
    }
}
