//! Workers against the real engines: backoff, dead letters and replay, permanent errors, panics,
//! jobs that kill their worker, long handlers, graceful shutdown, concurrency, and engines that
//! are slow or down. Nothing here asserts how long anything took; waits have generous bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod worker_support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agentsync_webhooks_core::{
    EventType, UpdatesAvailable,
    route::{Event, EventRouter, HandlerError},
};
use agentsync_webhooks_queue::{
    Backoff, Enqueued, JobRequest, Queue, Workers, record::DeliveryState,
};
use worker_support::*;

const BOUND: Duration = Duration::from_secs(60);

fn ids(case: &str, n: usize) -> Vec<String> {
    let run = unique(case);
    (0..n).map(|i| format!("msg_{run}_{i}")).collect()
}

/// A handler that keeps failing backs off (each wait at least its backoff, the waits growing),
/// reaches the dead letters after `max_attempts`, and a replay runs it again.
async fn backoff_dead_letters_and_replay(f: Fixture) {
    let runs: Arc<Mutex<Vec<(u32, Instant)>>> = Arc::default();
    let fixed = Arc::new(AtomicBool::new(false));
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let (runs, fixed) = (runs.clone(), fixed.clone());
        move |event: Event<UpdatesAvailable>| {
            runs.lock().unwrap().push((event.attempt, Instant::now()));
            let fixed = fixed.load(Ordering::SeqCst);
            async move {
                if fixed {
                    Ok(())
                } else {
                    Err(HandlerError::retryable("ProducerSync is down"))
                }
            }
        }
    });
    let backoff =
        Backoff::new(Duration::from_millis(100), 4.0, Duration::from_secs(10)).jitter(0.0);
    let workers = start(
        eager(Workers::new(f.queue.clone(), router))
            .max_attempts(4)
            .backoff(backoff),
    );
    let id = &ids("backoff", 1)[0];
    f.queue.enqueue(&delivery(id)).await.unwrap();

    let dead = dead(&f.queue, id, BOUND).await;
    assert_eq!(dead.attempts, 4);
    assert!(
        dead.last_error.contains("ProducerSync is down"),
        "{}",
        dead.last_error
    );
    let runs_so_far = runs.lock().unwrap().clone();
    let attempts: Vec<u32> = runs_so_far.iter().map(|(a, _)| *a).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    let gaps: Vec<Duration> = runs_so_far.windows(2).map(|w| w[1].1 - w[0].1).collect();
    for (i, gap) in gaps.iter().enumerate() {
        // Stored times have millisecond resolution: allow for the rounding.
        let floor = backoff.nominal(u32::try_from(i).unwrap() + 1) - Duration::from_millis(5);
        assert!(
            *gap >= floor,
            "wait {i} was {gap:?}, backoff {floor:?}: {gaps:?}"
        );
    }
    assert!(gaps[2] > gaps[0], "the waits grow: {gaps:?}");
    assert_eq!(stats(&f.queue).await.dead, 1);

    // Fixed, then replayed from the dead letters: it runs again, as a first attempt.
    fixed.store(true, Ordering::SeqCst);
    assert!(f.queue.replay(id).await.unwrap());
    eventually("the replay ran and completed", BOUND, || async {
        let s = stats(&f.queue).await;
        s.depth == 0 && s.dead == 0 && runs.lock().unwrap().len() == 5
    })
    .await;
    assert_eq!(runs.lock().unwrap()[4].0, 1);
    // Done: a late retry of the sender is a duplicate.
    assert_eq!(
        f.queue.enqueue(&delivery(id)).await.unwrap(),
        Enqueued::Duplicate
    );
    workers.stop().await;
}

/// A permanent error, and data that does not fit the handler's type, go to the dead letters on
/// the first attempt.
async fn permanent_errors_go_to_the_dead_letters_at_once(f: Fixture) {
    let runs = Counts::default();
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let runs = runs.clone();
        move |event: Event<UpdatesAvailable>| {
            runs.add(&event.webhook_id);
            async { Err::<(), _>(HandlerError::permanent("not one of our producers")) }
        }
    });
    let workers = start(eager(Workers::new(f.queue.clone(), router)).max_attempts(10));
    let ids = ids("permanent", 2);
    f.queue.enqueue(&delivery(&ids[0])).await.unwrap();
    let bad = stored(
        &ids[1],
        "producersync.updates_available",
        r#"{"type":"producersync.updates_available","data":{"runDate":20250724}}"#.into(),
    );
    f.queue.enqueue(&bad).await.unwrap();

    let refused = dead(&f.queue, &ids[0], BOUND).await;
    assert_eq!(refused.attempts, 1);
    assert!(
        refused.last_error.contains("handler_permanent"),
        "{}",
        refused.last_error
    );
    assert!(refused.last_error.contains("not one of our producers"));
    let unparsable = dead(&f.queue, &ids[1], BOUND).await;
    assert_eq!(unparsable.attempts, 1);
    assert!(
        unparsable.last_error.contains("invalid_event_data"),
        "{}",
        unparsable.last_error
    );
    assert!(
        unparsable.last_error.contains("runDate"),
        "{}",
        unparsable.last_error
    );
    assert_eq!(
        unparsable.delivery, bad,
        "kept byte for byte, to replay once fixed"
    );
    assert_eq!((runs.get(&ids[0]), runs.get(&ids[1])), (1, 0));
    workers.stop().await;
}

/// A handler that panics is caught, counted as a failed attempt and retried; the workers go on.
async fn a_panicking_handler_is_retried(f: Fixture) {
    let runs = Counts::default();
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let runs = runs.clone();
        move |event: Event<UpdatesAvailable>| {
            runs.add(&event.webhook_id);
            // One panics before its future exists, the others inside it.
            let early = event.webhook_id.ends_with('0');
            assert!(!early || event.attempt > 1, "first attempt panics early");
            async move {
                assert!(
                    event.attempt > 1,
                    "first attempt of {} panics",
                    event.webhook_id
                );
                Ok::<_, HandlerError>(())
            }
        }
    });
    let backoff = Backoff::new(Duration::from_millis(50), 2.0, Duration::from_secs(1));
    let workers = start(eager(Workers::new(f.queue.clone(), router)).backoff(backoff));
    let ids = ids("panic", 3);
    enqueue_all(&f.queue, &ids).await;
    eventually(
        "every job completed on its second attempt",
        BOUND,
        || async {
            let s = stats(&f.queue).await;
            s.depth == 0 && runs.total() == 6
        },
    )
    .await;
    assert_eq!(stats(&f.queue).await.dead, 0);
    for id in &ids {
        assert_eq!(runs.get(id), 2, "{id}");
    }
    workers.stop().await;
}

/// A job claimed more often than `max_attempts` without reporting back (it killed its worker
/// each time) is buried without running again.
async fn a_job_that_kills_its_worker_is_buried_without_running(f: Fixture) {
    let id = &ids("killer", 1)[0];
    f.queue.enqueue(&delivery(id)).await.unwrap();
    // Two workers claimed it and died: their leases ran out without a word.
    for attempt in 1..=2 {
        let lease = Duration::from_millis(100);
        let deadline = Instant::now() + BOUND;
        let job = loop {
            let mut jobs = f.queue.backend().claim(1, lease).await.unwrap();
            if let Some(job) = jobs.pop() {
                break job;
            }
            assert!(
                Instant::now() < deadline,
                "the job never became claimable again"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(job.attempt, attempt);
    }
    let runs = Counts::default();
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let runs = runs.clone();
        move |event: Event<UpdatesAvailable>| {
            runs.add(&event.webhook_id);
            async { Ok::<_, HandlerError>(()) }
        }
    });
    let workers = start(eager(Workers::new(f.queue.clone(), router)).max_attempts(2));
    let dead = dead(&f.queue, id, BOUND).await;
    assert_eq!(dead.attempts, 3);
    assert!(
        dead.last_error.contains("kills the worker"),
        "{}",
        dead.last_error
    );
    assert_eq!(runs.get(id), 0, "never run again");
    workers.stop().await;
}

/// A handler that runs for many leases keeps its job: its lease is extended, so no other worker
/// takes it, and it completes once.
async fn a_long_handler_keeps_its_lease(f: Fixture) {
    let runs = Counts::default();
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let runs = runs.clone();
        move |event: Event<UpdatesAvailable>| {
            let runs = runs.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                runs.add(&event.webhook_id);
                Ok::<_, HandlerError>(())
            }
        }
    });
    let lease = Duration::from_millis(300);
    let first = start(eager(Workers::new(f.queue.clone(), router.clone())).lease(lease));
    let id = &ids("long", 1)[0];
    f.queue.enqueue(&delivery(id)).await.unwrap();
    // A second set of workers (another process, as far as the queue knows) polls all along.
    let other = reopen(f.engine, &f.location).await;
    let second = start(eager(Workers::new(other, router)).lease(lease));
    drained(&f.queue, BOUND).await;
    first.stop().await;
    second.stop().await;
    assert_eq!(runs.get(id), 1, "run once, by one worker");
    assert_eq!(stats(&f.queue).await.dead, 0);
}

/// Settings that would let a lease expire under a live handler (an extension asked for less
/// often than the lease lasts, an engine timeout as long as the lease) are capped: the handler
/// keeps its job against a second set of workers and runs once. Before the caps, the 300 ms
/// lease was first extended after 5 s and the other workers ran the job too.
async fn settings_that_would_lose_a_live_lease_are_capped(f: Fixture) {
    let runs = Counts::default();
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let runs = runs.clone();
        move |event: Event<UpdatesAvailable>| {
            let runs = runs.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                runs.add(&event.webhook_id);
                Ok::<_, HandlerError>(())
            }
        }
    });
    let careless = |queue: Queue| {
        eager(Workers::new(queue, router.clone()))
            .lease(Duration::from_millis(300))
            .extend_every(Duration::from_secs(5))
            .engine_timeout(Duration::from_secs(10))
    };
    let first = start(careless(f.queue.clone()));
    let id = &ids("capped", 1)[0];
    f.queue.enqueue(&delivery(id)).await.unwrap();
    let second = start(careless(reopen(f.engine, &f.location).await));
    drained(&f.queue, BOUND).await;
    first.stop().await;
    second.stop().await;
    assert_eq!(runs.get(id), 1, "run once, by one worker");
}

/// Stopping the workers with handlers in flight loses nothing: each job is done (once) or back in
/// the queue, at once (the lease is long: a job not given back would not come back in time).
async fn graceful_shutdown_loses_none(f: Fixture) {
    let started = Counts::default();
    let done = Counts::default();
    let phase_two = Arc::new(AtomicBool::new(false));
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let (started, done, phase_two) = (started.clone(), done.clone(), phase_two.clone());
        move |event: Event<UpdatesAvailable>| {
            started.add(&event.webhook_id);
            let (done, phase_two) = (done.clone(), phase_two.clone());
            async move {
                if !phase_two.load(Ordering::SeqCst) {
                    // Every third job outlasts the grace period.
                    let slow = event.webhook_id.ends_with(['0', '3', '6', '9']);
                    let pull = if slow { 30_000 } else { 200 };
                    tokio::time::sleep(Duration::from_millis(pull)).await;
                }
                done.add(&event.webhook_id);
                Ok::<_, HandlerError>(())
            }
        }
    });
    let ids = ids("shutdown", 10);
    enqueue_all(&f.queue, &ids).await;
    let workers = start(
        eager(Workers::new(f.queue.clone(), router.clone()))
            .concurrency(4)
            .lease(Duration::from_secs(120))
            .grace_period(Duration::from_millis(700)),
    );
    eventually("four handlers are running", BOUND, || async {
        started.total() >= 4
    })
    .await;
    workers.stop().await;

    let finished = done.snapshot();
    assert!(finished.values().all(|&n| n == 1), "{finished:?}");
    let s = stats(&f.queue).await;
    assert_eq!(s.dead, 0);
    assert_eq!(
        usize::try_from(s.depth).unwrap(),
        ids.len() - finished.len(),
        "every job not done is back in the queue"
    );

    // Workers started again take the rest at once and run each of them once.
    phase_two.store(true, Ordering::SeqCst);
    let again = start(eager(Workers::new(f.queue.clone(), router)).lease(Duration::from_secs(120)));
    drained(&f.queue, BOUND).await;
    again.stop().await;
    for id in &ids {
        assert_eq!(done.get(id), 1, "{id} done exactly once");
    }
}

/// Many jobs at concurrency 8: never more than 8 handlers at once, and each job run exactly once.
async fn many_jobs_each_run_once(f: Fixture) {
    let runs = Counts::default();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let (runs, running, most) = (runs.clone(), running.clone(), most.clone());
        move |event: Event<UpdatesAvailable>| {
            let (runs, running, most) = (runs.clone(), running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                runs.add(&event.webhook_id);
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(())
            }
        }
    });
    let ids = ids("many", 300);
    enqueue_all(&f.queue, &ids).await;
    let workers = start(eager(Workers::new(f.queue.clone(), router)).concurrency(8));
    drained(&f.queue, Duration::from_secs(120)).await;
    workers.stop().await;
    assert_eq!(runs.distinct(), ids.len());
    for id in &ids {
        assert_eq!(runs.get(id), 1, "{id}");
    }
    let most = most.load(Ordering::SeqCst);
    assert!(
        (2..=8).contains(&most),
        "at most 8 at once, and more than one: {most}"
    );
    assert_eq!(stats(&f.queue).await.dead, 0);
}

/// Workers over an engine that answers every call slowly (600 ms), or fails some of them, or is
/// down for a while, keep going: every job completes, once.
async fn a_slow_or_failing_engine_does_not_stop_the_workers(f: Fixture) {
    let runs = Counts::default();
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let runs = runs.clone();
        move |event: Event<UpdatesAvailable>| {
            runs.add(&event.webhook_id);
            async { Ok::<_, HandlerError>(()) }
        }
    });
    let slow = Troubled::new(f.queue.backend().clone(), Duration::from_millis(600), 0);
    let flaky = Troubled::new(f.queue.backend().clone(), Duration::ZERO, 3);
    let ids = ids("troubled", 12);
    enqueue_all(&f.queue, &ids).await;

    // Down first: nothing can be claimed; the workers log and retry.
    flaky.set_down(true);
    let on_slow = start(
        eager(Workers::new(
            Queue::from_backend(slow.clone()),
            router.clone(),
        ))
        .concurrency(2),
    );
    let on_flaky =
        start(eager(Workers::new(Queue::from_backend(flaky.clone()), router)).concurrency(2));
    eventually("the down engine refused claims", BOUND, || async {
        flaky.failures.load(Ordering::SeqCst) >= 3
    })
    .await;
    flaky.set_down(false);

    drained(&f.queue, Duration::from_secs(120)).await;
    on_slow.stop().await;
    on_flaky.stop().await;
    for id in &ids {
        assert_eq!(runs.get(id), 1, "{id}");
    }
    assert_eq!(stats(&f.queue).await.dead, 0);
}

/// A job gives its handler slot back when its handler ends, before its completion's round
/// trip: with one slot and completions that take 2 s to reach the engine, the second job's
/// handler runs while the first job is still running in the engine (its completion under way).
async fn a_finished_handler_frees_its_slot_before_its_job_is_settled(f: Fixture) {
    let ids = ids("slot", 2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = f.queue.backend().clone();
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let (seen, inner, first) = (seen.clone(), inner.clone(), ids[0].clone());
        move |event: Event<UpdatesAvailable>| {
            let (seen, inner, first) = (seen.clone(), inner.clone(), first.clone());
            async move {
                if event.webhook_id != first {
                    let state = inner.delivery(&first).await.unwrap().map(|r| r.state);
                    seen.lock().unwrap().push(state);
                }
                Ok::<_, HandlerError>(())
            }
        }
    });
    // The first job claimed alone, so that the second is claimed after its handler ended.
    enqueue_all(&f.queue, &ids[..1]).await;
    let slow = Troubled::slow_to_complete(inner.clone(), Duration::ZERO, 0, Duration::from_secs(2));
    let workers = start(eager(Workers::new(Queue::from_backend(slow), router)).concurrency(1));
    eventually("the first job claimed", BOUND, || async {
        let record = inner.delivery(&ids[0]).await.unwrap();
        record.is_some_and(|r| r.state == DeliveryState::Running)
    })
    .await;
    enqueue_all(&f.queue, &ids[1..]).await;
    drained(&f.queue, Duration::from_secs(30)).await;
    workers.stop().await;
    assert_eq!(
        *seen.lock().unwrap(),
        [Some(DeliveryState::Running)],
        "the second handler ran while the first job's completion was under way"
    );
}

/// Tower middleware around the router sees every job. A timeout's error is a retryable failure;
/// a handler's permanent error keeps its kind through the middleware's boxed errors.
async fn middleware_wraps_every_job(f: Fixture) {
    let ids = ids("middleware", 3);
    let (ok, slow, refused) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let (slow, refused) = (slow.clone(), refused.clone());
        move |event: Event<UpdatesAvailable>| {
            let (is_slow, is_refused) = (event.webhook_id == slow, event.webhook_id == refused);
            async move {
                if is_slow {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                if is_refused {
                    return Err(HandlerError::permanent("not one of our producers"));
                }
                Ok(())
            }
        }
    });
    let seen: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let timeout = tower::timeout::TimeoutLayer::new(Duration::from_millis(300));
    let record = tower::util::MapRequestLayer::new({
        let seen = seen.clone();
        move |request: JobRequest| {
            let job = (request.delivery.webhook_id.clone(), request.attempt);
            seen.lock().unwrap().push(job);
            request
        }
    });
    let workers = Workers::new(f.queue.clone(), router)
        .layer(timeout)
        .layer(record);
    let backoff = Backoff::new(Duration::from_millis(50), 2.0, Duration::from_millis(100));
    let running = start(eager(workers).max_attempts(2).backoff(backoff.jitter(0.0)));
    for id in &ids {
        f.queue.enqueue(&delivery(id)).await.unwrap();
    }

    let timed_out = dead(&f.queue, &slow, BOUND).await;
    assert_eq!(timed_out.attempts, 2);
    assert!(
        timed_out.last_error.contains("handler_failed")
            && timed_out.last_error.contains("timed out"),
        "{}",
        timed_out.last_error
    );
    let permanent = dead(&f.queue, &refused, BOUND).await;
    assert_eq!(permanent.attempts, 1, "permanent: no second attempt");
    assert!(
        permanent.last_error.contains("handler_permanent"),
        "{}",
        permanent.last_error
    );
    drained(&f.queue, BOUND).await;
    assert!(f.queue.dead_letter(&ok).await.unwrap().is_none());
    running.stop().await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let mut expected = vec![(ok, 1), (slow.clone(), 1), (slow, 2), (refused, 1)];
    expected.sort();
    assert_eq!(seen, expected);
}

/// A `producersync.npn.*` delivery for `npn`, occurred at `at_secs` (keyed by NPN by default).
fn npn_event(
    id: &str,
    activated: bool,
    npn: &str,
    at_secs: i64,
) -> agentsync_webhooks_queue::ReceivedDelivery {
    // Every time used here is on 2023-11-14 (1_699_920_000 is its midnight, UTC).
    let day = at_secs - 1_699_920_000;
    assert!((0..86_400).contains(&day));
    let at = format!(
        "2023-11-14T{:02}:{:02}:{:02}Z",
        day / 3600,
        day % 3600 / 60,
        day % 60
    );
    let (event_type, field) = if activated {
        ("producersync.npn.activated", "activatedAt")
    } else {
        ("producersync.npn.deactivated", "deactivatedAt")
    };
    let body = format!(
        r#"{{"id":"{id}","type":"{event_type}","timestamp":"{at}","data":{{"npn":"{npn}","{field}":"{at}"}}}}"#
    );
    stored(id, event_type, body.into())
}

/// Runs of keyed events as the handlers saw them: (npn, occurred-at s), and whether any two of
/// one key overlapped.
#[derive(Clone, Default)]
struct KeyRuns {
    held: Arc<Mutex<std::collections::HashSet<String>>>,
    runs: Arc<Mutex<Vec<(String, i64)>>>,
    overlaps: Arc<AtomicUsize>,
}

impl KeyRuns {
    fn router(&self) -> EventRouter {
        let handler = |runs: KeyRuns| {
            move |event: Event<agentsync_webhooks_core::ObjectData>| {
                let runs = runs.clone();
                async move {
                    let npn = event.data.npn().unwrap();
                    if !runs.held.lock().unwrap().insert(npn.clone()) {
                        runs.overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    runs.runs
                        .lock()
                        .unwrap()
                        .push((npn.clone(), event.timestamp.timestamp()));
                    runs.held.lock().unwrap().remove(&npn);
                    Ok(())
                }
            }
        };
        EventRouter::new()
            .on(EventType::ProducerSyncNpnActivated, handler(self.clone()))
            .on(EventType::ProducerSyncNpnDeactivated, handler(self.clone()))
    }

    fn of(&self, npn: &str) -> Vec<i64> {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == npn)
            .map(|(_, at)| *at)
            .collect()
    }
}

/// Two events of one key enqueued together, 8 workers: never at once, both run, older first.
async fn two_events_of_one_key_run_one_at_a_time_in_occurred_at_order(f: Fixture) {
    let runs = KeyRuns::default();
    let run = unique("pair");
    // Enqueued together, the newer first, before the workers start: with the workers already
    // polling, the newer could run and complete before the older arrived, which would then be
    // stale, rightly, and never run.
    f.queue
        .enqueue(&npn_event(
            &format!("{run}_b"),
            true,
            "0012345",
            1_700_000_300,
        ))
        .await
        .unwrap();
    f.queue
        .enqueue(&npn_event(
            &format!("{run}_a"),
            false,
            "0012345",
            1_700_000_000,
        ))
        .await
        .unwrap();
    let workers = start(eager(Workers::new(f.queue.clone(), runs.router())).concurrency(8));
    eventually("both ran", BOUND, || {
        let runs = runs.clone();
        async move { runs.of("0012345").len() == 2 }
    })
    .await;
    workers.stop().await;
    assert_eq!(runs.overlaps.load(Ordering::SeqCst), 0);
    assert_eq!(runs.of("0012345"), [1_700_000_000, 1_700_000_300]);
}

/// 200 events over 20 keys, on two workers of two handles on one file (as two processes):
/// per key, runs never overlap and follow occurred-at order.
async fn events_of_many_keys_on_two_workers_never_overlap_per_key(f: Fixture) {
    let runs = KeyRuns::default();
    let run = unique("many");
    // Stored before the workers start, newest first within each key.
    for i in (0..10).rev() {
        for k in 0..20 {
            let id = format!("{run}_{k}_{i}");
            let event = npn_event(&id, i % 2 == 0, &format!("npn{k}"), 1_700_000_000 + i);
            assert_eq!(f.queue.enqueue(&event).await.unwrap(), Enqueued::New);
        }
    }
    let other = reopen(f.engine, &f.location).await;
    let first =
        start(eager(Workers::new(f.queue.clone(), runs.router()).name("one")).concurrency(8));
    let second = start(eager(Workers::new(other, runs.router()).name("two")).concurrency(8));
    eventually("all ran", BOUND, || {
        let runs = runs.clone();
        async move { runs.runs.lock().unwrap().len() == 200 }
    })
    .await;
    first.stop().await;
    second.stop().await;
    assert_eq!(
        runs.overlaps.load(Ordering::SeqCst),
        0,
        "no two of one key at once"
    );
    for k in 0..20 {
        let at = runs.of(&format!("npn{k}"));
        let mut sorted = at.clone();
        sorted.sort_unstable();
        assert_eq!(at, sorted, "npn{k} in occurred-at order");
        assert_eq!(at.len(), 10);
    }
}

/// Deactivated (10:00) arriving after activated (10:05) was processed: not run, recorded
/// stale; a handler that opts in sees it flagged.
async fn a_stale_event_is_recorded_and_not_run_unless_opted_in(f: Fixture) {
    let runs = KeyRuns::default();
    let workers = start(eager(Workers::new(f.queue.clone(), runs.router())));
    let run = unique("stale");
    let (new, old) = (format!("{run}_activated"), format!("{run}_deactivated"));
    f.queue
        .enqueue(&npn_event(&new, true, "7", 1_700_000_300))
        .await
        .unwrap();
    eventually("activated ran", BOUND, || {
        let runs = runs.clone();
        async move { runs.of("7").len() == 1 }
    })
    .await;
    eventually("activated done", BOUND, || {
        let queue = f.queue.clone();
        let new = new.clone();
        async move {
            queue.delivery(&new).await.unwrap().unwrap().state
                == agentsync_webhooks_queue::record::DeliveryState::Done
        }
    })
    .await;
    f.queue
        .enqueue(&npn_event(&old, false, "7", 1_700_000_000))
        .await
        .unwrap();
    eventually("deactivated recorded stale", BOUND, || {
        let queue = f.queue.clone();
        let old = old.clone();
        async move { queue.delivery(&old).await.unwrap().unwrap().is_stale() }
    })
    .await;
    workers.stop().await;
    assert_eq!(runs.of("7"), [1_700_000_300], "the stale one never ran");

    // Opted in: it runs, flagged.
    let flagged: Arc<Mutex<Vec<bool>>> = Arc::default();
    let router = EventRouter::new()
        .on(EventType::ProducerSyncNpnDeactivated, {
            let flagged = flagged.clone();
            move |event: Event<agentsync_webhooks_core::NpnDeactivated>| {
                flagged.lock().unwrap().push(event.stale);
                async { Ok(()) }
            }
        })
        .receive_stale(EventType::ProducerSyncNpnDeactivated);
    let workers = start(eager(Workers::new(f.queue.clone(), router)));
    f.queue
        .enqueue(&npn_event(
            &format!("{run}_older"),
            false,
            "7",
            1_699_999_000,
        ))
        .await
        .unwrap();
    eventually("the opted-in handler ran", BOUND, || {
        let flagged = flagged.clone();
        async move { !flagged.lock().unwrap().is_empty() }
    })
    .await;
    workers.stop().await;
    assert_eq!(*flagged.lock().unwrap(), [true]);
}

macro_rules! engine_tests {
    ($engine:expr => $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(fixture($engine, stringify!($case)).await).await;
            }
        )+
    };
}

macro_rules! all_cases {
    ($engine:expr) => {
        engine_tests!($engine =>
            backoff_dead_letters_and_replay,
            permanent_errors_go_to_the_dead_letters_at_once,
            a_panicking_handler_is_retried,
            a_job_that_kills_its_worker_is_buried_without_running,
            a_long_handler_keeps_its_lease,
            graceful_shutdown_loses_none,
            many_jobs_each_run_once,
            a_slow_or_failing_engine_does_not_stop_the_workers,
        );
    };
}

/// Event time, on every engine (a partitioned Redis queue stores a key's jobs in its key's
/// partition).
macro_rules! event_time_cases {
    ($engine:expr) => {
        engine_tests!($engine =>
            two_events_of_one_key_run_one_at_a_time_in_occurred_at_order,
            events_of_many_keys_on_two_workers_never_overlap_per_key,
            a_stale_event_is_recorded_and_not_run_unless_opted_in,
        );
    };
}

mod sqlite {
    use super::*;
    all_cases!(Engine::Sqlite);
    // Middleware is the same on every engine.
    engine_tests!(Engine::Sqlite =>
        middleware_wraps_every_job,
        a_finished_handler_frees_its_slot_before_its_job_is_settled,
        settings_that_would_lose_a_live_lease_are_capped,
    );
    event_time_cases!(Engine::Sqlite);
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    all_cases!(Engine::Redis);
    event_time_cases!(Engine::Redis);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    all_cases!(Engine::Postgres);
    event_time_cases!(Engine::Postgres);
}

/// The Redis Cluster of `.ci/redis-cluster.sh` (or `REDIS_CLUSTER_URL`), in 3 partitions.
#[cfg(feature = "redis")]
mod redis_cluster {
    use super::*;
    all_cases!(Engine::RedisCluster);
    event_time_cases!(Engine::RedisCluster);
}
