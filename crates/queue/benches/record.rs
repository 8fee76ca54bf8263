//! What the delivery record's queries cost with many deliveries stored: a page of 50 (first
//! and next, by state, by states, by type, by group, over the last hour, by id prefix), the
//! counts (everything, the last hour) and one delivery with its history.
//!
//! ```text
//! cargo bench -p agentsync-webhooks-queue --all-features --bench record
//! BENCH_RECORD=100000 BENCH_BACKENDS=sqlite-normal,postgres cargo bench -p agentsync-webhooks-queue --all-features --bench record
//! ```
//!
//! `BENCH_RECORD` (default 100,000) deliveries are stored, received over the last two days
//! (about 2,000 in the last hour), of four types; then half are done, a tenth dead, a tenth
//! retrying, the rest waiting. Each query runs `BENCH_RUNS` (default 50) times after two
//! warm-up runs; the line gives the median and the slowest, in ms.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use agentsync_webhooks_core::handoff::now_ms;
use agentsync_webhooks_queue::{
    Backend, Enqueued, ReceivedDelivery,
    record::{DeliveryFilter, DeliveryState},
};

mod support;
use support::{delivery, env_number, for_each_engine};

const TYPES: [&str; 4] = [
    "producersync.updates_available",
    "contract.signed",
    "id.producer.updated",
    "producersync.npn.activated",
];
/// Concurrent senders while filling.
const SENDERS: usize = 64;

fn stored(run: &str, n: usize, total: usize, now: i64) -> ReceivedDelivery {
    let spread = 2 * 24 * 3_600_000 / i64::try_from(total.max(1)).unwrap_or(1);
    ReceivedDelivery {
        event_type: TYPES[n % TYPES.len()].to_owned(),
        received_at_ms: now - i64::try_from(total - n).unwrap_or(0) * spread,
        ..delivery(run, n)
    }
}

async fn fill(name: &str, backend: &Arc<dyn Backend>, run: &str, total: usize) {
    let now = now_ms();
    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let backend = Arc::clone(backend);
        let run = run.to_owned();
        senders.push(tokio::spawn(async move {
            let mut n = sender;
            while n < total {
                match backend.enqueue(&stored(&run, n, total, now)).await {
                    Ok(Enqueued::New) => {}
                    other => panic!("enqueue {n}: {other:?}"),
                }
                n += SENDERS;
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap_or_else(|err| panic!("{name}: {err}"));
    }
    // Settle in claim order (oldest first): 50% done, 10% dead, 10% retrying, the rest waits.
    let mut settled = 0;
    while settled < total * 7 / 10 {
        let jobs = backend
            .claim(500, Duration::from_secs(600))
            .await
            .unwrap_or_else(|err| panic!("{name}: claim: {err}"));
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
        "{name:14} stored {total} deliveries and settled {settled} in {:.1?}",
        started.elapsed()
    );
}

/// Runs `query` `runs` times (after two warm-ups); prints the median and the slowest.
async fn time<T, F, Fut>(name: &str, what: &str, runs: usize, mut query: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    for _ in 0..2 {
        query().await;
    }
    let mut took: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        query().await;
        took.push(started.elapsed());
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    println!(
        "{name:14} {what:34} median {:>7.2} ms   slowest {:>7.2} ms",
        ms(took[took.len() / 2]),
        ms(took[took.len() - 1])
    );
}

async fn measure(name: &'static str, backend: Arc<dyn Backend>, total: usize, runs: usize) {
    let run = format!("{:x}", now_ms());
    fill(name, &backend, &run, total).await;
    let hour_ago = now_ms() - 3_600_000;
    let first = backend
        .list(&DeliveryFilter::new(), None, 50)
        .await
        .unwrap_or_else(|err| panic!("{name}: list: {err}"));
    let next = first.next.clone();
    let shown = first
        .deliveries
        .last()
        .map(|summary| summary.webhook_id.clone())
        .unwrap_or_default();
    let pages: [(&str, DeliveryFilter); 7] = [
        ("page of 50, everything", DeliveryFilter::new()),
        (
            "page of 50, dead",
            DeliveryFilter::new().state(DeliveryState::Dead),
        ),
        (
            "page of 50, retrying or dead",
            DeliveryFilter::new().states([DeliveryState::Retrying, DeliveryState::Dead]),
        ),
        (
            "page of 50, one type",
            DeliveryFilter::new().event_type(TYPES[1]),
        ),
        (
            "page of 50, a group",
            DeliveryFilter::new().event_type("producersync"),
        ),
        (
            "page of 50, last hour",
            DeliveryFilter::new().received_since(hour_ago),
        ),
        (
            "page of 50, id prefix",
            DeliveryFilter::new().id_prefix(format!("msg_{run}_1234")),
        ),
    ];
    for (what, filter) in &pages {
        time(name, what, runs, || backend.list(filter, None, 50)).await;
    }
    let everything = DeliveryFilter::new();
    time(name, "next page of 50, everything", runs, || {
        backend.list(&everything, next.as_ref(), 50)
    })
    .await;
    time(name, "counts, everything", runs, || {
        backend.counts(&everything)
    })
    .await;
    let last_hour = DeliveryFilter::new().received_since(hour_ago);
    time(name, "counts, last hour", runs, || {
        backend.counts(&last_hour)
    })
    .await;
    time(name, "one delivery with its history", runs, || {
        backend.delivery(&shown)
    })
    .await;
}

fn main() {
    let total = env_number("BENCH_RECORD", 100_000);
    let runs = env_number("BENCH_RUNS", 50).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("runtime: {err}"));
    runtime.block_on(for_each_engine("record", async |name, backend| {
        measure(name, backend, total, runs).await;
    }));
}
