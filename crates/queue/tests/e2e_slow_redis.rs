//! Redis answering slowly (every reply held 600 ms, as a stalled or overloaded server would) or
//! not at all for a while does not stop the workers: every event completes, once.
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
    Queue, Workers,
    redis::{RedisBackend, RedisOptions},
};
use delay_proxy::DelayProxy;
use worker_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_absent_redis_does_not_stop_the_workers() {
    let proxy = DelayProxy::start(
        redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned(),
    )
    .await;
    // The fixture's queue talks to Redis directly (and deletes the keys at the end); the
    // workers' queue, under the same prefix, goes through the proxy, with an engine timeout
    // that outlasts the slowness.
    let f = fixture(Engine::Redis, "slow_redis").await;
    let direct = f.queue.clone();
    let (_, prefix) = f.location.split_once('#').unwrap();
    let options = RedisOptions::new()
        .prefix(format!("{prefix}:"))
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
