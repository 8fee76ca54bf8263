//! `send`: sign and deliver like AgentSync's Standard Webhooks sender, one event with retries
//! and a per-attempt log, or many at once as a load generator.

mod attempt;
mod load;
mod schedule;

use std::time::Duration;

use agentsync_webhooks_core::{
    Clock as _, EventType, Signer, SystemClock, event::samples, new_message_id,
};
use axum::body::Bytes;

pub use self::schedule::Schedule;
use self::{
    attempt::{Outcome, Sender},
    schedule::{human_delay, jittered},
};
use crate::{
    cli::SendArgs,
    failure::{Failure, bad_secret},
    input::{check_message_id, read_file_or_stdin},
};

/// The most deliveries one `--count` run sends (latencies are kept for exact percentiles).
pub const MAX_COUNT: u64 = 1_000_000;
/// How long the sender waits for an answer, like AgentSync's: then the attempt has failed.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `send`: one delivery with retries, or with `--count` a load run.
pub async fn run(args: SendArgs) -> Result<(), Failure> {
    let signer = Signer::new(&args.secret).map_err(bad_secret)?;
    let url = parse_url(&args.url)?;
    if let Some(id) = &args.id {
        check_message_id(id)?;
    }
    let payload = Payload::from_args(&args)?;
    let sender = Sender::new(url, signer, args.count.map_or(1, |_| args.concurrency))?;
    match args.count {
        None => {
            let schedule = args.schedule.unwrap_or_else(Schedule::quick);
            let id = args.id.unwrap_or_else(new_message_id);
            let body = payload.body(&id, SystemClock.now_unix_secs());
            println!("POST {}", sender.url());
            println!("  event       {}", payload.describe());
            println!("  webhook-id  {id}");
            println!("  schedule    {}", schedule.describe());
            deliver(&sender, &id, &body, &schedule).await?;
            if args.duplicate {
                // What a replay from the portal looks like: the same message again.
                println!("\nThe same message again (same webhook-id and body), as a duplicate:");
                deliver(&sender, &id, &body, &schedule).await?;
            }
            Ok(())
        }
        Some(count) => {
            let plan = load::Plan {
                count,
                concurrency: args.concurrency,
                // One id for every delivery: what a retry, a replay or a duplicate looks like.
                shared_id: (args.duplicate || args.id.is_some())
                    .then(|| args.id.unwrap_or_else(new_message_id)),
                schedule: args.schedule.unwrap_or_else(Schedule::none),
            };
            load::run(sender, payload, plan).await
        }
    }
}

fn parse_url(text: &str) -> Result<reqwest::Url, Failure> {
    let url = reqwest::Url::parse(text).map_err(|e| {
        Failure::bad_input(format!(
            "bad --url {text:?}: {e} (expected e.g. http://127.0.0.1:8080/webhooks/psapi)"
        ))
    })?;
    match url.scheme() {
        "http" => Ok(url),
        "https" => Err(Failure::bad_input(
            "this build sends over plain http only (it is a local test sender): use an http:// URL",
        )),
        other => Err(Failure::bad_input(format!(
            "bad --url: unsupported scheme {other:?}, use http://"
        ))),
    }
}

/// What each delivery carries.
#[derive(Debug, Clone)]
pub enum Payload {
    /// The documented example payload of a type.
    Example(EventType),
    /// An envelope of a type around the user's `data`.
    Data(EventType, serde_json::Value),
    /// The user's bytes, as they are.
    Raw(Bytes),
}

impl Payload {
    fn from_args(args: &SendArgs) -> Result<Self, Failure> {
        if let Some(path) = &args.body {
            return Ok(Self::Raw(read_file_or_stdin(path)?.into()));
        }
        let Some(event_type) = args.event else {
            return Err(Failure::bad_input("give --event TYPE or --body FILE"));
        };
        let Some(path) = &args.data else {
            return Ok(Self::Example(event_type));
        };
        let data: serde_json::Value =
            serde_json::from_slice(&read_file_or_stdin(path)?).map_err(|e| {
                Failure::bad_input(format!(
                    "--data {} is not JSON ({e}): it is the event's data object; \
                     send other bytes with --body",
                    path.display()
                ))
            })?;
        if data.get("type").is_some() && data.get("data").is_some() {
            eprintln!(
                "note: --data looks like a whole envelope; it is sent as the event's data. \
                 Use --body to send an envelope as it is."
            );
        }
        Ok(Self::Data(event_type, data))
    }

    /// The body of the delivery `message_id`, created at `unix_secs`.
    fn body(&self, message_id: &str, unix_secs: i64) -> Bytes {
        let event_id = message_id
            .strip_prefix("msg_")
            .map_or_else(|| message_id.to_owned(), |rest| format!("whe_{rest}"));
        match self {
            Self::Example(event_type) => {
                samples::example_body(*event_type, &event_id, unix_secs).into()
            }
            Self::Data(event_type, data) => {
                let mut envelope = samples::example_envelope(*event_type, &event_id, unix_secs);
                envelope["data"] = data.clone();
                envelope.to_string().into()
            }
            Self::Raw(bytes) => bytes.clone(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Example(t) => format!("{t} (its documented example payload)"),
            Self::Data(t, _) => format!("{t} (data from --data)"),
            Self::Raw(b) => format!("{} bytes from --body, as they are", b.len()),
        }
    }
}

/// One delivery as the real sender makes it: the same id and body on every attempt, a fresh
/// timestamp and signature each time, retried on a non-2xx answer, a timeout or a lost connection.
async fn deliver(
    sender: &Sender,
    id: &str,
    body: &Bytes,
    schedule: &Schedule,
) -> Result<(), Failure> {
    println!();
    println!(
        "  {:>2}  {:<19}  {:<9}  {:<22}  {:>8}  response",
        "#", "attempted at (UTC)", "result", "status", "duration"
    );
    let attempts = schedule.attempts();
    for (index, delay) in schedule.delays().iter().enumerate() {
        if !delay.is_zero() {
            let wait = jittered(*delay);
            println!("      next attempt in {}", human_delay(wait));
            tokio::time::sleep(wait).await;
        }
        let attempt = sender.attempt(id, body).await;
        println!("  {:>2}  {}", index + 1, attempt.log_line());
        if attempt.outcome.is_success() {
            println!();
            println!("Delivered on attempt {} of {attempts}.", index + 1);
            return Ok(());
        }
        if index == 0
            && let Outcome::Unreachable(reason) = &attempt.outcome
        {
            return Err(Failure::failed(format!(
                "cannot reach {}: {reason}. Is the receiver running? \
                 Start one with `agentsync-webhooks listen`.",
                sender.url()
            )));
        }
    }
    Err(Failure::failed(if attempts == 1 {
        "not delivered: the only attempt failed (the schedule has no retries)".to_owned()
    } else {
        format!("not delivered: all {attempts} attempts failed")
    }))
}
