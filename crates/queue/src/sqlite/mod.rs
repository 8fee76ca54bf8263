//! SQLite: the embedded default. One file, no server, and a 2xx that survives `kill -9` and,
//! in the default [`Synchronous::Full`] setting, power loss.
//!
//! # Layout
//!
//! `jobs` holds one row per `webhook-id` (its primary key): the delivery as received (body and
//! the headers that verify it again), its type and portal group, its state (`waiting`,
//! `running`, `retrying`, `done`, `dead`), the attempts, when it is due (`next_run_at_ms`), the
//! lease (`locked_until_ms`, the claim's token, the worker and when it claimed) and the last
//! error. `history` holds what happened to each delivery (every attempt with its start,
//! duration, outcome, error and worker; replays, resends, discards), the first entry and the
//! latest, 25 in all. `agentsync_schema` holds the schema version; an older file is migrated
//! forward when opened, one transaction per step, and a newer one is refused before anything is
//! written. The journal is WAL.
//!
//! - Enqueue is `INSERT ... ON CONFLICT(webhook_id) DO NOTHING`: the de-duplication and the write
//!   are one statement. Only a known id reads its row: a dead delivery (the sender's resend from
//!   its portal), a forgotten one or one done longer ago than the retention is stored again as
//!   resent; anything else is a duplicate.
//! - Concurrent calls (enqueues, claims, completions...) are committed together: one
//!   transaction, at most one sync of the WAL for the whole group, and each is answered only once
//!   that commit holds. A group is synced when it holds an enqueue or a replay (see
//!   [`Synchronous::Full`]), so one enqueue at a time pays one sync each (measured on this
//!   project's 2-core VM: about 300 to 560 enqueues/s one at a time, 5,000 to 6,000/s from 32
//!   concurrent senders; `Synchronous::Normal`: 5,700 to 15,000/s and 24,000 to 70,000/s).
//! - Claim is one step (a savepoint in the group's `BEGIN IMMEDIATE` transaction) that reads the
//!   due jobs through a partial index on `next_run_at_ms WHERE state IN ('waiting', 'retrying')`
//!   and the expired leases through one on `locked_until_ms WHERE state = 'running'`: never a
//!   scan of the table. Each settling statement writes the attempt's history entry in the same
//!   step.
//! - A row the claim cannot decode (a column of another type than this library writes, text
//!   that is not UTF-8: a file edited by hand) is buried as dead in the claim's step, with a
//!   reason naming each such column and what it held, and mended so that the record can show it
//!   (a TEXT body is kept as a BLOB of the same bytes); the claim takes the other jobs.
//! - The record's lists read an index that ends in `(received_at_ms, webhook_id)` (overall, or
//!   after the state, the type or the group), newest first from a keyset cursor; a list of
//!   several states is one such read per state, merged. Counts over a time range read the
//!   overall index alone.
//! - A done `webhook-id` is a duplicate for the retention (72 h by default, longer than the
//!   sender's retries); the done delivery stays on record (body and history) for the record's
//!   retention (7 days by default, never shorter), a dead one for the dead-letter retention (30
//!   days) unless replayed. [`Backend::purge`] deletes what outlived them in small batches (the
//!   workers call it every minute).
//! - A group's `BEGIN IMMEDIATE` that fails because the database is busy runs each statement on
//!   its own (still answered only once committed); any other failure (a transaction left open
//!   by a failed `COMMIT` whose `ROLLBACK` also failed) rolls it back, and fails the group if the
//!   connection is still not in autocommit. Nothing is answered `Ok` unless it committed.
//!
//! Times (due, lease ends, done and dead) are this host's wall clock: every process on the file
//! shares it, so they agree. A step of that clock moves the leases with it: a step forward by
//! more than what is left of a lease lets another worker re-claim a job whose handler still
//! runs; a step back delays re-claims and retries by as much. Keep the clock slewed, not
//! stepped (chrony's and ntpd's default for small offsets).
//!
//! Every statement runs on one thread of its own that owns the connection, so the async runtime
//! never blocks on the disk.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agentsync_webhooks_queue::sqlite::{SqliteBackend, SqliteOptions, Synchronous};
//!
//! # let dir = std::env::temp_dir().join(format!("agentsync-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let backend = SqliteBackend::open_with(
//!     dir.join("queue.sqlite3"),
//!     SqliteOptions::new().synchronous(Synchronous::Full),
//! )
//! .await?;
//! # drop(backend);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

use std::{
    path::{Path, PathBuf},
    sync::mpsc,
    thread,
    time::Duration,
};

use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery, now_ms},
    idempotency::{StoreError, StoreErrorKind},
};
use bytes::Bytes;
use rusqlite::{
    Connection, OptionalExtension, params,
    types::{Value, ValueRef},
};
use tokio::sync::oneshot;

use crate::{
    backend::{
        Backend, ClaimToken, Claimed, ClaimedOrder, DeadLetter, EventOrder, Job, Purged,
        QueueFuture, QueueStats, Receipt, attempt_count, duration_ms,
    },
    record::{
        AttemptOutcome, Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord,
        DeliveryState, HistoryEvent, bounded_error,
    },
    sql::group_of,
};

mod record;
mod schema;

#[cfg(feature = "testing")]
#[doc(hidden)]
pub use schema::{VERSION_1_FOR_TESTS, version_2_for_tests};

/// The file [`Queue::from_url`](crate::Queue::from_url) uses for an empty URL, in the working
/// directory.
pub const DEFAULT_FILE: &str = "agentsync-webhooks-queue.sqlite3";

/// How long a done `webhook-id` stays known: longer than a Standard Webhooks sender's retry
/// horizon (about a day), so that its late retries are answered as duplicates.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(72 * 60 * 60);

/// How long a delivery stays on record (its body, headers and history), from when it was done:
/// what an operator can look back on. Never shorter than the de-duplication retention.
pub const DEFAULT_RECORD_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How long a dead letter is kept, unless replayed: long enough for someone to look at it.
pub const DEFAULT_DEAD_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How long a statement waits for another process's lock on the file before it fails as a
/// timeout (and the delivery gets a 503): well under the 5 s a sender waits.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// At most this many rows of each kind are deleted per purge, so that a purge never holds the
/// write lock for long.
const PURGE_BATCH: i64 = 500;
/// Prepared statements kept per connection: the fixed ones and the record's filter shapes.
const STATEMENT_CACHE: usize = 128;
/// At most this many waiting tasks share one commit.
const MAX_GROUP: usize = 256;

/// A new id is stored; a known one is left for the caller to look at (a duplicate, or a dead
/// or forgotten delivery the sender sent again).
const ENQUEUE: &str = "
INSERT INTO jobs (webhook_id, event_type, event_group, webhook_timestamp, signature,
                  received_at_ms, body, state, attempts, next_run_at_ms, ordering_key,
                  occurred_at_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'waiting', 0, ?8, ?9, ?10)
ON CONFLICT (webhook_id) DO NOTHING";
const KNOWN: &str = "
SELECT state, done_at_ms, forgotten FROM jobs WHERE webhook_id = ?1";
/// A dead, forgotten or long-done delivery stored again as the sender resent it.
const TAKE_OVER: &str = "
UPDATE jobs SET event_type = ?2, event_group = ?3, webhook_timestamp = ?4, signature = ?5,
                received_at_ms = ?6, body = ?7, state = 'waiting', attempts = 0,
                next_run_at_ms = ?8, locked_until_ms = NULL, lease = NULL, last_error = NULL,
                died_at_ms = NULL, done_at_ms = NULL, forgotten = 0, ordering_key = ?9,
                occurred_at_ms = ?10
WHERE webhook_id = ?1 AND state IN ('done', 'dead')";
const SELECT_EXPIRED: &str = "
SELECT rowid, webhook_id, attempts, claimed_at_ms, locked_until_ms, worker
FROM jobs INDEXED BY jobs_lease WHERE state = 'running' AND locked_until_ms <= ?1
ORDER BY locked_until_ms LIMIT ?2";
/// The due jobs with their key, read from the due index alone (it covers the key).
const SELECT_DUE: &str = "
SELECT rowid, ordering_key FROM jobs INDEXED BY jobs_due
WHERE state IN ('waiting', 'retrying') AND next_run_at_ms <= ?1
ORDER BY next_run_at_ms LIMIT ?2";
/// Whether a job of the key runs (its lease is the key's lease; an expired one is re-claimed
/// first by every claim, which then holds the key).
const KEY_RUNNING: &str = "
SELECT 1 FROM jobs INDEXED BY jobs_key_running WHERE ordering_key = ?1 AND state = 'running'
LIMIT 1";
/// The key's next job: the first waiting or retrying one in occurred-at order.
const KEY_HEAD: &str = "
SELECT rowid, next_run_at_ms FROM jobs INDEXED BY jobs_key_waiting
WHERE ordering_key = ?1 AND state IN ('waiting', 'retrying')
ORDER BY occurred_at_ms, webhook_id LIMIT 1";
const KEY_NEWEST: &str = "SELECT newest_done_ms FROM ordering_keys WHERE key = ?1";
/// A key's newest that was not an integer, mended (see [`key_newest`]).
const KEY_NEWEST_MEND: &str = "UPDATE ordering_keys SET newest_done_ms = ?2 WHERE key = ?1";
/// A key's newest that stood for no integer, dropped (see [`key_newest`]).
const KEY_NEWEST_DROP: &str = "DELETE FROM ordering_keys WHERE key = ?1";
/// The decoded columns of a row the claim could not decode (see [`DECODED`]).
const SELECT_STORED: &str = "
SELECT webhook_id, event_type, event_group, webhook_timestamp, signature, received_at_ms, body,
       attempts, next_run_at_ms, claimed_at_ms, worker, done_at_ms, forgotten, history_seq,
       ordering_key, occurred_at_ms
FROM jobs WHERE rowid = ?1";
/// Whether another row holds an id.
const ID_ELSEWHERE: &str = "SELECT 1 FROM jobs WHERE webhook_id = ?1 AND rowid <> ?2";
/// Raises the completed job's key's newest occurred-at (nothing for a job without a key).
const RAISE_NEWEST: &str = "
INSERT INTO ordering_keys (key, newest_done_ms, updated_at_ms)
SELECT ordering_key, occurred_at_ms, ?2 FROM jobs
WHERE webhook_id = ?1 AND ordering_key IS NOT NULL AND occurred_at_ms IS NOT NULL
ON CONFLICT (key) DO UPDATE SET newest_done_ms = max(newest_done_ms, excluded.newest_done_ms),
                               updated_at_ms = excluded.updated_at_ms";
const PURGE_KEYS: &str = "
DELETE FROM ordering_keys WHERE key IN (
    SELECT key FROM ordering_keys INDEXED BY ordering_keys_updated WHERE updated_at_ms <= ?1
    LIMIT ?2)";
/// How many due rows beyond the wanted ones a claim reads, to find claimable jobs past the
/// keyed ones whose key is held.
const HELD_SLACK: i64 = 64;
const TAKE: &str = "
UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until_ms = ?2, lease = ?3,
                worker = ?4, claimed_at_ms = ?5
WHERE rowid = ?1
RETURNING webhook_id, event_type, webhook_timestamp, signature, received_at_ms, body, attempts,
          ordering_key, occurred_at_ms";
/// What the settling statements return for the attempt's history entry.
/// What the settling statements return for the attempt's history entry, whose place they count
/// in `history_seq` as they settle (one statement fewer per settle).
const SETTLED: &str = "RETURNING attempts, claimed_at_ms, worker, history_seq";
const SETTLED_SET: &str = ", history_seq = history_seq + 1";
const COMPLETE: &str = "
UPDATE jobs SET state = 'done', done_at_ms = ?3, locked_until_ms = NULL, lease = NULL
WHERE webhook_id = ?1 AND state = 'running' AND lease = ?2";
const RETRY: &str = "
UPDATE jobs SET state = 'retrying', next_run_at_ms = ?3, last_error = ?4, locked_until_ms = NULL,
                lease = NULL
WHERE webhook_id = ?1 AND state = 'running' AND lease = ?2";
const ABANDON: &str = "
UPDATE jobs SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'waiting' END,
                next_run_at_ms = ?2, attempts = max(attempts - 1, 0),
                locked_until_ms = NULL, lease = NULL
WHERE state = 'running' AND lease = ?1";
const EXTEND: &str = "
UPDATE jobs SET locked_until_ms = ?3
WHERE webhook_id = ?1 AND state = 'running' AND lease = ?2";
const RELEASE: &str = "
UPDATE jobs SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'waiting' END,
                next_run_at_ms = ?3, attempts = max(attempts - 1, 0),
                locked_until_ms = NULL, lease = NULL
WHERE webhook_id = ?1 AND state = 'running' AND lease = ?2";
const BURY: &str = "
UPDATE jobs SET state = 'dead', died_at_ms = ?3, last_error = ?4, locked_until_ms = NULL,
                lease = NULL
WHERE webhook_id = ?1 AND state = 'running' AND lease = ?2";
const DEAD_LETTERS: &str = "
SELECT webhook_id, event_type, webhook_timestamp, signature, received_at_ms, body, attempts,
       last_error, died_at_ms
FROM jobs INDEXED BY jobs_dead_order WHERE state = 'dead' ORDER BY died_at_ms, webhook_id LIMIT ?1";
const DEAD_LETTER: &str = "
SELECT webhook_id, event_type, webhook_timestamp, signature, received_at_ms, body, attempts,
       last_error, died_at_ms
FROM jobs WHERE state = 'dead' AND webhook_id = ?1";
const PENDING: &str = "
SELECT count(*), min(received_at_ms) FROM jobs
WHERE state IN ('waiting', 'running', 'retrying')";
const DEAD_COUNT: &str = "SELECT count(*) FROM jobs WHERE state = 'dead'";
const PURGE_DONE: &str = "
DELETE FROM jobs WHERE rowid IN (
    SELECT rowid FROM jobs INDEXED BY jobs_done WHERE state = 'done' AND done_at_ms <= ?1 LIMIT ?2)
RETURNING webhook_id";
const PURGE_DEAD: &str = "
DELETE FROM jobs WHERE rowid IN (
    SELECT rowid FROM jobs INDEXED BY jobs_dead_order WHERE state = 'dead' AND died_at_ms <= ?1
    ORDER BY died_at_ms LIMIT ?2)
RETURNING webhook_id";

/// Every statement the backend runs, by name, the record's queries for each shape of filter
/// included: for tests that check their query plans.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub fn statements_for_tests() -> Vec<(String, String)> {
    use crate::record::DeliveryState::{Dead, Retrying};
    let fixed = [
        ("enqueue", ENQUEUE.to_owned()),
        ("known", KNOWN.to_owned()),
        ("take_over", TAKE_OVER.to_owned()),
        ("select_expired", SELECT_EXPIRED.to_owned()),
        ("select_due", SELECT_DUE.to_owned()),
        ("take", TAKE.to_owned()),
        ("key_running", KEY_RUNNING.to_owned()),
        ("key_head", KEY_HEAD.to_owned()),
        ("key_newest", KEY_NEWEST.to_owned()),
        ("key_newest_mend", KEY_NEWEST_MEND.to_owned()),
        ("key_newest_drop", KEY_NEWEST_DROP.to_owned()),
        ("select_stored", SELECT_STORED.to_owned()),
        ("id_elsewhere", ID_ELSEWHERE.to_owned()),
        ("raise_newest", RAISE_NEWEST.to_owned()),
        ("purge_keys", PURGE_KEYS.to_owned()),
        ("complete", settled(COMPLETE)),
        ("retry", settled(RETRY)),
        ("abandon", ABANDON.to_owned()),
        ("extend", EXTEND.to_owned()),
        ("release", settled(RELEASE)),
        ("bury", settled(BURY)),
        ("dead_letters", DEAD_LETTERS.to_owned()),
        ("dead_letter", DEAD_LETTER.to_owned()),
        ("pending", PENDING.to_owned()),
        ("dead_count", DEAD_COUNT.to_owned()),
        ("purge_done", PURGE_DONE.to_owned()),
        ("purge_dead", PURGE_DEAD.to_owned()),
    ];
    let cursor = Cursor {
        received_at_ms: 1,
        webhook_id: "msg".into(),
    };
    let shapes = [
        ("everything", DeliveryFilter::new(), None),
        ("one state", DeliveryFilter::new().state(Dead), Some(Dead)),
        (
            "a type",
            DeliveryFilter::new().event_type("contract.signed"),
            None,
        ),
        (
            "a group",
            DeliveryFilter::new().event_type("contract"),
            None,
        ),
        (
            "a time range",
            DeliveryFilter::new().received_since(1).received_until(2),
            None,
        ),
        ("an id", DeliveryFilter::new().id("msg_1"), None),
        (
            "an id prefix",
            DeliveryFilter::new().id_prefix("msg_"),
            None,
        ),
        (
            "a state and a type",
            DeliveryFilter::new()
                .state(Retrying)
                .event_type("producersync.updates_available"),
            Some(Retrying),
        ),
    ];
    let mut statements: Vec<(String, String)> = fixed
        .into_iter()
        .map(|(name, sql)| (name.to_owned(), sql))
        .chain(
            record::STATEMENTS
                .iter()
                .map(|(name, sql)| ((*name).to_owned(), (*sql).to_owned())),
        )
        .collect();
    for (shape, filter, state) in shapes {
        for (page, after) in [("first page", None), ("next page", Some(&cursor))] {
            let (sql, _) = record::list_sql(&filter, state, after, 51);
            statements.push((format!("list: {shape}, {page}"), sql));
        }
        let (sql, _) = record::counts_sql(&filter, &[]);
        statements.push((format!("counts: {shape}"), sql));
        // The overview's: now, and since the day's and the hour's start, in one walk.
        let (sql, _) = record::counts_sql(&filter, &[1, 2]);
        statements.push((format!("counts: {shape}, with windows"), sql));
    }
    statements
}

/// How SQLite syncs the WAL to the disk at each commit: what a 2xx survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// `synchronous = FULL` for the writes that answer someone (an enqueue, a replay): their
    /// commit is synced (one `fsync` of the WAL per commit, shared by concurrent calls), so an
    /// answered delivery survives a process kill, an OS crash and a power loss. The default: a
    /// 2xx is a promise the sender will never retry.
    ///
    /// The bookkeeping alone (claims, completions, retries, dead letters) commits with `NORMAL`
    /// and is synced by the next synced commit or checkpoint (the WAL is written in order): a
    /// power loss can forget the last few completions, and those jobs run again, as they would
    /// after a worker crash; it never forgets a delivery that was answered.
    #[default]
    Full,
    /// `synchronous = NORMAL`: commits are synced only at checkpoints, so an answered delivery
    /// survives a process kill (`kill -9`, a panic, an OOM kill) but the last commits may be
    /// lost to an OS crash or a power loss. Faster where an `fsync` is slow.
    Normal,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// Settings of a [`SqliteBackend`].
///
/// ```
/// use std::time::Duration;
/// use agentsync_webhooks_queue::sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::new()
///     .synchronous(Synchronous::Full)
///     .retention(Duration::from_secs(48 * 3600))
///     .busy_timeout(Duration::from_secs(1));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    busy_timeout: Duration,
    retention: Duration,
    record_retention: Duration,
    dead_retention: Duration,
    key_retention: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SqliteOptions {
    /// [`Synchronous::Full`], [`DEFAULT_BUSY_TIMEOUT`], [`DEFAULT_RETENTION`],
    /// [`DEFAULT_RECORD_RETENTION`], [`DEFAULT_DEAD_RETENTION`].
    pub fn new() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            retention: DEFAULT_RETENTION,
            record_retention: DEFAULT_RECORD_RETENTION,
            dead_retention: DEFAULT_DEAD_RETENTION,
            key_retention: crate::DEFAULT_KEY_RETENTION,
        }
    }

    /// How long a key's newest completed occurred-at is kept after it was last written
    /// (default [`DEFAULT_KEY_RETENTION`](crate::DEFAULT_KEY_RETENTION), 7 days): an event of
    /// that key older than this is no longer found stale.
    pub fn key_retention(mut self, key_retention: Duration) -> Self {
        self.key_retention = key_retention;
        self
    }

    /// What a commit survives (default [`Synchronous::Full`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a statement waits for another process's lock (default [`DEFAULT_BUSY_TIMEOUT`]).
    pub fn busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// How long a done `webhook-id` stays known as a duplicate (default [`DEFAULT_RETENTION`]).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long a done delivery stays on record, body and history included, from when it was
    /// done (default [`DEFAULT_RECORD_RETENTION`]; never less than the
    /// [`retention`](Self::retention): a shorter setting is raised to it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::sqlite::SqliteOptions;
    ///
    /// let options = SqliteOptions::new().record_retention(Duration::from_secs(30 * 24 * 3600));
    /// # let _ = options;
    /// ```
    pub fn record_retention(mut self, record_retention: Duration) -> Self {
        self.record_retention = record_retention;
        self
    }

    /// How long a dead letter is kept unless replayed (default [`DEFAULT_DEAD_RETENTION`];
    /// `Duration::MAX` keeps them until replayed). Past it, [`Backend::purge`] deletes it and its
    /// `webhook-id` is forgotten: the sender's next resend is a new delivery.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::sqlite::SqliteOptions;
    ///
    /// let options = SqliteOptions::new().dead_retention(Duration::from_secs(90 * 24 * 3600));
    /// # let _ = options;
    /// ```
    pub fn dead_retention(mut self, dead_retention: Duration) -> Self {
        self.dead_retention = dead_retention;
        self
    }
}

/// What a task leaves to do once its group's commit is known: answer its caller, with an error
/// if the commit failed.
type Reply = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

/// Runs a task's statements and returns how to answer; or, given the error that keeps the
/// group from running, answers with it at once (`None`).
type Work = Box<dyn FnOnce(Result<&mut Engine, &rusqlite::Error>) -> Option<Reply> + Send>;

/// One request to the connection's thread.
struct Task {
    /// Whether its commit must be synced before it is answered (see [`Synchronous::Full`]).
    durable: bool,
    /// Runs alone on the connection, outside any group transaction (tests only).
    alone: bool,
    work: Work,
}

/// The connection and what its thread remembers between tasks.
struct Engine {
    connection: Connection,
    /// The configured setting, for the durable writes.
    synchronous: Synchronous,
    /// The setting in force now.
    synchronous_now: Synchronous,
    retention_ms: i64,
    record_retention_ms: i64,
    dead_retention_ms: i64,
    key_retention_ms: i64,
}

/// A [`Backend`] on one SQLite file. Open it once per process and share it (through a
/// [`Queue`](crate::Queue)): its connection lives on a thread of its own.
///
/// Several processes may open the same file (SQLite locks it), though one receiver process with
/// its workers is the intended use; to share the work between machines, use Redis or PostgreSQL.
pub struct SqliteBackend {
    tasks: mpsc::Sender<Task>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Opens (or creates) the queue in the file at `path` with the default [`SqliteOptions`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use agentsync_webhooks_queue::sqlite::SqliteBackend;
    ///
    /// # let dir = std::env::temp_dir().join(format!("agentsync-doc-open-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let backend = SqliteBackend::open(dir.join("queue.sqlite3")).await?;
    /// # drop(backend);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::new()).await
    }

    /// Opens (or creates) the queue in the file at `path` with `options`.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let (tasks, inbox) = mpsc::channel::<Task>();
        let (opened, opening) = oneshot::channel();
        let thread_path = path.clone();
        thread::Builder::new()
            .name("agentsync-queue-sqlite".into())
            .spawn(move || match open_engine(&thread_path, &options) {
                Ok(engine) => {
                    let _ = opened.send(Ok(()));
                    serve(engine, &inbox);
                }
                Err(err) => {
                    let _ = opened.send(Err(err));
                }
            })
            .map_err(|err| {
                StoreError::new(StoreErrorKind::Other, "could not start the SQLite thread")
                    .with_source(err)
            })?;
        match opening.await {
            Ok(Ok(())) => Ok(Self { tasks, path }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(thread_gone()),
        }
    }

    /// The file this queue lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection's thread, in the transaction of its group, and waits for
    /// its answer, given only once that transaction committed.
    async fn run<T, F>(&self, what: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Engine) -> rusqlite::Result<T> + Send + 'static,
    {
        self.submit(what, false, false, work).await
    }

    /// [`run`](Self::run) for a write that must survive what the [`Synchronous`] setting
    /// promises before it is answered: an enqueue, a replay.
    async fn run_durable<T, F>(&self, what: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Engine) -> rusqlite::Result<T> + Send + 'static,
    {
        self.submit(what, true, false, work).await
    }

    async fn submit<T, F>(
        &self,
        what: &'static str,
        durable: bool,
        alone: bool,
        work: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Engine) -> rusqlite::Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let work: Work = Box::new(move |engine: Result<&mut Engine, &rusqlite::Error>| {
            let engine = match engine {
                Ok(engine) => engine,
                Err(err) => {
                    let _ = answer.send(Err(sqlite_error(what, err)));
                    return None;
                }
            };
            let result = work(engine);
            Some(Box::new(move |commit_error: Option<&rusqlite::Error>| {
                let outcome = match (&result, commit_error) {
                    (Err(err), _) | (Ok(_), Some(err)) => Err(sqlite_error(what, err)),
                    (Ok(_), None) => result.map_err(|err| sqlite_error(what, &err)),
                };
                let _ = answer.send(outcome);
            }) as Reply)
        });
        self.tasks
            .send(Task {
                durable,
                alone,
                work,
            })
            .map_err(|_| thread_gone())?;
        answered.await.map_err(|_| thread_gone())?
    }

    /// Runs `sql` on the connection alone, outside any group's transaction: for tests that put
    /// the connection in a state the engine must recover from (a transaction left open).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub async fn execute_alone_for_tests(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_owned();
        self.submit("a test statement", false, true, move |engine| {
            engine.connection.execute_batch(&sql)
        })
        .await
    }

    async fn enqueue_delivery(
        &self,
        delivery: &ReceivedDelivery,
        order: Option<&EventOrder>,
    ) -> Result<Enqueued, StoreError> {
        // Read from the body here, off the writer's thread.
        let occurred = crate::record::occurred_at_to_store(delivery, order);
        let delivery = delivery.clone();
        let order = order.cloned();
        self.run_durable("enqueue", move |engine| {
            engine.enqueue(&delivery, order.as_ref(), occurred)
        })
        .await
    }

    async fn claim_jobs(
        &self,
        token: &ClaimToken,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (token, worker) = (token.as_str().to_owned(), token.worker());
        let lease_ms = duration_ms(lease);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let worker = worker.to_owned();
        self.run("claim", move |engine| {
            engine.claim(max, lease_ms, &token, &worker)
        })
        .await
    }

    /// Runs one of the settling statements on the job's row and records the attempt in its
    /// history; `true` if it still held the lease.
    async fn settle(
        &self,
        what: &'static str,
        sql: &'static str,
        job: &Job,
        value: i64,
        error: Option<&str>,
        outcome: AttemptOutcome,
    ) -> Result<bool, StoreError> {
        let id = job.delivery.webhook_id.clone();
        let lease = job.receipt.0.clone();
        let error = error.map(|error| bounded_error(error).to_owned());
        self.run(what, move |engine| {
            if outcome != AttemptOutcome::Ok {
                return engine.settle(sql, &id, &lease, value, error.as_deref(), outcome);
            }
            // Done, and the key's newest raised, in one step.
            engine.connection.execute_batch("SAVEPOINT complete")?;
            let done = engine
                .settle(sql, &id, &lease, value, error.as_deref(), outcome)
                .and_then(|done| {
                    if done {
                        engine
                            .connection
                            .prepare_cached(RAISE_NEWEST)?
                            .execute(params![id, value])?;
                    }
                    Ok(done)
                });
            match done {
                Ok(done) => {
                    engine.connection.execute_batch("RELEASE complete")?;
                    Ok(done)
                }
                Err(err) => {
                    let _ = engine
                        .connection
                        .execute_batch("ROLLBACK TO complete; RELEASE complete");
                    Err(err)
                }
            }
        })
        .await
    }
}

impl Backend for SqliteBackend {
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> QueueFuture<'a, Enqueued> {
        Box::pin(self.enqueue_delivery(delivery, None))
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
            COMPLETE,
            job,
            now_ms(),
            None,
            AttemptOutcome::Stale,
        ))
    }

    fn abandon<'a>(&'a self, token: &'a ClaimToken) -> QueueFuture<'a, u64> {
        let token = token.as_str().to_owned();
        Box::pin(self.run("give back a claim", move |engine| {
            let given_back = engine
                .connection
                .prepare_cached(ABANDON)?
                .execute(params![token, now_ms()])?;
            Ok(u64::try_from(given_back).unwrap_or(u64::MAX))
        }))
    }

    fn complete<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(self.settle(
            "complete",
            COMPLETE,
            job,
            now_ms(),
            None,
            AttemptOutcome::Ok,
        ))
    }

    fn retry<'a>(&'a self, job: &'a Job, after: Duration, error: &'a str) -> QueueFuture<'a, bool> {
        let due = now_ms().saturating_add(duration_ms(after));
        Box::pin(self.settle("retry", RETRY, job, due, Some(error), AttemptOutcome::Retry))
    }

    fn extend<'a>(&'a self, job: &'a Job, lease: Duration) -> QueueFuture<'a, bool> {
        let until = now_ms().saturating_add(duration_ms(lease));
        let (id, lease) = (job.delivery.webhook_id.clone(), job.receipt.0.clone());
        Box::pin(self.run("extend", move |engine| {
            let changed = engine
                .connection
                .prepare_cached(EXTEND)?
                .execute(params![id, lease, until])?;
            Ok(changed == 1)
        }))
    }

    fn release<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(self.settle(
            "release",
            RELEASE,
            job,
            now_ms(),
            None,
            AttemptOutcome::Released,
        ))
    }

    fn bury<'a>(&'a self, job: &'a Job, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(self.settle(
            "bury",
            BURY,
            job,
            now_ms(),
            Some(error),
            AttemptOutcome::Dead,
        ))
    }

    fn dead_letters(&self, limit: usize) -> QueueFuture<'_, Vec<DeadLetter>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.run("list dead letters", move |engine| {
            let mut statement = engine.connection.prepare_cached(DEAD_LETTERS)?;
            let rows = statement.query_map(params![limit], dead_letter_from_row)?;
            rows.collect()
        }))
    }

    fn dead_letter<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeadLetter>> {
        let id = webhook_id.to_owned();
        Box::pin(self.run("show a dead letter", move |engine| {
            engine
                .connection
                .prepare_cached(DEAD_LETTER)?
                .query_row(params![id], dead_letter_from_row)
                .optional()
        }))
    }

    fn replay<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, bool> {
        let id = webhook_id.to_owned();
        Box::pin(self.run_durable("replay", move |engine| {
            engine.replay(&id, "library", &[DeliveryState::Dead])
        }))
    }

    fn stats(&self) -> QueueFuture<'_, QueueStats> {
        Box::pin(self.run("stats", |engine| {
            let (depth, oldest): (i64, Option<i64>) = engine
                .connection
                .prepare_cached(PENDING)?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            let dead: i64 = engine
                .connection
                .prepare_cached(DEAD_COUNT)?
                .query_row([], |row| row.get(0))?;
            let now = now_ms();
            Ok(QueueStats {
                depth: u64::try_from(depth).unwrap_or(0),
                oldest_age: oldest.map(|received| {
                    Duration::from_millis(u64::try_from(now.saturating_sub(received)).unwrap_or(0))
                }),
                dead: u64::try_from(dead).unwrap_or(0),
            })
        }))
    }

    fn purge(&self) -> QueueFuture<'_, Purged> {
        Box::pin(self.run("purge", |engine| engine.purge()))
    }

    fn list<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        after: Option<&'a Cursor>,
        limit: usize,
    ) -> QueueFuture<'a, DeliveryPage> {
        let (filter, after) = (filter.clone(), after.cloned());
        Box::pin(self.run("list deliveries", move |engine| {
            engine.list(&filter, after.as_ref(), limit)
        }))
    }

    fn counts<'a>(&'a self, filter: &'a DeliveryFilter) -> QueueFuture<'a, DeliveryCounts> {
        let filter = filter.clone();
        Box::pin(self.run("count deliveries", move |engine| engine.counts(&filter)))
    }

    fn counts_since<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        since_ms: &'a [i64],
    ) -> QueueFuture<'a, Vec<DeliveryCounts>> {
        let (filter, since_ms) = (filter.clone(), since_ms.to_vec());
        Box::pin(self.run("count deliveries", move |engine| {
            engine.counts_since(&filter, &since_ms)
        }))
    }

    fn delivery<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeliveryRecord>> {
        let id = webhook_id.to_owned();
        Box::pin(self.run("show a delivery", move |engine| engine.delivery(&id)))
    }

    fn replay_by<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        let (id, by) = (webhook_id.to_owned(), by.to_owned());
        Box::pin(self.run_durable("replay", move |engine| {
            engine.replay(&id, &by, &[DeliveryState::Done, DeliveryState::Dead])
        }))
    }

    fn replay_matching<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        by: &'a str,
        max: usize,
    ) -> QueueFuture<'a, u64> {
        let (filter, by) = (filter.clone(), by.to_owned());
        Box::pin(self.run_durable("replay deliveries", move |engine| {
            engine.replay_matching(&filter, &by, max)
        }))
    }

    fn discard<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        let (id, by) = (webhook_id.to_owned(), by.to_owned());
        Box::pin(self.run("discard a delivery", move |engine| engine.discard(&id, &by)))
    }

    fn forget<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        let (id, by) = (webhook_id.to_owned(), by.to_owned());
        Box::pin(self.run("forget an id", move |engine| engine.forget(&id, &by)))
    }

    fn purge_dead(&self, before_ms: i64, max: usize) -> QueueFuture<'_, u64> {
        Box::pin(self.run("purge dead letters", move |engine| {
            engine.purge_dead(before_ms, max)
        }))
    }
}

/// Opens the file and sets it up: the schema version checked before anything is written (a
/// newer file is refused), WAL, the synchronous setting, the busy timeout, the migrations.
fn open_engine(path: &Path, options: &SqliteOptions) -> Result<Engine, StoreError> {
    let opened = (|| {
        let mut connection = Connection::open(path)?;
        connection.busy_timeout(options.busy_timeout)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::check_not_newer(&connection)?;
        let mode: String =
            connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %path.display(),
                journal_mode = %mode,
                "SQLite refused WAL for the queue file; commits are still durable, but slower"
            );
        }
        connection.pragma_update(None, "synchronous", options.synchronous.pragma_value())?;
        schema::migrate(&mut connection)?;
        Ok::<_, schema::SchemaError>(connection)
    })();
    let connection = match opened {
        Ok(connection) => connection,
        Err(schema::SchemaError::Sqlite(err)) => return Err(sqlite_error("open", &err)),
        Err(schema::SchemaError::Newer(found)) => {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!(
                    "the SQLite queue {} was written by a newer agentsync-webhooks (schema {found}; \
                     this build knows up to {}): upgrade, or open another file; nothing was written",
                    path.display(),
                    schema::VERSION
                ),
            ));
        }
    };
    let retention_ms = duration_ms(options.retention);
    Ok(Engine {
        connection,
        synchronous: options.synchronous,
        synchronous_now: options.synchronous,
        retention_ms,
        record_retention_ms: duration_ms(options.record_retention).max(retention_ms),
        dead_retention_ms: duration_ms(options.dead_retention),
        key_retention_ms: duration_ms(options.key_retention),
    })
}

/// The connection's thread: runs tasks until every handle is dropped. The tasks waiting
/// together run in one `BEGIN IMMEDIATE` transaction (group commit: one sync of the WAL for the
/// whole group), and each is answered only once it committed.
fn serve(mut engine: Engine, inbox: &mpsc::Receiver<Task>) {
    let mut next = None;
    while let Some(first) = next.take().or_else(|| inbox.recv().ok()) {
        if first.alone {
            if let Some(reply) = (first.work)(Ok(&mut engine)) {
                reply(None);
            }
            continue;
        }
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match inbox.try_recv() {
                Ok(task) if task.alone => {
                    next = Some(task);
                    break;
                }
                Ok(task) => group.push(task),
                Err(_) => break,
            }
        }
        engine.sync_commits(group.iter().any(|task| task.durable));
        let in_transaction = match engine.begin() {
            Ok(in_transaction) => in_transaction,
            Err(err) => {
                for task in group {
                    if let Some(reply) = (task.work)(Err(&err)) {
                        reply(Some(&err));
                    }
                }
                continue;
            }
        };
        let replies: Vec<Reply> = group
            .into_iter()
            .filter_map(|task| (task.work)(Ok(&mut engine)))
            .collect();
        let mut commit_error = if in_transaction {
            engine.connection.execute_batch("COMMIT").err()
        } else {
            None
        };
        if commit_error.is_none() && !engine.connection.is_autocommit() {
            // Committed, yet a transaction is open: nothing here may be answered as written.
            commit_error = Some(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some("a transaction was still open after the group's commit".into()),
            ));
        }
        if commit_error.is_some() && !engine.connection.is_autocommit() {
            let _ = engine.connection.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(commit_error.as_ref());
        }
    }
}

impl Engine {
    /// Starts the group's transaction: `Ok(true)` in it; `Ok(false)` when another process holds
    /// the lock past the busy timeout, so that each statement commits on its own (still answered
    /// only once committed); an error when the connection cannot be brought back to autocommit
    /// (a transaction left open that will not roll back), which fails the whole group.
    fn begin(&mut self) -> rusqlite::Result<bool> {
        if !self.connection.is_autocommit() {
            // Left open by a failed COMMIT whose ROLLBACK failed too: its callers were told it
            // failed, so it is rolled back now, never committed with the next group.
            tracing::warn!("the SQLite queue's connection had a transaction open; rolling it back");
            self.connection.execute_batch("ROLLBACK")?;
        }
        match self.connection.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => Ok(true),
            Err(err) if is_busy(&err) && self.connection.is_autocommit() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Sets the synchronous setting of the next commit: the configured one when the group holds
    /// a durable write, at most `NORMAL` for bookkeeping alone (claims, completions, retries),
    /// which the next synced commit or checkpoint syncs with it.
    fn sync_commits(&mut self, durable: bool) {
        let wanted = if durable {
            self.synchronous
        } else {
            Synchronous::Normal
        };
        if wanted == self.synchronous_now {
            return;
        }
        match self
            .connection
            .pragma_update(None, "synchronous", wanted.pragma_value())
        {
            Ok(()) => self.synchronous_now = wanted,
            Err(err) => {
                tracing::warn!(error = %err, "could not change SQLite's synchronous setting")
            }
        }
    }

    /// Claims up to `max` jobs whose lease expired or that are due, all or none. A re-claimed
    /// job's lost attempt goes into its history. A keyed job is taken only when no job of its
    /// key runs and it is its key's next in occurred-at order (see [`Backend`]'s event-time
    /// rules); a job without a key costs a look at the key the due index already holds.
    ///
    /// A row the claim cannot decode (a column of another type than this library writes, text
    /// that is not UTF-8: a file edited by hand) is buried in the same step, with the reason
    /// (see [`bury_undecodable`]), and the claim goes on with the others: one such row never
    /// stops the queue.
    fn claim(
        &mut self,
        max: i64,
        lease_ms: i64,
        token: &str,
        worker: &str,
    ) -> rusqlite::Result<Vec<Claimed>> {
        let now = now_ms();
        let until = now.saturating_add(lease_ms);
        // A savepoint within the group's transaction: a claim that fails half-way takes nothing.
        let transaction = self.connection.savepoint()?;
        // Each row read with its rowid first (always an integer), the rest as it decodes.
        let expired: Vec<(i64, rusqlite::Result<ExpiredLease>)> = transaction
            .prepare_cached(SELECT_EXPIRED)?
            .query_map(params![now, max], |row| {
                let decoded = (|| {
                    Ok((
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                })();
                Ok((row.get(0)?, decoded))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut rows = Vec::with_capacity(expired.len());
        for (row, decoded) in expired {
            let (id, attempts, claimed_at, locked_until, lost_worker) = match decoded {
                Ok(lease) => lease,
                Err(err) => {
                    bury_undecodable(&transaction, row, &err, now, worker, false)?;
                    continue;
                }
            };
            let started = claimed_at.unwrap_or(now);
            let event = HistoryEvent::Attempt {
                number: attempt_count(attempts),
                duration_ms: u64::try_from(locked_until.unwrap_or(now).saturating_sub(started))
                    .unwrap_or(0),
                outcome: AttemptOutcome::LeaseExpired,
                error: None,
                worker: lost_worker.unwrap_or_default(),
            };
            record::append(&transaction, &id, started, &event)?;
            rows.push(row);
        }
        let wanted = max.saturating_sub(i64::try_from(rows.len()).unwrap_or(i64::MAX));
        if wanted > 0 {
            let due = transaction
                .prepare_cached(SELECT_DUE)?
                .query_map(params![now, wanted.saturating_add(HELD_SLACK)], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Option<String>>(1)))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut keys_seen: Vec<String> = Vec::new();
            let mut taken = 0;
            for (row, key) in due {
                if taken == wanted {
                    break;
                }
                let key = match key {
                    Ok(Some(key)) => key,
                    Ok(None) => {
                        rows.push(row);
                        taken += 1;
                        continue;
                    }
                    Err(err) => {
                        bury_undecodable(&transaction, row, &err, now, worker, false)?;
                        continue;
                    }
                };
                if keys_seen.contains(&key) {
                    continue;
                }
                let running = transaction
                    .prepare_cached(KEY_RUNNING)?
                    .query_row(params![key], |_| Ok(()))
                    .optional()?
                    .is_some();
                let head = if running {
                    None
                } else {
                    transaction
                        .prepare_cached(KEY_HEAD)?
                        .query_row(params![key], |row| {
                            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)))
                        })
                        .optional()?
                };
                keys_seen.push(key);
                match head {
                    Some((head, Ok(due_at))) if due_at <= now => {
                        rows.push(head);
                        taken += 1;
                    }
                    // The key's head cannot be decoded: buried, so that the key's next one is
                    // its head at the next claim.
                    Some((head, Err(err))) => {
                        bury_undecodable(&transaction, head, &err, now, worker, false)?;
                    }
                    _ => {}
                }
            }
        }
        let mut jobs = Vec::with_capacity(rows.len());
        {
            let mut take = transaction.prepare_cached(TAKE)?;
            for row in rows {
                let taken: rusqlite::Result<(Job, Option<String>, Option<i64>)> =
                    take.query_row(params![row, until, token, worker, now], |row| {
                        Ok((|| {
                            Ok((
                                Job {
                                    delivery: delivery_from_row(row)?,
                                    attempt: attempt_count(row.get(6)?),
                                    receipt: Receipt(token.to_owned()),
                                },
                                row.get(7)?,
                                row.get(8)?,
                            ))
                        })())
                    })?;
                let (job, key, occurred) = match taken {
                    Ok(taken) => taken,
                    Err(err) => {
                        bury_undecodable(&transaction, row, &err, now, worker, true)?;
                        continue;
                    }
                };
                let order = match (key, occurred) {
                    (Some(key), Some(occurred_at_ms)) => Some(ClaimedOrder {
                        newest_done_ms: key_newest(&transaction, &key)?,
                        key,
                        occurred_at_ms,
                    }),
                    _ => None,
                };
                jobs.push(Claimed { job, order });
            }
        }
        transaction.commit()?;
        Ok(jobs)
    }

    /// Stores `delivery` unless its id is known; a known id is a duplicate unless its delivery
    /// is dead (the sender's resend, from the portal, of a dead letter: a replay), forgotten by
    /// an operator, or done longer ago than the retention, which it then takes over.
    ///
    /// `occurred`: when its event occurred, stored for the record's lists with every delivery
    /// (the claims read only a keyed row's: one with an ordering key).
    fn enqueue(
        &mut self,
        delivery: &ReceivedDelivery,
        order: Option<&EventOrder>,
        occurred: Option<i64>,
    ) -> rusqlite::Result<Enqueued> {
        let now = now_ms();
        let key = order.map(|o| &o.key);
        let values = params![
            delivery.webhook_id,
            delivery.event_type,
            group_of(&delivery.event_type),
            delivery.webhook_timestamp,
            delivery.signature,
            delivery.received_at_ms,
            delivery.body.as_ref(),
            now,
            key,
            occurred,
        ];
        if self.connection.prepare_cached(ENQUEUE)?.execute(values)? == 1 {
            return Ok(Enqueued::New);
        }
        let known: Option<(String, Option<i64>, bool)> = self
            .connection
            .prepare_cached(KNOWN)?
            .query_row(params![delivery.webhook_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let resent = match known {
            Some((state, _, _)) if state == "dead" => true,
            Some((state, done_at, forgotten)) if state == "done" => {
                forgotten || done_at.is_some_and(|done| done <= now - self.retention_ms)
            }
            _ => false,
        };
        if !resent || self.connection.prepare_cached(TAKE_OVER)?.execute(values)? != 1 {
            return Ok(Enqueued::Duplicate);
        }
        record::append(
            &self.connection,
            &delivery.webhook_id,
            now,
            &HistoryEvent::Resent,
        )?;
        Ok(Enqueued::New)
    }

    /// Runs a settling statement on the job's row and records the attempt; `true` if the job
    /// still held the lease.
    fn settle(
        &mut self,
        sql: &'static str,
        id: &str,
        lease: &str,
        value: i64,
        error: Option<&str>,
        outcome: AttemptOutcome,
    ) -> rusqlite::Result<bool> {
        let now = now_ms();
        let sql = settled(sql);
        let mut statement = self.connection.prepare_cached(&sql)?;
        let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<Settled> {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        };
        let settled = match error {
            Some(error) => statement
                .query_row(params![id, lease, value, error], read)
                .optional()?,
            None => statement
                .query_row(params![id, lease, value], read)
                .optional()?,
        };
        drop(statement);
        let Some((attempts, claimed_at, worker, seq)) = settled else {
            return Ok(false);
        };
        let started = claimed_at.unwrap_or(now);
        let number = match outcome {
            // The release gave its attempt back: the entry shows the attempt that ran.
            AttemptOutcome::Released => attempts.saturating_add(1),
            _ => attempts,
        };
        let event = HistoryEvent::Attempt {
            number: attempt_count(number),
            duration_ms: u64::try_from(now.saturating_sub(started)).unwrap_or(0),
            outcome,
            error: error.map(str::to_owned),
            worker: worker.unwrap_or_default(),
        };
        record::append_at(&self.connection, id, seq, started, &event)?;
        Ok(true)
    }

    /// Deletes one batch of done rows past the record's retention and one of dead rows past
    /// the dead-letter retention, with their history.
    fn purge(&mut self) -> rusqlite::Result<Purged> {
        let now = now_ms();
        let done_cutoff = now.saturating_sub(self.record_retention_ms);
        let dead_cutoff = now.saturating_sub(self.dead_retention_ms);
        let done = self.delete_rows(PURGE_DONE, done_cutoff, PURGE_BATCH)?;
        let dead = self.delete_rows(PURGE_DEAD, dead_cutoff, PURGE_BATCH)?;
        let keys = self
            .connection
            .prepare_cached(PURGE_KEYS)?
            .execute(params![
                now.saturating_sub(self.key_retention_ms),
                PURGE_BATCH
            ])?;
        let full = |n: u64| i64::try_from(n).unwrap_or(i64::MAX) >= PURGE_BATCH;
        Ok(Purged {
            done,
            dead,
            more: full(done) || full(dead) || full(u64::try_from(keys).unwrap_or(u64::MAX)),
        })
    }

    /// Runs a `DELETE ... RETURNING webhook_id` of up to `max` rows before `cutoff`, and deletes
    /// their history.
    fn delete_rows(&mut self, sql: &'static str, cutoff: i64, max: i64) -> rusqlite::Result<u64> {
        let ids: Vec<String> = self
            .connection
            .prepare_cached(sql)?
            .query_map(params![cutoff, max], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in &ids {
            record::forget_history(&self.connection, id)?;
        }
        Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
    }
}

/// A lease that ran out: its id, attempts, claim time, lease end and worker.
type ExpiredLease = (String, i64, Option<i64>, Option<i64>, Option<String>);

/// What a settling statement returns: attempts, claim time, worker, the history entry's place.
type Settled = (i64, Option<i64>, Option<String>, i64);

/// A settling statement that counts its history entry and returns what the entry needs.
fn settled(sql: &str) -> String {
    match sql.split_once("\nWHERE ") {
        Some((set, condition)) => format!("{set}{SETTLED_SET}\nWHERE {condition} {SETTLED}"),
        None => sql.to_owned(),
    }
}

/// The delivery in the first six columns of `row`.
fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ReceivedDelivery> {
    Ok(ReceivedDelivery {
        webhook_id: row.get(0)?,
        event_type: row.get(1)?,
        webhook_timestamp: row.get(2)?,
        signature: row.get(3)?,
        received_at_ms: row.get(4)?,
        body: Bytes::from(row.get::<_, Vec<u8>>(5)?),
    })
}

fn dead_letter_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        delivery: delivery_from_row(row)?,
        attempts: attempt_count(row.get(6)?),
        last_error: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
        died_at_ms: row.get::<_, Option<i64>>(8)?.unwrap_or_default(),
    })
}

/// What a column of `jobs` must hold for the claim, the record and the enqueue's look-up to
/// decode it.
#[derive(Debug, Clone, Copy)]
enum Stored {
    Text,
    MaybeText,
    Integer,
    MaybeInteger,
    Blob,
}

/// The columns of `jobs` that are decoded, in the order of [`SELECT_STORED`]; the bury of an
/// undecodable row writes the others (state, lease, when it died, its reason).
const DECODED: &[(&str, Stored)] = &[
    ("webhook_id", Stored::Text),
    ("event_type", Stored::Text),
    ("event_group", Stored::Text),
    ("webhook_timestamp", Stored::Integer),
    ("signature", Stored::Text),
    ("received_at_ms", Stored::Integer),
    ("body", Stored::Blob),
    ("attempts", Stored::Integer),
    ("next_run_at_ms", Stored::Integer),
    ("claimed_at_ms", Stored::MaybeInteger),
    ("worker", Stored::MaybeText),
    ("done_at_ms", Stored::MaybeInteger),
    ("forgotten", Stored::Integer),
    ("history_seq", Stored::Integer),
    ("ordering_key", Stored::MaybeText),
    ("occurred_at_ms", Stored::MaybeInteger),
];

/// A value as an operator reads it in a reason: its storage class and (the start of) its
/// content.
fn shown(value: ValueRef<'_>) -> String {
    fn hex(bytes: &[u8]) -> String {
        let mut out: String = bytes.iter().take(32).map(|b| format!("{b:02x}")).collect();
        if bytes.len() > 32 {
            out.push('…');
        }
        out
    }
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(n) => format!("the INTEGER {n}"),
        ValueRef::Real(f) => format!("the REAL {f}"),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => format!("the TEXT {:?}", text.chars().take(40).collect::<String>()),
            Err(_) => format!("TEXT that is not UTF-8 (x'{}')", hex(bytes)),
        },
        ValueRef::Blob(bytes) => format!("a BLOB (x'{}')", hex(bytes)),
    }
}

/// An integer a value stands for, when it plainly does: a whole or truncated REAL, a TEXT of
/// digits.
fn as_integer(value: ValueRef<'_>) -> Option<i64> {
    match value {
        ValueRef::Integer(n) => Some(n),
        // Saturating, as `as` is for a float (NaN: none).
        ValueRef::Real(f) if !f.is_nan() => Some(f as i64),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// `None` when `value` decodes as `stored`; else what to store instead (the same content
/// where it can be kept: TEXT bytes as a BLOB, a BLOB of UTF-8 as TEXT) and what was wrong.
fn mend(column: &str, stored: Stored, value: ValueRef<'_>) -> Option<(Value, String)> {
    use Stored::{Blob, Integer, MaybeInteger, MaybeText, Text};
    let replacement = match (stored, value) {
        (MaybeText | MaybeInteger, ValueRef::Null)
        | (Integer | MaybeInteger, ValueRef::Integer(_))
        | (Blob, ValueRef::Blob(_)) => return None,
        (Text | MaybeText, ValueRef::Text(bytes)) if std::str::from_utf8(bytes).is_ok() => {
            return None;
        }
        (Blob, ValueRef::Text(bytes)) => Value::Blob(bytes.to_vec()),
        (Blob, ValueRef::Integer(n)) => Value::Blob(n.to_string().into_bytes()),
        (Blob, ValueRef::Real(f)) => Value::Blob(f.to_string().into_bytes()),
        (Blob, ValueRef::Null) => Value::Blob(Vec::new()),
        (Text | MaybeText, ValueRef::Text(bytes) | ValueRef::Blob(bytes)) => {
            Value::Text(String::from_utf8_lossy(bytes).into_owned())
        }
        (Text | MaybeText, ValueRef::Integer(n)) => Value::Text(n.to_string()),
        (Text | MaybeText, ValueRef::Real(f)) => Value::Text(f.to_string()),
        (Text, ValueRef::Null) => Value::Text(String::new()),
        (Integer, other) => Value::Integer(as_integer(other).unwrap_or(0)),
        (MaybeInteger, other) => as_integer(other).map_or(Value::Null, Value::Integer),
    };
    let wanted = match stored {
        Text | MaybeText => "UTF-8 TEXT",
        Integer | MaybeInteger => "an INTEGER",
        Blob => "a BLOB",
    };
    let kept = match (stored, value) {
        (Blob, ValueRef::Text(_)) => "kept, the same bytes as a BLOB".to_owned(),
        _ => format!("now {}", shown(ValueRef::from(&replacement))),
    };
    Some((
        replacement,
        format!("{column} held {}, not {wanted} ({kept})", shown(value)),
    ))
}

/// Buries the row `rowid`, which the claim could not decode (`err`), as dead in the claim's
/// step: each column that does not hold what this library writes is mended to a value that
/// decodes (the same bytes where they can be kept), the reason names each one and what it
/// held, and one attempt entry (outcome dead, `worker`'s) carries it, so that the record shows
/// the delivery and why it died, and a replay of it runs what is stored now. `taken`: the claim
/// already counted the attempt. Logged once: a dead row is never claimed again.
fn bury_undecodable(
    connection: &Connection,
    rowid: i64,
    err: &rusqlite::Error,
    now: i64,
    worker: &str,
    taken: bool,
) -> rusqlite::Result<()> {
    let mut mended: Vec<(&str, Value)> = Vec::new();
    let mut flaws: Vec<String> = Vec::new();
    let found = connection
        .prepare_cached(SELECT_STORED)?
        .query_row(params![rowid], |row| {
            for (i, (column, stored)) in DECODED.iter().enumerate() {
                if let Some((value, flaw)) = mend(column, *stored, row.get_ref(i)?) {
                    mended.push((column, value));
                    flaws.push(flaw);
                }
            }
            Ok(())
        })
        .optional()?;
    if found.is_none() {
        return Ok(());
    }
    let what = if flaws.is_empty() {
        format!("the claim could not decode it: {err}")
    } else {
        flaws.join("; ")
    };
    let reason = format!("buried without running: its stored row could not be decoded: {what}");
    let reason = bounded_error(&reason).to_owned();
    let mut values = vec![
        Value::Integer(rowid),
        Value::Integer(now),
        Value::Text(reason.clone()),
    ];
    let mut sets = String::new();
    let mut counted = taken;
    for (column, mut value) in mended {
        match (column, &mut value) {
            // A mended id that another row holds keeps this row's own.
            ("webhook_id", Value::Text(id)) => {
                let taken_id = connection
                    .prepare_cached(ID_ELSEWHERE)?
                    .query_row(params![id.as_str(), rowid], |_| Ok(()))
                    .optional()?
                    .is_some();
                if taken_id {
                    id.push_str(&format!("~{rowid}"));
                }
            }
            ("attempts", Value::Integer(attempts)) if !counted => {
                *attempts = attempts.saturating_add(1);
                counted = true;
            }
            _ => {}
        }
        values.push(value);
        sets.push_str(&format!("{column} = ?{}, ", values.len()));
    }
    if !counted {
        sets.push_str("attempts = attempts + 1, ");
    }
    let buried: Option<(String, i64)> = connection
        .prepare(&format!(
            "UPDATE jobs SET {sets}state = 'dead', died_at_ms = ?2, last_error = ?3, \
             locked_until_ms = NULL, lease = NULL WHERE rowid = ?1 \
             RETURNING webhook_id, attempts"
        ))?
        .query_row(rusqlite::params_from_iter(values), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let Some((webhook_id, attempts)) = buried else {
        return Ok(());
    };
    let event = HistoryEvent::Attempt {
        number: attempt_count(attempts),
        duration_ms: 0,
        outcome: AttemptOutcome::Dead,
        error: Some(reason.clone()),
        worker: worker.to_owned(),
    };
    record::append(connection, &webhook_id, now, &event)?;
    tracing::error!(
        webhook_id = %webhook_id,
        rowid,
        reason = %reason,
        "a SQLite queue row could not be decoded: buried as dead without running (its record \
         shows what was wrong)"
    );
    Ok(())
}

/// The key's newest done occurred-at, for the stale check. A value this library did not write
/// (not an integer) is mended in place when it plainly stands for one, else deleted (the key's
/// next completion writes it again), and logged: the stale check never stops the claim.
fn key_newest(connection: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    let Some(stored) = connection
        .prepare_cached(KEY_NEWEST)?
        .query_row(params![key], |row| {
            Ok(match row.get_ref(0)? {
                ValueRef::Integer(n) => Ok(n),
                other => Err((shown(other), as_integer(other))),
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    let (held, number) = match stored {
        Ok(newest) => return Ok(Some(newest)),
        Err(found) => found,
    };
    match number {
        Some(newest) => connection
            .prepare_cached(KEY_NEWEST_MEND)?
            .execute(params![key, newest])?,
        None => connection
            .prepare_cached(KEY_NEWEST_DROP)?
            .execute(params![key])?,
    };
    tracing::error!(
        key,
        held = %held,
        now = ?number,
        "a SQLite queue key's newest done occurred-at was not an integer: mended, or dropped \
         when it stood for none (the stale check of that key starts again from its next \
         completion)"
    );
    Ok(number)
}

fn thread_gone() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "the SQLite queue's thread stopped (it panicked or its file could not be opened)",
    )
}

/// A SQLite error as a [`StoreError`]: a lock held too long is a timeout, a file that cannot be
/// opened or read is unreachable, anything else is `Other`.
fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn sqlite_error(what: &'static str, err: &rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let kind = match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreErrorKind::Timeout,
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly,
        ) => StoreErrorKind::Unreachable,
        _ => StoreErrorKind::Other,
    };
    StoreError::new(kind, format!("SQLite {what} failed: {err}"))
}
