//! Workers: claim stored deliveries, run the routed handlers, and settle each job (done, retry
//! later, or dead letters), until told to stop.
//!
//! ```no_run
//! use std::time::Duration;
//! use agentsync_webhooks_core::{EventType, UpdatesAvailable};
//! use agentsync_webhooks_core::route::{Event, EventRouter, HandlerError};
//! use agentsync_webhooks_queue::{Queue, Workers};
//!
//! async fn pull_updates(event: Event<UpdatesAvailable>) -> Result<(), HandlerError> {
//!     println!("pull updatedSince={}", event.data.updated_since()); // minutes of work
//!     Ok(())
//! }
//!
//! # async fn run(ctrl_c: impl std::future::Future<Output = ()> + Send) -> Result<(), Box<dyn std::error::Error>> {
//! let queue = Queue::from_url(&std::env::var("AGENTSYNC_QUEUE_URL").unwrap_or_default()).await?;
//! let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, pull_updates);
//! Workers::new(queue, router)
//!     .concurrency(8)
//!     .max_attempts(10)
//!     .run_until(ctrl_c) // e.g. `async { tokio::signal::ctrl_c().await.unwrap_or(()) }`
//!     .await;
//! # Ok(()) }
//! ```

mod backoff;
mod job;
pub mod metrics;
mod service;

use std::{future::Future, sync::Arc, time::Duration};

use agentsync_webhooks_core::route::{EventRouter, Routed};
use tokio::{
    sync::watch,
    task::JoinSet,
    time::{Instant, sleep, timeout},
};
use tower_layer::Layer;
use tower_service::Service;

pub use self::backoff::Backoff;
pub use self::service::{JobError, JobFuture, JobRequest};
use crate::{ClaimToken, Claimed, Queue, StoreError, StoreErrorKind};

/// Default of [`Workers::concurrency`].
const DEFAULT_CONCURRENCY: usize = 8;
/// Default of [`Workers::max_attempts`]: with the default [`Backoff`], about three hours of retries.
const DEFAULT_MAX_ATTEMPTS: u32 = 15;
/// Default of [`Workers::lease`].
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default of [`Workers::poll_interval`].
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Default of [`Workers::busy_wait`].
const DEFAULT_BUSY_WAIT: Duration = Duration::from_millis(20);
/// Default of [`Workers::grace_period`].
const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// Default of [`Workers::engine_timeout`].
const DEFAULT_ENGINE_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest and longest wait after a claim failed (the engine down or slow).
const CLAIM_RETRY_MIN: Duration = Duration::from_millis(100);
const CLAIM_RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs an [`EventRouter`] over a [`Queue`] (or the router inside tower middleware: see
/// [`layer`](Self::layer) and [`with_service`](Self::with_service)): up to
/// [`concurrency`](Self::concurrency) handlers at once, each job leased while it runs (and the
/// lease extended while a long handler runs), retried with [`Backoff`] when its handler fails,
/// buried in the dead letters when it fails permanently or [`max_attempts`](Self::max_attempts)
/// times, and given back on shutdown.
///
/// What happens to a job, by its handler's result:
///
/// | result | job | log |
/// |---|---|---|
/// | `Ok` (or no handler: acknowledged) | done | `webhook processed`, info |
/// | retryable error, or a panic | retried after the backoff (or the error's `retry_after`) | warn |
/// | retryable error on the last attempt | dead letters | error |
/// | [permanent](agentsync_webhooks_core::route::HandlerError::permanent) error, or data that does not parse | dead letters at once | error |
/// | still running when the grace period ends | released (due at once, attempt not counted) | warn |
///
/// A job claimed more than `max_attempts` times (its earlier runs never reported back: it kills
/// its worker) is buried without running. Errors from the engine (down, slow) are logged and
/// retried with backoff; they never stop the workers.
///
/// Delivery is at least once: a handler whose worker was killed runs again once its lease
/// expires, so make handlers idempotent (the [`Event::webhook_id`] is the key).
///
/// [`Event::webhook_id`]: agentsync_webhooks_core::route::Event::webhook_id
///
/// ```no_run
/// use std::time::Duration;
/// use agentsync_webhooks_core::route::EventRouter;
/// use agentsync_webhooks_queue::{Backoff, Queue, Workers};
///
/// # async fn run(queue: Queue, router: EventRouter) {
/// let workers = Workers::new(queue, router)
///     .concurrency(4)
///     .max_attempts(8)
///     .backoff(Backoff::new(Duration::from_secs(2), 2.0, Duration::from_secs(600)))
///     .lease(Duration::from_secs(60))
///     .grace_period(Duration::from_secs(20));
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let running = tokio::spawn(workers.run_until(async { stopped.await.unwrap_or(()) }));
/// // ... later
/// let _ = stop.send(());
/// running.await.unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Workers<S = EventRouter> {
    queue: Queue,
    service: S,
    config: Config,
}

/// The settings the job tasks share.
#[derive(Debug, Clone)]
struct Config {
    concurrency: usize,
    max_attempts: u32,
    backoff: Backoff,
    lease: Duration,
    extend_every: Option<Duration>,
    poll_interval: Duration,
    busy_wait: Duration,
    grace_period: Duration,
    engine_timeout: Duration,
    /// The name the history shows for the attempts these workers run.
    name: String,
}

impl Config {
    fn extend_every(&self) -> Duration {
        self.extend_every
            .unwrap_or(self.lease / 3)
            .max(Duration::from_millis(10))
    }

    /// The settings with what would let a lease expire under a live handler capped, and a
    /// sentence for each cap: an extension is asked for at most every half lease, and an
    /// engine call may take at most a third of it, so that one late or failed extension still
    /// leaves time for the next before the lease ends.
    fn capped(mut self) -> (Self, Vec<String>) {
        let mut caps = Vec::new();
        let max_every = self.lease / 2;
        if self.extend_every() > max_every {
            caps.push(format!(
                "extend_every ({} ms) is more than half the lease ({} ms): capped to {} ms, \
                 so that a live handler's lease is extended before it ends",
                millis(self.extend_every()),
                millis(self.lease),
                millis(max_every)
            ));
            self.extend_every = Some(max_every);
        }
        let max_timeout = self.lease / 3;
        if self.engine_timeout > max_timeout {
            caps.push(format!(
                "engine_timeout ({} ms) is more than a third of the lease ({} ms): capped to \
                 {} ms, so that a slow extension fails in time for the next one",
                millis(self.engine_timeout),
                millis(self.lease),
                millis(max_timeout)
            ));
            self.engine_timeout = max_timeout;
        }
        (self, caps)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Workers {
    /// Workers for `queue`, running `router`'s handlers, with the defaults: concurrency 8,
    /// 15 attempts, the default [`Backoff`] (1 s doubling to 1 h: about three hours of retries),
    /// a lease of 30 s extended every 10 s, a poll every 500 ms when idle (20 ms while draining),
    /// 10 s for any one engine call and a grace period of 30 s on shutdown.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_core::route::EventRouter;
    /// use agentsync_webhooks_queue::{Queue, Workers};
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-workers-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// let workers = Workers::new(queue, EventRouter::new());
    /// // Nothing queued: returns as soon as the shutdown future does.
    /// workers.run_until(async {}).await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    ///
    /// The router's ordering rules ([`EventRouter::ordered_by`]) are enforced from the keys the
    /// queue stored with each delivery: when the router keys other types than the `queue`
    /// given here ([`Queue::with_ordering`]), a warning says so (the queue that the receive
    /// port writes to must know the rules).
    pub fn new(queue: Queue, router: EventRouter) -> Self {
        if router.ordering().keyed() != queue.ordering().keyed() {
            tracing::warn!(
                router = ?router.ordering(),
                queue = ?queue.ordering(),
                "the workers' router orders other event types than their queue stores keys for: \
                 give the queue the receive port writes to `.with_ordering(router.ordering())`"
            );
        }
        if !queue.backend().orders_events() {
            tracing::debug!(
                "this queue engine does not order events yet: keyed events run concurrently and are never stale"
            );
        }
        Self::with_service(queue, router)
    }
}

impl<S> Workers<S> {
    /// Workers that hand each job to `service` instead of a bare [`EventRouter`]: usually the
    /// router inside tower middleware, built with [`ServiceBuilder`] or added with
    /// [`layer`](Self::layer). The service answers [`Routed`] for a processed job; its errors
    /// are read as [`JobError`] (the router's, kind and code kept) or as a retryable failure
    /// (any other, such as a timeout's). Same defaults as [`new`](Workers::new).
    ///
    /// [`ServiceBuilder`]: https://docs.rs/tower/latest/tower/struct.ServiceBuilder.html
    pub fn with_service(queue: Queue, service: S) -> Self {
        Self {
            queue,
            service,
            config: Config {
                concurrency: DEFAULT_CONCURRENCY,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                backoff: Backoff::default(),
                lease: DEFAULT_LEASE,
                extend_every: None,
                poll_interval: DEFAULT_POLL_INTERVAL,
                busy_wait: DEFAULT_BUSY_WAIT,
                grace_period: DEFAULT_GRACE_PERIOD,
                engine_timeout: DEFAULT_ENGINE_TIMEOUT,
                name: crate::default_worker(),
            },
        }
    }

    /// Wraps the service in tower middleware: each job goes through `layer` before its handler.
    /// Each call wraps what is there, so the layer added last sees a job first (as with axum's
    /// `Router::layer`; a `ServiceBuilder` lists its layers the other way round).
    ///
    /// A timeout of a minute per job (with `tower`'s `timeout` feature): a job that takes longer
    /// is stopped and retried with backoff, like any retryable failure.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue, router: EventRouter) {
    /// let workers = Workers::new(queue, router)
    ///     .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(60)))
    ///     .concurrency(4);
    /// # }
    /// ```
    pub fn layer<L: Layer<S>>(self, layer: L) -> Workers<L::Service> {
        Workers {
            queue: self.queue,
            service: layer.layer(self.service),
            config: self.config,
        }
    }

    /// At most `n` handlers run at once (at least 1). Size it to what the handlers' downstream
    /// (the ProducerSync API, your database) takes.
    ///
    /// A job gives its slot back when its handler ends, before its outcome is written to the
    /// queue, so that the next jobs are claimed while that round trip is under way; at most `n`
    /// more jobs are being settled at any time.
    ///
    /// ```
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new()).concurrency(16);
    /// # }
    /// ```
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n.max(1);
        self
    }

    /// A job is run at most `n` times (at least 1): a retryable failure on attempt `n` sends it
    /// to the dead letters.
    ///
    /// ```
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new()).max_attempts(5);
    /// # }
    /// ```
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.max_attempts = n.max(1);
        self
    }

    /// How long a failed job waits before its next attempt.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Backoff, Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new())
    ///     .backoff(Backoff::new(Duration::from_secs(10), 3.0, Duration::from_secs(3600)).jitter(0.2));
    /// # }
    /// ```
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// How long a claim holds a job before another worker may take it (after this worker was
    /// killed). The lease is extended every third of it while the handler runs, so a handler
    /// may run for much longer; a shorter lease brings a killed worker's jobs back sooner, at
    /// the cost of more extends.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new()).lease(Duration::from_secs(10));
    /// # }
    /// ```
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How often a running job's lease is extended (default: a third of the lease; at most half
    /// of it, a longer setting is capped with a warning when the workers start).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new())
    ///     .lease(Duration::from_secs(60))
    ///     .extend_every(Duration::from_secs(15));
    /// # }
    /// ```
    #[must_use]
    pub fn extend_every(mut self, every: Duration) -> Self {
        self.config.extend_every = Some(every);
        self
    }

    /// How long to wait before claiming again when the queue had nothing due.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new()).poll_interval(Duration::from_secs(1));
    /// # }
    /// ```
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// How long to wait before claiming again when the last claim found fewer jobs than there
    /// were free slots (the queue is being drained; more may arrive any moment).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new()).busy_wait(Duration::from_millis(5));
    /// # }
    /// ```
    #[must_use]
    pub fn busy_wait(mut self, wait: Duration) -> Self {
        self.config.busy_wait = wait;
        self
    }

    /// On shutdown, how long running handlers may take to finish before they are stopped and
    /// their jobs given back to the queue.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new()).grace_period(Duration::from_secs(5));
    /// # }
    /// ```
    #[must_use]
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.config.grace_period = grace;
        self
    }

    /// The longest one call to the engine (claim, complete, extend...) may take before it counts
    /// as failed and is retried. At most a third of the lease: a longer setting is capped with a
    /// warning when the workers start, since an extension that takes longer than what is left
    /// of the lease lets another worker take a job whose handler still runs.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new()).engine_timeout(Duration::from_secs(3));
    /// # }
    /// ```
    #[must_use]
    pub fn engine_timeout(mut self, limit: Duration) -> Self {
        self.config.engine_timeout = limit;
        self
    }

    /// The name the delivery record shows for the attempts these workers run (default:
    /// [`default_worker`](crate::default_worker), the host name and process id).
    ///
    /// ```
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # fn f(queue: Queue) {
    /// let workers = Workers::new(queue, EventRouter::new()).name("billing-worker-2");
    /// # }
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Runs until `shutdown` completes, then stops gracefully: no new claims; running handlers
    /// get the [grace period](Self::grace_period) to finish and settle their jobs; the jobs of
    /// those still running after it are [released](crate::Backend::release) (given back, due at
    /// once). Returns when every job it held is settled or given back.
    ///
    /// Dropping the returned future instead stops the handlers at once without giving their
    /// jobs back: they come back when their leases expire.
    ///
    /// ```no_run
    /// # use agentsync_webhooks_core::route::EventRouter;
    /// # use agentsync_webhooks_queue::{Queue, Workers};
    /// # async fn run(queue: Queue, router: EventRouter) {
    /// # let ctrl_c = async {};
    /// // e.g. `let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or(()) };`
    /// Workers::new(queue, router)
    ///     .run_until(ctrl_c)
    ///     .await;
    /// # }
    /// ```
    pub async fn run_until<F>(self, shutdown: F)
    where
        F: Future<Output = ()> + Send,
        S: Service<JobRequest, Response = Routed> + Clone + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S::Future: Send + 'static,
    {
        let Self {
            queue,
            service,
            config,
        } = self;
        let (config, caps) = config.capped();
        for cap in caps {
            tracing::warn!("webhook workers: {cap}");
        }
        let ctx = Arc::new(job::Context {
            backend: queue.backend().clone(),
            config,
        });
        let (abort, aborted) = watch::channel(false);
        let mut tasks = JoinSet::new();
        // A slot per handler: a job gives its slot back when its handler ends, before its
        // settlement, so that the next claim overlaps that round trip.
        let slots = job::Slots::new(ctx.config.concurrency);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut claim_failures: u32 = 0;
        // The queue's depth is sampled for the metrics at most this often.
        let mut next_sample = tokio::time::Instant::now();
        // What outlived its retention is purged by a task of its own, off the claims' path.
        let purging = tokio::spawn(purge_periodically(
            ctx.backend.clone(),
            ctx.config.engine_timeout,
        ));

        tracing::info!(
            concurrency = ctx.config.concurrency,
            max_attempts = ctx.config.max_attempts,
            "webhook workers started"
        );
        'run: loop {
            // Reap what finished, and wait for a free slot when all are taken.
            while let Some(joined) = tasks.try_join_next() {
                report_task(joined);
            }
            // Jobs being settled hold no slot, but at most `concurrency` of them are waited
            // for at once (an engine slow to settle slows the claims too).
            let free = slots.free().min(
                ctx.config
                    .concurrency
                    .saturating_mul(2)
                    .saturating_sub(tasks.len()),
            );
            if free == 0 {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break 'run,
                    () = slots.freed() => continue 'run,
                    Some(joined) = tasks.join_next() => {
                        report_task(joined);
                        continue 'run;
                    }
                }
            }

            let token = match ClaimToken::for_worker(ctx.config.name.as_str()) {
                Ok(token) => token,
                Err(err) => {
                    tracing::error!(error = %err, "webhook workers could not make a claim token");
                    sleep(CLAIM_RETRY_MAX).await;
                    continue 'run;
                }
            };
            let claim = ctx.claim(&token, free);
            let mut claim = std::pin::pin!(claim);
            let claimed = tokio::select! {
                biased;
                claimed = &mut claim => claimed,
                () = &mut shutdown => {
                    // The claim may already hold jobs in the engine: let it finish (bounded),
                    // and give back whatever it got.
                    match claim.await {
                        Ok(jobs) => {
                            for claimed in jobs {
                                ctx.release_unrun(&claimed.job).await;
                            }
                        }
                        Err(_) => ctx.abandon(&token).await,
                    }
                    break 'run;
                }
            };
            let wait = match claimed {
                Ok(jobs) => {
                    claim_failures = 0;
                    let count = jobs.len();
                    for job in jobs {
                        let service = service.clone();
                        let slot = slots.take();
                        tasks.spawn(job::run(ctx.clone(), service, job, slot, aborted.clone()));
                    }
                    if count == 0 {
                        ctx.config.poll_interval
                    } else if count < free {
                        ctx.config.busy_wait
                    } else {
                        Duration::ZERO
                    }
                }
                Err(err) => {
                    // The engine may have committed the claim whose answer was lost: give its
                    // jobs back now rather than when their leases end, their attempt counted.
                    ctx.abandon(&token).await;
                    claim_failures = claim_failures.saturating_add(1);
                    let wait = claim_retry_delay(claim_failures);
                    tracing::warn!(
                        error = %err,
                        kind = err.kind().as_str(),
                        failures = claim_failures,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "webhook workers could not claim jobs; retrying"
                    );
                    wait
                }
            };
            if cfg!(feature = "metrics") && tokio::time::Instant::now() >= next_sample {
                next_sample = tokio::time::Instant::now() + STATS_SAMPLE_EVERY;
                match timeout(ctx.config.engine_timeout, ctx.backend.stats()).await {
                    Ok(stats) => metrics::sampled(stats),
                    Err(_) => tracing::debug!("sampling the queue's depth timed out"),
                }
            }
            if !wait.is_zero() {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break 'run,
                    // A job that ends frees a slot and, when it had an ordering key, lets that
                    // key's next event be claimed: claim again now rather than after the wait.
                    Some(joined) = tasks.join_next(), if !tasks.is_empty() => report_task(joined),
                    // A handler that ends frees its slot.
                    () = slots.freed() => {}
                    () = sleep(wait) => {}
                }
            }
        }

        let running = tasks.len();
        tracing::info!(
            running,
            grace_ms = u64::try_from(ctx.config.grace_period.as_millis()).unwrap_or(u64::MAX),
            "webhook workers stopping: no new claims, waiting for running handlers"
        );
        let deadline = sleep(ctx.config.grace_period);
        let mut deadline = std::pin::pin!(deadline);
        while !tasks.is_empty() {
            tokio::select! {
                Some(joined) = tasks.join_next() => report_task(joined),
                () = &mut deadline => {
                    tracing::warn!(
                        running = tasks.len(),
                        "grace period over: stopping the handlers still running and giving their jobs back"
                    );
                    let _ = abort.send(true);
                    break;
                }
            }
        }
        while let Some(joined) = tasks.join_next().await {
            report_task(joined);
        }
        purging.abort();
        tracing::info!("webhook workers stopped");
    }
}

/// How often the workers sample the queue's depth for the metrics.
const STATS_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Logs a job task that did not end normally (a bug: handler panics are caught inside it). Its
/// job comes back when its lease expires.
fn report_task(joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined {
        tracing::error!(error = %err, "a webhook job task failed; its job runs again when its lease expires");
    }
}

/// The wait after `failures` claims in a row failed: 100 ms doubling to 5 s.
fn claim_retry_delay(failures: u32) -> Duration {
    Backoff::new(CLAIM_RETRY_MIN, 2.0, CLAIM_RETRY_MAX)
        .jitter(0.2)
        .delay(failures)
}

/// An engine call, bounded by the engine timeout.
async fn bounded<T>(
    limit: Duration,
    what: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    match timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Timeout,
            format!(
                "the queue did not answer the {what} within {} ms",
                started.elapsed().as_millis()
            ),
        )),
    }
}

/// How often the workers purge what outlived its retention (done deliveries, dead letters).
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// The pause between two purge batches while there is more to purge.
const PURGE_PAUSE: Duration = Duration::from_millis(100);

/// Purges one batch every [`PURGE_EVERY`], and the next batch soon after a full one; a failure
/// is logged and tried again at the next round.
async fn purge_periodically(backend: std::sync::Arc<dyn crate::Backend>, limit: Duration) {
    loop {
        let wait = match bounded(limit, "purge", backend.purge()).await {
            Ok(purged) => {
                if purged.done > 0 || purged.dead > 0 {
                    tracing::debug!(
                        done = purged.done,
                        dead = purged.dead,
                        "purged what outlived its retention from the queue"
                    );
                }
                if purged.more {
                    PURGE_PAUSE
                } else {
                    PURGE_EVERY
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not purge the queue; trying again later");
                PURGE_EVERY
            }
        };
        sleep(wait).await;
    }
}

impl job::Context {
    async fn claim(&self, token: &ClaimToken, max: usize) -> Result<Vec<Claimed>, StoreError> {
        bounded(
            self.config.engine_timeout,
            "claim",
            self.backend.claim_ordered(token, max, self.config.lease),
        )
        .await
    }

    /// Gives back what a failed claim may hold in the engine (best effort, logged).
    async fn abandon(&self, token: &ClaimToken) {
        match bounded(
            self.config.engine_timeout,
            "give back a failed claim",
            self.backend.abandon(token),
        )
        .await
        {
            Ok(0) => {}
            Ok(given_back) => tracing::info!(
                given_back,
                "a claim failed after the engine took its jobs; they were given back, their \
                 attempt not counted"
            ),
            Err(err) => tracing::warn!(
                error = %err,
                "could not give back what a failed claim may hold; those jobs return when \
                 their leases end"
            ),
        }
    }
}
