//! An AgentSync webhook receiver on warp.
//!
//! Two endpoints, one per AgentSync subscription: `/webhooks/psapi` (ProducerSync) and
//! `/webhooks/contracting`. Each verifies the signature, parses the event and answers 2xx within
//! the sender's 5 s budget; slow work (pulling ProducerSync updates) goes to a background task.
//!
//! ```sh
//! export AGENTSYNC_WEBHOOK_SECRET=whsec_...   # the endpoint's signing secret
//! cargo run --example warp
//! # in another terminal, with the same variable set: the same event twice (a sender's retry)
//! cargo run -p agentsync-webhooks-cli -- send --url http://127.0.0.1:3000/webhooks/psapi \
//!     --event producersync.updates_available --duplicate
//! ```
//!
//! Each `webhook-id` is processed once per endpoint: a retry of a delivery the handler answered
//! 2xx gets an empty `200` without running the handler (in-memory store; with several
//! instances, share a `RedisStore` from `agentsync-webhooks-redis` instead).
//!
//! `PORT` (default 3000) picks the port; the server listens on 127.0.0.1 only. `RUST_LOG`
//! filters the logs (default `info`): receipts, and every refused delivery with its reason.

use std::{convert::Infallible, error::Error, net::Ipv4Addr};

use agentsync_webhooks::{
    Delivery, EventData, EventGroup, Idempotency, MemoryStore, Receiver, UpdatesAvailable,
    Verifier,
    warp::{Webhook, webhook_with},
};
use tokio::{net::TcpListener, sync::mpsc};
use tracing::{info, warn};
use warp::{Filter, Reply, http::StatusCode};

/// The queue of ProducerSync pulls to run.
type PullQueue = mpsc::Sender<UpdatesAvailable>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    // AGENTSYNC_WEBHOOK_SECRET: the endpoint's signing secret (whsec_..., from the portal); when it
    // is missing or malformed, the error says what to set.
    let verifier = Verifier::from_env()?;
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port} is not a port number"))?,
        Err(_) => 3000,
    };

    // The sender wants a 2xx within 5 seconds: handlers only enqueue, this task does the work.
    let (pulls, queue) = mpsc::channel(64);
    tokio::spawn(pull_producersync_updates(queue));

    // Verifies every delivery before the handler runs (refusals never reach it), and processes
    // each webhook-id once: the sender's retries of a handled event get an empty 200. One store,
    // one key prefix per endpoint: an event sent to both endpoints carries the same webhook-id.
    let store = MemoryStore::new();
    let verified = |endpoint: &str| {
        let idempotency = Idempotency::new(store.clone()).with_key_prefix(format!("{endpoint}:"));
        webhook_with(Receiver::new(verifier.clone()).with_idempotency(idempotency))
    };
    let psapi = warp::path!("webhooks" / "psapi")
        .and(warp::post())
        .and(verified("psapi"))
        .and(with_queue(pulls))
        // `run` calls the handler, then records its reply's status for the delivery.
        .then(|hook: Webhook, pulls: PullQueue| {
            hook.run(move |delivery| on_producer_sync(delivery, pulls))
        });
    let contracting = warp::path!("webhooks" / "contracting")
        .and(warp::post())
        .and(verified("contracting"))
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
        "send a signed test event:\n  cargo run -p agentsync-webhooks-cli -- send --url http://{addr}/webhooks/psapi --secret \"$AGENTSYNC_WEBHOOK_SECRET\" --event producersync.updates_available --duplicate"
    );
    println!(
        "(--duplicate sends it twice: the repeat is answered 200 without running the handler)"
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
fn with_queue(pulls: PullQueue) -> impl Filter<Extract = (PullQueue,), Error = Infallible> + Clone {
    warp::any().map(move || pulls.clone())
}

/// ProducerSync events. The reply's status is recorded for the delivery: a 2xx marks it
/// handled, anything else lets the sender's retry through.
async fn on_producer_sync(delivery: Delivery, pulls: PullQueue) -> impl Reply {
    log_receipt(&delivery);
    match &delivery.event.data {
        EventData::ProducerSyncUpdatesAvailable(update) => {
            // Hand off and answer at once. A full queue answers 503: the sender retries later.
            if pulls.try_send(update.clone()).is_err() {
                warn!(webhook_id = %delivery.webhook_id, "pull queue full, asking for a retry");
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
        EventData::ProducerSyncNpnActivated(d) => {
            info!(npn = %d.npn, activated_at = %d.activated_at, "producer now monitored");
        }
        EventData::ProducerSyncNpnDeactivated(d) => {
            info!(npn = %d.npn, deactivated_at = %d.deactivated_at, "producer no longer monitored");
        }
        // Types this version does not know still get a 2xx, or the sender would retry them.
        EventData::Unknown { event_type, .. } => info!(%event_type, "ignoring unknown event type"),
        other => info!(event_type = ?other.event_type(), "not a ProducerSync event, ignored"),
    }
    StatusCode::OK
}

/// Contracting events: their schemas are not published, so `data` is kept whole.
async fn on_contracting(delivery: Delivery) -> impl Reply {
    log_receipt(&delivery);
    match (&delivery.event.data, delivery.event.group()) {
        (EventData::Unknown { event_type, .. }, _) => {
            info!(%event_type, "ignoring unknown event type")
        }
        (EventData::ContractUpdated(d), _) => {
            info!(contract_id = ?d.get_str("contractId"), npn = ?d.npn(), "contract changed");
        }
        (EventData::ContractPacketSubmitted(d), _) => {
            info!(packet_id = ?d.get_str("packetId"), npn = ?d.npn(), "contract packet submitted");
        }
        (data, Some(EventGroup::Contract)) => {
            info!(event_type = ?data.event_type(), "contracting event, nothing to do yet");
        }
        (data, _) => info!(event_type = ?data.event_type(), "not a Contracting event, ignored"),
    }
    StatusCode::OK
}

/// Every receipt, with what is needed to find the attempt in the sender's portal and replay it.
fn log_receipt(delivery: &Delivery) {
    info!(
        webhook_id = %delivery.webhook_id,
        event_id = %delivery.event.id,
        event_type = %delivery.event.event_type,
        generated_at = %delivery.event.timestamp,
        bytes = delivery.raw_body.len(),
        "webhook received"
    );
}

/// The background work behind `producersync.updates_available`.
async fn pull_producersync_updates(mut queue: mpsc::Receiver<UpdatesAvailable>) {
    while let Some(update) = queue.recv().await {
        let updated_since = update.updated_since();
        // Here: page through the ProducerSync API with `updatedSince={updated_since}` (the
        // event's runDate) and apply the changes. Retries of the same event may arrive: the
        // pull is idempotent, so running it twice is harmless.
        info!(%updated_since, "pulling ProducerSync changes with updatedSince={updated_since}");
    }
}
