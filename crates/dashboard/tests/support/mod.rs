//! The app the dashboard's HTTP and browser tests run against: the axum example's receiver
//! (`WebhookLayer::new(verifier).with_handoff(queue)`, answering 202 once stored) with workers
//! whose contract handler fails until told otherwise, and the dashboard mounted under
//! `/admin/webhooks` (and, read-only, under `/ro/webhooks`), served on 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use agentsync_webhooks_axum::WebhookLayer;
use agentsync_webhooks_core::{
    EventData, EventGroup, Signer, Verifier,
    route::{Event, EventRouter, HandlerError},
};
use agentsync_webhooks_dashboard::Dashboard;
use agentsync_webhooks_queue::{Backoff, Queue, Workers, record::DeliveryFilter};
use axum::{Router, http::StatusCode, routing::post};
use tokio::sync::watch;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How long a test waits for something before it fails (never an assertion on time).
pub const BOUND: Duration = Duration::from_secs(60);

/// The running app.
pub struct App {
    pub addr: SocketAddr,
    pub queue: Queue,
    /// While true, every contract handler fails (retryable), so contract deliveries die.
    pub failing: Arc<AtomicBool>,
    /// Contract handler runs.
    pub runs: Arc<AtomicU32>,
    signer: Signer,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl App {
    /// Starts the app on a free port of 127.0.0.1 on SQLite, dashboards refreshing every
    /// second.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::sqlite(dir.path().join("queue.sqlite3"))
            .await
            .unwrap();
        Self::start_on(queue, "SQLite", dir).await
    }

    /// The same app on `queue` (of the engine named `engine`); `dir` is kept while it runs.
    pub async fn start_on(queue: Queue, engine: &str, dir: tempfile::TempDir) -> Self {
        let failing = Arc::new(AtomicBool::new(true));
        let runs = Arc::new(AtomicU32::new(0));
        let router = {
            let (failing, runs) = (failing.clone(), runs.clone());
            EventRouter::new()
                .on_group(EventGroup::Contract, move |event: Event<EventData>| {
                    let (failing, runs) = (failing.clone(), runs.clone());
                    async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        if failing.load(Ordering::SeqCst) {
                            Err(HandlerError::retryable(format!(
                                "contract store unavailable (attempt {})",
                                event.attempt
                            )))
                        } else {
                            Ok(())
                        }
                    }
                })
                .on_group(EventGroup::ProducerSync, |_: Event<EventData>| async {
                    Ok::<(), HandlerError>(())
                })
                .on_unknown(|_: Event<serde_json::Value>| async { Ok::<(), HandlerError>(()) })
        };
        let (stop, stopped) = watch::channel(false);
        let workers = Workers::new(queue.clone(), router)
            .concurrency(4)
            .max_attempts(3)
            .backoff(Backoff::new(
                Duration::from_millis(20),
                2.0,
                Duration::from_millis(100),
            ))
            .poll_interval(Duration::from_millis(50));
        let mut until = stopped.clone();
        tokio::spawn(workers.run_until(async move {
            let _ = until.wait_for(|stopped| *stopped).await;
        }));

        let verifier = Verifier::new(SECRET).unwrap();
        let dashboard = Dashboard::new(queue.clone())
            .engine(engine)
            .refresh_every(Duration::from_secs(1));
        let app = Router::new()
            .route("/webhooks/psapi", post(|| async { StatusCode::ACCEPTED }))
            .route(
                "/webhooks/contracting",
                post(|| async { StatusCode::ACCEPTED }),
            )
            .route_layer(WebhookLayer::new(verifier).with_handoff(queue.clone()))
            .nest_service("/admin/webhooks", dashboard.clone())
            .nest_service("/ro/webhooks", dashboard.read_only(true));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut until = stopped;
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = until.wait_for(|stopped| *stopped).await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            queue,
            failing,
            runs,
            signer: Signer::new(SECRET).unwrap(),
            stop,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signs and POSTs `body` to `path` as the sender does; returns the webhook-id.
    pub async fn send(&self, path: &str, body: &str) -> String {
        let id = agentsync_webhooks_core::new_message_id();
        let now = agentsync_webhooks_core::handoff::now_ms() / 1000;
        let headers = self.signer.sign(&id, now, body.as_bytes());
        let mut request = reqwest::Client::new()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers.to_pairs() {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 202, "{path}: {body}");
        id
    }

    /// Waits until `check` holds of the record's counts.
    pub async fn wait_for_counts(
        &self,
        what: &str,
        check: impl Fn(&agentsync_webhooks_queue::record::DeliveryCounts) -> bool,
    ) {
        let start = Instant::now();
        loop {
            let counts = self.queue.counts(&DeliveryFilter::new()).await.unwrap();
            if check(&counts) {
                return;
            }
            assert!(start.elapsed() < BOUND, "{what}: {counts:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A queue of its own on the engine at `variable`'s URL (`REDIS_URL`, `POSTGRES_URL`), under a
/// fresh key prefix or table (its tables dropped when the [`Scratch`] is); `None` (skipped, with
/// a note) when the variable is unset.
pub async fn engine_queue(variable: &str, test: &str) -> Option<(Queue, Scratch)> {
    let Ok(url) = std::env::var(variable) else {
        eprintln!("skipped on {variable}: unset");
        return None;
    };
    let unique = format!(
        "{test}_{}_{}",
        std::process::id(),
        agentsync_webhooks_core::handoff::now_ms()
    );
    let separator = if url.contains('?') { '&' } else { '?' };
    let (queued, scratch) = if url.starts_with("postgres") {
        let table = format!("dash_{unique}");
        let scratch = Scratch::Postgres {
            url: url.clone(),
            table: table.clone(),
        };
        (format!("{url}{separator}table={table}"), scratch)
    } else {
        (
            format!("{url}{separator}prefix=dash-{unique}:"),
            Scratch::None,
        )
    };
    let queue = Queue::from_url(&queued)
        .await
        .unwrap_or_else(|e| panic!("{variable}: {e}"));
    Some((queue, scratch))
}

/// What a test's queue left on a shared engine, removed by [`Scratch::remove`].
pub enum Scratch {
    /// Nothing to remove (a Redis key prefix: the test Redis keeps nothing on disk).
    None,
    /// A PostgreSQL queue's tables.
    Postgres { url: String, table: String },
}

impl Scratch {
    /// Drops what the queue left.
    pub async fn remove(self) {
        if let Self::Postgres { url, table: t } = self {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {t}, {t}_history, {t}_schema, {t}_ordering_keys"
                ))
                .await
                .unwrap();
        }
    }
}

/// A contract event (its schema unpublished, so any data) whose data holds `note`.
pub fn contract_body(event_type: &str, note: &str) -> String {
    serde_json::json!({
        "id": format!("whe_{}", agentsync_webhooks_core::new_message_id()),
        "type": event_type,
        "data": { "contract_id": "ctr_42", "note": note },
    })
    .to_string()
}

/// The documented example body of `producersync.updates_available`.
pub fn updates_body() -> String {
    let example = Signer::new(SECRET)
        .unwrap()
        .example(agentsync_webhooks_core::EventType::ProducerSyncUpdatesAvailable);
    String::from_utf8(example.body).unwrap()
}
