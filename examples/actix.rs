//! A complete AgentSync webhook receiver on actix-web, as the AgentSync docs recommend: verify,
//! answer within the sender's 5 seconds, and do the work in the background without losing
//! anything.
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
//! `POST /webhooks/contracting` (Contracting). Every verified delivery is written to the queue
//! (the durable handoff) and only then answered `202`; a retry of a delivery already stored gets
//! an empty `200`; a queue that cannot be written gets `503` with `Retry-After`. Workers in this
//! process (and in any `cargo run --example worker` sharing the queue) run the routed handlers,
//! with retries and dead letters (`cargo run -p agentsync-webhooks-cli -- dlq list`).
//!
//! Each path has its own signing secret, as the portal gives each endpoint its own:
//! `AGENTSYNC_PSAPI_SECRET` for `/webhooks/psapi`, `AGENTSYNC_CONTRACTING_SECRET` for
//! `/webhooks/contracting`, each falling back to `AGENTSYNC_WEBHOOK_SECRET`; a delivery signed
//! for one path is refused (`401`) on the other. `GET /healthz` answers `200` while the queue's
//! engine answers (with what its persistence check found), `503` with the reason when not.
//! A start-up failure prints one line with the cause and the fix, and exits 1.
//!
//! Settings, from the environment: `AGENTSYNC_QUEUE_URL` (unset: the SQLite file
//! `agentsync-webhooks-queue.sqlite3` in the working directory; `redis://...`,
//! `redis+cluster://...`, `postgres://...`, with the settings of `QueueUrl`),
//! `PULL_DELAY_MS` (default 200, the simulated ProducerSync pull), `WORKERS` (default 8, `0` for
//! none in this process), `PORT` (default 3000), `RUST_LOG` (default `info`).
//!
//! `producersync.npn.activated` and `producersync.npn.deactivated` are keyed by NPN (the
//! router's default): one producer's events run one at a time, in occurred-at order; their
//! handlers log `npn activated` / `npn deactivated` with `webhook_id` and `npn`.
//!
//! Logs `webhook received` with `webhook_id` when the 2xx is decided, and `webhook processed`
//! with `webhook_id` when a handler completed.

use std::{error::Error, process::ExitCode, time::Duration};

use actix_web::{App, HttpResponse, HttpServer, web};
use agentsync_webhooks::{
    EventData, EventGroup, EventType, NpnActivated, NpnDeactivated, UpdatesAvailable, Verifier,
    actix::{Webhook, WebhookMiddleware},
    queue::{Queue, Workers},
    route::{Event, EventRouter, HandlerError},
};
use tokio::sync::watch;
use tracing::info;

/// How long a client may take to send its request headers (the middleware bounds the body).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

#[actix_web::main]
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
    // Each path's signing secret (whsec_..., from the portal); when one is missing or
    // malformed, the error says what to set.
    let psapi = path_verifier("AGENTSYNC_PSAPI_SECRET")?;
    let contracting_verifier = path_verifier("AGENTSYNC_CONTRACTING_SECRET")?;
    let port = u16::try_from(env_number("PORT", 3000)?)?;
    let pull_delay = Duration::from_millis(env_number("PULL_DELAY_MS", 200)?);
    let workers = usize::try_from(env_number("WORKERS", 8)?)?;
    let queue = Queue::from_url(&std::env::var("AGENTSYNC_QUEUE_URL").unwrap_or_default()).await?;

    let router = EventRouter::new()
        .on(
            EventType::ProducerSyncUpdatesAvailable,
            move |event: Event<UpdatesAvailable>| pull_updates(event, pull_delay),
        )
        // Keyed by NPN by default: one producer's events run one at a time, in occurred-at order.
        .on(EventType::ProducerSyncNpnActivated, npn_activated)
        .on(EventType::ProducerSyncNpnDeactivated, npn_deactivated)
        .on_group(EventGroup::Contract, contracting)
        .on_unknown(log_unknown);
    let (stop, mut stopped) = watch::channel(false);
    let background = (workers > 0).then(|| {
        let workers = Workers::new(queue.clone(), router).concurrency(workers);
        tokio::spawn(workers.run_until(async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }))
    });

    // Verifies every delivery, stores it, and only then lets the handler answer 202; refusals,
    // duplicates and an unwritable queue are answered by the middleware.
    let psapi = WebhookMiddleware::new(psapi).with_handoff(queue.clone());
    let contract = WebhookMiddleware::new(contracting_verifier).with_handoff(queue.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(queue.clone()))
            .route("/healthz", web::get().to(healthz))
            .service(
                web::scope("/webhooks/psapi")
                    .wrap(psapi.clone())
                    .route("", web::post().to(received)),
            )
            .service(
                web::scope("/webhooks/contracting")
                    .wrap(contract.clone())
                    .route("", web::post().to(received)),
            )
    })
    .client_request_timeout(HEADER_READ_TIMEOUT)
    .bind(("127.0.0.1", port))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}: POST /webhooks/psapi and /webhooks/contracting");
        println!(
            "send a signed test event (with the same secret in AGENTSYNC_WEBHOOK_SECRET):\n  \
             cargo run -p agentsync-webhooks-cli -- send --url http://{addr}/webhooks/psapi \\\n   \
             --event producersync.updates_available --duplicate"
        );
    }
    // Runs until Ctrl-C or SIGTERM (actix's own signal handling), then stops the workers, which
    // give back the jobs they still hold.
    server.run().await?;
    let _ = stop.send(true);
    if let Some(background) = background {
        background.await?;
    }
    Ok(())
}

/// `GET /healthz`: 200 while the queue's engine answers (its warnings listed), 503 with the
/// reason when not, for load balancers and Kubernetes probes.
async fn healthz(queue: web::Data<Queue>) -> HttpResponse {
    match queue.health().await {
        Ok(health) => HttpResponse::Ok().json(serde_json::json!({
            "status": "ok",
            "engine": health.engine,
            "warnings": health.warnings,
        })),
        Err(err) => HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "status": "unavailable",
            "reason": err.to_string(),
        })),
    }
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

/// The handler: the delivery is verified and stored when it gets here, so it only answers.
async fn received(event: Webhook) -> HttpResponse {
    info!(
        webhook_id = event.webhook_id(),
        event_type = %event.event_type,
        bytes = event.raw_body().len(),
        "webhook received"
    );
    HttpResponse::Accepted().finish()
}

/// `producersync.updates_available`: pull every license changed since the run date (simulated
/// by a delay). An error is retried with backoff, then kept in the dead letters.
async fn pull_updates(event: Event<UpdatesAvailable>, delay: Duration) -> Result<(), HandlerError> {
    let updated_since = event.data.updated_since();
    info!(webhook_id = %event.webhook_id, %updated_since, "pulling ProducerSync updates");
    tokio::time::sleep(delay).await;
    Ok(())
}

/// `producersync.npn.activated`: the producer joined the monitored population.
async fn npn_activated(event: Event<NpnActivated>) -> Result<(), HandlerError> {
    info!(webhook_id = %event.webhook_id, npn = %event.data.npn, "npn activated");
    Ok(())
}

/// `producersync.npn.deactivated`: the producer left it.
async fn npn_deactivated(event: Event<NpnDeactivated>) -> Result<(), HandlerError> {
    info!(webhook_id = %event.webhook_id, npn = %event.data.npn, "npn deactivated");
    Ok(())
}

/// Every `contract.*` event, documented or not (their schemas are not published).
async fn contracting(event: Event<EventData>) -> Result<(), HandlerError> {
    info!(webhook_id = %event.webhook_id, event_type = %event.event_type, "contracting event");
    Ok(())
}

/// Types this version does not know: logged and acknowledged, never refused.
async fn log_unknown(event: Event<serde_json::Value>) -> Result<(), HandlerError> {
    info!(webhook_id = %event.webhook_id, event_type = %event.event_type, "unknown event type");
    Ok(())
}

/// A number from the environment, or `default` when the variable is unset.
fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name}={value:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}
