//! A Redis idempotency store for AgentSync webhook receivers: each event processed once across
//! every instance that shares the Redis.
//!
//! [`RedisStore`] implements the core's [`IdempotencyStore`] on the `redis` crate's
//! auto-reconnecting [`ConnectionManager`]. Give it to a receiver (or an adapter's
//! `with_idempotency`) like any store:
//!
//! ```no_run
//! use agentsync_webhooks_core::{Receiver, Verifier, idempotency::Idempotency};
//! use agentsync_webhooks_redis::RedisStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
//! let receiver = Receiver::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?)
//!     .with_idempotency(Idempotency::new(store).with_key_prefix("billing:"));
//! # Ok(()) }
//! ```
//!
//! # Keys and values
//!
//! One key per webhook id: `<prefix><webhook-id>` (the prefix is
//! [`Idempotency::with_key_prefix`](agentsync_webhooks_core::idempotency::Idempotency::with_key_prefix),
//! `agentsync-webhooks:` by default). It holds `lease:<token>` with the lease as its expiry while
//! a delivery is processed, then `done` with the TTL as its expiry. Claim is one Lua script
//! around `SET key lease:<token> NX PX <lease>`; complete and release are Lua scripts that act only
//! if the key still holds the caller's token, so a claim whose lease expired can never overwrite or
//! delete its successor's. `forget` is `DEL`.
//!
//! # Redis Cluster
//!
//! [`RedisStore::connect`] takes `redis+cluster://HOST:PORT[,HOST:PORT...]` (or
//! `rediss+cluster://` with TLS) for a Redis Cluster: the hosts are seed nodes, the client
//! follows `MOVED`/`ASK` and refreshes its slot map after a failover (see [`connection`]).
//! Every command and script touches exactly one key, passed as `KEYS[1]`, so the layout needs no
//! hash tags and ids spread evenly over the slots. Do not put a hash tag in the prefix (such as
//! `{billing}:`) unless you need all ids of a namespace on one node: it would send them all to one
//! slot.
//!
//! # Persistence
//!
//! At connect the store reads Redis's persistence and eviction settings (every primary of a
//! cluster; see [`persistence`]) and logs a warning naming the setting and its fix when a
//! completed mark would not survive a restart or could be evicted: then a restart makes the
//! sender's late retries run again. [`RedisStore::connect_requiring_persistence`] (or
//! `?persistence=required` in the URL) refuses to start instead. The report stays readable
//! through [`RedisStore::persistence`].
//!
//! # Failures
//!
//! Every call is bounded ([`DEFAULT_TIMEOUT`], [`RedisStore::with_timeout`]), and the connection
//! attempts too ([`RedisStore::connection_config`]), so a dead or unreachable Redis turns into a
//! prompt 503 with `Retry-After` (or a logged pass with fail-open), not a request that hangs until
//! the sender gives up. The connection manager reconnects in the background; deliveries are
//! processed again as soon as Redis answers.
//!
//! A delivery abandoned mid-way (handler panic, cancelled request) is released by a task spawned
//! on the current tokio runtime; outside a runtime its claim simply expires with the lease.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::{future::Future, sync::LazyLock, time::Duration};

use agentsync_webhooks_core::idempotency::{
    Claim, IdempotencyStore, LeaseToken, StoreError, StoreErrorKind, StoreFuture,
};
use redis::{
    RedisError, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

pub use redis;

use crate::{connection::RedisConnection, persistence::PersistenceReport, shared::store_error};

pub mod connection;
pub mod persistence;

#[cfg(feature = "testing")]
#[doc(hidden)] // helpers for this workspace's test suites, not part of the public API
pub mod testing;

/// How long one store call may take before it fails as a timeout (and the delivery gets a 503):
/// well under the 5 s a sender waits for an answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The value of a completed key.
const DONE: &str = "done";

/// `{0}` new, `{1}` done, `{2, pttl}` in flight (`pttl` in ms; negative if the key has no expiry).
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0}
end
if redis.call('GET', KEYS[1]) == ARGV[3] then
  return {1}
end
return {2, redis.call('PTTL', KEYS[1])}
",
    )
});

/// `1` if the key held this lease and is now done for the TTL, else `0`.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
  return 1
end
return 0
",
    )
});

/// `1` if the key held this lease and is now free, else `0`.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
",
    )
});

/// An [`IdempotencyStore`] in Redis, shared by every instance that connects to it.
///
/// Cheap to clone (the connection is shared and multiplexed): keep a clone to `forget` ids.
///
/// ```no_run
/// use agentsync_webhooks_core::{Receiver, Verifier, idempotency::Idempotency};
/// use agentsync_webhooks_redis::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // Starts even while Redis is down: deliveries get 503 with Retry-After until it answers.
/// let store = RedisStore::connect_lazy(&std::env::var("REDIS_URL")?)?;
/// let idempotency = Idempotency::new(store.clone());
/// let receiver = Receiver::new(Verifier::from_env()?).with_idempotency(idempotency.clone());
///
/// // An operator wants one event processed again (a replay from the portal reuses its id).
/// idempotency.forget("msg_2Lh5UzG3ZR1n0dXdBDfpDXuHHm8").await?;
/// # let _ = receiver;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: RedisConnection,
    timeout: Duration,
    persistence: Option<std::sync::Arc<PersistenceReport>>,
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`, `rediss://` if the `redis`
    /// crate's TLS is enabled, or `redis+cluster://HOST:PORT[,HOST:PORT...]` for a Redis
    /// Cluster), failing if Redis does not answer now, then checks its persistence and logs
    /// what would lose completed marks (see [the crate docs](crate#persistence));
    /// `?persistence=required` in the URL refuses instead. Must run on a tokio runtime.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (url, required) = take_persistence_option(url)?;
        Self::connect_checked(&url, required).await
    }

    /// [`connect`](Self::connect), refusing to start (naming each setting and its fix) when
    /// Redis would not keep a completed mark across a restart or may evict it.
    pub async fn connect_requiring_persistence(url: &str) -> Result<Self, StoreError> {
        let (url, _) = take_persistence_option(url)?;
        Self::connect_checked(&url, true).await
    }

    async fn connect_checked(url: &str, required: bool) -> Result<Self, StoreError> {
        let connection = RedisConnection::connect(url, Duration::from_secs(1)).await?;
        let report = persistence::check(&connection).await;
        if required {
            report.require("the idempotency store")?;
        }
        report.log("the idempotency store");
        let mut store = Self::from_connection(connection);
        store.persistence = Some(std::sync::Arc::new(report));
        Ok(store)
    }

    /// A store for `url` that connects on first use, so that a service can start while Redis is
    /// down (its deliveries get 503 until Redis answers). Must be called within a tokio runtime.
    /// Its persistence is not checked (nothing answers yet).
    pub fn connect_lazy(url: &str) -> Result<Self, StoreError> {
        let (url, _) = take_persistence_option(url)?;
        RedisConnection::connect_lazy(&url, Duration::from_secs(1)).map(Self::from_connection)
    }

    /// A store on a connection manager you configured yourself (TLS, credentials, RESP3...).
    /// Bound its timeouts like [`connection_config`](Self::connection_config) does.
    pub fn from_connection_manager(connection: ConnectionManager) -> Self {
        Self::from_connection(RedisConnection::Single(connection))
    }

    /// A store on a connection (single Redis or cluster) you made yourself.
    pub fn from_connection(connection: RedisConnection) -> Self {
        Self {
            connection,
            timeout: DEFAULT_TIMEOUT,
            persistence: None,
        }
    }

    /// What the persistence check at connect found (`None` for a store made from a connection
    /// or lazily).
    pub fn persistence(&self) -> Option<&PersistenceReport> {
        self.persistence.as_deref()
    }

    /// The connection settings [`connect`](Self::connect) uses for a single Redis: 1 s to
    /// connect, 1 s per response, two quick reconnection attempts, then the next call tries
    /// again.
    pub fn connection_config() -> ConnectionManagerConfig {
        connection::manager_config(Duration::from_secs(1))
    }

    /// Sets how long one store call may take before it fails as a timeout (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The underlying connection, for your own commands.
    pub fn connection(&self) -> &RedisConnection {
        &self.connection
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

    async fn claim_key(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        let token = LeaseToken::random()?;
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = self
            .bounded(
                "claim",
                CLAIM
                    .key(key)
                    .arg(lease_value(token))
                    .arg(millis(lease))
                    .arg(DONE)
                    .invoke_async(&mut connection),
            )
            .await?;
        match reply.as_slice() {
            [0] => Ok(Claim::New(token)),
            [1] => Ok(Claim::Done),
            [2, pttl] => Ok(Claim::InFlight {
                retry_after: u64::try_from(*pttl).ok().map(Duration::from_millis),
            }),
            other => Err(StoreError::new(
                StoreErrorKind::Other,
                format!("unexpected reply to the claim script: {other:?}"),
            )),
        }
    }

    async fn complete_key(
        &self,
        key: &str,
        token: LeaseToken,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let applied: i64 = self
            .bounded(
                "complete",
                COMPLETE
                    .key(key)
                    .arg(lease_value(token))
                    .arg(millis(ttl))
                    .arg(DONE)
                    .invoke_async(&mut connection),
            )
            .await?;
        Ok(applied == 1)
    }

    async fn release_key(&self, key: &str, token: LeaseToken) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let applied: i64 = self
            .bounded(
                "release",
                RELEASE
                    .key(key)
                    .arg(lease_value(token))
                    .invoke_async(&mut connection),
            )
            .await?;
        Ok(applied == 1)
    }

    async fn forget_key(&self, key: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let deleted: i64 = self
            .bounded(
                "forget",
                redis::cmd("DEL").arg(key).query_async(&mut connection),
            )
            .await?;
        Ok(deleted > 0)
    }
}

impl IdempotencyStore for RedisStore {
    fn claim<'a>(&'a self, key: &'a str, lease: Duration) -> StoreFuture<'a, Claim> {
        Box::pin(self.claim_key(key, lease))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: LeaseToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.complete_key(key, token, ttl))
    }

    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool> {
        Box::pin(self.release_key(key, token))
    }

    /// Spawns the release on the current tokio runtime; outside one, leaves the claim to expire
    /// with its lease.
    fn release_detached(&self, key: &str, token: LeaseToken) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(
                key,
                "no tokio runtime to release an abandoned claim: it expires with its lease"
            );
            return;
        };
        let store = self.clone();
        let key = key.to_owned();
        runtime.spawn(async move {
            if let Err(err) = store.release_key(&key, token).await {
                tracing::warn!(
                    key,
                    error = %err,
                    "could not release an abandoned claim: it expires with its lease"
                );
            }
        });
    }

    fn forget<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(self.forget_key(key))
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection's Debug shows the client's address; credentials stay out of it.
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Opening a client and classifying the `redis` crate's errors, shared with the Redis queue engine
/// of `agentsync-webhooks-queue` so that both answer alike (not part of this crate's API).
#[doc(hidden)]
pub mod shared {
    use agentsync_webhooks_core::idempotency::{StoreError, StoreErrorKind};
    use redis::{Client, RedisError};

    /// A client for `url`; the error keeps only the kind, since the URL may carry a password.
    pub fn open(url: &str) -> Result<Client, StoreError> {
        Client::open(url).map_err(|err| {
            StoreError::new(
                StoreErrorKind::Other,
                format!("invalid Redis URL ({:?})", err.kind()),
            )
        })
    }

    /// `err` as a store error: a timeout, an unreachable server, or anything else.
    pub fn store_error(what: &'static str, err: RedisError) -> StoreError {
        let kind = if err.is_timeout() {
            StoreErrorKind::Timeout
        } else if err.is_io_error() || err.is_connection_refusal() || err.is_connection_dropped() {
            StoreErrorKind::Unreachable
        } else {
            StoreErrorKind::Other
        };
        StoreError::new(kind, format!("Redis {what} failed")).with_source(err)
    }
}

/// `url` without its `persistence` query option, and whether it said `required`. Any other
/// value is refused (the message does not quote the URL).
fn take_persistence_option(url: &str) -> Result<(String, bool), StoreError> {
    let url = url.trim();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), false));
    };
    let mut required = false;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("persistence", "required")) => required = true,
            Some(("persistence", "warn")) => required = false,
            Some(("persistence", _)) => {
                return Err(StoreError::new(
                    StoreErrorKind::Other,
                    "invalid Redis URL: persistence= takes required or warn",
                ));
            }
            _ => kept.push(pair),
        }
    }
    Ok(if kept.is_empty() {
        (base.to_owned(), required)
    } else {
        (format!("{base}?{}", kept.join("&")), required)
    })
}

/// The value a lease holds: its token, so only its holder can complete or release it.
fn lease_value(token: LeaseToken) -> String {
    format!("lease:{token}")
}

/// Milliseconds for `PX`: at least 1 (Redis refuses 0), at most ten years ("forever" for a
/// webhook; Redis refuses expiries that overflow its clock).
fn millis(duration: Duration) -> u64 {
    const TEN_YEARS_MS: u64 = 10 * 365 * 24 * 60 * 60 * 1000;
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, TEN_YEARS_MS)
}
