//! The contract between the workers and a queue engine: one trait, one contract suite.

use std::{future::Future, pin::Pin, time::Duration};

use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery},
    idempotency::{StoreError, StoreErrorKind},
};

use crate::record::{Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord};

/// The future every backend method returns: boxed so that backends live behind
/// `Arc<dyn Backend>`, `Send` so that it runs on any multi-threaded runtime.
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The backend's proof of one claim of one job (a lease token, a stream entry id, ...), opaque to
/// the workers. Only the holder of the current receipt can settle the job, so a worker whose lease
/// expired and whose job was re-claimed by another cannot undo its successor's work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

/// The token one claim leases its jobs under, chosen by the caller before the call, so that a
/// claim whose answer never arrived (a timeout: the engine may have committed it) can be given
/// back with [`Backend::abandon`] instead of leaving its jobs leased to nobody, their attempt
/// counted, until the lease ends.
///
/// It also names the worker that claims, for the delivery's history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken {
    token: String,
    worker: String,
}

impl ClaimToken {
    /// A fresh random token (32 hex digits) for this process's worker ([`default_worker`]).
    ///
    /// ```
    /// let token = agentsync_webhooks_queue::ClaimToken::new()?;
    /// assert_eq!(token.as_str().len(), 32);
    /// # Ok::<(), agentsync_webhooks_queue::StoreError>(())
    /// ```
    pub fn new() -> Result<Self, StoreError> {
        Self::for_worker(default_worker())
    }

    /// A fresh random token for the worker named `worker` (shown in the history of what it runs).
    ///
    /// ```
    /// let token = agentsync_webhooks_queue::ClaimToken::for_worker("billing-1")?;
    /// assert_eq!(token.worker(), "billing-1");
    /// # Ok::<(), agentsync_webhooks_queue::StoreError>(())
    /// ```
    pub fn for_worker(worker: impl Into<String>) -> Result<Self, StoreError> {
        Ok(Self {
            token: new_lease_token()?,
            worker: worker.into(),
        })
    }

    /// The token as text, as engines store it.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// The claiming worker's name.
    pub fn worker(&self) -> &str {
        &self.worker
    }
}

/// This process's worker name: the host name and the process id (`host/1234`), what the
/// history shows when the workers were not given a name.
pub fn default_worker() -> String {
    static NAME: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|host| host.trim().to_owned())
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| "worker".to_owned());
        format!("{host}/{}", std::process::id())
    });
    NAME.clone()
}

/// What one [`Backend::purge`] deleted: a batch of each kind at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Done deliveries past the retention (their `webhook-id` is forgotten with them).
    pub done: u64,
    /// Dead letters past the dead-letter retention (their `webhook-id` too).
    pub dead: u64,
    /// A batch was full: call again to purge the rest.
    pub more: bool,
}

/// One claimed job: the stored delivery, which attempt this is, and the claim's receipt.
#[derive(Debug, Clone)]
pub struct Job {
    /// The delivery as the port stored it.
    pub delivery: ReceivedDelivery,
    /// 1 for the first run; every claim counts, including a re-claim after a lease expired (a
    /// killed worker), so that a delivery that kills its worker still reaches the dead letters.
    pub attempt: u32,
    /// Settles this claim.
    pub receipt: Receipt,
}

/// A delivery that will not be retried any more, kept until it is replayed or purged.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The delivery as the port stored it.
    pub delivery: ReceivedDelivery,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last error, as the handler reported it.
    pub last_error: String,
    /// When it was buried, in milliseconds since the Unix epoch.
    pub died_at_ms: i64,
}

/// What a queue holds now, for metrics and health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Jobs waiting or running (not done, not dead).
    pub depth: u64,
    /// Age of the oldest waiting or running job, if any.
    pub oldest_age: Option<Duration>,
    /// Jobs in the dead letters.
    pub dead: u64,
}

/// A queue engine. Every method is one atomic step in the engine, and every write returns only
/// once the engine acknowledged it.
///
/// [`enqueue`](Self::enqueue) and [`replay`](Self::replay) answer someone (the sender's 2xx, an
/// operator), so they return only once the write is durable in the engine's durable setting. The
/// workers' bookkeeping (claim, complete, retry, extend, release, bury) may be committed with a
/// weaker sync where the engine allows it: a crash of the engine can then forget the last few of
/// those, and the jobs concerned run again (delivery is at least once, as after a worker crash),
/// but never an answered delivery.
///
/// The `contract` module (feature `testing`) is the test suite every backend passes.
///
/// Re-claim is by lease expiry, never by worker names: a job claimed with `lease` and neither
/// settled nor extended within it is claimable again, so a killed worker's jobs come back on
/// their own.
pub trait Backend: Send + Sync + 'static {
    /// Stores `delivery` unless its `webhook-id` is known (waiting, running, done within the
    /// retention, or dead), de-duplicating and writing in one atomic step.
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> QueueFuture<'a, Enqueued>;

    /// Claims up to `max` jobs that are due (new, a retry whose time has come, or a claim whose
    /// lease expired), each leased under `token` for `lease`, and counts the attempt. Returns at
    /// once, possibly with none. Times (due, lease end) are the engine's clock, never the
    /// caller's, so instances whose clocks differ agree on when a lease ends.
    fn claim_with<'a>(
        &'a self,
        token: &'a ClaimToken,
        max: usize,
        lease: Duration,
    ) -> QueueFuture<'a, Vec<Job>>;

    /// [`claim_with`](Self::claim_with) under a fresh [`ClaimToken`].
    fn claim(&self, max: usize, lease: Duration) -> QueueFuture<'_, Vec<Job>> {
        Box::pin(async move {
            let token = ClaimToken::new()?;
            self.claim_with(&token, max, lease).await
        })
    }

    /// Gives back every job still leased under `token` (a claim whose answer was lost), due at
    /// once, without counting that attempt; returns how many. A job settled or re-claimed
    /// since is left alone. Best effort for the caller: what it cannot give back returns when
    /// its lease ends, its attempt counted.
    fn abandon<'a>(&'a self, token: &'a ClaimToken) -> QueueFuture<'a, u64>;

    /// Marks the job done: it is never run again, and its `webhook-id` stays known for the
    /// retention, so that the sender's late retries are duplicates. `Ok(false)` if the receipt is
    /// no longer the job's (the lease expired and another worker took it).
    fn complete<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool>;

    /// Schedules the job to run again `after` from now (the engine's now), recording `error`.
    /// `Ok(false)` as for `complete`.
    fn retry<'a>(&'a self, job: &'a Job, after: Duration, error: &'a str) -> QueueFuture<'a, bool>;

    /// Extends the job's lease to `lease` from now, for handlers that run longer than one lease
    /// (workers call it while a handler runs). `Ok(false)` as for `complete`.
    fn extend<'a>(&'a self, job: &'a Job, lease: Duration) -> QueueFuture<'a, bool>;

    /// Gives the job back, due at once, without counting this attempt (graceful shutdown).
    /// `Ok(false)` as for `complete`.
    fn release<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool>;

    /// Moves the job to the dead letters with `error`. `Ok(false)` as for `complete`.
    fn bury<'a>(&'a self, job: &'a Job, error: &'a str) -> QueueFuture<'a, bool>;

    /// The dead letters, oldest first, at most `limit`.
    fn dead_letters(&self, limit: usize) -> QueueFuture<'_, Vec<DeadLetter>>;

    /// One dead letter by `webhook-id`.
    fn dead_letter<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeadLetter>>;

    /// Moves a dead letter back to the queue, due at once with its attempts reset. `Ok(false)` if
    /// there is no dead letter with this id.
    fn replay<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, bool>;

    /// Deliveries matching `filter`, newest first (by received-at, then id), at most `limit`,
    /// starting after `after` (the previous page's [`DeliveryPage::next`]). Served by an index:
    /// never a scan of the whole record, never an `OFFSET`.
    fn list<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        after: Option<&'a Cursor>,
        limit: usize,
    ) -> QueueFuture<'a, DeliveryPage> {
        let _ = (filter, after, limit);
        not_yet("list deliveries")
    }

    /// How many deliveries match `filter` (its states aside: every state is counted), by state
    /// and by type.
    fn counts<'a>(&'a self, filter: &'a DeliveryFilter) -> QueueFuture<'a, DeliveryCounts> {
        let _ = filter;
        not_yet("count deliveries")
    }

    /// One delivery with its history, in any state.
    fn delivery<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeliveryRecord>> {
        let _ = webhook_id;
        not_yet("show a delivery")
    }

    /// Runs a done or dead delivery again: waiting, due at once, attempts counted anew, the
    /// replay in its history with `by` (who asked). `Ok(false)` if there is no such delivery or
    /// it is waiting, running or retrying.
    fn replay_by<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        let _ = (webhook_id, by);
        not_yet("replay a delivery")
    }

    /// [`replay_by`](Self::replay_by) every done or dead delivery matching `filter`, at most
    /// `max` (and at most [`MAX_BULK`](crate::record::MAX_BULK)) newest first, in one atomic
    /// step; returns how many.
    fn replay_matching<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        by: &'a str,
        max: usize,
    ) -> QueueFuture<'a, u64> {
        let _ = (filter, by, max);
        not_yet("replay deliveries")
    }

    /// Moves a waiting or retrying delivery to the dead letters ("discarded by operator"),
    /// recording `by`. `Ok(false)` if there is none in those states (a running one is its
    /// worker's until it settles).
    fn discard<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        let _ = (webhook_id, by);
        not_yet("discard a delivery")
    }

    /// Forgets a done or dead delivery's id: the sender's next resend of it is processed as new
    /// (the record stays, with `by` in its history, until that resend or the retention).
    /// `Ok(false)` if there is none in those states.
    fn forget<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        let _ = (webhook_id, by);
        not_yet("forget an id")
    }

    /// Deletes up to `max` dead letters that died before `before_ms` (ms since the epoch),
    /// oldest first, their ids forgotten with them; returns how many.
    fn purge_dead(&self, before_ms: i64, max: usize) -> QueueFuture<'_, u64> {
        let _ = (before_ms, max);
        not_yet("purge dead letters")
    }

    /// Depth, oldest age and dead letters now.
    fn stats(&self) -> QueueFuture<'_, QueueStats>;

    /// Deletes one batch of what outlived its retention: done deliveries past the retention
    /// and dead letters past the dead-letter retention, each `webhook-id` forgotten with its
    /// delivery. Never holds a lock that stalls enqueues for long; the workers call it
    /// periodically, off the claim's path.
    fn purge(&self) -> QueueFuture<'_, Purged>;
}

/// What a backend without the delivery record answers.
fn not_yet<'a, T: 'a>(what: &str) -> QueueFuture<'a, T> {
    let error = StoreError::new(
        StoreErrorKind::Other,
        format!("this queue engine cannot {what} yet"),
    );
    Box::pin(async move { Err(error) })
}

/// Milliseconds in `duration`, saturated to `i64` (what every engine stores).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "redis", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A fresh random lease token for one claim, as text (32 hex digits).
pub(crate) fn new_lease_token() -> Result<String, StoreError> {
    agentsync_webhooks_core::idempotency::LeaseToken::random().map(|token| token.to_string())
}

/// An attempt count read back from an engine, as the `u32` a [`Job`] holds (saturated, never
/// negative).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "redis", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn attempt_count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}
