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
//! Every path is one webhook endpoint here: the layer verifies the delivery and processes each
//! `webhook-id` once (a retry of a delivery the service answered 2xx gets an empty `200` without
//! reaching it); the service reads the event from the request extensions and routes on its type.

use std::{convert::Infallible, error::Error, net::SocketAddr};

use agentsync_webhooks::{
    EventData, MemoryStore, Verifier,
    tower::{VerifiedDelivery, WebhookLayer},
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, service_fn};
use tracing::info;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 3000,
    };

    // AGENTSYNC_WEBHOOK_SECRET: the endpoint's signing secret (whsec_..., from the portal); when it
    // is missing or malformed, the error says what to set.
    let verifier = Verifier::from_env()?;
    let service = ServiceBuilder::new()
        .layer(WebhookLayer::new(verifier).with_idempotency(MemoryStore::new()))
        .service(service_fn(handle));

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    println!(
        "send a signed test event with:\n  cargo run -p agentsync-webhooks-cli -- send \
         --url http://{addr}/webhooks/psapi --secret \"$AGENTSYNC_WEBHOOK_SECRET\" \
         --event producersync.updates_available --duplicate"
    );
    println!(
        "(--duplicate sends it twice: the repeat is answered 200 without running the handler)"
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            // The layer bounds the body (limit and deadline); hyper bounds the headers.
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                info!(error = %e, "connection ended with an error");
            }
        });
    }
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
    Ok(reply(StatusCode::OK))
}

fn reply(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}
