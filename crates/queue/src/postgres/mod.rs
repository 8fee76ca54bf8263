//! PostgreSQL: one table, `FOR UPDATE SKIP LOCKED` claims, so that every instance that shares
//! the database shares the work.
//!
//! # Layout
//!
//! `schema.rs` holds the schema, its version and the migrations, `statements.rs` the workers'
//! statements, `record.rs` the record's queries and actions, `backend.rs` the [`Backend`] that
//! runs them. One table (`agentsync_webhook_jobs` by default) holds one row per `webhook-id`
//! (its primary key, compared by its bytes whatever the database's collation): the delivery as
//! received (body and the headers that verify it again), its type and portal group, its state
//! (`waiting`, `running`, `retrying`, `done`, `dead`), `attempts`, `next_run_at_ms`, the lease
//! (`locked_until_ms`, the claim's token in `lease`, the worker and when it claimed) and the
//! last error. `{table}_history` holds what happened to each delivery (every attempt with its
//! start, duration, outcome, error and worker; replays, resends, discards, forgets), its first
//! entry and the latest, 25 in all. `{table}_schema` holds the schema version: a table created
//! before it (states `queued`, `running`, `done`, `dead`) is upgraded in place on connect, its
//! waiting jobs and dead letters kept, one transaction per step under an advisory lock; a table
//! of a newer version is refused before anything is written.
//!
//! Times are milliseconds since the Unix epoch **from the server's clock**
//! (`clock_timestamp()`, read in each statement): instances whose clocks differ still agree on
//! when a lease ends and when a retry is due. Only `received_at_ms` is the receiving instance's
//! clock.
//!
//! - Enqueue is `INSERT ... ON CONFLICT (webhook_id) DO NOTHING RETURNING`: for a new id the
//!   de-duplication and the write are one statement, committed before it answers. Only a known
//!   id looks further (a second statement): a dead delivery (the sender's resend from its
//!   portal), a forgotten one, or one done longer ago than the retention is stored again as
//!   resent; anything else is a duplicate.
//! - Claim is one statement: an `UPDATE` over the rows a `SELECT ... FOR UPDATE SKIP LOCKED`
//!   picked through partial indexes, the expired leases (`locked_until_ms WHERE state =
//!   'running'`, their lost attempt written to the history by the same statement) then the due
//!   jobs (`next_run_at_ms WHERE state IN ('waiting', 'retrying')`), leased under the caller's
//!   claim token, so that a claim whose answer was lost is given back by that token
//!   ([`Backend::abandon`]). Each settlement (complete, retry, release, bury) is one statement
//!   too, its attempt's history entry (and the history's trim) written by it.
//! - The record's lists read an index that ends in `(received_at_ms, webhook_id)` (overall, or
//!   after the state, the type or the group) backwards from a keyset cursor; a list of several
//!   states is one such read per state, merged. Counts are one `GROUP BY state, event_type`
//!   over the rows the filter's index selects.
//! - Event time (schema 3): a delivery enqueued with an ordering key keeps it and its
//!   occurred-at in `ordering_key` and `occurred_at_ms`; `{table}_ordering_keys` keeps the newest
//!   occurred-at completed per key (raised by the completion's own statement) for the key
//!   retention (7 days by default). The claim's due part takes a keyed job only when no job of
//!   its key runs and it is its key's first waiting or retrying job by (occurred-at,
//!   `webhook-id`), both found through partial indexes of those rows only (`{table}_key_running`,
//!   `{table}_key_waiting`); the head row is locked `FOR UPDATE SKIP LOCKED`, so two claims
//!   never take one key's head together, and `{table}_key_running` is unique (schema 4): at
//!   most one running job per key, held by the engine even when a new head appears between two
//!   claims' snapshots (the later claim waits for the earlier one's commit, fails, and runs
//!   again). A job without a key costs a look at its key column.
//! - A done `webhook-id` is a duplicate for the retention (72 h by default); the done delivery
//!   stays on record (body and history) for the record's retention (7 days by default, never
//!   shorter); dead rows stay for the dead-letter retention (30 days by default) unless
//!   replayed. [`Backend::purge`] deletes a batch of each past its retention, with their
//!   history (the workers call it every minute, off the claims' path).
//!
//! # Durability
//!
//! Connections come from small pools (at most 8 connections each by default, opened on
//! demand, `deadpool-postgres`); statements are prepared once per connection. Enqueues and
//! replays (the writes that answer someone) commit with the server's `synchronous_commit`
//! (`on` by default: flushed before acknowledged; `local`, `remote_write` and `remote_apply` are
//! kept), except that `off` (set for the server, the database or the role: a common tweak) is
//! turned back `on` for their pool at connect, with a warning;
//! [`PostgresBackend::synchronous_commit`] says what they commit with. Claims, completions,
//! retries and the dead letters' bookkeeping use connections with `synchronous_commit = off`: a
//! crash of the server can forget the last few completions (those jobs run again, as after a
//! worker crash), never an answered delivery. The claims have two connections of their own,
//! which also pin how the claim is planned (an ordered read of the due index, not a bitmap scan
//! and a sort of every due row; one generic plan): both settings, like `synchronous_commit`,
//! are startup options, which a pooler in transaction mode may drop. Every call is bounded by a
//! timeout.
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

mod backend;
mod batch;
mod record;
mod schema;
mod statements;

use std::time::Duration;

#[cfg(doc)]
use crate::Backend;

pub use backend::PostgresBackend;

/// The version 2 schema of table `t` (the record, before event time), as the queue created it:
/// for the tests that make such a table and check its migration.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub fn version_2_for_tests(t: &str) -> String {
    schema::version_2_for_tests(t)
}

/// The table by default.
pub const DEFAULT_TABLE: &str = "agentsync_webhook_jobs";
/// Connections in the pool by default.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// How long one call (waiting for a connection included) may take before it fails as a timeout
/// (and the delivery gets a 503): well under the 5 s a sender waits.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a done `webhook-id` stays known: longer than the sender's retry horizon.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(72 * 60 * 60);
/// How long a done delivery stays on record (its body, headers and history), from when it was
/// done: what an operator can look back on. Never shorter than the de-duplication retention.
pub const DEFAULT_RECORD_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// How long a dead letter is kept, for replay, before the purge deletes it.
pub const DEFAULT_DEAD_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

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
///     .retention(Duration::from_secs(48 * 3600))
///     .dead_retention(Duration::MAX);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    table: String,
    pool_size: usize,
    timeout: Duration,
    retention: Duration,
    record_retention: Duration,
    dead_retention: Duration,
    key_retention: Duration,
    clock_offset: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresOptions {
    /// [`DEFAULT_TABLE`], [`DEFAULT_POOL_SIZE`], [`DEFAULT_TIMEOUT`], [`DEFAULT_RETENTION`],
    /// [`DEFAULT_RECORD_RETENTION`], [`DEFAULT_DEAD_RETENTION`].
    pub fn new() -> Self {
        Self {
            table: DEFAULT_TABLE.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_TIMEOUT,
            retention: DEFAULT_RETENTION,
            record_retention: DEFAULT_RECORD_RETENTION,
            dead_retention: DEFAULT_DEAD_RETENTION,
            key_retention: crate::DEFAULT_KEY_RETENTION,
            clock_offset: Duration::ZERO,
        }
    }

    /// The table (a plain identifier: letters, digits, `_`, at most 48 characters), so that
    /// several queues share one database.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How many connections each of the two main pools (durable writes, bookkeeping) keeps at
    /// most (at least 1); the claims' pool keeps at most 2, and never more than this.
    pub fn pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size.max(1);
        self
    }

    /// How long one call may take before it fails as a timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a done `webhook-id` stays known as a duplicate (`Duration::MAX`: forever).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long a done delivery stays on record, body and history included, from when it was
    /// done (default [`DEFAULT_RECORD_RETENTION`]; never less than the
    /// [`retention`](Self::retention): a shorter setting is raised to it; `Duration::MAX`:
    /// forever).
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::postgres::PostgresOptions;
    ///
    /// let options = PostgresOptions::new().record_retention(Duration::from_secs(30 * 24 * 3600));
    /// # let _ = options;
    /// ```
    pub fn record_retention(mut self, retention: Duration) -> Self {
        self.record_retention = retention;
        self
    }

    /// How long a dead letter is kept, for replay, before the purge deletes it and forgets its
    /// `webhook-id` (`Duration::MAX`: forever).
    pub fn dead_retention(mut self, retention: Duration) -> Self {
        self.dead_retention = retention;
        self
    }

    /// How long a key's newest completed occurred-at is kept after it was last written
    /// (default [`DEFAULT_KEY_RETENTION`](crate::DEFAULT_KEY_RETENTION), 7 days): an event of
    /// that key older than this is no longer found stale (`Duration::MAX`: forever).
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::postgres::PostgresOptions;
    ///
    /// let options = PostgresOptions::new().key_retention(Duration::from_secs(14 * 24 * 3600));
    /// # let _ = options;
    /// ```
    pub fn key_retention(mut self, retention: Duration) -> Self {
        self.key_retention = retention;
        self
    }

    /// Test only: this instance's own clock runs `offset` ahead wherever the backend still
    /// reads it (the age in [`Backend::stats`]), to show that leases and due times do not
    /// depend on it.
    #[doc(hidden)]
    pub fn clock_offset(mut self, offset: Duration) -> Self {
        self.clock_offset = offset;
        self
    }
}
