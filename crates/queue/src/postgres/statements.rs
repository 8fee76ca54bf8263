//! The SQL of one queue table: its schema and every statement the backend runs, written once
//! per table.
//!
//! Every time a statement compares or stores is the server's clock ([`NOW_MS`]), so that
//! instances whose clocks differ agree on when a lease ends and when a job is due; durations
//! (a lease, a retry's delay, a retention) are parameters in milliseconds.

/// The server's clock in milliseconds since the Unix epoch. A scalar subquery, evaluated once
/// per statement as a plan parameter that an index condition can use (`clock_timestamp()`
/// itself is volatile: in a `WHERE` it would be evaluated per row, and no index could serve it).
const NOW_MS: &str = "(SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint)";

/// The columns of the stored delivery, in the order `delivery_from_row` reads them.
const DELIVERY_COLUMNS: &str =
    "webhook_id, event_type, webhook_timestamp, signature, received_at_ms, body";

/// The statements of one table.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) schema: String,
    pub(super) enqueue: String,
    pub(super) claim: String,
    pub(super) abandon: String,
    pub(super) complete: String,
    pub(super) retry: String,
    pub(super) extend: String,
    pub(super) release: String,
    pub(super) bury: String,
    pub(super) dead_letters: String,
    pub(super) dead_letter: String,
    pub(super) replay: String,
    pub(super) pending: String,
    pub(super) dead_count: String,
    pub(super) purge_done: String,
    pub(super) purge_dead: String,
}

impl Statements {
    /// The statements of table `t` (a checked plain identifier).
    pub(super) fn new(t: &str) -> Self {
        Self {
            // Idempotent, run on every connect. `{t}_dead_order` replaced `{t}_dead` (on
            // `died_at_ms` alone, which left the dead-letter list to sort every dead row): it
            // is created, then the old one dropped, until versioned migrations take over.
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
                CREATE INDEX IF NOT EXISTS {t}_dead_order ON {t} (died_at_ms, webhook_id)
                    WHERE state = 'dead';
                DROP INDEX IF EXISTS {t}_dead;"
            ),
            // $1..$6: the delivery. One statement: the de-duplication is the primary key.
            enqueue: format!(
                "INSERT INTO {t} ({DELIVERY_COLUMNS}, state, attempts, next_run_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, {NOW_MS})
                 ON CONFLICT (webhook_id) DO NOTHING
                 RETURNING 1"
            ),
            // $1: at most this many, $2: the lease (ms), $3: the caller's claim token.
            claim: format!(
                "WITH expired AS (
                    SELECT webhook_id FROM {t}
                    WHERE state = 'running' AND locked_until_ms <= {NOW_MS}
                    ORDER BY locked_until_ms LIMIT $1
                    FOR UPDATE SKIP LOCKED
                 ), due AS (
                    SELECT webhook_id FROM {t}
                    WHERE state = 'queued' AND next_run_at_ms <= {NOW_MS}
                    ORDER BY next_run_at_ms LIMIT $1
                    FOR UPDATE SKIP LOCKED
                 ), picked AS (
                    SELECT webhook_id FROM expired
                    UNION ALL
                    SELECT webhook_id FROM due
                    LIMIT $1
                 )
                 UPDATE {t} AS job
                 SET state = 'running', attempts = job.attempts + 1,
                     locked_until_ms = {NOW_MS} + $2, lease = $3
                 FROM picked WHERE job.webhook_id = picked.webhook_id
                 RETURNING job.webhook_id, job.event_type, job.webhook_timestamp, job.signature,
                           job.received_at_ms, job.body, job.attempts"
            ),
            // $1: the claim token. Through the lease index: the running rows are few.
            abandon: format!(
                "UPDATE {t} SET state = 'queued', next_run_at_ms = {NOW_MS},
                                attempts = GREATEST(attempts - 1, 0),
                                locked_until_ms = NULL, lease = NULL
                 WHERE state = 'running' AND lease = $1"
            ),
            // The settlements: $1 the id, $2 the receipt (the claim's token).
            complete: format!(
                "UPDATE {t} SET state = 'done', done_at_ms = {NOW_MS}, body = ''::bytea,
                                locked_until_ms = NULL, lease = NULL
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            // $3: the delay (ms), $4: the error.
            retry: format!(
                "UPDATE {t} SET state = 'queued', next_run_at_ms = {NOW_MS} + $3, last_error = $4,
                                locked_until_ms = NULL, lease = NULL
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            // $3: the lease (ms).
            extend: format!(
                "UPDATE {t} SET locked_until_ms = {NOW_MS} + $3
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            release: format!(
                "UPDATE {t} SET state = 'queued', next_run_at_ms = {NOW_MS},
                                attempts = GREATEST(attempts - 1, 0),
                                locked_until_ms = NULL, lease = NULL
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
            ),
            // $3: the error.
            bury: format!(
                "UPDATE {t} SET state = 'dead', died_at_ms = {NOW_MS}, last_error = $3,
                                locked_until_ms = NULL, lease = NULL
                 WHERE webhook_id = $1 AND state = 'running' AND lease = $2"
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
            replay: format!(
                "UPDATE {t} SET state = 'queued', attempts = 0, next_run_at_ms = {NOW_MS},
                                died_at_ms = NULL
                 WHERE webhook_id = $1 AND state = 'dead'"
            ),
            pending: format!(
                "SELECT count(*), min(received_at_ms) FROM {t}
                 WHERE state IN ('queued', 'running')"
            ),
            dead_count: format!("SELECT count(*) FROM {t} WHERE state = 'dead'"),
            // $1: the retention (ms), $2: the batch, oldest first. The locked batch is an
            // array that the primary key serves: as `webhook_id IN (...)` or a join `USING` it,
            // a generic plan (which guesses a tenth of the rows for `LIMIT $2`) hashes the batch
            // against a scan of the whole table.
            purge_done: format!(
                "DELETE FROM {t} WHERE webhook_id = ANY(ARRAY(
                    SELECT webhook_id FROM {t}
                    WHERE state = 'done' AND done_at_ms <= {NOW_MS} - $1
                    ORDER BY done_at_ms LIMIT $2
                    FOR UPDATE SKIP LOCKED))"
            ),
            purge_dead: format!(
                "DELETE FROM {t} WHERE webhook_id = ANY(ARRAY(
                    SELECT webhook_id FROM {t}
                    WHERE state = 'dead' AND died_at_ms <= {NOW_MS} - $1
                    ORDER BY died_at_ms LIMIT $2
                    FOR UPDATE SKIP LOCKED))"
            ),
        }
    }

    /// Every statement but the schema, by name.
    #[cfg(feature = "testing")]
    pub(super) fn by_name(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("enqueue", self.enqueue.as_str()),
            ("claim", self.claim.as_str()),
            ("abandon", self.abandon.as_str()),
            ("complete", self.complete.as_str()),
            ("retry", self.retry.as_str()),
            ("extend", self.extend.as_str()),
            ("release", self.release.as_str()),
            ("bury", self.bury.as_str()),
            ("dead_letters", self.dead_letters.as_str()),
            ("dead_letter", self.dead_letter.as_str()),
            ("replay", self.replay.as_str()),
            ("stats_pending", self.pending.as_str()),
            ("stats_dead", self.dead_count.as_str()),
            ("purge_done", self.purge_done.as_str()),
            ("purge_dead", self.purge_dead.as_str()),
        ]
    }
}
