//! `queue stats`: deliveries by state and by type, and the age of the oldest waiting one.

use agentsync_webhooks_queue::record::{DeliveryFilter, DeliveryState};

use super::{
    Format,
    target::{QueueArgs, open, store_failure},
    text::{human_duration, one_line, what},
};
use crate::{failure::Failure, output::out};

/// Prints the counts of what `filter` keeps (every state), and the queue's oldest waiting age.
pub async fn run(
    queue_args: &QueueArgs,
    filter: &DeliveryFilter,
    format: Format,
) -> Result<(), Failure> {
    let (queue, queue_url) = open(queue_args).await?;
    let counts = queue
        .counts(filter)
        .await
        .map_err(|e| store_failure("counting the deliveries", &queue_url, &e))?;
    let stats = queue
        .stats()
        .await
        .map_err(|e| store_failure("reading the queue's depth", &queue_url, &e))?;
    let mut by_type: Vec<(&String, &u64)> = counts.by_type.iter().collect();
    by_type.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    match format {
        Format::Json => {
            let by_state: serde_json::Map<String, serde_json::Value> = DeliveryState::ALL
                .into_iter()
                .map(|state| (state.as_str().to_owned(), counts.state(state).into()))
                .collect();
            let by_type: serde_json::Map<String, serde_json::Value> = by_type
                .iter()
                .map(|(name, n)| ((*name).clone(), (**n).into()))
                .collect();
            let oldest_ms = stats
                .oldest_age
                .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
            out!(
                "{}",
                serde_json::json!({
                    "total": counts.total(),
                    "by_state": by_state,
                    "by_type": by_type,
                    "queued": stats.depth,
                    "oldest_waiting_age_ms": oldest_ms,
                })
            );
        }
        Format::Text => {
            let total = counts.total();
            out!("{total} {} in {queue_url}", what(filter, total));
            let width = DeliveryState::ALL
                .into_iter()
                .map(|state| counts.state(state).to_string().len())
                .chain([total.to_string().len()])
                .max()
                .unwrap_or(1);
            for state in DeliveryState::ALL {
                out!("  {:9} {:>width$}", state.as_str(), counts.state(state));
            }
            out!("by type");
            if by_type.is_empty() {
                out!("  none");
            }
            let type_width = by_type
                .iter()
                .map(|(name, _)| one_line(name, usize::MAX).chars().count())
                .max()
                .unwrap_or(0);
            for (name, n) in &by_type {
                out!("  {:type_width$}  {n:>width$}", one_line(name, usize::MAX));
            }
            match stats.oldest_age {
                Some(age) => out!(
                    "oldest waiting: {} old ({} waiting or running now)",
                    human_duration(age),
                    stats.depth
                ),
                None => out!("oldest waiting: none (nothing is waiting or running)"),
            }
        }
    }
    Ok(())
}
