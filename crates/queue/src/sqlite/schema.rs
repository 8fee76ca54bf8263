//! The file's schema, its version, and the forward migrations from every older version.
//!
//! The version is the one row of `agentsync_schema`. A file written before the table existed
//! (the queue without the delivery record) is version 1. Each migration is one transaction; a
//! file of a newer version than this build knows is refused before anything is written.

use rusqlite::{Connection, OptionalExtension};

/// The version this build writes.
pub(super) const VERSION: i64 = 3;

/// The tables of the current version, for a new file.
const CURRENT: &str = "
CREATE TABLE agentsync_schema (version INTEGER NOT NULL);
CREATE TABLE jobs (
    webhook_id TEXT PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    event_group TEXT NOT NULL DEFAULT '',
    webhook_timestamp INTEGER NOT NULL,
    signature TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('waiting', 'running', 'retrying', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_run_at_ms INTEGER NOT NULL,
    locked_until_ms INTEGER,
    lease TEXT,
    worker TEXT,
    claimed_at_ms INTEGER,
    last_error TEXT,
    died_at_ms INTEGER,
    done_at_ms INTEGER,
    forgotten INTEGER NOT NULL DEFAULT 0,
    history_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE history (
    webhook_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    attempt INTEGER,
    duration_ms INTEGER,
    outcome TEXT,
    error TEXT,
    worker TEXT,
    actor TEXT,
    PRIMARY KEY (webhook_id, seq)
) WITHOUT ROWID;
";

/// The indexes of the current version: the workers' (due, leases), the purge's (done, dead,
/// which also orders the dead letters) and the record's (newest first, overall, by state, by
/// type, by group; and the counts', grouped by state and type).
const INDEXES: &str = "
CREATE INDEX jobs_due ON jobs (next_run_at_ms) WHERE state IN ('waiting', 'retrying');
CREATE INDEX jobs_lease ON jobs (locked_until_ms) WHERE state = 'running';
CREATE INDEX jobs_done ON jobs (done_at_ms) WHERE state = 'done';
CREATE INDEX jobs_dead_order ON jobs (died_at_ms, webhook_id) WHERE state = 'dead';
CREATE INDEX jobs_received ON jobs (received_at_ms, webhook_id);
CREATE INDEX jobs_counts ON jobs (state, event_type, received_at_ms);
CREATE INDEX jobs_state_received ON jobs (state, received_at_ms, webhook_id);
CREATE INDEX jobs_type_received ON jobs (event_type, received_at_ms, webhook_id);
CREATE INDEX jobs_group_received ON jobs (event_group, received_at_ms, webhook_id);
";

/// Version 2 to 3: event time. Each job may carry an ordering key and its occurred-at;
/// `ordering_keys` keeps the newest occurred-at completed per key (and when it was written, for
/// its retention); the due index covers the key, so that a claim reads it from the index it
/// already walks; `jobs_key_running` finds a key's running job and `jobs_key_waiting` its next
/// waiting one, each among those rows only (a key's done rows, kept for the record, are in
/// neither, so a claim costs the same however many a key has).
const V2_TO_V3: &str = "
ALTER TABLE jobs ADD COLUMN ordering_key TEXT;
ALTER TABLE jobs ADD COLUMN occurred_at_ms INTEGER;
CREATE TABLE ordering_keys (
    key TEXT PRIMARY KEY NOT NULL,
    newest_done_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX ordering_keys_updated ON ordering_keys (updated_at_ms);
DROP INDEX IF EXISTS jobs_due;
CREATE INDEX jobs_due ON jobs (next_run_at_ms, ordering_key) WHERE state IN ('waiting', 'retrying');
CREATE INDEX jobs_key_running ON jobs (ordering_key)
    WHERE state = 'running' AND ordering_key IS NOT NULL;
CREATE INDEX jobs_key_waiting ON jobs (ordering_key, occurred_at_ms, webhook_id)
    WHERE state IN ('waiting', 'retrying') AND ordering_key IS NOT NULL;
";

/// Version 1 to 2: the record. The table is rebuilt (SQLite cannot change a `CHECK`): `queued`
/// becomes `waiting`, or `retrying` once an attempt was made; the group of each type is
/// computed; the history table and the record's indexes are created. Done rows of version 1
/// kept no body: a replay of one runs with an empty body.
const V1_TO_V2: &str = "
CREATE TABLE jobs_v2 (
    webhook_id TEXT PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    event_group TEXT NOT NULL DEFAULT '',
    webhook_timestamp INTEGER NOT NULL,
    signature TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('waiting', 'running', 'retrying', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_run_at_ms INTEGER NOT NULL,
    locked_until_ms INTEGER,
    lease TEXT,
    worker TEXT,
    claimed_at_ms INTEGER,
    last_error TEXT,
    died_at_ms INTEGER,
    done_at_ms INTEGER,
    forgotten INTEGER NOT NULL DEFAULT 0,
    history_seq INTEGER NOT NULL DEFAULT 0
);
INSERT INTO jobs_v2 (webhook_id, event_type, event_group, webhook_timestamp, signature,
                     received_at_ms, body, state, attempts, next_run_at_ms, locked_until_ms,
                     lease, claimed_at_ms, last_error, died_at_ms, done_at_ms)
SELECT webhook_id, event_type,
       CASE
           WHEN substr(event_type, 1, 13) = 'producersync.' AND length(event_type) > 13
               THEN 'producersync'
           WHEN substr(event_type, 1, 9) = 'contract.' AND length(event_type) > 9
               THEN 'contract'
           WHEN substr(event_type, 1, 12) = 'id.producer.' AND length(event_type) > 12
               THEN 'id.producer'
           ELSE ''
       END,
       webhook_timestamp, signature, received_at_ms, body,
       CASE WHEN state = 'queued' AND attempts > 0 THEN 'retrying'
            WHEN state = 'queued' THEN 'waiting'
            ELSE state END,
       attempts, next_run_at_ms, locked_until_ms, lease,
       CASE WHEN state = 'running' THEN locked_until_ms END,
       last_error, died_at_ms, done_at_ms
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v2 RENAME TO jobs;
CREATE TABLE history (
    webhook_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    attempt INTEGER,
    duration_ms INTEGER,
    outcome TEXT,
    error TEXT,
    worker TEXT,
    actor TEXT,
    PRIMARY KEY (webhook_id, seq)
) WITHOUT ROWID;
CREATE TABLE agentsync_schema (version INTEGER NOT NULL);
";

/// Why a file cannot be used.
#[derive(Debug)]
pub(super) enum SchemaError {
    /// Written by a newer version of this library.
    Newer(i64),
    /// The engine failed.
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sqlite(err)
    }
}

/// The file's version: 0 for a new (empty) file, 1 for a queue from before the version row.
pub(super) fn version(connection: &Connection) -> rusqlite::Result<i64> {
    let has = |table: &str| -> rusqlite::Result<bool> {
        connection
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
    };
    if has("agentsync_schema")? {
        connection.query_row("SELECT max(version) FROM agentsync_schema", [], |row| {
            Ok(row.get::<_, Option<i64>>(0)?.unwrap_or(1))
        })
    } else if has("jobs")? {
        Ok(1)
    } else {
        Ok(0)
    }
}

/// Refuses a file of a newer version; read before anything is written to the file.
pub(super) fn check_not_newer(connection: &Connection) -> Result<i64, SchemaError> {
    let found = version(connection)?;
    if found > VERSION {
        return Err(SchemaError::Newer(found));
    }
    Ok(found)
}

/// Creates the current schema in a new file, or migrates an older one forward, one
/// transaction per step (another process opening the file at the same time waits for the
/// lock, then finds the work done).
pub(super) fn migrate(connection: &mut Connection) -> Result<(), SchemaError> {
    loop {
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found = version(&transaction)?;
        match found {
            0 => {
                transaction.execute_batch(CURRENT)?;
                transaction.execute_batch(INDEXES)?;
                transaction.execute_batch(V2_TO_V3)?;
                transaction.execute(
                    "INSERT INTO agentsync_schema (version) VALUES (?1)",
                    [VERSION],
                )?;
            }
            1 => {
                transaction.execute_batch(V1_TO_V2)?;
                transaction.execute_batch(INDEXES)?;
                transaction.execute("INSERT INTO agentsync_schema (version) VALUES (2)", [])?;
            }
            2 => {
                transaction.execute_batch(V2_TO_V3)?;
                transaction.execute("UPDATE agentsync_schema SET version = 3", [])?;
            }
            VERSION => return Ok(()),
            newer => return Err(SchemaError::Newer(newer)),
        }
        transaction.commit()?;
    }
}

/// The version 2 schema (the record, before event time), as the queue wrote it: for the tests
/// that open such a file and check its migration.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub fn version_2_for_tests() -> String {
    format!("{CURRENT}{INDEXES}INSERT INTO agentsync_schema (version) VALUES (2);")
}

/// The version 1 schema, as the queue wrote it before the delivery record: for the tests that
/// open such a file and check its migration.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub const VERSION_1_FOR_TESTS: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    webhook_id TEXT PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    webhook_timestamp INTEGER NOT NULL,
    signature TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_run_at_ms INTEGER NOT NULL,
    locked_until_ms INTEGER,
    lease TEXT,
    last_error TEXT,
    died_at_ms INTEGER,
    done_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (next_run_at_ms) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (locked_until_ms) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (received_at_ms) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_done ON jobs (done_at_ms) WHERE state = 'done';
CREATE INDEX IF NOT EXISTS jobs_dead ON jobs (died_at_ms) WHERE state = 'dead';
";
