//! Trivial-handler jobs processed per second by [`Workers`] on each queue engine: the queue is
//! filled with stored deliveries, then `Workers` (concurrency 10, every other setting at its
//! default) runs a handler that does nothing until every job is done.
//!
//! ```text
//! cargo bench -p agentsync-webhooks-queue --all-features --bench workers
//! BENCH_JOBS=20000 BENCH_BACKENDS=sqlite-full,redis cargo bench -p agentsync-webhooks-queue --all-features --bench workers
//! BENCH_MODES=keys-10,keys-1000,unkeyed BENCH_BACKENDS=sqlite-normal,sqlite-full cargo bench -p agentsync-webhooks-queue --bench workers
//! ```
//!
//! `BENCH_JOBS` (default 10,000) deliveries; `BENCH_BACKENDS` (default all compiled in:
//! `sqlite-full`, `sqlite-normal`, `redis`, `postgres`); `REDIS_URL`, `POSTGRES_URL` as in the
//! tests; `BENCH_CONCURRENCY` (default 10) handlers at once. The clock runs from the start of
//! `Workers::run_until` until it returned after the last job was settled. The fill (32
//! concurrent enqueues) is printed too, but is not what this measures.
//!
//! `BENCH_MODES` (default all three, in this order) chooses what is stored, each mode on fresh
//! engines of its own:
//!
//! - `keys-10`: `producersync.npn.activated` and `.deactivated` (alternating per key), keyed by
//!   their NPN (the router's default ordering key), spread round-robin over 10 NPNs, each
//!   event of a key occurring 1 ms after the one before it. The workers run one event of a key
//!   at a time, in occurred-at order: with 10 keys and 10 handlers, every handler slot waits
//!   for its key's previous event to settle.
//! - `keys-1000`: the same over 1,000 NPNs (keys are rarely held; what shows is the claim's
//!   and the completion's per-key reads and writes).
//! - `unkeyed`: `producersync.updates_available`, which has no key: claimed as before.
//!
//! Every engine orders events (SQLite, PostgreSQL, and Redis partitioned or not: a keyed job is
//! stored in its key's partition). An engine that did not (`Backend::orders_events` false)
//! would store the keyed types without their key, and the bench would say so on its line.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use agentsync_webhooks_core::{
    EventType, NpnActivated, NpnDeactivated, UpdatesAvailable,
    handoff::now_ms,
    route::{Event, EventRouter},
};
use agentsync_webhooks_queue::{Queue, ReceivedDelivery, Workers};
use tokio::sync::Notify;

mod support;
use support::{delivery, env_number, for_each_engine};

/// Concurrent senders filling the queue.
const SENDERS: usize = 32;

/// What the queue is filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `producersync.npn.*` over this many NPNs (ordering keys).
    Keys(usize),
    /// `producersync.updates_available`: no ordering key.
    Unkeyed,
}

impl Mode {
    fn name(self) -> String {
        match self {
            Self::Keys(keys) => format!("keys-{keys}"),
            Self::Unkeyed => "unkeyed".to_owned(),
        }
    }

    /// Delivery `n` of run `run`.
    fn delivery(self, run: &str, n: usize) -> ReceivedDelivery {
        match self {
            Self::Keys(keys) => npn_delivery(run, n, keys),
            Self::Unkeyed => delivery(run, n),
        }
    }
}

/// Delivery `n` of run `run` over `keys` NPNs: NPN `n % keys`, activated and deactivated in
/// turns within a key, occurred `n` ms after 2026-01-01T00:00:00Z (so each key's events have
/// distinct, increasing occurred-at times, and none is stale).
fn npn_delivery(run: &str, n: usize, keys: usize) -> ReceivedDelivery {
    let (event_type, field) = if (n / keys).is_multiple_of(2) {
        ("producersync.npn.activated", "activatedAt")
    } else {
        ("producersync.npn.deactivated", "deactivatedAt")
    };
    let at = format!(
        "2026-01-01T{:02}:{:02}:{:02}.{:03}Z",
        n / 3_600_000 % 24,
        n / 60_000 % 60,
        n / 1_000 % 60,
        n % 1_000
    );
    let npn = 10_000_000 + n % keys;
    let mut stored = delivery(run, n);
    stored.event_type = event_type.into();
    stored.body = bytes::Bytes::from(format!(
        r#"{{"id":"whe_{run}_{n}","type":"{event_type}","timestamp":"{at}","data":{{"npn":"{npn}","{field}":"{at}"}}}}"#
    ));
    stored
}

/// A router whose handlers do nothing but count, and notify `all_handled` at the `jobs`th.
fn counting_router(
    mode: Mode,
    jobs: usize,
    handled: &Arc<AtomicUsize>,
    all_handled: &Arc<Notify>,
) -> EventRouter {
    let count = {
        let (handled, all_handled) = (Arc::clone(handled), Arc::clone(all_handled));
        move || {
            if handled.fetch_add(1, Ordering::Relaxed) + 1 == jobs {
                all_handled.notify_one();
            }
        }
    };
    match mode {
        Mode::Unkeyed => EventRouter::new().on(
            EventType::ProducerSyncUpdatesAvailable,
            move |_: Event<UpdatesAvailable>| {
                count();
                async { Ok(()) }
            },
        ),
        Mode::Keys(_) => {
            let other = count.clone();
            EventRouter::new()
                .on(
                    EventType::ProducerSyncNpnActivated,
                    move |_: Event<NpnActivated>| {
                        count();
                        async { Ok(()) }
                    },
                )
                .on(
                    EventType::ProducerSyncNpnDeactivated,
                    move |_: Event<NpnDeactivated>| {
                        other();
                        async { Ok(()) }
                    },
                )
        }
    }
}

/// Fills `queue` with `jobs` deliveries of `mode`, then times `Workers` until all are done.
async fn measure(name: &str, mode: Mode, queue: Queue, jobs: usize, concurrency: usize) {
    let run = format!("{:x}", now_ms());
    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let queue = queue.clone();
        let run = run.clone();
        senders.push(tokio::spawn(async move {
            for n in (sender..jobs).step_by(SENDERS) {
                queue.enqueue(&mode.delivery(&run, n)).await?;
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
    let router = counting_router(mode, jobs, &handled, &all_handled);
    let unordered = matches!(mode, Mode::Keys(_)) && !queue.backend().orders_events();
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
        "{:10} {name:14} processed, {concurrency} workers {:>9.0}/s  ({jobs} in {processed:.2?}; filled at {:.0}/s){}",
        mode.name(),
        jobs as f64 / processed.as_secs_f64(),
        jobs as f64 / filled.as_secs_f64(),
        if unordered {
            "  [this engine does not order events yet: no key stored, none enforced]"
        } else {
            ""
        },
    );
}

/// The modes `BENCH_MODES` names (`keys-10`, `keys-1000`, `keys-N`, `unkeyed`; all three
/// defaults when unset).
fn modes() -> Vec<Mode> {
    let wanted = std::env::var("BENCH_MODES").unwrap_or_default();
    if wanted.is_empty() {
        return vec![Mode::Keys(10), Mode::Keys(1_000), Mode::Unkeyed];
    }
    wanted
        .split(',')
        .map(|mode| match mode.strip_prefix("keys-") {
            Some(keys) => Mode::Keys(
                keys.parse()
                    .ok()
                    .filter(|&keys| keys > 0)
                    .unwrap_or_else(|| panic!("BENCH_MODES: {mode}: keys-N, N > 0")),
            ),
            None if mode == "unkeyed" => Mode::Unkeyed,
            None => panic!("BENCH_MODES: {mode}: keys-N or unkeyed"),
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs = env_number("BENCH_JOBS", 10_000);
    let concurrency = env_number("BENCH_CONCURRENCY", 10);
    println!("{jobs} deliveries, 2 worker threads, a handler that does nothing");
    for mode in modes() {
        for_each_engine(
            &format!("workers-{}", mode.name()),
            async |name, backend| {
                measure(name, mode, Queue::from_backend(backend), jobs, concurrency).await;
            },
        )
        .await;
    }
}
