//! What the delivery record costs on Redis with many deliveries stored: one page of 50 and the
//! counts (each timed over 50 runs), and the memory of a delivery. Ignored by default; run
//! with
//!
//! ```text
//! cargo test -p agentsync-webhooks-queue --features redis --test redis_record_bench -- --ignored --nocapture
//! BENCH_DELIVERIES=20000 cargo test ... (the same, fewer deliveries)
//! ```
//!
//! It starts a private `redis-server` on a free loopback port (no persistence) so that the
//! memory figures are this queue's alone, stores `BENCH_DELIVERIES` (default 100,000)
//! deliveries received over 7 days across four types (most done, some dead, retrying or
//! waiting), and prints the figures.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use agentsync_webhooks_queue::{
    Backend, Enqueued, ReceivedDelivery,
    record::{DeliveryFilter, DeliveryState},
    redis::{RedisBackend, RedisOptions},
};

struct PrivateRedis(Child, String);

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Option<PrivateRedis> {
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
        .spawn()
        .ok()?;
    let server = PrivateRedis(child, format!("redis://127.0.0.1:{port}"));
    for _ in 0..100 {
        if connection(&server.1).is_some() {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn connection(url: &str) -> Option<redis::Connection> {
    let mut connection = redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    redis::cmd("PING").query::<String>(&mut connection).ok()?;
    Some(connection)
}

fn used_memory(url: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut connection(url).unwrap())
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

fn memory_usage(url: &str, key: &str) -> i64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query::<Option<i64>>(&mut connection(url).unwrap())
        .unwrap()
        .unwrap_or(0)
}

const TYPES: [&str; 4] = [
    "producersync.updates_available",
    "contract.signed",
    "contract.cancelled",
    "id.producer.updated",
];

/// A delivery of about the size AgentSync sends (a 300-byte body).
fn delivery(n: usize, received_at_ms: i64) -> ReceivedDelivery {
    let event_type = TYPES[n % TYPES.len()];
    ReceivedDelivery {
        webhook_id: format!("msg_2bench{n:08}"),
        event_type: event_type.into(),
        webhook_timestamp: received_at_ms / 1_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
        received_at_ms,
        body: bytes::Bytes::from(format!(
            r#"{{"id":"whe_2bench{n:08}","type":"{event_type}","timestamp":"2026-01-01T00:00:00.000Z","data":{{"runDate":"2026-01-01","producerId":"prod_0123456789","npn":"12345678","states":["CA","NY","TX"],"lines":["life","health"],"note":"a typical payload of a few hundred bytes, padded to look like one"}}}}"#
        )),
    }
}

/// Median and 95th percentile of `runs` runs of `call`, in ms.
async fn time<T>(runs: usize, mut call: impl AsyncFnMut() -> T) -> (f64, f64) {
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        std::hint::black_box(call().await);
        took.push(started.elapsed().as_secs_f64() * 1_000.0);
    }
    took.sort_by(f64::total_cmp);
    (took[runs / 2], took[(runs * 95 / 100).min(runs - 1)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn what_a_page_and_the_counts_cost_with_many_deliveries_stored() {
    let Some(server) = start() else {
        eprintln!("skipping: no redis-server to start");
        return;
    };
    let url = server.1.clone();
    let total: usize = std::env::var("BENCH_DELIVERIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let backend = Arc::new(
        RedisBackend::connect_with(&url, RedisOptions::new().prefix("{bench}:"))
            .await
            .unwrap(),
    );
    let empty = used_memory(&url);
    let now = agentsync_webhooks_core::handoff::now_ms();
    let week = 7 * 24 * 3_600_000_i64;
    let step = week / i64::try_from(total).unwrap();
    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..32 {
        let backend = Arc::clone(&backend);
        senders.push(tokio::spawn(async move {
            for n in (sender..total).step_by(32) {
                let at = now - week + i64::try_from(n).unwrap() * step;
                assert_eq!(
                    backend.enqueue(&delivery(n, at)).await.unwrap(),
                    Enqueued::New
                );
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    println!(
        "stored {total} deliveries in {:.1?} (32 concurrent senders)",
        started.elapsed()
    );
    let waiting_memory = used_memory(&url) - empty;

    // Most done, 2 % dead, 3 % retrying, the newest 5 % waiting.
    let settle = total * 95 / 100;
    let started = Instant::now();
    let mut settled = 0;
    while settled < settle {
        let jobs = backend
            .claim(500.min(settle - settled), Duration::from_secs(600))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for job in jobs {
            let backend = Arc::clone(&backend);
            let n = settled;
            settled += 1;
            tasks.push(tokio::spawn(async move {
                match n % 100 {
                    0 | 1 => assert!(backend.bury(&job, "handler_failed: boom").await.unwrap()),
                    2..=4 => assert!(
                        backend
                            .retry(&job, Duration::from_secs(3_600), "try again")
                            .await
                            .unwrap()
                    ),
                    _ => assert!(backend.complete(&job).await.unwrap()),
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    println!("settled {settle} in {:.1?}", started.elapsed());
    let memory = used_memory(&url) - empty;
    let counts = backend.counts(&DeliveryFilter::new()).await.unwrap();
    println!("states: {:?}", counts.by_state);

    let one = delivery(7, 0);
    let done_id = (0..total)
        .map(|n| delivery(n, 0).webhook_id)
        .find(|id| record_state(&url, id).as_deref() == Some("done"))
        .unwrap();
    println!(
        "memory: {:.0} bytes per delivery stored and waiting (stream entry, record, indexes), \
         {:.0} per delivery once most are done ({} in all, used_memory)",
        waiting_memory as f64 / total as f64,
        memory as f64 / total as f64,
        memory
    );
    println!(
        "memory of one done delivery: record hash {} bytes, history list {} bytes (body {} \
         bytes); its id mark {} bytes",
        memory_usage(&url, &format!("{{bench}}:d:{done_id}")),
        memory_usage(&url, &format!("{{bench}}:h:{done_id}")),
        one.body.len(),
        memory_usage(&url, &format!("{{bench}}:id:{done_id}")),
    );
    for key in [
        "r:s:done",
        "r:st:done:contract.signed",
        "r:sg:done:contract",
        "done-at",
    ] {
        let key = format!("{{bench}}:{key}");
        let members: i64 = redis::cmd("ZCARD")
            .arg(&key)
            .query(&mut connection(&url).unwrap())
            .unwrap();
        let bytes = memory_usage(&url, &key);
        println!(
            "index {key}: {members} members, {bytes} bytes ({:.0} per member)",
            bytes as f64 / members.max(1) as f64
        );
    }

    const RUNS: usize = 50;
    let hour_ago = now - 3_600_000;
    let cases: Vec<(&str, DeliveryFilter)> = vec![
        ("everything", DeliveryFilter::new()),
        ("dead", DeliveryFilter::new().state(DeliveryState::Dead)),
        (
            "retrying or dead",
            DeliveryFilter::new().states([DeliveryState::Retrying, DeliveryState::Dead]),
        ),
        (
            "one type",
            DeliveryFilter::new().event_type("contract.signed"),
        ),
        ("a group", DeliveryFilter::new().event_type("contract")),
        (
            "the last hour",
            DeliveryFilter::new().received_since(hour_ago),
        ),
        (
            "done, one type, a day",
            DeliveryFilter::new()
                .state(DeliveryState::Done)
                .event_type("contract.signed")
                .received_since(now - 2 * 86_400_000)
                .received_until(now - 86_400_000),
        ),
        ("an id", DeliveryFilter::new().id(done_id.clone())),
        (
            "an id prefix (the newest 1 in 10)",
            DeliveryFilter::new().id_prefix("msg_2bench0009"),
        ),
    ];
    for (name, filter) in &cases {
        let (median, p95) =
            time(RUNS, async || backend.list(filter, None, 50).await.unwrap()).await;
        let first = backend.list(filter, None, 50).await.unwrap();
        let (next_median, next_p95) = time(RUNS, async || {
            backend.list(filter, first.next.as_ref(), 50).await.unwrap()
        })
        .await;
        println!(
            "list 50, {name:24} first page {median:6.2} ms (p95 {p95:6.2}), next page \
             {next_median:6.2} ms (p95 {next_p95:6.2}); {} on the page",
            first.deliveries.len()
        );
    }
    for (name, filter) in [
        ("everything", DeliveryFilter::new()),
        (
            "the last hour",
            DeliveryFilter::new().received_since(hour_ago),
        ),
        (
            "a type",
            DeliveryFilter::new().event_type("contract.signed"),
        ),
        ("a group, a day", {
            DeliveryFilter::new()
                .event_type("contract")
                .received_since(now - 86_400_000)
        }),
    ] {
        let (median, p95) = time(RUNS, async || backend.counts(&filter).await.unwrap()).await;
        println!("counts, {name:24} {median:6.2} ms (p95 {p95:6.2})");
    }
    let (median, p95) = time(RUNS, async || backend.delivery(&done_id).await.unwrap()).await;
    println!("one delivery with its history  {median:6.2} ms (p95 {p95:6.2})");
}

fn record_state(url: &str, id: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(format!("{{bench}}:d:{id}"))
        .arg("state")
        .query(&mut connection(url).unwrap())
        .ok()
        .flatten()
}
