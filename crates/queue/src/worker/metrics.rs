//! The workers' metrics, through the `metrics` facade (feature `metrics`); label values are
//! bounded.

use agentsync_webhooks_core::idempotency::StoreError;

use crate::QueueStats;

/// Deliveries waiting or running in the queue (a gauge, sampled by the workers).
pub const QUEUE_DEPTH: &str = "agentsync_webhooks_queue_depth";
/// Age of the oldest waiting or running delivery, in seconds (a gauge; 0 when empty).
pub const QUEUE_OLDEST_AGE_SECONDS: &str = "agentsync_webhooks_queue_oldest_age_seconds";
/// Deliveries these workers moved to the dead letters.
pub const DEAD_LETTERS_TOTAL: &str = "agentsync_webhooks_dead_letters_total";
/// Handler attempts by `result`: `ok`, `retry` or `dead`.
pub const ATTEMPTS_TOTAL: &str = "agentsync_webhooks_attempts_total";

/// Stale events the workers recorded without running them, by `event_type` (the core's
/// counter, shared with the inline router).
pub use agentsync_webhooks_core::adapter::metrics::STALE_EVENTS_TOTAL;

/// Counts one attempt's result; a `dead` one is a dead letter too.
pub(super) fn attempt(result: &'static str) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(ATTEMPTS_TOTAL, "result" => result).increment(1);
        if result == "dead" {
            metrics::counter!(DEAD_LETTERS_TOTAL).increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = result;
}

/// Publishes a sample of the queue's state.
pub(super) fn sampled(stats: Result<QueueStats, StoreError>) {
    match stats {
        Ok(stats) => {
            #[cfg(feature = "metrics")]
            {
                #[allow(clippy::cast_precision_loss)]
                metrics::gauge!(QUEUE_DEPTH).set(stats.depth as f64);
                let oldest = stats.oldest_age.map_or(0.0, |age| age.as_secs_f64());
                metrics::gauge!(QUEUE_OLDEST_AGE_SECONDS).set(oldest);
            }
            #[cfg(not(feature = "metrics"))]
            let _ = stats;
        }
        Err(err) => tracing::debug!(error = %err, "could not sample the queue's depth"),
    }
}
