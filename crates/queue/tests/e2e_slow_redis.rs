//! Redis answering slowly (every reply held 600 ms, as a stalled or overloaded server would) or
//! not at all for a while does not stop the workers: every event completes, once. A timeout
//! longer than a second is the timeout, and claims whose replies come too late burn no attempt.
//!
//! The Redis here refuses `DEBUG SLEEP` (`enable-debug-command` is off), so the slowness comes
//! from a TCP proxy on 127.0.0.1 in front of it that delays every reply, and that can drop every
//! connection and refuse new ones ("Redis down").
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod delay_proxy;
mod worker_support;

use std::time::Duration;

use agentsync_webhooks_core::{
    EventType, UpdatesAvailable,
    route::{Event, EventRouter, HandlerError},
};
use agentsync_webhooks_queue::{
    Backend, Queue, Workers,
    contract::sample_delivery,
    redis::{RedisBackend, RedisOptions},
};
use delay_proxy::DelayProxy;
use worker_support::*;

/// A proxy in front of the Redis at `REDIS_URL`.
async fn proxy() -> DelayProxy {
    DelayProxy::start(
        redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned(),
    )
    .await
}

/// The fixture's prefix, as `RedisOptions::prefix` takes it.
fn prefix_of(f: &Fixture) -> String {
    let (_, prefix) = f.location.split_once('#').unwrap();
    format!("{prefix}:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_absent_redis_does_not_stop_the_workers() {
    let proxy = proxy().await;
    // The fixture's queue talks to Redis directly (and deletes the keys at the end); the
    // workers' queue, under the same prefix, goes through the proxy, with an engine timeout
    // that outlasts the slowness.
    let f = fixture(Engine::Redis, "slow_redis").await;
    let direct = f.queue.clone();
    let options = RedisOptions::new()
        .prefix(prefix_of(&f))
        .timeout(Duration::from_secs(5));
    let through_proxy = Queue::new(
        RedisBackend::connect_with(&format!("redis://{}", proxy.address()), options)
            .await
            .unwrap(),
    );

    let runs = Counts::default();
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let runs = runs.clone();
        move |event: Event<UpdatesAvailable>| {
            runs.add(&event.webhook_id);
            async { Ok::<_, HandlerError>(()) }
        }
    });
    let run = unique("slow");
    let ids: Vec<String> = (0..10).map(|i| format!("msg_{run}_{i}")).collect();
    enqueue_all(&direct, &ids[..5]).await;

    // Every reply now takes 600 ms.
    proxy.set_delay(Duration::from_millis(600));
    let workers = start(
        eager(Workers::new(through_proxy, router))
            .concurrency(4)
            .engine_timeout(Duration::from_secs(10)),
    );
    eventually(
        "the first events complete through the slow Redis",
        Duration::from_secs(120),
        || async { runs.distinct() == 5 },
    )
    .await;

    // Redis gone: every connection dropped, new ones refused. The workers log, back off, retry.
    proxy.set_down(true);
    enqueue_all(&direct, &ids[5..]).await;
    let accepted = proxy.accepted();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Back, still slow: the workers reconnect and finish the rest.
    proxy.set_down(false);
    drained(&direct, Duration::from_secs(120)).await;
    workers.stop().await;

    assert!(proxy.accepted() > accepted, "the workers reconnected");
    for id in &ids {
        assert_eq!(runs.get(id), 1, "{id}");
    }
    assert_eq!(direct.stats().await.unwrap().dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_above_a_second_is_the_timeout() {
    let proxy = proxy().await;
    let f = fixture(Engine::Redis, "long_timeout").await;
    // Every reply, from the connection's first on, takes 1.5 s.
    proxy.set_delay(Duration::from_millis(1_500));
    let options = RedisOptions::new()
        .prefix(prefix_of(&f))
        .timeout(Duration::from_secs(5));
    let backend = RedisBackend::connect_with(&format!("redis://{}", proxy.address()), options)
        .await
        .unwrap();
    let id = unique("slow_reply");
    backend.enqueue(&sample_delivery(&id)).await.unwrap();
    let jobs = backend.claim(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(backend.complete(&jobs[0]).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_whose_replies_come_too_late_burn_no_attempt() {
    let proxy = proxy().await;
    let f = fixture(Engine::Redis, "lost_claims").await;
    let direct = f.queue.clone();
    let options = RedisOptions::new()
        .prefix(prefix_of(&f))
        .timeout(Duration::from_millis(400));
    let through_proxy = Queue::new(
        RedisBackend::connect_with(&format!("redis://{}", proxy.address()), options)
            .await
            .unwrap(),
    );
    let runs = Counts::default();
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let runs = runs.clone();
        move |event: Event<UpdatesAvailable>| {
            runs.add(&event.webhook_id);
            async { Ok::<_, HandlerError>(()) }
        }
    });
    let run = unique("lost");
    let ids: Vec<String> = (0..3).map(|i| format!("msg_{run}_{i}")).collect();
    enqueue_all(&direct, &ids).await;

    // Every claim commits in Redis and its reply comes after the workers gave up on it, for
    // four leases: were each counted, every job would be past its two attempts.
    proxy.set_delay(Duration::from_millis(1_500));
    let workers = start(
        eager(Workers::new(through_proxy, router))
            .lease(Duration::from_millis(1_500))
            .engine_timeout(Duration::from_millis(400))
            .max_attempts(2),
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    proxy.set_delay(Duration::ZERO);
    eventually(
        "every event ran or was buried",
        Duration::from_secs(60),
        || async { runs.distinct() == ids.len() || direct.stats().await.is_ok_and(|s| s.dead > 0) },
    )
    .await;
    drained(&direct, Duration::from_secs(60)).await;
    workers.stop().await;

    // A claim given back adds its entries again: proof that claims committed and were lost.
    let added = entries_added(&f);
    assert!(
        added > ids.len() as i64,
        "no late claim was given back ({added} entries ever added to the stream)"
    );
    let dead = direct.dead_letters(10).await.unwrap();
    assert!(
        dead.is_empty(),
        "buried without running: {:?}",
        dead.iter()
            .map(|d| (&d.delivery.webhook_id, d.attempts, &d.last_error))
            .collect::<Vec<_>>()
    );
    for id in &ids {
        assert_eq!(runs.get(id), 1, "{id}");
    }
}

/// How many entries were ever added to the fixture's stream (`XINFO STREAM`'s `entries-added`).
fn entries_added(f: &Fixture) -> i64 {
    let (url, _) = f.location.split_once('#').unwrap();
    let mut connection = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let info: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(format!("{}stream", prefix_of(f)))
        .query(&mut connection)
        .unwrap();
    info.chunks(2)
        .find_map(|pair| match pair {
            [redis::Value::BulkString(name), redis::Value::Int(n)] if name == b"entries-added" => {
                Some(*n)
            }
            _ => None,
        })
        .unwrap()
}
