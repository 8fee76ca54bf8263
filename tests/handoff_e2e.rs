//! The durable handoff end to end, from the receiver's side: the `axum` example run as a real
//! process (`WebhookLayer::new(verifier).with_handoff(queue)` and its in-process workers), real
//! signed deliveries over TCP, real engines (the SQLite file in the working directory, Redis,
//! PostgreSQL).
//!
//! - `kill -9` right after the receiver answered 2xx to a batch: restarted on the same SQLite
//!   file, it processes every one; on Redis, the Redis Cluster (one partition and three) and
//!   PostgreSQL, another instance's workers do;
//! - 500 concurrent deliveries with one `webhook-id`: one job, one handler run;
//! - the queue's store down (Redis or PostgreSQL behind a TCP proxy that goes down): `503` with
//!   `Retry-After`, never 2xx, no handler run; back up: the sender's retry is `202` and is
//!   processed once.
//!
//! What a handler did is read from the receiver's log: `webhook received` (the 2xx) and
//! `webhook processed` (a handler completed), each with its `webhook_id`.
//!
//! Redis: `REDIS_URL` (default `redis://127.0.0.1:6379`). When it is set, an unreachable Redis
//! fails the tests; when not, they are skipped with a note. The example takes no key prefix, so
//! each Redis test uses a logical database of its own (8 to 15, see `RedisDb`), flushed before
//! and after.
//!
//! Redis Cluster: `REDIS_CLUSTER_URL` (default the `.ci/redis-cluster.sh` cluster), the same
//! way; each test names a key prefix of its own in the queue URL (`?prefix=`, with
//! `&partitions=3` for the partitioned case) and deletes its keys on every primary at the end.
//!
//! PostgreSQL: `POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), the same way;
//! each PostgreSQL test creates a database of its own (`CREATE DATABASE`, so the role needs
//! `CREATEDB`) and drops it at the end.
//!
//! No assertion is on time: waits are bounded (60 s) only to stop a broken test from hanging.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod handoff_support;

use std::time::{Duration, Instant};

use agentsync_webhooks::queue::Queue;
use handoff_support::*;

/// Distinct deliveries in a batch.
const BATCH: usize = 50;
/// Concurrent copies of one delivery.
const COPIES: usize = 500;

/// Asserts that every answer is `202`.
fn assert_all_accepted(answers: &[Answer], deliveries: &[SignedDelivery]) {
    let refused: Vec<(&str, &Answer)> = deliveries
        .iter()
        .zip(answers)
        .filter(|(_, answer)| !answer.is_accepted())
        .map(|(delivery, answer)| (delivery.id.as_str(), answer))
        .collect();
    assert!(refused.is_empty(), "answers other than 202: {refused:?}");
}

/// Asserts that the receiver ran each of `ids` to completion exactly once, and nothing else.
fn assert_processed_once(receiver: &ReceiverProcess, ids: &[String]) {
    let processed = receiver.count("webhook processed");
    for id in ids {
        assert_eq!(processed.get(id), Some(&1), "{id} processed once");
    }
    assert_eq!(processed.len(), ids.len(), "nothing else processed");
}

/// Waits (up to [`BOUND`]) until the queue holds nothing waiting or running, and asserts it has
/// no dead letters.
async fn assert_drained(queue: &Queue) {
    let start = Instant::now();
    loop {
        let stats = queue.stats().await.unwrap();
        assert_eq!(stats.dead, 0, "no dead letters: {stats:?}");
        if stats.depth == 0 {
            return;
        }
        assert!(
            start.elapsed() < BOUND,
            "not drained after {BOUND:?}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(deliveries: &[SignedDelivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.id.clone()).collect()
}

/// `kill -9` right after the 2xx of a batch, workers off: nothing ran, everything is in the
/// SQLite file; the receiver restarted on the same file (workers on) processes every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_receiver_killed_after_2xx_processes_every_delivery_once_restarted() {
    killed_after_2xx_the_next_receiver_processes_every_delivery("", "sqlite-kill").await;
}

/// `kill -9` right after the 2xx of a batch, workers off; then the next receiver on the same
/// queue, workers on, processes every one, once, and answers the sender's late retry as a
/// duplicate. `queue_url` empty: the SQLite file in the working directory, and the next
/// receiver is the first one restarted; Redis or PostgreSQL: another instance, started after
/// the kill.
async fn killed_after_2xx_the_next_receiver_processes_every_delivery(queue_url: &str, name: &str) {
    let dir = TempDir::new(name);
    let first = Settings {
        queue_url: queue_url.to_owned(),
        workers: 0,
        pull_delay_ms: 20,
    };
    let killed = ReceiverProcess::start("first receiver (WORKERS=0)", dir.path(), &first).await;
    let client = client();
    let batch: Vec<SignedDelivery> = (0..BATCH).map(|_| SignedDelivery::new()).collect();
    let answers = send_all(&client, &killed.url, &batch).await;
    assert_all_accepted(&answers, &batch);
    assert!(
        killed.count("webhook processed").is_empty(),
        "WORKERS=0 ran nothing"
    );
    killed.kill9();

    let next = Settings {
        workers: 4,
        ..first
    };
    let mut second = ReceiverProcess::start("next receiver", dir.path(), &next).await;
    let ids = ids(&batch);
    second.wait_processed(&ids).await;
    let queue = if queue_url.is_empty() {
        Queue::sqlite(dir.path().join("agentsync-webhooks-queue.sqlite3")).await
    } else {
        Queue::from_url(queue_url).await
    }
    .unwrap();
    assert_drained(&queue).await;
    assert_processed_once(&second, &ids);
    // The queue still knows the ids: the sender's late retry is a duplicate, not a second run.
    let retry = send(&client, &second.url, &batch[0]).await;
    assert!(retry.is_duplicate(), "{retry:?}");
    drop(queue);
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_receiver_killed_after_2xx_another_instance_processes_every_delivery() {
    let Some(db) = RedisDb::take("redis_receiver_killed_after_2xx") else {
        return;
    };
    killed_after_2xx_the_next_receiver_processes_every_delivery(&db.url, "redis-kill").await;
}

/// The Redis Cluster (`REDIS_CLUSTER_URL`), the queue in one partition (one slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_receiver_killed_after_2xx_another_instance_processes_every_delivery() {
    let Some(queue) = ClusterQueue::take("cluster_kill", 1) else {
        return;
    };
    killed_after_2xx_the_next_receiver_processes_every_delivery(&queue.url, "cluster-kill").await;
}

/// The Redis Cluster, the queue in 3 partitions (one per primary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_3_partitions_receiver_killed_after_2xx_another_instance_processes_every_delivery()
 {
    let Some(queue) = ClusterQueue::take("cluster_kill_p3", 3) else {
        return;
    };
    killed_after_2xx_the_next_receiver_processes_every_delivery(&queue.url, "cluster-kill-p3")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_receiver_killed_after_2xx_another_instance_processes_every_delivery() {
    let Some(db) = PostgresDb::take("postgres_receiver_killed_after_2xx").await else {
        return;
    };
    killed_after_2xx_the_next_receiver_processes_every_delivery(&db.url, "postgres-kill").await;
}

/// 500 copies of one delivery at once through one receiver: one `202`, 499 duplicates (`200`,
/// empty), one job and one handler run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_copies_of_one_delivery_run_the_handler_once() {
    let dir = TempDir::new("one-id");
    let settings = Settings {
        queue_url: String::new(),
        workers: 4,
        pull_delay_ms: 20,
    };
    let mut receiver = ReceiverProcess::start("receiver", dir.path(), &settings).await;
    let client = client();
    let delivery = SignedDelivery::new();
    let copies = vec![delivery.clone(); COPIES];
    let answers = send_all(&client, &receiver.url, &copies).await;
    let accepted = answers.iter().filter(|a| a.is_accepted()).count();
    let duplicates = answers.iter().filter(|a| a.is_duplicate()).count();
    let other: Vec<&Answer> = answers
        .iter()
        .filter(|a| !a.is_accepted() && !a.is_duplicate())
        .collect();
    assert!(
        other.is_empty(),
        "answers neither 202 nor 200 duplicate: {other:?}"
    );
    assert_eq!((accepted, duplicates), (1, COPIES - 1));

    let id = std::slice::from_ref(&delivery.id);
    receiver.wait_processed(id).await;
    let queue = Queue::sqlite(dir.path().join("agentsync-webhooks-queue.sqlite3"))
        .await
        .unwrap();
    assert_drained(&queue).await;
    assert_processed_once(&receiver, id);
    assert_eq!(
        receiver.count("webhook received").get(&delivery.id),
        Some(&1),
        "the 2xx was decided once"
    );
    drop(queue);
    drop(receiver);
}

/// The queue's engine unreachable (a proxy in front of it, `upstream` = `HOST:PORT`, goes
/// down): deliveries are answered `503` with `Retry-After`, never 2xx, no handler runs, and the
/// workers' claims fail; the engine back: the sender's retry of each is `202`, and the workers
/// process each once.
async fn store_down_answers_503_and_the_retry_is_processed_once_back(
    queue_url: &str,
    upstream: String,
) {
    let proxy = Proxy::start(upstream).await;
    let dir = TempDir::new("store-down");
    let settings = Settings {
        queue_url: through_port(queue_url, proxy.port),
        workers: 2,
        pull_delay_ms: 20,
    };
    let mut receiver = ReceiverProcess::start("receiver", dir.path(), &settings).await;
    let client = client();

    // Up: stored and processed.
    let before = SignedDelivery::new();
    let answer = send(&client, &receiver.url, &before).await;
    assert!(answer.is_accepted(), "{answer:?}");
    receiver
        .wait_processed(std::slice::from_ref(&before.id))
        .await;

    // Down: 503 with Retry-After, nothing stored, nothing run.
    let up_to_now = receiver.lines();
    proxy.go_down().await;
    let during: Vec<SignedDelivery> = (0..3).map(|_| SignedDelivery::new()).collect();
    for delivery in &during {
        let answer = send(&client, &receiver.url, delivery).await;
        assert!(
            answer.is_unavailable(),
            "{}: expected 503 with Retry-After: {answer:?}",
            delivery.id
        );
    }
    // A second try of each while still down: the same.
    for delivery in &during {
        let answer = send(&client, &receiver.url, delivery).await;
        assert!(answer.is_unavailable(), "{}: {answer:?}", delivery.id);
    }
    let received = receiver.count("webhook received");
    let processed = receiver.count("webhook processed");
    for delivery in &during {
        assert!(
            !received.contains_key(&delivery.id),
            "{} got a 2xx",
            delivery.id
        );
        assert!(!processed.contains_key(&delivery.id), "{} ran", delivery.id);
    }

    // The workers met the outage too (a claim failed): they must come back on their own.
    receiver
        .wait_for_line_after(up_to_now, "the workers fail to claim while down", |line| {
            line.contains("could not claim jobs").then_some(())
        })
        .await;

    // Up again: the sender retries each (the same bytes) until it is no longer 503; the first
    // other answer is 202, and each is processed once.
    proxy.go_up();
    for delivery in &during {
        let start = Instant::now();
        let answer = loop {
            let answer = send(&client, &receiver.url, delivery).await;
            if !answer.is_unavailable() || start.elapsed() > BOUND {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            answer.is_accepted(),
            "{}: retry once back: {answer:?}",
            delivery.id
        );
    }
    let mut all = vec![before.id.clone()];
    all.extend(ids(&during));
    receiver.wait_processed(&all).await;
    let queue = Queue::from_url(queue_url).await.unwrap();
    assert_drained(&queue).await;
    assert_processed_once(&receiver, &all);
    drop(receiver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_with_retry_after_and_the_retry_is_processed_once_back() {
    let Some(db) = RedisDb::take("redis_down_503") else {
        return;
    };
    store_down_answers_503_and_the_retry_is_processed_once_back(&db.url, redis_authority(&db.url))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_answers_503_with_retry_after_and_the_retry_is_processed_once_back() {
    let Some(db) = PostgresDb::take("postgres_down_503").await else {
        return;
    };
    store_down_answers_503_and_the_retry_is_processed_once_back(
        &db.url,
        postgres_authority(&db.url),
    )
    .await;
}
