//! The sender's portal resends a delivery that our workers dead-lettered: the same
//! `webhook-id`, signed again with a fresh timestamp. It must run, not be answered as a
//! duplicate (the portal would then show it delivered while nothing ran).
//!
//! A real axum server on 127.0.0.1 with the durable handoff on a SQLite file and its workers, a
//! real HTTP client, a handler that fails until it is fixed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agentsync_webhooks::{
    EventType, Signer, UpdatesAvailable, Verifier,
    axum::WebhookLayer,
    queue::{
        Backoff, Queue, Workers,
        record::{DeliveryState, HistoryEvent},
    },
    route::{Event, EventRouter, HandlerError},
};
use axum::{Router, http::StatusCode, routing::post};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Only to stop a broken test from hanging.
const BOUND: Duration = Duration::from_secs(60);

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < BOUND, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `body` signed for `id` at `timestamp`; the status and the body.
async fn send(url: &str, id: &str, timestamp: i64, body: &[u8]) -> (u16, String) {
    let headers = Signer::new(SECRET).unwrap().sign(id, timestamp, body);
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in headers.to_pairs() {
        request = request.header(name, value);
    }
    let response = request.body(body.to_vec()).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_resend_of_a_dead_delivery_runs_and_a_resend_of_a_done_one_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::sqlite(dir.path().join("queue.sqlite3"))
        .await
        .unwrap();
    let fixed = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicUsize::new(0));
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let (fixed, runs) = (fixed.clone(), runs.clone());
        move |_: Event<UpdatesAvailable>| {
            let fixed = fixed.load(Ordering::SeqCst);
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                if fixed {
                    Ok(())
                } else {
                    Err(HandlerError::retryable("ProducerSync answered 500"))
                }
            }
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(
        Workers::new(queue.clone(), router)
            .max_attempts(2)
            .backoff(Backoff::new(
                Duration::from_millis(10),
                2.0,
                Duration::from_millis(50),
            ))
            .poll_interval(Duration::from_millis(10))
            .run_until(async move {
                let _ = stopped.await;
            }),
    );
    let app = Router::new()
        .route("/webhooks/psapi", post(|| async { StatusCode::ACCEPTED }))
        .route_layer(WebhookLayer::new(Verifier::new(SECRET).unwrap()).with_handoff(queue.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/psapi", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let id = "msg_portal_resend_1";
    let now = agentsync_webhooks::handoff::now_ms() / 1_000;
    let body = r#"{"id":"whe_1","type":"producersync.updates_available","timestamp":"2026-12-06T10:00:00Z","data":{"runDate":"2026-12-06"}}"#;
    let (status, _) = send(&url, id, now, body.as_bytes()).await;
    assert_eq!(status, 202, "the first delivery is stored");
    eventually("the delivery to die", || {
        let queue = queue.clone();
        async move {
            queue
                .delivery(id)
                .await
                .unwrap()
                .is_some_and(|record| record.state == DeliveryState::Dead)
        }
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "ran max_attempts times");

    // The handler is fixed; the operator resends it from the portal: same id, signed anew.
    fixed.store(true, Ordering::SeqCst);
    let (status, answer) = send(&url, id, now + 60, body.as_bytes()).await;
    assert_eq!(
        status, 202,
        "a resend of a dead delivery is stored again: {answer}"
    );
    eventually("the resent delivery to be done", || {
        let queue = queue.clone();
        async move {
            queue
                .delivery(id)
                .await
                .unwrap()
                .is_some_and(|record| record.state == DeliveryState::Done)
        }
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 3, "the resend ran once");
    let record = queue.delivery(id).await.unwrap().unwrap();
    assert_eq!(
        record.delivery.webhook_timestamp,
        now + 60,
        "stored as resent"
    );
    assert!(
        record
            .history
            .iter()
            .any(|entry| entry.event == HistoryEvent::Resent),
        "the resend is in the history: {:?}",
        record.history
    );

    // A resend of a done delivery cannot be told from a late retry: a duplicate.
    let (status, answer) = send(&url, id, now + 120, body.as_bytes()).await;
    assert_eq!((status, answer.as_str()), (200, ""), "a duplicate");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3, "the duplicate did not run");

    let _ = stop.send(());
    workers.await.unwrap();
}
