//! A complete AgentSync webhook receiver on warp, as the AgentSync docs recommend: verify,
//! answer within the sender's 5 seconds, and do the work in the background without losing
//! anything.
//!
//! ```sh
//! export AGENTSYNC_WEBHOOK_SECRET=whsec_...   # the endpoint's signing secret
//! PORT=3000 cargo run --example warp
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
//! `redis+cluster://...`, `postgres://...`),
//! `PULL_DELAY_MS` (default 200, the simulated ProducerSync pull), `WORKERS` (default 8, `0` for
//! none in this process), `PORT` (default 3000), `RUST_LOG` (default `info`).
//!
//! `producersync.npn.activated` and `producersync.npn.deactivated` are keyed by NPN (the
//! router's default): one producer's events run one at a time, in occurred-at order; their
//! handlers log `npn activated` / `npn deactivated` with `webhook_id` and `npn`.
//!
//! Logs `webhook received` with `webhook_id` when the 2xx is decided, and `webhook processed`
//! with `webhook_id` when a handler completed.
//!
//! With `AGENTSYNC_DASHBOARD_USER` and `AGENTSYNC_DASHBOARD_PASSWORD` set, the operator's
//! dashboard (every delivery, its attempts and errors; replay, discard, forget) is served at
//! `/admin/webhooks/`, behind basic auth with these credentials, checked by this app before the
//! request reaches the dashboard (the way a host puts its own auth in front). warp has no
//! `nest_service`: the dashboard is the same tower service axum mounts, and the server's
//! service sends it the requests under its prefix ([`Dashboard::mount_path`] names the prefix
//! for its links), warp's filters everything else.
//!
//! ```sh
//! AGENTSYNC_DASHBOARD_USER=ops AGENTSYNC_DASHBOARD_PASSWORD='a long password' cargo run --example warp
//! # open http://127.0.0.1:3000/admin/webhooks/
//! ```

use std::{
    convert::Infallible,
    error::Error,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    process::ExitCode,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use agentsync_webhooks::{
    EventData, EventGroup, EventType, NpnActivated, NpnDeactivated, Receiver, UpdatesAvailable,
    Verifier,
    dashboard::{Dashboard, engine_name},
    queue::{Queue, QueueUrl, Workers},
    route::{Event, EventRouter, HandlerError},
    warp::{Webhook, webhook_with},
};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::watch};
use tracing::info;
use warp::{Filter, http::StatusCode};

/// Where the operator's dashboard is served.
const DASHBOARD_PATH: &str = "/admin/webhooks";

/// How long a client may take to send its request headers (the filter bounds the body).
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
    // The operator's dashboard, behind this app's own auth; the page names the engine, never
    // the queue's URL.
    let login = dashboard_login()?;
    let dashboard = match &login {
        Some(login) => Some(Admin {
            login: Arc::clone(login),
            dashboard: Dashboard::new(queue.clone())
                .engine(engine_name(&QueueUrl::parse(&queue_url)?))
                .mount_path(DASHBOARD_PATH),
        }),
        None => None,
    };

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

    // Verifies every delivery and stores it before the handler answers 202; `recover` answers
    // refusals, duplicates and an unwritable queue, and other paths still get warp's 404 and 405.
    // A receiver per path, each with its own verifier.
    let psapi = warp::path!("webhooks" / "psapi").and(webhook_with(
        Receiver::new(psapi).with_handoff(queue.clone()),
    ));
    let contract = warp::path!("webhooks" / "contracting").and(webhook_with(
        Receiver::new(contract).with_handoff(queue.clone()),
    ));
    let health = warp::get()
        .and(warp::path!("healthz"))
        .then(move || healthz(queue.clone()));
    let routes = warp::post()
        .and(psapi.or(contract).unify())
        .then(|hook: Webhook| async move {
            info!(
                webhook_id = hook.webhook_id(),
                event_type = %hook.event_type,
                bytes = hook.raw_body().len(),
                "webhook received"
            );
            hook.respond(StatusCode::ACCEPTED).await
        })
        .or(health)
        .recover(agentsync_webhooks::warp::recover);

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}: POST /webhooks/psapi and /webhooks/contracting");
    println!("send a signed test event (with the same secret in AGENTSYNC_WEBHOOK_SECRET):");
    println!(
        "  cargo run -p agentsync-webhooks-cli -- send --url http://{addr}/webhooks/psapi \\
         --event producersync.updates_available --duplicate"
    );
    match &login {
        Some(_) => println!("dashboard: http://{addr}{DASHBOARD_PATH}/ (basic auth)"),
        None => println!(
            "dashboard: set AGENTSYNC_DASHBOARD_USER and AGENTSYNC_DASHBOARD_PASSWORD to mount it"
        ),
    }
    let app = App {
        warp: warp::service(routes),
        admin: dashboard.map(Arc::new),
    };
    serve(listener, app, until(stopped)).await?;
    let _ = stop.send(true);
    if let Some(background) = background {
        background.await?;
    }
    Ok(())
}

/// `GET /healthz`: 200 while the queue's engine answers (its warnings listed), 503 with the
/// reason when not, for load balancers and Kubernetes probes.
async fn healthz(queue: Queue) -> warp::reply::WithStatus<warp::reply::Json> {
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
    warp::reply::with_status(warp::reply::json(&body), status)
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

/// The dashboard and the credentials that open it.
struct Admin {
    /// The whole `Authorization` header expected.
    login: Arc<str>,
    dashboard: Dashboard,
}

/// The server's service: requests under [`DASHBOARD_PATH`] to the dashboard (once the login
/// is checked), every other one to warp's filters.
#[derive(Clone)]
struct App<W> {
    warp: W,
    admin: Option<Arc<Admin>>,
}

impl<W> tower::Service<http::Request<hyper::body::Incoming>> for App<W>
where
    W: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = warp::reply::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    W::Future: Send + 'static,
{
    type Response = warp::reply::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<warp::reply::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.warp.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let path = request.uri().path();
        let admin = self.admin.clone().filter(|_| {
            path.strip_prefix(DASHBOARD_PATH)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
        let Some(admin) = admin else {
            return Box::pin(self.warp.call(request));
        };
        Box::pin(async move {
            if !logged_in(request.headers(), &admin.login) {
                let mut refused = warp::reply::Response::new("a user and password, please".into());
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                refused.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Basic realm=\"webhooks dashboard\""),
                );
                return Ok(refused);
            }
            // The dashboard's page is whole in memory: warp's body type holds it as it is.
            let (parts, body) = admin.dashboard.handle(request).await.into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            Ok(http::Response::from_parts(parts, bytes.into()))
        })
    }
}

/// The `Authorization` header the dashboard asks for, from `AGENTSYNC_DASHBOARD_USER` and
/// `AGENTSYNC_DASHBOARD_PASSWORD`; `None` when they are unset.
fn dashboard_login() -> Result<Option<Arc<str>>, String> {
    let user = std::env::var("AGENTSYNC_DASHBOARD_USER").unwrap_or_default();
    let password = std::env::var("AGENTSYNC_DASHBOARD_PASSWORD").unwrap_or_default();
    match (user.is_empty(), password.is_empty()) {
        (true, true) => Ok(None),
        (false, false) if !user.contains(':') => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Ok(Some(format!("Basic {encoded}").into()))
        }
        _ => Err(
            "set AGENTSYNC_DASHBOARD_USER (without ':') and AGENTSYNC_DASHBOARD_PASSWORD, or neither"
                .into(),
        ),
    }
}

/// Whether `headers` carry the expected `Authorization`, compared in constant time.
fn logged_in(headers: &http::HeaderMap, expected: &str) -> bool {
    let given = headers
        .get(http::header::AUTHORIZATION)
        .map_or(&[][..], |value| value.as_bytes());
    let expected = expected.as_bytes();
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Serves `service` until `shutdown`, with hyper's header-read timeout set (`warp::serve` has
/// no setting for it).
async fn serve<S>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = warp::reply::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
{
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
        let (http, service) = (http.clone(), TowerToHyperService::new(service.clone()));
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
