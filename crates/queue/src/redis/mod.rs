//! Redis Streams: a stream with a consumer group, so that every instance that shares the Redis
//! shares the work.
//!
//! # Keys (under a prefix, `agentsync-webhooks:queue:` by default)
//!
//! | key | type | holds |
//! |---|---|---|
//! | `id:<webhook-id>` | string | the de-duplication mark: set with `NX` at enqueue and kept without expiry while the job waits, runs, retries or is dead; kept for the retention once done |
//! | `stream` | stream, consumer group | the jobs waiting or running; a running job is pending in the group |
//! | `leases` | sorted set | stream entry id → lease end (ms): re-claim is by lease expiry |
//! | `scheduled` | stream | jobs waiting for a retry |
//! | `due` | sorted set | `scheduled` entry id → due time (ms) |
//! | `dead` | stream | the dead letters, oldest first |
//! | `dead-index` | hash | webhook-id → `dead` entry id |
//!
//! # Commands
//!
//! Every operation is one Lua script, so one round trip and one atomic step:
//!
//! - **enqueue**: `SET <prefix>id:<webhook-id> 1 NX` and, if it was set, `XADD`; a duplicate
//!   writes nothing. The mark has no expiry until the job is done: a job that retries longer
//!   than the retention still answers the sender's (or the portal's) resend as a duplicate.
//! - **claim**: moves the due retries from `scheduled` back into the stream, re-claims the
//!   entries whose lease expired with `XCLAIM` (which counts the delivery in the group's pending
//!   list), then reads new entries with `XREADGROUP ... >` (never `BLOCK`: the connection is
//!   shared and multiplexed; the workers poll). The attempt is the entry's earlier attempts (a
//!   field) plus its delivery counter (`XPENDING`).
//! - **complete**: `XACK` + `XDEL`, and the id mark kept for the retention from now.
//! - **retry**: `XACK` + `XDEL`, the job copied to `scheduled` with its due time in `due`.
//! - **extend**: the lease pushed back, and `XCLAIM ... JUSTID` with a min-idle of 0 to reset the
//!   entry's idle time (without counting a delivery).
//! - **bury**: `XACK` + `XDEL`, the job copied to `dead`; **replay** moves it back with its
//!   attempts reset.
//!
//! Settling checks the receipt (the entry id and its delivery count when claimed) against
//! `XPENDING`, so a worker whose job was re-claimed settles nothing.
//!
//! Why a `leases` set rather than `XAUTOCLAIM`'s min-idle: with `XAUTOCLAIM` the lease would be
//! whatever the *claiming* worker passes, not the lease the job was claimed or extended with, so
//! a job extended past the claimers' lease would be taken from a live worker.
//!
//! # Durability and topology
//!
//! An enqueue returns once Redis applied it; whether that survives a Redis crash is Redis's
//! persistence setting (`appendonly yes` with `appendfsync always` for every write, `everysec`
//! for at most a second lost). The scripts touch several keys under the prefix: on a Redis
//! Cluster, put a hash tag in the prefix (e.g. `{agentsync}:queue:`) so they share a slot.
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

use std::{
    future::Future,
    sync::LazyLock,
    time::{Duration, SystemTime},
};

use ::redis::{
    RedisError, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery, now_ms},
    idempotency::{StoreError, StoreErrorKind},
};
use agentsync_webhooks_redis::shared::{open, store_error};
use bytes::Bytes;

use crate::backend::{
    Backend, DeadLetter, Job, QueueFuture, QueueStats, Receipt, attempt_count, duration_ms,
    system_time_ms,
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

/// The consumer name in the group. Re-claim is by lease, not by consumer, so every instance may
/// share it; one name keeps the group from collecting a consumer per process start.
const CONSUMER: &str = "workers";
/// At most this many due retries are moved back into the stream per claim.
const PROMOTE_BATCH: usize = 100;

/// Lua helpers shared by the scripts: read a field of an entry, rewrite fields, check a receipt.
const HELPERS: &str = r"
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end
local function with(fields, changes)
  local out = {}
  for i = 1, #fields, 2 do
    local name = fields[i]
    if changes[name] == nil then
      out[#out + 1] = name
      out[#out + 1] = fields[i + 1]
    end
  end
  for name, value in pairs(changes) do
    if value ~= false then
      out[#out + 1] = name
      out[#out + 1] = value
    end
  end
  return out
end
local function held(stream, group, entry, count)
  local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
  return pending[1] ~= nil and pending[1][4] == tonumber(count)
end
local function entry_fields(stream, entry)
  local found = redis.call('XRANGE', stream, entry, entry)
  if found[1] then return found[1][2] end
  return nil
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{HELPERS}{body}"))
}

/// KEYS: id mark, stream. ARGV: id, type, timestamp, signature, received, body. `1` new, `0`
/// duplicate.
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('SET', KEYS[1], '1', 'NX') then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'type', ARGV[2], 'ts', ARGV[3], 'sig', ARGV[4],
  'recv', ARGV[5], 'body', ARGV[6], 'a', '0')
return 1
",
    )
});

/// KEYS: stream, leases, scheduled, due. ARGV: group, consumer, max, now (ms), lease end (ms),
/// promote batch. Returns `{entry id, delivery count, fields}` per claimed job.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local stream, leases, scheduled, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, consumer, max, now, lease_end = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]

for _, sid in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, ARGV[6])) do
  local fields = entry_fields(scheduled, sid)
  if fields then
    redis.call('XADD', stream, '*', unpack(fields))
  end
  redis.call('XDEL', scheduled, sid)
  redis.call('ZREM', due, sid)
end

local claimed = {}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, max)) do
  local taken = redis.pcall('XCLAIM', stream, group, consumer, 0, entry)
  if type(taken) == 'table' and taken[1] and type(taken[1][2]) == 'table' then
    local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
    local count = 1
    if pending[1] then count = pending[1][4] end
    redis.call('ZADD', leases, lease_end, entry)
    claimed[#claimed + 1] = {entry, tostring(count), taken[1][2]}
  else
    redis.call('ZREM', leases, entry)
  end
end

local wanted = max - #claimed
if wanted > 0 then
  local read = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', wanted, 'STREAMS', stream, '>')
  if type(read) == 'table' and read.err then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', wanted, 'STREAMS', stream, '>')
  end
  if read and read[1] then
    for _, item in ipairs(read[1][2]) do
      redis.call('ZADD', leases, lease_end, item[1])
      claimed[#claimed + 1] = {item[1], '1', item[2]}
    end
  end
end
return claimed
",
    )
});

/// KEYS: stream, leases, id mark. ARGV: group, entry, count, retention (s).
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
return 1
",
    )
});

/// KEYS: stream, leases, scheduled, due. ARGV: group, entry, count, due (ms), error.
static RETRY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local fields = entry_fields(KEYS[1], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if not fields then return 0 end
local attempts = (tonumber(field(fields, 'a')) or 0) + tonumber(ARGV[3])
local sid = redis.call('XADD', KEYS[3], '*', unpack(with(fields, {a = tostring(attempts), err = ARGV[5]})))
redis.call('ZADD', KEYS[4], ARGV[4], sid)
return 1
",
    )
});

/// KEYS: stream, leases. ARGV: group, entry, count, lease end (ms), consumer.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[5], 0, ARGV[2], 'JUSTID')
return 1
",
    )
});

/// KEYS: stream, leases. ARGV: group, entry, count.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local fields = entry_fields(KEYS[1], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if not fields then return 0 end
local attempts = (tonumber(field(fields, 'a')) or 0) + tonumber(ARGV[3]) - 1
if attempts < 0 then attempts = 0 end
redis.call('XADD', KEYS[1], '*', unpack(with(fields, {a = tostring(attempts)})))
return 1
",
    )
});

/// KEYS: stream, leases, dead, dead index, id mark. ARGV: group, entry, count, error, now (ms).
static BURY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if not held(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local fields = entry_fields(KEYS[1], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if not fields then return 0 end
local attempts = (tonumber(field(fields, 'a')) or 0) + tonumber(ARGV[3])
local did = redis.call('XADD', KEYS[3], '*',
  unpack(with(fields, {a = tostring(attempts), err = ARGV[4], died = ARGV[5]})))
redis.call('HSET', KEYS[4], field(fields, 'id'), did)
redis.call('PERSIST', KEYS[5])
return 1
",
    )
});

/// KEYS: dead, dead index. ARGV: webhook id. The dead entry's fields, or nil.
static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local did = redis.call('HGET', KEYS[2], ARGV[1])
if not did then return false end
return entry_fields(KEYS[1], did) or false
",
    )
});

/// KEYS: stream, dead, dead index, id mark. ARGV: webhook id.
static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local did = redis.call('HGET', KEYS[3], ARGV[1])
if not did then return 0 end
local fields = entry_fields(KEYS[2], did)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('XDEL', KEYS[2], did)
if not fields then return 0 end
redis.call('XADD', KEYS[1], '*', unpack(with(fields, {a = '0', err = false, died = false})))
redis.call('SET', KEYS[4], '1')
return 1
",
    )
});

/// KEYS: stream, due, dead, scheduled. `{depth, dead, oldest received (ms) or ''}`.
static STATS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local depth = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local dead = redis.call('XLEN', KEYS[3])
local oldest = nil
for _, key in ipairs({KEYS[1], KEYS[4]}) do
  local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  if first[1] then
    local received = tonumber(field(first[1][2], 'recv'))
    if received and (oldest == nil or received < oldest) then oldest = received end
  end
end
if oldest == nil then return {depth, dead, ''} end
return {depth, dead, string.format('%d', oldest)}
",
    )
});

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
///     .retention(Duration::from_secs(48 * 3600));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct RedisOptions {
    prefix: String,
    group: String,
    timeout: Duration,
    retention: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisOptions {
    /// [`DEFAULT_PREFIX`], [`DEFAULT_GROUP`], [`DEFAULT_TIMEOUT`], [`DEFAULT_RETENTION`].
    pub fn new() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            group: DEFAULT_GROUP.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            retention: DEFAULT_RETENTION,
        }
    }

    /// The prefix of every key, so that several queues share one Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The consumer group the workers read through.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// How long one call may take before it fails as a timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a done `webhook-id` stays known as a duplicate, from when it was done. Until
    /// then (its job waiting, running, retrying or dead) it is known without expiry.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }
}

/// The keys of one queue.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
    stream: String,
    leases: String,
    scheduled: String,
    due: String,
    dead: String,
    dead_index: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            stream: format!("{prefix}stream"),
            leases: format!("{prefix}leases"),
            scheduled: format!("{prefix}scheduled"),
            due: format!("{prefix}due"),
            dead: format!("{prefix}dead"),
            dead_index: format!("{prefix}dead-index"),
        }
    }

    fn id_mark(&self, webhook_id: &str) -> String {
        format!("{}id:{webhook_id}", self.prefix)
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
    /// stream and its consumer group if they do not exist.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let client = open(url)?;
        let connect = ConnectionManager::new_with_config(client, Self::connection_config());
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
        backend.create_group().await?;
        Ok(backend)
    }

    /// A backend on a connection manager you configured yourself (TLS, credentials, RESP3...).
    /// The consumer group is created by the first claim if it does not exist.
    pub fn from_connection_manager(connection: ConnectionManager, options: RedisOptions) -> Self {
        Self {
            connection,
            keys: Keys::new(&options.prefix),
            group: options.group,
            timeout: options.timeout,
            retention_secs: options.retention.as_secs().max(1),
        }
    }

    /// The connection settings [`connect`](Self::connect) uses: 1 s to connect, 1 s per
    /// response, two quick reconnection attempts, then the next call tries again.
    pub fn connection_config() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
    }

    /// `XGROUP CREATE <stream> <group> 0 MKSTREAM`, accepting a group that exists.
    async fn create_group(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let created: Result<(), StoreError> = self
            .bounded(
                "create the consumer group",
                ::redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.keys.stream)
                    .arg(&self.group)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(&mut connection),
            )
            .await;
        match created {
            Err(err) if err.to_string().contains("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Runs one Redis call within the timeout.
    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|err| store_error(what, err)),
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
            .arg(delivery.body.as_ref());
        let stored: i64 = self
            .bounded("enqueue", invocation.invoke_async(&mut connection))
            .await?;
        Ok(if stored == 1 {
            Enqueued::New
        } else {
            Enqueued::Duplicate
        })
    }

    async fn claim_jobs(&self, max: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut connection = self.connection.clone();
        let mut invocation = CLAIM.key(&self.keys.stream);
        invocation
            .key(&self.keys.leases)
            .key(&self.keys.scheduled)
            .key(&self.keys.due)
            .arg(&self.group)
            .arg(CONSUMER)
            .arg(max)
            .arg(now)
            .arg(now.saturating_add(duration_ms(lease)))
            .arg(PROMOTE_BATCH);
        let claimed: Vec<(String, i64, Vec<Vec<u8>>)> = self
            .bounded("claim", invocation.invoke_async(&mut connection))
            .await?;
        claimed
            .into_iter()
            .map(|(entry, count, fields)| {
                let fields = Fields::parse(fields)?;
                Ok(Job {
                    attempt: attempt_count(fields.attempts.saturating_add(count)),
                    delivery: fields.delivery,
                    receipt: Receipt(format!("{entry}/{count}")),
                })
            })
            .collect()
    }

    /// Runs a settling script for `job`: `KEYS` stream, leases and `extra_keys`; `ARGV` group,
    /// entry id, delivery count and `extra_args`.
    async fn settle(
        &self,
        what: &'static str,
        script: &Script,
        job: &Job,
        extra_keys: &[&str],
        extra_args: &[&[u8]],
    ) -> Result<bool, StoreError> {
        let Some((entry, count)) = job.receipt.0.split_once('/') else {
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

    async fn replay_dead_letter(&self, webhook_id: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = REPLAY.key(&self.keys.stream);
        invocation
            .key(&self.keys.dead)
            .key(&self.keys.dead_index)
            .key(self.keys.id_mark(webhook_id))
            .arg(webhook_id);
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
        let oldest_age = oldest.parse::<i64>().ok().map(|received| {
            Duration::from_millis(u64::try_from(now_ms().saturating_sub(received)).unwrap_or(0))
        });
        Ok(QueueStats {
            depth,
            oldest_age,
            dead,
        })
    }
}

impl Backend for RedisBackend {
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> QueueFuture<'a, Enqueued> {
        Box::pin(self.enqueue_delivery(delivery))
    }

    fn claim(&self, max: usize, lease: Duration) -> QueueFuture<'_, Vec<Job>> {
        Box::pin(self.claim_jobs(max, lease))
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
                &[retention.as_bytes()],
            )
            .await
        })
    }

    fn retry<'a>(&'a self, job: &'a Job, at: SystemTime, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let due = system_time_ms(at).to_string();
            self.settle(
                "retry",
                &RETRY,
                job,
                &[&self.keys.scheduled, &self.keys.due],
                &[due.as_bytes(), error.as_bytes()],
            )
            .await
        })
    }

    /// Pushes the lease back to `lease` from now, and resets the entry's idle time in the group
    /// (what `XPENDING` shows) with `XCLAIM ... JUSTID`.
    fn extend<'a>(&'a self, job: &'a Job, lease: Duration) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let lease_end = now_ms().saturating_add(duration_ms(lease)).to_string();
            self.settle(
                "extend",
                &EXTEND,
                job,
                &[],
                &[lease_end.as_bytes(), CONSUMER.as_bytes()],
            )
            .await
        })
    }

    fn release<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(self.settle("release", &RELEASE, job, &[], &[]))
    }

    fn bury<'a>(&'a self, job: &'a Job, error: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            let mark = self.keys.id_mark(&job.delivery.webhook_id);
            let now = now_ms().to_string();
            self.settle(
                "bury",
                &BURY,
                job,
                &[&self.keys.dead, &self.keys.dead_index, &mark],
                &[error.as_bytes(), now.as_bytes()],
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
        Box::pin(self.replay_dead_letter(webhook_id))
    }

    /// Depth is the stream's length plus the scheduled retries; the oldest age is that of the
    /// first entry of the stream or of the retries, whichever was received first (a retried job
    /// goes to the end of the stream, so it can be older than the stream's first entry: the
    /// age is then a lower bound).
    fn stats(&self) -> QueueFuture<'_, QueueStats> {
        Box::pin(self.queue_stats())
    }
}

/// The fields of a stream entry, read back.
struct Fields {
    delivery: ReceivedDelivery,
    attempts: i64,
    error: String,
    died_at_ms: i64,
}

impl Fields {
    fn parse(raw: Vec<Vec<u8>>) -> Result<Self, StoreError> {
        let mut webhook_id = None;
        let mut event_type = None;
        let mut webhook_timestamp = None;
        let mut signature = None;
        let mut received_at_ms = None;
        let mut body = None;
        let mut attempts = 0;
        let mut error = String::new();
        let mut died_at_ms = 0;
        let mut raw = raw.into_iter();
        while let (Some(name), Some(value)) = (raw.next(), raw.next()) {
            match name.as_slice() {
                b"id" => webhook_id = Some(text(value)?),
                b"type" => event_type = Some(text(value)?),
                b"ts" => webhook_timestamp = Some(number(&value)?),
                b"sig" => signature = Some(text(value)?),
                b"recv" => received_at_ms = Some(number(&value)?),
                b"body" => body = Some(Bytes::from(value)),
                b"a" => attempts = number(&value)?,
                b"err" => error = text(value)?,
                b"died" => died_at_ms = number(&value)?,
                _ => {}
            }
        }
        match (
            webhook_id,
            event_type,
            webhook_timestamp,
            signature,
            received_at_ms,
            body,
        ) {
            (
                Some(webhook_id),
                Some(event_type),
                Some(webhook_timestamp),
                Some(signature),
                Some(received_at_ms),
                Some(body),
            ) => Ok(Self {
                delivery: ReceivedDelivery {
                    webhook_id,
                    event_type,
                    webhook_timestamp,
                    signature,
                    received_at_ms,
                    body,
                },
                attempts,
                error,
                died_at_ms,
            }),
            _ => Err(malformed("a queue entry lacks a field")),
        }
    }

    fn into_dead_letter(self) -> DeadLetter {
        DeadLetter {
            delivery: self.delivery,
            attempts: attempt_count(self.attempts),
            last_error: self.error,
            died_at_ms: self.died_at_ms,
        }
    }
}

fn text(value: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(value)
        .map_err(|_| malformed("a queue entry has a text field that is not UTF-8"))
}

fn number(value: &[u8]) -> Result<i64, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| malformed("a queue entry has a number field that is not a number"))
}

fn malformed(message: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Other, message)
}
