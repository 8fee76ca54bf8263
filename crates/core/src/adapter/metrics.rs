//! The port's metrics, through the `metrics` facade (feature `metrics`): names and labels are
//! stable, label values are bounded (no ids; unknown event types share `unknown`).

/// Every delivery the port answered, by outcome: `accepted`, `duplicate`, `in_flight`,
/// `processed` or `handler_failed` (inline router), or a refusal's code.
pub const DELIVERIES_TOTAL: &str = "agentsync_webhooks_deliveries_total";
/// How long the handler took to answer an accepted delivery, by `event_type` and `result`
/// (`ok` for a 2xx, `error` otherwise).
pub const HANDLER_DURATION_SECONDS: &str = "agentsync_webhooks_handler_duration_seconds";
/// Handlers that answered past the budget of the sender's 5 s, by `event_type`.
pub const LATE_ANSWERS_TOTAL: &str = "agentsync_webhooks_late_answers_total";

/// Counts one delivery with `outcome`. The usual outcomes use static keys: building a key with
/// a label costs an allocation per delivery, even with no recorder installed.
pub(crate) fn delivery(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    match outcome {
        "accepted" => metrics::counter!(DELIVERIES_TOTAL, "outcome" => "accepted").increment(1),
        "duplicate" => metrics::counter!(DELIVERIES_TOTAL, "outcome" => "duplicate").increment(1),
        "processed" => metrics::counter!(DELIVERIES_TOTAL, "outcome" => "processed").increment(1),
        other => metrics::counter!(DELIVERIES_TOTAL, "outcome" => other).increment(1),
    }
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// Records a handler's answer.
pub(crate) fn handler(event_type: &'static str, ok: bool, elapsed: std::time::Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(
        HANDLER_DURATION_SECONDS,
        "event_type" => event_type,
        "result" => if ok { "ok" } else { "error" },
    )
    .record(elapsed.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (event_type, ok, elapsed);
}

/// Counts one late answer.
pub(crate) fn late_answer(event_type: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(LATE_ANSWERS_TOTAL, "event_type" => event_type.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event_type;
}
