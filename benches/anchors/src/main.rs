//! The anchors in the same run: apalis 1.0 (SQLite, Redis, PostgreSQL) against this crate's
//! queue on the same engines, one after the other in one invocation, with the engines' own
//! ceilings (the disk's sync rate, `redis-benchmark` on the queue's enqueue script, `pgbench` on
//! the queue's enqueue INSERT), and a table of ratios at the end.
//!
//! ```text
//! benches/anchors/run.sh                      # builds the server and CLI, then runs this
//! cargo run --release --manifest-path benches/anchors/Cargo.toml
//! ANCHORS_JOBS=2000 ANCHORS_ENGINES=sqlite,redis cargo run --release --manifest-path benches/anchors/Cargo.toml
//! ```
//!
//! apalis runs with the settings of the earlier spike: trivial jobs (a `u64`), a worker at
//! concurrency 10, a de-duplication key (`TaskBuilder::idempotency_key`) on every push, every
//! other setting at its default (its SQLite `setup` sets `synchronous = OFF`). This crate's
//! queue runs its engine-level operations (`Backend::enqueue`, `Workers` at concurrency 10 with a
//! handler that does nothing), its SQLite in the durable default (`synchronous = FULL`) and in
//! `NORMAL`.
//!
//! Settings: `ANCHORS_JOBS` (default 5,000) per phase; `ANCHORS_ENGINES` (default
//! `sqlite,redis,postgres`); `REDIS_URL` (default `redis://127.0.0.1:6379`, database 13 is used
//! and only this run's keys are removed), `POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); `ANCHORS_SERVER` and `ANCHORS_CLI`: the paths of
//! `examples/bench_axum` and the CLI, release builds (`run.sh` builds them), for the SQLite
//! deliveries through the server at c=1 and c=32; without them that phase is skipped.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agentsync_webhooks_core::{
    EventType, UpdatesAvailable,
    handoff::now_ms,
    route::{Event, EventRouter},
};
use agentsync_webhooks_queue::{Backend, Enqueued, Queue, ReceivedDelivery, Workers};
use apalis::prelude::*;
use tokio::sync::Notify;

/// Concurrent senders in the concurrent enqueue phases.
const SENDERS: usize = 32;
/// Handlers at once, ours and apalis's.
const CONCURRENCY: usize = 10;
/// The PostgreSQL handoff through the server is loaded at each of these concurrencies.
const SERVER_CONCURRENCIES: [usize; 4] = [1, 4, 8, 32];

/// One measured figure.
struct Figure {
    engine: &'static str,
    what: String,
    per_second: f64,
}

#[derive(Default)]
struct Run {
    figures: Vec<Figure>,
}

impl Run {
    fn record(&mut self, engine: &'static str, what: impl Into<String>, per_second: f64) {
        let what = what.into();
        println!("  {engine:10} {what:48} {per_second:>10.0}/s");
        self.figures.push(Figure {
            engine,
            what,
            per_second,
        });
    }

    fn get(&self, engine: &str, what: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.engine == engine && f.what == what)
            .map(|f| f.per_second)
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn env_url(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Delivery `n` of run `run`: the queue benches' `updates_available`.
fn delivery(run: &str, n: usize) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: format!("msg_{run}_{n}"),
        event_type: "producersync.updates_available".into(),
        webhook_timestamp: 1_700_000_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
        received_at_ms: now_ms(),
        body: bytes::Bytes::from(format!(
            r#"{{"id":"whe_{run}_{n}","type":"producersync.updates_available","timestamp":"2026-01-01T00:00:00.000Z","data":{{"runDate":"2026-01-01"}}}}"#
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The disk's own sync rate.

/// Synced 4 KiB writes per second (`write` then `fdatasync`, as SQLite's commit does) in `dir`.
fn fsync_probe(dir: &Path, count: usize) -> f64 {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("fsync probe file");
    let page = [0x5a_u8; 4096];
    let started = Instant::now();
    for _ in 0..count {
        file.write_all(&page).expect("fsync probe write");
        file.sync_data().expect("fsync probe sync");
    }
    let per_second = rate(count, started.elapsed());
    let _ = std::fs::remove_file(path);
    per_second
}

// ---------------------------------------------------------------------------------------------
// This crate's queue.

async fn ours_enqueue(backend: &Arc<dyn Backend>, run: &str, jobs: usize) -> (f64, f64) {
    let started = Instant::now();
    for n in 0..jobs {
        match backend.enqueue(&delivery(run, n)).await {
            Ok(Enqueued::New) => {}
            other => panic!("sequential enqueue {n}: {other:?}"),
        }
    }
    let one_at_a_time = rate(jobs, started.elapsed());
    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let backend = Arc::clone(backend);
        let run = run.to_owned();
        senders.push(tokio::spawn(async move {
            for n in (jobs + sender..2 * jobs).step_by(SENDERS) {
                match backend.enqueue(&delivery(&run, n)).await {
                    Ok(Enqueued::New) => {}
                    other => panic!("concurrent enqueue {n}: {other:?}"),
                }
            }
        }));
    }
    for sender in senders {
        sender.await.expect("a sender panicked");
    }
    (one_at_a_time, rate(jobs, started.elapsed()))
}

/// `Workers` at concurrency 10 with a handler that does nothing, over the `jobs` the enqueue
/// phases left (twice `jobs`), until the last one is settled.
async fn ours_process(backend: Arc<dyn Backend>, jobs: usize) -> f64 {
    let queue = Queue::from_backend(backend);
    let handled = Arc::new(AtomicUsize::new(0));
    let all_handled = Arc::new(Notify::new());
    let router = {
        let (handled, all_handled) = (Arc::clone(&handled), Arc::clone(&all_handled));
        EventRouter::new().on(
            EventType::ProducerSyncUpdatesAvailable,
            move |_: Event<UpdatesAvailable>| {
                if handled.fetch_add(1, Ordering::Relaxed) + 1 == jobs {
                    all_handled.notify_one();
                }
                async { Ok(()) }
            },
        )
    };
    let started = Instant::now();
    Workers::new(queue.clone(), router)
        .concurrency(CONCURRENCY)
        .run_until(async move { all_handled.notified().await })
        .await;
    let elapsed = started.elapsed();
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        (stats.depth, stats.dead),
        (0, 0),
        "every job done, none dead"
    );
    rate(jobs, elapsed)
}

async fn ours(run: &mut Run, engine: &'static str, backend: Arc<dyn Backend>, jobs: usize) {
    let tag = format!("{:x}", now_ms());
    let (one, concurrent) = ours_enqueue(&backend, &tag, jobs).await;
    run.record(engine, "ours: enqueue one at a time", one);
    run.record(
        engine,
        format!("ours: enqueue {SENDERS} concurrent"),
        concurrent,
    );
    let processed = ours_process(backend, 2 * jobs).await;
    run.record(engine, "ours: processed, concurrency 10", processed);
}

// ---------------------------------------------------------------------------------------------
// apalis 1.0.

static HANDLED: AtomicUsize = AtomicUsize::new(0);
static TARGET: AtomicUsize = AtomicUsize::new(0);

/// The trivial job: counts, and stops the worker after the last one.
async fn apalis_job(_n: u64, worker: WorkerContext) -> Result<(), BoxDynError> {
    if HANDLED.fetch_add(1, Ordering::Relaxed) + 1 == TARGET.load(Ordering::Relaxed) {
        worker.stop()?;
    }
    Ok(())
}

/// Pushes `jobs` tasks one at a time, each with its own de-duplication key, then runs a worker
/// at concurrency 10 until all are handled: `(pushed/s, processed/s)`.
macro_rules! apalis_run {
    ($backend:expr, $tag:expr, $jobs:expr) => {{
        let (mut backend, tag, jobs): (_, &str, usize) = ($backend, $tag, $jobs);
        let started = Instant::now();
        for n in 0..jobs as u64 {
            let task = TaskBuilder::new(n)
                .idempotency_key(format!("k_{tag}_{n}"))
                .build();
            backend.push_task(task).await.expect("apalis push");
        }
        let pushed = rate(jobs, started.elapsed());
        HANDLED.store(0, Ordering::Relaxed);
        TARGET.store(jobs, Ordering::Relaxed);
        let worker = WorkerBuilder::new(format!("anchors-{tag}"))
            .backend(backend)
            .concurrency(CONCURRENCY)
            .build(apalis_job);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(600), worker.run())
            .await
            .expect("apalis worker within 10 minutes")
            .expect("apalis worker");
        let processed = rate(HANDLED.load(Ordering::Relaxed), started.elapsed());
        assert_eq!(
            HANDLED.load(Ordering::Relaxed),
            jobs,
            "apalis: every job handled"
        );
        (pushed, processed)
    }};
}

fn record_apalis(run: &mut Run, engine: &'static str, (pushed, processed): (f64, f64)) {
    run.record(
        engine,
        "apalis: push one at a time, de-duplication key",
        pushed,
    );
    run.record(engine, "apalis: processed, concurrency 10", processed);
}

// ---------------------------------------------------------------------------------------------
// The engines' own ceilings.

fn queue_source(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/queue/src")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `redis-benchmark` calling the queue's enqueue script (its helpers and `enqueue.lua` as the
/// backend loads them, read from the source now) with a delivery's arguments, ids random.
async fn redis_benchmark(url: &str, db: i64, concurrency: usize, calls: usize) -> Option<f64> {
    let script = format!(
        "{}\n{}",
        queue_source("redis/helpers.lua"),
        queue_source("redis/enqueue.lua")
    );
    let client = redis::Client::open(format!("{url}/{db}")).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(&script)
        .query_async(&mut connection)
        .await
        .ok()?;
    let prefix = format!("anchors:rb:{}:", std::process::id());
    let sample = delivery("rb", 0);
    let output = tokio::process::Command::new("redis-benchmark")
        .args([
            "-u",
            url,
            "--dbnum",
            &db.to_string(),
            "-q",
            "-r",
            "1000000000",
        ])
        .args(["-c", &concurrency.to_string(), "-n", &calls.to_string()])
        .args(["evalsha", &sha, "2"])
        .arg(format!("{prefix}id:msg___rand_int__"))
        .arg(format!("{prefix}stream"))
        .arg("msg___rand_int__")
        .arg(&sample.event_type)
        .arg(sample.webhook_timestamp.to_string())
        .arg(&sample.signature)
        .arg(sample.received_at_ms.to_string())
        .arg(String::from_utf8_lossy(&sample.body).as_ref())
        .arg("producersync")
        .arg(&prefix)
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    forget_redis_keys(&mut connection, &prefix).await;
    let text = String::from_utf8_lossy(&output.stdout).replace('\r', "\n");
    text.lines()
        .filter_map(|line| line.split(": ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|number| number.parse::<f64>().ok())
        .next_back()
}

async fn forget_redis_keys(connection: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(connection)
            .await
            .unwrap_or_default();
        if keys.is_empty() {
            return;
        }
        for chunk in keys.chunks(500) {
            let _: Result<i64, _> = redis::cmd("UNLINK")
                .arg(chunk)
                .query_async(connection)
                .await;
        }
    }
}

/// The queue's enqueue INSERT as `statements.rs` has it now, for `table`, with the delivery's
/// values in place of its parameters and a random id per call (`pgbench` variables).
fn pgbench_script(table: &str) -> Option<String> {
    let source = queue_source("postgres/statements.rs");
    let now_ms = source
        .lines()
        .find_map(|line| line.trim().strip_prefix("pub(super) const NOW_MS: &str = "))?
        .trim_end_matches(';')
        .trim_matches('"')
        .to_owned();
    let start = source.find("enqueue: format!(")?;
    let rest = &source[start..];
    let open = rest.find('"')? + 1;
    let close = open + rest[open..].find("\"\n")?;
    let mut statement = rest[open..close]
        .replace("{t}", table)
        .replace("{NOW_MS}", &now_ms);
    if statement.contains('{') {
        eprintln!("pgbench: the enqueue statement has placeholders this bench does not know");
        return None;
    }
    let sample = delivery("pgbench", 0);
    let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
    let body = format!(
        "convert_to({}, 'UTF8')",
        quote(&String::from_utf8_lossy(&sample.body))
    );
    // Parameters past the delivery's seven (the ordering key and event time, say) as NULL, the
    // value the queue stores for a delivery that has none.
    for extra in (8..=20).rev() {
        statement = statement.replace(&format!("${extra}"), "NULL");
    }
    for (parameter, value) in [
        ("$7", body),
        ("$6", sample.received_at_ms.to_string()),
        ("$5", quote(&sample.signature)),
        ("$4", sample.webhook_timestamp.to_string()),
        ("$3", quote("producersync")),
        ("$2", quote(&sample.event_type)),
        ("$1", "'pgb_' || :client_id || '_' || :n".to_owned()),
    ] {
        statement = statement.replace(parameter, &value);
    }
    let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(format!("\\set n random(1, 1000000000000)\n{statement};\n"))
}

/// `pgbench` running the enqueue INSERT for `seconds` at `clients`: transactions per second.
async fn pgbench(url: &str, script: &Path, clients: usize, seconds: u64) -> Option<f64> {
    let output = tokio::process::Command::new("pgbench")
        .args(["-n", "-f"])
        .arg(script)
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
        ])
        .arg(url)
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let errors = String::from_utf8_lossy(&output.stderr);
        eprintln!(
            "pgbench: {}",
            errors.lines().take(3).collect::<Vec<_>>().join(" / ")
        );
    }
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Through the server: examples/bench_axum in handoff mode on a durable SQLite file or a fresh
// PostgreSQL schema, loaded by the CLI's load mode.

/// The SQLite handoff through the server at `concurrency`, every delivery checked stored.
async fn through_server(
    server: &Path,
    cli: &Path,
    dir: &Path,
    count: usize,
    concurrency: usize,
    port: u16,
) -> Option<f64> {
    let file = dir.join(format!("server-{concurrency}.sqlite3"));
    let rps = load_server(
        server,
        cli,
        &format!("sqlite://{}", file.display()),
        count,
        concurrency,
        port,
    )
    .await?;
    let stored = std::process::Command::new("sqlite3")
        .arg(&file)
        .arg("SELECT count(*) FROM jobs")
        .output()
        .ok()?;
    let stored = String::from_utf8_lossy(&stored.stdout).trim().to_owned();
    if stored != count.to_string() {
        eprintln!("through the server, c={concurrency}: {stored} of {count} stored");
        return None;
    }
    Some(rps)
}

/// The PostgreSQL handoff through the server at `concurrency`, in a schema of its own (dropped
/// after), every delivery checked stored.
async fn through_server_postgres(
    server: &Path,
    cli: &Path,
    url: &str,
    count: usize,
    concurrency: usize,
    port: u16,
) -> Option<f64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    let schema = format!("anchors_srv_{}_{concurrency}", std::process::id());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .ok()?;
    let separator = if url.contains('?') { '&' } else { '?' };
    let queue = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let rps = load_server(server, cli, &queue, count, concurrency, port).await;
    let stored: Option<i64> = client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.agentsync_webhook_jobs"),
            &[],
        )
        .await
        .ok()
        .and_then(|row| row.try_get(0).ok());
    let _ = client
        .batch_execute(&format!(
            "SET client_min_messages = warning; DROP SCHEMA {schema} CASCADE"
        ))
        .await;
    let rps = rps?;
    if stored != Some(i64::try_from(count).ok()?) {
        eprintln!("postgres through the server, c={concurrency}: {stored:?} of {count} stored");
        return None;
    }
    Some(rps)
}

/// `bench_axum` in handoff mode on `queue_url`, loaded with `count` deliveries at
/// `concurrency`: deliveries per second, if every one was answered 202.
async fn load_server(
    server: &Path,
    cli: &Path,
    queue_url: &str,
    count: usize,
    concurrency: usize,
    port: u16,
) -> Option<f64> {
    let secret = std::process::Command::new(cli)
        .args(["secret", "new"])
        .output()
        .ok()?;
    let secret = String::from_utf8_lossy(&secret.stdout).trim().to_owned();
    let mut child = tokio::process::Command::new(server)
        .env("MODE", "handoff")
        .env("PORT", port.to_string())
        .env("AGENTSYNC_QUEUE_URL", queue_url)
        .env("AGENTSYNC_WEBHOOK_SECRET", &secret)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = tokio::process::Command::new(cli)
        .env("AGENTSYNC_WEBHOOK_SECRET", &secret)
        .args([
            "send",
            "--url",
            &format!("http://127.0.0.1:{port}/webhooks/psapi"),
        ])
        .args(["--event", "producersync.updates_available"])
        .args([
            "--count",
            &count.to_string(),
            "--concurrency",
            &concurrency.to_string(),
        ])
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    let _ = child.kill().await;
    let text = String::from_utf8_lossy(&output.stdout);
    let accepted = format!("202 Accepted: {count}");
    if !text
        .lines()
        .any(|line| line.trim_start().starts_with("statuses") && line.contains(&accepted))
    {
        eprintln!("through the server, c={concurrency}: not every delivery answered 202:\n{text}");
        return None;
    }
    text.split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|pair| pair[1].starts_with("requests/s"))
        .and_then(|pair| pair[0].trim_end_matches(',').parse().ok())
}

// ---------------------------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs = env_number("ANCHORS_JOBS", 5_000);
    let engines =
        std::env::var("ANCHORS_ENGINES").unwrap_or_else(|_| "sqlite,redis,postgres".into());
    let wants = |name: &str| engines.split(',').any(|e| e == name);
    let redis_url = env_url("REDIS_URL", "redis://127.0.0.1:6379");
    let redis_db = 13;
    let postgres_url = env_url("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
    let id = std::process::id();
    let dir: PathBuf = std::env::temp_dir().join(format!("agentsync-anchors-{id}"));
    std::fs::create_dir_all(&dir).expect("bench directory");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "anchors: {jobs} jobs per phase, concurrency {CONCURRENCY}, {SENDERS} concurrent senders; load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut run = Run::default();

    if wants("sqlite") {
        let probe = fsync_probe(&dir, 500);
        run.record("disk", "write 4 KiB + fdatasync", probe);
        for (engine, synchronous) in [
            (
                "sqlite",
                agentsync_webhooks_queue::sqlite::Synchronous::Full,
            ),
            (
                "sqlite-nrm",
                agentsync_webhooks_queue::sqlite::Synchronous::Normal,
            ),
        ] {
            let backend = agentsync_webhooks_queue::sqlite::SqliteBackend::open_with(
                dir.join(format!("{engine}.sqlite3")),
                agentsync_webhooks_queue::sqlite::SqliteOptions::new().synchronous(synchronous),
            )
            .await
            .unwrap_or_else(|err| panic!("{engine}: {err}"));
            ours(&mut run, engine, Arc::new(backend), jobs).await;
        }
        let path = dir.join("apalis.sqlite3");
        let pool =
            apalis_sqlite::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .expect("apalis sqlite pool");
        apalis_sqlite::SqliteStorage::setup(&pool)
            .await
            .expect("apalis sqlite setup");
        let backend = apalis_sqlite::SqliteStorage::new(&pool);
        record_apalis(&mut run, "sqlite", apalis_run!(backend, "sqlite", jobs));
        pool.close().await;
        if let (Ok(server), Ok(cli)) = (
            std::env::var("ANCHORS_SERVER"),
            std::env::var("ANCHORS_CLI"),
        ) {
            for (concurrency, port) in [(1, 4190), (32, 4191)] {
                match through_server(
                    Path::new(&server),
                    Path::new(&cli),
                    &dir,
                    jobs,
                    concurrency,
                    port,
                )
                .await
                {
                    Some(rps) => run.record(
                        "sqlite",
                        format!("ours: through the server, c={concurrency}"),
                        rps,
                    ),
                    None => eprintln!("through the server, c={concurrency}: no figure"),
                }
            }
        }
    }

    if wants("redis") {
        let url = format!("{redis_url}/{redis_db}");
        let prefix = format!("anchors:{id}:");
        let backend = agentsync_webhooks_queue::redis::RedisBackend::connect_with(
            &url,
            agentsync_webhooks_queue::redis::RedisOptions::new().prefix(prefix.clone()),
        )
        .await
        .unwrap_or_else(|err| panic!("redis: {err}"));
        ours(&mut run, "redis", Arc::new(backend), jobs).await;
        let queue = format!("anchors-apalis-{id}");
        let connection = apalis_redis::connect(url.as_str())
            .await
            .expect("apalis redis");
        let backend = apalis_redis::RedisStorage::new(connection)
            .with_config(apalis_redis::Config::default().queue(&queue));
        record_apalis(&mut run, "redis", apalis_run!(backend, "redis", jobs));
        for concurrency in [1, SENDERS] {
            match redis_benchmark(&redis_url, redis_db, concurrency, (10 * jobs).max(50_000)).await
            {
                Some(calls) => run.record(
                    "redis",
                    format!("redis-benchmark: enqueue script, -c {concurrency}"),
                    calls,
                ),
                None => eprintln!("redis-benchmark -c {concurrency}: no figure"),
            }
        }
        if let Ok(client) = redis::Client::open(url.as_str())
            && let Ok(mut connection) = client.get_multiplexed_async_connection().await
        {
            forget_redis_keys(&mut connection, &prefix).await;
            forget_redis_keys(&mut connection, &queue).await;
        }
    }

    if wants("postgres") {
        let table = format!("anchors_{id}");
        let backend = agentsync_webhooks_queue::postgres::PostgresBackend::connect_with(
            &postgres_url,
            agentsync_webhooks_queue::postgres::PostgresOptions::new().table(table.clone()),
        )
        .await
        .unwrap_or_else(|err| panic!("postgres: {err}"));
        ours(&mut run, "postgres", Arc::new(backend), jobs).await;
        let pool = apalis_postgres::PgPool::connect(&postgres_url)
            .await
            .expect("apalis postgres pool");
        apalis_postgres::PostgresStorage::setup(&pool)
            .await
            .expect("apalis postgres setup");
        // apalis keeps one table across runs, ours is new each run: vacuumed first, so that
        // the dead rows of earlier runs (on a server whose autovacuum is off or behind) do not
        // slow apalis's claims.
        if let Ok((client, connection)) =
            tokio_postgres::connect(&postgres_url, tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            if let Err(err) = client.batch_execute("VACUUM ANALYZE apalis.jobs").await {
                eprintln!("postgres: VACUUM ANALYZE apalis.jobs: {err}");
            }
        }
        let queue = format!("anchors-apalis-{id}");
        let backend = apalis_postgres::PostgresStorage::new(&pool)
            .with_config(apalis_postgres::Config::default().queue(&queue));
        record_apalis(&mut run, "postgres", apalis_run!(backend, "postgres", jobs));
        if let (Ok(server), Ok(cli)) = (
            std::env::var("ANCHORS_SERVER"),
            std::env::var("ANCHORS_CLI"),
        ) {
            for (concurrency, port) in SERVER_CONCURRENCIES.iter().zip(4192..) {
                match through_server_postgres(
                    Path::new(&server),
                    Path::new(&cli),
                    &postgres_url,
                    jobs,
                    *concurrency,
                    port,
                )
                .await
                {
                    Some(rps) => run.record(
                        "postgres",
                        format!("ours: through the server, c={concurrency}"),
                        rps,
                    ),
                    None => eprintln!("postgres through the server, c={concurrency}: no figure"),
                }
            }
        }
        let script = dir.join("enqueue.sql");
        if let Some(text) = pgbench_script(&table) {
            std::fs::write(&script, text).expect("pgbench script");
            for clients in [1, SENDERS] {
                match pgbench(&postgres_url, &script, clients, 10).await {
                    Some(tps) => run.record(
                        "postgres",
                        format!("pgbench: enqueue INSERT, -c {clients}"),
                        tps,
                    ),
                    None => eprintln!("pgbench -c {clients}: no figure"),
                }
            }
        }
        if let Ok((client, connection)) =
            tokio_postgres::connect(&postgres_url, tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!(
                    "SET client_min_messages = warning; DROP TABLE IF EXISTS {table}, {table}_history, {table}_schema, {table}_ordering_keys CASCADE"
                ))
                .await;
            let _ = client
                .execute("DELETE FROM apalis.jobs WHERE job_type = $1", &[&queue])
                .await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("\n{}", ratios(&run));
}

/// The table of ratios: ours over each anchor measured above.
fn ratios(run: &Run) -> String {
    let rows: [(&str, &str, &str, &str); 14] = [
        (
            "sqlite",
            "ours: enqueue one at a time",
            "disk",
            "write 4 KiB + fdatasync",
        ),
        (
            "sqlite",
            "ours: enqueue one at a time",
            "sqlite",
            "apalis: push one at a time, de-duplication key",
        ),
        (
            "sqlite",
            "ours: enqueue 32 concurrent",
            "sqlite",
            "apalis: push one at a time, de-duplication key",
        ),
        (
            "sqlite-nrm",
            "ours: enqueue one at a time",
            "sqlite",
            "apalis: push one at a time, de-duplication key",
        ),
        (
            "sqlite",
            "ours: through the server, c=1",
            "disk",
            "write 4 KiB + fdatasync",
        ),
        (
            "sqlite",
            "ours: through the server, c=32",
            "sqlite",
            "apalis: push one at a time, de-duplication key",
        ),
        (
            "sqlite",
            "ours: processed, concurrency 10",
            "sqlite",
            "apalis: processed, concurrency 10",
        ),
        (
            "redis",
            "ours: enqueue one at a time",
            "redis",
            "apalis: push one at a time, de-duplication key",
        ),
        (
            "redis",
            "ours: enqueue one at a time",
            "redis",
            "redis-benchmark: enqueue script, -c 1",
        ),
        (
            "redis",
            "ours: enqueue 32 concurrent",
            "redis",
            "redis-benchmark: enqueue script, -c 32",
        ),
        (
            "redis",
            "ours: processed, concurrency 10",
            "redis",
            "apalis: processed, concurrency 10",
        ),
        (
            "postgres",
            "ours: enqueue one at a time",
            "postgres",
            "apalis: push one at a time, de-duplication key",
        ),
        (
            "postgres",
            "ours: enqueue one at a time",
            "postgres",
            "pgbench: enqueue INSERT, -c 1",
        ),
        (
            "postgres",
            "ours: processed, concurrency 10",
            "postgres",
            "apalis: processed, concurrency 10",
        ),
    ];
    let mut table =
        String::from("| engine | ours | /s | anchor | /s | ratio |\n|---|---|---|---|---|---|\n");
    let push = "apalis: push one at a time, de-duplication key";
    let extra = [
        (
            "postgres",
            "ours: enqueue 32 concurrent",
            "postgres",
            "pgbench: enqueue INSERT, -c 32",
        ),
        (
            "postgres",
            "ours: through the server, c=1",
            "postgres",
            push,
        ),
        (
            "postgres",
            "ours: through the server, c=4",
            "postgres",
            push,
        ),
        (
            "postgres",
            "ours: through the server, c=8",
            "postgres",
            push,
        ),
        (
            "postgres",
            "ours: through the server, c=32",
            "postgres",
            push,
        ),
        (
            "postgres",
            "ours: through the server, c=32",
            "postgres",
            "ours: through the server, c=8",
        ),
    ];
    for (engine, ours, anchor_engine, anchor) in rows.iter().chain(extra.iter()) {
        if let (Some(a), Some(b)) = (run.get(engine, ours), run.get(anchor_engine, anchor)) {
            let _ = writeln!(
                table,
                "| {engine} | {} | {a:.0} | {anchor_engine}: {} | {b:.0} | {:.2}x |",
                ours.trim_start_matches("ours: "),
                anchor,
                a / b
            );
        }
    }
    table
}
