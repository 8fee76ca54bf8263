//! `RedisBackend` against a real Redis: the shared queue contract, one round trip per enqueue,
//! and an unreachable Redis.
//!
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`). When `REDIS_URL` is set, an unreachable
//! Redis fails every test; when it is not, the tests are skipped with a note. Every test works
//! under its own key prefix, so tests run in parallel and runs do not collide.
#![cfg(feature = "redis")]

use std::{
    net::TcpListener,
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, Enqueued, Queue, StoreErrorKind,
    contract::QueueContract,
    redis::{RedisBackend, RedisOptions},
};

/// `REDIS_URL`, and whether it was set (then Redis is required).
fn redis_url() -> (String, bool) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => ("redis://127.0.0.1:6379".to_owned(), false),
    }
}

/// A key prefix unique to `test` in this run of this process.
fn prefix(test: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{nanos:x}", std::process::id())
    });
    format!("agentsync-webhooks-test:queue:{run}:{test}:")
}

/// Deletes a test's keys when the test ends.
struct DropKeys {
    url: String,
    prefix: String,
}

impl Drop for DropKeys {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// A backend under its own prefix, or `None` (skip, with a note) when Redis is unreachable and
/// `REDIS_URL` is not set.
async fn backend(test: &str) -> Option<(RedisBackend, DropKeys)> {
    backend_with(test, RedisOptions::new()).await
}

/// Like [`backend`], with `options` (their prefix replaced by the test's).
async fn backend_with(test: &str, options: RedisOptions) -> Option<(RedisBackend, DropKeys)> {
    let (url, required) = redis_url();
    let prefix = prefix(test);
    match RedisBackend::connect_with(&url, options.prefix(prefix.clone())).await {
        Ok(backend) => Some((backend, DropKeys { url, prefix })),
        Err(err) if required => panic!("REDIS_URL={url} is set but Redis is unreachable: {err}"),
        Err(err) => {
            eprintln!("skipping {test}: no Redis at {url} ({err}); set REDIS_URL to require it");
            None
        }
    }
}

async fn contract(case: &'static str) -> Option<QueueContract> {
    let (backend, keys) = backend(case).await?;
    Some(QueueContract::new(backend, case).keep_alive(keys))
}

agentsync_webhooks_queue::queue_contract_tests!(contract);

/// An address where nothing listens.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test]
async fn an_unreachable_redis_is_an_unreachable_store_error() {
    let err = RedisBackend::connect(&closed_port_url()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");
    let err = Queue::from_url(&closed_port_url()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");
}

#[tokio::test]
async fn an_enqueue_is_one_script_call_and_two_instances_share_the_work() {
    let test = "an_enqueue_is_one_script_call_and_two_instances_share_the_work";
    let Some((first, _keys)) = backend(test).await else {
        return;
    };
    let (url, _) = redis_url();
    let second = RedisBackend::connect_with(&url, RedisOptions::new().prefix(prefix(test)))
        .await
        .unwrap();
    assert_eq!(
        first.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::New
    );
    assert_eq!(
        second.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::Duplicate
    );
    let jobs = second.claim(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(
        first
            .claim(10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    // Either instance settles with the receipt.
    assert!(first.complete(&jobs[0]).await.unwrap());
}

#[tokio::test]
async fn a_redis_that_never_answers_is_a_timeout_not_a_hang() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let err = RedisBackend::connect_with(
        &url,
        RedisOptions::new().timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    silent.abort();
}

/// The id mark's time to live in seconds (`-1`: no expiry, `-2`: no mark).
fn mark_ttl(test: &str, webhook_id: &str) -> i64 {
    let (url, _) = redis_url();
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    redis::cmd("TTL")
        .arg(format!("{}id:{webhook_id}", prefix(test)))
        .query(&mut connection)
        .unwrap()
}

#[tokio::test]
async fn the_id_mark_lasts_while_the_job_lives_and_for_the_retention_once_done() {
    let test = "the_id_mark_lasts_while_the_job_lives_and_for_the_retention_once_done";
    let options = RedisOptions::new().retention(Duration::from_secs(600));
    let Some((backend, _keys)) = backend_with(test, options).await else {
        return;
    };
    let lease = Duration::from_secs(30);

    backend.enqueue(&delivery("msg_1")).await.unwrap();
    assert_eq!(mark_ttl(test, "msg_1"), -1, "queued: no expiry");

    let job = backend.claim(1, lease).await.unwrap().remove(0);
    assert!(
        backend
            .retry(&job, SystemTime::now(), "boom")
            .await
            .unwrap()
    );
    assert_eq!(mark_ttl(test, "msg_1"), -1, "retrying: no expiry");
    assert_eq!(
        backend.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::Duplicate
    );

    let job = backend.claim(1, lease).await.unwrap().remove(0);
    assert!(backend.bury(&job, "gave up").await.unwrap());
    assert_eq!(mark_ttl(test, "msg_1"), -1, "dead: no expiry");

    assert!(backend.replay("msg_1").await.unwrap());
    assert_eq!(mark_ttl(test, "msg_1"), -1, "replayed: no expiry");

    let job = backend.claim(1, lease).await.unwrap().remove(0);
    assert!(backend.complete(&job).await.unwrap());
    let ttl = mark_ttl(test, "msg_1");
    assert!(
        (1..=600).contains(&ttl),
        "done: the retention (600 s), got {ttl}"
    );
}
