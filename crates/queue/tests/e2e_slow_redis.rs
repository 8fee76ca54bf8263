//! Redis answering slowly (every reply held 600 ms, as a stalled or overloaded server would) or
//! not at all for a while does not stop the workers: every event completes, once.
//!
//! The Redis here refuses `DEBUG SLEEP` (`enable-debug-command` is off), so the slowness comes
//! from a TCP proxy on 127.0.0.1 in front of it that delays every reply, and that can drop every
//! connection and refuse new ones ("Redis down").
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod worker_support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use agentsync_webhooks_core::{
    EventType, UpdatesAvailable,
    route::{Event, EventRouter, HandlerError},
};
use agentsync_webhooks_queue::{
    Queue, Workers,
    redis::{RedisBackend, RedisOptions},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use worker_support::*;

/// A proxy to `upstream` that holds every reply for `delay_ms`, and drops every connection
/// while `down`.
struct SlowProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    down: watch::Sender<bool>,
    accepted: Arc<AtomicU64>,
}

impl SlowProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (down, _) = watch::channel(false);
        let accepted = Arc::new(AtomicU64::new(0));
        let (delay, watch_down, count) = (delay_ms.clone(), down.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *watch_down.borrow() {
                    drop(client);
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let (upstream, delay, down) =
                    (upstream.clone(), delay.clone(), watch_down.subscribe());
                tokio::spawn(relay(client, upstream, delay, down));
            }
        });
        Self {
            port,
            delay_ms,
            down,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(u64::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }

    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

/// One client connection: requests pass at once, replies after the delay; both ends close when
/// the proxy goes down.
async fn relay(
    client: TcpStream,
    upstream: String,
    delay: Arc<AtomicU64>,
    mut down: watch::Receiver<bool>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let replies = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let hold = delay.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = replies => {}
        _ = down.wait_for(|down| *down) => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_absent_redis_does_not_stop_the_workers() {
    let proxy = SlowProxy::start(
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
        RedisBackend::connect_with(&proxy.url(), options)
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
    let accepted = proxy.accepted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Back, still slow: the workers reconnect and finish the rest.
    proxy.set_down(false);
    drained(&direct, Duration::from_secs(120)).await;
    workers.stop().await;

    assert!(
        proxy.accepted.load(Ordering::SeqCst) > accepted,
        "the workers reconnected"
    );
    for id in &ids {
        assert_eq!(runs.get(id), 1, "{id}");
    }
    assert_eq!(direct.stats().await.unwrap().dead, 0);
}
