//! The table's schema, its version, and the forward migrations from every older version.
//!
//! The version is the one row of `{t}_schema`. A table made before that row existed (the queue
//! without the delivery record: states `queued`, `running`, `done`, `dead`, no history) is
//! version 1. Each step is one transaction under an advisory lock on the table's name, so that
//! instances connecting at once migrate it once; a table of a newer version than this build
//! knows is refused before anything is written.
//!
//! `webhook_id` is `COLLATE "C"` in every table: its order is its bytes', whatever the
//! database's collation, so that the keyset cursors (compared in Rust by bytes) and the id
//! prefix's range (`webhook_id >= p AND webhook_id < p || U+10FFFF`) mean what they say, and the
//! primary key serves both. Under a linguistic collation (`en-US`, ICU or libc) `msg_bz` sorts
//! between `msg_B` and `msg_B` followed by U+10FFFF: a prefix `msg_B` would list it.

use agentsync_webhooks_core::EventGroup;
use deadpool_postgres::{Client, Transaction};

/// The version this build writes.
pub(super) const VERSION: i32 = 4;

/// Why a table cannot be used.
#[derive(Debug)]
pub(super) enum SchemaError {
    /// Written by a newer version of this library.
    Newer(i32),
    /// The server failed.
    Postgres(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for SchemaError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Postgres(err)
    }
}

/// The table's version: 0 when there is no queue table, 1 for a table from before the version
/// row.
async fn version(client: &Transaction<'_>, t: &str) -> Result<i32, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
            &[&t, &format!("{t}_schema")],
        )
        .await?;
    let (table, versioned): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
    if !table {
        return Ok(0);
    }
    if !versioned {
        return Ok(1);
    }
    let row = client
        .query_one(&format!("SELECT max(version) FROM {t}_schema"), &[])
        .await?;
    Ok(row.try_get::<_, Option<i32>>(0)?.unwrap_or(1))
}

/// Creates the current schema, or migrates an older one forward, one transaction per step,
/// each under an advisory lock on the table's name (another instance connecting at the same
/// time waits, then finds the work done). A newer table is refused before anything is written.
pub(super) async fn migrate(client: &mut Client, t: &str) -> Result<(), SchemaError> {
    loop {
        let transaction = client.transaction().await?;
        transaction
            .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&t])
            .await?;
        match version(&transaction, t).await? {
            0 => {
                transaction.batch_execute(&create(t)).await?;
                transaction.batch_execute(&v2_to_v3(t)).await?;
                transaction.batch_execute(&v3_to_v4(t)).await?;
            }
            1 => {
                tracing::info!(
                    table = t,
                    "upgrading the PostgreSQL queue table to schema 2"
                );
                transaction.batch_execute(&v1_to_v2(t)).await?;
            }
            2 => {
                tracing::info!(
                    table = t,
                    "upgrading the PostgreSQL queue table to schema 3 (event time)"
                );
                transaction.batch_execute(&v2_to_v3(t)).await?;
            }
            3 => {
                tracing::info!(
                    table = t,
                    "upgrading the PostgreSQL queue table to schema 4 (one running job per key)"
                );
                transaction.batch_execute(&v3_to_v4(t)).await?;
            }
            VERSION => return Ok(()),
            newer => return Err(SchemaError::Newer(newer)),
        }
        transaction.commit().await?;
    }
}

/// The state check, under the name PostgreSQL gave version 1's (`\d` on a table shows
/// `"{t}_state_check" CHECK (state = ANY (ARRAY['queued'::text, ...]))`).
fn state_check(t: &str) -> String {
    format!(
        "CONSTRAINT {t}_state_check
         CHECK (state IN ('waiting', 'running', 'retrying', 'done', 'dead'))"
    )
}

/// The tables of version 2, for a new queue ([`v2_to_v3`] follows in the same transaction).
/// An orphaned history, version or keys table (its queue table dropped by hand) goes first:
/// the queue table is the truth.
pub(super) fn create(t: &str) -> String {
    let check = state_check(t);
    format!(
        "DROP TABLE IF EXISTS {t}_history, {t}_schema, {t}_ordering_keys;
         CREATE TABLE {t} (
            webhook_id text COLLATE \"C\" PRIMARY KEY,
            event_type text NOT NULL,
            event_group text NOT NULL DEFAULT '',
            webhook_timestamp bigint NOT NULL,
            signature text NOT NULL,
            received_at_ms bigint NOT NULL,
            body bytea NOT NULL,
            state text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_run_at_ms bigint NOT NULL,
            locked_until_ms bigint,
            lease text,
            worker text,
            claimed_at_ms bigint,
            last_error text,
            died_at_ms bigint,
            done_at_ms bigint,
            forgotten boolean NOT NULL DEFAULT false,
            history_seq integer NOT NULL DEFAULT 0,
            {check}
         );
         {}",
        record_tables(t)
    )
}

/// What version 2 adds beside the queue table: the history, the version row, the indexes.
///
/// The indexes: the workers' (due, leases), the purge's (done, dead, which also orders the
/// dead letters) and the record's, each ending in `(received_at_ms, webhook_id)` so that a list
/// reads its page in order, newest first (overall, by state, by type, by group). Those of the
/// overall, the type and the group carry the state and the type, so that the counts (of a time
/// range, a type, a group) read the index alone where the table's visibility map allows.
///
/// The counts of everything group along `{t}_state_type`, in its order (a hash of 100,000
/// rows by state and type costs twice the walk of that small index).
///
/// Every delivery's row is updated a few times (claimed, settled), so the table is vacuumed and
/// analyzed after 2% of its rows changed instead of PostgreSQL's 20% and 10%: the visibility
/// map stays fresh for those index-only counts, and the statistics for the plans.
fn record_tables(t: &str) -> String {
    format!(
        "CREATE TABLE {t}_history (
            webhook_id text COLLATE \"C\" NOT NULL,
            seq integer NOT NULL,
            at_ms bigint NOT NULL,
            kind text NOT NULL,
            attempt integer,
            duration_ms bigint,
            outcome text,
            error text,
            worker text,
            actor text,
            PRIMARY KEY (webhook_id, seq)
         );
         CREATE TABLE {t}_schema (version integer NOT NULL);
         INSERT INTO {t}_schema (version) VALUES (2);
         CREATE INDEX IF NOT EXISTS {t}_due ON {t} (next_run_at_ms)
            WHERE state IN ('waiting', 'retrying');
         CREATE INDEX IF NOT EXISTS {t}_lease ON {t} (locked_until_ms) WHERE state = 'running';
         CREATE INDEX IF NOT EXISTS {t}_done ON {t} (done_at_ms) WHERE state = 'done';
         CREATE INDEX IF NOT EXISTS {t}_dead_order ON {t} (died_at_ms, webhook_id)
            WHERE state = 'dead';
         CREATE INDEX {t}_received ON {t} (received_at_ms, webhook_id)
            INCLUDE (state, event_type);
         CREATE INDEX {t}_state_received ON {t} (state, received_at_ms, webhook_id);
         CREATE INDEX {t}_state_type ON {t} (state, event_type);
         CREATE INDEX {t}_type_received ON {t} (event_type, received_at_ms, webhook_id)
            INCLUDE (state);
         CREATE INDEX {t}_group_received ON {t} (event_group, received_at_ms, webhook_id)
            INCLUDE (state, event_type);
         ALTER TABLE {t} SET (autovacuum_vacuum_scale_factor = 0.02,
                              autovacuum_analyze_scale_factor = 0.02);"
    )
}

/// `CASE` computing a type's portal group (`''` for none), as `sql::group_of` does.
fn group_case() -> String {
    let whens: String = EventGroup::ALL
        .iter()
        .map(|group| {
            let prefix = format!("{}.", group.as_str());
            format!(
                "WHEN starts_with(event_type, '{prefix}') AND length(event_type) > {} THEN '{}' ",
                prefix.len(),
                group.as_str()
            )
        })
        .collect();
    format!("CASE {whens}ELSE '' END")
}

/// Version 1 to 2, in place: the state check dropped and added again with the new states
/// (`queued` becomes `waiting`, or `retrying` once an attempt was made), `webhook_id` compared
/// by its bytes, the new columns (group computed from each type), the history and the version
/// tables, the indexes of version 2 (version 1's `_due` and `_pending` were on `queued`, and its
/// oldest tables may still have `_dead`, on `died_at_ms` alone). Done rows of version 1 kept no
/// body: a replay of one runs with an empty body.
pub(super) fn v1_to_v2(t: &str) -> String {
    let check = state_check(t);
    let group = group_case();
    format!(
        "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {t}_state_check;
         DROP INDEX IF EXISTS {t}_due, {t}_pending, {t}_dead;
         ALTER TABLE {t}
            ALTER COLUMN webhook_id TYPE text COLLATE \"C\",
            ADD COLUMN event_group text NOT NULL DEFAULT '',
            ADD COLUMN worker text,
            ADD COLUMN claimed_at_ms bigint,
            ADD COLUMN forgotten boolean NOT NULL DEFAULT false,
            ADD COLUMN history_seq integer NOT NULL DEFAULT 0;
         UPDATE {t} SET
            state = CASE WHEN state = 'queued' AND attempts > 0 THEN 'retrying'
                         WHEN state = 'queued' THEN 'waiting'
                         ELSE state END,
            event_group = {group}
         WHERE state = 'queued' OR {group} <> '';
         ALTER TABLE {t} ADD {check};
         {}",
        record_tables(t)
    )
}

/// Version 2 to 3, in place: event time. Each job may carry an ordering key and its
/// occurred-at; `{t}_ordering_keys` keeps the newest occurred-at completed per key and when it
/// was written (for the key retention, purged through its index); `{t}_key_running` finds a
/// key's running job and `{t}_key_waiting` its next waiting one, each among those rows only (a
/// key's done rows, kept for the record, are in neither, so a claim costs the same however many
/// a key has).
pub(super) fn v2_to_v3(t: &str) -> String {
    format!(
        "ALTER TABLE {t}
            ADD COLUMN IF NOT EXISTS ordering_key text COLLATE \"C\",
            ADD COLUMN IF NOT EXISTS occurred_at_ms bigint;
         CREATE TABLE IF NOT EXISTS {t}_ordering_keys (
            key text COLLATE \"C\" PRIMARY KEY,
            newest_done_ms bigint NOT NULL,
            updated_at_ms bigint NOT NULL
         );
         CREATE INDEX IF NOT EXISTS {t}_keys_updated ON {t}_ordering_keys (updated_at_ms);
         CREATE INDEX IF NOT EXISTS {t}_key_running ON {t} (ordering_key)
            WHERE state = 'running' AND ordering_key IS NOT NULL;
         CREATE INDEX IF NOT EXISTS {t}_key_waiting
            ON {t} (ordering_key, occurred_at_ms, webhook_id)
            WHERE state IN ('waiting', 'retrying') AND ordering_key IS NOT NULL;
         UPDATE {t}_schema SET version = 3;"
    )
}

/// Version 3 to 4, in place: `{t}_key_running` becomes unique, so that the engine itself holds
/// at most one running job per ordering key, whatever the interleaving of claims (see
/// `statements.rs`, the claim). Built beside the old index and renamed to its name, in the
/// migration's transaction, under a lock that keeps the writes of instances still on schema 3
/// out until it commits (their claims could otherwise run a second job of a key between the
/// give-back below and the build, and the build would fail).
///
/// A table of schema 3 may hold two running jobs of one key (the race this version closes):
/// all but the first of each key by (occurred-at, `webhook-id`) are given back first, as
/// [`Backend::abandon`](crate::Backend::abandon) gives back a claim (waiting or retrying, due
/// now, the attempt not counted, the lease gone): their workers' settlements then find the
/// lease gone, and the jobs run again once their key is free (at least once, as after a lost
/// lease).
pub(super) fn v3_to_v4(t: &str) -> String {
    format!(
        "LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE;
         WITH extra AS (
            SELECT webhook_id FROM (
                SELECT webhook_id, row_number() OVER (
                           PARTITION BY ordering_key ORDER BY occurred_at_ms, webhook_id) AS n
                FROM {t} WHERE state = 'running' AND ordering_key IS NOT NULL) AS ranked
            WHERE n > 1
         )
         UPDATE {t} AS job
         SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'waiting' END,
             next_run_at_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
             attempts = GREATEST(attempts - 1, 0), locked_until_ms = NULL, lease = NULL
         FROM extra WHERE job.webhook_id = extra.webhook_id;
         CREATE UNIQUE INDEX {t}_key_running_4 ON {t} (ordering_key)
            WHERE state = 'running' AND ordering_key IS NOT NULL;
         DROP INDEX IF EXISTS {t}_key_running;
         ALTER INDEX {t}_key_running_4 RENAME TO {t}_key_running;
         UPDATE {t}_schema SET version = 4;"
    )
}

/// The version 2 schema of table `t` (the record, before event time), as the queue wrote it:
/// for the tests that make such a table and check its migration.
#[cfg(feature = "testing")]
pub(super) fn version_2_for_tests(t: &str) -> String {
    create(t)
}
