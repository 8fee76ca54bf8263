//! What the worker and end-to-end tests share: a fresh queue per test on each real engine, the
//! deliveries they enqueue, waiting for something to happen, and engines that misbehave.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use agentsync_webhooks_core::{EventType, event::samples, route::Routed};
use agentsync_webhooks_queue::{
    Backend, ClaimToken, Claimed, DeadLetter, Enqueued, EventOrder, Job, JobRequest, Purged, Queue,
    QueueFuture, QueueStats, ReceivedDelivery, StoreError, StoreErrorKind, Workers,
    record::{Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord},
};
use bytes::Bytes;
use tokio::{sync::oneshot, task::JoinHandle};

/// The real engines the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file in a fresh temporary directory.
    Sqlite,
    /// The Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`), under a fresh key prefix.
    #[cfg(feature = "redis")]
    Redis,
    /// The Redis Cluster at `REDIS_CLUSTER_URL` (default the `.ci/redis-cluster.sh` one),
    /// under a fresh key prefix, in 3 partitions.
    #[cfg(feature = "redis")]
    RedisCluster,
    /// The PostgreSQL at `POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a
    /// fresh table.
    #[cfg(feature = "postgres")]
    Postgres,
}

/// A fresh, empty queue for one test, and what it takes to open it again from another process.
pub struct Fixture {
    pub queue: Queue,
    pub engine: Engine,
    /// What [`reopen`] needs: the SQLite file, or the engine URL and the namespace.
    pub location: String,
    _dir: Option<tempfile::TempDir>,
}

/// The engine's leftovers go with the fixture: a Redis key prefix is deleted and a PostgreSQL
/// table dropped when the test ends (the SQLite directory removes itself).
impl Drop for Fixture {
    fn drop(&mut self) {
        match self.engine {
            Engine::Sqlite => {}
            #[cfg(feature = "redis")]
            Engine::Redis => {
                let Some((url, prefix)) = self.location.split_once('#') else {
                    return;
                };
                let Ok(client) = redis::Client::open(url) else {
                    return;
                };
                let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1))
                else {
                    return;
                };
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}:*"))
                    .query(&mut connection)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut connection);
                }
            }
            #[cfg(feature = "redis")]
            Engine::RedisCluster => {
                if let Some((url, prefix)) = self.location.split_once('#') {
                    cluster_delete(url, &format!("{prefix}:*"));
                }
            }
            #[cfg(feature = "postgres")]
            Engine::Postgres => {
                let Some((url, table)) = self.location.split_once('#') else {
                    return;
                };
                let (url, table) = (url.to_owned(), table.to_owned());
                // Drop runs inside the test's runtime: a thread with a runtime of its own.
                let _ = std::thread::spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    runtime.block_on(async {
                        let Ok((client, connection)) =
                            tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                        else {
                            return;
                        };
                        tokio::spawn(connection);
                        let _ = client
                            .batch_execute(&format!(
                                "DROP TABLE IF EXISTS {table}, {table}_history, \
                                 {table}_schema, {table}_ordering_keys"
                            ))
                            .await;
                    });
                })
                .join();
            }
        }
    }
}

/// A name no other test or run uses.
pub fn unique(case: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{case}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh queue on `engine` for the test `case`.
pub async fn fixture(engine: Engine, case: &str) -> Fixture {
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::Builder::new().prefix(case).tempdir().unwrap();
            let path = dir.path().join("queue.sqlite3");
            let location = path.to_string_lossy().into_owned();
            Fixture {
                queue: reopen(engine, &location).await,
                engine,
                location,
                _dir: Some(dir),
            }
        }
        #[cfg(feature = "redis")]
        Engine::Redis => {
            let location = format!(
                "{}#agentsync-webhooks-test:worker:{}",
                redis_url(),
                unique(case)
            );
            Fixture {
                queue: reopen(engine, &location).await,
                engine,
                location,
                _dir: None,
            }
        }
        #[cfg(feature = "redis")]
        Engine::RedisCluster => {
            let location = format!(
                "{}#agentsync-webhooks-test:worker:{}",
                redis_cluster_url(),
                unique(case)
            );
            Fixture {
                queue: reopen(engine, &location).await,
                engine,
                location,
                _dir: None,
            }
        }
        #[cfg(feature = "postgres")]
        Engine::Postgres => {
            // PostgreSQL names are at most 63 bytes: a short, unique table name.
            let table = unique("wq").to_ascii_lowercase();
            let location = format!("{}#{table}", postgres_url());
            Fixture {
                queue: reopen(engine, &location).await,
                engine,
                location,
                _dir: None,
            }
        }
    }
}

#[cfg(feature = "redis")]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `REDIS_CLUSTER_URL`, or the cluster `.ci/redis-cluster.sh start` runs.
#[cfg(feature = "redis")]
pub fn redis_cluster_url() -> String {
    std::env::var("REDIS_CLUSTER_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103".into())
}

/// Deletes the keys matching `pattern` on every primary of the cluster `url` names (a seed
/// node's `CLUSTER NODES`), one `DEL` per key (each on the node that holds it).
#[cfg(feature = "redis")]
pub fn cluster_delete(url: &str, pattern: &str) {
    let Ok(seeds) = agentsync_webhooks_redis::connection::cluster_nodes(url) else {
        return;
    };
    let Some(seed) = seeds.first() else { return };
    let connect = |url: &str| {
        redis::Client::open(url)
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()
    };
    let Some(mut connection) = connect(seed) else {
        return;
    };
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connection)
        .unwrap_or_default();
    for line in nodes.lines().filter(|line| line.contains("master")) {
        let Some(address) = line.split_whitespace().nth(1) else {
            continue;
        };
        let address = address.split('@').next().unwrap_or(address);
        let Some(mut node) = connect(&format!("redis://{address}")) else {
            continue;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut node)
            .unwrap_or_default();
        for key in keys {
            let _: Result<i64, _> = redis::cmd("DEL").arg(key).query(&mut node);
        }
    }
}

#[cfg(feature = "postgres")]
pub fn postgres_url() -> String {
    std::env::var("POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The queue of a [`Fixture`], opened again (another handle, or another process).
pub async fn reopen(engine: Engine, location: &str) -> Queue {
    match engine {
        Engine::Sqlite => Queue::sqlite(location).await.unwrap(),
        #[cfg(feature = "redis")]
        Engine::Redis => {
            use agentsync_webhooks_queue::redis::{RedisBackend, RedisOptions};
            let (url, prefix) = location.split_once('#').unwrap();
            let backend =
                RedisBackend::connect_with(url, RedisOptions::new().prefix(format!("{prefix}:")))
                    .await
                    .unwrap_or_else(|err| panic!("Redis at {url} does not answer: {err}"));
            Queue::new(backend)
        }
        #[cfg(feature = "redis")]
        Engine::RedisCluster => {
            use agentsync_webhooks_queue::redis::{RedisBackend, RedisOptions};
            let (url, prefix) = location.split_once('#').unwrap();
            let options = RedisOptions::new()
                .prefix(format!("{prefix}:"))
                .partitions(3);
            let backend = RedisBackend::connect_with(url, options)
                .await
                .unwrap_or_else(|err| panic!("the Redis Cluster at {url} does not answer: {err}"));
            Queue::new(backend)
        }
        #[cfg(feature = "postgres")]
        Engine::Postgres => {
            use agentsync_webhooks_queue::postgres::{PostgresBackend, PostgresOptions};
            let (url, table) = location.split_once('#').unwrap();
            let backend = PostgresBackend::connect_with(url, PostgresOptions::new().table(table))
                .await
                .unwrap_or_else(|err| panic!("PostgreSQL at {url} does not answer: {err}"));
            Queue::new(backend)
        }
    }
}

/// The engine's name and location, as a child process reads them from its environment.
pub fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "sqlite",
        #[cfg(feature = "redis")]
        Engine::Redis => "redis",
        #[cfg(feature = "redis")]
        Engine::RedisCluster => "redis-cluster",
        #[cfg(feature = "postgres")]
        Engine::Postgres => "postgres",
    }
}

/// The engine named `name` (see [`engine_name`]).
pub fn engine_named(name: &str) -> Engine {
    match name {
        #[cfg(feature = "redis")]
        "redis" => Engine::Redis,
        #[cfg(feature = "redis")]
        "redis-cluster" => Engine::RedisCluster,
        #[cfg(feature = "postgres")]
        "postgres" => Engine::Postgres,
        _ => Engine::Sqlite,
    }
}

/// A stored `producersync.updates_available` delivery with this `webhook-id`.
pub fn delivery(webhook_id: &str) -> ReceivedDelivery {
    example(webhook_id, EventType::ProducerSyncUpdatesAvailable)
}

/// A stored example delivery of `event_type` with this `webhook-id`.
pub fn example(webhook_id: &str, event_type: EventType) -> ReceivedDelivery {
    let body = samples::example_body(event_type, &format!("whe_{webhook_id}"), 1_700_000_000);
    stored(webhook_id, event_type.as_str(), body.into())
}

/// A stored delivery of any type and body.
pub fn stored(webhook_id: &str, event_type: &str, body: Bytes) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: webhook_id.into(),
        event_type: event_type.into(),
        webhook_timestamp: 1_700_000_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
        received_at_ms: agentsync_webhooks_core::handoff::now_ms(),
        body,
    }
}

/// Enqueues `ids`, each new.
pub async fn enqueue_all(queue: &Queue, ids: &[String]) {
    for id in ids {
        assert_eq!(queue.enqueue(&delivery(id)).await.unwrap(), Enqueued::New);
    }
}

/// Waits (polling every 20 ms) until `check` holds, failing the test after `bound`. The bound is
/// generous: it only stops a broken test from hanging, it measures nothing.
pub async fn eventually<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still not the case after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The queue's stats, or all-zero-but-depth-unknown when the engine failed (for `eventually`).
pub async fn stats(queue: &Queue) -> QueueStats {
    queue.stats().await.unwrap()
}

/// Waits until nothing is waiting or running.
pub async fn drained(queue: &Queue, bound: Duration) {
    eventually("the queue is drained", bound, || async {
        queue.stats().await.is_ok_and(|s| s.depth == 0)
    })
    .await;
}

/// Waits until `webhook_id` is a dead letter, and returns it.
pub async fn dead(queue: &Queue, webhook_id: &str, bound: Duration) -> DeadLetter {
    eventually(&format!("{webhook_id} is a dead letter"), bound, || async {
        queue.dead_letter(webhook_id).await.unwrap().is_some()
    })
    .await;
    queue.dead_letter(webhook_id).await.unwrap().unwrap()
}

/// Workers that poll often, so that tests do not wait for nothing.
pub fn eager<S>(workers: Workers<S>) -> Workers<S> {
    workers
        .poll_interval(Duration::from_millis(10))
        .busy_wait(Duration::from_millis(5))
        .lease(Duration::from_secs(10))
}

/// Running workers and the switch that stops them.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Running {
    /// Stops the workers gracefully and waits (up to a generous bound) until they return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(120), &mut self.handle)
            .await
            .expect("the workers stopped")
            .expect("the workers did not panic");
    }
}

/// Spawns `workers.run_until(...)` on the runtime.
pub fn start<S>(workers: Workers<S>) -> Running
where
    S: tower::Service<JobRequest, Response = Routed> + Clone + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(workers.run_until(async move {
        let _ = stopped.await;
    }));
    Running {
        stop: Some(stop),
        handle,
    }
}

/// How often each id ran (to completion, as the handler counts it).
#[derive(Clone, Default)]
pub struct Counts(Arc<Mutex<HashMap<String, u32>>>);

impl Counts {
    pub fn add(&self, id: &str) {
        *self.0.lock().unwrap().entry(id.to_owned()).or_default() += 1;
    }

    pub fn get(&self, id: &str) -> u32 {
        self.0.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u32 {
        self.0.lock().unwrap().values().sum()
    }

    pub fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn snapshot(&self) -> HashMap<String, u32> {
        self.0.lock().unwrap().clone()
    }
}

/// An engine that answers every call only after `delay` (a slow network or an overloaded
/// server), and fails every call while it is [`down`](Self::set_down).
pub struct Troubled {
    inner: Arc<dyn Backend>,
    delay: Duration,
    /// Added to every completion's delay (a settlement's round trip slower than a claim's).
    complete_delay: Duration,
    down: AtomicBool,
    /// Fail one call in `fail_every` (0: never), counting every call.
    fail_every: u64,
    calls: AtomicU64,
    pub failures: AtomicU64,
}

impl Troubled {
    pub fn new(inner: Arc<dyn Backend>, delay: Duration, fail_every: u64) -> Arc<Self> {
        Self::slow_to_complete(inner, delay, fail_every, Duration::ZERO)
    }

    /// [`new`](Self::new), each completion answered `complete_delay` later still.
    pub fn slow_to_complete(
        inner: Arc<dyn Backend>,
        delay: Duration,
        fail_every: u64,
        complete_delay: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner,
            delay,
            complete_delay,
            down: AtomicBool::new(false),
            fail_every,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Waits, then fails or delegates.
    fn call<'a, T: Send + 'a>(
        &'a self,
        what: &'static str,
        call: QueueFuture<'a, T>,
    ) -> QueueFuture<'a, T> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let flaky = self.fail_every > 0 && n.is_multiple_of(self.fail_every);
            if self.down.load(Ordering::SeqCst) || flaky {
                self.failures.fetch_add(1, Ordering::SeqCst);
                return Err(StoreError::new(
                    StoreErrorKind::Unreachable,
                    format!("test engine refused the {what}"),
                ));
            }
            call.await
        })
    }
}

impl Backend for Troubled {
    fn enqueue<'a>(&'a self, delivery: &'a ReceivedDelivery) -> QueueFuture<'a, Enqueued> {
        self.inner.enqueue(delivery)
    }
    fn claim_with<'a>(
        &'a self,
        token: &'a ClaimToken,
        max: usize,
        lease: Duration,
    ) -> QueueFuture<'a, Vec<Job>> {
        self.call("claim", self.inner.claim_with(token, max, lease))
    }
    fn abandon<'a>(&'a self, token: &'a ClaimToken) -> QueueFuture<'a, u64> {
        self.call("abandon", self.inner.abandon(token))
    }
    fn complete<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(async move {
            tokio::time::sleep(self.complete_delay).await;
            self.call("complete", self.inner.complete(job)).await
        })
    }
    fn retry<'a>(&'a self, job: &'a Job, after: Duration, error: &'a str) -> QueueFuture<'a, bool> {
        self.call("retry", self.inner.retry(job, after, error))
    }
    fn extend<'a>(&'a self, job: &'a Job, lease: Duration) -> QueueFuture<'a, bool> {
        self.call("extend", self.inner.extend(job, lease))
    }
    fn release<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        self.call("release", self.inner.release(job))
    }
    fn bury<'a>(&'a self, job: &'a Job, error: &'a str) -> QueueFuture<'a, bool> {
        self.call("bury", self.inner.bury(job, error))
    }
    fn dead_letters(&self, limit: usize) -> QueueFuture<'_, Vec<DeadLetter>> {
        self.inner.dead_letters(limit)
    }
    fn dead_letter<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeadLetter>> {
        self.inner.dead_letter(webhook_id)
    }
    fn replay<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, bool> {
        self.inner.replay(webhook_id)
    }
    fn stats(&self) -> QueueFuture<'_, QueueStats> {
        self.inner.stats()
    }
    fn purge(&self) -> QueueFuture<'_, Purged> {
        self.inner.purge()
    }
    fn orders_events(&self) -> bool {
        self.inner.orders_events()
    }
    fn enqueue_ordered<'a>(
        &'a self,
        delivery: &'a ReceivedDelivery,
        order: &'a EventOrder,
    ) -> QueueFuture<'a, Enqueued> {
        self.inner.enqueue_ordered(delivery, order)
    }
    fn claim_ordered<'a>(
        &'a self,
        token: &'a ClaimToken,
        max: usize,
        lease: Duration,
    ) -> QueueFuture<'a, Vec<Claimed>> {
        self.call("claim", self.inner.claim_ordered(token, max, lease))
    }
    fn complete_stale<'a>(&'a self, job: &'a Job) -> QueueFuture<'a, bool> {
        self.call("complete", self.inner.complete_stale(job))
    }
    fn list<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        after: Option<&'a Cursor>,
        limit: usize,
    ) -> QueueFuture<'a, DeliveryPage> {
        self.inner.list(filter, after, limit)
    }
    fn counts<'a>(&'a self, filter: &'a DeliveryFilter) -> QueueFuture<'a, DeliveryCounts> {
        self.inner.counts(filter)
    }
    fn delivery<'a>(&'a self, webhook_id: &'a str) -> QueueFuture<'a, Option<DeliveryRecord>> {
        self.inner.delivery(webhook_id)
    }
    fn replay_by<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        self.inner.replay_by(webhook_id, by)
    }
    fn replay_matching<'a>(
        &'a self,
        filter: &'a DeliveryFilter,
        by: &'a str,
        max: usize,
    ) -> QueueFuture<'a, u64> {
        self.inner.replay_matching(filter, by, max)
    }
    fn discard<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        self.inner.discard(webhook_id, by)
    }
    fn forget<'a>(&'a self, webhook_id: &'a str, by: &'a str) -> QueueFuture<'a, bool> {
        self.inner.forget(webhook_id, by)
    }
    fn purge_dead(&self, before_ms: i64, max: usize) -> QueueFuture<'_, u64> {
        self.inner.purge_dead(before_ms, max)
    }
}
