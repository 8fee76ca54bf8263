//! The contract between the workers and a queue engine: one trait, one contract suite.

use std::{future::Future, pin::Pin, time::Duration};

pub use agentsync_webhooks_core::route::EventOrder;
use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery},
    idempotency::StoreError,
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

/// One claimed job with what the engine keeps of its event time, as
/// [`Backend::claim_ordered`] returns it.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The job.
    pub job: Job,
    /// Its ordering key, occurred-at and the key's newest done occurred-at; `None` for a job
    /// stored without a key (or by an engine that does not order events).
    pub order: Option<ClaimedOrder>,
}

impl From<Job> for Claimed {
    fn from(job: Job) -> Self {
        Self { job, order: None }
    }
}

/// A keyed job's event time, as the claim read it.
///
/// ```
/// use agentsync_webhooks_queue::ClaimedOrder;
///
/// let order = ClaimedOrder { key: "npn:1".into(), occurred_at_ms: 10, newest_done_ms: Some(20) };
/// assert!(order.is_stale());
/// let tie = ClaimedOrder { newest_done_ms: Some(10), ..order.clone() };
/// assert!(!tie.is_stale()); // equal timestamps run
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedOrder {
    /// The ordering key stored with the delivery.
    pub key: String,
    /// When the event occurred, ms since the epoch.
    pub occurred_at_ms: i64,
    /// The newest occurred-at of a job of this key completed (successfully) within the key
    /// retention, if any.
    pub newest_done_ms: Option<i64>,
}

impl ClaimedOrder {
    /// Older than the newest done event of its key (equal is not stale).
    pub fn is_stale(&self) -> bool {
        self.newest_done_ms
            .is_some_and(|newest| self.occurred_at_ms < newest)
    }
}

/// How long an engine keeps a key's newest done occurred-at after it was last written: 7
/// days, longer than the sender's retry horizon (about a day), so that a late retry of an old
/// event is still found stale.
pub const DEFAULT_KEY_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

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

/// What [`Backend::health`] found: the engine answered; `warnings` are what an operator should
/// know all the same (for Redis, what the persistence check at connect found).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// The engine (`sqlite`, `redis`, `postgres`, or a backend's own name).
    pub engine: &'static str,
    /// One sentence each: what could lose a 2xx or was not checked.
    pub warnings: Vec<String>,
}

impl Health {
    /// The engine answered, with nothing to report.
    pub fn new(engine: &'static str) -> Self {
        Self {
            engine,
            warnings: Vec::new(),
        }
    }
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
///
/// # Event time: what an engine that orders events stores and does
///
/// A delivery enqueued with [`enqueue_ordered`](Self::enqueue_ordered) carries an
/// [`EventOrder`]: an ordering key (the entity, e.g. `npn:0012345`) and its occurred-at (ms).
/// An engine that orders events ([`orders_events`](Self::orders_events) is `true`) must:
///
/// 1. **Store** the key and occurred-at with the job (a replay or a resend keeps them; a
///    resend writes the new ones).
/// 2. **Keep per key** the newest occurred-at of a job of that key completed with
///    [`complete`](Self::complete), and when it was last written, for a key retention
///    ([`DEFAULT_KEY_RETENTION`], 7 days, by default), deleted by [`purge`](Self::purge)
///    after it.
/// 3. **Claim** ([`claim_ordered`](Self::claim_ordered)) under these rules, in the claim's one
///    atomic step: a job without a key is claimed as before (a cheap check of the key
///    column, nothing more); a keyed job is claimable only if no job of its key is running
///    under an unexpired lease (the job's lease is the key's lease: a killed worker frees the
///    key when its lease ends, and the re-claim of that expired job takes the key), no other
///    job of its key is taken in the same claim, and it is the first of its key's waiting and
///    retrying jobs in (occurred-at, webhook-id) order, due now. So the key's events run one at
///    a time in occurred-at order, and a key's head that is not due yet (retrying later)
///    holds the ones behind it. Return with each keyed job its key, occurred-at and the key's
///    newest done occurred-at as read in that step ([`ClaimedOrder`]).
/// 4. **Complete** ([`complete`](Self::complete)) a keyed job and raise its key's newest
///    occurred-at to `max(newest, occurred_at)` in the **same atomic step** as marking it
///    done, so that a completion is never seen without its key's newest, nor the reverse.
/// 5. **Complete as stale** ([`complete_stale`](Self::complete_stale)): done, with the attempt's
///    outcome [`AttemptOutcome::Stale`](crate::record::AttemptOutcome::Stale) in the record,
///    the key's newest left as it is (it is newer).
///
/// Retry, bury, release and abandon free the key like any end of the running state; the
/// newest is written only by a completion. The engines that do not order events keep the
/// defaults of these methods, which store no key and enforce no order (today's behaviour).
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
    ///
    /// For a keyed job of an engine that orders events, raises the key's newest occurred-at in
    /// the same atomic step (see the [trait docs](Self)).
    fn complete<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool>;

    /// Whether this engine stores ordering keys and enforces the event-time rules of the
    /// [trait docs](Self). `false` by default: the engine then stores no key, claims with
    /// [`claim_with`](Self::claim_with), and never reports a job stale.
    fn orders_events(&self) -> bool {
        false
    }

    /// [`enqueue`](Self::enqueue) a delivery with its ordering key and occurred-at, stored with
    /// the job in the same atomic step. The default ignores `order` (no ordering enforced).
    fn enqueue_ordered<'a>(
        &'a self,
        delivery: &'a ReceivedDelivery,
        order: &'a EventOrder,
    ) -> QueueFuture<'a, Enqueued> {
        let _ = order;
        self.enqueue(delivery)
    }

    /// [`claim_with`](Self::claim_with), skipping keyed jobs whose key is held, and returning
    /// each keyed job with its [`ClaimedOrder`] (see the [trait docs](Self)). What the workers
    /// call. The default is `claim_with` with no order (no ordering enforced).
    fn claim_ordered<'a>(
        &'a self,
        token: &'a ClaimToken,
        max: usize,
        lease: Duration,
    ) -> QueueFuture<'a, Vec<Claimed>> {
        Box::pin(async move {
            let jobs = self.claim_with(token, max, lease).await?;
            Ok(jobs.into_iter().map(Claimed::from).collect())
        })
    }

    /// Marks a stale job done without running it: outcome `stale` in its history, its key's
    /// newest occurred-at unchanged. `Ok(false)` as for `complete`. The default completes it.
    fn complete_stale<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        self.complete(job)
    }

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
    ) -> QueueFuture<'a, DeliveryPage>;

    /// How many deliveries match `filter` (its states aside: every state is counted), by state
    /// and by type.
    fn counts<'a>(&'a self, filter: &'a DeliveryFilter) -> QueueFuture<'a, DeliveryCounts>;

    /// [`counts`](Self::counts) of `filter`, then of what it keeps received since each of
    /// `since_ms` (ms since the epoch): `1 + since_ms.len()` answers, in that order. A page that
    /// shows counts now and over the last day asks once. By default the counts run at once (on
    /// a pool or a multiplexed connection they overlap); an engine that can count every window
    /// in one pass overrides it (SQLite: one walk of its counts index, a column per window).
    fn counts_since<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        since_ms: &'a [i64],
    ) -> QueueFuture<'a, Vec<DeliveryCounts>> {
        Box::pin(async move {
            let mut filters = vec![filter.clone()];
            for &since in since_ms {
                filters.push(DeliveryFilter {
                    received_since_ms: Some(
                        filter.received_since_ms.map_or(since, |s| s.max(since)),
                    ),
                    ..filter.clone()
                });
            }
            let mut pending: Vec<Option<QueueFuture<'_, DeliveryCounts>>> =
                filters.iter().map(|f| Some(self.counts(f))).collect();
            let mut answers: Vec<Option<DeliveryCounts>> = vec![None; filters.len()];
            std::future::poll_fn(|cx| {
                let mut waiting = false;
                for (slot, answer) in pending.iter_mut().zip(answers.iter_mut()) {
                    if let Some(count) = slot {
                        match count.as_mut().poll(cx) {
                            std::task::Poll::Ready(Ok(counts)) => {
                                *answer = Some(counts);
                                *slot = None;
                            }
                            std::task::Poll::Ready(Err(error)) => {
                                return std::task::Poll::Ready(Err(error));
                            }
                            std::task::Poll::Pending => waiting = true,
                        }
                    }
                }
                if waiting {
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(Ok(()))
                }
            })
            .await?;
            Ok(answers.into_iter().flatten().collect())
        })
    }

    /// One delivery with its history, in any state.
    fn delivery<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeliveryRecord>>;

    /// Runs a done or dead delivery again: waiting, due at once, attempts counted anew, the
    /// replay in its history with `by` (who asked). `Ok(false)` if there is no such delivery or
    /// it is waiting, running or retrying.
    fn replay_by<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool>;

    /// [`replay_by`](Self::replay_by) every done or dead delivery matching `filter`, at most
    /// `max` (and at most [`MAX_BULK`](crate::record::MAX_BULK)) newest first, in one atomic
    /// step; returns how many.
    fn replay_matching<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        by: &'a str,
        max: usize,
    ) -> QueueFuture<'a, u64>;

    /// Moves a waiting or retrying delivery to the dead letters ("discarded by operator"),
    /// recording `by`. `Ok(false)` if there is none in those states (a running one is its
    /// worker's until it settles).
    fn discard<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool>;

    /// Forgets a done or dead delivery's id: the sender's next resend of it is processed as new
    /// (the record stays, with `by` in its history, until that resend or the retention).
    /// `Ok(false)` if there is none in those states.
    fn forget<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool>;

    /// Deletes up to `max` dead letters that died before `before_ms` (ms since the epoch),
    /// oldest first, their ids forgotten with them; returns how many.
    fn purge_dead(&self, before_ms: i64, max: usize) -> QueueFuture<'_, u64>;

    /// Depth, oldest age and dead letters now.
    fn stats(&self) -> QueueFuture<'_, QueueStats>;

    /// Whether the engine answers now, for load balancers and probes: `Err` (with the
    /// engine's reason) when it does not. By default it reads [`stats`](Self::stats); an
    /// engine overrides it with a cheaper or more telling check (Redis pings every primary and
    /// adds its persistence findings).
    fn health(&self) -> QueueFuture<'_, Health> {
        Box::pin(async move {
            self.stats().await?;
            Ok(Health::new("queue"))
        })
    }

    /// Deletes one batch of what outlived its retention: done deliveries past the retention
    /// and dead letters past the dead-letter retention, each `webhook-id` forgotten with its
    /// delivery. Never holds a lock that stalls enqueues for long; the workers call it
    /// periodically, off the claim's path.
    fn purge(&self) -> QueueFuture<'_, Purged>;
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
