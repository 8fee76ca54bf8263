//! [`Queue`]: the handle users hold, the receive port writes to and the workers read from.

use std::sync::Arc;

use agentsync_webhooks_core::{
    handoff::{Enqueued, Handoff, ReceivedDelivery},
    idempotency::{StoreError, StoreFuture},
    route::Ordering,
};

use crate::url::QueueUrl;
use crate::{
    backend::{Backend, DeadLetter, Purged, QueueStats},
    record::{Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord},
};

/// A durable queue of verified deliveries: cheap to clone (an `Arc` inside), shared by the
/// receive port (it implements [`Handoff`]), the workers ([`backend`](Self::backend)) and the
/// operators (dead letters, [`stats`](Self::stats)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use agentsync_webhooks_queue::{Enqueued, Queue, ReceivedDelivery};
///
/// # let dir = std::env::temp_dir().join(format!("agentsync-doc-queue-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
/// let delivery = ReceivedDelivery {
///     webhook_id: "msg_1".into(),
///     event_type: "producersync.updates_available".into(),
///     webhook_timestamp: 1_700_000_000,
///     signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
///     received_at_ms: 1_700_000_000_123,
///     body: bytes::Bytes::from_static(br#"{"type":"producersync.updates_available"}"#),
/// };
/// assert_eq!(queue.enqueue(&delivery).await?, Enqueued::New);
/// assert_eq!(queue.enqueue(&delivery).await?, Enqueued::Duplicate);
/// assert_eq!(queue.stats().await?.depth, 1);
/// # drop(queue);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    backend: Arc<dyn Backend>,
    /// Which deliveries are stored with an ordering key: the router's defaults unless told.
    ordering: Ordering,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue on `backend` (one of this crate's, or your own that passes the `contract` test
    /// suite of the `testing` feature).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::{Queue, sqlite::SqliteBackend};
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-new-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::new(SqliteBackend::open(dir.join("queue.sqlite3")).await?);
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn new(backend: impl Backend) -> Self {
        Self {
            backend: Arc::new(backend),
            ordering: Ordering::default(),
        }
    }

    /// A queue on a backend that is already shared.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use agentsync_webhooks_queue::{Backend, Queue, sqlite::SqliteBackend};
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-arc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::open(dir.join("q.sqlite3")).await?);
    /// let queue = Queue::from_backend(backend);
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn from_backend(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            ordering: Ordering::default(),
        }
    }

    /// Stores deliveries with the ordering keys of `ordering` (the router's
    /// [`ordering`](agentsync_webhooks_core::route::EventRouter::ordering)), so that the
    /// workers run one event of a key at a time, in occurred-at order, and skip stale ones.
    /// Without it the queue keys the router's defaults (`producersync.npn.*` by NPN). Give it
    /// to the queue the receive port writes to (another process's workers read the keys
    /// stored).
    ///
    /// Costs nothing for a type without a key rule (a lookup of its type); a keyed type's
    /// body is parsed once more at enqueue to read its key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_core::{EventGroup, ObjectData, route::{Event, EventRouter}};
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-ordering-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let router = EventRouter::new()
    ///     .ordered_by(EventGroup::Contract, |event: &Event<ObjectData>| event.data.npn());
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?.with_ordering(router.ordering());
    /// assert!(queue.ordering().is_keyed("contract.updated"));
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_ordering(mut self, ordering: &Ordering) -> Self {
        self.ordering = ordering.clone();
        self
    }

    /// The ordering rules deliveries are stored with.
    pub fn ordering(&self) -> &Ordering {
        &self.ordering
    }

    /// Opens the queue `url` names, the way a service reads it from its configuration
    /// (`AGENTSYNC_QUEUE_URL`):
    ///
    /// | `url` | queue | feature |
    /// |---|---|---|
    /// | `""` (empty, or the variable unset) | the SQLite file [`agentsync-webhooks-queue.sqlite3`](crate::sqlite::DEFAULT_FILE) in the working directory | `sqlite` |
    /// | `sqlite://PATH`, `sqlite:PATH` | the SQLite file at `PATH` | `sqlite` |
    /// | `redis://...`, `rediss://...` | Redis Streams | `redis` |
    /// | `postgres://...`, `postgresql://...` | PostgreSQL | `postgres` |
    ///
    /// The URL is parsed by [`QueueUrl::parse`] (its errors first), then opened. Fails with an
    /// error naming the cargo feature when the scheme's backend was not compiled in, and when
    /// the engine cannot be reached now.
    ///
    /// | `redis+cluster://HOST:PORT[,HOST:PORT...]`, `rediss+cluster://...` | Redis Streams on a Redis Cluster | `redis` |
    ///
    /// The query string may hold the queue's settings (`prefix`, `group`, `partitions`,
    /// `persistence=required`, `wait_replicas`/`wait_timeout_ms` for Redis; `table` for
    /// PostgreSQL; see [`QueueUrl`]); the rest is the driver's (PostgreSQL's
    /// `target_session_attrs=read-write` for a multi-host URL of a primary and its standbys).
    ///
    /// Two services whose queues share an engine must not share a queue: each one's workers
    /// would take the other's events. Give each its own file, Redis logical database
    /// (`redis://host:6379/2`) or PostgreSQL database; or, within one, its own
    /// `?prefix=` (Redis) or `?table=` (PostgreSQL).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), agentsync_webhooks_queue::StoreError> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// let queue = Queue::from_url(&std::env::var("AGENTSYNC_QUEUE_URL").unwrap_or_default()).await?;
    /// # let _ = queue;
    /// # Ok(()) }
    /// ```
    pub async fn from_url(url: &str) -> Result<Self, StoreError> {
        let parsed = QueueUrl::parse(url)?;
        match &parsed {
            QueueUrl::Sqlite(path) => Self::open_sqlite_url(path.clone()).await,
            QueueUrl::Redis(_) => Self::open_redis_url(&parsed).await,
            QueueUrl::Postgres(_) => Self::open_postgres_url(&parsed).await,
        }
    }

    #[cfg(feature = "sqlite")]
    async fn open_sqlite_url(path: std::path::PathBuf) -> Result<Self, StoreError> {
        Self::sqlite(path).await
    }

    #[cfg(not(feature = "sqlite"))]
    async fn open_sqlite_url(_path: std::path::PathBuf) -> Result<Self, StoreError> {
        Err(missing_feature("sqlite", "a SQLite queue"))
    }

    #[cfg(feature = "redis")]
    async fn open_redis_url(url: &QueueUrl) -> Result<Self, StoreError> {
        use crate::redis::{RedisBackend, RedisOptions};
        let settings = url.settings();
        let mut options = RedisOptions::new();
        if let Some(prefix) = settings.prefix {
            options = options.prefix(prefix);
        }
        if let Some(group) = settings.group {
            options = options.group(group);
        }
        if let Some(partitions) = settings.partitions {
            options = options.partitions(partitions);
        }
        if settings.require_persistence {
            options = options.require_persistence();
        }
        if let Some((replicas, timeout)) = settings.wait_replicas {
            options = options.wait_for_replicas(replicas, timeout);
        }
        Ok(Self::new(
            RedisBackend::connect_with(&url.engine_url(), options).await?,
        ))
    }

    #[cfg(not(feature = "redis"))]
    async fn open_redis_url(_url: &QueueUrl) -> Result<Self, StoreError> {
        Err(missing_feature("redis", "a Redis queue"))
    }

    #[cfg(feature = "postgres")]
    async fn open_postgres_url(url: &QueueUrl) -> Result<Self, StoreError> {
        use crate::postgres::{PostgresBackend, PostgresOptions};
        let mut options = PostgresOptions::new();
        if let Some(table) = url.settings().table {
            options = options.table(table);
        }
        Ok(Self::new(
            PostgresBackend::connect_with(&url.engine_url(), options).await?,
        ))
    }

    #[cfg(not(feature = "postgres"))]
    async fn open_postgres_url(_url: &QueueUrl) -> Result<Self, StoreError> {
        Err(missing_feature("postgres", "a PostgreSQL queue"))
    }

    /// Opens (or creates) the SQLite queue in the file at `path`, with the default
    /// [`SqliteOptions`](crate::sqlite::SqliteOptions) (`synchronous = FULL`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-sqlite-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    pub async fn sqlite(path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        Ok(Self::new(crate::sqlite::SqliteBackend::open(path).await?))
    }

    /// Connects to the Redis at `url` with the default
    /// [`RedisOptions`, failing if it does not answer now.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), agentsync_webhooks_queue::StoreError> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// let queue = Queue::redis("redis://127.0.0.1:6379").await?;
    /// # let _ = queue;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    pub async fn redis(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(crate::redis::RedisBackend::connect(url).await?))
    }

    /// Connects to the PostgreSQL at `url` with the default
    /// [`PostgresOptions`, creating the table if needed.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), agentsync_webhooks_queue::StoreError> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// let queue = Queue::postgres("postgres://postgres@127.0.0.1:5432/app").await?;
    /// # let _ = queue;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub async fn postgres(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(
            crate::postgres::PostgresBackend::connect(url).await?,
        ))
    }

    /// The engine, for the workers (claim, complete, retry...).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-backend-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// let jobs = queue.backend().claim(8, Duration::from_secs(30)).await?;
    /// assert!(jobs.is_empty());
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Stores `delivery` unless its `webhook-id` is already known; returns once the write holds.
    /// The receive port calls it through [`Handoff`].
    pub async fn enqueue(&self, delivery: &ReceivedDelivery) -> Result<Enqueued, StoreError> {
        Handoff::enqueue(self, delivery).await
    }

    /// The dead letters, oldest first, at most `limit`: deliveries that failed permanently or
    /// too often, kept until they are replayed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-dlq-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// for dead in queue.dead_letters(100).await? {
    ///     println!("{} after {} attempts: {}", dead.delivery.webhook_id, dead.attempts, dead.last_error);
    /// }
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.backend.dead_letters(limit).await
    }

    /// The dead letter with this `webhook-id`, if there is one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-show-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// assert!(queue.dead_letter("msg_unknown").await?.is_none());
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn dead_letter(&self, webhook_id: &str) -> Result<Option<DeadLetter>, StoreError> {
        self.backend.dead_letter(webhook_id).await
    }

    /// Moves the dead letter with this `webhook-id` back to the queue, due at once with its
    /// attempts reset (after the handler or its data was fixed). `false` if there is none.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-replay-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// assert!(!queue.replay("msg_unknown").await?);
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn replay(&self, webhook_id: &str) -> Result<bool, StoreError> {
        self.backend.replay(webhook_id).await
    }

    /// Depth, age of the oldest waiting job and dead letters now, for metrics and health checks.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-stats-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// let stats = queue.stats().await?;
    /// assert_eq!((stats.depth, stats.dead, stats.oldest_age), (0, 0, None));
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.backend.stats().await
    }

    /// Whether the queue's engine answers now, for load balancers and probes (`GET /healthz`
    /// in the examples): `Err` with the engine's reason when it does not; `Ok` with what an
    /// operator should know all the same (for Redis, what the persistence check at connect
    /// found: a setting that would lose a 2xx on restart, or settings it could not read).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-health-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// let health = queue.health().await?;
    /// assert!(health.warnings.is_empty());
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Result<crate::backend::Health, StoreError> {
        self.backend.health().await
    }
}

impl Queue {
    /// Deletes one batch of what outlived its retention: done deliveries (their `webhook-id`
    /// forgotten, so a later resend is new) and dead letters past the dead-letter retention. The
    /// [`Workers`](crate::Workers) call it every minute; call it yourself from a job or a
    /// maintenance command when no workers run, repeating while [`Purged::more`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-purge-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// while queue.purge().await?.more {}
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn purge(&self) -> Result<Purged, StoreError> {
        self.backend.purge().await
    }
}

/// The delivery record: what an operator reads and does (the CLI's `queue` commands and the
/// dashboard are built on these calls alone).
impl Queue {
    /// Deliveries matching `filter`, newest first, at most `limit`, after `after` (the previous
    /// page's [`next`](DeliveryPage::next)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::{Queue, record::{DeliveryFilter, DeliveryState}};
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-list-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// let hour_ago = agentsync_webhooks_core::handoff::now_ms() - 3_600_000;
    /// let failed = DeliveryFilter::new()
    ///     .states([DeliveryState::Retrying, DeliveryState::Dead])
    ///     .received_since(hour_ago);
    /// let mut after = None;
    /// loop {
    ///     let page = queue.list(&failed, after.as_ref(), 50).await?;
    ///     for delivery in &page.deliveries {
    ///         println!("{} {} {:?}", delivery.webhook_id, delivery.state, delivery.last_error);
    ///     }
    ///     match page.next {
    ///         Some(next) => after = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn list(
        &self,
        filter: &DeliveryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<DeliveryPage, StoreError> {
        self.backend.list(filter, after, limit).await
    }

    /// How many deliveries `filter` keeps (its states aside), by state and by type.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::{Queue, record::{DeliveryFilter, DeliveryState}};
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-counts-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// let counts = queue.counts(&DeliveryFilter::new()).await?;
    /// assert_eq!(counts.state(DeliveryState::Dead), 0);
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn counts(&self, filter: &DeliveryFilter) -> Result<DeliveryCounts, StoreError> {
        self.backend.counts(filter).await
    }

    /// [`counts`](Self::counts) of `filter`, then of what it keeps received since each of
    /// `since_ms`: the counts now and over the last day, say, in one pass over the record where
    /// the engine counts with a scan (SQLite, PostgreSQL).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::{Queue, record::{DeliveryFilter, DeliveryState}};
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-counts-since-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// let day_start = 1_765_000_000_000; // ms since the epoch
    /// let answers = queue.counts_since(&DeliveryFilter::new(), &[day_start]).await?;
    /// let (now, day) = (&answers[0], &answers[1]);
    /// assert_eq!((now.state(DeliveryState::Dead), day.total()), (0, 0));
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn counts_since(
        &self,
        filter: &DeliveryFilter,
        since_ms: &[i64],
    ) -> Result<Vec<DeliveryCounts>, StoreError> {
        self.backend.counts_since(filter, since_ms).await
    }

    /// One delivery, in any state, with its body, headers and history.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-delivery-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// if let Some(record) = queue.delivery("msg_2Lp0Y").await? {
    ///     for entry in &record.history {
    ///         println!("{} {:?}", entry.at_ms, entry.event);
    ///     }
    /// }
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn delivery(&self, webhook_id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        self.backend.delivery(webhook_id).await
    }

    /// Runs a done or dead delivery again (after its handler was fixed), recording `by` (who
    /// asked: a label of yours, `cli`, `dashboard`) in its history. `false` if there is no such
    /// delivery or it is waiting, running or retrying.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-replay-by-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// assert!(!queue.replay_by("msg_unknown", "billing-fix-2026-12").await?);
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn replay_by(&self, webhook_id: &str, by: &str) -> Result<bool, StoreError> {
        self.backend.replay_by(webhook_id, by).await
    }

    /// Replays every done or dead delivery `filter` keeps, at most `max` (and at most
    /// [`MAX_BULK`](crate::record::MAX_BULK)), newest first, in one step; returns how many.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::{Queue, record::{DeliveryFilter, DeliveryState}};
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-bulk-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// let dead_contracts = DeliveryFilter::new().state(DeliveryState::Dead).event_type("contract");
    /// let replayed = queue.replay_matching(&dead_contracts, "billing-fix", 1_000).await?;
    /// assert_eq!(replayed, 0);
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn replay_matching(
        &self,
        filter: &DeliveryFilter,
        by: &str,
        max: usize,
    ) -> Result<u64, StoreError> {
        self.backend.replay_matching(filter, by, max).await
    }

    /// Moves a waiting or retrying delivery to the dead letters ("discarded by operator"),
    /// recording `by`. `false` if there is none in those states.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-discard-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// assert!(!queue.discard("msg_unknown", "ops").await?);
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn discard(&self, webhook_id: &str, by: &str) -> Result<bool, StoreError> {
        self.backend.discard(webhook_id, by).await
    }

    /// Forgets a done or dead delivery's id, so that the sender's next resend of it (from its
    /// portal) is processed as new; recorded with `by`. `false` if there is none in those
    /// states.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-forget-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// assert!(!queue.forget("msg_unknown", "ops").await?);
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn forget(&self, webhook_id: &str, by: &str) -> Result<bool, StoreError> {
        self.backend.forget(webhook_id, by).await
    }

    /// Deletes up to `max` dead letters that died before `before_ms` (ms since the epoch),
    /// oldest first; returns how many.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::Queue;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-purge-dead-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let queue = Queue::sqlite(dir.join("queue.sqlite3")).await?;
    /// let month_ago = agentsync_webhooks_core::handoff::now_ms() - 30 * 24 * 3_600_000;
    /// assert_eq!(queue.purge_dead(month_ago, 10_000).await?, 0);
    /// # drop(queue);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn purge_dead(&self, before_ms: i64, max: usize) -> Result<u64, StoreError> {
        self.backend.purge_dead(before_ms, max).await
    }
}

impl Handoff for Queue {
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> StoreFuture<'a, Enqueued> {
        match self.ordering.order_of(delivery) {
            None => self.backend.enqueue(delivery),
            Some(order) => {
                Box::pin(async move { self.backend.enqueue_ordered(delivery, &order).await })
            }
        }
    }
}

#[cfg(not(all(feature = "sqlite", feature = "redis", feature = "postgres")))]
fn missing_feature(feature: &str, what: &str) -> StoreError {
    StoreError::new(
        agentsync_webhooks_core::idempotency::StoreErrorKind::Other,
        format!(
            "{what} needs the `{feature}` cargo feature of agentsync-webhooks-queue, \
             which this build does not enable"
        ),
    )
}
