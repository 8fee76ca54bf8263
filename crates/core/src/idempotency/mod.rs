//! Each event processed once: the idempotency store contract, its configuration, and the
//! in-memory store.
//!
//! AgentSync repeats `webhook-id` on every retry (for about a day), so the id is the key. A naive
//! "seen set" loses events: if an id is recorded before the handler succeeds and the handler then
//! fails, the sender's retry is dropped. So a delivery goes through three steps instead:
//!
//! 1. **claim** the id after the signature holds: a new id starts a *lease*; an id already done is
//!    a duplicate (200, empty, handler not run); an id whose lease is running is in flight (409
//!    with `Retry-After`, handler not run).
//! 2. the handler runs;
//! 3. a 2xx **completes** the claim (kept for a TTL longer than the sender's retry horizon, 72 h by
//!    default); anything else, a panic or a cancelled request **releases** it, so that the
//!    sender's next retry is processed. A lease that is never completed or released (the process
//!    was killed) expires after [`DEFAULT_LEASE`] and the id becomes claimable again.
//!
//! The [`Receiver`](crate::Receiver) runs these steps when it is given an [`Idempotency`]
//! (`Receiver::with_idempotency`). Stores implement [`IdempotencyStore`]: [`MemoryStore`] for one
//! process, `agentsync-webhooks-redis` for several instances, or your own database.
//!
//! A replay from the sender's portal of an event that already completed reuses its id and is
//! answered as a duplicate. To have it processed again, [`forget`](Idempotency::forget) the id
//! first.
//!
//! ```
//! use agentsync_webhooks_core::{EventData, EventType, Receiver, Signer, Verifier, WebhookError};
//! use agentsync_webhooks_core::idempotency::{Idempotency, MemoryStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let idempotency = Idempotency::new(MemoryStore::new()).with_key_prefix("shop-eu:");
//! let receiver = Receiver::new(Verifier::new(secret)?).with_idempotency(idempotency.clone());
//!
//! let request = Signer::new(secret)?.example(EventType::ProducerSyncUpdatesAvailable);
//! let headers = request.headers.to_pairs();
//!
//! // First delivery: the handler runs and answers 200, which completes the claim.
//! let accepted = receiver.accept::<EventData>(&headers, request.body.clone().into()).await?;
//! accepted.completion.finish(200).await;
//!
//! // The sender's retry of the same id: a duplicate, answered 200 without running the handler.
//! let again = receiver.accept::<EventData>(&headers, request.body.clone().into()).await;
//! assert!(matches!(again, Err(WebhookError::Duplicate)));
//!
//! // An operator wants it processed again.
//! idempotency.forget(&request.headers.id).await?;
//! assert!(receiver.accept::<EventData>(&headers, request.body.into()).await.is_ok());
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

mod config;
#[cfg(feature = "testing")]
#[doc(hidden)] // the store contract suite, for store crates' tests, not part of the public API
pub mod contract;
mod memory;
mod store;

pub use self::{
    config::{
        DEFAULT_KEY_PREFIX, DEFAULT_LEASE, DEFAULT_TTL, DEFAULT_UNAVAILABLE_RETRY_AFTER,
        Idempotency,
    },
    memory::{DEFAULT_MEMORY_CAPACITY, MemoryStore},
    store::{Claim, IdempotencyStore, LeaseToken, StoreError, StoreErrorKind, StoreFuture},
};

pub(crate) use self::config::{ClaimGuard, whole_seconds};
