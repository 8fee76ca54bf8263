//! An AgentSync webhook receiver on warp.
//!
//! Two endpoints, one per AgentSync subscription: `/webhooks/psapi` (ProducerSync) and
//! `/webhooks/contracting`. Each verifies the signature, parses the event and answers 2xx within
//! the sender's 5 s budget; slow work (pulling ProducerSync updates) goes to a background task.
//!
//! ```sh
//! AGENTSYNC_WEBHOOK_SECRET=whsec_... cargo run --example warp
//! cargo run -p agentsync-webhooks-cli -- send --url http://127.0.0.1:3000/webhooks/psapi \
//!     --secret whsec_... --event producersync.updates_available
//! ```
//!
//! `PORT` (default 3000) picks the port; the server listens on 127.0.0.1 only. `RUST_LOG`
//! filters the logs (default `info`): receipts, and every refused delivery with its reason.

use std::{convert::Infallible, error::Error, net::Ipv4Addr};

use agentsync_webhooks::{
    Delivery, EventData, Verifier,
    warp::{Webhook, webhook},
};
use tokio::{net::TcpListener, sync::mpsc};
use warp::{Filter, Reply, http::StatusCode};

/// The ProducerSync run dates waiting to be pulled.
type UpdatesQueue = mpsc::Sender<String>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let secret = std::env::var("AGENTSYNC_WEBHOOK_SECRET").map_err(|_| {
        "set AGENTSYNC_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...) from the AgentSync portal"
    })?;
    let verifier = Verifier::new(&secret)?;
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port} is not a port number"))?,
        Err(_) => 3000,
    };

    // Pulling updates takes longer than the sender waits: hand it to a background task.
    let (updates, pending) = mpsc::channel(64);
    tokio::spawn(pull_updates(pending));

    let psapi = warp::path!("webhooks" / "psapi")
        .and(warp::post())
        .and(webhook(verifier.clone()))
        .and(with_queue(updates))
        .then(|hook: Webhook, updates: UpdatesQueue| {
            hook.run(move |delivery| on_producer_sync(delivery, updates))
        });
    let contracting = warp::path!("webhooks" / "contracting")
        .and(warp::post())
        .and(webhook(verifier))
        .then(|hook: Webhook| hook.run(on_contracting));
    // `recover` answers refused deliveries (400, 401, 413, ...) with a JSON body; other paths
    // still get warp's 404 and 405.
    let routes = psapi
        .or(contracting)
        .recover(agentsync_webhooks::warp::recover);

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr} (POST /webhooks/psapi, POST /webhooks/contracting)");
    println!(
        "send a signed test event:\n  cargo run -p agentsync-webhooks-cli -- send --url http://{addr}/webhooks/psapi --secret \"$AGENTSYNC_WEBHOOK_SECRET\" --event producersync.updates_available"
    );
    warp::serve(routes)
        .incoming(listener)
        .graceful(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .run()
        .await;
    Ok(())
}

/// Hands each request a clone of the queue.
fn with_queue(
    updates: UpdatesQueue,
) -> impl Filter<Extract = (UpdatesQueue,), Error = Infallible> + Clone {
    warp::any().map(move || updates.clone())
}

/// ProducerSync events. The answer's status is recorded for the delivery: a 2xx marks it
/// handled, anything else lets the sender's retry through.
async fn on_producer_sync(delivery: Delivery, updates: UpdatesQueue) -> impl Reply {
    log_receipt(&delivery);
    match delivery.event.data {
        EventData::ProducerSyncUpdatesAvailable(data) => {
            match updates.try_send(data.updated_since()) {
                Ok(()) => StatusCode::ACCEPTED,
                // Queue full or worker gone: not handled, so ask the sender to retry later.
                Err(_) => StatusCode::SERVICE_UNAVAILABLE,
            }
        }
        EventData::ProducerSyncNpnActivated(data) => {
            tracing::info!(npn = %data.npn, "start monitoring producer");
            StatusCode::NO_CONTENT
        }
        EventData::ProducerSyncNpnDeactivated(data) => {
            tracing::info!(npn = %data.npn, "stop monitoring producer");
            StatusCode::NO_CONTENT
        }
        // Types added after this version still get a 2xx, or the sender would retry them for a day.
        other => {
            tracing::info!(event_type = ?other.event_type(), "ignoring event on the ProducerSync endpoint");
            StatusCode::NO_CONTENT
        }
    }
}

/// Contracting events carry the ids of the record that changed; fetch it from the API.
async fn on_contracting(delivery: Delivery) -> impl Reply {
    log_receipt(&delivery);
    match &delivery.event.data {
        EventData::ContractUpdated(data) => {
            tracing::info!(contract = ?data.get_str("contractId"), npn = ?data.npn(), "refresh contract");
        }
        EventData::Unknown { event_type, .. } => {
            tracing::info!(%event_type, "ignoring unknown event type");
        }
        other => tracing::info!(event_type = ?other.event_type(), "contracting event"),
    }
    StatusCode::NO_CONTENT
}

/// One line per delivery: enough to find it in the sender's portal and to replay it.
fn log_receipt(delivery: &Delivery) {
    tracing::info!(
        webhook_id = %delivery.webhook_id,
        event_id = %delivery.event.id,
        event_type = %delivery.event.event_type,
        known = delivery.event.known_type().is_some(),
        bytes = delivery.raw_body.len(),
        "webhook received"
    );
}

/// Pulls ProducerSync updates, one run date at a time.
async fn pull_updates(mut pending: mpsc::Receiver<String>) {
    while let Some(updated_since) = pending.recv().await {
        tracing::info!(%updated_since, "pulling ProducerSync updates (GET /producers?updatedSince=...)");
    }
}
