//! AgentSync webhook workers in a process of their own: they take the deliveries a receiver
//! stored in the queue (the durable handoff) and run the routed, typed handlers, with retries,
//! dead letters and graceful shutdown.
//!
//! ```sh
//! # The SQLite file agentsync-webhooks-queue.sqlite3 in the working directory (the receiver
//! # must run in the same directory):
//! cargo run --example worker
//! # Redis Streams or PostgreSQL, shared with the receivers and any number of workers:
//! AGENTSYNC_QUEUE_URL=redis://127.0.0.1:6379 cargo run --example worker
//! AGENTSYNC_QUEUE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example worker
//! ```
//!
//! (The facade's dev-dependencies enable the `queue`, `queue-redis` and `queue-postgres`
//! features for the examples; in your own service, depend on `agentsync-webhooks` with
//! `features = ["queue"]`, plus `queue-redis` or `queue-postgres` for those engines, and on
//! `tower` with its `timeout` feature for the per-job timeout.)
//!
//! Settings, from the environment:
//!
//! - `AGENTSYNC_QUEUE_URL`: unset or empty for the SQLite file, `sqlite://PATH`, `redis://...`
//!   or `postgres://...`;
//! - `PULL_DELAY_MS` (default 200): how long the simulated ProducerSync pull takes;
//! - `WORKER_CONCURRENCY` (default 8): handlers at once;
//! - `RUST_LOG` (default `info`).
//!
//! Each completed handler logs `webhook processed` with its `webhook_id`. Ctrl-C or SIGTERM stops
//! the workers gracefully: no new jobs, running handlers get 30 s to finish, and the jobs of any
//! still running are given back to the queue for the next worker.

use std::{error::Error, time::Duration};

use agentsync_webhooks::{
    EventData, EventGroup, EventType, NpnActivated, UpdatesAvailable,
    queue::{Queue, Workers},
    route::{Event, EventRouter, HandlerError},
};
use tracing::info;

/// A pull stuck on a connection that never answers is stopped after this long and retried with
/// backoff, rather than holding its worker slot until a restart.
const JOB_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let url = std::env::var("AGENTSYNC_QUEUE_URL").unwrap_or_default();
    let pull_delay = Duration::from_millis(env_number("PULL_DELAY_MS", 200)?);
    let concurrency = usize::try_from(env_number("WORKER_CONCURRENCY", 8)?)?;

    // The queue the receivers write to; the error names the missing feature or the engine that
    // does not answer.
    let queue = Queue::from_url(&url).await?;
    // The scheme only: a URL may carry a password.
    let engine = url.split_once(':').map_or("sqlite", |(scheme, _)| scheme);
    info!(engine, "webhook workers connected to the queue");

    let router = EventRouter::new()
        .on(
            EventType::ProducerSyncUpdatesAvailable,
            move |event: Event<UpdatesAvailable>| pull_updates(event, pull_delay),
        )
        .on(EventType::ProducerSyncNpnActivated, start_monitoring)
        .on_group(EventGroup::Contract, contracting)
        .on_unknown(log_unknown);

    Workers::new(queue, router)
        // tower middleware around every job (here tower's `timeout` feature).
        .layer(tower::timeout::TimeoutLayer::new(JOB_TIMEOUT))
        .concurrency(concurrency)
        .run_until(shutdown_signal())
        .await;
    Ok(())
}

/// `producersync.updates_available`: pull every license changed since the run date (simulated
/// by a delay). An error here is retried with backoff; the worker extends the job's lease while
/// the pull runs, so a pull of several minutes is never taken over by another worker.
async fn pull_updates(event: Event<UpdatesAvailable>, delay: Duration) -> Result<(), HandlerError> {
    info!(
        webhook_id = %event.webhook_id,
        attempt = event.attempt,
        updated_since = %event.data.updated_since(),
        "pulling ProducerSync updates"
    );
    tokio::time::sleep(delay).await;
    Ok(())
}

/// `producersync.npn.activated`: start monitoring the producer. An empty NPN can never succeed,
/// so it goes to the dead letters at once instead of being retried.
async fn start_monitoring(event: Event<NpnActivated>) -> Result<(), HandlerError> {
    if event.data.npn.trim().is_empty() {
        return Err(HandlerError::permanent("the event names no NPN"));
    }
    info!(webhook_id = %event.webhook_id, npn = %event.data.npn, "monitoring producer");
    Ok(())
}

/// Every `contract.*` event, documented or not.
async fn contracting(event: Event<EventData>) -> Result<(), HandlerError> {
    info!(webhook_id = %event.webhook_id, event_type = %event.event_type, "contracting event");
    Ok(())
}

/// Types this version does not know: logged and acknowledged.
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

/// Ctrl-C, or SIGTERM (what `docker stop` and Kubernetes send) on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C: stopping the workers"),
        () = terminate => info!("SIGTERM: stopping the workers"),
    }
}
