//! The server side of the HTTP benchmark: the same axum route with and without verification.
//!
//! ```sh
//! # servers and load generator share the secret through the environment
//! export AGENTSYNC_WEBHOOK_SECRET=$(cargo run -q -p agentsync-webhooks-cli -- secret new)
//! cargo build --release --example bench_axum
//! MODE=layer PORT=3001 target/release/examples/bench_axum &
//! MODE=bare  PORT=3002 target/release/examples/bench_axum &
//! cargo run --release -p agentsync-webhooks-cli -- send --url http://127.0.0.1:3001/webhooks/psapi \
//!     --event producersync.updates_available --count 100000 --concurrency 64
//! # ... and the same against :3002; compare requests/s and p99.
//! ```
//!
//! `MODE=layer`: `WebhookLayer` plus the `Webhook` extractor (collect within the limit, verify,
//! parse, hand over). `MODE=bare`: a handler that only parses the JSON body, no verification:
//! the baseline the layer is measured against (target: at most 5% fewer requests/s).
//! `MODE=floor`: `bare` plus `Verifier::verify` on the headers and body, which is the least any
//! verifying receiver adds to `bare`. `MODE=floor-typed`: `floor` with the layer's parse (the
//! typed `Delivery`, as the port parses it) in place of `bare`'s `serde_json::Value`, so that
//! "layer over floor-typed" is what the layer adds over verifying and parsing alike.
//!
//! `METRICS=prometheus` installs the Prometheus exporter's recorder (no scrape endpoint) before
//! serving, to measure what recording the metrics costs per delivery; without it no recorder is
//! installed and the `metrics` calls go nowhere.
//!
//! The durable handoff (`benches/handoff.sh`), both answering 202 from the `Webhook` extractor:
//! `MODE=memory` is the layer with `MemoryStore` idempotency (the baseline), `MODE=handoff` the
//! layer writing every delivery to the queue `AGENTSYNC_QUEUE_URL` names (unset: the SQLite file
//! in the working directory) before the handler runs, with no workers in this process.

use std::{error::Error, net::SocketAddr};

use agentsync_webhooks::{
    Delivery, EventData, MemoryStore, Verifier,
    axum::{Webhook, WebhookLayer},
    queue::Queue,
};
use axum::{
    Router,
    body::Bytes,
    extract::{Request, State},
    http::StatusCode,
    routing::post,
};
use tokio::net::TcpListener;

/// `MODE=layer`: the event is verified and typed by the time the handler runs.
async fn verified(event: Webhook) -> StatusCode {
    match event.data {
        EventData::Unknown { .. } => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    }
}

/// `MODE=memory` and `MODE=handoff`: the delivery is verified, typed (and, with the handoff,
/// stored) by the time the handler runs; it only answers.
async fn accepted(_event: Webhook) -> StatusCode {
    StatusCode::ACCEPTED
}

/// `MODE=bare`: the same answer from the unverified JSON.
async fn bare(body: Bytes) -> StatusCode {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(json) if json.get("type").is_some_and(|t| t.is_string()) => StatusCode::OK,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `MODE=floor`: the bare handler plus the signature check alone (no layer, no typed parse):
/// the least any verifying receiver must add to `bare`.
async fn floor(State(verifier): State<Verifier>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE;
    };
    match verifier.verify(&parts.headers, &body) {
        Ok(_) => bare(body).await,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

/// `MODE=floor-typed`: the signature check and the layer's typed parse, answered as `verified`
/// answers: what the layer does without the layer.
async fn floor_typed(State(verifier): State<Verifier>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE;
    };
    let Ok(verified) = verifier.verify(&parts.headers, &body) else {
        return StatusCode::UNAUTHORIZED;
    };
    match Delivery::<EventData>::parse(verified.id, verified.timestamp, body) {
        Ok(delivery) => match delivery.event.data {
            EventData::Unknown { .. } => StatusCode::ACCEPTED,
            _ => StatusCode::OK,
        },
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let secret = std::env::var("AGENTSYNC_WEBHOOK_SECRET").map_err(
        |_| "set AGENTSYNC_WEBHOOK_SECRET (the same secret the load generator signs with)",
    )?;
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 3000,
    };
    let mode = std::env::var("MODE").unwrap_or_else(|_| "layer".into());
    // Kept alive for the process; nothing scrapes it.
    let _prometheus = match std::env::var("METRICS").as_deref() {
        Ok("prometheus") => {
            Some(metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?)
        }
        Ok(other) => return Err(format!("METRICS={other:?}: use METRICS=prometheus").into()),
        Err(_) => None,
    };
    let app = match mode.as_str() {
        "layer" => Router::new()
            .route("/webhooks/psapi", post(verified))
            .route_layer(WebhookLayer::new(Verifier::new(&secret)?)),
        "bare" => Router::new().route("/webhooks/psapi", post(bare)),
        "floor" => Router::new()
            .route("/webhooks/psapi", post(floor))
            .with_state(Verifier::new(&secret)?),
        "floor-typed" => Router::new()
            .route("/webhooks/psapi", post(floor_typed))
            .with_state(Verifier::new(&secret)?),
        "memory" => Router::new()
            .route("/webhooks/psapi", post(accepted))
            .route_layer(
                WebhookLayer::new(Verifier::new(&secret)?).with_idempotency(MemoryStore::new()),
            ),
        "handoff" => {
            let url = std::env::var("AGENTSYNC_QUEUE_URL").unwrap_or_default();
            Router::new()
                .route("/webhooks/psapi", post(accepted))
                .route_layer(
                    WebhookLayer::new(Verifier::new(&secret)?)
                        .with_handoff(Queue::from_url(&url).await?),
                )
        }
        other => {
            return Err(format!(
                "MODE={other:?}: use MODE=layer, bare, floor, floor-typed, memory or handoff"
            )
            .into());
        }
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!(
        "bench_axum MODE={mode} on http://{}/webhooks/psapi",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
