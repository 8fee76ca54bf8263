//! The delivery record's layout on Redis: a queue written by the layout before the record
//! (version 1, no `schema` key) is upgraded in place with its jobs and dead letters; a queue of
//! a newer layout is refused before anything is written; a list reads only the index sorted
//! sets and the page's records, never the keyspace.
//!
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`) as `redis.rs` does, each test under its
//! own prefix, its keys deleted at the end; the command counts use a private `redis-server`.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agentsync_webhooks_queue::{
    Backend, Enqueued, Job, Receipt, StoreErrorKind,
    contract::sample_delivery,
    record::{DeliveryFilter, DeliveryState},
    redis::{DEFAULT_GROUP, RedisBackend, RedisOptions},
};

fn redis_url() -> (String, bool) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => ("redis://127.0.0.1:6379".to_owned(), false),
    }
}

fn prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "agentsync-webhooks-test:record:{}-{nanos:x}:{test}:",
        std::process::id()
    )
}

/// A plain connection, or `None` (skip, with a note) when Redis is unreachable and `REDIS_URL`
/// is not set.
fn raw(test: &str) -> Option<redis::Connection> {
    let (url, required) = redis_url();
    match redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
    {
        Ok(connection) => Some(connection),
        Err(err) if required => panic!("REDIS_URL={url} is set but Redis is unreachable: {err}"),
        Err(err) => {
            eprintln!("skipping {test}: no Redis at {url} ({err})");
            None
        }
    }
}

fn keys_under(connection: &mut redis::Connection, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(connection)
        .unwrap();
    keys.sort();
    keys
}

/// Deletes a test's keys when the test ends.
struct DropKeys(String);

impl Drop for DropKeys {
    fn drop(&mut self) {
        if let Some(mut connection) = raw("cleanup") {
            let keys = keys_under(&mut connection, &self.0);
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
        }
    }
}

/// `XADD` of a delivery with the field names of the layout before the record.
fn old_entry(
    connection: &mut redis::Connection,
    stream: &str,
    id: &str,
    attempts: u32,
    extra: &[(&str, &str)],
) -> String {
    let delivery = sample_delivery(id);
    let mut command = redis::cmd("XADD");
    command
        .arg(stream)
        .arg("*")
        .arg("id")
        .arg(id)
        .arg("type")
        .arg(&delivery.event_type)
        .arg("ts")
        .arg(delivery.webhook_timestamp)
        .arg("sig")
        .arg(&delivery.signature)
        .arg("recv")
        .arg(delivery.received_at_ms)
        .arg("body")
        .arg(delivery.body.as_ref())
        .arg("a")
        .arg(attempts);
    for (name, value) in extra {
        command.arg(*name).arg(*value);
    }
    command.query(connection).unwrap()
}

fn now_ms() -> i64 {
    agentsync_webhooks_core::handoff::now_ms()
}

#[tokio::test]
async fn a_queue_of_the_layout_before_the_record_is_upgraded_in_place() {
    let test = "upgraded";
    let Some(mut raw) = raw(test) else {
        return;
    };
    let p = prefix(test);
    let _keys = DropKeys(p.clone());
    let stream = format!("{p}stream");
    let set = |raw: &mut redis::Connection, key: String| {
        let _: () = redis::cmd("SET").arg(key).arg("1").query(raw).unwrap();
    };
    // The old layout, by hand: a group on the stream, two waiting jobs (one already failed
    // once, given back by a shutdown), one running under a lease, one retry scheduled, one
    // dead letter, and the mark of a done one (its entry deleted, as the old complete did).
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg(DEFAULT_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut raw)
        .unwrap();
    let running = old_entry(&mut raw, &stream, "old-running", 0, &[]);
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(DEFAULT_GROUP)
        .arg("workers")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query(&mut raw)
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{p}leases"))
        .arg(now_ms() + 600_000)
        .arg(&running)
        .query(&mut raw)
        .unwrap();
    old_entry(&mut raw, &stream, "old-waiting", 0, &[]);
    old_entry(&mut raw, &stream, "old-released", 1, &[]);
    let sid = old_entry(
        &mut raw,
        &format!("{p}scheduled"),
        "old-retrying",
        2,
        &[("err", "try again")],
    );
    let due = now_ms() + 600_000;
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{p}due"))
        .arg(due)
        .arg(&sid)
        .query(&mut raw)
        .unwrap();
    let died = (now_ms() - 1_000).to_string();
    let did = old_entry(
        &mut raw,
        &format!("{p}dead"),
        "old-dead",
        5,
        &[("err", "handler_failed: boom"), ("died", died.as_str())],
    );
    let _: i64 = redis::cmd("HSET")
        .arg(format!("{p}dead-index"))
        .arg("old-dead")
        .arg(&did)
        .query(&mut raw)
        .unwrap();
    for id in [
        "old-running",
        "old-waiting",
        "old-released",
        "old-retrying",
        "old-dead",
    ] {
        set(&mut raw, format!("{p}id:{id}"));
    }
    let _: () = redis::cmd("SET")
        .arg(format!("{p}id:old-done"))
        .arg("1")
        .arg("EX")
        .arg(600)
        .query(&mut raw)
        .unwrap();

    let (url, _) = redis_url();
    let options = || RedisOptions::new().prefix(p.clone());
    let backend = RedisBackend::connect_with(&url, options()).await.unwrap();
    let version: String = redis::cmd("GET")
        .arg(format!("{p}schema"))
        .query(&mut raw)
        .unwrap();
    assert_eq!(version, "2", "the version is set once upgraded");

    let state = |id: &'static str| {
        let backend = backend.clone();
        async move {
            let record = backend.delivery(id).await.unwrap().unwrap_or_else(|| {
                panic!("{id} has no record after the upgrade");
            });
            assert_eq!(record.delivery, sample_delivery(id), "{id}: stored as sent");
            record
        }
    };
    assert_eq!(state("old-waiting").await.state, DeliveryState::Waiting);
    let released = state("old-released").await;
    assert_eq!(
        (released.state, released.attempts),
        (DeliveryState::Retrying, 1)
    );
    let running_record = state("old-running").await;
    assert_eq!(
        (running_record.state, running_record.attempts),
        (DeliveryState::Running, 1)
    );
    let retrying = state("old-retrying").await;
    assert_eq!(retrying.state, DeliveryState::Retrying);
    assert_eq!(retrying.last_error.as_deref(), Some("try again"));
    assert_eq!(retrying.next_run_at_ms, Some(due));
    let dead = state("old-dead").await;
    assert_eq!(dead.state, DeliveryState::Dead);
    assert_eq!(dead.attempts, 5);
    assert_eq!(dead.last_error.as_deref(), Some("handler_failed: boom"));
    assert_eq!(dead.died_at_ms, died.parse().ok());

    let counts = backend.counts(&DeliveryFilter::new()).await.unwrap();
    assert_eq!(counts.total(), 5, "{counts:?}");
    let page = backend
        .list(&DeliveryFilter::new(), None, 50)
        .await
        .unwrap();
    assert_eq!(page.deliveries.len(), 5);
    assert_eq!(
        backend
            .list(&DeliveryFilter::new().state(DeliveryState::Dead), None, 50)
            .await
            .unwrap()
            .deliveries[0]
            .webhook_id,
        "old-dead"
    );

    // A second instance connecting finds the work done.
    let second = RedisBackend::connect_with(&url, options()).await.unwrap();
    assert_eq!(
        second.counts(&DeliveryFilter::new()).await.unwrap().total(),
        5
    );

    // The jobs keep running: the waiting ones are claimed, the running one settles with its
    // receipt, the dead letter is listed and replays, the done id stays a duplicate.
    let lease = Duration::from_secs(30);
    let mut claimed: Vec<(String, u32)> = backend
        .claim(10, lease)
        .await
        .unwrap()
        .into_iter()
        .map(|job| (job.delivery.webhook_id, job.attempt))
        .collect();
    claimed.sort();
    assert_eq!(
        claimed,
        [
            ("old-released".to_owned(), 2),
            ("old-waiting".to_owned(), 1)
        ]
    );
    let held = Job {
        delivery: sample_delivery("old-running"),
        attempt: 1,
        receipt: Receipt(format!("{running}/1")),
    };
    assert!(backend.complete(&held).await.unwrap(), "the running job");
    let done = state("old-running").await;
    assert_eq!(done.state, DeliveryState::Done);
    assert_eq!(done.history.len(), 1, "its attempt: {:?}", done.history);
    let dead_letters = backend.dead_letters(10).await.unwrap();
    assert_eq!(dead_letters.len(), 1);
    assert_eq!(dead_letters[0].last_error, "handler_failed: boom");
    assert!(backend.replay_by("old-dead", "cli").await.unwrap());
    let replayed = backend.claim(10, lease).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(
        (
            replayed[0].delivery.webhook_id.as_str(),
            replayed[0].attempt
        ),
        ("old-dead", 1)
    );
    assert_eq!(
        backend.enqueue(&sample_delivery("old-done")).await.unwrap(),
        Enqueued::Duplicate,
        "a done id of the old layout stays known until its mark expires"
    );
    assert_eq!(
        backend
            .enqueue(&sample_delivery("old-waiting"))
            .await
            .unwrap(),
        Enqueued::Duplicate
    );
}

#[tokio::test]
async fn a_queue_of_a_newer_layout_is_refused_before_anything_is_written() {
    let test = "newer";
    let Some(mut raw) = raw(test) else {
        return;
    };
    let p = prefix(test);
    let _keys = DropKeys(p.clone());
    let _: () = redis::cmd("SET")
        .arg(format!("{p}schema"))
        .arg("3")
        .query(&mut raw)
        .unwrap();
    let before = keys_under(&mut raw, &p);
    let (url, _) = redis_url();
    let err = RedisBackend::connect_with(&url, RedisOptions::new().prefix(p.clone()))
        .await
        .expect_err("a newer layout was opened");
    assert_eq!(err.kind(), StoreErrorKind::Other, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("newer") && message.contains("version 3") && message.contains(&p),
        "{message}"
    );
    assert!(message.contains("nothing was written"), "{message}");
    assert_eq!(keys_under(&mut raw, &p), before, "something was written");
}

#[tokio::test]
async fn a_new_queue_gets_the_current_version() {
    let test = "new";
    let Some(mut raw) = raw(test) else {
        return;
    };
    let p = prefix(test);
    let _keys = DropKeys(p.clone());
    let (url, _) = redis_url();
    let backend = RedisBackend::connect_with(&url, RedisOptions::new().prefix(p.clone()))
        .await
        .unwrap();
    let version: String = redis::cmd("GET")
        .arg(format!("{p}schema"))
        .query(&mut raw)
        .unwrap();
    assert_eq!(version, "2");
    backend.enqueue(&sample_delivery("msg_1")).await.unwrap();
    drop(backend);
    // Connecting again neither upgrades nor rewrites anything.
    let again = RedisBackend::connect_with(&url, RedisOptions::new().prefix(p.clone()))
        .await
        .unwrap();
    assert_eq!(
        again.counts(&DeliveryFilter::new()).await.unwrap().total(),
        1
    );
}

/// A `redis-server` of the test's own on a free loopback port, killed when dropped.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
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

    fn calls(&self) -> HashMap<String, u64> {
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

    /// The commands run by `work`, by name (`info` and `ping` aside).
    async fn commands_of<T>(&self, work: impl Future<Output = T>) -> (T, HashMap<String, u64>) {
        let before = self.calls();
        let value = work.await;
        let after = self.calls();
        let delta = after
            .into_iter()
            .filter(|(name, _)| !["info", "ping"].contains(&name.as_str()))
            .map(|(name, calls)| {
                let was = before.get(&name).copied().unwrap_or(0);
                (name, calls - was)
            })
            .filter(|(_, calls)| *calls > 0)
            .collect();
        (value, delta)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_50_from_5000_deliveries_reads_only_the_indexes_and_the_page() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let backend = RedisBackend::connect_with(&server.url, RedisOptions::new().prefix("{q}:"))
        .await
        .unwrap();
    let types = [
        "producersync.updates_available",
        "contract.signed",
        "endpoint.unknown",
    ];
    let base = now_ms() - 10_000_000;
    let mut tasks = Vec::new();
    for sender in 0..8_usize {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            for n in (sender..5_000).step_by(8) {
                let delivery = agentsync_webhooks_queue::ReceivedDelivery {
                    event_type: types[n % types.len()].into(),
                    // Two deliveries per ms: ties at one ms are ordered by id.
                    received_at_ms: base + i64::try_from(n / 2).unwrap(),
                    ..sample_delivery(&format!("msg_{n:05}"))
                };
                assert_eq!(backend.enqueue(&delivery).await.unwrap(), Enqueued::New);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // A few in other states.
    let jobs = backend.claim(30, Duration::from_secs(60)).await.unwrap();
    for (n, job) in jobs.iter().enumerate() {
        match n % 3 {
            0 => assert!(backend.complete(job).await.unwrap()),
            1 => assert!(backend.bury(job, "dead").await.unwrap()),
            _ => assert!(
                backend
                    .retry(job, Duration::from_secs(600), "later")
                    .await
                    .unwrap()
            ),
        }
    }
    // Warm the script cache.
    backend.list(&DeliveryFilter::new(), None, 1).await.unwrap();
    backend.counts(&DeliveryFilter::new()).await.unwrap();

    let (page, commands) = server
        .commands_of(backend.list(&DeliveryFilter::new(), None, 50))
        .await;
    let page = page.unwrap();
    assert_eq!(page.deliveries.len(), 50);
    assert_eq!(page.deliveries[0].webhook_id, "msg_04999");
    assert_eq!(
        page.deliveries[1].webhook_id, "msg_04998",
        "a tie at one ms"
    );
    // One script; one range read per state's index; the page's 51 records; nothing else (no
    // KEYS, SCAN, HGETALL or read of a record outside the page).
    assert_eq!(
        commands,
        HashMap::from([
            ("evalsha".to_owned(), 1),
            ("zrevrangebyscore".to_owned(), 5),
            ("hmget".to_owned(), 51),
        ]),
        "the first page"
    );

    let (next, commands) = server
        .commands_of(backend.list(&DeliveryFilter::new(), page.next.as_ref(), 50))
        .await;
    let next = next.unwrap();
    assert_eq!(next.deliveries[0].webhook_id, "msg_04949");
    // The cursor's ms is read first for ties, then the rest, in each state's index.
    assert!(
        commands.get("zrevrangebyscore").copied().unwrap_or(0) <= 10
            && commands.get("hmget") == Some(&51)
            && commands.len() == 3,
        "the next page: {commands:?}"
    );

    let filter = DeliveryFilter::new()
        .state(DeliveryState::Waiting)
        .event_type("contract.signed");
    let (page, commands) = server.commands_of(backend.list(&filter, None, 50)).await;
    assert!(
        page.unwrap()
            .deliveries
            .iter()
            .all(|d| d.event_type == "contract.signed" && d.state == DeliveryState::Waiting)
    );
    assert_eq!(
        commands,
        HashMap::from([
            ("evalsha".to_owned(), 1),
            ("zrevrangebyscore".to_owned(), 1),
            ("hmget".to_owned(), 51),
        ]),
        "a state and a type: one index"
    );

    let (counts, commands) = server
        .commands_of(backend.counts(&DeliveryFilter::new().received_since(base + 1_000)))
        .await;
    let counts = counts.unwrap();
    assert_eq!(counts.total(), 5_000 - 2_000);
    // The type registry, then a ZCOUNT per state and type: no delivery is read.
    assert_eq!(
        commands,
        HashMap::from([
            ("evalsha".to_owned(), 1),
            ("hgetall".to_owned(), 1),
            ("zcount".to_owned(), 5 * 3),
        ]),
        "counts"
    );
}
