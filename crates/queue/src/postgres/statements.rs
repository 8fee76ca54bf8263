//! The SQL of one queue table: every statement the workers' path runs (enqueue, claim, the
//! settlements, the dead letters, the stats, the purge), written once per table. The schema is
//! in `schema.rs`, the record's queries and actions in `record.rs`.
//!
//! Every time a statement compares or stores is the server's clock ([`NOW_MS`]), so that
//! instances whose clocks differ agree on when a lease ends and when a job is due; durations
//! (a lease, a retry's delay, a retention) are parameters in milliseconds.
//!
//! Each settling statement (complete, retry, release, bury) and the claim (for a lease that
//! expired) writes the attempt's history entry in the same statement: the row's update, the
//! entry's insert and the trim of the history to [`MAX_HISTORY`] are data-modifying `WITH`
//! parts of one statement, so they commit together in one round trip.

use crate::record::MAX_HISTORY;

/// The server's clock in milliseconds since the Unix epoch. A scalar subquery, evaluated once
/// per statement as a plan parameter that an index condition can use (`clock_timestamp()`
/// itself is volatile: in a `WHERE` it would be evaluated per row, and no index could serve it).
pub(super) const NOW_MS: &str = "(SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint)";

/// The columns of the stored delivery, in the order `delivery_from_row` reads them.
pub(super) const DELIVERY_COLUMNS: &str =
    "webhook_id, event_type, webhook_timestamp, signature, received_at_ms, body";

/// The history columns an entry is written with, in the order [`log_history`] takes them.
const HISTORY_COLUMNS: &str =
    "webhook_id, seq, at_ms, kind, attempt, duration_ms, outcome, error, worker, actor";

/// The two `WITH` parts that append one history entry per row of `source` (a data-modifying
/// `WITH` part that returned `webhook_id` and the row's new `history_seq`) and trim each
/// delivery's history to its first entry and the latest, [`MAX_HISTORY`] in all. `values`:
/// the entry's `at_ms, kind, attempt, duration_ms, outcome, error, worker, actor` as
/// expressions over `source` (and `extra`, joined `USING (webhook_id)`, when given).
///
/// The trim deletes what the cap leaves out of the rows that existed before the statement (a
/// part never sees another's inserts): the entry just written is never among them.
pub(super) fn log_history(t: &str, source: &str, extra: Option<&str>, values: &str) -> String {
    let from = match extra {
        Some(extra) => format!("{source} JOIN {extra} USING (webhook_id)"),
        None => source.to_owned(),
    };
    // Keeps seq 1 and the latest MAX_HISTORY - 1: deletes 1 < seq <= new - MAX_HISTORY + 1.
    let keep_after = MAX_HISTORY - 1;
    format!(
        "logged AS (
            INSERT INTO {t}_history ({HISTORY_COLUMNS})
            SELECT {source}.webhook_id, {source}.history_seq, {values} FROM {from}
         ), trimmed AS (
            DELETE FROM {t}_history AS entry USING {source}
            WHERE entry.webhook_id = {source}.webhook_id AND entry.seq > 1
              AND entry.seq <= {source}.history_seq - {keep_after}
              AND {source}.history_seq > {MAX_HISTORY}
         )"
    )
}

/// The statements of one table.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) enqueue: String,
    pub(super) enqueue_many: String,
    pub(super) take_over: String,
    pub(super) claim: String,
    pub(super) abandon: String,
    pub(super) complete: String,
    pub(super) complete_many: String,
    pub(super) complete_stale: String,
    pub(super) retry: String,
    pub(super) extend: String,
    pub(super) release: String,
    pub(super) bury: String,
    pub(super) dead_letters: String,
    pub(super) dead_letter: String,
    pub(super) pending: String,
    pub(super) dead_count: String,
    pub(super) purge_done: String,
    pub(super) purge_dead: String,
    pub(super) purge_keys: String,
}

/// A settling statement on the job held under `$1` (its id) and `$2` (the claim's token):
/// `set` on its row, and an attempt entry in its history (started when claimed, ended now)
/// with `outcome`, `error` (an expression: a parameter or `NULL`) and the attempt's `number`
/// (an expression over the updated row). Returns one row if the receipt still held the job.
fn settle(t: &str, set: &str, outcome: &str, error: &str, number: &str) -> String {
    settle_then(t, set, outcome, error, number, "")
}

/// [`settle`], with `then` (further `WITH` parts over `settled`, each starting with `, `) in
/// the same statement.
fn settle_then(t: &str, set: &str, outcome: &str, error: &str, number: &str, then: &str) -> String {
    settle_rows(
        t,
        "webhook_id = $1 AND state = 'running' AND lease = $2",
        set,
        (outcome, error, number),
        then,
        "SELECT 1 FROM settled",
    )
}

/// A settling statement on the running rows that `target` selects: `set` on each, an attempt
/// entry in its history (`entry`: the outcome, the error and the attempt's number, as in
/// [`settle`]), `then`'s further `WITH` parts over `settled`, and `answer`, a `SELECT` over
/// `settled`.
fn settle_rows(
    t: &str,
    target: &str,
    set: &str,
    (outcome, error, number): (&str, &str, &str),
    then: &str,
    answer: &str,
) -> String {
    let log = log_history(
        t,
        "settled",
        None,
        &format!(
            "coalesce(settled.claimed_at_ms, {NOW_MS}), 'attempt', {number},
             greatest({NOW_MS} - coalesce(settled.claimed_at_ms, {NOW_MS}), 0), '{outcome}',
             {error}, settled.worker, NULL"
        ),
    );
    format!(
        "WITH settled AS (
            UPDATE {t} SET {set}, locked_until_ms = NULL, lease = NULL,
                           history_seq = history_seq + 1
            WHERE {target}
            RETURNING webhook_id, history_seq, attempts, claimed_at_ms, worker, ordering_key,
                      occurred_at_ms
         ), {log}{then}
         {answer}"
    )
}

/// The `WITH` part of a completion that raises each completed key's newest done occurred-at
/// (to the newest of its rows in `settled`; nothing without a key). In key order, so that two
/// instances' batches take the keys' row locks in the same order.
fn raise_newest(t: &str) -> String {
    format!(
        ", raised AS (
            INSERT INTO {t}_ordering_keys AS kept (key, newest_done_ms, updated_at_ms)
            SELECT ordering_key, max(occurred_at_ms), {NOW_MS} FROM settled
            WHERE ordering_key IS NOT NULL AND occurred_at_ms IS NOT NULL
            GROUP BY ordering_key ORDER BY ordering_key
            ON CONFLICT (key) DO UPDATE
            SET newest_done_ms = greatest(kept.newest_done_ms, excluded.newest_done_ms),
                updated_at_ms = excluded.updated_at_ms
         )"
    )
}

/// Dead or done rows, a batch at a time through the primary key, and their history: `pick`
/// selects the batch's ids. The locked batch is an array that the primary key serves: as
/// `webhook_id IN (...)` or a join `USING` it, a generic plan (which guesses a tenth of the
/// rows for a `LIMIT $2`) hashes the batch against a scan of the whole table.
pub(super) fn delete_batch(t: &str, pick: &str) -> String {
    format!(
        "WITH gone AS (
            DELETE FROM {t} WHERE webhook_id = ANY(ARRAY({pick} FOR UPDATE SKIP LOCKED))
            RETURNING webhook_id
         ), gone_history AS (
            DELETE FROM {t}_history WHERE webhook_id = ANY(ARRAY(SELECT webhook_id FROM gone))
         )
         SELECT count(*) FROM gone"
    )
}

impl Statements {
    /// The statements of table `t` (a checked plain identifier).
    pub(super) fn new(t: &str) -> Self {
        let claim_log = log_history(
            t,
            "taken",
            Some("expired"),
            "coalesce(expired.claimed_at_ms, expired.locked_until_ms), 'attempt',
             expired.attempts,
             greatest(expired.locked_until_ms
                      - coalesce(expired.claimed_at_ms, expired.locked_until_ms), 0),
             'lease_expired', NULL, expired.worker, NULL",
        );
        let resend_log = log_history(
            t,
            "resent",
            None,
            &format!("{NOW_MS}, 'resent', NULL, NULL, NULL, NULL, NULL, NULL"),
        );
        Self {
            // $1..$7: the delivery and its group, $8, $9: its ordering key and occurred-at
            // (`NULL` without a key). One statement: the de-duplication is the primary key; a
            // known id answers no row, and only then is `take_over` tried.
            enqueue: format!(
                "INSERT INTO {t} (webhook_id, event_type, event_group, webhook_timestamp,
                                  signature, received_at_ms, body, state, attempts,
                                  next_run_at_ms, ordering_key, occurred_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'waiting', 0, {NOW_MS}, $8, $9)
                 ON CONFLICT (webhook_id) DO NOTHING
                 RETURNING 1"
            ),
            // The enqueues of one batch (`batch.rs`), their ids distinct and sorted (two
            // instances' batches then take the ids' locks in one order): `enqueue`'s columns as
            // arrays, $1..$9, one row per delivery. Returns the ids it stored; the others were
            // known, and are tried for `take_over` one by one.
            enqueue_many: format!(
                "INSERT INTO {t} (webhook_id, event_type, event_group, webhook_timestamp,
                                  signature, received_at_ms, body, state, attempts,
                                  next_run_at_ms, ordering_key, occurred_at_ms)
                 SELECT d.webhook_id, d.event_type, d.event_group, d.webhook_timestamp,
                        d.signature, d.received_at_ms, d.body, 'waiting', 0, {NOW_MS},
                        d.ordering_key, d.occurred_at_ms
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                             $6::bigint[], $7::bytea[], $8::text[], $9::bigint[])
                      AS d(webhook_id, event_type, event_group, webhook_timestamp, signature,
                           received_at_ms, body, ordering_key, occurred_at_ms)
                 ON CONFLICT (webhook_id) DO NOTHING
                 RETURNING webhook_id"
            ),
            // A known id stored again as the sender resent it, if its delivery is dead (the
            // portal's resend), forgotten, or done longer ago than the retention ($10, ms),
            // with the resend's key and occurred-at ($8, $9):
            // waiting, attempts counted anew, the resend in its history. A concurrent resend
            // waits for the row and finds it waiting: a duplicate.
            take_over: format!(
                "WITH resent AS (
                    UPDATE {t} SET event_type = $2, event_group = $3, webhook_timestamp = $4,
                                   signature = $5, received_at_ms = $6, body = $7,
                                   state = 'waiting', attempts = 0, next_run_at_ms = {NOW_MS},
                                   locked_until_ms = NULL, lease = NULL, last_error = NULL,
                                   died_at_ms = NULL, done_at_ms = NULL, forgotten = false,
                                   ordering_key = $8, occurred_at_ms = $9,
                                   history_seq = history_seq + 1
                    WHERE webhook_id = $1
                      AND (state = 'dead'
                           OR (state = 'done'
                               AND (forgotten OR done_at_ms <= {NOW_MS} - $10)))
                    RETURNING webhook_id, history_seq
                 ), {resend_log}
                 SELECT 1 FROM resent"
            ),
            // $1: at most this many, $2: the lease (ms), $3: the caller's claim token, $4: its
            // worker. An expired lease's lost attempt goes into the history, from what the row
            // held before this claim (`expired`).
            //
            // One job of a key at a time: `due` takes a keyed job only when its snapshot shows
            // no job of the key running and the job is the key's head, locked `FOR UPDATE SKIP
            // LOCKED`. That alone holds while the head stays the head, but under READ
            // COMMITTED a new head can appear between two claims' snapshots: claim 1 takes
            // head B of key K; an older event A of K (or a replayed or resent one) is stored
            // and committed; claim 2, whose snapshot predates claim 1's commit, sees B waiting
            // and A as the head, locked by nobody, and takes A. What closes it is the unique
            // `{t}_key_running` (schema 4): at most one running row per key, checked by the
            // engine when `taken` writes the row. Claim 2's write of A waits for claim 1's
            // commit, then fails with a unique violation, and the backend runs the statement
            // again (a new snapshot, where B runs and A is no longer taken). No lock or round
            // trip is added to a claim that meets no such race.
            claim: format!(
                "WITH expired AS (
                    SELECT webhook_id, attempts, claimed_at_ms, locked_until_ms, worker FROM {t}
                    WHERE state = 'running' AND locked_until_ms <= {NOW_MS}
                    ORDER BY locked_until_ms LIMIT $1
                    FOR UPDATE SKIP LOCKED
                 ), due AS (
                    SELECT webhook_id FROM {t} AS job
                    WHERE state IN ('waiting', 'retrying') AND next_run_at_ms <= {NOW_MS}
                      AND (job.ordering_key IS NULL
                           OR (NOT EXISTS (
                                   SELECT 1 FROM {t} AS held
                                   WHERE held.ordering_key = job.ordering_key
                                     AND held.state = 'running'
                                     AND held.ordering_key IS NOT NULL)
                               AND job.webhook_id = (
                                   SELECT head.webhook_id FROM {t} AS head
                                   WHERE head.ordering_key = job.ordering_key
                                     AND head.state IN ('waiting', 'retrying')
                                     AND head.ordering_key IS NOT NULL
                                   ORDER BY head.occurred_at_ms, head.webhook_id LIMIT 1)))
                    ORDER BY next_run_at_ms LIMIT $1
                    FOR UPDATE SKIP LOCKED
                 ), picked AS (
                    SELECT webhook_id, true AS lost FROM expired
                    UNION ALL
                    SELECT webhook_id, false FROM due
                    LIMIT $1
                 ), taken AS (
                    UPDATE {t} AS job
                    SET state = 'running', attempts = job.attempts + 1,
                        locked_until_ms = {NOW_MS} + $2, lease = $3, worker = $4,
                        claimed_at_ms = {NOW_MS},
                        history_seq = job.history_seq + CASE WHEN picked.lost THEN 1 ELSE 0 END
                    FROM picked WHERE job.webhook_id = picked.webhook_id
                    RETURNING job.webhook_id, job.event_type, job.webhook_timestamp,
                              job.signature, job.received_at_ms, job.body, job.attempts,
                              job.history_seq, job.ordering_key, job.occurred_at_ms
                 ), {claim_log}
                 SELECT taken.webhook_id, event_type, webhook_timestamp, signature,
                        received_at_ms, body, attempts, ordering_key, occurred_at_ms,
                        newest.newest_done_ms
                 FROM taken LEFT JOIN {t}_ordering_keys AS newest
                      ON newest.key = taken.ordering_key"
            ),
            // $1: the claim token. Through the lease index: the running rows are few. Not an
            // attempt: none is recorded.
            abandon: format!(
                "UPDATE {t} SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'waiting' END,
                                next_run_at_ms = {NOW_MS},
                                attempts = GREATEST(attempts - 1, 0),
                                locked_until_ms = NULL, lease = NULL
                 WHERE state = 'running' AND lease = $1"
            ),
            // The settlements: $1 the id, $2 the receipt (the claim's token).
            // The key's newest occurred-at raised in the same statement (nothing without a
            // key).
            complete: settle_then(
                t,
                &format!("state = 'done', done_at_ms = {NOW_MS}"),
                "ok",
                "NULL",
                "settled.attempts",
                &raise_newest(t),
            ),
            // The completions of one batch (`batch.rs`): $1 their ids (distinct), $2 each one's
            // receipt at the same position. Through the primary key (`= ANY`, whatever the
            // batch's size under a generic plan) or the lease index (only the running rows),
            // each row settled only under its own receipt.
            // Returns the ids whose receipt still held their job.
            complete_many: settle_rows(
                t,
                "webhook_id = ANY($1::text[]) AND state = 'running'
                   AND lease = ($2::text[])[array_position($1::text[], webhook_id)]",
                &format!("state = 'done', done_at_ms = {NOW_MS}"),
                ("ok", "NULL", "settled.attempts"),
                &raise_newest(t),
                "SELECT webhook_id FROM settled",
            ),
            // Done without running: outcome `stale`, the key's newest left as it is.
            complete_stale: settle(
                t,
                &format!("state = 'done', done_at_ms = {NOW_MS}"),
                "stale",
                "NULL",
                "settled.attempts",
            ),
            // $3: the delay (ms), $4: the error (bounded).
            retry: settle(
                t,
                &format!("state = 'retrying', next_run_at_ms = {NOW_MS} + $3, last_error = $4"),
                "retry",
                "$4",
                "settled.attempts",
            ),
            // $3: the lease (ms).
            extend: format!(
                "UPDATE {t} SET locked_until_ms = {NOW_MS} + $3
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            // The released attempt is given back: the entry shows the number that ran.
            release: settle(
                t,
                &format!(
                    "state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'waiting' END,
                     next_run_at_ms = {NOW_MS}, attempts = GREATEST(attempts - 1, 0)"
                ),
                "released",
                "NULL",
                "settled.attempts + 1",
            ),
            // $3: the error (bounded).
            bury: settle(
                t,
                &format!("state = 'dead', died_at_ms = {NOW_MS}, last_error = $3"),
                "dead",
                "$3",
                "settled.attempts",
            ),
            // $1: at most this many; the order is `{t}_dead_order`'s, read, not sorted.
            dead_letters: format!(
                "SELECT {DELIVERY_COLUMNS}, attempts, last_error, died_at_ms FROM {t}
                 WHERE state = 'dead' ORDER BY died_at_ms, webhook_id LIMIT $1"
            ),
            dead_letter: format!(
                "SELECT {DELIVERY_COLUMNS}, attempts, last_error, died_at_ms FROM {t}
                 WHERE state = 'dead' AND webhook_id = $1"
            ),
            pending: format!(
                "SELECT count(*), min(received_at_ms) FROM {t}
                 WHERE state IN ('waiting', 'running', 'retrying')"
            ),
            dead_count: format!("SELECT count(*) FROM {t} WHERE state = 'dead'"),
            // $1: the record's retention (ms), $2: the batch, oldest first.
            purge_done: delete_batch(
                t,
                &format!(
                    "SELECT webhook_id FROM {t}
                     WHERE state = 'done' AND done_at_ms <= {NOW_MS} - $1
                     ORDER BY done_at_ms LIMIT $2"
                ),
            ),
            // $1: the dead-letter retention (ms), $2: the batch, oldest first.
            purge_dead: delete_batch(
                t,
                &format!(
                    "SELECT webhook_id FROM {t}
                     WHERE state = 'dead' AND died_at_ms <= {NOW_MS} - $1
                     ORDER BY died_at_ms LIMIT $2"
                ),
            ),
            // $1: the key retention (ms), $2: the batch, oldest first.
            purge_keys: format!(
                "WITH gone AS (
                    DELETE FROM {t}_ordering_keys
                    WHERE key = ANY(ARRAY(
                        SELECT key FROM {t}_ordering_keys
                        WHERE updated_at_ms <= {NOW_MS} - $1
                        ORDER BY updated_at_ms LIMIT $2
                        FOR UPDATE SKIP LOCKED))
                    RETURNING 1
                 )
                 SELECT count(*) FROM gone"
            ),
        }
    }

    /// Every statement, by name.
    #[cfg(feature = "testing")]
    pub(super) fn by_name(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("enqueue", self.enqueue.as_str()),
            ("enqueue_many", self.enqueue_many.as_str()),
            ("take_over", self.take_over.as_str()),
            ("claim", self.claim.as_str()),
            ("abandon", self.abandon.as_str()),
            ("complete", self.complete.as_str()),
            ("complete_many", self.complete_many.as_str()),
            ("complete_stale", self.complete_stale.as_str()),
            ("retry", self.retry.as_str()),
            ("extend", self.extend.as_str()),
            ("release", self.release.as_str()),
            ("bury", self.bury.as_str()),
            ("dead_letters", self.dead_letters.as_str()),
            ("dead_letter", self.dead_letter.as_str()),
            ("stats_pending", self.pending.as_str()),
            ("stats_dead", self.dead_count.as_str()),
            ("purge_done", self.purge_done.as_str()),
            ("purge_dead", self.purge_dead.as_str()),
            ("purge_keys", self.purge_keys.as_str()),
        ]
    }
}
