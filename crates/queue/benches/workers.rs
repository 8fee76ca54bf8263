//! Trivial-handler jobs processed per second by [`Workers`] on each queue engine: the queue is
//! filled with stored deliveries, then `Workers` (concurrency 10, every other setting at its
//! default) runs a handler that does nothing until every job is done.
//!
//! ```text
//! cargo bench -p agentsync-webhooks-queue --all-features --bench workers
//! BENCH_JOBS=20000 BENCH_BACKENDS=sqlite-full,redis cargo bench -p agentsync-webhooks-queue --all-features --bench workers
//! ```
//!
//! `BENCH_JOBS` (default 10,000) deliveries; `BENCH_BACKENDS` (default all compiled in:
//! `sqlite-full`, `sqlite-normal`, `redis`, `postgres`); `REDIS_URL`, `POSTGRES_URL` as in the
//! tests; `BENCH_CONCURRENCY` (default 10) handlers at once. The clock runs from the start of
//! `Workers::run_until` until it returned after the last job was settled. The fill (32
//! concurrent enqueues) is printed too, but is not what this measures.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use agentsync_webhooks_core::{
    EventType, UpdatesAvailable,
    handoff::now_ms,
    route::{Event, EventRouter},
};
use agentsync_webhooks_queue::{Queue, Workers};
use tokio::sync::Notify;

mod support;
use support::{delivery, env_number, for_each_engine};

/// Concurrent senders filling the queue.
const SENDERS: usize = 32;

/// Fills `queue` with `jobs` deliveries, then times `Workers` until all are done.
async fn measure(name: &str, queue: Queue, jobs: usize, concurrency: usize) {
    let run = format!("{:x}", now_ms());
    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let queue = queue.clone();
        let run = run.clone();
        senders.push(tokio::spawn(async move {
            for n in (sender..jobs).step_by(SENDERS) {
                queue.enqueue(&delivery(&run, n)).await?;
            }
            Ok::<_, agentsync_webhooks_queue::StoreError>(())
        }));
    }
    for sender in senders {
        match sender.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("{name}: fill: {err}"),
            Err(err) => panic!("{name}: a sender panicked: {err}"),
        }
    }
    let filled = started.elapsed();
    let depth = queue.stats().await.map(|stats| stats.depth);
    assert_eq!(
        depth.ok(),
        Some(jobs as u64),
        "{name}: every delivery stored"
    );

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
    // Stops once the last handler ran; `run_until` returns when its job is settled too.
    Workers::new(queue.clone(), router)
        .concurrency(concurrency)
        .run_until(async move { all_handled.notified().await })
        .await;
    let processed = started.elapsed();
    let stats = queue
        .stats()
        .await
        .unwrap_or_else(|err| panic!("{name}: {err}"));
    assert_eq!(
        (stats.depth, stats.dead),
        (0, 0),
        "{name}: every job done, none dead"
    );
    assert_eq!(
        handled.load(Ordering::Relaxed),
        jobs,
        "{name}: one run per job"
    );
    println!(
        "{name:14} processed, {concurrency} workers {:>9.0}/s  ({jobs} in {processed:.2?}; filled at {:.0}/s)",
        jobs as f64 / processed.as_secs_f64(),
        jobs as f64 / filled.as_secs_f64(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs = env_number("BENCH_JOBS", 10_000);
    let concurrency = env_number("BENCH_CONCURRENCY", 10);
    println!("{jobs} deliveries, 2 worker threads, a handler that does nothing");
    for_each_engine("workers", async |name, backend| {
        measure(name, Queue::from_backend(backend), jobs, concurrency).await;
    })
    .await;
}
