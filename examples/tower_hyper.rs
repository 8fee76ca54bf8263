//! `WebhookLayer` on a plain hyper 1 server, no web framework.
//!
//! ```sh
//! export AGENTSYNC_WEBHOOK_SECRET=whsec_...   # the endpoint's signing secret
//! PORT=3000 cargo run --example tower_hyper
//! # in another terminal, with the same variable set: the same event twice (a sender's retry)
//! cargo run -p agentsync-webhooks-cli -- send --url http://127.0.0.1:3000/webhooks/psapi \
//!     --event producersync.updates_available --duplicate
//! ```
//!
//! Two webhook endpoints, `POST /webhooks/psapi` and `POST /webhooks/contracting`, each a
//! `WebhookLayer` with its own verifier: `AGENTSYNC_PSAPI_SECRET` and
//! `AGENTSYNC_CONTRACTING_SECRET`, each falling back to `AGENTSYNC_WEBHOOK_SECRET` (a delivery
//! signed for one path is refused, `401`, on the other). The layer verifies the delivery and
//! writes it to the queue (`AGENTSYNC_QUEUE_URL`, unset: the SQLite file
//! `agentsync-webhooks-queue.sqlite3` in the working directory) before the service answers
//! `202`; a retry of a delivery already stored gets an empty `200` without reaching it. The
//! service reads the event from the request extensions; `cargo run --example worker` on the same
//! queue runs the handlers. `GET /healthz` answers `200` while the queue's engine answers (with
//! what its persistence check found), `503` with the reason when not. A start-up failure prints
//! one line with the cause and the fix, and exits 1.

use std::{convert::Infallible, error::Error, net::SocketAddr, process::ExitCode, time::Duration};

use agentsync_webhooks::{
    EventData, Verifier,
    queue::Queue,
    tower::{ResponseBody, VerifiedDelivery, WebhookLayer},
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tracing::info;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One readable line (not the error's Debug), with its cause and the fix.
            eprintln!("error: {}", startup_failure(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 3000,
    };
    // Each path's signing secret (whsec_..., from the portal); when one is missing or
    // malformed, the error says what to set.
    let psapi = path_verifier("AGENTSYNC_PSAPI_SECRET")?;
    let contract = path_verifier("AGENTSYNC_CONTRACTING_SECRET")?;
    let queue = Queue::from_url(&std::env::var("AGENTSYNC_QUEUE_URL").unwrap_or_default()).await?;
    let psapi = ServiceBuilder::new()
        .layer(WebhookLayer::new(psapi).with_handoff(queue.clone()))
        .service(service_fn(handle));
    let contract = ServiceBuilder::new()
        .layer(WebhookLayer::new(contract).with_handoff(queue.clone()))
        .service(service_fn(handle));
    // The routing a framework would do: a path to its endpoint.
    let app = service_fn(move |request: Request<hyper::body::Incoming>| {
        let (psapi, contract, queue) = (psapi.clone(), contract.clone(), queue.clone());
        async move {
            match (request.method(), request.uri().path()) {
                (&Method::POST, "/webhooks/psapi") => psapi.oneshot(request).await,
                (&Method::POST, "/webhooks/contracting") => contract.oneshot(request).await,
                (&Method::GET, "/healthz") => Ok(healthz(&queue).await),
                _ => Ok(answer(StatusCode::NOT_FOUND, Bytes::new())),
            }
        }
    });

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}: POST /webhooks/psapi and /webhooks/contracting");
    println!(
        "send a signed test event with:\n  cargo run -p agentsync-webhooks-cli -- send \
         --url http://{addr}/webhooks/psapi --secret \"$AGENTSYNC_WEBHOOK_SECRET\" \
         --event producersync.updates_available --duplicate"
    );
    println!(
        "(--duplicate sends it twice: the repeat is answered 200 without reaching the service)"
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            // The layer bounds the body (limit and deadline); hyper bounds the headers.
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                info!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// `GET /healthz`: 200 while the queue's engine answers (its warnings listed), 503 with the
/// reason when not, for load balancers and Kubernetes probes.
async fn healthz(queue: &Queue) -> Response<ResponseBody<Full<Bytes>>> {
    let (status, body) = match queue.health().await {
        Ok(health) => (
            StatusCode::OK,
            serde_json::json!({ "status": "ok", "engine": health.engine, "warnings": health.warnings }),
        ),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "unavailable", "reason": err.to_string() }),
        ),
    };
    let mut response = answer(status, Bytes::from(body.to_string()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// An answer of this app's own, outside the webhook layers.
fn answer(status: StatusCode, body: Bytes) -> Response<ResponseBody<Full<Bytes>>> {
    let mut response = Response::new(ResponseBody::inner(Full::new(body)));
    *response.status_mut() = status;
    response
}

/// The verifier for one path: its own variable, else `AGENTSYNC_WEBHOOK_SECRET`.
fn path_verifier(variable: &str) -> Result<Verifier, String> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Verifier::with_secrets(value.split_whitespace())
            .map_err(|err| {
                format!(
                    "{variable}: {err}; set it to the endpoint's whsec_... secret from the portal"
                )
            }),
        _ => Verifier::from_env()
            .map_err(|err| format!("{err} (or set {variable} for this path alone)")),
    }
}

/// A start-up error as one line: what failed, its causes, and what to do.
fn startup_failure(err: &(dyn Error + 'static)) -> String {
    let mut line = err.to_string();
    if let Some(store) = err.downcast_ref::<agentsync_webhooks::queue::StoreError>() {
        use agentsync_webhooks::queue::StoreErrorKind;
        let fix = match store.kind() {
            StoreErrorKind::Unreachable | StoreErrorKind::Timeout => {
                "fix: start the queue's engine, or point AGENTSYNC_QUEUE_URL at one that answers"
            }
            _ => "fix: check AGENTSYNC_QUEUE_URL and the engine's settings named above",
        };
        line = format!("the queue could not be opened: {line}; {fix}");
    }
    line
}

/// Runs only for verified deliveries; the body is still there, the same bytes, if needed.
async fn handle(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(delivery) = request.extensions().get::<VerifiedDelivery>() else {
        return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR));
    };
    info!(
        webhook_id = %delivery.webhook_id,
        event_type = %delivery.event.event_type,
        path = request.uri().path(),
        "webhook received"
    );
    match &delivery.event.data {
        EventData::ProducerSyncUpdatesAvailable(d) => {
            // Enqueue the pull (updatedSince = runDate) and answer fast.
            info!(
                updated_since = d.updated_since(),
                "ProducerSync updates available"
            );
        }
        EventData::Unknown { event_type, .. } => info!(%event_type, "ignoring unknown type"),
        other => info!(event_type = ?other.event_type(), "received"),
    }
    Ok(reply(StatusCode::ACCEPTED))
}

fn reply(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}
