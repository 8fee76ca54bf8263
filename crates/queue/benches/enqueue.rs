//! Throughput of each queue engine on this machine: enqueue one at a time, enqueue from many
//! concurrent senders, and claim + complete with several workers.
//!
//! ```text
//! cargo bench -p agentsync-webhooks-queue --all-features --bench enqueue
//! BENCH_JOBS=5000 BENCH_BACKENDS=sqlite,redis cargo bench -p agentsync-webhooks-queue --all-features --bench enqueue
//! ```
//!
//! `BENCH_JOBS` (default 5,000) deliveries per phase; `BENCH_BACKENDS` (default all compiled in:
//! `sqlite-full`, `sqlite-normal`, `redis`, `postgres`); `REDIS_URL`, `POSTGRES_URL` as in the
//! tests. For Redis it also prints the commands Redis counted (`INFO commandstats`) per
//! sequential enqueue: one script call is one round trip.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use agentsync_webhooks_core::handoff::now_ms;
use agentsync_webhooks_queue::{Backend, Enqueued};

mod support;
#[cfg(feature = "redis")]
use support::redis_url;
use support::{delivery, env_number, for_each_engine};

/// Concurrent senders in the concurrent enqueue phase.
const SENDERS: usize = 32;
/// Concurrent workers in the claim + complete phase, each claiming this many at a time.
const WORKERS: usize = 10;
const BATCH: usize = 10;

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Runs the three phases against `backend`, printing one line per phase.
async fn measure(name: &str, backend: Arc<dyn Backend>, jobs: usize) {
    let run = format!("{:x}", now_ms());

    let started = Instant::now();
    for n in 0..jobs {
        match backend.enqueue(&delivery(&run, n)).await {
            Ok(Enqueued::New) => {}
            other => panic!("{name}: sequential enqueue {n}: {other:?}"),
        }
    }
    let sequential = started.elapsed();
    println!(
        "{name:14} enqueue, one at a time     {:>9.0}/s  ({jobs} in {sequential:.2?})",
        rate(jobs, sequential)
    );

    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let backend = Arc::clone(&backend);
        let run = run.clone();
        senders.push(tokio::spawn(async move {
            let mut n = jobs + sender;
            while n < 2 * jobs {
                backend.enqueue(&delivery(&run, n)).await.map(|_| ())?;
                n += SENDERS;
            }
            Ok::<_, agentsync_webhooks_queue::StoreError>(())
        }));
    }
    for sender in senders {
        match sender.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("{name}: concurrent enqueue: {err}"),
            Err(err) => panic!("{name}: a sender panicked: {err}"),
        }
    }
    let concurrent = started.elapsed();
    println!(
        "{name:14} enqueue, {SENDERS} concurrent     {:>9.0}/s  ({jobs} in {concurrent:.2?})",
        rate(jobs, concurrent)
    );

    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let backend = Arc::clone(&backend);
        workers.push(tokio::spawn(async move {
            let mut done = 0usize;
            let mut idle = 0;
            while idle < 3 {
                let claimed = backend.claim(BATCH, Duration::from_secs(60)).await?;
                if claimed.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                idle = 0;
                for job in &claimed {
                    if backend.complete(job).await? {
                        done += 1;
                    }
                }
            }
            Ok::<_, agentsync_webhooks_queue::StoreError>(done)
        }));
    }
    let mut done = 0;
    for worker in workers {
        match worker.await {
            Ok(Ok(count)) => done += count,
            Ok(Err(err)) => panic!("{name}: worker: {err}"),
            Err(err) => panic!("{name}: worker panicked: {err}"),
        }
    }
    // The workers stop after a few idle polls: leave those out of the rate.
    let processed = started.elapsed().saturating_sub(Duration::from_millis(15));
    assert_eq!(done, 2 * jobs, "{name}: every job processed once");
    println!(
        "{name:14} claim+complete, {WORKERS} workers {:>9.0}/s  ({done} in {processed:.2?})",
        rate(done, processed)
    );
}

/// `(total calls, calls per command)` from `INFO commandstats`.
#[cfg(feature = "redis")]
fn redis_command_calls() -> Option<(u64, Vec<(String, u64)>)> {
    let client = redis::Client::open(redis_url()).ok()?;
    let mut connection = client.get_connection().ok()?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connection)
        .ok()?;
    let mut per_command = Vec::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((command, stats)) = rest.split_once(':') else {
            continue;
        };
        let calls = stats
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0);
        per_command.push((command.to_owned(), calls));
    }
    Some((per_command.iter().map(|(_, n)| n).sum(), per_command))
}

/// Prints the round trips (script calls) and the commands Redis counted per sequential
/// enqueue, from `INFO commandstats` before and after a burst; then claims the burst away.
#[cfg(feature = "redis")]
async fn redis_round_trips(backend: &Arc<dyn Backend>) {
    // Round trips: the commands Redis counts for a burst of sequential enqueues.
    let probe = 1_000;
    let before = redis_command_calls();
    for n in 0..probe {
        let _ = backend.enqueue(&delivery("probe", n)).await;
    }
    let after = redis_command_calls();
    if let (Some((before_total, before_each)), Some((after_total, after_each))) = (before, after) {
        let mut grown: Vec<String> = after_each
            .iter()
            .filter_map(|(command, calls)| {
                let was = before_each
                    .iter()
                    .find(|(c, _)| c == command)
                    .map_or(0, |(_, n)| *n);
                (calls > &was).then(|| format!("{command} +{}", calls - was))
            })
            .collect();
        grown.sort();
        // The second INFO call is counted too; commands a script runs are counted as well
        // as the script call (EVALSHA), which alone is a round trip.
        let round_trips = after_each
            .iter()
            .filter(|(command, _)| command == "evalsha" || command == "eval")
            .map(|(_, calls)| calls)
            .sum::<u64>()
            - before_each
                .iter()
                .filter(|(command, _)| command == "evalsha" || command == "eval")
                .map(|(_, calls)| calls)
                .sum::<u64>();
        println!(
            "redis          round trips (script calls) per enqueue: {:.3}; commands counted: {} ({})",
            round_trips as f64 / probe as f64,
            (after_total - before_total).saturating_sub(1),
            grown.join(", ")
        );
    }
    let _ = backend.claim(probe, Duration::from_secs(60)).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs = env_number("BENCH_JOBS", 5_000);
    println!("{jobs} deliveries per phase, 2 worker threads");
    for_each_engine("queue", async |name, backend| {
        #[cfg(feature = "redis")]
        if name == "redis" {
            redis_round_trips(&backend).await;
        }
        measure(name, backend, jobs).await;
    })
    .await;
}
