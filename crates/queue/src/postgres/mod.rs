//! PostgreSQL: one table, `FOR UPDATE SKIP LOCKED` claims, so that every instance that shares
//! the database shares the work.
//!
//! # Layout
//!
//! One table (`agentsync_webhook_jobs` by default), created with `CREATE TABLE IF NOT EXISTS` on
//! connect, one row per `webhook-id` (its primary key): the delivery, its state (`queued`,
//! `running`, `done`, `dead`), `attempts`, `next_run_at_ms`, the lease (`locked_until_ms` and a
//! random `lease` token) and the last error. Times are milliseconds since the Unix epoch from
//! the instances' clocks (keep them synchronised, as for any lease).
//!
//! - Enqueue is `INSERT ... ON CONFLICT (webhook_id) DO NOTHING RETURNING`: the de-duplication and
//!   the write are one statement, committed (with the server's `synchronous_commit`) before it
//!   answers.
//! - Claim is one `UPDATE` over the rows a `SELECT ... FOR UPDATE SKIP LOCKED` picked through
//!   partial indexes: the expired leases (`locked_until_ms WHERE state = 'running'`), then the due
//!   jobs (`next_run_at_ms WHERE state = 'queued'`). Concurrent claimers skip each other's rows.
//! - Done rows keep their `webhook-id` for the retention (72 h by default) but drop their body;
//!   the claims purge them in small batches. Dead rows stay until replayed.
//!
//! Connections come from two small pools (at most 8 connections each by default, opened on
//! demand, `deadpool-postgres`); statements are prepared once per connection. Enqueues and
//! replays (the writes that answer someone) commit with the server's `synchronous_commit`
//! (`on` by default: flushed before acknowledged). Claims, completions, retries and the dead
//! letters' bookkeeping use connections with `synchronous_commit = off`: a crash of the server
//! can forget the last few completions (those jobs run again, as after a worker crash), never an
//! answered delivery. Every call is bounded by a timeout.
//!
//! ```no_run
//! # async fn run() -> Result<(), agentsync_webhooks_queue::StoreError> {
//! use agentsync_webhooks_queue::{Queue, postgres::{PostgresBackend, PostgresOptions}};
//!
//! let backend = PostgresBackend::connect_with(
//!     "postgres://app@127.0.0.1:5432/app",
//!     PostgresOptions::new().table("billing_webhook_jobs").pool_size(4),
//! )
//! .await?;
//! let queue = Queue::new(backend);
//! # let _ = queue;
//! # Ok(()) }
//! ```

use std::{
    future::Future,
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, SystemTime},
};

use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery, now_ms},
    idempotency::{StoreError, StoreErrorKind},
};
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row, error::SqlState, types::ToSql};

use crate::backend::{
    Backend, DeadLetter, Job, QueueFuture, QueueStats, Receipt, attempt_count, duration_ms,
    new_lease_token, system_time_ms,
};

/// The table by default.
pub const DEFAULT_TABLE: &str = "agentsync_webhook_jobs";
/// Connections in the pool by default.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// How long one call (waiting for a connection included) may take before it fails as a timeout
/// (and the delivery gets a 503): well under the 5 s a sender waits.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a done `webhook-id` stays known: longer than the sender's retry horizon.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(72 * 60 * 60);

/// At most this many done rows are purged per claim.
const PURGE_BATCH: i64 = 500;
/// How often (at most) the claims look for done rows to purge when the last purge found few.
const PURGE_EVERY_MS: i64 = 60_000;

/// Settings of a [`PostgresBackend`].
///
/// ```
/// use std::time::Duration;
/// use agentsync_webhooks_queue::postgres::PostgresOptions;
///
/// let options = PostgresOptions::new()
///     .table("billing_webhook_jobs")
///     .pool_size(4)
///     .timeout(Duration::from_secs(1))
///     .retention(Duration::from_secs(48 * 3600));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    table: String,
    pool_size: usize,
    timeout: Duration,
    retention: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresOptions {
    /// [`DEFAULT_TABLE`], [`DEFAULT_POOL_SIZE`], [`DEFAULT_TIMEOUT`], [`DEFAULT_RETENTION`].
    pub fn new() -> Self {
        Self {
            table: DEFAULT_TABLE.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_TIMEOUT,
            retention: DEFAULT_RETENTION,
        }
    }

    /// The table (a plain identifier: letters, digits, `_`, at most 48 characters), so that
    /// several queues share one database.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How many connections each of the two pools (durable writes, bookkeeping) keeps at most
    /// (at least 1).
    pub fn pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size.max(1);
        self
    }

    /// How long one call may take before it fails as a timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a done `webhook-id` stays known as a duplicate.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }
}

/// The statements of one table, written once.
#[derive(Debug)]
struct Statements {
    schema: String,
    enqueue: String,
    claim: String,
    complete: String,
    retry: String,
    extend: String,
    release: String,
    bury: String,
    dead_letters: String,
    dead_letter: String,
    replay: String,
    pending: String,
    dead_count: String,
    purge: String,
}

const DELIVERY_COLUMNS: &str =
    "webhook_id, event_type, webhook_timestamp, signature, received_at_ms, body";

impl Statements {
    fn new(t: &str) -> Self {
        Self {
            schema: format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    webhook_id text PRIMARY KEY,
                    event_type text NOT NULL,
                    webhook_timestamp bigint NOT NULL,
                    signature text NOT NULL,
                    received_at_ms bigint NOT NULL,
                    body bytea NOT NULL,
                    state text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
                    attempts integer NOT NULL DEFAULT 0,
                    next_run_at_ms bigint NOT NULL,
                    locked_until_ms bigint,
                    lease text,
                    last_error text,
                    died_at_ms bigint,
                    done_at_ms bigint
                );
                CREATE INDEX IF NOT EXISTS {t}_due ON {t} (next_run_at_ms) WHERE state = 'queued';
                CREATE INDEX IF NOT EXISTS {t}_lease ON {t} (locked_until_ms) WHERE state = 'running';
                CREATE INDEX IF NOT EXISTS {t}_pending ON {t} (received_at_ms)
                    WHERE state IN ('queued', 'running');
                CREATE INDEX IF NOT EXISTS {t}_done ON {t} (done_at_ms) WHERE state = 'done';
                CREATE INDEX IF NOT EXISTS {t}_dead ON {t} (died_at_ms) WHERE state = 'dead';"
            ),
            enqueue: format!(
                "INSERT INTO {t} ({DELIVERY_COLUMNS}, state, attempts, next_run_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7)
                 ON CONFLICT (webhook_id) DO NOTHING
                 RETURNING 1"
            ),
            claim: format!(
                "WITH expired AS (
                    SELECT webhook_id FROM {t}
                    WHERE state = 'running' AND locked_until_ms <= $1
                    ORDER BY locked_until_ms LIMIT $2
                    FOR UPDATE SKIP LOCKED
                 ), due AS (
                    SELECT webhook_id FROM {t}
                    WHERE state = 'queued' AND next_run_at_ms <= $1
                    ORDER BY next_run_at_ms LIMIT $2
                    FOR UPDATE SKIP LOCKED
                 ), picked AS (
                    SELECT webhook_id FROM expired
                    UNION ALL
                    SELECT webhook_id FROM due
                    LIMIT $2
                 )
                 UPDATE {t} AS job
                 SET state = 'running', attempts = job.attempts + 1, locked_until_ms = $3,
                     lease = $4
                 FROM picked WHERE job.webhook_id = picked.webhook_id
                 RETURNING job.webhook_id, job.event_type, job.webhook_timestamp, job.signature,
                           job.received_at_ms, job.body, job.attempts"
            ),
            complete: format!(
                "UPDATE {t} SET state = 'done', done_at_ms = $3, body = ''::bytea,
                                locked_until_ms = NULL, lease = NULL
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            retry: format!(
                "UPDATE {t} SET state = 'queued', next_run_at_ms = $3, last_error = $4,
                                locked_until_ms = NULL, lease = NULL
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            extend: format!(
                "UPDATE {t} SET locked_until_ms = $3
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            release: format!(
                "UPDATE {t} SET state = 'queued', next_run_at_ms = $3,
                                attempts = GREATEST(attempts - 1, 0),
                                locked_until_ms = NULL, lease = NULL
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            bury: format!(
                "UPDATE {t} SET state = 'dead', died_at_ms = $3, last_error = $4,
                                locked_until_ms = NULL, lease = NULL
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            dead_letters: format!(
                "SELECT {DELIVERY_COLUMNS}, attempts, last_error, died_at_ms FROM {t}
                 WHERE state = 'dead' ORDER BY died_at_ms, webhook_id LIMIT $1"
            ),
            dead_letter: format!(
                "SELECT {DELIVERY_COLUMNS}, attempts, last_error, died_at_ms FROM {t}
                 WHERE state = 'dead' AND webhook_id = $1"
            ),
            replay: format!(
                "UPDATE {t} SET state = 'queued', attempts = 0, next_run_at_ms = $2,
                                died_at_ms = NULL
                 WHERE webhook_id = $1 AND state = 'dead'"
            ),
            pending: format!(
                "SELECT count(*), min(received_at_ms) FROM {t}
                 WHERE state IN ('queued', 'running')"
            ),
            dead_count: format!("SELECT count(*) FROM {t} WHERE state = 'dead'"),
            purge: format!(
                "DELETE FROM {t} WHERE webhook_id IN (
                    SELECT webhook_id FROM {t} WHERE state = 'done' AND done_at_ms <= $1
                    LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
        }
    }
}

/// A [`Backend`] on a PostgreSQL table, shared by every instance that connects to the same
/// database and table.
pub struct PostgresBackend {
    /// Connections whose commits wait for the WAL flush: enqueue, replay, the schema.
    durable: Pool,
    /// Connections with `synchronous_commit = off`: claims, completions, retries, reads.
    bookkeeping: Pool,
    table: String,
    statements: Statements,
    timeout: Duration,
    retention_ms: i64,
    purge_every_ms: i64,
    next_purge_ms: AtomicI64,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password: keep it out.
        f.debug_struct("PostgresBackend")
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`, or a key=value
    /// string; no TLS) with the default [`PostgresOptions`], failing if the database does not
    /// answer now, and creates the table if it does not exist.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::new()).await
    }

    /// Connects to `url` with `options`, failing if the database does not answer now, and
    /// creates the table and its indexes if they do not exist.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        if !valid_table_name(&options.table) {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "the queue table must be a plain identifier (letters, digits, _; at most 48)",
            ));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            // The error may quote the URL, and with it a password.
            StoreError::new(StoreErrorKind::Other, "invalid PostgreSQL URL")
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        let mut bookkeeping_config = config.clone();
        let relaxed = match config.get_options() {
            Some(existing) => format!("{existing} -c synchronous_commit=off"),
            None => "-c synchronous_commit=off".to_owned(),
        };
        bookkeeping_config.options(&relaxed);
        let durable = build_pool(config, &options)?;
        let bookkeeping = build_pool(bookkeeping_config, &options)?;
        let retention_ms = duration_ms(options.retention);
        let backend = Self {
            durable,
            bookkeeping,
            statements: Statements::new(&options.table),
            table: options.table,
            timeout: options.timeout,
            retention_ms,
            purge_every_ms: retention_ms.clamp(1, PURGE_EVERY_MS),
            next_purge_ms: AtomicI64::new(0),
        };
        backend.create_table().await?;
        Ok(backend)
    }

    /// The table this queue lives in.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Runs `work` with a bookkeeping connection, the wait for it included in the timeout.
    async fn bounded<T, F, Fut>(&self, what: &'static str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Client) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        self.bounded_on(&self.bookkeeping, what, work).await
    }

    /// Runs `work` with a connection whose commits are flushed before they are acknowledged.
    async fn bounded_durable<T, F, Fut>(&self, what: &'static str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Client) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        self.bounded_on(&self.durable, what, work).await
    }

    async fn bounded_on<T, F, Fut>(
        &self,
        pool: &Pool,
        what: &'static str,
        work: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Client) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let call = async {
            let client = pool.get().await.map_err(|err| pool_error(what, err))?;
            work(client).await.map_err(|err| pg_error(what, &err))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("PostgreSQL {what} took longer than {:?}", self.timeout),
            )),
        }
    }

    /// Creates the table and indexes, one instance at a time (an advisory lock), since
    /// concurrent `CREATE ... IF NOT EXISTS` can still collide.
    async fn create_table(&self) -> Result<(), StoreError> {
        let table = self.table.clone();
        let schema = self.statements.schema.clone();
        self.bounded_durable("create the queue table", |mut client| async move {
            let transaction = client.transaction().await?;
            transaction
                .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&table])
                .await?;
            transaction.batch_execute(&schema).await?;
            transaction.commit().await
        })
        .await
    }

    async fn execute(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.bounded(what, |client| async move {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        })
        .await
    }

    async fn enqueue_delivery(&self, delivery: &ReceivedDelivery) -> Result<Enqueued, StoreError> {
        let body: &[u8] = delivery.body.as_ref();
        let now = now_ms();
        let sql = &self.statements.enqueue;
        let inserted = self
            .bounded_durable("enqueue", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                client
                    .query_opt(
                        &statement,
                        &[
                            &delivery.webhook_id,
                            &delivery.event_type,
                            &delivery.webhook_timestamp,
                            &delivery.signature,
                            &delivery.received_at_ms,
                            &body,
                            &now,
                        ],
                    )
                    .await
            })
            .await?;
        Ok(if inserted.is_some() {
            Enqueued::New
        } else {
            Enqueued::Duplicate
        })
    }

    async fn claim_jobs(&self, max: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let token = new_lease_token()?;
        let now = now_ms();
        let until = now.saturating_add(duration_ms(lease));
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let sql = &self.statements.claim;
        let rows = self
            .bounded("claim", |client| {
                let token = &token;
                async move {
                    let statement = client.prepare_cached(sql).await?;
                    client.query(&statement, &[&now, &max, &until, token]).await
                }
            })
            .await?;
        let jobs = rows
            .iter()
            .map(|row| {
                Ok(Job {
                    delivery: delivery_from_row(row)?,
                    attempt: attempt_count(i64::from(row.try_get::<_, i32>(6)?)),
                    receipt: Receipt(token.clone()),
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|err| pg_error("read a claimed job", &err))?;
        self.purge_if_due(now).await;
        Ok(jobs)
    }

    /// Deletes one batch of done rows older than the retention, when it is time to; a failure
    /// is logged, the claim it follows stands.
    async fn purge_if_due(&self, now: i64) {
        let due = self.next_purge_ms.load(Ordering::Relaxed);
        if now < due
            || self
                .next_purge_ms
                .compare_exchange(
                    due,
                    now.saturating_add(self.purge_every_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let cutoff = now.saturating_sub(self.retention_ms);
        match self
            .execute("purge", &self.statements.purge, &[&cutoff, &PURGE_BATCH])
            .await
        {
            // A full batch: there may be more, purge again at the next claim.
            Ok(purged) if i64::try_from(purged).unwrap_or(i64::MAX) >= PURGE_BATCH => {
                self.next_purge_ms.store(now, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "could not purge done jobs from the PostgreSQL queue");
            }
        }
    }

    async fn settle(
        &self,
        what: &'static str,
        sql: &str,
        job: &Job,
        value: i64,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let id = &job.delivery.webhook_id;
        let lease = &job.receipt.0;
        let changed = match error {
            Some(error) => {
                self.execute(what, sql, &[id, lease, &value, &error])
                    .await?
            }
            None => self.execute(what, sql, &[id, lease, &value]).await?,
        };
        Ok(changed == 1)
    }

    async fn dead_letter_list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = &self.statements.dead_letters;
        let rows = self
            .bounded("list dead letters", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                client.query(&statement, &[&limit]).await
            })
            .await?;
        rows.iter()
            .map(dead_letter_from_row)
            .collect::<Result<_, _>>()
            .map_err(|err| pg_error("read a dead letter", &err))
    }

    async fn dead_letter_by_id(&self, webhook_id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let sql = &self.statements.dead_letter;
        let row = self
            .bounded("show a dead letter", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                client.query_opt(&statement, &[&webhook_id]).await
            })
            .await?;
        row.as_ref()
            .map(dead_letter_from_row)
            .transpose()
            .map_err(|err| pg_error("read a dead letter", &err))
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let (pending, dead) = (&self.statements.pending, &self.statements.dead_count);
        let (depth, oldest, dead) = self
            .bounded("stats", |client| async move {
                let pending = client.prepare_cached(pending).await?;
                let dead = client.prepare_cached(dead).await?;
                let row = client.query_one(&pending, &[]).await?;
                let depth: i64 = row.try_get(0)?;
                let oldest: Option<i64> = row.try_get(1)?;
                let dead: i64 = client.query_one(&dead, &[]).await?.try_get(0)?;
                Ok((depth, oldest, dead))
            })
            .await?;
        let now = now_ms();
        Ok(QueueStats {
            depth: u64::try_from(depth).unwrap_or(0),
            oldest_age: oldest.map(|received| {
                Duration::from_millis(u64::try_from(now.saturating_sub(received)).unwrap_or(0))
            }),
            dead: u64::try_from(dead).unwrap_or(0),
        })
    }
}

impl Backend for PostgresBackend {
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> QueueFuture<'a, Enqueued> {
        Box::pin(self.enqueue_delivery(delivery))
    }

    fn claim(&self, max: usize, lease: Duration) -> QueueFuture<'_, Vec<Job>> {
        Box::pin(self.claim_jobs(max, lease))
    }

    fn complete<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(self.settle("complete", &self.statements.complete, job, now_ms(), None))
    }

    fn retry<'a>(&'a self, job: &'a Job, at: SystemTime, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(self.settle(
            "retry",
            &self.statements.retry,
            job,
            system_time_ms(at),
            Some(error),
        ))
    }

    fn extend<'a>(&'a self, job: &'a Job, lease: Duration) -> QueueFuture<'a, bool> {
        let until = now_ms().saturating_add(duration_ms(lease));
        Box::pin(self.settle("extend", &self.statements.extend, job, until, None))
    }

    fn release<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(self.settle("release", &self.statements.release, job, now_ms(), None))
    }

    fn bury<'a>(&'a self, job: &'a Job, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(self.settle("bury", &self.statements.bury, job, now_ms(), Some(error)))
    }

    fn dead_letters(&self, limit: usize) -> QueueFuture<'_, Vec<DeadLetter>> {
        Box::pin(self.dead_letter_list(limit))
    }

    fn dead_letter<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeadLetter>> {
        Box::pin(self.dead_letter_by_id(webhook_id))
    }

    fn replay<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let now = now_ms();
            let sql = &self.statements.replay;
            let changed = self
                .bounded_durable("replay", |client| async move {
                    let statement = client.prepare_cached(sql).await?;
                    client.execute(&statement, &[&webhook_id, &now]).await
                })
                .await?;
            Ok(changed == 1)
        })
    }

    fn stats(&self) -> QueueFuture<'_, QueueStats> {
        Box::pin(self.queue_stats())
    }
}

/// A pool of at most `options.pool_size` connections on `config`, every wait bounded.
fn build_pool(
    config: tokio_postgres::Config,
    options: &PostgresOptions,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.pool_size)
        .wait_timeout(Some(options.timeout))
        .create_timeout(Some(options.timeout))
        .recycle_timeout(Some(options.timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|err| {
            StoreError::new(StoreErrorKind::Other, "could not build the PostgreSQL pool")
                .with_source(err)
        })
}

fn valid_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 48
}

/// The delivery in the first six columns of `row`.
fn delivery_from_row(row: &Row) -> Result<ReceivedDelivery, tokio_postgres::Error> {
    Ok(ReceivedDelivery {
        webhook_id: row.try_get(0)?,
        event_type: row.try_get(1)?,
        webhook_timestamp: row.try_get(2)?,
        signature: row.try_get(3)?,
        received_at_ms: row.try_get(4)?,
        body: Bytes::from(row.try_get::<_, Vec<u8>>(5)?),
    })
}

fn dead_letter_from_row(row: &Row) -> Result<DeadLetter, tokio_postgres::Error> {
    Ok(DeadLetter {
        delivery: delivery_from_row(row)?,
        attempts: attempt_count(i64::from(row.try_get::<_, i32>(6)?)),
        last_error: row.try_get::<_, Option<String>>(7)?.unwrap_or_default(),
        died_at_ms: row.try_get::<_, Option<i64>>(8)?.unwrap_or_default(),
    })
}

/// A PostgreSQL error as a [`StoreError`]: a lost or refused connection, or a server shutting
/// down, is unreachable; a cancelled statement or a lock wait is a timeout; anything else
/// (a constraint, a permission) is `Other`.
fn pg_error(what: &'static str, err: &tokio_postgres::Error) -> StoreError {
    let kind = match err.code() {
        Some(code)
            if *code == SqlState::QUERY_CANCELED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreErrorKind::Timeout
        }
        Some(code)
            if code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS =>
        {
            StoreErrorKind::Unreachable
        }
        Some(_) => StoreErrorKind::Other,
        None if err.is_closed() => StoreErrorKind::Unreachable,
        None if err.to_string().contains("timeout") => StoreErrorKind::Timeout,
        None if std::error::Error::source(err)
            .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some()) =>
        {
            StoreErrorKind::Unreachable
        }
        None => StoreErrorKind::Other,
    };
    let detail = err
        .as_db_error()
        .map_or_else(|| err.to_string(), |db| db.message().to_owned());
    StoreError::new(kind, format!("PostgreSQL {what} failed: {detail}"))
}

fn pool_error(what: &'static str, err: PoolError) -> StoreError {
    match err {
        PoolError::Timeout(_) => StoreError::new(
            StoreErrorKind::Timeout,
            format!("PostgreSQL {what}: no connection in time"),
        ),
        PoolError::Backend(err) => pg_error(what, &err),
        other => StoreError::new(
            StoreErrorKind::Other,
            format!("PostgreSQL {what}: the pool failed: {other}"),
        ),
    }
}
