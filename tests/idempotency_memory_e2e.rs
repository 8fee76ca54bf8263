//! Idempotency end to end with the in-memory store: one axum server behind `WebhookLayer`, a
//! storm of identical signed deliveries, and the handler runs once.

mod idempotency_support;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use agentsync_webhooks::{
    axum::Webhook,
    idempotency::{Idempotency, MemoryStore},
};
use axum::routing::post;
use idempotency_support::{
    Answer, DELIVERIES, OVERLAP, PATIENCE, PROCESSED, SignedDelivery, Tally, burst, client,
    receiver, send, serve, wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_deliveries_of_one_event_run_the_handler_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (calls, answered) = (Arc::clone(&calls), Arc::clone(&answered));
        move |_event: Webhook| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            wait_until(PATIENCE, || answered.load(Ordering::SeqCst) >= OVERLAP).await;
            PROCESSED
        }
    };
    let idempotency = Idempotency::new(MemoryStore::new()).with_key_prefix("memory-e2e:");
    let server = serve(receiver().with_idempotency(idempotency), post(handler)).await;
    let client = client();
    let delivery = SignedDelivery::new();

    let answers = burst(&client, &[&server.url], &delivery, DELIVERIES, &answered).await;
    let tally = Tally::of(&answers);
    eprintln!("{} x {}: {tally:?}", DELIVERIES, delivery.id);
    tally.assert_one_run_of_a_burst(calls.load(Ordering::SeqCst));

    // The sender's next retry: a duplicate, answered without the handler.
    assert_eq!(
        send(&client, &server.url, &delivery).await,
        Answer::Duplicate
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
