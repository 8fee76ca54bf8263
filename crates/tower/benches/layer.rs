//! The layer's cost in process, without sockets: one AgentSync delivery through `WebhookLayer`
//! around a handler that takes the verified delivery, against a bare service that only collects
//! the body and parses its JSON (what `benches/http.sh` calls `bare`).
//!
//! `cargo bench -p agentsync-webhooks-tower --bench layer`

use std::{convert::Infallible, hint::black_box};

use agentsync_webhooks_core::{EventType, Signer, Verifier};
use agentsync_webhooks_tower::{VerifiedDelivery, WebhookLayer};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use tower::{Layer as _, Service as _, ServiceExt as _, service_fn};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let sent = Signer::new(SECRET)
        .unwrap()
        .example(EventType::ProducerSyncUpdatesAvailable);
    let body = Bytes::from(sent.body);
    let request = || {
        let mut request = Request::post("/webhooks/psapi").header("content-length", body.len());
        for (name, value) in sent.headers.to_pairs() {
            request = request.header(name, value);
        }
        request.body(Full::new(body.clone())).unwrap()
    };

    let bare = service_fn(|request: Request<Full<Bytes>>| async move {
        let body = request.into_body().collect().await?.to_bytes();
        let status = match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(json) if json.get("type").is_some() => StatusCode::OK,
            _ => StatusCode::BAD_REQUEST,
        };
        Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
    });
    let verified = WebhookLayer::new(Verifier::new(SECRET).unwrap()).layer(service_fn(
        |mut request: Request<Full<Bytes>>| async move {
            let delivery = request.extensions_mut().remove::<VerifiedDelivery>();
            let status = if delivery.is_some() {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
        },
    ));

    let mut group = c.benchmark_group("layer");
    group.bench_function("bare_json_service", |b| {
        b.iter(|| {
            let response = runtime.block_on(bare.oneshot(request())).unwrap();
            assert_eq!(black_box(response).status(), StatusCode::OK);
        })
    });
    group.bench_function("webhook_layer", |b| {
        let mut service = verified.clone();
        b.iter(|| {
            let response = runtime.block_on(service.call(request())).unwrap();
            assert_eq!(black_box(response).status(), StatusCode::OK);
        })
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
