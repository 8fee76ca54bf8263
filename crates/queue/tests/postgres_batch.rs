//! `PostgresBackend`'s group commit for enqueues and completions against a real PostgreSQL: the
//! calls that wait together share one statement, and each is still answered as it would be
//! alone (a duplicate within a batch is a duplicate, one refused value fails only its delivery,
//! a completion under a receipt that no longer holds its job settles nothing, a batch the
//! engine fails answers every member with an error).
//!
//! The batches are made deterministic where the test needs one: calls joined in one task of a
//! current-thread runtime are all sent before the batching task runs, so they share a batch.
//!
//! Uses `POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`); skipped with a note
//! when it is not set and PostgreSQL is unreachable. Every test works in a table of its own.
#![cfg(feature = "postgres")]

mod delay_proxy;
mod postgres_support;

use std::{sync::Arc, time::Duration};

use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, ClaimToken, Enqueued, EventOrder, Job, Receipt, ReceivedDelivery,
    postgres::{PostgresBackend, PostgresOptions},
    record::{AttemptOutcome, DeliveryState, HistoryEvent},
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

/// A backend on `table` whose connections go through a [`DelayProxy`] to the server, and the
/// proxy (to hold the replies, or take the engine away).
async fn through_a_proxy(table: &str) -> (PostgresBackend, DelayProxy) {
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
            .table(table.to_owned())
            .timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    (through, proxy)
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
    let (through, proxy) = through_a_proxy(&table.table).await;
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

/// The outcomes of `webhook_id`'s attempts, oldest first.
async fn outcomes(backend: &PostgresBackend, webhook_id: &str) -> Vec<AttemptOutcome> {
    let record = backend
        .delivery(webhook_id)
        .await
        .unwrap()
        .expect("on record");
    record
        .history
        .iter()
        .filter_map(|entry| match &entry.event {
            HistoryEvent::Attempt { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

/// Completions in one batch: each settles its own job under its own receipt, with its history
/// entry; one under a receipt that does not hold its job (another claim's) settles nothing and
/// is answered `false`; the same job completed twice in the batch is answered `true`, then
/// `false`, as one after the other would be.
#[tokio::test]
async fn completions_in_one_batch_settle_each_job_under_its_own_receipt() {
    let Some((backend, _table)) =
        backend("completions_in_one_batch_settle_each_job_under_its_own_receipt").await
    else {
        return;
    };
    for id in ["msg_a", "msg_b", "msg_c", "msg_d"] {
        assert_eq!(backend.enqueue(&delivery(id)).await.unwrap(), Enqueued::New);
    }
    let lease = Duration::from_secs(60);
    let (first, second) = (ClaimToken::new().unwrap(), ClaimToken::new().unwrap());
    let mut jobs = backend.claim_with(&first, 2, lease).await.unwrap();
    jobs.extend(backend.claim_with(&second, 2, lease).await.unwrap());
    jobs.sort_by(|a, b| a.delivery.webhook_id.cmp(&b.delivery.webhook_id));
    let ids: Vec<&str> = jobs
        .iter()
        .map(|j| j.delivery.webhook_id.as_str())
        .collect();
    assert_eq!(ids, ["msg_a", "msg_b", "msg_c", "msg_d"]);
    // msg_c under a receipt that is not the one holding it.
    let other = if jobs[2].receipt.0 == first.as_str() {
        second.as_str()
    } else {
        first.as_str()
    };
    let wrong = Job {
        receipt: Receipt(other.to_owned()),
        ..jobs[2].clone()
    };
    let answers = tokio::join!(
        backend.complete(&jobs[0]),
        backend.complete(&wrong),
        backend.complete(&jobs[1]),
        backend.complete(&jobs[1]),
        backend.complete(&jobs[3]),
    );
    assert_eq!(
        [
            answers.0.unwrap(),
            answers.1.unwrap(),
            answers.2.unwrap(),
            answers.3.unwrap(),
            answers.4.unwrap()
        ],
        [true, false, true, false, true]
    );
    for id in ["msg_a", "msg_b", "msg_d"] {
        let record = backend.delivery(id).await.unwrap().unwrap();
        assert_eq!(record.state, DeliveryState::Done, "{id}");
        assert_eq!(outcomes(&backend, id).await, [AttemptOutcome::Ok], "{id}");
    }
    let running = backend.delivery("msg_c").await.unwrap().unwrap();
    assert_eq!(
        running.state,
        DeliveryState::Running,
        "the wrong receipt settled nothing"
    );
    assert!(outcomes(&backend, "msg_c").await.is_empty());
    assert!(
        backend.complete(&jobs[2]).await.unwrap(),
        "its own receipt still holds it"
    );
}

/// Completions of two keys' jobs in one batch raise each key's newest done occurred-at: the
/// keys' next events are claimed with it, and an older event of a key is then stale.
#[tokio::test]
async fn completions_in_one_batch_raise_each_keys_newest_done() {
    let Some((backend, _table)) =
        backend("completions_in_one_batch_raise_each_keys_newest_done").await
    else {
        return;
    };
    let order = |key: &str, occurred_at_ms| EventOrder {
        key: key.to_owned(),
        occurred_at_ms,
    };
    for (id, key, at) in [
        ("msg_k1_first", "npn:1", 10_000),
        ("msg_k2_first", "npn:2", 30_000),
        ("msg_k1_next", "npn:1", 20_000),
        ("msg_k2_late", "npn:2", 5_000),
    ] {
        let stored = backend
            .enqueue_ordered(&delivery(id), &order(key, at))
            .await
            .unwrap();
        assert_eq!(stored, Enqueued::New, "{id}");
    }
    let lease = Duration::from_secs(60);
    let token = ClaimToken::new().unwrap();
    let heads = backend.claim_ordered(&token, 10, lease).await.unwrap();
    let mut ids: Vec<&str> = heads
        .iter()
        .map(|c| c.job.delivery.webhook_id.as_str())
        .collect();
    ids.sort_unstable();
    // Each key's oldest is its head: npn:2's late event (5,000) comes before its first.
    assert_eq!(ids, ["msg_k1_first", "msg_k2_late"]);
    let answers = tokio::join!(
        backend.complete(&heads[0].job),
        backend.complete(&heads[1].job)
    );
    assert!(answers.0.unwrap() && answers.1.unwrap());
    let token = ClaimToken::new().unwrap();
    let mut next = backend.claim_ordered(&token, 10, lease).await.unwrap();
    next.sort_by(|a, b| a.job.delivery.webhook_id.cmp(&b.job.delivery.webhook_id));
    let seen: Vec<(&str, Option<i64>)> = next
        .iter()
        .map(|c| {
            let order = c.order.as_ref().expect("keyed");
            (c.job.delivery.webhook_id.as_str(), order.newest_done_ms)
        })
        .collect();
    assert_eq!(
        seen,
        [("msg_k1_next", Some(10_000)), ("msg_k2_first", Some(5_000))]
    );
    assert!(next.iter().all(|c| !c.order.as_ref().unwrap().is_stale()));
}

/// A completions' batch in flight when the engine goes away: every member is answered with an
/// error, none as settled, and each job ends done exactly once when completed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completions_batch_the_engine_fails_answers_every_member_with_an_error() {
    let Some((direct, table)) =
        backend("a_completions_batch_the_engine_fails_answers_every_member_with_an_error").await
    else {
        return;
    };
    let (through, proxy) = through_a_proxy(&table.table).await;
    for n in 0..16 {
        direct
            .enqueue(&delivery(&format!("msg_held_{n}")))
            .await
            .unwrap();
    }
    let token = ClaimToken::new().unwrap();
    let jobs = direct
        .claim_with(&token, 16, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 16);
    let through = Arc::new(through);
    proxy.set_delay(Duration::from_secs(30));
    let mut running = Vec::new();
    for job in jobs.clone() {
        let through = Arc::clone(&through);
        running.push(tokio::spawn(async move { through.complete(&job).await }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set_down(true);
    for task in running {
        let answer = task.await.unwrap();
        assert!(answer.is_err(), "answered {answer:?} with the engine gone");
    }
    // The server may have committed the batch whose answer was lost: each job is either done
    // or still running under its receipt; completed again, every one ends done with exactly
    // one successful attempt on record.
    proxy.set_down(false);
    proxy.set_delay(Duration::ZERO);
    for job in &jobs {
        direct.complete(job).await.unwrap();
    }
    assert_eq!(direct.stats().await.unwrap().depth, 0);
    for job in &jobs {
        let id = job.delivery.webhook_id.as_str();
        assert_eq!(outcomes(&direct, id).await, [AttemptOutcome::Ok], "{id}");
    }
}
