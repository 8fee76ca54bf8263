//! A complete AgentSync webhook receiver on actix-web, as the AgentSync docs recommend: verify,
//! answer fast, and do the work in the background.
//!
//! ```sh
//! AGENTSYNC_WEBHOOK_SECRET=whsec_... PORT=3000 cargo run --example actix
//! cargo run -p agentsync-webhooks-cli -- send --url http://127.0.0.1:3000/webhooks/psapi \
//!     --secret whsec_... --event producersync.updates_available
//! ```
//!
//! Listens on 127.0.0.1:$PORT (default 3000) for `POST /webhooks/psapi` (ProducerSync) and
//! `POST /webhooks/contracting` (Contracting), and prints how to send it a signed test event.
//! `RUST_LOG` filters the logs (default `info`): receipts, and every refused delivery with its
//! reason.

use std::error::Error;

use actix_web::{App, HttpResponse, HttpServer, web};
use agentsync_webhooks::{
    EventData, EventGroup, UpdatesAvailable, Verifier,
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

    let secret = std::env::var("AGENTSYNC_WEBHOOK_SECRET").map_err(|_| {
        "set AGENTSYNC_WEBHOOK_SECRET to the endpoint's signing secret (whsec_..., from the AgentSync portal)"
    })?;
    let verifier = Verifier::new(&secret)?;
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port:?} is not a port number"))?,
        Err(_) => 3000,
    };

    // The sender wants a 2xx within 5 seconds: handlers only enqueue, this task does the work.
    let (pulls, queue) = mpsc::channel(64);
    actix_web::rt::spawn(pull_producersync_updates(queue));

    let server = HttpServer::new(move || {
        App::new().app_data(web::Data::new(pulls.clone())).service(
            web::scope("/webhooks")
                // Verifies every delivery before the handlers run; refusals never reach them.
                .wrap(WebhookMiddleware::new(verifier.clone()))
                .route("/psapi", web::post().to(psapi))
                .route("/contracting", web::post().to(contracting)),
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
         --secret \"$AGENTSYNC_WEBHOOK_SECRET\" --event producersync.updates_available"
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
