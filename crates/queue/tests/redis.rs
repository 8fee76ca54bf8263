//! `RedisBackend` against a real Redis: the shared queue contract, one round trip per enqueue,
//! an unreachable Redis, the engine's clock, repairs and settings Redis would refuse. The
//! record's layout (upgrade, refusal, index-only lists) is in `redis_record.rs`.
//!
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`). When `REDIS_URL` is set, an unreachable
//! Redis fails every test; when it is not, the tests are skipped with a note. Every test works
//! under its own key prefix, so tests run in parallel and runs do not collide.
#![cfg(feature = "redis")]

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, Enqueued, Queue, StoreErrorKind,
    contract::{self, QueueContract},
    redis::{RedisBackend, RedisOptions},
};

mod redis_support;
use redis_support::{backend, backend_with, prefix, redis_url};

async fn contract(case: &'static str) -> Option<QueueContract> {
    let options = || {
        RedisOptions::new()
            .retention(contract::RETENTION)
            .dead_retention(contract::DEAD_RETENTION)
    };
    let (backend, keys) = backend_with(case, options()).await?;
    // A second instance on the same prefix, with a connection of its own.
    let (url, _) = redis_url();
    let second = RedisBackend::connect_with(&url, options().prefix(prefix(case)))
        .await
        .unwrap_or_else(|err| panic!("{case}: the second instance: {err}"));
    Some(
        QueueContract::new(backend, case)
            .second_instance(second)
            .keep_alive(keys),
    )
}

agentsync_webhooks_queue::queue_contract_tests!(contract);
agentsync_webhooks_queue::queue_event_time_contract_tests!(contract);

/// The contract's event-time cases on a single Redis with the queue in 3 partitions: a key's
/// deliveries share its partition, so the key's order holds across partitions.
mod partitioned {
    use super::*;

    async fn contract(case: &'static str) -> Option<QueueContract> {
        let options = || {
            RedisOptions::new()
                .retention(contract::RETENTION)
                .dead_retention(contract::DEAD_RETENTION)
                .partitions(3)
        };
        let (backend, keys) = backend_with(case, options()).await?;
        let (url, _) = redis_url();
        let second = RedisBackend::connect_with(&url, options().prefix(prefix(case)))
            .await
            .unwrap_or_else(|err| panic!("{case}: the second instance: {err}"));
        Some(
            QueueContract::new(backend, case)
                .second_instance(second)
                .keep_alive(keys),
        )
    }

    agentsync_webhooks_queue::queue_event_time_contract_tests!(contract);
}

/// A partitioned queue orders events: two deliveries of one key whose ids map to different
/// partitions are stored in the key's partition; the second is held back while the first
/// runs; the lookups by id find both; settling each goes to its partition.
#[tokio::test]
async fn a_partitioned_queue_orders_a_keys_events_across_id_partitions() {
    let test = "a_partitioned_queue_orders_a_keys_events_across_id_partitions";
    let Some((backend, _keys)) = backend_with(test, RedisOptions::new().partitions(3)).await else {
        return;
    };
    assert!(backend.orders_events());
    let key = "npn:1";
    let key_partition = backend.partition_of_key(key);
    // Two ids whose own partitions differ from each other (so at least one is not the key's).
    let first = (0..)
        .map(|i| format!("p_first_{i}"))
        .find(|id| backend.partition(id) != key_partition)
        .unwrap();
    let second = (0..)
        .map(|i| format!("p_second_{i}"))
        .find(|id| {
            backend.partition(id) != key_partition
                && backend.partition(id) != backend.partition(&first)
        })
        .unwrap();
    for (id, at) in [(&first, 10), (&second, 20)] {
        let order = agentsync_webhooks_queue::EventOrder {
            key: key.into(),
            occurred_at_ms: at,
        };
        assert_eq!(
            backend
                .enqueue_ordered(&delivery(id), &order)
                .await
                .unwrap(),
            Enqueued::New
        );
        // A retry of the same delivery (same body, same key) is a duplicate.
        assert_eq!(
            backend
                .enqueue_ordered(&delivery(id), &order)
                .await
                .unwrap(),
            Enqueued::Duplicate
        );
    }
    let prefixes = backend.partition_prefixes();
    let key_prefix = prefixes[key_partition].to_owned();
    let (url, _) = redis_url();
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for id in [&first, &second] {
        let here: i64 = redis::cmd("EXISTS")
            .arg(format!("{key_prefix}d:{id}"))
            .query(&mut raw)
            .unwrap();
        assert_eq!(here, 1, "{id} is stored in its key's partition");
        assert!(
            backend.delivery(id).await.unwrap().is_some(),
            "{id} found by id"
        );
    }
    let token = agentsync_webhooks_queue::ClaimToken::new().unwrap();
    let claimed = backend
        .claim_ordered(&token, 8, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the key's second delivery is held back");
    assert_eq!(claimed[0].job.delivery.webhook_id, first);
    assert_eq!(claimed[0].order.as_ref().map(|o| o.key.as_str()), Some(key));
    assert!(backend.complete(&claimed[0].job).await.unwrap());
    let claimed = backend
        .claim_ordered(&token, 8, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the key freed, its next runs");
    assert_eq!(claimed[0].job.delivery.webhook_id, second);
    assert_eq!(
        claimed[0].order.as_ref().and_then(|o| o.newest_done_ms),
        Some(10)
    );
    assert!(backend.bury(&claimed[0].job, "boom").await.unwrap());
    // The record's actions by id reach the key's partition.
    assert!(backend.dead_letter(&second).await.unwrap().is_some());
    assert!(backend.replay(&second).await.unwrap());
    assert!(backend.discard(&second, "test").await.unwrap());
    assert!(backend.forget(&first, "test").await.unwrap());
    assert!(backend.replay_by(&first, "test").await.unwrap());
}

/// A partitioned queue of layout 2 (every delivery in its id's partition, keyless) upgraded to
/// layout 3: for the de-duplication retention, a keyed retry of a delivery stored by layout 2
/// is found in the id's partition and answered as a duplicate, not stored again in its key's.
#[tokio::test]
async fn a_partitioned_queue_of_layout_2_keeps_its_ids_known_to_keyed_retries() {
    let test = "a_partitioned_queue_of_layout_2_keeps_its_ids_known_to_keyed_retries";
    let Some((backend, _keys)) = backend_with(test, RedisOptions::new().partitions(3)).await else {
        return;
    };
    // A key whose partition is not the id's.
    let id = "legacy_1";
    let key = (0..)
        .map(|i| format!("npn:{i}"))
        .find(|key| backend.partition_of_key(key) != backend.partition(id))
        .unwrap();
    // What layout 2 wrote: the delivery unkeyed, in its id's partition; versions 2.
    assert_eq!(backend.enqueue(&delivery(id)).await.unwrap(), Enqueued::New);
    let (url, _) = redis_url();
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for prefix in backend.partition_prefixes() {
        let () = redis::cmd("SET")
            .arg(format!("{prefix}schema"))
            .arg(2)
            .query(&mut raw)
            .unwrap();
    }
    let () = redis::cmd("DEL")
        .arg(format!("{}legacy-until", backend.partition_prefixes()[0]))
        .query(&mut raw)
        .unwrap_or(());
    let upgraded =
        RedisBackend::connect_with(&url, RedisOptions::new().prefix(prefix(test)).partitions(3))
            .await
            .unwrap();
    let version: i64 = redis::cmd("GET")
        .arg(format!("{}schema", upgraded.partition_prefixes()[1]))
        .query(&mut raw)
        .unwrap();
    assert_eq!(version, 3);
    let order = agentsync_webhooks_queue::EventOrder {
        key: key.clone(),
        occurred_at_ms: 10,
    };
    assert_eq!(
        upgraded
            .enqueue_ordered(&delivery(id), &order)
            .await
            .unwrap(),
        Enqueued::Duplicate,
        "the sender's retry of a delivery stored by layout 2"
    );
    // A new keyed delivery goes to its key's partition.
    assert_eq!(
        upgraded
            .enqueue_ordered(&delivery("legacy_2"), &order)
            .await
            .unwrap(),
        Enqueued::New
    );
    let key_prefix = upgraded.partition_prefixes()[upgraded.partition_of_key(&key)].to_owned();
    let here: i64 = redis::cmd("EXISTS")
        .arg(format!("{key_prefix}d:legacy_2"))
        .query(&mut raw)
        .unwrap();
    assert_eq!(here, 1);
}

/// An address where nothing listens.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test]
async fn an_unreachable_redis_is_an_unreachable_store_error() {
    let err = RedisBackend::connect(&closed_port_url()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");
    let err = Queue::from_url(&closed_port_url()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");
}

/// A `redis-server` of the test's own on a free loopback port (no persistence), killed when
/// dropped, so that command counts are exact.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    /// `None` (skip, with a note) when `redis-server` is not installed.
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(err) => {
                eprintln!("skipping: no redis-server to start ({err})");
                return None;
            }
        };
        let server = Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if server.connection().is_some() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the private redis-server on port {port} does not answer");
    }

    fn connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url.as_str()).ok()?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut connection).ok()?;
        Some(connection)
    }

    /// Every command's `calls` from `INFO commandstats`, by name (`evalsha`, `info`, ...).
    fn calls(&self) -> std::collections::HashMap<String, u64> {
        let mut connection = self.connection().unwrap();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut connection)
            .unwrap();
        info.lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats.split(',').find_map(|s| s.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_enqueue_is_one_script_call_and_two_instances_share_the_work() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let options = || RedisOptions::new().prefix("one-call:");
    let first = RedisBackend::connect_with(&server.url, options())
        .await
        .unwrap();
    let second = RedisBackend::connect_with(&server.url, options())
        .await
        .unwrap();
    // The first call of a script loads it; count from then on.
    first.enqueue(&delivery("warm-up")).await.unwrap();
    second.enqueue(&delivery("warm-up")).await.unwrap();
    let before = server.calls();
    const ENQUEUES: u64 = 20;
    for n in 0..ENQUEUES {
        let backend = if n % 2 == 0 { &first } else { &second };
        assert_eq!(
            backend
                .enqueue(&delivery(&format!("msg_{n}")))
                .await
                .unwrap(),
            Enqueued::New
        );
    }
    assert_eq!(
        second.enqueue(&delivery("msg_0")).await.unwrap(),
        Enqueued::Duplicate
    );
    let after = server.calls();
    let delta: std::collections::HashMap<&str, u64> = after
        .iter()
        .filter(|(name, _)| !["info", "ping"].contains(&name.as_str()))
        .map(|(name, calls)| {
            let was = before.get(name).copied().unwrap_or(0);
            (name.as_str(), calls - was)
        })
        .filter(|(_, calls)| *calls > 0)
        .collect();
    // The commands a script runs are counted too: one EVALSHA per enqueue, its SET and the
    // HGET of the record's state; for each new one the XADD, the record's HSET (and one for its
    // occurred-at), its three index
    // entries (state; state and type; state and group) and the type's HSETNX; no command of
    // the client's besides.
    assert_eq!(
        delta,
        std::collections::HashMap::from([
            ("evalsha", ENQUEUES + 1),
            ("set", ENQUEUES + 1),
            ("hget", ENQUEUES + 1),
            ("xadd", ENQUEUES),
            ("hset", 2 * ENQUEUES),
            ("zadd", 3 * ENQUEUES),
            ("hsetnx", ENQUEUES),
        ]),
        "one script call per enqueue"
    );

    let jobs = second.claim(100, Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.len(), 21);
    assert!(
        first
            .claim(10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    // Either instance settles with the receipt.
    assert!(first.complete(&jobs[0]).await.unwrap());
}

#[tokio::test]
async fn a_redis_that_never_answers_is_a_timeout_not_a_hang() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let err = RedisBackend::connect_with(
        &url,
        RedisOptions::new().timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    silent.abort();
}

/// The id mark's time to live in seconds (`-1`: no expiry, `-2`: no mark).
fn mark_ttl(test: &str, webhook_id: &str) -> i64 {
    let (url, _) = redis_url();
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    redis::cmd("TTL")
        .arg(format!("{}id:{webhook_id}", prefix(test)))
        .query(&mut connection)
        .unwrap()
}

#[tokio::test]
async fn the_id_mark_lasts_while_the_job_lives_and_for_the_retention_once_done() {
    let test = "the_id_mark_lasts_while_the_job_lives_and_for_the_retention_once_done";
    let options = RedisOptions::new().retention(Duration::from_secs(600));
    let Some((backend, _keys)) = backend_with(test, options).await else {
        return;
    };
    let lease = Duration::from_secs(30);

    backend.enqueue(&delivery("msg_1")).await.unwrap();
    assert_eq!(mark_ttl(test, "msg_1"), -1, "queued: no expiry");

    let job = backend.claim(1, lease).await.unwrap().remove(0);
    assert!(backend.retry(&job, Duration::ZERO, "boom").await.unwrap());
    assert_eq!(mark_ttl(test, "msg_1"), -1, "retrying: no expiry");
    assert_eq!(
        backend.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::Duplicate
    );

    let job = backend.claim(1, lease).await.unwrap().remove(0);
    assert!(backend.bury(&job, "gave up").await.unwrap());
    assert_eq!(mark_ttl(test, "msg_1"), -1, "dead: no expiry");

    assert!(backend.replay("msg_1").await.unwrap());
    assert_eq!(mark_ttl(test, "msg_1"), -1, "replayed: no expiry");

    let job = backend.claim(1, lease).await.unwrap().remove(0);
    assert!(backend.complete(&job).await.unwrap());
    let ttl = mark_ttl(test, "msg_1");
    assert!(
        (1..=600).contains(&ttl),
        "done: the retention (600 s), got {ttl}"
    );
}

/// A plain connection to the shared Redis, for a test to look at or damage its keys by hand.
fn raw_connection() -> redis::Connection {
    let (url, _) = redis_url();
    redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

/// The stream entry id in a job's receipt (`entry/count`).
fn entry_of(job: &agentsync_webhooks_queue::Job) -> String {
    job.receipt.0.split_once('/').unwrap().0.to_owned()
}

#[tokio::test]
async fn leases_and_due_times_are_the_engines_clock_not_an_instances() {
    let test = "leases_and_due_times_are_the_engines_clock_not_an_instances";
    let Some((holder, _keys)) = backend(test).await else {
        return;
    };
    let (url, _) = redis_url();
    let ahead = RedisBackend::connect_with(
        &url,
        RedisOptions::new()
            .prefix(prefix(test))
            .clock_offset(Duration::from_secs(25)),
    )
    .await
    .unwrap();
    let lease = Duration::from_secs(30);
    holder.enqueue(&delivery("retried")).await.unwrap();
    holder.enqueue(&delivery("leased")).await.unwrap();

    // A retry due in 20 s is not due for the instance 25 s ahead either.
    let retried = holder.claim(1, lease).await.unwrap().remove(0);
    assert!(
        holder
            .retry(&retried, Duration::from_secs(20), "later")
            .await
            .unwrap()
    );
    let leased = holder.claim(1, lease).await.unwrap().remove(0);
    assert_eq!(leased.delivery.webhook_id, "leased");
    assert!(
        ahead.claim(10, lease).await.unwrap().is_empty(),
        "a retry ran 20 s early"
    );

    // A 30 s lease would end 5 s after its start (or its last extension) on a clock 25 s
    // ahead: watch for 7 s, extending once after a second.
    for round in 1..=14 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if round == 2 {
            assert!(holder.extend(&leased, lease).await.unwrap());
        }
        assert!(
            ahead.claim(10, lease).await.unwrap().is_empty(),
            "the instance 25 s ahead took a live lease after {} ms",
            round * 500
        );
    }
    assert!(holder.complete(&leased).await.unwrap());
}

#[tokio::test]
async fn a_pending_entry_that_lost_its_lease_member_comes_back() {
    let test = "a_pending_entry_that_lost_its_lease_member_comes_back";
    let Some((backend, _keys)) = backend(test).await else {
        return;
    };
    let lease = Duration::from_millis(300);
    backend.enqueue(&delivery("msg_1")).await.unwrap();
    let job = backend.claim(1, lease).await.unwrap().remove(0);
    // Evicted, or never written: the entry is pending in the group with no lease.
    let removed: i64 = redis::cmd("ZREM")
        .arg(format!("{}leases", prefix(test)))
        .arg(entry_of(&job))
        .query(&mut raw_connection())
        .unwrap();
    assert_eq!(removed, 1);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let again = backend.claim(1, lease).await.unwrap();
    assert_eq!(again.len(), 1, "the entry without a lease never came back");
    assert_eq!(again[0].attempt, 2);
    assert!(!backend.complete(&job).await.unwrap());
    assert!(backend.complete(&again[0]).await.unwrap());
}

#[tokio::test]
async fn durations_redis_would_refuse_are_clamped_before_anything_is_written() {
    let test = "durations_redis_would_refuse_are_clamped_before_anything_is_written";
    let options = RedisOptions::new()
        .retention(Duration::MAX)
        .dead_retention(Duration::MAX);
    let Some((backend, _keys)) = backend_with(test, options).await else {
        return;
    };
    backend.enqueue(&delivery("done")).await.unwrap();
    backend.enqueue(&delivery("retried")).await.unwrap();
    let jobs = backend.claim(2, Duration::MAX).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(backend.extend(&jobs[0], Duration::MAX).await.unwrap());
    assert!(
        backend.complete(&jobs[0]).await.unwrap(),
        "complete with retention(Duration::MAX)"
    );
    assert!(
        backend
            .retry(&jobs[1], Duration::MAX, "much later")
            .await
            .unwrap()
    );
    assert!(
        backend.claim(10, Duration::MAX).await.unwrap().is_empty(),
        "a completed or retried job is claimable again"
    );
    assert_eq!(
        backend.enqueue(&delivery("done")).await.unwrap(),
        Enqueued::Duplicate
    );
    assert!(mark_ttl(test, "done") > 0, "the done mark expires some day");
    assert_eq!(backend.stats().await.unwrap().depth, 1, "the retry waits");
    assert_eq!(backend.purge().await.unwrap().dead, 0);
}

#[tokio::test]
async fn a_second_consumer_group_on_a_prefix_is_refused() {
    let test = "a_second_consumer_group_on_a_prefix_is_refused";
    let Some((old, _keys)) = backend_with(test, RedisOptions::new().group("old-workers")).await
    else {
        return;
    };
    old.enqueue(&delivery("msg_1")).await.unwrap();
    let (url, _) = redis_url();
    let err = RedisBackend::connect_with(
        &url,
        RedisOptions::new()
            .prefix(prefix(test))
            .group("new-workers"),
    )
    .await
    .expect_err("a second group on the prefix would run every job again");
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err}");
    assert!(err.to_string().contains("old-workers"), "{err}");

    // A group created after connecting (the old one destroyed by hand, another created):
    // the claim refuses to create its own.
    let stream = format!("{}stream", prefix(test));
    let mut raw = raw_connection();
    let _: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&stream)
        .arg("old-workers")
        .query(&mut raw)
        .unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("other-workers")
        .arg("0")
        .query(&mut raw)
        .unwrap();
    let err = old
        .claim(10, Duration::from_secs(30))
        .await
        .expect_err("the claim created a second group");
    assert!(err.to_string().contains("other-workers"), "{err}");
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&stream)
        .query(&mut raw)
        .unwrap();
    assert_eq!(groups.len(), 1, "a group was created");
}

#[tokio::test]
async fn a_malformed_entry_neither_stalls_the_queue_nor_is_half_buried() {
    let test = "a_malformed_entry_neither_stalls_the_queue_nor_is_half_buried";
    let Some((backend, _keys)) = backend(test).await else {
        return;
    };
    let stream = format!("{}stream", prefix(test));
    let mut raw = raw_connection();
    // Written by something else: no webhook id.
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("type")
        .arg("x")
        .query(&mut raw)
        .unwrap();
    backend.enqueue(&delivery("msg_1")).await.unwrap();
    let jobs = backend.claim(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        jobs.iter()
            .map(|job| job.delivery.webhook_id.as_str())
            .collect::<Vec<_>>(),
        ["msg_1"]
    );
    assert!(backend.complete(&jobs[0]).await.unwrap());
    // The claim took it out of the pending list, into the quarantine (too broken to bury).
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg(agentsync_webhooks_queue::redis::DEFAULT_GROUP)
        .arg("-")
        .arg("+")
        .arg(10)
        .query(&mut raw)
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    let quarantined: i64 = redis::cmd("XLEN")
        .arg(format!("{}quarantine", prefix(test)))
        .query(&mut raw)
        .unwrap();
    assert_eq!(quarantined, 1);

    // Another, read by hand rather than by a claim: burying it (with a receipt made by hand)
    // drops it rather than fail after writing the dead letter.
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("type")
        .arg("x")
        .query(&mut raw)
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(agentsync_webhooks_queue::redis::DEFAULT_GROUP)
        .arg("by-hand")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query(&mut raw)
        .unwrap();
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg(agentsync_webhooks_queue::redis::DEFAULT_GROUP)
        .arg("-")
        .arg("+")
        .arg(10)
        .query(&mut raw)
        .unwrap();
    assert_eq!(pending.len(), 1, "the malformed entry is held");
    let job = agentsync_webhooks_queue::Job {
        receipt: agentsync_webhooks_queue::Receipt(format!("{}/{}", pending[0].0, pending[0].3)),
        ..jobs[0].clone()
    };
    assert!(!backend.bury(&job, "malformed").await.unwrap());
    let dead: i64 = redis::cmd("XLEN")
        .arg(format!("{}dead", prefix(test)))
        .query(&mut raw)
        .unwrap();
    assert_eq!(dead, 0, "a dead letter without its index");
    assert_eq!(backend.stats().await.unwrap(), Default::default());
}

/// A key's head woken while more than a claim script's bound of the key's later entries were
/// never read (so sit before it in the stream) is claimed by the next claim, not after a poll:
/// the claim runs its script again while the script stops at its bound of held-back entries.
#[tokio::test]
async fn a_woken_head_behind_more_than_the_read_bound_is_claimed_at_once() {
    let test = "a_woken_head_behind_more_than_the_read_bound_is_claimed_at_once";
    let Some((backend, _keys)) = backend(test).await else {
        return;
    };
    let key = "npn:1";
    let ids: Vec<String> = (0..300).map(|i| format!("w_{i:03}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let order = agentsync_webhooks_queue::EventOrder {
            key: key.into(),
            occurred_at_ms: i64::try_from(i).unwrap(),
        };
        backend
            .enqueue_ordered(&delivery(id), &order)
            .await
            .unwrap();
    }
    let token = agentsync_webhooks_queue::ClaimToken::new().unwrap();
    let lease = Duration::from_secs(30);
    let first = backend.claim_ordered(&token, 1, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].job.delivery.webhook_id, ids[0]);
    // While the head runs, a claim holds back the next entries it reads (the key is held).
    assert!(
        backend
            .claim_ordered(&token, 1, lease)
            .await
            .unwrap()
            .is_empty(),
        "the key runs: nothing of it is claimed"
    );
    // Done: the key's next (held back) is added again at the end of the stream, behind the
    // entries no claim read yet (more than a script reads past the wanted ones).
    assert!(backend.complete(&first[0].job).await.unwrap());
    let next = backend.claim_ordered(&token, 1, lease).await.unwrap();
    assert_eq!(
        next.iter()
            .map(|claimed| claimed.job.delivery.webhook_id.as_str())
            .collect::<Vec<_>>(),
        [ids[1].as_str()],
        "the key's next event, claimed by the first claim after the key was freed"
    );
    assert!(backend.complete(&next[0].job).await.unwrap());
    let stats = backend.stats().await.unwrap();
    assert_eq!(stats.depth, 298, "the rest wait, none lost");
}

/// Completions that arrive together share one script: each settles under its own receipt (a
/// receipt given twice completes once), each record is done with its attempt in its history,
/// and the lists and counts move with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_completions_settle_each_job_once() {
    use agentsync_webhooks_queue::record::{DeliveryFilter, DeliveryState};
    let test = "concurrent_completions_settle_each_job_once";
    let Some((backend, _keys)) = backend(test).await else {
        return;
    };
    let ids: Vec<String> = (0..40).map(|i| format!("c_{i:02}")).collect();
    for id in &ids {
        backend.enqueue(&delivery(id)).await.unwrap();
    }
    let jobs = backend.claim(40, Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.len(), 40);
    // Every job completed at once, the first five twice (a caller asking again).
    let mut calls = tokio::task::JoinSet::new();
    for (n, job) in jobs.iter().chain(jobs.iter().take(5)).enumerate() {
        let (backend, job) = (backend.clone(), job.clone());
        calls.spawn(async move {
            (
                n,
                job.delivery.webhook_id.clone(),
                backend.complete(&job).await,
            )
        });
    }
    let mut completed = std::collections::HashMap::<String, u32>::new();
    while let Some(joined) = calls.join_next().await {
        let (_, id, answer) = joined.unwrap();
        if answer.unwrap() {
            *completed.entry(id).or_default() += 1;
        }
    }
    assert_eq!(completed.len(), 40, "every job completed");
    assert!(
        completed.values().all(|&n| n == 1),
        "each once: {completed:?}"
    );
    for id in &ids {
        let record = backend.delivery(id).await.unwrap().unwrap();
        assert_eq!(record.state, DeliveryState::Done, "{id}");
        assert_eq!(record.history.len(), 1, "{id}: its one attempt");
        assert!(record.done_at_ms.is_some(), "{id}");
    }
    let counts = backend.counts(&DeliveryFilter::new()).await.unwrap();
    assert_eq!(counts.state(DeliveryState::Done), 40);
    assert_eq!(counts.state(DeliveryState::Running), 0);
    let done = backend
        .list(&DeliveryFilter::new().state(DeliveryState::Done), None, 100)
        .await
        .unwrap();
    assert_eq!(done.deliveries.len(), 40, "listed as done");
    let running = backend
        .list(
            &DeliveryFilter::new().state(DeliveryState::Running),
            None,
            100,
        )
        .await
        .unwrap();
    assert!(running.deliveries.is_empty(), "none listed as running");
    assert_eq!(backend.stats().await.unwrap(), Default::default());
    // Done: a retry of each from the sender is a duplicate.
    assert_eq!(
        backend.enqueue(&delivery(&ids[0])).await.unwrap(),
        Enqueued::Duplicate
    );
}
