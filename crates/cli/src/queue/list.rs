//! `queue list` (and `dlq list`): one page of deliveries, newest first, then how many match and
//! where the next page starts.

use agentsync_webhooks_queue::record::{Cursor, DeliveryFilter, DeliverySummary};

use super::{
    Format, PageArgs,
    target::{QueueArgs, open, store_failure},
    text::{
        attempts_text, by_state, column_width, delay_text, matching, one_line, rfc3339_json,
        rfc3339_ms, what,
    },
};
use crate::{failure::Failure, output::out};

/// A last error in a list is cut to this many characters.
const LIST_ERROR_CHARS: usize = 120;

/// Lists one page of what `filter` keeps.
pub async fn run(
    queue_args: &QueueArgs,
    filter: &DeliveryFilter,
    page: &PageArgs,
) -> Result<(), Failure> {
    let (queue, queue_url) = open(queue_args).await?;
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let listed = queue
        .list(filter, page.after.as_ref(), limit)
        .await
        .map_err(|e| store_failure("listing the deliveries", &queue_url, &e))?;
    let counts = queue
        .counts(filter)
        .await
        .map_err(|e| store_failure("counting the deliveries", &queue_url, &e))?;
    let matching = matching(filter, &counts);
    let summary = if listed.deliveries.is_empty() {
        if page.after.is_some() {
            format!(
                "No more {} in {queue_url} after this cursor ({matching} in all).",
                what(filter, 0)
            )
        } else {
            format!(
                "No {} in {queue_url} (all states: {}).",
                what(filter, 0),
                by_state(&counts)
            )
        }
    } else {
        let shown = listed.deliveries.len();
        let from = if page.after.is_some() {
            ", after the cursor"
        } else {
            ""
        };
        format!(
            "{shown} of {matching} {} shown, newest first{from} (all states: {}).",
            what(filter, matching),
            by_state(&counts)
        )
    };
    let next = listed
        .next
        .as_ref()
        .map(|next| format!("next page: --after {next}"));
    match page.format {
        Format::Json => {
            for delivery in &listed.deliveries {
                out!("{}", summary_json(delivery));
            }
            // Stdout holds only the objects, for `jq`; each carries its own cursor.
            eprintln!("{summary}");
            if let Some(next) = next {
                eprintln!("{next}");
            }
        }
        Format::Text => {
            let rows = &listed.deliveries;
            let id_width = column_width(rows.iter().map(|d| &d.webhook_id));
            let type_width = column_width(rows.iter().map(|d| &d.event_type));
            for delivery in rows {
                let line = format!(
                    "{}  {:id_width$}  {:type_width$}  {:8}  {:>14}  {:>11}  {}",
                    rfc3339_ms(delivery.received_at_ms),
                    one_line(&delivery.webhook_id, usize::MAX),
                    one_line(&delivery.event_type, usize::MAX),
                    delivery.state.as_str(),
                    delay_text(delivery.delay()),
                    attempts_text(delivery.attempts),
                    one_line(
                        delivery.last_error.as_deref().unwrap_or_default(),
                        LIST_ERROR_CHARS
                    ),
                );
                out!("{}", line.trim_end());
            }
            out!("{summary}");
            if let Some(next) = next {
                out!("{next}");
            }
        }
    }
    Ok(())
}

/// One `list --format json` line.
fn summary_json(delivery: &DeliverySummary) -> serde_json::Value {
    serde_json::json!({
        "webhook_id": delivery.webhook_id,
        "type": delivery.event_type,
        "state": delivery.state.as_str(),
        "received_at": rfc3339_ms(delivery.received_at_ms),
        "received_at_ms": delivery.received_at_ms,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "next_run_at": rfc3339_json(delivery.next_run_at_ms),
        // When its event occurred and how late it arrived (ms, negative for a sender's clock
        // ahead); null when the record has no occurred-at for it.
        "occurred_at": rfc3339_json(delivery.occurred_at_ms),
        "occurred_at_ms": delivery.occurred_at_ms,
        "delay_ms": delivery.delay_ms(),
        "cursor": Cursor::after(delivery).to_string(),
    })
}
