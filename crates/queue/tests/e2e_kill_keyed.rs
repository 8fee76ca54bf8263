//! `kill -9` of a worker process while it holds an ordering key (issue 23, "one at a time per
//! key"): the key stays held while the killed worker's lease runs, then another worker takes it
//! by running the killed event again, and the key's later events follow in occurred-at order.
//!
//! The worker process is this test binary run again with `AGENTSYNC_TEST_KEYED_CHILD=1`, which
//! turns [`keyed_child_worker`] into a worker whose `producersync.npn.*` handler prints
//! `started <webhook-id> <attempt>` and then blocks (until it is killed).
//!
//! On every engine: SQLite, Redis (under a prefix of its own) and PostgreSQL (a table of its
//! own); each orders events (`Backend::orders_events`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod worker_support;

use std::{
    collections::HashSet,
    io::Write,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use agentsync_webhooks_core::{
    EventType, ObjectData,
    handoff::now_ms,
    route::{Event, EventRouter, HandlerError},
};
use agentsync_webhooks_queue::{
    Enqueued, ReceivedDelivery, Workers,
    record::{AttemptOutcome, DeliveryState, HistoryEvent},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use worker_support::*;

const CHILD_ENV: &str = "AGENTSYNC_TEST_KEYED_CHILD";
/// Only stops a broken test from hanging; nothing is measured against it.
const BOUND: Duration = Duration::from_secs(60);
/// The killed worker's lease: what the key stays held for after the kill.
const CHILD_LEASE_MS: u64 = 3_000;
/// The NPN whose key the killed worker holds, and another one.
const HELD_NPN: &str = "0012345";
const OTHER_NPN: &str = "0099999";

/// Not a test of its own: the worker process the test starts and kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_child_worker() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let engine = engine_named(&std::env::var("TEST_ENGINE").unwrap());
    let queue = reopen(engine, &std::env::var("TEST_QUEUE").unwrap()).await;
    let lease: u64 = std::env::var("LEASE_MS").unwrap().parse().unwrap();
    let blocking = || {
        move |event: Event<ObjectData>| async move {
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "started {} {}", event.webhook_id, event.attempt).unwrap();
                out.flush().unwrap();
            }
            // Holds the key until killed.
            std::future::pending::<()>().await;
            Ok::<_, HandlerError>(())
        }
    };
    Workers::new(queue, keyed_router_with(blocking(), blocking()))
        .name("killed")
        // Slots to spare: the key's other events are still not taken while it holds the key.
        .concurrency(4)
        .lease(Duration::from_millis(lease))
        .poll_interval(Duration::from_millis(10))
        .busy_wait(Duration::from_millis(5))
        // Killed long before; the bound only stops an orphan.
        .run_until(tokio::time::sleep(Duration::from_secs(300)))
        .await;
}

/// A router with `activated` and `deactivated` as the `producersync.npn.*` handlers (keyed by
/// NPN, the router's default).
fn keyed_router_with<A, AF, D, DF>(activated: A, deactivated: D) -> EventRouter
where
    A: Fn(Event<ObjectData>) -> AF + Clone + Send + Sync + 'static,
    AF: Future<Output = Result<(), HandlerError>> + Send + 'static,
    D: Fn(Event<ObjectData>) -> DF + Clone + Send + Sync + 'static,
    DF: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    EventRouter::new()
        .on(EventType::ProducerSyncNpnActivated, activated)
        .on(EventType::ProducerSyncNpnDeactivated, deactivated)
}

/// A `producersync.npn.*` delivery for `npn`, occurred at `at` (`HH:MM` on 2023-11-14, UTC).
fn npn_event(id: &str, activated: bool, npn: &str, at: &str) -> ReceivedDelivery {
    let at = format!("2023-11-14T{at}:00Z");
    let (event_type, field) = if activated {
        ("producersync.npn.activated", "activatedAt")
    } else {
        ("producersync.npn.deactivated", "deactivatedAt")
    };
    let body = format!(
        r#"{{"id":"whe_{id}","type":"{event_type}","timestamp":"{at}","data":{{"npn":"{npn}","{field}":"{at}"}}}}"#
    );
    stored(id, event_type, body.into())
}

/// One handler run in the surviving workers.
#[derive(Debug, Clone)]
struct Run {
    webhook_id: String,
    npn: String,
    attempt: u32,
    /// When the handler started, ms since the epoch (the engine's clock: same host).
    started_ms: i64,
}

/// What the surviving workers' handlers saw: every run, and whether two runs of one key ever
/// overlapped.
#[derive(Clone, Default)]
struct Runs {
    held: Arc<Mutex<HashSet<String>>>,
    runs: Arc<Mutex<Vec<Run>>>,
    overlaps: Arc<AtomicUsize>,
}

impl Runs {
    fn router(&self) -> EventRouter {
        let handler = || {
            let runs = self.clone();
            move |event: Event<ObjectData>| {
                let runs = runs.clone();
                async move {
                    let npn = event.data.npn().unwrap();
                    let started_ms = now_ms();
                    if !runs.held.lock().unwrap().insert(npn.clone()) {
                        runs.overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    runs.runs.lock().unwrap().push(Run {
                        webhook_id: event.webhook_id.clone(),
                        npn: npn.clone(),
                        attempt: event.attempt,
                        started_ms,
                    });
                    runs.held.lock().unwrap().remove(&npn);
                    Ok(())
                }
            }
        };
        keyed_router_with(handler(), handler())
    }

    fn snapshot(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }
}

/// Starts the worker process on the fixture's queue and waits until its handler started a job;
/// returns the process and the job's `webhook-id` and attempt.
async fn start_child(f: &Fixture) -> (Child, String, u32) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "keyed_child_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("TEST_ENGINE", engine_name(f.engine))
        .env("TEST_QUEUE", &f.location)
        .env("LEASE_MS", CHILD_LEASE_MS.to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (id, attempt) = tokio::time::timeout(BOUND, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // The harness's "test keyed_child_worker ... " has no line end of its own.
            if let Some((_, rest)) = line.split_once("started ") {
                let mut words = rest.split(' ');
                let id = words.next().unwrap().to_owned();
                let attempt = words.next().unwrap().parse().unwrap();
                return (id, attempt);
            }
        }
        panic!("the worker process ended before it started a job");
    })
    .await
    .expect("the worker process started a job");
    (child, id, attempt)
}

/// SIGKILL, as `kill -9`.
async fn kill(mut child: Child) {
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed, not finished: {status:?}");
}

/// Three events of one NPN (stored newest first); a worker process takes the oldest (its key's
/// head) and is killed in its handler. Workers in this process then: run nothing of that key
/// while the killed worker's lease runs (another key's event, stored after the kill, runs
/// too); take the key once the lease expired by running the killed event again (attempt 2, the
/// lost attempt on record as lease-expired); run the key's other two events after it, one at a
/// time, in occurred-at order; and every event completes once, none stale, none dead.
async fn a_killed_worker_holding_a_key_frees_it_when_its_lease_expires(f: Fixture) {
    let run = unique("keyed");
    let (first, second, third) = (
        format!("{run}_1000"),
        format!("{run}_1005"),
        format!("{run}_1010"),
    );
    // Arrival order is not occurred-at order: the newest first, the oldest last.
    for (id, activated, at) in [
        (&third, true, "10:10"),
        (&second, false, "10:05"),
        (&first, true, "10:00"),
    ] {
        assert_eq!(
            f.queue
                .enqueue(&npn_event(id, activated, HELD_NPN, at))
                .await
                .unwrap(),
            Enqueued::New
        );
    }

    // The killed worker's lease ends no sooner than this (it claimed after it).
    let lease_end = now_ms() + i64::try_from(CHILD_LEASE_MS).unwrap();
    let (child, held, attempt) = start_child(&f).await;
    assert_eq!(
        (held.as_str(), attempt),
        (first.as_str(), 1),
        "the key's head, in occurred-at order, is what the worker process runs"
    );
    assert_eq!(
        f.queue.delivery(&first).await.unwrap().unwrap().state,
        DeliveryState::Running
    );
    kill(child).await;

    // Another key's event, stored after the kill.
    let other = format!("{run}_other");
    assert_eq!(
        f.queue
            .enqueue(&npn_event(&other, true, OTHER_NPN, "10:00"))
            .await
            .unwrap(),
        Enqueued::New
    );

    let runs = Runs::default();
    let workers = start(eager(Workers::new(f.queue.clone(), runs.router())).concurrency(8));
    drained(&f.queue, BOUND).await;
    workers.stop().await;
    let seen = runs.snapshot();

    assert_eq!(
        runs.overlaps.load(Ordering::SeqCst),
        0,
        "no two of a key at once"
    );
    // Each event ran once here; the killed one again, as its second attempt.
    let mut ids: Vec<&str> = seen.iter().map(|r| r.webhook_id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = vec![
        first.as_str(),
        second.as_str(),
        third.as_str(),
        other.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(ids, expected, "every event ran once: {seen:?}");
    let attempt_of = |id: &str| seen.iter().find(|r| r.webhook_id == id).unwrap().attempt;
    assert_eq!(
        attempt_of(&first),
        2,
        "the killed run counted as an attempt"
    );
    assert_eq!((attempt_of(&second), attempt_of(&third)), (1, 1));

    // The held key: in occurred-at order, the killed event first, and nothing of it before the
    // killed worker's lease could have ended (an order of events on one host's clock, not a
    // duration).
    let of_key: Vec<&Run> = seen.iter().filter(|r| r.npn == HELD_NPN).collect();
    let order: Vec<&str> = of_key.iter().map(|r| r.webhook_id.as_str()).collect();
    assert_eq!(
        order,
        [first.as_str(), second.as_str(), third.as_str()],
        "the held key's events in occurred-at order, the killed one again first"
    );
    for r in &of_key {
        assert!(
            r.started_ms >= lease_end,
            "{} ran at {} before the killed worker's lease could end ({lease_end})",
            r.webhook_id,
            r.started_ms
        );
    }

    // On record: the lost attempt, then the one that completed; nothing stale or dead.
    let record = f.queue.delivery(&first).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Done);
    let attempts: Vec<(u32, AttemptOutcome, String)> = record
        .history
        .iter()
        .filter_map(|entry| match &entry.event {
            HistoryEvent::Attempt {
                number,
                outcome,
                worker,
                ..
            } => Some((*number, *outcome, worker.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        attempts
            .iter()
            .map(|(n, outcome, _)| (*n, *outcome))
            .collect::<Vec<_>>(),
        [(1, AttemptOutcome::LeaseExpired), (2, AttemptOutcome::Ok)],
        "{record:?}"
    );
    assert!(
        attempts[0].2.contains("killed"),
        "the lost attempt is the killed worker's: {attempts:?}"
    );
    for id in [&first, &second, &third, &other] {
        let record = f.queue.delivery(id).await.unwrap().unwrap();
        assert_eq!(record.state, DeliveryState::Done, "{id}");
        assert!(!record.is_stale(), "{id} is not stale");
    }
    let stats = f.queue.stats().await.unwrap();
    assert_eq!((stats.depth, stats.dead), (0, 0));
}

macro_rules! engine_tests {
    ($engine:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_killed_worker_holding_a_key_frees_it_when_its_lease_expires() {
            super::a_killed_worker_holding_a_key_frees_it_when_its_lease_expires(
                fixture($engine, "kill_keyed").await,
            )
            .await;
        }
    };
}

mod sqlite {
    use super::*;
    engine_tests!(Engine::Sqlite);
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    engine_tests!(Engine::Redis);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    engine_tests!(Engine::Postgres);
}
