//! `send`: sign and deliver like AgentSync's Standard Webhooks sender, one event with retries
//! and a per-attempt log, or many at once as a load generator.

mod args;
mod attempt;
mod load;
mod payload;
mod schedule;

use std::time::Duration;

use agentsync_webhooks_core::{Clock as _, SystemClock, new_message_id};
use axum::body::Bytes;

pub use self::{args::SendArgs, attempt::status_text};
use self::{
    attempt::{Outcome, STATUS_WIDTH, Sender},
    payload::Payload,
    schedule::{Schedule, human_delay, jittered},
};
use crate::{failure::Failure, keys, output::out};

/// The most deliveries one `--count` run sends (latencies are kept for exact percentiles).
pub const MAX_COUNT: u64 = 1_000_000;
/// How long the sender waits for an answer, like AgentSync's: then the attempt has failed.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `send`: one delivery (per type) with retries, or with `--count` a load run.
pub async fn run(args: SendArgs) -> Result<(), Failure> {
    let signer = keys::signer(&args.secret)?;
    let payloads = Payload::from_args(&args)?;
    let connections = args.count.map_or(1, |_| args.concurrency);
    let sender = Sender::new(args.url.clone(), signer, args.headers.clone(), connections)?;
    let Some(count) = args.count else {
        let schedule = args.schedule.unwrap_or_else(Schedule::quick);
        let mut failed = 0;
        for (index, payload) in payloads.iter().enumerate() {
            if index > 0 {
                out!();
            }
            let id = args.id.clone().unwrap_or_else(new_message_id);
            let body = payload.body(&id, SystemClock.now_unix_secs());
            out!("POST {}", sender.url());
            out!("  event       {}", payload.describe());
            out!("  webhook-id  {id}");
            out!("  schedule    {}", schedule.describe());
            let mut delivered = deliver(&sender, &id, &body, &schedule).await?;
            if args.duplicate {
                // What a replay from the portal looks like: the same message again.
                out!();
                out!("The same message again (same webhook-id and body), as a duplicate:");
                delivered &= deliver(&sender, &id, &body, &schedule).await?;
            }
            if !delivered {
                failed += 1;
            }
        }
        return match (failed, payloads.len(), schedule.attempts()) {
            (0, _, _) => Ok(()),
            (_, 1, 1) => Err(Failure::failed(
                "not delivered: the only attempt failed (the schedule has no retries)",
            )),
            (_, 1, attempts) => Err(Failure::failed(format!(
                "not delivered: all {attempts} attempts failed"
            ))),
            (failed, total, _) => Err(Failure::failed(format!(
                "{failed} of {total} events not delivered"
            ))),
        };
    };
    let plan = load::Plan {
        count,
        concurrency: args.concurrency,
        // One id for every delivery: what a retry, a replay or a duplicate looks like.
        shared_id: (args.duplicate || args.id.is_some())
            .then(|| args.id.unwrap_or_else(new_message_id)),
        schedule: args.schedule.unwrap_or_else(Schedule::none),
    };
    load::run(sender, payloads, plan).await
}

/// One delivery as the real sender makes it: the same id and body on every attempt, a fresh
/// timestamp and signature each time, retried on a non-2xx answer, a timeout or a lost (or
/// refused) connection. `Ok(false)` when every attempt failed; an error when nothing ever
/// answered (no receiver running) or stdout closed.
async fn deliver(
    sender: &Sender,
    id: &str,
    body: &Bytes,
    schedule: &Schedule,
) -> Result<bool, Failure> {
    out!();
    out!(
        "  {:>2}  {:<19}  {:<9}  {:<STATUS_WIDTH$}  {:>8}  response",
        "#",
        "attempted at (UTC)",
        "result",
        "status",
        "duration"
    );
    let attempts = schedule.attempts();
    let mut answered = false;
    let mut unreachable = None;
    for (index, delay) in schedule.delays().iter().enumerate() {
        if !delay.is_zero() {
            let wait = jittered(*delay);
            out!("      next attempt in {}", human_delay(wait));
            tokio::time::sleep(wait).await;
        }
        let attempt = sender.attempt(id, body).await;
        out!("  {:>2}  {}", index + 1, attempt.log_line());
        if attempt.outcome.is_success() {
            out!();
            out!("Delivered on attempt {} of {attempts}.", index + 1);
            return Ok(true);
        }
        match attempt.outcome {
            Outcome::Unreachable(reason) => unreachable = Some(reason),
            _ => answered = true,
        }
    }
    if let (false, Some(reason)) = (answered, unreachable) {
        let tries = if attempts == 1 {
            String::new()
        } else {
            format!(" (all {attempts} attempts)")
        };
        return Err(Failure::failed(format!(
            "cannot reach {}: {reason}{tries}. Is the receiver running? Start one with \
             `agentsync-webhooks listen`.",
            sender.url()
        )));
    }
    Ok(false)
}
