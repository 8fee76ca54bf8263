//! The in-process store: completed ids bounded and TTL-aware, oldest evicted first; running
//! claims in a lease table that nothing evicts.

use std::{
    collections::HashMap,
    fmt,
    hash::BuildHasher,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use lru::{DefaultHasher, LruCache};

use super::{Claim, IdempotencyStore, LeaseToken, StoreFuture};

/// How many completed ids a [`MemoryStore::new`] remembers at most.
pub const DEFAULT_MEMORY_CAPACITY: u64 = 100_000;

/// At most this many shards, each behind its own lock, so that claims of different ids rarely
/// contend.
const MAX_SHARDS: u64 = 16;

/// Completed ids per shard at least, so that "oldest first" stays close to global order.
const MIN_SHARD_CAPACITY: u64 = 4096;

/// Durations are capped here before being added to an `Instant`, which could overflow: ten years
/// is "forever" for a webhook.
const FOREVER: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// A lease table is swept of expired leases when it grows past this (and past twice what the
/// last sweep left).
const MIN_SWEEP_LEN: usize = 64;

/// Idempotency records in this process's memory: for a single instance, and for tests.
///
/// - **Completed ids** are bounded to `capacity` entries, each expiring after its TTL. When the
///   store is full, the oldest completion is evicted (the duplicate check does not count as a
///   use); expired ones are dropped whenever they are met. Size the capacity above the number of
///   events you receive within the TTL, or a late retry of an evicted id is processed again. Ids
///   are spread over up to 16 shards, each with its share of the capacity, so "oldest" is per
///   shard.
/// - **Running claims** are kept beside them and never evicted: evicting one would let a
///   concurrent retry run the handler a second time. There is one per delivery in progress
///   (each of which also holds a request), and expired ones are swept as the table grows.
///
/// Why not `moka`: its eviction cannot spare an entry (no pinning: its LRU evicts the oldest
/// entry whatever its weight, and TinyLFU may refuse a new completion outright), so running
/// claims would need this side table anyway, and its insert alone measured several times the
/// whole 1 µs budget per event. The completed ids live in an [`lru::LruCache`] per shard
/// instead, in completion order.
///
/// Cloning is cheap and shares the records, so keep a clone to [`forget`](IdempotencyStore::forget)
/// ids. Every method answers at once, without I/O; a dropped claim is released synchronously.
///
/// ```
/// use std::time::Duration;
/// use agentsync_webhooks_core::idempotency::{Claim, IdempotencyStore, MemoryStore};
///
/// # async fn run() -> Result<(), agentsync_webhooks_core::idempotency::StoreError> {
/// let store = MemoryStore::with_capacity(10_000);
/// let Claim::New(token) = store.claim("msg_1", Duration::from_secs(60)).await? else {
///     unreachable!("a new id")
/// };
/// assert!(matches!(store.claim("msg_1", Duration::from_secs(60)).await?, Claim::InFlight { .. }));
/// assert!(store.complete("msg_1", token, Duration::from_secs(3600)).await?);
/// assert_eq!(store.claim("msg_1", Duration::from_secs(60)).await?, Claim::Done);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    shard_hasher: DefaultHasher,
    next_token: AtomicU64,
    capacity: u64,
}

struct Shard {
    /// Running claims by key.
    leases: HashMap<Box<str>, Lease, DefaultHasher>,
    /// The table's length that triggers the next sweep of expired leases.
    sweep_at_len: usize,
    /// Completed ids and when they expire, least recently completed first. Bounded by hand to
    /// `capacity`, so that nothing is allocated for room not yet used.
    completed: LruCache<Box<str>, Instant>,
    capacity: usize,
}

struct Lease {
    token: LeaseToken,
    expires_at: Instant,
}

impl MemoryStore {
    /// A store remembering at most [`DEFAULT_MEMORY_CAPACITY`] completed ids.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_MEMORY_CAPACITY)
    }

    /// A store remembering at most `capacity` completed ids (at least 1; running claims come on
    /// top).
    pub fn with_capacity(capacity: u64) -> Self {
        let capacity = capacity.max(1);
        let shard_count = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        // The shares add up to exactly `capacity`.
        let shards = (0..shard_count)
            .map(|i| {
                let share = capacity / shard_count + u64::from(i < capacity % shard_count);
                Mutex::new(Shard {
                    leases: HashMap::default(),
                    sweep_at_len: MIN_SWEEP_LEN,
                    completed: LruCache::unbounded(),
                    capacity: usize::try_from(share).unwrap_or(usize::MAX),
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                shard_hasher: DefaultHasher::default(),
                next_token: AtomicU64::new(1),
                capacity,
            }),
        }
    }

    /// The most completed ids remembered.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// How many unexpired records the store holds: completed ids plus running claims. For
    /// metrics and tests; it takes every lock in turn.
    pub fn entry_count(&self) -> u64 {
        let now = Instant::now();
        self.inner
            .shards
            .iter()
            .map(|shard| {
                let shard = lock(shard);
                let running = shard.leases.values().filter(|l| l.expires_at > now).count();
                let completed = shard.completed.iter().filter(|(_, e)| **e > now).count();
                (running + completed) as u64
            })
            .sum()
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let shards = &self.inner.shards;
        let index = self.inner.shard_hasher.hash_one(key) as usize % shards.len();
        lock(&shards[index])
    }

    fn claim_now(&self, key: &str, lease: Duration) -> Claim {
        let mut shard = self.shard(key);
        let now = Instant::now();
        let expires_at = now + lease.min(FOREVER);
        // A key is leased or completed, never both.
        if let Some(running) = shard.leases.get_mut(key) {
            if running.expires_at > now {
                return Claim::InFlight {
                    retry_after: Some(running.expires_at - now),
                };
            }
            // Abandoned: its holder can no longer complete or release it.
            let token = self.next_token();
            *running = Lease { token, expires_at };
            return Claim::New(token);
        }
        if let Some(&completed_until) = shard.completed.peek(key) {
            if completed_until > now {
                return Claim::Done;
            }
            shard.completed.pop(key);
        }
        let token = self.next_token();
        shard.sweep_if_grown(now);
        shard.leases.insert(key.into(), Lease { token, expires_at });
        Claim::New(token)
    }

    /// Unique in this process, which is all a memory store spans.
    fn next_token(&self) -> LeaseToken {
        let counter = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        LeaseToken::from_u128(u128::from(counter))
    }

    fn complete_now(&self, key: &str, token: LeaseToken, ttl: Duration) -> bool {
        let mut shard = self.shard(key);
        let now = Instant::now();
        let Some(key) = shard.take_lease(key, token, now) else {
            return false;
        };
        // Make room: expired completions at the old end first, then the oldest.
        while shard.completed.len() >= shard.capacity {
            shard.completed.pop_lru();
        }
        while shard
            .completed
            .peek_lru()
            .is_some_and(|(_, expires_at)| *expires_at <= now)
        {
            shard.completed.pop_lru();
        }
        shard.completed.push(key, now + ttl.min(FOREVER));
        true
    }

    fn release_now(&self, key: &str, token: LeaseToken) -> bool {
        self.shard(key)
            .take_lease(key, token, Instant::now())
            .is_some()
    }

    fn forget_now(&self, key: &str) -> bool {
        let mut shard = self.shard(key);
        let now = Instant::now();
        let running = shard.leases.remove(key).is_some_and(|l| l.expires_at > now);
        let completed = shard.completed.pop(key).is_some_and(|e| e > now);
        running || completed
    }
}

impl Shard {
    /// Removes the lease of `key` if `token` holds it; the removed key if it had not expired.
    fn take_lease(&mut self, key: &str, token: LeaseToken, now: Instant) -> Option<Box<str>> {
        let (key, lease) = self.leases.remove_entry(key)?;
        if lease.token != token {
            // Someone else's claim: put it back (rare: a stale or forged token).
            self.leases.insert(key, lease);
            return None;
        }
        (lease.expires_at > now).then_some(key)
    }

    /// Drops expired leases once the table has doubled since the last sweep: amortised O(1),
    /// and the table stays within about twice the number of running claims.
    fn sweep_if_grown(&mut self, now: Instant) {
        if self.leases.len() < self.sweep_at_len {
            return;
        }
        self.leases.retain(|_, lease| lease.expires_at > now);
        self.sweep_at_len = (self.leases.len() * 2).max(MIN_SWEEP_LEN);
    }
}

/// Nothing panics while a shard is locked, but if something ever did, the shard is still
/// consistent (every update is a single map operation), so keep using it.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

impl IdempotencyStore for MemoryStore {
    fn claim<'a>(&'a self, key: &'a str, lease: Duration) -> StoreFuture<'a, Claim> {
        Box::pin(std::future::ready(Ok(self.claim_now(key, lease))))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: LeaseToken,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Ok(self.complete_now(key, token, ttl))))
    }

    fn release<'a>(&'a self, key: &'a str, token: LeaseToken) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Ok(self.release_now(key, token))))
    }

    fn release_detached(&self, key: &str, token: LeaseToken) {
        self.release_now(key, token);
    }

    fn forget<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Ok(self.forget_now(key))))
    }
}
