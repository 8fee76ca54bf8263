//! How a receiver uses a store: namespace, lease, TTL, failure policy; and the claim a delivery
//! holds while its handler runs.

use std::{fmt, sync::Arc, time::Duration};

use super::{Claim, IdempotencyStore, LeaseToken, StoreError};
use crate::WebhookError;

/// How long a claim may stay unfinished before its id is claimable again: 60 s, well beyond the
/// 5 s a sender waits for an answer, short enough that a killed process delays a retry little.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// How long a completed id is remembered: 72 h, beyond the sender's retry horizon (about a day).
pub const DEFAULT_TTL: Duration = Duration::from_secs(72 * 60 * 60);

/// The namespace put before every `webhook-id` in the store.
pub const DEFAULT_KEY_PREFIX: &str = "agentsync-webhooks:";

/// The `Retry-After` sent with a 503 when the store is unavailable.
pub const DEFAULT_UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A store plus how the receiver uses it. Cheap to clone: keep a clone to
/// [`forget`](Self::forget) ids.
///
/// Fail-closed by default: when the store cannot answer, deliveries get a 503 with
/// `Retry-After` and are not processed (the sender retries later). [`fail_open`](Self::fail_open)
/// processes them without de-duplication instead, logging a warning for every such delivery.
///
/// ```
/// use std::time::Duration;
/// use agentsync_webhooks_core::idempotency::{Idempotency, MemoryStore};
///
/// let idempotency = Idempotency::new(MemoryStore::with_capacity(50_000))
///     .with_key_prefix("tenant-42:")
///     .with_lease(Duration::from_secs(30))
///     .with_ttl(Duration::from_secs(96 * 3600));
/// assert_eq!(idempotency.key("msg_1"), "tenant-42:msg_1");
/// ```
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    key_prefix: Arc<str>,
    lease: Duration,
    ttl: Duration,
    fail_open: bool,
    unavailable_retry_after: Duration,
}

impl Idempotency {
    /// Uses `store` with the defaults: [`DEFAULT_KEY_PREFIX`], [`DEFAULT_LEASE`],
    /// [`DEFAULT_TTL`], fail-closed.
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// Uses a store that is already shared.
    pub fn from_arc(store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            store,
            key_prefix: Arc::from(DEFAULT_KEY_PREFIX),
            lease: DEFAULT_LEASE,
            ttl: DEFAULT_TTL,
            fail_open: false,
            unavailable_retry_after: DEFAULT_UNAVAILABLE_RETRY_AFTER,
        }
    }

    /// Sets the namespace put before every id, so that several endpoints or tenants can share a
    /// store (default [`DEFAULT_KEY_PREFIX`]). For Redis Cluster see `agentsync-webhooks-redis`.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Arc::from(prefix.into());
        self
    }

    /// Sets how long an unfinished claim blocks its id (default [`DEFAULT_LEASE`], at least
    /// 1 ms). Longer than your slowest handler, or a slow delivery can be processed twice.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// Sets how long a completed id is remembered (default [`DEFAULT_TTL`], at least 1 ms).
    /// Longer than the sender's retry horizon, or a late retry is processed again.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// Processes deliveries without de-duplication while the store is unavailable, instead of
    /// answering 503. Every such delivery is logged as a warning. Choose it only if processing
    /// an event twice is better than processing it late.
    pub fn fail_open(mut self) -> Self {
        self.fail_open = true;
        self
    }

    /// Sets the `Retry-After` of the 503 sent while the store is unavailable (default
    /// [`DEFAULT_UNAVAILABLE_RETRY_AFTER`]).
    pub fn with_unavailable_retry_after(mut self, retry_after: Duration) -> Self {
        self.unavailable_retry_after = retry_after;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.store
    }

    /// The namespace put before every id.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// How long an unfinished claim blocks its id.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How long a completed id is remembered.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether deliveries are processed while the store is unavailable.
    pub fn is_fail_open(&self) -> bool {
        self.fail_open
    }

    /// The store key of `webhook_id`: the prefix followed by the id.
    pub fn key(&self, webhook_id: &str) -> String {
        let mut key = String::with_capacity(self.key_prefix.len() + webhook_id.len());
        key.push_str(&self.key_prefix);
        key.push_str(webhook_id);
        key
    }

    /// Forgets `webhook_id` (in this namespace), so that its next delivery, such as a replay from
    /// the sender's portal, is processed again. `Ok(true)` if the store held it.
    pub async fn forget(&self, webhook_id: &str) -> Result<bool, StoreError> {
        let key = self.key(webhook_id);
        self.store.forget(&key).await
    }

    /// Claims `webhook_id` for one delivery: `Ok(Some(guard))` to process it, `Ok(None)` to
    /// process it untracked (fail-open), or the refusal (duplicate, in flight, unavailable).
    pub(crate) async fn claim(&self, webhook_id: &str) -> Result<Option<ClaimGuard>, WebhookError> {
        let key = self.key(webhook_id);
        match self.store.claim(&key, self.lease).await {
            Ok(Claim::New(token)) => Ok(Some(ClaimGuard {
                store: Arc::clone(&self.store),
                id_start: self.key_prefix.len(),
                key,
                token,
                ttl: self.ttl,
                armed: true,
            })),
            Ok(Claim::Done) => Err(WebhookError::Duplicate),
            Ok(Claim::InFlight { retry_after }) => Err(WebhookError::InFlight {
                retry_after_secs: whole_seconds(retry_after.unwrap_or(self.lease)),
            }),
            Err(err) if self.fail_open => {
                tracing::warn!(
                    webhook_id,
                    error = %err,
                    "idempotency store unavailable: processing without de-duplication (fail-open)"
                );
                Ok(None)
            }
            Err(err) => {
                tracing::warn!(webhook_id, error = %err, "idempotency store unavailable");
                Err(WebhookError::StoreUnavailable {
                    detail: err.kind().as_str().to_owned(),
                    retry_after_secs: whole_seconds(self.unavailable_retry_after),
                })
            }
        }
    }
}

/// Any store becomes an [`Idempotency`] with the defaults, so `with_idempotency(store)` works.
impl<S: IdempotencyStore> From<S> for Idempotency {
    fn from(store: S) -> Self {
        Self::new(store)
    }
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("key_prefix", &self.key_prefix)
            .field("lease", &self.lease)
            .field("ttl", &self.ttl)
            .field("fail_open", &self.fail_open)
            .field("unavailable_retry_after", &self.unavailable_retry_after)
            .finish_non_exhaustive()
    }
}

/// Seconds for `Retry-After`: rounded up, at least 1.
pub(crate) fn whole_seconds(duration: Duration) -> u64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1)
}

/// The lease one delivery holds while its handler runs. Settled with the handler's status; if it
/// is dropped unsettled (panic, cancelled request, or a `finish` future dropped midway), the
/// claim is released without waiting, or left to expire.
pub(crate) struct ClaimGuard {
    store: Arc<dyn IdempotencyStore>,
    key: String,
    id_start: usize,
    token: LeaseToken,
    ttl: Duration,
    armed: bool,
}

impl ClaimGuard {
    fn webhook_id(&self) -> &str {
        self.key.get(self.id_start..).unwrap_or(&self.key)
    }

    /// Completes the claim on a 2xx, releases it otherwise.
    pub(crate) async fn finish(mut self, status: u16) {
        if !(200..300).contains(&status) {
            return self.release().await;
        }
        let result = self.store.complete(&self.key, self.token, self.ttl).await;
        // Answered: from here on, a drop must not release (the store already decided).
        self.armed = false;
        let webhook_id = self.webhook_id();
        match result {
            Ok(true) => tracing::debug!(webhook_id, status, "webhook id recorded as processed"),
            Ok(false) => tracing::warn!(
                webhook_id,
                status,
                "the handler outlived its idempotency lease, so the id is not recorded as processed and a retry will run it again: raise the lease"
            ),
            Err(err) => tracing::error!(
                webhook_id,
                status,
                error = %err,
                "could not record the webhook id as processed: a retry will run it again once the lease expires"
            ),
        }
    }

    /// Releases the claim, so that the sender's retry is processed.
    pub(crate) async fn release(mut self) {
        let result = self.store.release(&self.key, self.token).await;
        self.armed = false;
        let webhook_id = self.webhook_id();
        match result {
            Ok(_) => tracing::debug!(webhook_id, "webhook id released for a retry"),
            Err(err) => tracing::warn!(
                webhook_id,
                error = %err,
                "could not release the webhook id: its retry waits until the lease expires"
            ),
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.armed {
            tracing::debug!(
                webhook_id = self.webhook_id(),
                "delivery abandoned before it finished: releasing its claim"
            );
            self.store.release_detached(&self.key, self.token);
        }
    }
}

impl fmt::Debug for ClaimGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimGuard")
            .field("key", &self.key)
            .field("token", &self.token)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
    }
}
