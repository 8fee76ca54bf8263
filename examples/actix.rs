//! A complete AgentSync webhook receiver on actix-web, as the AgentSync docs recommend: verify,
//! answer fast, and do the work in the background.
//!
//! ```sh
//! export AGENTSYNC_WEBHOOK_SECRET=whsec_...   # the endpoint's signing secret
//! PORT=3000 cargo run --example actix
//! # in another terminal, with the same variable set: the same event twice (a sender's retry)
//! cargo run -p agentsync-webhooks-cli -- send --url http://127.0.0.1:3000/webhooks/psapi \
//!     --event producersync.updates_available --duplicate
//! ```
//!
//! Listens on 127.0.0.1:$PORT (default 3000) for `POST /webhooks/psapi` (ProducerSync) and
//! `POST /webhooks/contracting` (Contracting), and prints how to send it a signed test event.
//! Each `webhook-id` is processed once per endpoint: a retry of a delivery the handler answered
//! 2xx gets an empty `200` without running the handler (in-memory store; with several
//! instances, share a `RedisStore` from `agentsync-webhooks-redis` instead).
//! `RUST_LOG` filters the logs (default `info`): receipts, and every refused delivery with its
//! reason.

use std::error::Error;

use actix_web::{App, HttpResponse, HttpServer, web};
use agentsync_webhooks::{
    EventData, EventGroup, Idempotency, MemoryStore, UpdatesAvailable, Verifier,
    actix::{Webhook, WebhookMiddleware},
};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// The queue of ProducerSync pulls to run, shared by every worker.
type Pulls = mpsc::Sender<UpdatesAvailable>;

#[actix_web::main]
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
            .map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 3000,
    };

    // The sender wants a 2xx within 5 seconds: handlers only enqueue, this task does the work.
    let (pulls, queue) = mpsc::channel(64);
    actix_web::rt::spawn(pull_producersync_updates(queue));

    // Verifies every delivery before the handler runs (refusals never reach it), and processes
    // each webhook-id once: the sender's retries of a handled event get an empty 200. One store
    // for every worker, one key prefix per endpoint: an event sent to both endpoints carries the
    // same webhook-id.
    let store = MemoryStore::new();
    let verified = move |endpoint: &str| {
        let idempotency = Idempotency::new(store.clone()).with_key_prefix(format!("{endpoint}:"));
        WebhookMiddleware::new(verifier.clone()).with_idempotency(idempotency)
    };
    let server = HttpServer::new(move || {
        App::new().app_data(web::Data::new(pulls.clone())).service(
            web::scope("/webhooks")
                .service(
                    web::resource("/psapi")
                        .wrap(verified("psapi"))
                        .route(web::post().to(psapi)),
                )
                .service(
                    web::resource("/contracting")
                        .wrap(verified("contracting"))
                        .route(web::post().to(contracting)),
                ),
        )
    })
    .bind(("127.0.0.1", port))?;

    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or("the server is bound to no address")?;
    println!("listening on http://{addr}: POST /webhooks/psapi and /webhooks/contracting");
    println!("send a signed test event with:");
    println!(
        "  cargo run -p agentsync-webhooks-cli -- send --url http://{addr}/webhooks/psapi \
         --secret \"$AGENTSYNC_WEBHOOK_SECRET\" --event producersync.updates_available --duplicate"
    );
    println!(
        "(--duplicate sends it twice: the repeat is answered 200 without running the handler)"
    );
    server.run().await?;
    Ok(())
}

/// ProducerSync events.
async fn psapi(event: Webhook, pulls: web::Data<Pulls>) -> HttpResponse {
    log_receipt(&event);
    match &event.data {
        EventData::ProducerSyncUpdatesAvailable(update) => {
            // Hand off and answer at once. A full queue answers 503: the sender retries later.
            if pulls.try_send(update.clone()).is_err() {
                warn!(
                    webhook_id = event.webhook_id(),
                    "pull queue full, asking for a retry"
                );
                return HttpResponse::ServiceUnavailable().finish();
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
    HttpResponse::Ok().finish()
}

/// Contracting events: their schemas are not published, so `data` is kept whole.
async fn contracting(event: Webhook) -> HttpResponse {
    log_receipt(&event);
    match (&event.data, event.group()) {
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
    HttpResponse::Ok().finish()
}

/// Every receipt, with what is needed to find the attempt in the sender's portal and replay it.
fn log_receipt(event: &Webhook) {
    info!(
        webhook_id = event.webhook_id(),
        event_id = %event.id,
        event_type = %event.event_type,
        generated_at = %event.timestamp,
        bytes = event.raw_body().len(),
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
