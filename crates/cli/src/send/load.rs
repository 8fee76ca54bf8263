//! `send --count`: many deliveries at a fixed concurrency, then throughput, latency
//! percentiles and status counts.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use agentsync_webhooks_core::{Clock as _, SystemClock, new_message_id};
use axum::body::Bytes;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use super::{
    Payload, Schedule,
    attempt::{Attempt, Outcome, Sender, human_latency, status_text},
    schedule::jittered,
};
use crate::{
    failure::Failure,
    output::{out, write_text},
};

/// What a load run does.
#[derive(Debug)]
pub struct Plan {
    /// Deliveries to make.
    pub count: u64,
    /// Deliveries in flight at once.
    pub concurrency: u64,
    /// One webhook-id (and body) for every delivery, or a fresh one each.
    pub shared_id: Option<String>,
    /// Retries per delivery (`none` unless asked).
    pub schedule: Schedule,
}

/// Shared by the workers.
struct Run {
    sender: Sender,
    /// Taken in turn, one per delivery.
    payloads: Vec<Payload>,
    shared: Option<(String, Bytes)>,
    schedule: Schedule,
    count: u64,
    next: AtomicU64,
    delivered_any: AtomicBool,
    unreachable: Mutex<Option<String>>,
    abort: AtomicBool,
    progress: ProgressBar,
}

/// Sends `plan.count` deliveries with `plan.concurrency` workers and prints the summary.
pub async fn run(sender: Sender, payloads: Vec<Payload>, plan: Plan) -> Result<(), Failure> {
    let Some(first) = payloads.first() else {
        return Err(Failure::bad_input("nothing to send"));
    };
    let shared = plan.shared_id.as_ref().map(|id| {
        let body = first.body(id, SystemClock.now_unix_secs());
        (id.clone(), body)
    });
    let what = if payloads.len() == 1 || shared.is_some() {
        first.describe()
    } else {
        format!("{} types in turn", payloads.len())
    };
    out!(
        "Sending {} deliveries of {what} to {}",
        plan.count,
        sender.url()
    );
    let ids = match &shared {
        Some((id, _)) => format!("all with webhook-id {id}"),
        None => "each with a fresh webhook-id".to_owned(),
    };
    let retries = if plan.schedule.attempts() > 1 {
        format!("retries {}", plan.schedule.describe())
    } else {
        "no retries".to_owned()
    };
    out!(
        "  {} at a time, {ids}, {retries}",
        plan.concurrency.min(plan.count)
    );

    let progress = ProgressBar::new(plan.count).with_style(
        ProgressStyle::with_template("{elapsed_precise} {wide_bar} {pos}/{len} {rate} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
                let _ = w.write_str(&format!("{:>10}", format_rate(state.per_sec())));
            }),
    );
    let run = Arc::new(Run {
        sender,
        payloads,
        shared,
        schedule: plan.schedule.clone(),
        count: plan.count,
        next: AtomicU64::new(0),
        delivered_any: AtomicBool::new(false),
        unreachable: Mutex::new(None),
        abort: AtomicBool::new(false),
        progress: progress.clone(),
    });

    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency.min(plan.count) {
        workers.spawn(worker(Arc::clone(&run)));
    }
    let mut stats = Stats::default();
    while let Some(joined) = workers.join_next().await {
        let worker_stats =
            joined.map_err(|e| Failure::failed(format!("a sending task failed: {e}")))?;
        stats.merge(worker_stats);
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();

    let unreachable = run.unreachable.lock().ok().and_then(|mut r| r.take());
    if let Some(reason) = unreachable {
        return Err(Failure::failed(format!(
            "cannot reach {}: {reason}. Is the receiver running? \
             Start one with `agentsync-webhooks listen`.",
            run.sender.url()
        )));
    }
    write_text(&stats.summary(elapsed))?;
    if stats.failed > 0 {
        return Err(Failure::failed(format!(
            "{} of {} deliveries failed",
            stats.failed,
            stats.delivered + stats.failed
        )));
    }
    Ok(())
}

async fn worker(run: Arc<Run>) -> Stats {
    let mut stats = Stats::default();
    'deliveries: while !run.abort.load(Ordering::Relaxed) {
        let index = run.next.fetch_add(1, Ordering::Relaxed);
        if index >= run.count {
            break;
        }
        let (id, body) = match &run.shared {
            Some((id, body)) => (id.clone(), body.clone()),
            None => {
                let id = new_message_id();
                let turn = usize::try_from(index).unwrap_or(0) % run.payloads.len().max(1);
                let body = run
                    .payloads
                    .get(turn)
                    .map(|payload| payload.body(&id, SystemClock.now_unix_secs()))
                    .unwrap_or_default();
                (id, body)
            }
        };
        let mut delivered = false;
        let attempts = run.schedule.attempts();
        for (attempt_index, delay) in run.schedule.delays().iter().enumerate() {
            if !delay.is_zero() {
                tokio::time::sleep(jittered(*delay)).await;
            }
            let attempt = run.sender.attempt(&id, &body).await;
            stats.record(&attempt);
            if attempt.outcome.is_success() {
                delivered = true;
                run.delivered_any.store(true, Ordering::Relaxed);
                break;
            }
            // Nothing listening at all, even after this delivery's retries: stop rather than
            // fail every delivery.
            if let Outcome::Unreachable(reason) = &attempt.outcome
                && attempt_index + 1 == attempts
                && !run.delivered_any.load(Ordering::Relaxed)
            {
                run.abort.store(true, Ordering::Relaxed);
                if let Ok(mut slot) = run.unreachable.lock() {
                    slot.get_or_insert_with(|| reason.clone());
                }
                break 'deliveries;
            }
        }
        if delivered {
            stats.delivered += 1;
        } else {
            stats.failed += 1;
        }
        run.progress.inc(1);
    }
    stats
}

/// How attempts ended, for the status counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum OutcomeKind {
    Status(u16),
    TimedOut,
    Unreachable,
    Failed,
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => f.write_str(&status_text(*status)),
            Self::TimedOut => f.write_str("timeout"),
            Self::Unreachable => f.write_str("no connection"),
            Self::Failed => f.write_str("error"),
        }
    }
}

/// What the workers measured.
#[derive(Debug, Default)]
struct Stats {
    latencies: Vec<Duration>,
    outcomes: BTreeMap<OutcomeKind, u64>,
    delivered: u64,
    failed: u64,
}

impl Stats {
    fn record(&mut self, attempt: &Attempt) {
        self.latencies.push(attempt.latency);
        let kind = match &attempt.outcome {
            Outcome::Answered { status, .. } => OutcomeKind::Status(*status),
            Outcome::TimedOut => OutcomeKind::TimedOut,
            Outcome::Unreachable(_) => OutcomeKind::Unreachable,
            Outcome::Failed(_) => OutcomeKind::Failed,
        };
        *self.outcomes.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Stats) {
        self.latencies.extend(other.latencies);
        for (kind, n) in other.outcomes {
            *self.outcomes.entry(kind).or_default() += n;
        }
        self.delivered += other.delivered;
        self.failed += other.failed;
    }

    /// The closing report: throughput, latency percentiles, status counts, deliveries.
    fn summary(&mut self, elapsed: Duration) -> String {
        self.latencies.sort_unstable();
        let requests = self.latencies.len();
        let per_sec = requests as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
        let mut text = format!(
            "\n{requests} requests in {:.2} s: {per_sec:.0} requests/s\n",
            elapsed.as_secs_f64()
        );
        if requests > 0 {
            let pct = |q: f64| human_latency(percentile(&self.latencies, q));
            text.push_str(&format!(
                "latency   p50 {}   p90 {}   p99 {}   max {}\n",
                pct(0.50),
                pct(0.90),
                pct(0.99),
                pct(1.0)
            ));
        }
        let statuses: Vec<String> = self
            .outcomes
            .iter()
            .map(|(kind, n)| format!("{kind}: {n}"))
            .collect();
        text.push_str(&format!("statuses  {}\n", statuses.join(", ")));
        text.push_str(&format!(
            "delivered {} of {}\n",
            self.delivered,
            self.delivered + self.failed
        ));
        text
    }
}

/// `320/s`, `1.5/s`: the progress bar's rate, rounded.
fn format_rate(per_sec: f64) -> String {
    if per_sec >= 10.0 {
        format!("{per_sec:.0}/s")
    } else {
        format!("{per_sec:.1}/s")
    }
}

/// Nearest-rank percentile of sorted, non-empty `values`.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_rounded() {
        assert_eq!(format_rate(319.858080348152), "320/s");
        assert_eq!(format_rate(1.25), "1.2/s");
        assert_eq!(format_rate(0.0), "0.0/s");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&values[..1], 0.5), Duration::from_millis(1));
    }

    #[test]
    fn summary_counts_statuses() {
        let mut stats = Stats::default();
        for status in [200, 200, 401] {
            stats.record(&Attempt {
                at: std::time::SystemTime::UNIX_EPOCH,
                latency: Duration::from_millis(2),
                outcome: Outcome::Answered {
                    status,
                    body: Bytes::new(),
                },
            });
        }
        stats.delivered = 2;
        stats.failed = 1;
        let text = stats.summary(Duration::from_secs(1));
        assert!(
            text.contains("3 requests in 1.00 s: 3 requests/s"),
            "{text}"
        );
        assert!(
            text.contains("statuses  200 OK: 2, 401 Unauthorized: 1"),
            "{text}"
        );
        assert!(text.contains("delivered 2 of 3"), "{text}");
    }
}
