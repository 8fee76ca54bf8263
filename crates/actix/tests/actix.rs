//! What only actix has, on a real actix server bound on 127.0.0.1:0 and driven by reqwest: the
//! payload restored for other extractors, user payload types, and the
//! misconfiguration answer. Everything every adapter must do is in the root conformance suite.

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
use agentsync_webhooks_core::{EventData, EventType, SignedRequest, Signer, Verifier};
use futures_core::Stream as _;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

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
    webhook: Webhook,
    mut payload: web::Payload,
    calls: web::Data<Calls>,
) -> HttpResponse {
    calls.0.fetch_add(1, Ordering::SeqCst);
    let delivery = webhook.into_delivery();
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
    assert_eq!(calls.count(), 1);
}

/// `Webhook<MyData>` behind the middleware: re-parsed from the verified body.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activation {
    npn: String,
    activated_at: String,
}

async fn activation(event: Webhook<Activation>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} {}", event.data.npn, event.data.activated_at))
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

async fn unwrapped(event: Webhook, calls: web::Data<Calls>) -> HttpResponse {
    calls.0.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().body(event.into_event().event_type)
}

#[actix_web::test]
async fn the_extractor_without_the_middleware_is_a_500_naming_the_fix() {
    let calls = Calls::default();
    let data = calls.clone();
    let base = serve(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(data.clone()))
            .route("/webhooks/psapi", web::post().to(unwrapped));
    });
    let url = format!("{base}/webhooks/psapi");
    let (status, body) = answer(post(&url, &example(EventType::ProducerUpdated)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("misconfigured"))
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("WebhookMiddleware::new(verifier)"),
        "{message}"
    );
    assert_eq!(calls.count(), 0);
}

/// `Webhook` next to `web::Json` behind the middleware: both read the verified bytes.
async fn with_json(event: Webhook, json: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} {}", event.webhook_id(), json["data"]["npn"]))
}

#[actix_web::test]
async fn the_body_stays_readable_by_other_extractors() {
    let base = serve(|cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::resource("/webhooks/psapi")
                .wrap(WebhookMiddleware::new(verifier()))
                .route(web::post().to(with_json)),
        );
    });
    let sent = example(EventType::ProducerSyncNpnDeactivated);
    let response = post(&format!("{base}/webhooks/psapi"), &sent).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        format!("{} \"19370865\"", sent.headers.id)
    );
}
