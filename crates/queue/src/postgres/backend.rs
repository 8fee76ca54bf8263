//! The [`Backend`] on one PostgreSQL table: pools, timeouts, and the statements of
//! `statements.rs` run with their parameters.

use std::{future::Future, time::Duration};

use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery, now_ms},
    idempotency::{StoreError, StoreErrorKind},
};
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row, error::SqlState, types::ToSql};

use super::{
    PostgresOptions,
    batch::{self, Completion, Completions, EnqueueRow, Enqueues},
    record::RecordStatements,
    schema::{self, SchemaError},
    statements::Statements,
};
use crate::{
    backend::{
        Backend, ClaimToken, Claimed, ClaimedOrder, DeadLetter, EventOrder, Health, Job, Purged,
        QueueFuture, QueueStats, Receipt, attempt_count, duration_ms,
    },
    record::{
        Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord, DeliveryState,
        bounded_error,
    },
    sql::group_of,
};

/// At most this many rows of each kind (done, dead) are deleted per purge.
const PURGE_BATCH: i64 = 500;
/// How many times in a row one claim runs again after it met another claim's job of the same
/// key ([`key_conflict`]); each run sees what committed before it, so a second conflict needs
/// yet another claim of that key committed in between.
const CLAIM_KEY_CONFLICTS: usize = 4;
/// What the health check reads, in one round trip on a durable connection.
const HEALTH: &str = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), \
                      current_setting('synchronous_commit'), current_setting('fsync')";
/// The longest lease or retry delay the statements add to the server's now (about a hundred
/// years), so that `Duration::MAX` means "never" instead of a `bigint` overflow.
const FAR_MS: i64 = 100 * 365 * 24 * 60 * 60 * 1000;
/// How the claims' connections plan. The claim wants the due index read in order, stopping at
/// its `LIMIT`: a few buffers whatever the backlog. Left to its estimates (a new table has no
/// statistics), the planner chose a bitmap scan of every due row and a sort, each claim's cost
/// growing with the backlog (0.5 ms at 3,000 due rows, 2.9 ms at 10,000, against 0.15 ms for the
/// ordered scan); and once the table is analyzed the plan cache kept planning the claim anew at
/// every call (0.4 ms), its generic plan costed dearer. Both settings only on the claims' own
/// connections: the record's reads keep bitmap scans, which their filters combine.
const CLAIM_PLANNER: [&str; 2] = [
    "enable_bitmapscan=off",
    "plan_cache_mode=force_generic_plan",
];
/// The claims' pool: a worker loop runs one claim at a time.
const CLAIM_CONNECTIONS: usize = 2;

/// A [`Backend`] on a PostgreSQL table, shared by every instance that connects to the same
/// database and table.
pub struct PostgresBackend {
    /// Connections whose commits wait for the WAL flush: enqueue, replay, the schema.
    durable: Pool,
    /// Connections with `synchronous_commit = off`: completions, retries, reads.
    bookkeeping: Pool,
    /// The claims' connections (at most [`CLAIM_CONNECTIONS`]): `synchronous_commit = off` and
    /// the claim's plan pinned ([`CLAIM_PLANNER`]).
    claims: Pool,
    table: String,
    statements: Statements,
    /// The enqueues' group commit (`batch.rs`): one statement for those waiting together.
    enqueues: Enqueues,
    /// The completions' group commit (`batch.rs`), on the bookkeeping pool.
    completions: Completions,
    pub(super) record: RecordStatements,
    timeout: Duration,
    /// `None`: kept forever.
    retention_ms: Option<i64>,
    /// How long a done delivery stays on record (never less than `retention_ms`).
    record_retention_ms: Option<i64>,
    dead_retention_ms: Option<i64>,
    /// How long a key's newest done occurred-at is kept after it was written (`None`: forever).
    key_retention_ms: Option<i64>,
    /// Test only: how far this instance's clock runs ahead ([`PostgresOptions::clock_offset`]).
    clock_offset_ms: i64,
    /// The server, database or role had `synchronous_commit` off, and the durable pool turns it
    /// on for its connections (what the health check reports).
    synchronous_commit_forced: bool,
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
    /// creates the table and its indexes if they do not exist. If `synchronous_commit` is `off`
    /// for this server, database or role, it is turned `on` for the durable writes' connections
    /// (with a warning), so that an enqueue answers only once its commit is flushed.
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
        let bookkeeping_config = with_setting(&config, "synchronous_commit=off");
        let claims = CLAIM_PLANNER
            .iter()
            .fold(bookkeeping_config.clone(), |config, setting| {
                with_setting(&config, setting)
            });
        let claims = build_pool_of(claims, CLAIM_CONNECTIONS.min(options.pool_size), &options)?;
        let bookkeeping = build_pool(bookkeeping_config, &options)?;
        let (enqueues, inbox) = Enqueues::new("enqueue");
        let (completions, completions_inbox) = Completions::new("complete");
        let mut backend = Self {
            durable: build_pool(config.clone(), &options)?,
            bookkeeping,
            claims,
            statements: Statements::new(&options.table),
            enqueues,
            completions,
            record: RecordStatements::new(&options.table),
            table: options.table.clone(),
            timeout: options.timeout,
            retention_ms: kept_for(options.retention),
            record_retention_ms: kept_for(options.record_retention.max(options.retention)),
            dead_retention_ms: kept_for(options.dead_retention),
            key_retention_ms: kept_for(options.key_retention),
            clock_offset_ms: duration_ms(options.clock_offset),
            synchronous_commit_forced: false,
        };
        backend.flush_durable_writes(&config, &options).await?;
        backend.migrate().await?;
        // Started once the pools are final; each ends when the backend is dropped.
        tokio::spawn(batch::serve_completions(
            completions_inbox,
            batch::CompletionEngine {
                pool: backend.bookkeeping.clone(),
                complete_one: backend.statements.complete.clone(),
                complete_many: backend.statements.complete_many.clone(),
                timeout: backend.timeout,
            },
        ));
        tokio::spawn(batch::serve_enqueues(
            inbox,
            batch::Engine {
                pool: backend.durable.clone(),
                insert_one: backend.statements.enqueue.clone(),
                insert_many: backend.statements.enqueue_many.clone(),
                take_over: backend.statements.take_over.clone(),
                retention_ms: backend.retention_ms.unwrap_or(i64::MAX),
                timeout: backend.timeout,
            },
        ));
        Ok(backend)
    }

    /// The table this queue lives in.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// What the durable writes (enqueue, replay) commit with: the `synchronous_commit` of a
    /// connection of their pool (`on`, `remote_apply`, ...; never `off`), for health checks.
    pub async fn synchronous_commit(&self) -> Result<String, StoreError> {
        self.bounded_durable("read synchronous_commit", |client| async move {
            client
                .query_one("SHOW synchronous_commit", &[])
                .await?
                .try_get(0)
        })
        .await
    }

    /// Test only: the statements this backend runs, by name, for the tests to `EXPLAIN`: the
    /// workers' path, the record's fixed statements, and its lists and counts for each shape
    /// of filter.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn statements(&self) -> Vec<(String, String)> {
        self.statements
            .by_name()
            .into_iter()
            .chain(self.record.by_name())
            .map(|(name, sql)| (name.to_owned(), sql.to_owned()))
            .chain(super::record::shapes_for_tests(&self.table))
            .collect()
    }

    /// Test only: the plan a claim of at most `max` jobs runs with now, `EXPLAIN (ANALYZE,
    /// BUFFERS)` on one of the claims' connections, inside a transaction rolled back (nothing is
    /// claimed).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub async fn explain_claim(&self, max: i64) -> Result<String, StoreError> {
        let sql = &self.statements.claim;
        self.bounded_on(&self.claims, "explain a claim", |client| async move {
            let explain = format!("EXPLAIN (ANALYZE, BUFFERS) {sql}");
            let lease: i64 = 30_000;
            client.batch_execute("BEGIN").await?;
            let rows = client
                .query(explain.as_str(), &[&max, &lease, &"explain", &"explain"])
                .await;
            client.batch_execute("ROLLBACK").await?;
            Ok(rows?
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n"))
        })
        .await
    }

    /// Rebuilds the durable pool with `synchronous_commit=on` in its startup options when the
    /// server, database or role turned it off (startup options beat those settings); other
    /// values (`local`, `remote_write`, `remote_apply`) are kept, as the operator chose them.
    async fn flush_durable_writes(
        &mut self,
        config: &tokio_postgres::Config,
        options: &PostgresOptions,
    ) -> Result<(), StoreError> {
        if self.synchronous_commit().await? != "off" {
            return Ok(());
        }
        self.durable = build_pool(with_setting(config, "synchronous_commit=on"), options)?;
        self.synchronous_commit_forced = true;
        let now = self.synchronous_commit().await?;
        if now == "off" {
            // A pooler between us and the server may drop startup options.
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "synchronous_commit is off for this PostgreSQL role, database or server, and \
                 could not be turned on for the queue's enqueues: an answered delivery could be \
                 lost in a crash; set it to on (or local, remote_write, remote_apply)",
            ));
        }
        tracing::warn!(
            table = %self.table,
            synchronous_commit = %now,
            "synchronous_commit is off for this PostgreSQL role, database or server; the \
             queue's enqueues and replays turn it on for their connections, so that a delivery \
             is flushed before it is acknowledged"
        );
        Ok(())
    }

    /// This instance's clock, read only where a time is not the server's (the stats' age).
    fn local_now_ms(&self) -> i64 {
        now_ms().saturating_add(self.clock_offset_ms)
    }

    /// Runs `work` with a bookkeeping connection, the wait for it included in the timeout.
    pub(super) async fn bounded<T, F, Fut>(
        &self,
        what: &'static str,
        work: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Client) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        self.bounded_on(&self.bookkeeping, what, work).await
    }

    /// Runs `work` with a connection whose commits are flushed before they are acknowledged.
    pub(super) async fn bounded_durable<T, F, Fut>(
        &self,
        what: &'static str,
        work: F,
    ) -> Result<T, StoreError>
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

    /// Creates the schema, or migrates an older table forward (`schema.rs`); a table of a newer
    /// schema is refused before anything is written to it. Waiting for a connection is bounded
    /// by the timeout; the migration is not (a large table's upgrade takes what it takes, and a
    /// step cut short by a timeout would be rolled back, and again at every connect).
    async fn migrate(&self) -> Result<(), StoreError> {
        let what = "create or upgrade the queue table";
        let mut client = tokio::time::timeout(self.timeout, self.durable.get())
            .await
            .map_err(|_| {
                StoreError::new(
                    StoreErrorKind::Timeout,
                    format!("PostgreSQL {what}: no connection in time"),
                )
            })?
            .map_err(|err| pool_error(what, err))?;
        match schema::migrate(&mut client, &self.table).await {
            Ok(()) => Ok(()),
            Err(SchemaError::Postgres(err)) => Err(pg_error(what, &err)),
            Err(SchemaError::Newer(found)) => Err(StoreError::new(
                StoreErrorKind::Other,
                format!(
                    "the PostgreSQL queue table {} was written by a newer agentsync-webhooks \
                     (schema {found}; this build knows up to {}): upgrade, or use another \
                     table; nothing was written",
                    self.table,
                    schema::VERSION
                ),
            )),
        }
    }

    /// Runs one bookkeeping statement; how many rows it changed.
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

    /// Runs one settlement of `job` under its receipt; whether the receipt was still the job's.
    async fn settle(
        &self,
        what: &'static str,
        sql: &str,
        job: &Job,
        extra: &[&(dyn ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&job.delivery.webhook_id, &job.receipt.0];
        params.extend_from_slice(extra);
        Ok(self.execute(what, sql, &params).await? == 1)
    }

    /// One statement for a new id, shared with the enqueues waiting at the same time (group
    /// commit, `batch.rs`), answered once it committed. A known id is then stored again if its
    /// delivery is dead (the sender's resend from its portal), forgotten, or done longer ago
    /// than the retention; anything else is a duplicate, as is an id's second occurrence in
    /// one batch.
    ///
    /// `order`: the delivery's ordering key and occurred-at, stored with it (a resend writes
    /// its own).
    async fn enqueue_delivery(
        &self,
        delivery: &ReceivedDelivery,
        order: Option<&EventOrder>,
    ) -> Result<Enqueued, StoreError> {
        let group = group_of(&delivery.event_type);
        let key: Option<&str> = order.map(|order| order.key.as_str());
        // Every delivery's, for the record's lists (the claim reads only a keyed row's).
        let occurred_at_ms = crate::record::occurred_at_to_store(delivery, order);
        let row = EnqueueRow {
            webhook_id: delivery.webhook_id.clone(),
            event_type: delivery.event_type.clone(),
            group,
            webhook_timestamp: delivery.webhook_timestamp,
            signature: delivery.signature.clone(),
            received_at_ms: delivery.received_at_ms,
            body: delivery.body.clone(),
            key: key.map(str::to_owned),
            occurred_at_ms,
        };
        self.enqueues.call(row, self.timeout).await
    }

    /// One claim statement: the expired leases, then the due jobs, a keyed one only when no
    /// job of its key runs and it is its key's next in occurred-at order (see [`Backend`]'s
    /// event-time rules); each keyed job with its key's newest done occurred-at.
    async fn claim_jobs(
        &self,
        token: &ClaimToken,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let lease_ms = offset_ms(lease);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let (token, worker) = (token.as_str(), token.worker());
        let sql = &self.statements.claim;
        let running_index = format!("{}_key_running", self.table);
        let running_index = running_index.as_str();
        let rows = self
            .bounded_on(&self.claims, "claim", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                let mut conflicts = 0;
                loop {
                    match client
                        .query(&statement, &[&max, &lease_ms, &token, &worker])
                        .await
                    {
                        // Another claim took a job of one of these keys and committed after
                        // this statement's snapshot: nothing was written; the statement again
                        // sees that job running, and takes what else is due.
                        Err(err)
                            if conflicts < CLAIM_KEY_CONFLICTS
                                && key_conflict(&err, running_index) =>
                        {
                            conflicts += 1;
                        }
                        rows => return rows,
                    }
                }
            })
            .await?;
        rows.iter()
            .map(|row| {
                let job = Job {
                    delivery: delivery_from_row(row)?,
                    attempt: attempt_count(i64::from(row.try_get::<_, i32>(6)?)),
                    receipt: Receipt(token.to_owned()),
                };
                let key: Option<String> = row.try_get(7)?;
                let occurred: Option<i64> = row.try_get(8)?;
                let order = match (key, occurred) {
                    (Some(key), Some(occurred_at_ms)) => Some(ClaimedOrder {
                        key,
                        occurred_at_ms,
                        newest_done_ms: row.try_get(9)?,
                    }),
                    _ => None,
                };
                Ok(Claimed { job, order })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|err| pg_error("read a claimed job", &err))
    }

    /// One batch of each: done rows past the record's retention, dead rows past the
    /// dead-letter retention, with their history, and keys' newest occurred-at past the key
    /// retention (a retention of `Duration::MAX` skips its part).
    async fn purge_batch(&self) -> Result<Purged, StoreError> {
        let halves = [
            (self.record_retention_ms, &self.statements.purge_done),
            (self.dead_retention_ms, &self.statements.purge_dead),
            (self.key_retention_ms, &self.statements.purge_keys),
        ];
        let [done, dead, keys] = self
            .bounded("purge", |client| async move {
                let mut deleted = [0; 3];
                for (count, (retention_ms, sql)) in deleted.iter_mut().zip(halves) {
                    if let Some(retention_ms) = retention_ms {
                        let statement = client.prepare_cached(sql).await?;
                        let deleted: i64 = client
                            .query_one(&statement, &[&retention_ms, &PURGE_BATCH])
                            .await?
                            .try_get(0)?;
                        *count = u64::try_from(deleted).unwrap_or(0);
                    }
                }
                Ok(deleted)
            })
            .await?;
        let full = |deleted: u64| i64::try_from(deleted).unwrap_or(i64::MAX) >= PURGE_BATCH;
        Ok(Purged {
            done,
            dead,
            more: full(done) || full(dead) || full(keys),
        })
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

    async fn replay_dead(&self, webhook_id: &str) -> Result<bool, StoreError> {
        let replayed = self
            .replay_ids(&[webhook_id.to_owned()], "library", &[DeliveryState::Dead])
            .await?;
        Ok(replayed == 1)
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
        // `received_at_ms` is the receiving instance's clock: its age is a metric, no lease.
        let now = self.local_now_ms();
        Ok(QueueStats {
            depth: u64::try_from(depth).unwrap_or(0),
            oldest_age: oldest.map(|received| {
                Duration::from_millis(u64::try_from(now.saturating_sub(received)).unwrap_or(0))
            }),
            dead: u64::try_from(dead).unwrap_or(0),
        })
    }
}

impl PostgresBackend {
    /// One statement on a connection of the durable pool (the one that answers senders):
    /// whether the server is a standby or read-only (an error: no enqueue could be written),
    /// and what the durable writes commit with (a warning for each setting under which an
    /// answered delivery might not survive a crash, naming the fix). Bounded by the timeout.
    async fn check_health(&self) -> Result<Health, StoreError> {
        let (in_recovery, read_only, synchronous_commit, fsync) = self
            .bounded_durable("health check", |client| async move {
                let statement = client.prepare_cached(HEALTH).await?;
                let row = client.query_one(&statement, &[]).await?;
                Ok((
                    row.try_get::<_, bool>(0)?,
                    row.try_get::<_, String>(1)?,
                    row.try_get::<_, String>(2)?,
                    row.try_get::<_, String>(3)?,
                ))
            })
            .await?;
        if in_recovery {
            return Err(StoreError::new(
                StoreErrorKind::Unreachable,
                "PostgreSQL health check: connected to a standby (in recovery), where no \
                 enqueue can be written; point the queue URL at the primary, or list every \
                 host with target_session_attrs=read-write",
            ));
        }
        if read_only == "on" {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "PostgreSQL health check: transactions are read-only for this role, database \
                 or server (default_transaction_read_only = on), so no enqueue can be written; \
                 set it to off for the queue's role",
            ));
        }
        let mut health = Health::new("postgres");
        if synchronous_commit == "off" {
            health.warnings.push(format!(
                "synchronous_commit is off on the queue's durable connections (table {}): an \
                 answered delivery could be lost in a crash of the server; set \
                 synchronous_commit = on for the role (ALTER ROLE ... SET synchronous_commit = \
                 on) and connect without a pooler that drops startup options",
                self.table
            ));
        } else if self.synchronous_commit_forced {
            health.warnings.push(format!(
                "synchronous_commit is off for this PostgreSQL role, database or server; the \
                 queue's enqueues and replays (table {}) turn it {synchronous_commit} for their \
                 own connections, so an answered delivery holds, but other writers of this \
                 database commit without waiting for the flush; set synchronous_commit = on \
                 (ALTER ROLE ... SET synchronous_commit = on, or in postgresql.conf)",
                self.table
            ));
        }
        if fsync == "off" {
            health.warnings.push(
                "fsync is off on this PostgreSQL server: a crash of the machine can lose or \
                 corrupt committed enqueues, answered deliveries included; set fsync = on in \
                 postgresql.conf"
                    .to_owned(),
            );
        }
        Ok(health)
    }
}

impl Backend for PostgresBackend {
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> QueueFuture<'a, Enqueued> {
        Box::pin(self.enqueue_delivery(delivery, None))
    }

    fn claim_with<'a>(
        &'a self,
        token: &'a ClaimToken,
        max: usize,
        lease: Duration,
    ) -> QueueFuture<'a, Vec<Job>> {
        Box::pin(async move {
            let claimed = self.claim_jobs(token, max, lease).await?;
            Ok(claimed.into_iter().map(|claimed| claimed.job).collect())
        })
    }

    fn orders_events(&self) -> bool {
        true
    }

    fn enqueue_ordered<'a>(
        &'a self,
        delivery: &'a ReceivedDelivery,
        order: &'a EventOrder,
    ) -> QueueFuture<'a, Enqueued> {
        Box::pin(self.enqueue_delivery(delivery, Some(order)))
    }

    fn claim_ordered<'a>(
        &'a self,
        token: &'a ClaimToken,
        max: usize,
        lease: Duration,
    ) -> QueueFuture<'a, Vec<Claimed>> {
        Box::pin(self.claim_jobs(token, max, lease))
    }

    fn complete_stale<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(self.settle(
            "complete a stale job",
            &self.statements.complete_stale,
            job,
            &[],
        ))
    }

    fn abandon<'a>(&'a self, token: &'a ClaimToken) -> QueueFuture<'a, u64> {
        Box::pin(async move {
            let token = token.as_str();
            self.execute("give back a claim", &self.statements.abandon, &[&token])
                .await
        })
    }

    /// Shared with the completions waiting at the same time (group commit, `batch.rs`).
    fn complete<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        let completion = Completion {
            webhook_id: job.delivery.webhook_id.clone(),
            receipt: job.receipt.0.clone(),
        };
        Box::pin(self.completions.call(completion, self.timeout))
    }

    fn retry<'a>(&'a self, job: &'a Job, after: Duration, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let after_ms = offset_ms(after);
            let error = bounded_error(error);
            self.settle("retry", &self.statements.retry, job, &[&after_ms, &error])
                .await
        })
    }

    fn extend<'a>(&'a self, job: &'a Job, lease: Duration) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let lease_ms = offset_ms(lease);
            self.settle("extend", &self.statements.extend, job, &[&lease_ms])
                .await
        })
    }

    fn release<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(self.settle("release", &self.statements.release, job, &[]))
    }

    fn bury<'a>(&'a self, job: &'a Job, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let error = bounded_error(error);
            self.settle("bury", &self.statements.bury, job, &[&error])
                .await
        })
    }

    fn dead_letters(&self, limit: usize) -> QueueFuture<'_, Vec<DeadLetter>> {
        Box::pin(self.dead_letter_list(limit))
    }

    fn dead_letter<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeadLetter>> {
        Box::pin(self.dead_letter_by_id(webhook_id))
    }

    fn replay<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(self.replay_dead(webhook_id))
    }

    fn stats(&self) -> QueueFuture<'_, QueueStats> {
        Box::pin(self.queue_stats())
    }

    fn health(&self) -> QueueFuture<'_, Health> {
        Box::pin(self.check_health())
    }

    fn purge(&self) -> QueueFuture<'_, Purged> {
        Box::pin(self.purge_batch())
    }

    fn list<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        after: Option<&'a Cursor>,
        limit: usize,
    ) -> QueueFuture<'a, DeliveryPage> {
        Box::pin(self.list_deliveries(filter, after, limit))
    }

    fn counts<'a>(&'a self, filter: &'a DeliveryFilter) -> QueueFuture<'a, DeliveryCounts> {
        Box::pin(self.count_deliveries(filter))
    }

    fn delivery<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeliveryRecord>> {
        Box::pin(self.delivery_record(webhook_id))
    }

    fn replay_by<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let replayed = self
                .replay_ids(
                    &[webhook_id.to_owned()],
                    by,
                    &[DeliveryState::Done, DeliveryState::Dead],
                )
                .await?;
            Ok(replayed == 1)
        })
    }

    fn replay_matching<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        by: &'a str,
        max: usize,
    ) -> QueueFuture<'a, u64> {
        Box::pin(self.replay_filtered(filter, by, max))
    }

    fn discard<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(self.discard_delivery(webhook_id, by))
    }

    fn forget<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(self.forget_id(webhook_id, by))
    }

    fn purge_dead(&self, before_ms: i64, max: usize) -> QueueFuture<'_, u64> {
        Box::pin(self.purge_dead_before(before_ms, max))
    }
}

/// Whether the claim failed only because another claim, committed after the claim's snapshot,
/// runs a job of one of its keys: `running_index` (unique: one running job per key, schema 4)
/// refused the second, or two claims waited for each other's keys (a deadlock, one of them
/// cancelled). Nothing of the failed statement was written.
fn key_conflict(err: &tokio_postgres::Error, running_index: &str) -> bool {
    match err.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => err
            .as_db_error()
            .and_then(|db| db.constraint())
            .is_some_and(|constraint| constraint == running_index),
        Some(code) => *code == SqlState::T_R_DEADLOCK_DETECTED,
        None => false,
    }
}

/// A retention in milliseconds, `None` for `Duration::MAX` (kept forever).
fn kept_for(retention: Duration) -> Option<i64> {
    (retention != Duration::MAX).then(|| duration_ms(retention))
}

/// A lease or delay in milliseconds, at most [`FAR_MS`].
fn offset_ms(duration: Duration) -> i64 {
    duration_ms(duration).min(FAR_MS)
}

/// `config` with `-c setting` added to its startup options (which beat the server's, the
/// database's and the role's settings).
fn with_setting(config: &tokio_postgres::Config, setting: &str) -> tokio_postgres::Config {
    let mut config = config.clone();
    let options = match config.get_options() {
        Some(existing) => format!("{existing} -c {setting}"),
        None => format!("-c {setting}"),
    };
    config.options(&options);
    config
}

/// A pool of at most `options.pool_size` connections on `config`, every wait bounded.
fn build_pool(
    config: tokio_postgres::Config,
    options: &PostgresOptions,
) -> Result<Pool, StoreError> {
    build_pool_of(config, options.pool_size, options)
}

/// A pool of at most `size` connections on `config`, every wait bounded by `options.timeout`.
fn build_pool_of(
    config: tokio_postgres::Config,
    size: usize,
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
        .max_size(size)
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
pub(super) fn delivery_from_row(row: &Row) -> Result<ReceivedDelivery, tokio_postgres::Error> {
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
pub(super) fn pg_error(what: &'static str, err: &tokio_postgres::Error) -> StoreError {
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

pub(super) fn pool_error(what: &'static str, err: PoolError) -> StoreError {
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
