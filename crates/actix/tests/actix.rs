//! The middleware and the extractor on a real actix server bound on 127.0.0.1:0, driven by
//! reqwest (and by a raw socket for a chunked body).

use std::{
    future::poll_fn,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use actix_web::{App, HttpResponse, HttpServer, web};
use agentsync_webhooks_actix::{Webhook, WebhookMiddleware};
use agentsync_webhooks_core::{
    Delivery, EventData, EventType, Receiver, SignedRequest, Signer, Verifier, WebhookError,
    idempotency::MemoryStore,
};
use futures_core::Stream as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_dGhpcyBpcyBub3QgdGhlIHNhbWUgc2VjcmV0";

fn verifier() -> Verifier {
    Verifier::new(SECRET).unwrap()
}

fn example(event_type: EventType) -> SignedRequest {
    Signer::new(SECRET).unwrap().example(event_type)
}

/// Starts an actix server with one worker on 127.0.0.1:0 and returns its base URL.
fn serve(config: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static) -> String {
    let server = HttpServer::new(move || App::new().configure(config.clone()))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    format!("http://{addr}")
}

async fn post(url: &str, request: &SignedRequest) -> reqwest::Response {
    let mut builder = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in request.headers.to_pairs() {
        builder = builder.header(name, value);
    }
    builder.body(request.body.clone()).send().await.unwrap()
}

/// Status and the parsed JSON error body (`Null` for an empty body).
async fn answer(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, json)
}

/// How many times a handler ran.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Echoes what the handler saw: the event, and whether every way of reading the body agrees.
async fn echo(
    Webhook(delivery): Webhook,
    mut payload: web::Payload,
    stored: web::ReqData<Delivery>,
    calls: web::Data<Calls>,
) -> HttpResponse {
    calls.0.fetch_add(1, Ordering::SeqCst);
    let raw = poll_fn(|cx| Pin::new(&mut payload).poll_next(cx))
        .await
        .unwrap()
        .unwrap();
    let npn = match &delivery.event.data {
        EventData::ProducerSyncNpnActivated(d) => Some(d.npn.clone()),
        _ => None,
    };
    HttpResponse::Ok().json(serde_json::json!({
        "type": delivery.event.event_type,
        "webhook_id": delivery.webhook_id,
        "npn": npn,
        "raw_body_restored": raw == delivery.raw_body,
        "same_bytes": raw.as_ptr() == delivery.raw_body.as_ptr(),
        "stored_matches": stored.webhook_id == delivery.webhook_id,
    }))
}

fn middleware_app(
    middleware: WebhookMiddleware,
    calls: Calls,
) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(calls.clone())).service(
            web::scope("/webhooks")
                .wrap(middleware.clone())
                .route("/psapi", web::post().to(echo)),
        );
    }
}

#[actix_web::test]
async fn middleware_passes_a_verified_delivery_and_restores_the_body() {
    let calls = Calls::default();
    let base = serve(middleware_app(
        WebhookMiddleware::new(verifier()),
        calls.clone(),
    ));
    let sent = example(EventType::ProducerSyncNpnActivated);
    let (status, body) = answer(post(&format!("{base}/webhooks/psapi"), &sent).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["type"], "producersync.npn.activated");
    assert_eq!(body["webhook_id"], sent.headers.id.as_str());
    assert_eq!(body["npn"], "19370865");
    assert_eq!(body["raw_body_restored"], true);
    assert_eq!(body["same_bytes"], true);
    assert_eq!(body["stored_matches"], true);
    assert_eq!(calls.count(), 1);
}

#[actix_web::test]
async fn middleware_refuses_with_the_core_rejection_and_skips_the_handler() {
    let calls = Calls::default();
    let base = serve(middleware_app(
        WebhookMiddleware::new(verifier()),
        calls.clone(),
    ));
    let url = format!("{base}/webhooks/psapi");

    let response = reqwest::Client::new()
        .post(&url)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/json");
    let expected = WebhookError::MissingHeader("webhook-id").rejection(None);
    assert_eq!(response.bytes().await.unwrap(), expected.body);

    let mut forged = example(EventType::ProducerSyncUpdatesAvailable);
    forged.body.push(b' ');
    let (status, body) = answer(post(&url, &forged).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("signature_mismatch"))
    );

    let wrong_key = Signer::new(OTHER_SECRET)
        .unwrap()
        .example(EventType::ProducerUpdated);
    let (status, body) = answer(post(&url, &wrong_key).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("signature_mismatch"))
    );

    let signer = Signer::new(SECRET).unwrap();
    let not_json = SignedRequest {
        headers: signer.sign_now(b"not json"),
        body: b"not json".to_vec(),
    };
    let (status, body) = answer(post(&url, &not_json).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_payload"))
    );

    let bad_data = br#"{"type":"producersync.updates_available","data":{}}"#;
    let bad_data = SignedRequest {
        headers: signer.sign_now(bad_data),
        body: bad_data.to_vec(),
    };
    let (status, body) = answer(post(&url, &bad_data).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_event_data"))
    );

    assert_eq!(calls.count(), 0);
}

#[actix_web::test]
async fn middleware_accepts_svix_headers_and_unknown_types() {
    let calls = Calls::default();
    let base = serve(middleware_app(
        WebhookMiddleware::new(verifier()),
        calls.clone(),
    ));
    let body = br#"{"type":"something.new","data":{"x":1}}"#;
    let headers = Signer::new(SECRET).unwrap().sign_now(body);
    let response = reqwest::Client::new()
        .post(format!("{base}/webhooks/psapi"))
        .header("svix-id", headers.id.as_str())
        .header("svix-timestamp", headers.timestamp.to_string())
        .header("svix-signature", headers.signature.as_str())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let (status, json) = answer(response).await;
    assert_eq!(status, 200);
    assert_eq!(json["type"], "something.new");
    assert_eq!(calls.count(), 1);
}

#[actix_web::test]
async fn middleware_refuses_a_declared_length_over_the_limit() {
    let calls = Calls::default();
    let base = serve(middleware_app(
        WebhookMiddleware::new(verifier()).body_limit(64),
        calls.clone(),
    ));
    let sent = example(EventType::ProducerAddressUpdated);
    assert!(sent.body.len() > 64);
    let (status, body) = answer(post(&format!("{base}/webhooks/psapi"), &sent).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(calls.count(), 0);
}

/// A chunked body without Content-Length that passes the limit is answered 413 as soon as it
/// does, before the body ends (the terminating chunk is never sent).
#[actix_web::test]
async fn middleware_cuts_off_a_streamed_body_at_the_limit() {
    let calls = Calls::default();
    let base = serve(middleware_app(
        WebhookMiddleware::new(verifier()).body_limit(1024),
        calls.clone(),
    ));
    let response = chunked_without_end(&base, "/webhooks/psapi", 4, 512).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");
    assert_eq!(calls.count(), 0);
}

/// Sends `chunks` chunks of `size` bytes with `Transfer-Encoding: chunked`, never ends the body,
/// and returns the response head and body as text.
async fn chunked_without_end(base: &str, path: &str, chunks: usize, size: usize) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let headers = example(EventType::ProducerUpdated).headers;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n\
         webhook-id: {}\r\nwebhook-timestamp: {}\r\nwebhook-signature: {}\r\n\r\n",
        headers.id, headers.timestamp, headers.signature
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{size:x}\r\n{}\r\n", "a".repeat(size));
    for _ in 0..chunks {
        stream.write_all(chunk.as_bytes()).await.unwrap();
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the JSON body has arrived (the server may keep the connection open).
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            response.extend_from_slice(&buf[..n]);
            if n == 0 || response.ends_with(b"}") {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("the server should answer before the body ends");
    String::from_utf8_lossy(&response).into_owned()
}

/// `Webhook<MyData>` behind the middleware: re-parsed from the verified body.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activation {
    npn: String,
    activated_at: String,
}

async fn activation(Webhook(delivery): Webhook<Activation>) -> HttpResponse {
    HttpResponse::Ok().body(format!(
        "{} {}",
        delivery.event.data.npn, delivery.event.data.activated_at
    ))
}

#[actix_web::test]
async fn user_payload_types_are_reparsed_and_mismatches_are_400() {
    let base = serve(|cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::scope("/webhooks")
                .wrap(WebhookMiddleware::new(verifier()))
                .route("/psapi", web::post().to(activation)),
        );
    });
    let url = format!("{base}/webhooks/psapi");
    let response = post(&url, &example(EventType::ProducerSyncNpnActivated)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "19370865 2025-07-24T22:51:05.206Z"
    );

    let (status, body) = answer(post(&url, &example(EventType::ProducerUpdated)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_event_data"))
    );
}

async fn standalone(Webhook(delivery): Webhook, calls: web::Data<Calls>) -> HttpResponse {
    calls.0.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().body(delivery.event.event_type)
}

#[actix_web::test]
async fn extractor_alone_verifies_with_the_verifier_in_app_data() {
    let calls = Calls::default();
    let data = calls.clone();
    let base = serve(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(verifier()))
            .app_data(web::Data::new(data.clone()))
            .route("/webhooks/psapi", web::post().to(standalone));
    });
    let url = format!("{base}/webhooks/psapi");
    let response = post(&url, &example(EventType::ContractUpdated)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "contract.updated");

    let mut forged = example(EventType::ContractUpdated);
    forged.body[1] ^= 1;
    let (status, body) = answer(post(&url, &forged).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("signature_mismatch"))
    );
    assert_eq!(calls.count(), 1);
}

#[actix_web::test]
async fn extractor_alone_uses_the_receivers_body_limit() {
    let calls = Calls::default();
    let data = calls.clone();
    let base = serve(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(
            Receiver::new(verifier()).with_body_limit(1024),
        ))
        .app_data(web::Data::new(data.clone()))
        .route("/webhooks/psapi", web::post().to(standalone));
    });
    let mut big = example(EventType::ProducerUpdated);
    big.body = vec![b' '; 2048];
    let (status, body) = answer(post(&format!("{base}/webhooks/psapi"), &big).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );

    let response = chunked_without_end(&base, "/webhooks/psapi", 4, 512).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert_eq!(calls.count(), 0);
}

#[actix_web::test]
async fn extractor_without_middleware_or_verifier_is_a_500_naming_the_fix() {
    let calls = Calls::default();
    let data = calls.clone();
    let base = serve(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(data.clone()))
            .route("/webhooks/psapi", web::post().to(standalone));
    });
    let (status, body) = answer(
        post(
            &format!("{base}/webhooks/psapi"),
            &example(EventType::ProducerUpdated),
        )
        .await,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "misconfigured");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("WebhookMiddleware::new(verifier)"),
        "{message}"
    );
    assert!(message.contains("web::Data::new(verifier)"), "{message}");
    assert_eq!(calls.count(), 0);
}

/// Two extractors in one handler behind the middleware: both read the stored delivery, and
/// `web::Json` still reads the body.
async fn twice(
    first: Webhook,
    second: Webhook<serde_json::Value>,
    json: web::Json<serde_json::Value>,
) -> HttpResponse {
    HttpResponse::Ok().body(format!(
        "{} {} {}",
        first.webhook_id(),
        second.data["npn"],
        json["data"]["npn"]
    ))
}

#[actix_web::test]
async fn several_extractors_share_the_middlewares_delivery() {
    let base = serve(|cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::resource("/webhooks/psapi")
                .wrap(WebhookMiddleware::new(verifier()))
                .route(web::post().to(twice)),
        );
    });
    let sent = example(EventType::ProducerSyncNpnDeactivated);
    let response = post(&format!("{base}/webhooks/psapi"), &sent).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        format!("{} \"19370865\" \"19370865\"", sent.headers.id)
    );
}

/// A plain `Verifier` in the app data (no `web::Data`) is found too.
#[actix_web::test]
async fn extractor_alone_accepts_a_plain_verifier() {
    let calls = Calls::default();
    let data = calls.clone();
    let base = serve(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(verifier())
            .app_data(web::Data::new(data.clone()))
            .route("/webhooks/psapi", web::post().to(standalone));
    });
    let response = post(
        &format!("{base}/webhooks/psapi"),
        &example(EventType::ProducerPhoneDeleted),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "id.producer.phone.deleted");
    assert_eq!(calls.count(), 1);
}

async fn raw_data(event: Webhook<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().body(event.data.to_string())
}

/// Alone, the extractor parses `data` as the handler's type directly; behind the middleware a
/// documented type must first match its documented schema.
#[actix_web::test]
async fn extractor_alone_parses_the_users_type_directly() {
    let body = br#"{"type":"producersync.updates_available","data":{"other":1}}"#;
    let sent = SignedRequest {
        headers: Signer::new(SECRET).unwrap().sign_now(body),
        body: body.to_vec(),
    };
    let alone = serve(|cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(verifier()))
            .route("/webhooks/psapi", web::post().to(raw_data));
    });
    let response = post(&format!("{alone}/webhooks/psapi"), &sent).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"other":1}"#);

    let behind = serve(|cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::resource("/webhooks/psapi")
                .wrap(WebhookMiddleware::new(verifier()))
                .route(web::post().to(raw_data)),
        );
    });
    let (status, json) = answer(post(&format!("{behind}/webhooks/psapi"), &sent).await).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_event_data"))
    );
}

/// Answers 500 on the first call and 200 after, counting calls.
async fn flaky(_event: Webhook, calls: web::Data<Calls>) -> HttpResponse {
    if calls.0.fetch_add(1, Ordering::SeqCst) == 0 {
        HttpResponse::InternalServerError().finish()
    } else {
        HttpResponse::Ok().finish()
    }
}

/// The middleware reports the handler's status: a 2xx marks the id processed (its duplicate is
/// an empty 200 without the handler), a 500 releases it so the sender's retry runs the handler.
#[actix_web::test]
async fn middleware_finishes_the_completion_with_the_handlers_status() {
    let calls = Calls::default();
    let data = calls.clone();
    let receiver = Receiver::new(verifier()).with_idempotency(MemoryStore::new());
    let base = serve(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(data.clone())).service(
            web::resource("/webhooks/psapi")
                .wrap(WebhookMiddleware::from_receiver(receiver.clone()))
                .route(web::post().to(flaky)),
        );
    });
    let url = format!("{base}/webhooks/psapi");
    let sent = example(EventType::ProducerSyncUpdatesAvailable);

    assert_eq!(post(&url, &sent).await.status(), 500);
    assert_eq!(post(&url, &sent).await.status(), 200);
    let duplicate = post(&url, &sent).await;
    assert_eq!(duplicate.status(), 200);
    assert!(duplicate.headers().get("content-type").is_none());
    assert!(duplicate.bytes().await.unwrap().is_empty());
    assert_eq!(calls.count(), 2);
}
