//! The warp filters over real TCP: a warp server on 127.0.0.1:0, reqwest (or a raw socket for
//! chunked bodies) as the sender.

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
    Delivery, ErrorBody, EventData, EventType, MemoryStore, Receiver, SignedRequest, Signer,
    Verifier,
};
use agentsync_webhooks_warp::{Webhook, webhook, webhook_as, webhook_with};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
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
    let parsed: ErrorBody<'_> = serde_json::from_slice(&body).unwrap();
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
        let status = match hook.event.data {
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
            let npn = hook.reparse::<Npn>().map(|d| d.event.data.npn);
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
async fn bad_signature_is_a_json_401_and_the_handler_never_runs() {
    let (addr, calls) = counting_server(Receiver::new(verifier()), StatusCode::OK).await;
    let other = Signer::new("whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA==").unwrap();
    let response = post(addr, &other.example(EventType::ProducerUpdated)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "signature_mismatch");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn missing_headers_are_a_json_400() {
    let (addr, calls) = counting_server(Receiver::new(verifier()), StatusCode::OK).await;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/psapi"))
        .body(r#"{"type":"producersync.updates_available","data":{"runDate":"2025-07-24"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "missing_header");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn declared_length_over_the_limit_is_a_413() {
    let (addr, calls) = counting_server(
        Receiver::new(verifier()).with_body_limit(64),
        StatusCode::OK,
    )
    .await;
    let request = signer().example(EventType::ProducerAddressUpdated);
    assert!(request.body.len() > 64);
    let response = post(addr, &request).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Sends a chunked POST by hand (no `Content-Length`), one chunk per slice, with the final
/// chunk only if `finish`; returns the response's status.
async fn post_chunked(
    addr: SocketAddr,
    request: &SignedRequest,
    chunks: &[&[u8]],
    finish: bool,
) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = String::from("POST /webhooks/psapi HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (name, value) in request.headers.to_pairs() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(
        "content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    if finish {
        stream.write_all(b"0\r\n\r\n").await.unwrap();
    }
    // Read the status line; the server answers without waiting for the rest of the body.
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a status line");
        response.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&response);
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn chunked_body_without_content_length_is_accepted() {
    let (addr, calls) = counting_server(Receiver::new(verifier()), StatusCode::OK).await;
    let request = signer().example(EventType::ProducerSyncNpnDeactivated);
    let (a, rest) = request.body.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    assert_eq!(post_chunked(addr, &request, &[a, b, c], true).await, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn chunked_body_is_refused_at_the_chunk_that_crosses_the_limit() {
    let (addr, calls) = counting_server(
        Receiver::new(verifier()).with_body_limit(100),
        StatusCode::OK,
    )
    .await;
    let request = signer().example(EventType::ProducerSyncUpdatesAvailable);
    let filler = [b' '; 60];
    // 120 bytes sent and the body never ends: the answer cannot wait for the end.
    assert_eq!(
        post_chunked(addr, &request, &[&filler, &filler], false).await,
        413
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
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

/// A server with idempotency whose handler answers `statuses[n]` on its n-th call (200 after
/// the list) and panics where the status is `None`.
async fn idempotent_server(statuses: Vec<Option<StatusCode>>) -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let receiver = Receiver::new(verifier()).with_idempotency(MemoryStore::new());
    let routes = warp::path!("webhooks" / "psapi")
        .and(webhook_with(receiver))
        .then(move |hook: Webhook| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let status = statuses.get(n).copied().unwrap_or(Some(StatusCode::OK));
            hook.run(move |_delivery: Delivery| async move {
                status.unwrap_or_else(|| panic!("handler failure on call {n}"))
            })
        })
        .recover(agentsync_webhooks_warp::recover);
    (spawn(routes).await, calls)
}

#[tokio::test]
async fn a_handled_delivery_is_a_duplicate_on_retry() {
    let (addr, calls) = idempotent_server(vec![]).await;
    let request = signer().example(EventType::ProducerSyncUpdatesAvailable);
    assert_eq!(post(addr, &request).await.status(), 200);
    let retry = post(addr, &request).await;
    assert_eq!(retry.status(), 200);
    assert!(retry.bytes().await.unwrap().is_empty());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the retry must not run the handler"
    );
}

#[tokio::test]
async fn a_failed_delivery_is_processed_again_on_retry() {
    let (addr, calls) = idempotent_server(vec![Some(StatusCode::INTERNAL_SERVER_ERROR)]).await;
    let request = signer().example(EventType::ProducerSyncUpdatesAvailable);
    assert_eq!(post(addr, &request).await.status(), 500);
    assert_eq!(post(addr, &request).await.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Now handled: a third attempt is a duplicate.
    assert_eq!(post(addr, &request).await.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_panicking_handler_releases_the_delivery() {
    let (addr, calls) = idempotent_server(vec![None]).await;
    let request = signer().example(EventType::ProducerSyncUpdatesAvailable);
    // The panic drops the connection: no response at all.
    let mut builder = reqwest::Client::new().post(format!("http://{addr}/webhooks/psapi"));
    for (name, value) in request.headers.to_pairs() {
        builder = builder.header(name, value);
    }
    assert!(builder.body(request.body.clone()).send().await.is_err());
    assert_eq!(post(addr, &request).await.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
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
