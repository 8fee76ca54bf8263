//! `PostgresBackend`'s group commit for enqueues against a real PostgreSQL: the enqueues that
//! wait together share one statement, and each is still answered as it would be alone (a
//! duplicate within a batch is a duplicate, one refused value fails only its delivery, a batch
//! the engine fails answers every member with an error).
//!
//! The batches are made deterministic where the test needs one: enqueues joined in one task of
//! a current-thread runtime are all sent before the enqueue task runs, so they share a batch.
//!
//! Uses `POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`); skipped with a note
//! when it is not set and PostgreSQL is unreachable. Every test works in a table of its own.
#![cfg(feature = "postgres")]

mod delay_proxy;
mod postgres_support;

use std::{sync::Arc, time::Duration};

use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, ClaimToken, Enqueued, ReceivedDelivery,
    postgres::{PostgresBackend, PostgresOptions},
};
use bytes::Bytes;
use delay_proxy::DelayProxy;
use postgres_support::*;

fn with_body(webhook_id: &str, body: &'static str) -> ReceivedDelivery {
    ReceivedDelivery {
        body: Bytes::from_static(body.as_bytes()),
        ..delivery(webhook_id)
    }
}

/// The same id twice in one batch: the first stored (with its own body), the second answered a
/// duplicate; the resend of a dead delivery twice in one batch: stored again once.
#[tokio::test]
async fn a_duplicate_inside_one_batch_is_answered_a_duplicate() {
    let Some((backend, _table)) =
        backend("a_duplicate_inside_one_batch_is_answered_a_duplicate").await
    else {
        return;
    };
    let (first, second, other) = (
        with_body("msg_twice", "{\"n\":1}"),
        with_body("msg_twice", "{\"n\":2}"),
        delivery("msg_other"),
    );
    let answers = tokio::join!(
        backend.enqueue(&first),
        backend.enqueue(&second),
        backend.enqueue(&other),
    );
    assert_eq!(
        [answers.0.unwrap(), answers.1.unwrap(), answers.2.unwrap()],
        [Enqueued::New, Enqueued::Duplicate, Enqueued::New]
    );
    let token = ClaimToken::new().unwrap();
    let mut jobs = backend
        .claim_with(&token, 10, Duration::from_secs(60))
        .await
        .unwrap();
    jobs.sort_by(|a, b| a.delivery.webhook_id.cmp(&b.delivery.webhook_id));
    assert_eq!(jobs.len(), 2, "two distinct ids stored");
    assert_eq!(jobs[1].delivery.webhook_id, "msg_twice");
    assert_eq!(
        jobs[1].delivery.body.as_ref(),
        b"{\"n\":1}",
        "the first is stored"
    );

    // Dead, then resent twice in one batch (the portal's resend, and a retry of it).
    assert!(backend.bury(&jobs[1], "gave up").await.unwrap());
    let answers = tokio::join!(backend.enqueue(&second), backend.enqueue(&first));
    assert_eq!(
        [answers.0.unwrap(), answers.1.unwrap()],
        [Enqueued::New, Enqueued::Duplicate]
    );
    assert!(backend.dead_letters(10).await.unwrap().is_empty());
    let again = backend
        .claim_with(&token, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].delivery.body.as_ref(),
        b"{\"n\":2}",
        "the resend is stored"
    );
}

/// One id enqueued at once by 64 tasks over two instances of the queue, among 64 other ids:
/// exactly one task is answered stored for it, and every other id is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_of_one_id_store_it_exactly_once() {
    let Some((first, table)) = backend("concurrent_enqueues_of_one_id_store_it_exactly_once").await
    else {
        return;
    };
    let second = PostgresBackend::connect_with(
        &table.url,
        PostgresOptions::new().table(table.table.clone()),
    )
    .await
    .unwrap();
    let instances: [Arc<dyn Backend>; 2] = [Arc::new(first), Arc::new(second)];
    let tasks = 128;
    let start = Arc::new(tokio::sync::Barrier::new(tasks));
    let mut running = Vec::new();
    for n in 0..tasks {
        let backend = Arc::clone(&instances[n % 2]);
        let start = Arc::clone(&start);
        let id = if n % 2 == 0 {
            "msg_contended".to_owned()
        } else {
            format!("msg_{n}")
        };
        running.push(tokio::spawn(async move {
            start.wait().await;
            let answer = backend.enqueue(&delivery(&id)).await.unwrap();
            (id, answer)
        }));
    }
    let mut stored_contended = 0;
    let mut stored_others = 0;
    for task in running {
        let (id, answer) = task.await.unwrap();
        match (id.as_str(), answer) {
            ("msg_contended", Enqueued::New) => stored_contended += 1,
            ("msg_contended", Enqueued::Duplicate) => {}
            (_, Enqueued::New) => stored_others += 1,
            (other, answer) => panic!("{other}: {answer:?}"),
        }
    }
    assert_eq!(stored_contended, 1, "the contended id is stored once");
    assert_eq!(stored_others, tasks / 2);
    assert_eq!(
        instances[0].stats().await.unwrap().depth,
        u64::try_from(tasks / 2 + 1).unwrap()
    );
}

/// A value the server refuses (a NUL in the id) in a batch fails that delivery alone: the
/// others of its batch are stored.
#[tokio::test]
async fn a_refused_value_fails_only_its_delivery_in_a_batch() {
    let Some((backend, _table)) =
        backend("a_refused_value_fails_only_its_delivery_in_a_batch").await
    else {
        return;
    };
    let (good, bad, other) = (delivery("msg_a"), delivery("msg_\0nul"), delivery("msg_b"));
    let answers = tokio::join!(
        backend.enqueue(&good),
        backend.enqueue(&bad),
        backend.enqueue(&other),
    );
    assert_eq!(answers.0.unwrap(), Enqueued::New);
    assert!(answers.1.is_err(), "a NUL is refused: {:?}", answers.1);
    assert_eq!(answers.2.unwrap(), Enqueued::New);
    assert_eq!(backend.stats().await.unwrap().depth, 2);
}

/// A batch in flight when the engine goes away (every connection dropped while its reply is
/// held): every member is answered with an error, none as stored, and nothing half-done is
/// left answered; once the engine is back, each of them is stored on its resend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_engine_fails_answers_every_member_with_an_error() {
    let Some((direct, table)) =
        backend("a_batch_the_engine_fails_answers_every_member_with_an_error").await
    else {
        return;
    };
    let (url, _) = postgres_url();
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let proxy = DelayProxy::start(format!("{host}:{port}")).await;
    let database = config.get_dbname().unwrap_or("postgres");
    let user = config.get_user().unwrap_or("postgres");
    let through = PostgresBackend::connect_with(
        &format!("postgres://{user}@{}/{database}", proxy.address()),
        PostgresOptions::new()
            .table(table.table.clone())
            .timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let through = Arc::new(through);
    // Held replies: the batches stay in flight until the proxy goes down.
    proxy.set_delay(Duration::from_secs(30));
    let ids: Vec<String> = (0..32).map(|n| format!("msg_lost_{n}")).collect();
    let mut running = Vec::new();
    for id in &ids {
        let (through, id) = (Arc::clone(&through), id.clone());
        running.push(tokio::spawn(async move {
            through.enqueue(&delivery(&id)).await
        }));
    }
    // Let the enqueues reach the engine, then take it away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set_down(true);
    for task in running {
        let answer = task.await.unwrap();
        assert!(answer.is_err(), "answered {answer:?} with the engine gone");
    }
    // Whatever the server committed before the drop is there as a duplicate, the rest new:
    // either way each resend is answered, and every id is in the queue once.
    proxy.set_down(false);
    proxy.set_delay(Duration::ZERO);
    for id in &ids {
        direct.enqueue(&delivery(id)).await.unwrap();
    }
    assert_eq!(direct.stats().await.unwrap().depth, 32);
}
