//! The contract between the workers and a queue engine: one trait, one contract suite.

use std::{future::Future, pin::Pin, time::Duration, time::SystemTime};

use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery},
    idempotency::StoreError,
};

/// The future every backend method returns: boxed so that backends live behind
/// `Arc<dyn Backend>`, `Send` so that it runs on any multi-threaded runtime.
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The backend's proof of one claim of one job (a lease token, a stream entry id, ...), opaque to
/// the workers. Only the holder of the current receipt can settle the job, so a worker whose lease
/// expired and whose job was re-claimed by another cannot undo its successor's work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

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
    /// lease expired), each leased for `lease`, and counts the attempt. Returns at once, possibly
    /// with none.
    fn claim(&self, max: usize, lease: Duration) -> QueueFuture<'_, Vec<Job>>;

    /// Marks the job done: it is never run again, and its `webhook-id` stays known for the
    /// retention, so that the sender's late retries are duplicates. `Ok(false)` if the receipt is
    /// no longer the job's (the lease expired and another worker took it).
    fn complete<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool>;

    /// Schedules the job to run again at `at`, recording `error`. `Ok(false)` as for `complete`.
    fn retry<'a>(&'a self, job: &'a Job, at: SystemTime, error: &'a str) -> QueueFuture<'a, bool>;

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

    /// Depth, oldest age and dead letters now.
    fn stats(&self) -> QueueFuture<'_, QueueStats>;
}

/// Milliseconds in `duration`, saturated to `i64` (what every engine stores).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "redis", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch at `at` (0 before the epoch), as every engine stores times.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "redis", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn system_time_ms(at: SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, duration_ms)
}

/// A fresh random lease token for one claim, as text (32 hex digits).
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
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
