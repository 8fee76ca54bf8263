//! Redis Streams: a stream with a consumer group, so that every instance that shares the Redis
//! shares the work.
//!
//! # Keys (under a prefix, `agentsync-webhooks:queue:` by default)
//!
//! | key | type | holds |
//! |---|---|---|
//! | `schema` | string | the layout's version (2); see below |
//! | `id:<webhook-id>` | string | the de-duplication mark: set with `NX` at enqueue and kept without expiry while the job waits, runs, retries or is dead; kept for the retention once done; deleted by `forget` and with a purged delivery |
//! | `stream` | stream, consumer group | the jobs waiting or running; a running job is pending in the group |
//! | `leases` | sorted set | stream entry id → lease end (ms, the engine's clock): re-claim is by lease expiry |
//! | `scheduled` | stream | jobs waiting for a retry |
//! | `due` | sorted set | `scheduled` entry id → due time (ms, the engine's clock) |
//! | `dead` | stream | the dead letters, oldest first (an entry's id is its burial time) |
//! | `dead-index` | hash | webhook-id → `dead` entry id |
//! | `claim:<token>` | hash | one claim's receipts, entry id → delivery count, for [`abandon`](Backend::abandon); expires after the lease |
//! | `repair` | hash | when the next check for entries pending without a lease is due, and where it resumes |
//! | `d:<webhook-id>` | hash | the delivery's record: `id`, `type`, `grp` (portal group), `ts`, `sig`, `recv`, `body`; `state` (`waiting`, `running`, `retrying`, `done`, `dead`), `a` (attempts), `next` (next run), `err`, `done`, `died`, `worker` and `claimed` (the current or last claim), `e`/`q` (its entry and which stream holds it), `seq` (history entries written), `first` (the first history entry) |
//! | `h:<webhook-id>` | list | the latest 24 history entries after the first (`LTRIM`) |
//! | `r:s:<state>` | sorted set | webhook-id → received-at (ms), one per state: the lists |
//! | `r:st:<state>:<type>` | sorted set | the same per state and type: lists of a type, and every count (`ZCOUNT`) |
//! | `r:sg:<state>:<group>` | sorted set | the same per state and portal group: lists and counts of a group |
//! | `done-at` | sorted set | webhook-id → when it was done: the record's purge |
//! | `types` | hash | every type seen → its group, for the counts |
//!
//! At one received-at ms a sorted set orders its members by id, byte by byte: the lists' order
//! (received-at, then id, newest first) and their keyset cursor are the sets' own. No key has
//! a TTL but the id marks of done deliveries (and the claims' receipts), so no index member is
//! left pointing at an expired hash: what leaves the record is deleted by the purge, index
//! entries included.
//!
//! # Commands
//!
//! Every operation is one Lua script (`*.lua` beside this module), so one round trip and one
//! atomic step: a step's record (state, index entries, history entry) is written by the same
//! script as its work. Times come from the engine's clock (`TIME` inside the script): instances
//! whose clocks differ agree on when a lease ends or a retry is due; leases, delays and
//! retentions are arguments in ms or s, clamped to ten years. Each script checks its arguments
//! and everything that can refuse before its first write, so that it never fails half-way.
//!
//! - **enqueue**: `SET <prefix>id:<webhook-id> 1 NX`, `HGET` of the record's state and, if the
//!   id is new, `XADD`, the record's `HSET`, its three index entries (`ZADD`) and the type's
//!   `HSETNX`: one round trip, no clock. A duplicate writes nothing. A known id whose delivery
//!   is dead (the sender's resend from its portal), or whose mark is gone while its record
//!   stays (forgotten, or done longer ago than the retention), is stored again as resent (its
//!   dead letter removed, `Resent` in its history). The mark has no expiry until the job is
//!   done: a job that retries longer than the retention still answers a resend as a duplicate.
//! - **claim**: makes sure the consumer group exists (refusing if another group reads the
//!   stream), moves the due retries from `scheduled` back into the stream, re-claims the entries
//!   whose lease expired with `XCLAIM` (which counts the delivery in the group's pending list;
//!   the lost attempt goes into the history as `lease_expired`, its duration up to its lease
//!   end), then reads new entries with `XREADGROUP ... >` (never `BLOCK`: the connection is
//!   shared and multiplexed; the workers poll), and records what it took under the caller's
//!   token in `claim:<token>`, each record running under the token's worker. The attempt is the
//!   entry's earlier attempts (a field) plus its delivery counter (`XPENDING`). At most once
//!   per lease it also looks through a page of `XPENDING ... IDLE <lease>` for entries pending
//!   without a `leases` member (evicted, or a write lost), which would never be re-claimed, and
//!   gives them an expired lease.
//! - **abandon**: every receipt of `claim:<token>` that still holds its entry (same delivery
//!   count) is given back as release does (without a history entry: it never ran); then the
//!   key is deleted.
//! - **complete**: `XACK` + `XDEL`, the id mark kept for the retention from now, the record
//!   done (in `done-at`) with its attempt.
//! - **retry**: `XACK` + `XDEL`, the job copied to `scheduled` with its due time in `due`, the
//!   record retrying with the error (cut to [`MAX_ERROR_LEN`](crate::record::MAX_ERROR_LEN)).
//! - **extend**: the lease pushed back, and `XCLAIM ... JUSTID` with a min-idle of 0 to reset the
//!   entry's idle time (without counting a delivery).
//! - **release**: `XACK` + `XDEL`, the job added again at the end of the stream, this attempt not
//!   counted; the record waiting again (retrying if an attempt counted before).
//! - **bury**: `XACK` + `XDEL`, the job copied to `dead`; **replay** (and `replay_by`,
//!   `replay_matching`) adds a dead or done delivery to the stream again from its record, its
//!   attempts reset, its mark without expiry again.
//! - **discard**: a waiting or retrying delivery's entry deleted from `stream` or `scheduled`
//!   and copied to `dead`; **forget**: the id mark deleted.
//! - **purge**: deletes up to 100 done deliveries past the record's retention (`done-at`) and
//!   up to 100 dead letters past the dead-letter retention, each with its record, index entries
//!   and id mark (named from the prefix); **purge_dead** the dead letters buried before a time.
//!
//! # Queries, and what they cost
//!
//! Every query reads the index sorted sets, never the keyspace (no `KEYS` or `SCAN`); `n` is
//! the deliveries on record, `k` the page size, `s` the states asked for (1 to 5), `t` the
//! types seen.
//!
//! - **list**: one walk per state asked for, in `r:s:<state>`, `r:st:<state>:<type>` (a type)
//!   or `r:sg:<state>:<group>` (a group), each `ZREVRANGEBYSCORE` within the time range from
//!   the cursor, `k + 1` members, merged; then one `HMGET` per delivery on the page:
//!   O(s · (log n + k)). An exact id is one `ZSCORE` per state. An id prefix has no index: the
//!   walks keep the members that start with it, reading at most 5,000 members per call, and a
//!   page cut short by that bound ends with a cursor to go on from.
//! - **counts**: one `ZCOUNT` per state and type (of the filter's type or group, or every type
//!   seen) within the time range: O(5 · t · log n), no delivery read. An id filter is counted by
//!   walking the list (O(what matches)).
//! - **delivery**: `HGETALL` of the record and `LRANGE` of its history: O(1) (the history is
//!   capped at 25 entries).
//! - **replay_matching**: the list's walk (done and dead states only), then each replay: one
//!   script, at most [`MAX_BULK`](crate::record::MAX_BULK) deliveries.
//!
//! # Memory
//!
//! Measured on Redis 7.0 with `tests/redis_record_bench.rs` (100,000 deliveries, each a
//! 300-byte body): a done delivery's record hash takes about 1,600 bytes (`MEMORY USAGE`: a hash
//! holding a value over 64 bytes is a hash table, about 60 bytes per field besides the values),
//! each of its index entries about 120 bytes (three: state, state and type, state and group;
//! and `done-at` once done), its id mark 72 bytes, and its history list nothing until a second
//! entry (about 100 bytes an entry after that, 24 at most). In all, `used_memory` grew by
//! about 2,250 bytes per delivery stored and waiting (with its stream entry), and by 2,450 per
//! delivery once most were done: about 2.1 KiB plus the body. A week of 100,000 deliveries a
//! day, kept for the default record retention, is about 1.7 GB; set
//! [`RedisOptions::record_retention`] to what the operators need.
//!
//! # Layout versions
//!
//! The `schema` key holds the layout's version. A queue written before it (version 1: no
//! record) is upgraded in place when connecting ([`RedisBackend::prepare`]): a record is built
//! for each entry of `stream` (waiting, retrying once an attempt counted, running if pending in
//! the group), `scheduled` (retrying, due as before) and `dead` (its error and burial time), in
//! batches of 500 entries per script, then the version is set. Done deliveries of version 1
//! kept no body: only their marks remain, duplicates until they expire. Entries an instance of
//! the old version writes meanwhile get their record when claimed. A queue written by a newer
//! version is refused, naming it, before anything is written.
//!
//! Settling checks the receipt (the entry id and its delivery count when claimed) against
//! `XPENDING`, so a worker whose job was re-claimed settles nothing.
//!
//! Why a `leases` set rather than `XAUTOCLAIM`'s min-idle: with `XAUTOCLAIM` the lease would be
//! whatever the *claiming* worker passes, not the lease the job was claimed or extended with, so
//! a job extended past the claimers' lease would be taken from a live worker.
//!
//! One consumer group per prefix: the keys do not name the group (a renamed group would orphan
//! the old one's jobs), and two groups on one stream would each run every job, so connecting or
//! claiming with another group than the stream's is refused, naming the group to use.
//!
//! # Durability and topology
//!
//! An enqueue returns once Redis applied it; whether that survives a Redis crash is Redis's
//! persistence setting (`appendonly yes` with `appendfsync always` for every write, `everysec`
//! for at most a second lost). The scripts touch several keys under the prefix, and name the
//! record's keys (hashes, histories, indexes, marks in a purge) from the prefix rather than
//! declaring each one: on a Redis Cluster, put a hash tag in the prefix (e.g.
//! `{agentsync}:queue:`) so they share a slot.
//!
//! ```no_run
//! # async fn run() -> Result<(), agentsync_webhooks_queue::StoreError> {
//! use agentsync_webhooks_queue::{Queue, redis::{RedisBackend, RedisOptions}};
//!
//! let backend = RedisBackend::connect_with(
//!     "redis://127.0.0.1:6379",
//!     RedisOptions::new().prefix("billing:queue:").group("billing-workers"),
//! )
//! .await?;
//! let queue = Queue::new(backend);
//! # let _ = queue;
//! # Ok(()) }
//! ```

mod fields;
mod record;
mod schema;
mod scripts;

use std::{future::Future, time::Duration};

use ::redis::{
    RedisError, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery, now_ms},
    idempotency::{StoreError, StoreErrorKind},
};
use agentsync_webhooks_redis::shared::{open, store_error};

use self::{fields::Fields, scripts::*};
use crate::{
    backend::{
        Backend, ClaimToken, DeadLetter, Job, Purged, QueueFuture, QueueStats, Receipt,
        attempt_count, duration_ms,
    },
    record::{Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord, bounded_error},
};

/// The key prefix by default.
pub const DEFAULT_PREFIX: &str = "agentsync-webhooks:queue:";
/// The consumer group by default.
pub const DEFAULT_GROUP: &str = "agentsync-webhooks";
/// How long one call may take before it fails as a timeout (and the delivery gets a 503): well
/// under the 5 s a sender waits.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a done `webhook-id` stays known: longer than the sender's retry horizon.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(72 * 60 * 60);
/// How long a done delivery stays on record (body, headers, history) from when it was done:
/// 7 days, never shorter than the de-duplication retention.
pub const DEFAULT_RECORD_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// How long a dead letter is kept before [`purge`](Backend::purge) deletes it: 30 days.
pub const DEFAULT_DEAD_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The consumer name in the group. Re-claim is by lease, not by consumer, so every instance may
/// share it; one name keeps the group from collecting a consumer per process start.
const CONSUMER: &str = "workers";
/// At most this many due retries are moved back into the stream per claim.
const PROMOTE_BATCH: usize = 100;
/// At most this many pending entries are checked for a missing lease per repair.
const REPAIR_BATCH: usize = 100;
/// At most this many jobs per claim, so that one script never holds Redis for long.
const MAX_CLAIM: usize = 1_000;
/// At most this many done deliveries and this many dead letters per purge.
const PURGE_BATCH: usize = 100;
/// The longest lease, delay or retention the scripts take: "forever" for a webhook, and well
/// inside what Redis accepts for an expiry (`SET ... EX` refuses what overflows its clock).
const TEN_YEARS_MS: u64 = 10 * 365 * 24 * 60 * 60 * 1_000;

/// Settings of a [`RedisBackend`].
///
/// ```
/// use std::time::Duration;
/// use agentsync_webhooks_queue::redis::RedisOptions;
///
/// let options = RedisOptions::new()
///     .prefix("billing:queue:")
///     .group("billing-workers")
///     .timeout(Duration::from_millis(500))
///     .retention(Duration::from_secs(48 * 3600))
///     .dead_retention(Duration::from_secs(14 * 24 * 3600));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct RedisOptions {
    prefix: String,
    group: String,
    timeout: Duration,
    retention: Duration,
    record_retention: Duration,
    dead_retention: Duration,
    clock_offset: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisOptions {
    /// [`DEFAULT_PREFIX`], [`DEFAULT_GROUP`], [`DEFAULT_TIMEOUT`], [`DEFAULT_RETENTION`],
    /// [`DEFAULT_RECORD_RETENTION`], [`DEFAULT_DEAD_RETENTION`].
    pub fn new() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            group: DEFAULT_GROUP.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            retention: DEFAULT_RETENTION,
            record_retention: DEFAULT_RECORD_RETENTION,
            dead_retention: DEFAULT_DEAD_RETENTION,
            clock_offset: Duration::ZERO,
        }
    }

    /// The prefix of every key, so that several queues share one Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The consumer group the workers read through: one per prefix (another group on the same
    /// prefix is refused, since each group would run every job).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// How long one call (and connecting) may take before it fails as a timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a done `webhook-id` stays known as a duplicate, from when it was done (at least
    /// a second, at most ten years). Until then (its job waiting, running, retrying or dead) it
    /// is known without expiry.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long a done delivery stays on record, body and history included, from when it was
    /// done (default [`DEFAULT_RECORD_RETENTION`]; never less than the
    /// [`retention`](Self::retention): a shorter setting is raised to it). Past it,
    /// [`purge`](Backend::purge) deletes it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::redis::RedisOptions;
    ///
    /// let options = RedisOptions::new().record_retention(Duration::from_secs(30 * 24 * 3600));
    /// # let _ = options;
    /// ```
    pub fn record_retention(mut self, retention: Duration) -> Self {
        self.record_retention = retention;
        self
    }

    /// How long a dead letter is kept (from its burial) before [`purge`](Backend::purge)
    /// deletes it and forgets its `webhook-id`; [`Duration::MAX`] keeps them forever.
    pub fn dead_retention(mut self, retention: Duration) -> Self {
        self.dead_retention = retention;
        self
    }

    /// Tests only: this instance's own clock runs `offset` ahead, wherever the backend still
    /// reads it (a stats age), to show that leases and due times do not.
    #[doc(hidden)]
    pub fn clock_offset(mut self, offset: Duration) -> Self {
        self.clock_offset = offset;
        self
    }
}

/// The keys of one queue.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
    schema: String,
    stream: String,
    leases: String,
    scheduled: String,
    due: String,
    dead: String,
    dead_index: String,
    repair: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            schema: format!("{prefix}schema"),
            stream: format!("{prefix}stream"),
            leases: format!("{prefix}leases"),
            scheduled: format!("{prefix}scheduled"),
            due: format!("{prefix}due"),
            dead: format!("{prefix}dead"),
            dead_index: format!("{prefix}dead-index"),
            repair: format!("{prefix}repair"),
        }
    }

    fn id_mark(&self, webhook_id: &str) -> String {
        format!("{}id:{webhook_id}", self.prefix)
    }

    fn claim(&self, token: &ClaimToken) -> String {
        format!("{}claim:{}", self.prefix, token.as_str())
    }
}

/// A [`Backend`] on Redis Streams, shared by every instance that connects to the same Redis and
/// prefix. Cheap to clone: the connection is one multiplexed, auto-reconnecting connection.
#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
    keys: Keys,
    group: String,
    timeout: Duration,
    retention_secs: u64,
    record_retention_ms: i64,
    dead_retention_ms: i64,
    clock_offset_ms: i64,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection's Debug shows the address; credentials stay out of it.
        f.debug_struct("RedisBackend")
            .field("prefix", &self.keys.prefix)
            .field("group", &self.group)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects to `url` with the default [`RedisOptions`], failing if Redis does not answer now.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, RedisOptions::new()).await
    }

    /// Connects to `url` with `options`, failing if Redis does not answer now, and creates the
    /// stream and its consumer group if they do not exist; refuses if another group reads the
    /// stream.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let client = open(url)?;
        let connect =
            ConnectionManager::new_with_config(client, Self::connection_config(options.timeout));
        let connection = match tokio::time::timeout(options.timeout, connect).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => return Err(store_error("connect", err)),
            Err(_) => {
                return Err(StoreError::new(
                    StoreErrorKind::Timeout,
                    format!("connecting to Redis took longer than {:?}", options.timeout),
                ));
            }
        };
        let backend = Self::from_connection_manager(connection, options);
        backend.prepare().await?;
        Ok(backend)
    }

    /// A backend on a connection manager you configured yourself (TLS, credentials, RESP3...;
    /// [`connection_config`](Self::connection_config) gives the bounds `connect` uses). Call
    /// [`prepare`](Self::prepare) before using it (the consumer group is otherwise created by
    /// the first claim, but a queue of an older layout is not upgraded).
    pub fn from_connection_manager(connection: ConnectionManager, options: RedisOptions) -> Self {
        let retention_secs = options.retention.as_secs().clamp(1, TEN_YEARS_MS / 1_000);
        let retention_ms = i64::try_from(retention_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
        Self {
            connection,
            keys: Keys::new(&options.prefix),
            group: options.group,
            timeout: options.timeout,
            retention_secs,
            record_retention_ms: duration_ms(options.record_retention).max(retention_ms),
            dead_retention_ms: duration_ms(options.dead_retention),
            clock_offset_ms: duration_ms(options.clock_offset),
        }
    }

    /// The connection settings [`connect_with`](Self::connect_with) uses for `timeout`
    /// ([`RedisOptions::timeout`]): `timeout` to connect and per response, two quick
    /// reconnection attempts, then the next call tries again.
    pub fn connection_config(timeout: Duration) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
    }

    /// Creates the stream and the group unless they exist, refusing another group's stream.
    async fn ensure_group(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ENSURE_GROUP.key(&self.keys.stream);
        invocation.arg(&self.group);
        let _: i64 = self
            .bounded(
                "create the consumer group",
                invocation.invoke_async(&mut connection),
            )
            .await?;
        Ok(())
    }

    /// Runs one Redis call within the timeout.
    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) if err.code() == Some("WRONGGROUP") => Err(StoreError::new(
                StoreErrorKind::Other,
                format!(
                    "Redis {what} refused: {}",
                    err.detail()
                        .unwrap_or("another consumer group reads the queue")
                ),
            )),
            Ok(Err(err)) => Err(store_error(what, err)),
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("Redis {what} took longer than {:?}", self.timeout),
            )),
        }
    }

    async fn enqueue_delivery(&self, delivery: &ReceivedDelivery) -> Result<Enqueued, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ENQUEUE.key(self.keys.id_mark(&delivery.webhook_id));
        invocation
            .key(&self.keys.stream)
            .arg(&delivery.webhook_id)
            .arg(&delivery.event_type)
            .arg(delivery.webhook_timestamp)
            .arg(&delivery.signature)
            .arg(delivery.received_at_ms)
            .arg(delivery.body.as_ref())
            .arg(group_of(&delivery.event_type))
            .arg(&self.keys.prefix);
        let stored: i64 = self
            .bounded("enqueue", invocation.invoke_async(&mut connection))
            .await?;
        Ok(if stored == 1 {
            Enqueued::New
        } else {
            Enqueued::Duplicate
        })
    }

    async fn claim_jobs(
        &self,
        token: &ClaimToken,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let mut invocation = CLAIM.key(&self.keys.stream);
        invocation
            .key(&self.keys.leases)
            .key(&self.keys.scheduled)
            .key(&self.keys.due)
            .key(self.keys.claim(token))
            .key(&self.keys.repair)
            .arg(&self.group)
            .arg(CONSUMER)
            .arg(max.min(MAX_CLAIM))
            .arg(lease_ms(lease))
            .arg(PROMOTE_BATCH)
            .arg(REPAIR_BATCH)
            .arg(&self.keys.prefix)
            .arg(token.worker());
        let claimed: Vec<(String, i64, Vec<Vec<u8>>)> = self
            .bounded("claim", invocation.invoke_async(&mut connection))
            .await?;
        // An entry this library did not write (no id, a field that is not a number) is left
        // pending and logged at each lease rather than failing the claim: a failed claim is
        // given back whole, so one such entry would otherwise stall every job behind it.
        Ok(claimed
            .into_iter()
            .filter_map(|(entry, count, fields)| match Fields::parse(fields) {
                Ok(fields) => Some(Job {
                    attempt: attempt_count(fields.attempts.saturating_add(count)),
                    delivery: fields.delivery,
                    receipt: Receipt(format!("{entry}/{count}")),
                }),
                Err(err) => {
                    tracing::error!(
                        entry = %entry,
                        stream = %self.keys.stream,
                        error = %err,
                        "a queue entry cannot be read as a delivery; it stays pending, skipped: \
                         inspect it with XRANGE and remove it with XACK and XDEL"
                    );
                    None
                }
            })
            .collect())
    }

    async fn abandon_claim(&self, token: &ClaimToken) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ABANDON.key(&self.keys.stream);
        invocation
            .key(&self.keys.leases)
            .key(self.keys.claim(token))
            .arg(&self.group)
            .arg(&self.keys.prefix);
        self.bounded("abandon a claim", invocation.invoke_async(&mut connection))
            .await
    }

    /// Runs a settling script for `job`: `KEYS` stream, leases and `extra_keys`; `ARGV` group,
    /// entry id, delivery count and `extra_args`. A receipt that is not one of ours settles
    /// nothing.
    async fn settle(
        &self,
        what: &'static str,
        script: &Script,
        job: &Job,
        extra_keys: &[&str],
        extra_args: &[&[u8]],
    ) -> Result<bool, StoreError> {
        let Some((entry, count)) = parse_receipt(&job.receipt) else {
            return Ok(false);
        };
        let mut connection = self.connection.clone();
        let mut invocation = script.key(&self.keys.stream);
        invocation
            .key(&self.keys.leases)
            .arg(&self.group)
            .arg(entry)
            .arg(count);
        for key in extra_keys {
            invocation.key(*key);
        }
        for arg in extra_args {
            invocation.arg(*arg);
        }
        let applied: i64 = self
            .bounded(what, invocation.invoke_async(&mut connection))
            .await?;
        Ok(applied == 1)
    }

    async fn dead_letter_list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let entries: Vec<(String, Vec<Vec<u8>>)> = self
            .bounded(
                "list dead letters",
                ::redis::cmd("XRANGE")
                    .arg(&self.keys.dead)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut connection),
            )
            .await?;
        entries
            .into_iter()
            .map(|(_, fields)| Fields::parse(fields).map(Fields::into_dead_letter))
            .collect()
    }

    async fn dead_letter_by_id(&self, webhook_id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = DEAD_LETTER.key(&self.keys.dead);
        invocation.key(&self.keys.dead_index).arg(webhook_id);
        let fields: Option<Vec<Vec<u8>>> = self
            .bounded(
                "show a dead letter",
                invocation.invoke_async(&mut connection),
            )
            .await?;
        fields
            .map(|fields| Fields::parse(fields).map(Fields::into_dead_letter))
            .transpose()
    }

    /// Replays `webhook_id` if it is dead (or done, with `done_too`), recording `by`.
    async fn replay_one(
        &self,
        webhook_id: &str,
        by: &str,
        done_too: bool,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = REPLAY.key(&self.keys.stream);
        invocation
            .key(&self.keys.dead)
            .key(&self.keys.dead_index)
            .key(self.keys.id_mark(webhook_id))
            .arg(webhook_id)
            .arg(by)
            .arg(&self.keys.prefix)
            .arg(if done_too { "1" } else { "0" });
        let replayed: i64 = self
            .bounded("replay", invocation.invoke_async(&mut connection))
            .await?;
        Ok(replayed == 1)
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = STATS.key(&self.keys.stream);
        invocation
            .key(&self.keys.due)
            .key(&self.keys.dead)
            .key(&self.keys.scheduled);
        let (depth, dead, oldest): (u64, u64, String) = self
            .bounded("stats", invocation.invoke_async(&mut connection))
            .await?;
        // `received_at_ms` is the receiving instance's clock, so the age is read on this one's.
        let now = now_ms().saturating_add(self.clock_offset_ms);
        let oldest_age = oldest.parse::<i64>().ok().map(|received| {
            Duration::from_millis(u64::try_from(now.saturating_sub(received)).unwrap_or(0))
        });
        Ok(QueueStats {
            depth,
            oldest_age,
            dead,
        })
    }

    async fn purge_expired(&self) -> Result<Purged, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = PURGE.key(&self.keys.dead);
        invocation
            .key(&self.keys.dead_index)
            .arg(self.dead_retention_ms)
            .arg(PURGE_BATCH)
            .arg(&self.keys.prefix)
            .arg(self.record_retention_ms);
        let (done, dead, full): (u64, u64, i64) = self
            .bounded("purge", invocation.invoke_async(&mut connection))
            .await?;
        Ok(Purged {
            done,
            dead,
            more: full == 1,
        })
    }
}

impl Backend for RedisBackend {
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> QueueFuture<'a, Enqueued> {
        Box::pin(self.enqueue_delivery(delivery))
    }

    fn claim_with<'a>(
        &'a self,
        token: &'a ClaimToken,
        max: usize,
        lease: Duration,
    ) -> QueueFuture<'a, Vec<Job>> {
        Box::pin(self.claim_jobs(token, max, lease))
    }

    fn abandon<'a>(&'a self, token: &'a ClaimToken) -> QueueFuture<'a, u64> {
        Box::pin(self.abandon_claim(token))
    }

    fn complete<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let mark = self.keys.id_mark(&job.delivery.webhook_id);
            let retention = self.retention_secs.to_string();
            self.settle(
                "complete",
                &COMPLETE,
                job,
                &[&mark],
                &[retention.as_bytes(), self.keys.prefix.as_bytes()],
            )
            .await
        })
    }

    fn retry<'a>(&'a self, job: &'a Job, after: Duration, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let delay = delay_ms(after).to_string();
            self.settle(
                "retry",
                &RETRY,
                job,
                &[&self.keys.scheduled, &self.keys.due],
                &[
                    delay.as_bytes(),
                    bounded_error(error).as_bytes(),
                    self.keys.prefix.as_bytes(),
                ],
            )
            .await
        })
    }

    /// Pushes the lease back to `lease` from the engine's now, and resets the entry's idle time
    /// in the group (what `XPENDING` shows) with `XCLAIM ... JUSTID`.
    fn extend<'a>(&'a self, job: &'a Job, lease: Duration) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let lease = lease_ms(lease).to_string();
            self.settle(
                "extend",
                &EXTEND,
                job,
                &[],
                &[lease.as_bytes(), CONSUMER.as_bytes()],
            )
            .await
        })
    }

    fn release<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            self.settle(
                "release",
                &RELEASE,
                job,
                &[],
                &[self.keys.prefix.as_bytes()],
            )
            .await
        })
    }

    fn bury<'a>(&'a self, job: &'a Job, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let mark = self.keys.id_mark(&job.delivery.webhook_id);
            self.settle(
                "bury",
                &BURY,
                job,
                &[&self.keys.dead, &self.keys.dead_index, &mark],
                &[bounded_error(error).as_bytes(), self.keys.prefix.as_bytes()],
            )
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
        Box::pin(self.replay_one(webhook_id, "library", false))
    }

    /// Depth is the stream's length plus the scheduled retries; the oldest age is that of the
    /// first entry of the stream or of the retries, whichever was received first (a retried job
    /// goes to the end of the stream, so it can be older than the stream's first entry: the
    /// age is then a lower bound).
    fn stats(&self) -> QueueFuture<'_, QueueStats> {
        Box::pin(self.queue_stats())
    }

    /// Deletes up to 100 done deliveries past the record's retention and up to 100 dead
    /// letters past the dead-letter retention, each with its record and id mark.
    fn purge(&self) -> QueueFuture<'_, Purged> {
        Box::pin(self.purge_expired())
    }

    fn list<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        after: Option<&'a Cursor>,
        limit: usize,
    ) -> QueueFuture<'a, DeliveryPage> {
        Box::pin(self.list_page(filter, after, limit))
    }

    fn counts<'a>(&'a self, filter: &'a DeliveryFilter) -> QueueFuture<'a, DeliveryCounts> {
        Box::pin(self.count_deliveries(filter))
    }

    fn delivery<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeliveryRecord>> {
        Box::pin(self.show(webhook_id))
    }

    fn replay_by<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(self.replay_one(webhook_id, by, true))
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
        Box::pin(self.discard_one(webhook_id, by))
    }

    fn forget<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(self.forget_one(webhook_id, by))
    }

    fn purge_dead(&self, before_ms: i64, max: usize) -> QueueFuture<'_, u64> {
        Box::pin(self.purge_dead_before(before_ms, max))
    }
}

/// The portal group of a type, as the record stores it (`''` for a type in no group).
fn group_of(event_type: &str) -> &'static str {
    agentsync_webhooks_core::EventGroup::of(event_type)
        .map_or("", agentsync_webhooks_core::EventGroup::as_str)
}

/// A lease in ms as the scripts take it: at least 1, at most ten years.
fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, TEN_YEARS_MS)
}

/// A retry delay in ms as the scripts take it: at most ten years.
fn delay_ms(delay: Duration) -> u64 {
    u64::try_from(delay.as_millis())
        .unwrap_or(u64::MAX)
        .min(TEN_YEARS_MS)
}

/// The entry id and delivery count of one of our receipts (`<ms>-<seq>/<count>`), or `None`
/// for anything else (which then settles nothing rather than reach a script).
fn parse_receipt(receipt: &Receipt) -> Option<(&str, &str)> {
    let (entry, count) = receipt.0.split_once('/')?;
    let (ms, seq) = entry.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(ms) && digits(seq) && digits(count)).then_some((entry, count))
}
