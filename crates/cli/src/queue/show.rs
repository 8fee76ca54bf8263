//! `queue show ID` (and `dlq show ID`): everything kept of one delivery.

use std::time::Duration;

use agentsync_webhooks_core::handoff::now_ms;
use agentsync_webhooks_queue::record::{
    AttemptOutcome, DeliveryRecord, DeliveryState, HistoryEntry, HistoryEvent,
};

use super::{
    Format,
    act::Scope,
    target::{QueueArgs, open, store_failure},
    text::{
        body_json, human_duration, one_line, pretty_json, printable, rfc3339_json, rfc3339_ms,
        short_signature,
    },
};
use crate::{failure::Failure, output::out};

/// Shows the delivery `id`; in the dead letters' scope, only a dead one.
pub async fn run(
    queue_args: &QueueArgs,
    id: &str,
    format: Format,
    scope: Scope,
) -> Result<(), Failure> {
    let (queue, queue_url) = open(queue_args).await?;
    let record = queue
        .delivery(id)
        .await
        .map_err(|e| store_failure("reading the delivery", &queue_url, &e))?;
    let record = match (record, scope) {
        (Some(record), Scope::Queue) => record,
        (Some(record), Scope::DeadLetters) if record.state == DeliveryState::Dead => record,
        (Some(record), Scope::DeadLetters) => {
            return Err(Failure::failed(format!(
                "{id} is not in the dead letters of {queue_url}: it is {} \
                 (`agentsync-webhooks queue show {id}` shows it)",
                record.state
            )));
        }
        (None, Scope::DeadLetters) => {
            return Err(Failure::failed(format!(
                "{id} is not in the dead letters of {queue_url} (`agentsync-webhooks dlq list` \
                 lists them)"
            )));
        }
        (None, Scope::Queue) => {
            return Err(Failure::failed(format!(
                "{id} is not in {queue_url}: no delivery with this webhook-id is on record \
                 (`agentsync-webhooks queue list --id-prefix PREFIX` searches)"
            )));
        }
    };
    match format {
        Format::Json => out!("{}", record_json(&record)),
        Format::Text => print_text(&record)?,
    }
    Ok(())
}

/// The readable form: fields, headers, last error, body, then the history (last, where a
/// terminal leaves it in view).
fn print_text(record: &DeliveryRecord) -> Result<(), crate::output::StdoutClosed> {
    let delivery = &record.delivery;
    let now = now_ms();
    out!(
        "webhook-id         {}",
        one_line(&delivery.webhook_id, usize::MAX)
    );
    out!(
        "type               {}",
        one_line(&delivery.event_type, usize::MAX)
    );
    out!("state              {}", record.state);
    out!("attempts           {}", record.attempts);
    out!("received at        {}", rfc3339_ms(delivery.received_at_ms));
    if let Some(time) = record.event_time() {
        let (delay, ahead) = if time.delay_ms < 0 {
            (
                format!("-{}", human_duration(ms_duration(-time.delay_ms))),
                ": the sender's clock is ahead",
            )
        } else {
            (human_duration(ms_duration(time.delay_ms)), "")
        };
        let source = if time.stand_in {
            ", no timestamp in the envelope: the webhook-timestamp stands in"
        } else {
            ""
        };
        out!(
            "occurred at        {} (delay {delay}{ahead}{source})",
            rfc3339_ms(time.occurred_at_ms)
        );
    }
    if let Some(at) = record.next_run_at_ms {
        let when = if at > now {
            format!(" (in {})", human_duration(ms_duration(at - now)))
        } else {
            " (due now)".to_owned()
        };
        out!("next run at        {}{when}", rfc3339_ms(at));
    }
    if let Some(at) = record.done_at_ms {
        out!("done at            {}", rfc3339_ms(at));
    }
    if let Some(at) = record.died_at_ms {
        out!("died at            {}", rfc3339_ms(at));
    }
    let worker = record
        .worker
        .as_ref()
        .filter(|_| record.state == DeliveryState::Running);
    if let Some(worker) = worker {
        out!("worker             {}", one_line(worker, usize::MAX));
    }
    let signed_at = chrono::DateTime::from_timestamp(delivery.webhook_timestamp, 0)
        .map(|at| {
            format!(
                " ({})",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    out!(
        "webhook-timestamp  {}{signed_at}",
        delivery.webhook_timestamp
    );
    out!(
        "webhook-signature  {} (shortened)",
        short_signature(&delivery.signature)
    );
    if let Some(error) = &record.last_error {
        out!("last error");
        for line in printable(error).lines() {
            out!("  {line}");
        }
    }
    let (kind, text) = match pretty_json(&delivery.body) {
        Some(pretty) => ("JSON", pretty),
        None => ("not JSON, shown as text", {
            printable(&String::from_utf8_lossy(&delivery.body))
        }),
    };
    out!("body ({} bytes, {kind})", delivery.body.len());
    out!("{text}");
    let entries = record.history.len();
    out!(
        "history ({entries} {}, oldest first)",
        if entries == 1 { "entry" } else { "entries" }
    );
    for (index, entry) in record.history.iter().enumerate() {
        out!("  {}", entry_line(entry));
        if let HistoryEvent::Attempt {
            error: Some(error), ..
        } = &entry.event
        {
            for line in printable(error).lines() {
                out!("      {line}");
            }
        }
        if index == 0 && record.history_dropped > 0 {
            out!(
                "  ... {} entries not kept (the first and the latest are) ...",
                record.history_dropped
            );
        }
    }
    Ok(())
}

/// One history entry on one line (an attempt's error follows it, indented).
fn entry_line(entry: &HistoryEntry) -> String {
    let at = rfc3339_ms(entry.at_ms);
    match &entry.event {
        HistoryEvent::Attempt {
            number,
            duration_ms,
            outcome,
            worker,
            ..
        } => format!(
            "{at}  attempt {number:<3} {:<17} {:>9}  worker {}",
            outcome_text(*outcome),
            human_duration(Duration::from_millis(*duration_ms)),
            one_line(worker, usize::MAX)
        ),
        HistoryEvent::Replayed { by } => format!("{at}  replayed by {}", one_line(by, 256)),
        HistoryEvent::Resent => {
            format!("{at}  resent by the sender while dead: stored again, to run")
        }
        HistoryEvent::Discarded { by } => format!(
            "{at}  discarded by {}: moved to the dead letters",
            one_line(by, 256)
        ),
        HistoryEvent::Forgotten { by } => format!(
            "{at}  id forgotten by {}: the sender's next resend is processed as new",
            one_line(by, 256)
        ),
    }
}

/// An attempt's outcome as an operator reads it.
fn outcome_text(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Ok => "ok",
        AttemptOutcome::Retry => "failed, retried",
        AttemptOutcome::Dead => "failed, dead",
        AttemptOutcome::Released => "released (shutdown)",
        AttemptOutcome::LeaseExpired => "lease expired",
        AttemptOutcome::Stale => "stale, not run (a newer event of its key was done)",
    }
}

/// A positive span of ms as a duration.
fn ms_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// `show --format json`: one object.
fn record_json(record: &DeliveryRecord) -> serde_json::Value {
    let delivery = &record.delivery;
    let (body, body_is_json) = body_json(&delivery.body);
    let history: Vec<serde_json::Value> = record.history.iter().map(entry_json).collect();
    let time = record.event_time();
    serde_json::json!({
        "webhook_id": delivery.webhook_id,
        "type": delivery.event_type,
        "state": record.state.as_str(),
        "attempts": record.attempts,
        "last_error": record.last_error,
        "received_at": rfc3339_ms(delivery.received_at_ms),
        "received_at_ms": delivery.received_at_ms,
        "occurred_at": rfc3339_json(time.map(|t| t.occurred_at_ms)),
        "occurred_at_ms": time.map(|t| t.occurred_at_ms),
        "occurred_at_stand_in": time.map(|t| t.stand_in),
        "delay_ms": time.map(|t| t.delay_ms),
        "next_run_at": rfc3339_json(record.next_run_at_ms),
        "done_at": rfc3339_json(record.done_at_ms),
        "died_at": rfc3339_json(record.died_at_ms),
        "died_at_ms": record.died_at_ms,
        // The worker that holds it: a running delivery's (the history names every attempt's).
        "worker": record.worker.as_ref().filter(|_| record.state == DeliveryState::Running),
        "webhook_timestamp": delivery.webhook_timestamp,
        "webhook_signature": short_signature(&delivery.signature),
        "body_bytes": delivery.body.len(),
        "body_is_json": body_is_json,
        "body": body,
        "history": history,
        "history_dropped": record.history_dropped,
    })
}

/// One history entry in `show --format json`.
fn entry_json(entry: &HistoryEntry) -> serde_json::Value {
    let mut object = serde_json::json!({
        "at": rfc3339_ms(entry.at_ms),
        "at_ms": entry.at_ms,
        "event": entry.event.kind(),
    });
    let extra = match &entry.event {
        HistoryEvent::Attempt {
            number,
            duration_ms,
            outcome,
            error,
            worker,
        } => serde_json::json!({
            "number": number,
            "duration_ms": duration_ms,
            "outcome": outcome.as_str(),
            "error": error,
            "worker": worker,
        }),
        HistoryEvent::Replayed { by }
        | HistoryEvent::Discarded { by }
        | HistoryEvent::Forgotten { by } => serde_json::json!({ "by": by }),
        HistoryEvent::Resent => serde_json::json!({}),
    };
    if let (Some(object), serde_json::Value::Object(extra)) = (object.as_object_mut(), extra) {
        object.extend(extra);
    }
    object
}
