//! The conformance suite against axum: the layer with the `Webhook` extractor; plus what only
//! axum has (user payload types, the raw body next to the event, the misconfiguration answer).

mod conformance;

use agentsync_webhooks::{
    EventType, Receiver, Signer, UpdatesAvailable, Verifier,
    axum::{Webhook, WebhookLayer},
};
use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use conformance::{Calls, PATH, SECRET, TestServer};
use tokio::net::TcpListener;

async fn serve(app: Router) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    TestServer::spawn(addr, async move {
        let _ = axum::serve(listener, app).await;
    })
}

async fn record(State(calls): State<Calls>, event: Webhook) -> StatusCode {
    StatusCode::from_u16(calls.record(event.into_delivery()).await).unwrap()
}

#[tokio::test]
async fn layer_and_extractor_pass_the_conformance_suite() {
    conformance::run_suite("axum layer", |receiver: Receiver, calls: Calls| {
        serve(
            Router::new()
                .route(PATH, post(record))
                .route_layer(WebhookLayer::from_receiver(receiver))
                .with_state(calls),
        )
    })
    .await;
}

async fn run_date(event: Webhook<UpdatesAvailable>) -> String {
    format!("{} {}", event.event_type, event.data.updated_since())
}

async fn post_example(url: &str, event_type: EventType) -> (u16, String) {
    let signed = Signer::new(SECRET).unwrap().example(event_type);
    let mut request = reqwest::Client::new().post(format!("{url}{PATH}"));
    for (name, value) in signed.headers.to_pairs() {
        request = request.header(name, value);
    }
    let response = request.body(signed.body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn user_payload_types() {
    let verifier = Verifier::new(SECRET).unwrap();
    let layered = serve(
        Router::new()
            .route(PATH, post(run_date))
            .route_layer(WebhookLayer::new(verifier)),
    )
    .await;
    {
        let server = &layered;
        assert_eq!(
            post_example(&server.url, EventType::ProducerSyncUpdatesAvailable).await,
            (200, "producersync.updates_available 2025-07-24".into())
        );
        // Verified, but `data` does not fit the user's type: 400 with its own code.
        let (status, body) = post_example(&server.url, EventType::ProducerSyncNpnActivated).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("\"invalid_event_data\""), "{body}");
    }
}

#[tokio::test]
async fn a_bytes_handler_gets_the_verified_body_behind_the_layer() {
    // `Webhook` reads the body, so a handler wanting both takes `event.raw_body()`; a handler
    // behind the layer that takes only `Bytes` still gets the verified bytes.
    async fn only_bytes(body: Bytes) -> String {
        String::from_utf8_lossy(&body).into_owned()
    }
    let server = serve(
        Router::new()
            .route(PATH, post(only_bytes))
            .route_layer(WebhookLayer::new(Verifier::new(SECRET).unwrap())),
    )
    .await;
    let (status, body) = post_example(&server.url, EventType::ProducerSyncUpdatesAvailable).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"runDate\":\"2025-07-24\""), "{body}");
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_naming_the_fix() {
    async fn handler(_: Webhook) -> StatusCode {
        StatusCode::OK
    }
    let server = serve(Router::new().route(PATH, post(handler))).await;
    let (status, body) = post_example(&server.url, EventType::ProducerSyncUpdatesAvailable).await;
    assert_eq!(status, 500);
    assert!(body.contains("\"misconfigured\""), "{body}");
    assert!(body.contains("WebhookLayer::new(verifier)"), "{body}");
}
