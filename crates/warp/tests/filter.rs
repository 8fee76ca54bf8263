//! What only warp has, over real TCP (a warp server on 127.0.0.1:0, reqwest as the sender):
//! `Webhook::run` and `respond`, user payload types, and `recover` next to other routes'
//! rejections. Everything every adapter must do is in the root conformance suite.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use agentsync_webhooks_core::{
    Delivery, EventData, EventType, MemoryStore, Receiver, SignedRequest, Signer, Verifier,
};
use agentsync_webhooks_warp::{Webhook, webhook, webhook_as, webhook_with};
use tokio::net::TcpListener;
use warp::{Filter, Rejection, Reply, http::StatusCode};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn verifier() -> Verifier {
    Verifier::new(SECRET).unwrap()
}

fn signer() -> Signer {
    Signer::new(SECRET).unwrap()
}

/// Serves `routes` on 127.0.0.1:0 and returns the address.
async fn spawn<F>(routes: F) -> SocketAddr
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    addr
}

/// A server whose handler counts its calls and answers `status`.
async fn counting_server(receiver: Receiver, status: StatusCode) -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let routes = warp::path!("webhooks" / "psapi")
        .and(warp::post())
        .and(webhook_with(receiver))
        .then(move |hook: Webhook| {
            let counter = Arc::clone(&counter);
            hook.run(move |_delivery: Delivery| async move {
                counter.fetch_add(1, Ordering::SeqCst);
                status
            })
        })
        .recover(agentsync_webhooks_warp::recover);
    (spawn(routes).await, calls)
}

async fn post(addr: SocketAddr, request: &SignedRequest) -> reqwest::Response {
    let mut builder = reqwest::Client::new().post(format!("http://{addr}/webhooks/psapi"));
    for (name, value) in request.headers.to_pairs() {
        builder = builder.header(name, value);
    }
    builder
        .header("content-type", "application/json")
        .body(request.body.clone())
        .send()
        .await
        .unwrap()
}

async fn error_code(response: reqwest::Response) -> String {
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.bytes().await.unwrap();
    let parsed: agentsync_webhooks_core::adapter::ErrorBody<'_> =
        serde_json::from_slice(&body).unwrap();
    assert!(!parsed.message.is_empty());
    parsed.error.to_owned()
}

#[tokio::test]
async fn handler_gets_the_typed_event_and_its_reply_is_sent() {
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let routes = warp::path!("webhooks" / "psapi")
        .and(webhook(verifier()))
        .then(move |hook: Webhook| {
            let seen = seen_tx.clone();
            hook.run(move |delivery: Delivery| async move {
                let _ = seen.send(delivery);
                StatusCode::ACCEPTED
            })
        })
        .recover(agentsync_webhooks_warp::recover);
    let addr = spawn(routes).await;

    let request = signer().example(EventType::ProducerSyncUpdatesAvailable);
    let response = post(addr, &request).await;
    assert_eq!(response.status(), 202);

    let delivery = seen_rx.recv().await.unwrap();
    assert_eq!(delivery.webhook_id, request.headers.id);
    assert_eq!(&delivery.raw_body[..], &request.body[..]);
    match delivery.event.data {
        EventData::ProducerSyncUpdatesAvailable(data) => {
            assert_eq!(data.updated_since(), "2025-07-24");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn the_handlers_failure_status_is_what_the_sender_sees() {
    let (addr, calls) =
        counting_server(Receiver::new(verifier()), StatusCode::INTERNAL_SERVER_ERROR).await;
    let response = post(addr, &signer().example(EventType::ContractUpdated)).await;
    assert_eq!(response.status(), 500);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn respond_answers_from_an_and_then_handler() {
    async fn on_webhook(hook: Webhook) -> Result<impl Reply, Infallible> {
        let status = match hook.data {
            EventData::ProducerSyncNpnActivated(_) => StatusCode::NO_CONTENT,
            _ => StatusCode::OK,
        };
        Ok(hook.respond(status).await)
    }
    let routes = warp::path!("webhooks" / "psapi")
        .and(webhook(verifier()))
        .and_then(on_webhook)
        .recover(agentsync_webhooks_warp::recover);
    let addr = spawn(routes).await;
    let response = post(addr, &signer().example(EventType::ProducerSyncNpnActivated)).await;
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn own_payload_types_and_reparse() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct RunDate {
        run_date: String,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Npn {
        npn: String,
    }

    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let typed = warp::path!("webhooks" / "rundate")
        .and(webhook_as::<RunDate>(Receiver::new(verifier())))
        .then(move |hook: Webhook<RunDate>| {
            let seen = seen_tx.clone();
            hook.run(move |delivery: Delivery<RunDate>| async move {
                let _ = seen.send(delivery.event.data.run_date);
                StatusCode::OK
            })
        });
    let reparsed = warp::path!("webhooks" / "psapi")
        .and(webhook(verifier()))
        .then(|hook: Webhook| async move {
            let npn = hook.delivery().reparse::<Npn>().map(|d| d.event.data.npn);
            hook.respond(npn.unwrap_or_default()).await
        });
    let addr = spawn(typed.or(reparsed).recover(agentsync_webhooks_warp::recover)).await;

    let request = signer().example(EventType::ProducerSyncUpdatesAvailable);
    let mut builder = reqwest::Client::new().post(format!("http://{addr}/webhooks/rundate"));
    for (name, value) in request.headers.to_pairs() {
        builder = builder.header(name, value);
    }
    let response = builder.body(request.body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen_rx.recv().await.unwrap(), "2025-07-24");

    // The same typed route refuses a type whose data lacks the field, before the handler.
    let request = signer().example(EventType::ProducerSyncNpnActivated);
    let mut builder = reqwest::Client::new().post(format!("http://{addr}/webhooks/rundate"));
    for (name, value) in request.headers.to_pairs() {
        builder = builder.header(name, value);
    }
    let response = builder.body(request.body).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_event_data");

    let response = post(addr, &signer().example(EventType::ProducerSyncNpnActivated)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "19370865");
}

#[tokio::test]
async fn other_rejections_pass_through_recover() {
    let (addr, calls) = counting_server(Receiver::new(verifier()), StatusCode::OK).await;
    let client = reqwest::Client::new();
    let not_found = client
        .post(format!("http://{addr}/elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status(), 404);
    let wrong_method = client
        .get(format!("http://{addr}/webhooks/psapi"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_webhook_rejection_wins_over_a_sibling_routes_404() {
    let routes = warp::path!("health")
        .map(|| "ok")
        .or(warp::path!("webhooks" / "psapi")
            .and(webhook(verifier()))
            .then(|hook: Webhook| hook.respond(StatusCode::OK)))
        .or(warp::path!("other").map(|| "other"))
        .recover(agentsync_webhooks_warp::recover);
    let addr = spawn(routes).await;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/psapi"))
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", "not a number")
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_timestamp");
    let health = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn respond_also_finishes_the_completion() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let receiver = Receiver::new(verifier()).with_idempotency(MemoryStore::new());
    let routes = warp::path!("webhooks" / "psapi")
        .and(webhook_with(receiver))
        .then(move |hook: Webhook| {
            counter.fetch_add(1, Ordering::SeqCst);
            hook.respond(StatusCode::NO_CONTENT)
        })
        .recover(agentsync_webhooks_warp::recover);
    let addr = spawn(routes).await;
    let request = signer().example(EventType::ProducerSyncNpnActivated);
    assert_eq!(post(addr, &request).await.status(), 204);
    assert_eq!(post(addr, &request).await.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
