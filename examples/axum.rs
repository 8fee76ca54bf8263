//! A complete AgentSync webhook receiver on axum, as the AgentSync docs recommend: verify, answer
//! within the sender's 5 seconds, and do the work in the background without losing anything.
//!
//! ```sh
//! export AGENTSYNC_WEBHOOK_SECRET=whsec_...   # the endpoint's signing secret
//! PORT=3000 cargo run --example axum
//! # in another terminal, with the same variable set: the same event twice (a sender's retry)
//! cargo run -p agentsync-webhooks-cli -- send --url http://127.0.0.1:3000/webhooks/psapi \
//!     --event producersync.updates_available --duplicate
//! ```
//!
//! Listens on 127.0.0.1:$PORT (default 3000) for `POST /webhooks/psapi` (ProducerSync) and
//! `POST /webhooks/contracting` (Contracting). Every verified delivery is written to the queue
//! (the durable handoff) and only then answered `202`; a retry of a delivery already stored gets
//! an empty `200`; a queue that cannot be written gets `503` with `Retry-After`, so the sender
//! tries again. Workers in this process (and in any `cargo run --example worker` sharing the
//! queue) run the routed handlers, with retries and dead letters
//! (`cargo run -p agentsync-webhooks-cli -- dlq list`).
//!
//! Each path has its own signing secret, as the portal gives each endpoint its own:
//! `AGENTSYNC_PSAPI_SECRET` for `/webhooks/psapi`, `AGENTSYNC_CONTRACTING_SECRET` for
//! `/webhooks/contracting`, each falling back to `AGENTSYNC_WEBHOOK_SECRET`; a delivery signed
//! for one path is refused (`401`) on the other. `GET /healthz` answers `200` while the queue's
//! engine answers (with what its persistence check found), `503` with the reason when not.
//! A start-up failure prints one line with the cause and the fix, and exits 1.
//!
//! Settings, from the environment:
//!
//! - `AGENTSYNC_QUEUE_URL`: unset or empty for the SQLite file `agentsync-webhooks-queue.sqlite3`
//!   in the working directory, `redis://...`, `redis+cluster://...` or `postgres://...` to share
//!   the work between instances;
//! - `PULL_DELAY_MS` (default 200): how long the simulated ProducerSync pull takes;
//! - `WORKERS` (default 8): handlers at once in this process, `0` for none (workers elsewhere);
//! - `PORT` (default 3000) and `RUST_LOG` (default `info`);
//! - `AGENTSYNC_DASHBOARD_USER` and `AGENTSYNC_DASHBOARD_PASSWORD`: the operator's dashboard at
//!   `/admin/webhooks/`, behind basic auth with these credentials (checked by this app's own
//!   middleware, the way a host puts its auth in front); unset, the dashboard is not mounted.
//!
//! `producersync.npn.activated` and `producersync.npn.deactivated` are keyed by NPN (the
//! router's default): one producer's events run one at a time, in occurred-at order; their
//! handlers log `npn activated` / `npn deactivated` with `webhook_id` and `npn`.
//!
//! Logs `webhook received` with `webhook_id` when the 2xx is decided, and `webhook processed`
//! with `webhook_id` when a handler completed. `GET /metrics` serves the library's counters
//! (`agentsync_webhooks_deliveries_total{outcome}`, ...) as Prometheus text.
//!
//! ```sh
//! curl -s http://127.0.0.1:3000/metrics | grep agentsync_webhooks_deliveries_total
//! ```
//!
//! The dashboard (every delivery, its attempts and errors; replay, discard, forget):
//!
//! ```sh
//! AGENTSYNC_DASHBOARD_USER=ops AGENTSYNC_DASHBOARD_PASSWORD='a long password' cargo run --example axum
//! # then open http://127.0.0.1:3000/admin/webhooks/ and log in as ops
//! ```

use std::{
    error::Error, future::Future, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration,
};

use agentsync_webhooks::{
    EventData, EventGroup, EventType, NpnActivated, NpnDeactivated, UpdatesAvailable, Verifier,
    axum::{Webhook, WebhookLayer},
    dashboard::{Dashboard, engine_name},
    queue::{Queue, QueueUrl, Workers},
    route::{Event, EventRouter, HandlerError},
};
use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::{net::TcpListener, sync::watch};
use tracing::info;

/// How long a client may take to send its request headers (the layer bounds the body).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

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
    // Each path's signing secret (whsec_..., from the portal); when one is missing or
    // malformed, the error says what to set.
    let psapi = path_verifier("AGENTSYNC_PSAPI_SECRET")?;
    let contract = path_verifier("AGENTSYNC_CONTRACTING_SECRET")?;
    let port = u16::try_from(env_number("PORT", 3000)?)?;
    let pull_delay = Duration::from_millis(env_number("PULL_DELAY_MS", 200)?);
    let workers = usize::try_from(env_number("WORKERS", 8)?)?;
    let queue_url = std::env::var("AGENTSYNC_QUEUE_URL").unwrap_or_default();
    let queue = Queue::from_url(&queue_url).await?;
    // The library counts through the `metrics` facade (feature `metrics`); this recorder keeps
    // the figures for `GET /metrics`.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

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
    let (stop, stopped) = watch::channel(false);
    let background = (workers > 0).then(|| {
        let workers = Workers::new(queue.clone(), router).concurrency(workers);
        tokio::spawn(workers.run_until(until(stopped.clone())))
    });

    // Verifies every delivery, stores it, and only then lets the handler answer 202; refusals,
    // duplicates and an unwritable queue are answered by the layer.
    // A layer per path, each with its own verifier.
    let health = queue.clone();
    let mut app = Router::new()
        .route("/webhooks/psapi", post(received))
        .route_layer(WebhookLayer::new(psapi).with_handoff(queue.clone()))
        .merge(
            Router::new()
                .route("/webhooks/contracting", post(received))
                .route_layer(WebhookLayer::new(contract).with_handoff(queue.clone())),
        )
        // After `route_layer`, so outside the webhook layers.
        .route("/healthz", get(move || healthz(health.clone())))
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        );
    // The operator's dashboard, behind this app's own auth: the layer applies to the nested
    // router's routes only, and the page names the engine, never the queue's URL.
    let login = dashboard_login()?;
    if let Some(login) = &login {
        let dashboard =
            Dashboard::new(queue.clone()).engine(engine_name(&QueueUrl::parse(&queue_url)?));
        let admin = Router::new()
            .nest_service("/admin/webhooks", dashboard)
            .layer(middleware::from_fn_with_state(login.clone(), require_login));
        app = app.merge(admin);
    }

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}: POST /webhooks/psapi and /webhooks/contracting");
    println!("send a signed test event (with the same secret in AGENTSYNC_WEBHOOK_SECRET):");
    println!(
        "  cargo run -p agentsync-webhooks-cli -- send --url http://{addr}/webhooks/psapi \\
         --event producersync.updates_available --duplicate"
    );
    match &login {
        Some(_) => println!("dashboard: http://{addr}/admin/webhooks/ (basic auth)"),
        None => println!(
            "dashboard: set AGENTSYNC_DASHBOARD_USER and AGENTSYNC_DASHBOARD_PASSWORD to mount it"
        ),
    }
    serve(listener, app, until(stopped)).await?;
    let _ = stop.send(true);
    if let Some(background) = background {
        background.await?;
    }
    Ok(())
}

/// `GET /healthz`: 200 while the queue's engine answers (its warnings listed), 503 with the
/// reason when not, for load balancers and Kubernetes probes.
async fn healthz(queue: Queue) -> Response {
    match queue.health().await {
        Ok(health) => axum::Json(serde_json::json!({
            "status": "ok", "engine": health.engine, "warnings": health.warnings,
        }))
        .into_response(),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "reason": err.to_string() })),
        )
            .into_response(),
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
async fn received(event: Webhook) -> StatusCode {
    info!(
        webhook_id = event.webhook_id(),
        event_type = %event.event_type,
        bytes = event.raw_body().len(),
        "webhook received"
    );
    StatusCode::ACCEPTED
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

/// The `Authorization` header the dashboard asks for, from `AGENTSYNC_DASHBOARD_USER` and
/// `AGENTSYNC_DASHBOARD_PASSWORD`; `None` when they are unset.
fn dashboard_login() -> Result<Option<Arc<str>>, String> {
    let user = std::env::var("AGENTSYNC_DASHBOARD_USER").unwrap_or_default();
    let password = std::env::var("AGENTSYNC_DASHBOARD_PASSWORD").unwrap_or_default();
    match (user.is_empty(), password.is_empty()) {
        (true, true) => Ok(None),
        (false, false) if !user.contains(':') => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Ok(Some(format!("Basic {encoded}").into()))
        }
        _ => Err("set AGENTSYNC_DASHBOARD_USER (without ':') and AGENTSYNC_DASHBOARD_PASSWORD, or neither".into()),
    }
}

/// The host's auth in front of the dashboard: basic auth, compared in constant time.
async fn require_login(State(expected): State<Arc<str>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map_or(&[][..], |value| value.as_bytes());
    let expected = expected.as_bytes();
    let differ = given.len() != expected.len()
        || given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0;
    if differ {
        let challenge = [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"webhooks dashboard\"",
        )];
        return (StatusCode::UNAUTHORIZED, challenge).into_response();
    }
    next.run(request).await
}

/// Serves `app` until `shutdown`, with hyper's header-read timeout set (`axum::serve` has no
/// setting for it).
async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let (http, service) = (http.clone(), TowerToHyperService::new(app.clone()));
        tokio::spawn(async move {
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Resolves on Ctrl-C (the first caller waits for the signal, the others for the first).
async fn until(mut stopped: watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("Ctrl-C: stopping"),
        _ = stopped.wait_for(|stopped| *stopped) => {}
    }
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
