//! What each dashboard page costs with many deliveries stored: the whole answer of
//! `Dashboard::handle` (every query it makes, and the HTML), in process.
//!
//! ```text
//! cargo bench -p agentsync-webhooks-dashboard --bench pages
//! BENCH_RECORD=100000 BENCH_RUNS=30 cargo bench -p agentsync-webhooks-dashboard --bench pages
//! cargo bench -p agentsync-webhooks-dashboard --features bench-postgres,bench-redis --bench pages
//! ```
//!
//! With `bench-postgres`, the same on the PostgreSQL at `POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`, table `dashboard_bench_N`); with `bench-redis`,
//! on the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`, key prefix
//! `agentsync-dashboard-bench-N:`). Each is filled once and reused while it holds N deliveries.
//! `BENCH_CALLS=1` also times the queue calls the pages make, one by one.
//!
//! `BENCH_RECORD` (default 100,000) deliveries are stored, received over the last two days
//! (about 2,000 in the last hour), of four types (as the queue crate's `record` bench); then
//! half are done, a tenth dead, a tenth retrying, the rest waiting. The SQLite file is kept
//! under `target/` and reused while it holds that many deliveries (it takes about a minute to
//! fill). Each page is answered `BENCH_RUNS` (default 30) times after two warm-up runs; the
//! line gives the median and the slowest, in ms.

use std::{
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use agentsync_webhooks_core::handoff::now_ms;
use agentsync_webhooks_dashboard::Dashboard;
use agentsync_webhooks_queue::{
    Backend, Enqueued, Queue, ReceivedDelivery,
    record::{DeliveryFilter, DeliveryState},
    sqlite::{SqliteBackend, SqliteOptions, Synchronous},
};
use http_body_util::BodyExt as _;

const TYPES: [&str; 4] = [
    "producersync.updates_available",
    "contract.signed",
    "id.producer.updated",
    "producersync.npn.activated",
];
/// Concurrent senders while filling.
const SENDERS: usize = 64;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn stored(n: usize, total: usize, now: i64) -> ReceivedDelivery {
    let spread = 2 * 24 * 3_600_000 / i64::try_from(total.max(1)).unwrap_or(1);
    let event_type = TYPES[n % TYPES.len()];
    ReceivedDelivery {
        webhook_id: format!("msg_bench_{n:07}"),
        event_type: event_type.to_owned(),
        webhook_timestamp: now / 1000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
        received_at_ms: now - i64::try_from(total - n).unwrap_or(0) * spread,
        body: bytes::Bytes::from(format!(
            r#"{{"id":"whe_bench_{n}","type":"{event_type}","data":{{"runDate":"2026-01-01","npn":"{n}"}}}}"#
        )),
    }
}

async fn fill(backend: &Arc<dyn Backend>, total: usize) {
    let now = now_ms();
    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let backend = Arc::clone(backend);
        senders.push(tokio::spawn(async move {
            let mut n = sender;
            while n < total {
                match backend.enqueue(&stored(n, total, now)).await {
                    Ok(Enqueued::New) => {}
                    other => panic!("enqueue {n}: {other:?}"),
                }
                n += SENDERS;
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    // Settle in claim order: 50% done, 10% dead, 10% retrying, the rest waits.
    let mut settled = 0;
    while settled < total * 7 / 10 {
        let jobs = backend.claim(500, Duration::from_secs(600)).await.unwrap();
        if jobs.is_empty() {
            break;
        }
        let mut settles = Vec::new();
        for job in jobs {
            let backend = Arc::clone(backend);
            let slot = settled % 10;
            settled += 1;
            settles.push(tokio::spawn(async move {
                match slot {
                    0..=4 => backend.complete(&job).await,
                    5 => backend.bury(&job, "handler_permanent: no such NPN").await,
                    6 => {
                        backend
                            .retry(
                                &job,
                                Duration::from_secs(3_600),
                                "ProducerSync answered 503",
                            )
                            .await
                    }
                    _ => backend.release(&job).await,
                }
            }));
        }
        for settle in settles {
            let _ = settle.await;
        }
    }
    println!(
        "stored {total} deliveries and settled {settled} in {:.1?}",
        started.elapsed()
    );
}

/// The SQLite queue with `total` deliveries, filled once and kept under `target/`.
async fn sqlite(total: usize) -> Queue {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("queue-{total}.sqlite3"));
    // Normal: the fill's commits need not survive a power loss.
    let options = SqliteOptions::new().synchronous(Synchronous::Normal);
    let backend: Arc<dyn Backend> = Arc::new(
        SqliteBackend::open_with(&path, options.clone())
            .await
            .unwrap(),
    );
    let queue = Queue::from_backend(Arc::clone(&backend));
    let have = queue.counts(&DeliveryFilter::new()).await.unwrap().total();
    if have != total as u64 {
        drop(queue);
        drop(backend);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let backend: Arc<dyn Backend> =
            Arc::new(SqliteBackend::open_with(&path, options).await.unwrap());
        fill(&backend, total).await;
        return Queue::from_backend(backend);
    }
    println!("reusing {} ({total} deliveries)", path.display());
    queue
}

/// A queue on `backend` with `total` deliveries: reused when it holds that many, filled when
/// it holds none (anything else is left for the operator to clear: `hint`).
#[cfg(any(feature = "bench-postgres", feature = "bench-redis"))]
async fn filled(backend: Arc<dyn Backend>, total: usize, what: &str, hint: &str) -> Queue {
    let queue = Queue::from_backend(Arc::clone(&backend));
    let have = queue.counts(&DeliveryFilter::new()).await.unwrap().total();
    if have == total as u64 {
        println!("reusing {what} ({total} deliveries)");
    } else {
        assert_eq!(
            have, 0,
            "{what} holds {have} deliveries, not {total}: {hint}"
        );
        fill(&backend, total).await;
    }
    queue
}

#[cfg(feature = "bench-postgres")]
async fn postgres(total: usize) -> Queue {
    use agentsync_webhooks_queue::postgres::{PostgresBackend, PostgresOptions};
    let url = std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let table = format!("dashboard_bench_{total}");
    let options = PostgresOptions::new().table(table.as_str());
    let backend = PostgresBackend::connect_with(&url, options).await.unwrap();
    let what = format!("the PostgreSQL table {table}");
    filled(Arc::new(backend), total, &what, "drop its tables first").await
}

#[cfg(feature = "bench-redis")]
async fn redis(total: usize) -> Queue {
    use agentsync_webhooks_queue::redis::{RedisBackend, RedisOptions};
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("agentsync-dashboard-bench-{total}:");
    let options = RedisOptions::new().prefix(prefix.as_str());
    let backend = RedisBackend::connect_with(&url, options).await.unwrap();
    let what = format!("the Redis keys under {prefix}");
    filled(Arc::new(backend), total, &what, "delete them first").await
}

async fn time<F, Fut>(engine: &str, what: &str, runs: usize, mut page: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = usize>,
{
    for _ in 0..2 {
        page().await;
    }
    let mut took = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        bytes = page().await;
        took.push(started.elapsed());
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    println!(
        "{engine:8} {what:40} median {:>7.2} ms   slowest {:>7.2} ms   ({} KiB)",
        ms(took[took.len() / 2]),
        ms(took[took.len() - 1]),
        bytes / 1024
    );
}

/// Answers GET `uri`; panics unless 200; returns the body's size.
async fn get(dashboard: &Dashboard, uri: &str) -> usize {
    let response = dashboard
        .handle(http::Request::get(uri).body(String::new()).unwrap())
        .await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{uri}: {}", String::from_utf8_lossy(&body));
    body.len()
}

/// The queue calls the pages make, one by one.
async fn calls(engine: &str, queue: &Queue, runs: usize) {
    let now = now_ms();
    let day = DeliveryFilter::new().received_since(now - 24 * 3_600_000);
    let everything = DeliveryFilter::new();
    time(engine, "call: stats", runs, || async {
        queue.stats().await.unwrap();
        0
    })
    .await;
    time(engine, "call: counts, everything", runs, || async {
        queue.counts(&everything).await.unwrap();
        0
    })
    .await;
    time(engine, "call: counts, last 24 hours", runs, || async {
        queue.counts(&day).await.unwrap();
        0
    })
    .await;
    // The overview's counts before (the two above, one after the other) and now: one pass.
    let windows = [now - 24 * 3_600_000];
    time(
        engine,
        "call: counts_since, everything + 24 h",
        runs,
        || async {
            queue.counts_since(&everything, &windows).await.unwrap();
            0
        },
    )
    .await;
    let hour_of_type = DeliveryFilter::new()
        .event_type(TYPES[1])
        .received_since(now - 3_600_000);
    time(
        engine,
        "call: counts, one type, last hour",
        runs,
        || async {
            queue.counts(&hour_of_type).await.unwrap();
            0
        },
    )
    .await;
    for (what, state) in [
        ("call: list 1000 dead, last 24 hours", DeliveryState::Dead),
        (
            "call: list 1000 waiting, last 24 hours",
            DeliveryState::Waiting,
        ),
    ] {
        let filter = day.clone().state(state);
        time(engine, what, runs, || async {
            queue.list(&filter, None, 1_000).await.unwrap();
            0
        })
        .await;
    }
    for (what, until) in [
        ("call: list 1 waiting, before 1 h ago", now - 3_600_000),
        (
            "call: list 1 waiting, before 3 days ago",
            now - 3 * 24 * 3_600_000,
        ),
    ] {
        let filter = DeliveryFilter::new()
            .state(DeliveryState::Waiting)
            .received_until(until);
        time(engine, what, runs, || async {
            queue.list(&filter, None, 1).await.unwrap();
            0
        })
        .await;
    }
    let dead_of_type = DeliveryFilter::new()
        .state(DeliveryState::Dead)
        .event_type(TYPES[2]);
    time(engine, "call: list 1000 dead, one type", runs, || async {
        queue.list(&dead_of_type, None, 1_000).await.unwrap();
        0
    })
    .await;
}

async fn measure(engine: &str, queue: Queue, runs: usize) {
    let first = queue.list(&DeliveryFilter::new(), None, 50).await.unwrap();
    let next = first
        .next
        .clone()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let dead = queue
        .list(&DeliveryFilter::new().state(DeliveryState::Dead), None, 1)
        .await
        .unwrap();
    let dead_id = dead.deliveries[0].webhook_id.clone();
    let dashboard = Dashboard::new(queue).engine(engine);
    let pages = [
        ("overview", "/".to_owned()),
        ("deliveries, everything", "/deliveries".to_owned()),
        ("deliveries, next page", format!("/deliveries?after={next}")),
        (
            "deliveries, retrying or dead",
            "/deliveries?state=retrying&state=dead".to_owned(),
        ),
        (
            "deliveries, one type, last hour",
            "/deliveries?type=contract.signed&since=1h".to_owned(),
        ),
        (
            "deliveries, a group",
            "/deliveries?type=producersync".to_owned(),
        ),
        (
            "deliveries, id prefix",
            "/deliveries?id=msg_bench_00123*".to_owned(),
        ),
        (
            "delivery (dead, with history)",
            format!("/deliveries/{dead_id}"),
        ),
        ("dead letters", "/dead".to_owned()),
        (
            "dead letters, one type",
            "/dead?type=id.producer.updated".to_owned(),
        ),
        ("replay all matching (its count)", "/dead/replay".to_owned()),
        (
            "replay all matching, one type",
            "/dead/replay?type=id.producer.updated".to_owned(),
        ),
    ];
    for (what, uri) in &pages {
        time(engine, what, runs, || get(&dashboard, uri)).await;
    }
}

fn main() {
    let total = env_number("BENCH_RECORD", 100_000);
    let runs = env_number("BENCH_RUNS", 30).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        #[cfg_attr(
            not(any(feature = "bench-postgres", feature = "bench-redis")),
            allow(unused_mut)
        )]
        let mut engines = vec![("SQLite", sqlite(total).await)];
        #[cfg(feature = "bench-postgres")]
        engines.push(("Postgres", postgres(total).await));
        #[cfg(feature = "bench-redis")]
        engines.push(("Redis", redis(total).await));
        for (engine, queue) in engines {
            if std::env::var_os("BENCH_CALLS").is_some() {
                calls(engine, &queue, runs).await;
            }
            measure(engine, queue, runs).await;
        }
    });
}
