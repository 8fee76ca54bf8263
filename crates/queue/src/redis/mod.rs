//! Redis Streams: a stream with a consumer group, so that every instance that shares the Redis
//! shares the work.
//!
//! # Keys (under a prefix, `agentsync-webhooks:queue:` by default)
//!
//! | key | type | holds |
//! |---|---|---|
//! | `schema` | string | the layout's version (2; 3 for a partitioned queue); see below |
//! | `legacy-until` | string | a partitioned queue upgraded from version 2 (first partition only): until when (ms) a keyed enqueue first looks for its id in the id's own partition |
//! | `id:<webhook-id>` | string | the de-duplication mark: set with `NX` at enqueue and kept without expiry while the job waits, runs, retries or is dead; kept for the retention once done; deleted by `forget` and with a purged delivery |
//! | `stream` | stream, consumer group | the jobs waiting or running; a running job is pending in the group |
//! | `leases` | sorted set | stream entry id → lease end (ms, the engine's clock): re-claim is by lease expiry |
//! | `scheduled` | stream | jobs waiting for a retry |
//! | `due` | sorted set | `scheduled` entry id → due time (ms, the engine's clock) |
//! | `dead` | stream | the dead letters, oldest first (an entry's id is its burial time) |
//! | `dead-index` | hash | webhook-id → `dead` entry id |
//! | `claim:<token>` | hash | one claim's receipts, entry id → delivery count, for [`abandon`](Backend::abandon); expires after the lease |
//! | `repair` | hash | when the next check for entries pending without a lease is due, and where it resumes |
//! | `d:<webhook-id>` | hash | the delivery's record: `id`, `type`, `grp` (portal group), `ts`, `sig`, `recv`, `body`; `state` (`waiting`, `running`, `retrying`, `done`, `dead`), `a` (attempts), `next` (next run), `err`, `done`, `died`, `worker` and `claimed` (the current or last claim), `e`/`q` (its entry and which stream holds it), `seq` (history entries written), `first` (the first history entry), `occ` (when its event occurred, ms: written at enqueue for every delivery, apart from the ordering's `ok`/`oat`; absent on a record written before, which then shows no delay) |
//! | `h:<webhook-id>` | list | the latest 24 history entries after the first (`LTRIM`) |
//! | `r:s:<state>` | sorted set | webhook-id → received-at (ms), one per state: the lists |
//! | `r:st:<state>:<type>` | sorted set | the same per state and type: lists of a type, and every count (`ZCOUNT`) |
//! | `r:sg:<state>:<group>` | sorted set | the same per state and portal group: lists and counts of a group |
//! | `done-at` | sorted set | webhook-id → when it was done: the record's purge |
//! | `types` | hash | every type seen → its group, for the counts |
//! | `k:newest` | hash | ordering key → the newest occurred-at (ms) of its jobs completed |
//! | `k:touched` | sorted set | ordering key → when its newest was last written: the key retention's purge |
//! | `k:running` | hash | ordering key → the stream entry of its running job (the key's lease is that entry's lease) |
//! | `k:w:<key>` | sorted set | the key's waiting, running and retrying webhook ids by occurred-at (ties by id): the first is the key's head |
//! | `k:held` | sorted set | webhook-id → received-at of the jobs held back for their key, in no stream until the key wakes them |
//! | `quarantine` | stream | claimed entries too broken to be dead letters (no webhook id or no body): each with `entry` (its stream entry id), `reason`, `at` (ms) and its fields as `f:<name>`; counted in [`health`](Backend::health)'s warnings, removed by the operator (`XDEL`, `DEL`) |
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
//!   done (in `done-at`) with its attempt. The completions that arrive while one is in flight
//!   share the next script (`complete_many.lua`, one per partition, at most 64 jobs), each
//!   settled under its own receipt; its index moves (and the claim's) are written once per
//!   index key for the whole script.
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
//! # Ordering keys (issue 23)
//!
//! A delivery enqueued with [`enqueue_ordered`](Backend::enqueue_ordered) carries its key and
//! occurred-at in its entry (`ok`, `oat`) and its record (kept by a replay; a resend writes the new
//! ones), and is added to `k:w:<key>`. The claim takes a keyed entry read from the stream only if
//! it is its key's head and no other entry of the key holds a lease (`k:running`); else it is held
//! back: `XACK` + `XDEL`, its record waiting (or retrying) as before with `q = k`, its attempt not
//! counted, in `k:held`, so it is not read again until its key frees it (no spinning). The claim
//! script reads at most 64 entries past the wanted ones when some are held back, and says so when
//! it stopped there: the claim then runs it again at once (at most 32 times per partition), since a
//! key's woken head is at the stream's end, behind every entry not read yet. Whatever ends the
//! running state (complete, complete_stale, retry, release, abandon, bury) frees the key and, if
//! the key's new head is held back, adds it to the stream again in the same script; a discard does
//! as well. A retrying head stays in `k:w:<key>` and holds the rest until it is due; a killed
//! worker's entry is re-claimed when its lease ends, taking the key again. Complete raises
//! `k:newest` to `max(newest, occurred-at)` in its script (and `k:touched`); complete_stale records
//! the attempt's outcome `stale` and leaves the newest. The claim returns with each keyed job its
//! key's newest. Purge deletes up to 100 keys per call whose newest was last written longer ago
//! than [`DEFAULT_KEY_RETENTION`]. A keyed claim costs one `ZRANGE` (the head), one `HGET` and one
//! `ZSCORE` (the running entry's lease), one `HSET` and one `HGET` (taking the key, reading its
//! newest); an unkeyed one nothing more than a field lookup.
//!
//! A partitioned queue orders events too ([`Backend::orders_events`] is always `true`): a
//! keyed delivery is stored in its ordering key's partition (FNV-1a of the key, modulo the
//! count), so every job of one key, `k:w:<key>`, `k:running` and `k:newest` share one slot
//! and each script above reaches them all. See "Partitions and Redis Cluster".
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
//!   page cut short by that bound ends with a cursor to go on from. A delay filter has no
//!   index either: the walks read each member's `occ` (one `HGET`) and keep the late ones,
//!   within the same bound; its counts walk the list as an id filter's do.
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
//! A partitioned queue is version 3: version 2 stored every delivery in its id's partition,
//! without its ordering key (a partitioned queue did not order events then). Connecting to a
//! partitioned version 2 queue sets it to 3 (an instance of the earlier version then refuses
//! it rather than store keyed deliveries by id beside this one) and leaves its deliveries where
//! they are: they run as unkeyed jobs. For the de-duplication retention from then
//! (`legacy-until`), a keyed delivery whose key's partition is not its id's first checks its
//! id's partition (one more `EXISTS`, a second round trip), and a retry or resend of a delivery
//! stored there is answered there, as before. After the window a portal resend of a dead
//! letter of version 2 is stored as new in its key's partition, its old dead letter left
//! until purged. A queue of one partition keeps version 2: its layout did not change.
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
//! # Partitions and Redis Cluster
//!
//! A queue is one partition by default ([`DEFAULT_PARTITIONS`]): every key above under the
//! prefix, as earlier versions wrote it. [`RedisOptions::partitions`] splits it into `n`, each
//! holding the whole table above under its own key prefix `<prefix>{<tag>}:`, the tag chosen
//! so that partition `i` hashes into the `i`-th `n`-th of the 16,384 slots (one per primary of
//! an evenly split cluster). On a Redis Cluster (`redis+cluster://`) one partition is also put
//! under a tag unless the prefix has one. A delivery is stored in one partition: its ordering
//! key's when it has one (FNV-1a of the key, modulo `n`), else its `webhook-id`'s (FNV-1a of
//! the id), and its per-delivery keys (`id:`, `d:`, `h:`) carry that partition's tag: the
//! enqueue, the claim and every settle write the mark, the stream, the record, the indexes and
//! the key's state in one script, so all of them must share a slot. A sender's retry, or a
//! resend from its portal, carries the same body, hence the same key and the same partition,
//! where the id's mark is: de-duplication with the enqueue stays one script, one round trip.
//! (A router whose ordering key for a type changes while its deliveries are on record would
//! put a retry in another partition, where its id is unknown: keep a type's key stable.) A
//! claim's receipt names its partition, so settling a job goes there whatever its id. The
//! queries by id ([`delivery`](Backend::delivery), [`dead_letter`](Backend::dead_letter),
//! [`replay`](Backend::replay), `replay_by`, `discard`, `forget`) look for the id's record or
//! mark in the id's partition first, then in the others (one `EXISTS` each; a replay keeps the
//! record's key, so it runs in the partition it was found in). Every script names at least one
//! of its partition's keys, so that the cluster client routes it to the primary that owns the
//! slot. Claims start with the next partition in turn and take from the others while the claim
//! is not full; dead letters, stats, the lists (merged newest first, never past where a
//! partition's page stopped), counts, bulk replays (each partition its share of the newest
//! `max`, counted where each was listed) and purges cover every partition. Changing `n` on a
//! queue that holds jobs strands them in partitions no key or id maps to: drain it first, or
//! give the new count a new prefix.
//!
//! # Durability and topology
//!
//! An enqueue returns once Redis applied it; whether that survives a Redis crash is Redis's
//! persistence setting (`appendonly yes` with `appendfsync always` for every write, `everysec`
//! for at most a second lost). [`RedisBackend::connect_with`] reads it on every primary (see
//! [`agentsync_webhooks_redis::persistence`]) and warns, naming the setting and its fix, or
//! refuses with [`RedisOptions::require_persistence`]. A failover to a replica that had not
//! received an enqueue loses it (asynchronous replication):
//! [`RedisOptions::wait_for_replicas`] pipelines `WAIT` after each enqueue, in the same round
//! trip, and answers 503 when fewer replicas acknowledged (the sender's retry is then a
//! duplicate, and in that mode a duplicate rewrites its mark so that the `WAIT` covers the
//! original write too).
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

mod completions;
mod fields;
#[cfg(feature = "testing")]
mod fuzzing;
mod record;
mod schema;
mod scripts;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use ::redis::{
    RedisError, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery, now_ms},
    idempotency::{StoreError, StoreErrorKind},
};
use agentsync_webhooks_redis::{
    connection::RedisConnection,
    persistence::{self, PersistenceReport},
    shared::store_error,
};

#[cfg(feature = "testing")]
pub use self::fuzzing::decode_entry_for_fuzzing;
use self::{
    completions::{Completion, Completions},
    fields::{Fields, Mended},
    scripts::*,
};
use crate::{
    backend::{
        Backend, ClaimToken, Claimed, ClaimedOrder, DEFAULT_KEY_RETENTION, DeadLetter, EventOrder,
        Health, Job, Purged, QueueFuture, QueueStats, Receipt, attempt_count, duration_ms,
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

/// The partitions of a queue by default: one. It keeps the layout of earlier versions (a queue
/// they wrote is read in place), costs one script per claim poll, and is all a single Redis
/// can use; on a Redis Cluster one partition lives on one primary, so set
/// [`RedisOptions::partitions`] to the number of primaries (or a multiple) to spread the queue.
pub const DEFAULT_PARTITIONS: usize = 1;
/// The most partitions a queue takes.
pub const MAX_PARTITIONS: usize = 256;

/// The consumer name in the group. Re-claim is by lease, not by consumer, so every instance may
/// share it; one name keeps the group from collecting a consumer per process start.
const CONSUMER: &str = "workers";
/// At most this many due retries are moved back into the stream per claim.
const PROMOTE_BATCH: usize = 100;
/// At most this many pending entries are checked for a missing lease per repair.
const REPAIR_BATCH: usize = 100;
/// At most this many jobs per claim, so that one script never holds Redis for long.
const MAX_CLAIM: usize = 1_000;
/// At most this many claim scripts per partition and claim while each stops at its bound of
/// entries held back for their key (64 past the wanted ones): about 2,000 entries read past
/// the held-back ones before the workers' next poll.
const CLAIM_ROUNDS: usize = 32;
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
    partitions: usize,
    require_persistence: bool,
    wait: Option<Wait>,
}

/// What each enqueue waits for before it answers: `WAIT` or `WAITAOF`, pipelined after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Replicas {
        replicas: u32,
        timeout: Duration,
    },
    Aof {
        local: bool,
        replicas: u32,
        timeout: Duration,
    },
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisOptions {
    /// [`DEFAULT_PREFIX`], [`DEFAULT_GROUP`], [`DEFAULT_TIMEOUT`], [`DEFAULT_RETENTION`],
    /// [`DEFAULT_RECORD_RETENTION`], [`DEFAULT_DEAD_RETENTION`], [`DEFAULT_PARTITIONS`]; a
    /// persistence that would lose a 2xx is warned about, not refused; an enqueue answers once
    /// the primary applied it.
    pub fn new() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            group: DEFAULT_GROUP.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            retention: DEFAULT_RETENTION,
            record_retention: DEFAULT_RECORD_RETENTION,
            dead_retention: DEFAULT_DEAD_RETENTION,
            clock_offset: Duration::ZERO,
            partitions: DEFAULT_PARTITIONS,
            require_persistence: false,
            wait: None,
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

    /// Splits the queue into `n` partitions (1 to [`MAX_PARTITIONS`]; default
    /// [`DEFAULT_PARTITIONS`]), each under its own hash tag, so that on a Redis Cluster the
    /// queue is spread over the primaries instead of living on one. A keyed delivery (an
    /// ordering key, issue 23) is stored in its key's partition (FNV-1a of the key, modulo
    /// `n`), so that the key's jobs are ordered, one at a time and checked for staleness as on
    /// one partition; an unkeyed one in its `webhook-id`'s (FNV-1a of the id). A retry of a
    /// delivery has the same body, hence the same key and partition, so its de-duplication
    /// and its enqueue stay one script; the workers claim from every partition in turn; dead
    /// letters, stats, the record's lists and counts and the queries by id cover them all.
    ///
    /// Every instance on a queue must use the same `n`, and changing it on a queue that holds
    /// jobs strands them in partitions no id maps to any more: drain the queue first (see
    /// "Partitions" in the module docs).
    ///
    /// ```
    /// use agentsync_webhooks_queue::redis::RedisOptions;
    ///
    /// let options = RedisOptions::new().partitions(3); // a cluster of 3 primaries
    /// # let _ = options;
    /// ```
    pub fn partitions(mut self, n: usize) -> Self {
        self.partitions = n;
        self
    }

    /// Refuses to connect, naming each setting and its fix, when Redis would not keep a
    /// delivery answered 2xx across a restart (no AOF: `appendonly no`, with or without RDB
    /// save points; `appendfsync no`) or may evict its keys (`maxmemory-policy` other than
    /// `noeviction`), or when its persistence cannot be read at all. Without it (the default)
    /// the same findings are logged as warnings. `?persistence=required` in a queue URL.
    pub fn require_persistence(mut self) -> Self {
        self.require_persistence = true;
        self
    }

    /// Makes a 2xx mean "on `replicas` replicas": each enqueue is followed, in the same round
    /// trip, by `WAIT replicas timeout`; when fewer acknowledged within `timeout` the
    /// delivery is answered 503 with `Retry-After` (it is stored: the sender's retry is then a
    /// duplicate, answered 200 once the replicas have it). Keep `timeout` well under the
    /// [`timeout`](Self::timeout) and the sender's 5 s. `?wait_replicas=N&wait_timeout_ms=MS`
    /// in a queue URL.
    ///
    /// Without it an enqueue answers once the primary applied it, and a failover to a replica
    /// that had not received it yet loses it (asynchronous replication; BENCHMARKS.md has the
    /// figures measured on a 6-node cluster).
    ///
    /// ```
    /// use std::time::Duration;
    /// use agentsync_webhooks_queue::redis::RedisOptions;
    ///
    /// let options = RedisOptions::new().wait_for_replicas(1, Duration::from_millis(500));
    /// # let _ = options;
    /// ```
    pub fn wait_for_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = Some(Wait::Replicas { replicas, timeout });
        self
    }

    /// Makes a 2xx mean "fsynced to the append-only file" (`local`: on the primary) "and on
    /// `replicas` replicas' AOF": `WAITAOF` (Redis 7.2 and later) pipelined after each enqueue,
    /// 503 with `Retry-After` when not reached within `timeout`. Connecting to an older Redis
    /// fails, naming its version. Choose it over [`wait_for_replicas`](Self::wait_for_replicas)
    /// when `appendfsync everysec` is set and the machine itself may crash (`WAIT` counts a
    /// replica that has the write in memory; `WAITAOF` one that has it on disk).
    pub fn wait_for_aof(mut self, local: bool, replicas: u32, timeout: Duration) -> Self {
        self.wait = Some(Wait::Aof {
            local,
            replicas,
            timeout,
        });
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

/// The keys of one partition of a queue.
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
    held: String,
    quarantine: String,
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
            held: format!("{prefix}k:held"),
            quarantine: format!("{prefix}quarantine"),
        }
    }

    fn id_mark(&self, webhook_id: &str) -> String {
        format!("{}id:{webhook_id}", self.prefix)
    }

    fn claim(&self, token: &ClaimToken) -> String {
        format!("{}claim:{}", self.prefix, token.as_str())
    }
}

/// The key prefix of each of `n` partitions under `prefix`: the prefix itself for one
/// partition when it already has a hash tag or the server is a single Redis (the layout of
/// earlier versions); else `<prefix>{<tag>}:`, the tag chosen so that partition `i` of `n`
/// hashes into the `i`-th `n`-th of the 16,384 slots (where a cluster's evenly split primaries
/// each own one).
fn partition_prefixes(prefix: &str, n: usize, cluster: bool) -> Vec<String> {
    if n == 1 && (!cluster || has_hash_tag(prefix)) {
        return vec![prefix.to_owned()];
    }
    (0..n)
        .map(|i| format!("{prefix}{{{}}}:", partition_tag(i, n)))
        .collect()
}

/// The tag of partition `i` of `n`: `i`, or `i.j` for the first `j` whose slot falls in the
/// partition's share of the slots. Depends on nothing but `i` and `n`.
fn partition_tag(i: usize, n: usize) -> String {
    let low = i * SLOTS / n;
    let high = (i + 1) * SLOTS / n;
    std::iter::once(i.to_string())
        .chain((0..).map(|j| format!("{i}.{j}")))
        .find(|tag| (low..high).contains(&usize::from(slot_of(tag.as_bytes()))))
        .unwrap_or_else(|| i.to_string())
}

/// Whether `key` has a Redis Cluster hash tag: a `{` followed later by a `}` with something
/// between.
fn has_hash_tag(key: &str) -> bool {
    key.find('{')
        .and_then(|open| key[open + 1..].find('}'))
        .is_some_and(|close| close > 0)
}

/// The Redis Cluster slots.
const SLOTS: usize = 16_384;

/// The slot of `key` (no hash tag handling: the tags here are the whole key): CRC16/XMODEM
/// modulo 16,384, as Redis Cluster computes it.
fn slot_of(key: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in key {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16_384
}

/// The partition of `webhook_id` among `n`: FNV-1a (64 bits) of its bytes, modulo `n`. Stable
/// across builds and platforms (every instance must agree).
fn partition_of(webhook_id: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in webhook_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    usize::try_from(hash % n as u64).unwrap_or(0)
}

/// A [`Backend`] on Redis Streams, shared by every instance that connects to the same Redis (or
/// Redis Cluster) and prefix. Cheap to clone: the connection is one multiplexed,
/// auto-reconnecting connection (one per node on a cluster).
#[derive(Clone)]
pub struct RedisBackend {
    connection: RedisConnection,
    /// The partitions' keys (one by default).
    parts: Arc<[Keys]>,
    /// Which partition the next claim starts with.
    rotation: Arc<AtomicUsize>,
    group: String,
    timeout: Duration,
    retention_secs: u64,
    record_retention_ms: i64,
    dead_retention_ms: i64,
    clock_offset_ms: i64,
    wait: Option<Wait>,
    persistence: Option<Arc<PersistenceReport>>,
    /// Until when (ms, this instance's clock) a keyed enqueue first looks for its id in the
    /// id's own partition: a partitioned queue written by an earlier layout stored every
    /// delivery there (see "Layout versions" in the module docs); 0 when not.
    legacy_until_ms: Arc<AtomicI64>,
    /// The completions that arrive while one is in flight share the next script.
    completions: Arc<Completions>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection's Debug shows the address; credentials stay out of it.
        f.debug_struct("RedisBackend")
            .field("prefix", &self.parts[0].prefix)
            .field("partitions", &self.parts.len())
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

    /// Connects to `url` (`redis://...`, or `redis+cluster://HOST:PORT[,HOST:PORT...]` for a
    /// Redis Cluster) with `options`, failing if Redis does not answer now; checks its
    /// persistence (warning, or refusing with
    /// [`require_persistence`](RedisOptions::require_persistence)); creates the streams and
    /// their consumer group if they do not exist; refuses if another group reads them.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        if options.partitions == 0 || options.partitions > MAX_PARTITIONS {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!("RedisOptions::partitions takes 1 to {MAX_PARTITIONS}"),
            ));
        }
        let connection = RedisConnection::connect(url, options.timeout).await?;
        let report = persistence::check(&connection).await;
        if options.require_persistence {
            report.require("the queue")?;
        }
        report.log("the queue");
        let mut backend = Self::from_connection(connection, options);
        backend.persistence = Some(Arc::new(report));
        backend.check_wait().await?;
        backend.prepare().await?;
        Ok(backend)
    }

    /// A backend on a connection manager you configured yourself (TLS, credentials, RESP3...;
    /// [`connection_config`](Self::connection_config) gives the bounds `connect` uses). Call
    /// [`prepare`](Self::prepare) before using it (the consumer group is otherwise created by
    /// the first claim, but a queue of an older layout is not upgraded). Its persistence is not
    /// checked.
    pub fn from_connection_manager(connection: ConnectionManager, options: RedisOptions) -> Self {
        Self::from_connection(RedisConnection::Single(connection), options)
    }

    /// [`from_connection_manager`](Self::from_connection_manager) for a connection to a single
    /// Redis or a cluster. A partition count out of range is taken as 1 to [`MAX_PARTITIONS`].
    pub fn from_connection(connection: RedisConnection, options: RedisOptions) -> Self {
        let retention_secs = options.retention.as_secs().clamp(1, TEN_YEARS_MS / 1_000);
        let retention_ms = i64::try_from(retention_secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
        let partitions = options.partitions.clamp(1, MAX_PARTITIONS);
        if partitions > 1 && has_hash_tag(&options.prefix) {
            tracing::warn!(
                prefix = %options.prefix,
                "the queue's prefix has a hash tag: its {partitions} partitions share that one \
                 slot (one cluster node); drop the tag from the prefix to spread them"
            );
        }
        let parts: Vec<Keys> =
            partition_prefixes(&options.prefix, partitions, connection.is_cluster())
                .iter()
                .map(|prefix| Keys::new(prefix))
                .collect();
        let parts: Arc<[Keys]> = parts.into();
        let completions = Arc::new(Completions::new(completions::Engine {
            connection: connection.clone(),
            parts: Arc::clone(&parts),
            group: options.group.clone(),
            retention_secs,
            timeout: options.timeout,
        }));
        Self {
            connection,
            parts,
            rotation: Arc::new(AtomicUsize::new(0)),
            group: options.group,
            timeout: options.timeout,
            retention_secs,
            record_retention_ms: duration_ms(options.record_retention).max(retention_ms),
            dead_retention_ms: duration_ms(options.dead_retention),
            clock_offset_ms: duration_ms(options.clock_offset),
            wait: options.wait,
            persistence: None,
            legacy_until_ms: Arc::new(AtomicI64::new(0)),
            completions,
        }
    }

    /// The connection settings [`connect_with`](Self::connect_with) uses for `timeout`
    /// ([`RedisOptions::timeout`]) on a single Redis: `timeout` to connect and per response,
    /// two quick reconnection attempts, then the next call tries again.
    pub fn connection_config(timeout: Duration) -> ConnectionManagerConfig {
        agentsync_webhooks_redis::connection::manager_config(timeout)
    }

    /// What the persistence check found at connect (`None` for a backend built from a
    /// connection).
    pub fn persistence(&self) -> Option<&PersistenceReport> {
        self.persistence.as_deref()
    }

    /// The key prefix of each partition (the options' prefix, with a partition's hash tag when
    /// partitioned or on a cluster).
    pub fn partition_prefixes(&self) -> Vec<&str> {
        self.parts.iter().map(|keys| keys.prefix.as_str()).collect()
    }

    /// The partition an unkeyed delivery of `webhook_id` is stored in (0 to the partition
    /// count - 1): FNV-1a of the id modulo the count. A keyed delivery is stored in its
    /// ordering key's partition instead ([`partition_of_key`](Self::partition_of_key)).
    pub fn partition(&self, webhook_id: &str) -> usize {
        partition_of(webhook_id, self.parts.len())
    }

    /// The partition every delivery of the ordering key `key` is stored in: FNV-1a of the key
    /// modulo the partition count, so that the key's jobs, its running job and its newest
    /// done share one slot.
    pub fn partition_of_key(&self, key: &str) -> usize {
        partition_of(key, self.parts.len())
    }

    /// The partition a delivery is stored in: its ordering key's when keyed, else its id's.
    /// A retry or a portal resend of a delivery has the same body, hence the same key and the
    /// same partition, where its id mark is: de-duplication stays one script.
    fn partition_for(&self, webhook_id: &str, order: Option<&EventOrder>) -> usize {
        match order {
            Some(order) => partition_of(&order.key, self.parts.len()),
            None => partition_of(webhook_id, self.parts.len()),
        }
    }

    /// The keys of the partition the settled `job` was claimed from (its receipt names it),
    /// or `None` for a receipt that is not one of ours.
    fn job_part<'a, 'j>(&'a self, job: &'j Job) -> Option<(&'a Keys, &'j str, &'j str)> {
        let (partition, entry, count) = self.job_partition(job)?;
        Some((&self.parts[partition], entry, count))
    }

    /// [`job_part`](Self::job_part) with the partition's index rather than its keys.
    fn job_partition<'j>(&self, job: &'j Job) -> Option<(usize, &'j str, &'j str)> {
        let (entry, count, partition) = parse_receipt(&job.receipt)?;
        let partition = match partition {
            Some(partition) => partition,
            None if self.parts.len() == 1 => 0,
            None => return None,
        };
        (partition < self.parts.len()).then_some((partition, entry, count))
    }

    /// The keys of the partition that holds `webhook_id`'s record or id mark: its id's own
    /// partition first (every unkeyed delivery), then the others (a keyed delivery is in its
    /// key's); its id's partition when none holds it (the scripts then find nothing). One
    /// `EXISTS` per partition looked at; none for a queue of one partition.
    async fn locate(&self, webhook_id: &str) -> Result<&Keys, StoreError> {
        let n = self.parts.len();
        let home = partition_of(webhook_id, n);
        if n == 1 {
            return Ok(&self.parts[0]);
        }
        for i in 0..n {
            let keys = &self.parts[(home + i) % n];
            if self.holds(keys, webhook_id).await? {
                return Ok(keys);
            }
        }
        Ok(&self.parts[home])
    }

    /// Whether the partition of `keys` holds `webhook_id`'s record or id mark (one `EXISTS`).
    async fn holds(&self, keys: &Keys, webhook_id: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let found: i64 = self
            .bounded(
                "find a delivery's partition",
                ::redis::cmd("EXISTS")
                    .arg(format!("{}d:{webhook_id}", keys.prefix))
                    .arg(keys.id_mark(webhook_id))
                    .query_async(&mut connection),
            )
            .await?;
        Ok(found > 0)
    }

    /// How many of the newest `max` deliveries that `filter` keeps each partition holds: the
    /// partitions' lists merged as [`list`](Backend::list) merges them, each delivery counted
    /// in the partition it was listed from (a keyed delivery is not in its id's partition).
    async fn newest_shares(
        &self,
        filter: &DeliveryFilter,
        max: usize,
    ) -> Result<Vec<usize>, StoreError> {
        let mut share = vec![0_usize; self.parts.len()];
        let mut taken = 0;
        let mut after: Option<Cursor> = None;
        while taken < max {
            let limit = max - taken;
            let mut all: Vec<(i64, String, usize)> = Vec::new();
            let mut horizon: Option<(i64, String)> = None;
            for (partition, keys) in self.parts.iter().enumerate() {
                let page = self.list_in(keys, filter, after.as_ref(), limit).await?;
                all.extend(
                    page.deliveries
                        .into_iter()
                        .map(|one| (one.received_at_ms, one.webhook_id, partition)),
                );
                if let Some(next) = page.next {
                    let next = (next.received_at_ms, next.webhook_id);
                    if horizon.as_ref().is_none_or(|h| next > *h) {
                        horizon = Some(next);
                    }
                }
            }
            all.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
            // Nothing past where a partition's page stopped: what it holds beyond is unread.
            if let Some((at, id)) = &horizon {
                all.retain(|(received, webhook_id, _)| (*received, webhook_id) >= (*at, id));
            }
            let cut = all.len() > limit;
            all.truncate(limit);
            for (_, _, partition) in &all {
                share[*partition] += 1;
                taken += 1;
            }
            let next = if cut {
                all.last().map(|(received, id, _)| (*received, id.clone()))
            } else {
                horizon
            };
            match next {
                Some((received_at_ms, webhook_id)) if taken < max => {
                    after = Some(Cursor {
                        received_at_ms,
                        webhook_id,
                    });
                }
                _ => break,
            }
        }
        Ok(share)
    }

    /// `WAITAOF` needs Redis 7.2: refused at connect on an older server, naming its version.
    async fn check_wait(&self) -> Result<(), StoreError> {
        if !matches!(self.wait, Some(Wait::Aof { .. })) {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        let info: String = self
            .bounded(
                "read the server's version",
                ::redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut connection),
            )
            .await?;
        let version = info
            .lines()
            .find_map(|line| line.trim().strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .to_owned();
        let mut parts = version
            .split('.')
            .map(|part| part.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) < (7, 2) {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!(
                    "RedisOptions::wait_for_aof needs WAITAOF, which Redis has from 7.2 on; \
                     this server is Redis {version}: use wait_for_replicas, or upgrade Redis"
                ),
            ));
        }
        Ok(())
    }

    /// Creates the stream and the group unless they exist, refusing another group's stream.
    async fn ensure_group(&self, keys: &Keys) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ENSURE_GROUP.key(&keys.stream);
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
        self.bounded_by(what, self.timeout, call).await
    }

    /// Runs one Redis call within `timeout`.
    async fn bounded_by<T>(
        &self,
        what: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        bounded_call(what, timeout, call).await
    }

    async fn enqueue_delivery(
        &self,
        delivery: &ReceivedDelivery,
        order: Option<&EventOrder>,
    ) -> Result<Enqueued, StoreError> {
        let mut partition = self.partition_for(&delivery.webhook_id, order);
        let mut order = order;
        let home = partition_of(&delivery.webhook_id, self.parts.len());
        if partition != home
            && now_ms() < self.legacy_until_ms.load(Ordering::Relaxed)
            && self.holds(&self.parts[home], &delivery.webhook_id).await?
        {
            // Stored by the earlier layout in its id's partition, without its key: its retry
            // or resend is answered there, as it was stored.
            partition = home;
            order = None;
        }
        let keys = &self.parts[partition];
        // EVALSHA by hand (ScriptInvocation does not hand out its command), so that it can be
        // pipelined with WAIT.
        let mut eval = ::redis::cmd("EVALSHA");
        eval.arg(ENQUEUE.get_hash())
            .arg(2)
            .arg(keys.id_mark(&delivery.webhook_id))
            .arg(&keys.stream)
            .arg(&delivery.webhook_id)
            .arg(&delivery.event_type)
            .arg(delivery.webhook_timestamp)
            .arg(&delivery.signature)
            .arg(delivery.received_at_ms)
            .arg(delivery.body.as_ref())
            .arg(group_of(&delivery.event_type))
            .arg(&keys.prefix)
            .arg(if self.wait.is_some() { "1" } else { "0" })
            .arg(order.map_or("", |order| order.key.as_str()))
            .arg(order.map_or_else(String::new, |order| order.occurred_at_ms.to_string()))
            .arg(
                crate::record::occurred_at_to_store(delivery, order)
                    .map_or_else(String::new, |ms| ms.to_string()),
            );
        let stored = match self.wait {
            None => {
                let mut connection = self.connection.clone();
                let first: Result<i64, StoreError> = self
                    .bounded("enqueue", eval.query_async(&mut connection))
                    .await;
                match first {
                    Err(err) if is_noscript(&err) => {
                        self.load_enqueue().await?;
                        self.bounded("enqueue", eval.query_async(&mut connection))
                            .await?
                    }
                    other => other?,
                }
            }
            Some(wait) => self.enqueue_and_wait(eval, wait).await?,
        };
        Ok(if stored == 1 {
            Enqueued::New
        } else {
            Enqueued::Duplicate
        })
    }

    /// Loads the enqueue script (after `NOSCRIPT`: a flushed script cache, a new primary).
    async fn load_enqueue(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: String = self
            .bounded(
                "load the enqueue script",
                ENQUEUE.load_async(&mut connection),
            )
            .await?;
        Ok(())
    }

    /// The enqueue script and `WAIT` (or `WAITAOF`) in one pipeline, one round trip: the
    /// script's reply once enough replicas acknowledged, else an error (a 503 with
    /// `Retry-After`; the delivery is stored, so the sender's retry is a duplicate).
    async fn enqueue_and_wait(&self, eval: ::redis::Cmd, wait: Wait) -> Result<i64, StoreError> {
        let (wait_cmd, wanted, timeout) = match wait {
            Wait::Replicas { replicas, timeout } => {
                let mut cmd = ::redis::cmd("WAIT");
                cmd.arg(replicas).arg(duration_ms(timeout).max(1));
                (cmd, (0, replicas), timeout)
            }
            Wait::Aof {
                local,
                replicas,
                timeout,
            } => {
                let mut cmd = ::redis::cmd("WAITAOF");
                cmd.arg(u32::from(local))
                    .arg(replicas)
                    .arg(duration_ms(timeout).max(1));
                (cmd, (u32::from(local), replicas), timeout)
            }
        };
        let mut pipe = ::redis::pipe();
        pipe.add_command(eval).add_command(wait_cmd);
        let mut connection = self.connection.clone();
        let bound = self.timeout + timeout;
        let mut reply: RedisResultPair = self
            .bounded_by("enqueue", bound, pipe.query_async(&mut connection))
            .await;
        if let Err(err) = &reply
            && is_noscript(err)
        {
            self.load_enqueue().await?;
            reply = self
                .bounded_by("enqueue", bound, pipe.query_async(&mut connection))
                .await;
        }
        let (stored, acked) = reply?;
        let (local, replicas) = match acked {
            Acked::Wait(replicas) => (wanted.0, replicas),
            Acked::WaitAof(local, replicas) => (local, replicas),
        };
        if local < wanted.0 || replicas < wanted.1 {
            return Err(StoreError::new(
                StoreErrorKind::Unreachable,
                format!(
                    "Redis enqueue stored the delivery but only {replicas} of {} replicas \
                     acknowledged it within {timeout:?}{}: answered 503, the sender's retry \
                     is a duplicate",
                    wanted.1,
                    if local < wanted.0 {
                        " and the primary had not fsynced it"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(stored)
    }

    /// Up to `max` jobs from every partition, starting with the next one in turn, so that each
    /// partition is served first as often as the others.
    async fn claim_jobs(
        &self,
        token: &ClaimToken,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let n = self.parts.len();
        let start = self.rotation.fetch_add(1, Ordering::Relaxed) % n;
        let mut jobs = Vec::new();
        for i in 0..n {
            let wanted = max.saturating_sub(jobs.len());
            if wanted == 0 {
                break;
            }
            jobs.extend(self.claim_in((start + i) % n, token, wanted, lease).await?);
        }
        Ok(jobs)
    }

    async fn abandon_claim(&self, token: &ClaimToken) -> Result<u64, StoreError> {
        let mut given_back = 0;
        for keys in self.parts.iter() {
            given_back += self.abandon_in(keys, token).await?;
        }
        Ok(given_back)
    }

    /// The dead letters of every partition, oldest first (an entry's id is its burial time).
    async fn dead_letter_list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut all = Vec::new();
        for keys in self.parts.iter() {
            all.extend(self.dead_letters_in(keys, limit).await?);
        }
        if self.parts.len() > 1 {
            all.sort_by_key(|(entry, _)| parse_entry_id(entry));
            all.truncate(limit);
        }
        Ok(all.into_iter().map(|(_, letter)| letter).collect())
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let (mut depth, mut dead, mut oldest) = (0, 0, None::<i64>);
        for keys in self.parts.iter() {
            let (d, x, o) = self.stats_in(keys).await?;
            depth += d;
            dead += x;
            oldest = match (oldest, o) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        // `received_at_ms` is the receiving instance's clock, so the age is read on this one's.
        let now = now_ms().saturating_add(self.clock_offset_ms);
        let oldest_age = oldest.map(|received| {
            Duration::from_millis(u64::try_from(now.saturating_sub(received)).unwrap_or(0))
        });
        Ok(QueueStats {
            depth,
            oldest_age,
            dead,
        })
    }

    async fn purge_expired(&self) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        for keys in self.parts.iter() {
            let part = self.purge_in(keys).await?;
            purged.done += part.done;
            purged.dead += part.dead;
            purged.more |= part.more;
        }
        Ok(purged)
    }

    /// Every primary answers `PING`, and the stats can be read; the persistence check's
    /// findings come with it, and a warning per partition whose quarantine holds entries.
    async fn check_health(&self) -> Result<Health, StoreError> {
        let mut connection = self.connection.clone();
        let replies = self
            .bounded(
                "health check",
                connection.on_each_primary(::redis::cmd("PING")),
            )
            .await?;
        for (node, reply) in replies {
            if let ::redis::Value::ServerError(err) = reply {
                return Err(StoreError::new(
                    StoreErrorKind::Unreachable,
                    format!(
                        "Redis{} refused PING: {}",
                        if node.is_empty() {
                            String::new()
                        } else {
                            format!(" node {node}")
                        },
                        err.code()
                    ),
                ));
            }
        }
        self.queue_stats().await?;
        let mut health = Health::new("redis");
        if let Some(report) = &self.persistence {
            health.warnings = report.lines();
        }
        for keys in self.parts.iter() {
            let quarantined: u64 = self
                .bounded(
                    "health check",
                    ::redis::cmd("XLEN")
                        .arg(&keys.quarantine)
                        .query_async(&mut connection),
                )
                .await?;
            if quarantined > 0 {
                health.warnings.push(format!(
                    "{quarantined} stream {} could not be decoded and had no webhook id or body \
                     to bury: kept, never run, in the stream {} (each with its reason and raw \
                     fields: inspect with XRANGE, remove with XDEL)",
                    if quarantined == 1 { "entry" } else { "entries" },
                    keys.quarantine
                ));
            }
        }
        Ok(health)
    }

    /// Claims up to `max` jobs from partition `partition`; each receipt names the partition
    /// (when there are several), so that settling reaches it whatever the job's id.
    async fn claim_in(
        &self,
        partition: usize,
        token: &ClaimToken,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let keys = &self.parts[partition];
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let max = max.min(MAX_CLAIM);
        let mut claimed: Vec<ClaimedEntry> = Vec::new();
        // A script that stopped at its bound of entries held back for their key (`more`) is
        // run again at once: a key's woken head is at the stream's end, behind every entry
        // not read yet, and a claim that returned nothing would wait for the next poll.
        for _ in 0..CLAIM_ROUNDS {
            let mut invocation = CLAIM.key(&keys.stream);
            invocation
                .key(&keys.leases)
                .key(&keys.scheduled)
                .key(&keys.due)
                .key(keys.claim(token))
                .key(&keys.repair)
                .arg(&self.group)
                .arg(CONSUMER)
                .arg(max - claimed.len())
                .arg(lease_ms(lease))
                .arg(PROMOTE_BATCH)
                .arg(REPAIR_BATCH)
                .arg(&keys.prefix)
                .arg(token.worker());
            let (jobs, more): (Vec<ClaimedEntry>, i64) = self
                .bounded("claim", invocation.invoke_async(&mut connection))
                .await?;
            claimed.extend(jobs);
            if more == 0 || claimed.len() >= max {
                break;
            }
        }
        // An entry whose fields do not decode (no id, a field that is not a number: not what
        // this library writes) never fails the claim, which would give back every job with
        // it: it is taken out of the pending list without running, buried as dead with the
        // reason or kept in the quarantine, and its key released.
        let mut jobs = Vec::with_capacity(claimed.len());
        for (entry, count, fields, newest) in claimed {
            match Fields::parse_keeping(fields) {
                Ok(fields) => jobs.push(Claimed {
                    order: fields.order.map(|(key, occurred_at_ms)| ClaimedOrder {
                        key,
                        occurred_at_ms,
                        newest_done_ms: newest.parse().ok(),
                    }),
                    job: Job {
                        attempt: attempt_count(fields.attempts.saturating_add(count)),
                        delivery: fields.delivery,
                        receipt: if self.parts.len() == 1 {
                            Receipt(format!("{entry}/{count}"))
                        } else {
                            Receipt(format!("{entry}/{count}/{partition}"))
                        },
                    },
                }),
                Err((err, raw)) => {
                    self.bury_broken(keys, &entry, count, &raw, &err, token)
                        .await;
                }
            }
        }
        Ok(jobs)
    }

    /// Takes the claimed entry `entry` (delivery count `count`, fields `raw`, which do not
    /// decode: `err`) out of the pending list in one script: buried as a dead letter whose
    /// fields decode (mended, see [`Mended`]) when it has a webhook id and a body, else kept in
    /// the `quarantine` stream with its raw fields; the reason names each flaw, its ordering
    /// key is released. A failure is logged, not returned: the entry stays pending, and the
    /// claim after its lease tries again.
    async fn bury_broken(
        &self,
        keys: &Keys,
        entry: &str,
        count: i64,
        raw: &[Vec<u8>],
        err: &StoreError,
        token: &ClaimToken,
    ) {
        let mended = Mended::of(raw, entry);
        let what = if mended.flaws.is_empty() {
            err.to_string()
        } else {
            mended.flaws.join("; ")
        };
        let (verb, fields, attempts) = match &mended.dead {
            Some((fields, attempts)) => ("buried", fields.as_slice(), *attempts),
            None => ("quarantined", &[][..], 0),
        };
        let reason =
            format!("{verb} without running: its stream entry could not be decoded: {what}");
        let reason = bounded_error(&reason).to_owned();
        let mut connection = self.connection.clone();
        let mut invocation = BURY_BROKEN.key(&keys.stream);
        invocation
            .key(&keys.leases)
            .key(&keys.dead)
            .key(&keys.dead_index)
            .key(&keys.quarantine)
            .arg(&self.group)
            .arg(entry)
            .arg(count)
            .arg(&reason)
            .arg(&keys.prefix)
            .arg(attempts);
        for (name, value) in fields {
            invocation.arg(name.as_slice()).arg(value.as_slice());
        }
        let moved: Result<i64, StoreError> = self
            .bounded(
                "bury an entry that does not decode",
                invocation.invoke_async(&mut connection),
            )
            .await;
        match moved {
            Ok(0) => {}
            Ok(1) => tracing::error!(
                entry = %entry,
                stream = %keys.stream,
                worker = %token.worker(),
                reason = %reason,
                "a queue entry could not be decoded: buried as dead without running (its \
                 dead letter and record show what was wrong)"
            ),
            Ok(_) => tracing::error!(
                entry = %entry,
                stream = %keys.stream,
                quarantine = %keys.quarantine,
                worker = %token.worker(),
                reason = %reason,
                "a queue entry could not be decoded and has no webhook id or body to bury: \
                 kept in the quarantine stream without running (inspect it with XRANGE)"
            ),
            Err(store) => tracing::error!(
                entry = %entry,
                stream = %keys.stream,
                error = %err,
                store_error = %store,
                "a queue entry cannot be read as a delivery and could not be buried; it stays \
                 pending, and is tried again once its lease ends"
            ),
        }
    }

    async fn abandon_in(&self, keys: &Keys, token: &ClaimToken) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ABANDON.key(&keys.stream);
        invocation
            .key(&keys.leases)
            .key(keys.claim(token))
            .arg(&self.group)
            .arg(&keys.prefix);
        self.bounded("abandon a claim", invocation.invoke_async(&mut connection))
            .await
    }

    /// Completes `job` with the attempt's `outcome` (`ok`, or `stale`: the key's newest kept).
    async fn complete_as(&self, job: &Job, outcome: &'static str) -> Result<bool, StoreError> {
        let Some((partition, entry, count)) = self.job_partition(job) else {
            return Ok(false);
        };
        let keys = &self.parts[partition];
        let batched = self
            .completions
            .call(Completion {
                partition,
                entry: entry.to_owned(),
                count: count.to_owned(),
                outcome,
                webhook_id: job.delivery.webhook_id.clone(),
            })
            .await;
        if let Some(answer) = batched {
            return answer;
        }
        // No runtime to batch on: on its own.
        let mark = keys.id_mark(&job.delivery.webhook_id);
        let retention = self.retention_secs.to_string();
        self.settle(
            "complete",
            &COMPLETE,
            job,
            &[&mark],
            &[
                retention.as_bytes(),
                keys.prefix.as_bytes(),
                outcome.as_bytes(),
            ],
        )
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
        let Some((keys, entry, count)) = self.job_part(job) else {
            return Ok(false);
        };
        let mut connection = self.connection.clone();
        let mut invocation = script.key(&keys.stream);
        invocation
            .key(&keys.leases)
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

    async fn dead_letters_in(
        &self,
        keys: &Keys,
        limit: usize,
    ) -> Result<Vec<(String, DeadLetter)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let entries: Vec<(String, Vec<Vec<u8>>)> = self
            .bounded(
                "list dead letters",
                ::redis::cmd("XRANGE")
                    .arg(&keys.dead)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut connection),
            )
            .await?;
        entries
            .into_iter()
            .map(|(entry, fields)| {
                Fields::parse(fields).map(|fields| (entry, fields.into_dead_letter()))
            })
            .collect()
    }

    async fn dead_letter_by_id(&self, webhook_id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let keys = self.locate(webhook_id).await?;
        let mut connection = self.connection.clone();
        let mut invocation = DEAD_LETTER.key(&keys.dead);
        invocation.key(&keys.dead_index).arg(webhook_id);
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
        let keys = self.locate(webhook_id).await?;
        let mut connection = self.connection.clone();
        let mut invocation = REPLAY.key(&keys.stream);
        invocation
            .key(&keys.dead)
            .key(&keys.dead_index)
            .key(keys.id_mark(webhook_id))
            .arg(webhook_id)
            .arg(by)
            .arg(&keys.prefix)
            .arg(if done_too { "1" } else { "0" });
        let replayed: i64 = self
            .bounded("replay", invocation.invoke_async(&mut connection))
            .await?;
        Ok(replayed == 1)
    }

    async fn stats_in(&self, keys: &Keys) -> Result<(u64, u64, Option<i64>), StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = STATS.key(&keys.stream);
        invocation
            .key(&keys.due)
            .key(&keys.dead)
            .key(&keys.scheduled)
            .key(&keys.held);
        let (depth, dead, oldest): (u64, u64, String) = self
            .bounded("stats", invocation.invoke_async(&mut connection))
            .await?;
        Ok((depth, dead, oldest.parse::<i64>().ok()))
    }

    async fn purge_in(&self, keys: &Keys) -> Result<Purged, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = PURGE.key(&keys.dead);
        invocation
            .key(&keys.dead_index)
            .arg(self.dead_retention_ms)
            .arg(PURGE_BATCH)
            .arg(&keys.prefix)
            .arg(self.record_retention_ms)
            .arg(duration_ms(DEFAULT_KEY_RETENTION));
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

    /// `true`, partitioned or not: a keyed delivery is stored in its ordering key's partition,
    /// so the key's jobs, its running job and its newest done share one slot (see "Ordering
    /// keys" in the module docs).
    fn orders_events(&self) -> bool {
        true
    }

    /// Stores the key and occurred-at with the job, in the key's partition.
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
        Box::pin(self.complete_as(job, "stale"))
    }

    fn abandon<'a>(&'a self, token: &'a ClaimToken) -> QueueFuture<'a, u64> {
        Box::pin(self.abandon_claim(token))
    }

    fn complete<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(self.complete_as(job, "ok"))
    }

    fn retry<'a>(&'a self, job: &'a Job, after: Duration, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let Some((keys, _, _)) = self.job_part(job) else {
                return Ok(false);
            };
            let delay = delay_ms(after).to_string();
            self.settle(
                "retry",
                &RETRY,
                job,
                &[&keys.scheduled, &keys.due],
                &[
                    delay.as_bytes(),
                    bounded_error(error).as_bytes(),
                    keys.prefix.as_bytes(),
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
            let Some((keys, _, _)) = self.job_part(job) else {
                return Ok(false);
            };
            self.settle("release", &RELEASE, job, &[], &[keys.prefix.as_bytes()])
                .await
        })
    }

    fn bury<'a>(&'a self, job: &'a Job, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let Some((keys, _, _)) = self.job_part(job) else {
                return Ok(false);
            };
            let mark = keys.id_mark(&job.delivery.webhook_id);
            self.settle(
                "bury",
                &BURY,
                job,
                &[&keys.dead, &keys.dead_index, &mark],
                &[bounded_error(error).as_bytes(), keys.prefix.as_bytes()],
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

    /// Every primary answers `PING` and the stats can be read; the warnings are what the
    /// persistence check at connect found.
    fn health(&self) -> QueueFuture<'_, Health> {
        Box::pin(self.check_health())
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

/// Runs one Redis call within `timeout`; a `WRONGGROUP` refusal keeps its sentence.
async fn bounded_call<T>(
    what: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
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
            format!("Redis {what} took longer than {timeout:?}"),
        )),
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

/// A stream entry id (`<ms>-<seq>`) as numbers, for ordering entries of several streams.
fn parse_entry_id(entry: &str) -> (u64, u64) {
    let (ms, seq) = entry.split_once('-').unwrap_or((entry, "0"));
    (ms.parse().unwrap_or(u64::MAX), seq.parse().unwrap_or(0))
}

/// One job as the claim script answers it: its entry id, delivery count, fields, and its
/// key's newest done occurred-at (`''` for none).
type ClaimedEntry = (String, i64, Vec<Vec<u8>>, String);

/// The enqueue script's reply and what `WAIT` or `WAITAOF` counted.
type RedisResultPair = Result<(i64, Acked), StoreError>;

/// What `WAIT` (replicas) or `WAITAOF` (local, replicas) answered.
#[derive(Debug, Clone, Copy)]
enum Acked {
    Wait(u32),
    WaitAof(u32, u32),
}

impl ::redis::FromRedisValue for Acked {
    fn from_redis_value(value: ::redis::Value) -> Result<Self, ::redis::ParsingError> {
        match value {
            ::redis::Value::Array(items) => {
                let numbers: Vec<u32> = items
                    .into_iter()
                    .map(u32::from_redis_value)
                    .collect::<Result<_, _>>()?;
                Ok(Self::WaitAof(
                    numbers.first().copied().unwrap_or(0),
                    numbers.get(1).copied().unwrap_or(0),
                ))
            }
            other => u32::from_redis_value(other).map(Self::Wait),
        }
    }
}

/// Whether `err` is Redis's `NOSCRIPT` (the script cache was flushed, or a new node).
fn is_noscript(err: &StoreError) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<RedisError>())
        .is_some_and(|err| {
            err.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript)
        })
}

/// The entry id, delivery count and partition of one of our receipts
/// (`<ms>-<seq>/<count>`, then `/<partition>` when the queue has several), or `None` for
/// anything else (which then settles nothing rather than reach a script).
fn parse_receipt(receipt: &Receipt) -> Option<(&str, &str, Option<usize>)> {
    let (entry, rest) = receipt.0.split_once('/')?;
    let (count, partition) = match rest.split_once('/') {
        Some((count, partition)) => (count, Some(partition)),
        None => (rest, None),
    };
    let (ms, seq) = entry.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(ms) && digits(seq) && digits(count)) {
        return None;
    }
    let partition = match partition {
        Some(partition) if digits(partition) => Some(partition.parse().ok()?),
        Some(_) => return None,
        None => None,
    };
    Some((entry, count, partition))
}
