//! `kill -9` of a worker process in the middle of a handler: another worker completes the event
//! (once the killed one's lease expires), nothing is lost; and a worker started right after the
//! kill works at once, without waiting for anything of the killed one.
//!
//! The worker process is this test binary run again with `AGENTSYNC_TEST_WORKER_CHILD=1`, which
//! turns [`child_worker`] into a worker that prints `started <webhook-id> <attempt>` when a handler
//! starts and then "pulls" for `PULL_DELAY_MS`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod worker_support;

use std::{
    io::Write,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use agentsync_webhooks_core::{
    EventType, UpdatesAvailable,
    route::{Event, EventRouter, HandlerError},
};
use agentsync_webhooks_queue::{Enqueued, Workers};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use worker_support::*;

const CHILD_ENV: &str = "AGENTSYNC_TEST_WORKER_CHILD";
const BOUND: Duration = Duration::from_secs(60);

/// Not a test of its own: the worker process the other tests start and kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let engine = engine_named(&std::env::var("TEST_ENGINE").unwrap());
    let queue = reopen(engine, &std::env::var("TEST_QUEUE").unwrap()).await;
    let delay: u64 = std::env::var("PULL_DELAY_MS").unwrap().parse().unwrap();
    let lease: u64 = std::env::var("LEASE_MS").unwrap().parse().unwrap();
    let router = EventRouter::new().on(
        EventType::ProducerSyncUpdatesAvailable,
        move |event: Event<UpdatesAvailable>| async move {
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "started {} {}", event.webhook_id, event.attempt).unwrap();
                out.flush().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(delay)).await;
            Ok::<_, HandlerError>(())
        },
    );
    Workers::new(queue, router)
        .concurrency(1)
        .lease(Duration::from_millis(lease))
        .poll_interval(Duration::from_millis(10))
        // Killed long before; the bound only stops an orphan.
        .run_until(tokio::time::sleep(Duration::from_secs(300)))
        .await;
}

/// Starts a worker process on `f`'s queue, and waits until its handler started a job; returns
/// the process and the job's `webhook-id`.
async fn start_child(f: &Fixture, pull_delay_ms: u64, lease_ms: u64) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_worker", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("TEST_ENGINE", engine_name(f.engine))
        .env("TEST_QUEUE", &f.location)
        .env("PULL_DELAY_MS", pull_delay_ms.to_string())
        .env("LEASE_MS", lease_ms.to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = tokio::time::timeout(BOUND, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // The harness's "test child_worker ... " has no line end of its own.
            if let Some((_, rest)) = line.split_once("started ") {
                return rest.split(' ').next().unwrap().to_owned();
            }
        }
        panic!("the worker process ended before it started a job");
    })
    .await
    .expect("the worker process started a job");
    (child, started)
}

/// SIGKILL, as `kill -9`.
async fn kill(mut child: Child) {
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed, not finished: {status:?}");
}

/// Runs of each id, with their attempt numbers.
type Seen = Arc<Mutex<Vec<(String, u32)>>>;

fn recording_router(seen: &Seen) -> EventRouter {
    let seen = seen.clone();
    EventRouter::new().on(
        EventType::ProducerSyncUpdatesAvailable,
        move |event: Event<UpdatesAvailable>| {
            seen.lock()
                .unwrap()
                .push((event.webhook_id.clone(), event.attempt));
            async { Ok::<_, HandlerError>(()) }
        },
    )
}

/// A worker process killed mid-handler: another worker completes its event within 30 s (the
/// lease is 2 s), and every answered event is completed, none lost.
async fn kill_mid_handler_another_worker_completes(f: Fixture) {
    let run = unique("kill");
    let ids: Vec<String> = (0..5).map(|i| format!("msg_{run}_{i}")).collect();
    enqueue_all(&f.queue, &ids).await;
    let (child, held) = start_child(&f, 600_000, 2_000).await;
    kill(child).await;

    let seen = Seen::default();
    let workers = start(eager(Workers::new(
        f.queue.clone(),
        recording_router(&seen),
    )));
    eventually(
        "the killed worker's event is completed by another",
        Duration::from_secs(30),
        || async { f.queue.stats().await.is_ok_and(|s| s.depth == 0) },
    )
    .await;
    workers.stop().await;

    let seen = seen.lock().unwrap().clone();
    let mut completed: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    completed.sort_unstable();
    let mut answered: Vec<&str> = ids.iter().map(String::as_str).collect();
    answered.sort_unstable();
    assert_eq!(completed, answered, "answered = completed, each once");
    let attempt = seen.iter().find(|(id, _)| *id == held).map(|(_, a)| *a);
    assert_eq!(attempt, Some(2), "the killed run counted as an attempt");
    assert_eq!(f.queue.stats().await.unwrap().dead, 0);
    for id in &ids {
        assert_eq!(
            f.queue.enqueue(&delivery(id)).await.unwrap(),
            Enqueued::Duplicate
        );
    }
}

/// A worker started right after a kill works at once: new events are processed while the killed
/// worker's event still waits for its (long) lease to expire.
async fn a_worker_restarted_after_a_kill_works_at_once(f: Fixture) {
    let run = unique("restart");
    let held = format!("msg_{run}_held");
    enqueue_all(&f.queue, std::slice::from_ref(&held)).await;
    let (child, started) = start_child(&f, 600_000, 600_000).await;
    assert_eq!(started, held);
    kill(child).await;

    let seen = Seen::default();
    let workers = start(
        eager(Workers::new(f.queue.clone(), recording_router(&seen)))
            .lease(Duration::from_secs(600)),
    );
    let fresh: Vec<String> = (0..3).map(|i| format!("msg_{run}_{i}")).collect();
    enqueue_all(&f.queue, &fresh).await;
    eventually("the new events are processed", BOUND, || async {
        seen.lock().unwrap().len() == fresh.len()
    })
    .await;
    workers.stop().await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(id, _)| fresh.contains(id)), "{seen:?}");
    // The killed worker's event is not lost: it waits, leased, for its lease to run out.
    assert_eq!(f.queue.stats().await.unwrap().depth, 1);
}

macro_rules! engine_tests {
    ($engine:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn kill_mid_handler_another_worker_completes() {
            super::kill_mid_handler_another_worker_completes(
                fixture($engine, "kill_mid_handler").await,
            )
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_worker_restarted_after_a_kill_works_at_once() {
            super::a_worker_restarted_after_a_kill_works_at_once(
                fixture($engine, "restart_after_kill").await,
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
