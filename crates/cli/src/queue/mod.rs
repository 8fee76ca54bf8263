//! `queue list|show|replay|discard|forget|purge|stats`: the delivery record of a durable queue
//! (SQLite, Redis, PostgreSQL), read and acted on through `agentsync-webhooks-queue` alone, as
//! a service's workers and the dashboard see it. `dlq` is these commands with `--state dead`.

mod act;
mod list;
mod show;
mod stats;
pub mod target;
mod text;
mod when;

use agentsync_webhooks_queue::record::{Cursor, DeliveryFilter, DeliveryState, MAX_BULK};
use clap::{Args, Subcommand, ValueEnum};

use crate::{failure::Failure, input::parse_message_id};

pub use act::{Scope, replay_ids, replay_matching};
pub use target::QueueArgs;

/// Who the CLI's actions are recorded as in a delivery's history.
const BY: &str = "cli";

/// `queue ...`.
#[derive(Debug, Subcommand)]
#[command(
    after_help = "The queue is the one the service writes to: --queue URL, or \
                  AGENTSYNC_QUEUE_URL (sqlite://PATH, redis://..., postgres://...); unset or \
                  empty, the SQLite file agentsync-webhooks-queue.sqlite3 in the working \
                  directory. Times (--since, --until, --older-than) are RFC 3339 \
                  (2026-05-12T09:30:00Z), a date (2026-05-12) or a duration ago (30m, 1h, 2d). \
                  Exit status: 1 when the queue cannot be reached or an action did not apply \
                  to an id, 2 on bad input (and for a bulk action neither confirmed on a \
                  terminal nor given --yes)."
)]
pub enum QueueCommand {
    /// Deliveries newest first, one line each (received at, webhook-id, type, state, delay,
    /// attempts, last error), then how many match and the next page's cursor.
    List(ListArgs),
    /// Everything kept of one delivery: headers (the signature shortened), state, times, the
    /// body (pretty-printed when it is JSON) and its history: every attempt with its time,
    /// duration, outcome, worker and error, and who replayed, discarded or forgot it.
    Show(ShowArgs),
    /// Run done or dead deliveries again (after their handler was fixed): by webhook-id, or
    /// every one a filter keeps (--state dead ..., at most 1,000 a call, asked first).
    Replay(ReplayArgs),
    /// Move waiting or retrying deliveries to the dead letters ("discarded by operator").
    Discard(IdsArgs),
    /// Forget done or dead deliveries' ids: the sender's next resend of each is processed as
    /// new.
    Forget(IdsArgs),
    /// Delete the dead letters that died before a time (--older-than 30d), asked first.
    Purge(PurgeArgs),
    /// Deliveries by state and by type, and the age of the oldest waiting one.
    Stats(StatsArgs),
}

/// How `list`, `show` and `stats` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable lines.
    Text,
    /// JSON: one object per line (a list's summary goes to stderr), for `jq`.
    Json,
}

/// `--state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// Only deliveries in these states: waiting, running, retrying, done, dead (repeat the
    /// flag or separate them with commas).
    #[arg(long, value_name = "STATE", value_delimiter = ',', value_parser = parse_state)]
    pub state: Vec<DeliveryState>,
}

/// The filters other than the state.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only this event type, or the types of a group (producersync, contract, id.producer).
    #[arg(long = "type", value_name = "TYPE|GROUP", value_parser = parse_type)]
    pub event_type: Option<String>,
    /// Only deliveries received at or after this time (RFC 3339, a date, or a duration ago:
    /// 1h, 2d, 30m).
    #[arg(long, value_name = "TIME", value_parser = when::parse_time)]
    pub since: Option<i64>,
    /// Only deliveries received before this time (RFC 3339, a date, or a duration ago).
    #[arg(long, value_name = "TIME", value_parser = when::parse_time)]
    pub until: Option<i64>,
    /// Only the delivery with this webhook-id.
    #[arg(long, value_name = "ID", value_parser = parse_message_id,
          conflicts_with = "id_prefix")]
    pub id: Option<String>,
    /// Only deliveries whose webhook-id starts with this.
    #[arg(long, value_name = "PREFIX", value_parser = parse_message_id)]
    pub id_prefix: Option<String>,
    /// Only deliveries received at least this long after their event occurred (a duration:
    /// 15m, 1h, 2d): the late ones, a sender's retries or a backlog. Deliveries stored before
    /// the queue kept every event's occurred-at have no delay and are left out.
    #[arg(long, value_name = "DURATION", value_parser = when::parse_duration)]
    pub delayed_over: Option<std::time::Duration>,
}

impl FilterArgs {
    /// Whether any filter is given.
    fn any(&self) -> bool {
        self.event_type.is_some()
            || self.since.is_some()
            || self.until.is_some()
            || self.id.is_some()
            || self.id_prefix.is_some()
            || self.delayed_over.is_some()
    }

    /// The filter these flags and `states` make; `--since` after `--until` is bad input.
    pub fn filter(&self, states: &[DeliveryState]) -> Result<DeliveryFilter, Failure> {
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(Failure::bad_input(format!(
                "--since ({}) is not before --until ({}): nothing could match",
                text::rfc3339_ms(since),
                text::rfc3339_ms(until)
            )));
        }
        let mut filter = DeliveryFilter::new().states(states.iter().copied());
        if let Some(event_type) = &self.event_type {
            filter = filter.event_type(event_type);
        }
        if let Some(since) = self.since {
            filter = filter.received_since(since);
        }
        if let Some(until) = self.until {
            filter = filter.received_until(until);
        }
        if let Some(id) = &self.id {
            filter = filter.id(id.as_str());
        }
        if let Some(prefix) = &self.id_prefix {
            filter = filter.id_prefix(prefix.as_str());
        }
        if let Some(delay) = self.delayed_over {
            filter = filter.delayed_by_at_least(delay);
        }
        Ok(filter)
    }
}

/// A page of a list and how it prints.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// At most this many deliveries, the newest first.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub limit: u64,
    /// The next page: the cursor the previous page printed (`next page: --after ...`).
    #[arg(long, value_name = "CURSOR", value_parser = parse_cursor)]
    pub after: Option<Cursor>,
    /// Output: a readable table, or one JSON object per delivery and line.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `queue list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The states.
    #[command(flatten)]
    pub states: StateArgs,
    /// The other filters.
    #[command(flatten)]
    pub filters: FilterArgs,
    /// The page.
    #[command(flatten)]
    pub page: PageArgs,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// `queue show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The webhook-id of the delivery.
    #[arg(value_name = "ID", value_parser = parse_message_id)]
    pub id: String,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Output: readable lines (the body pretty-printed when it is JSON), or one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `queue replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The webhook-ids to replay; without them, every delivery the filter keeps (--state done
    /// and/or dead is then needed).
    #[arg(value_name = "ID", value_parser = parse_message_id)]
    pub ids: Vec<String>,
    /// The states.
    #[command(flatten)]
    pub states: StateArgs,
    /// The other filters.
    #[command(flatten)]
    pub filters: FilterArgs,
    /// By filter: at most this many, the newest first (at most 1,000 a call).
    #[arg(long, value_name = "N", default_value_t = MAX_BULK as u64,
          value_parser = clap::value_parser!(u64).range(1..=MAX_BULK as u64))]
    pub limit: u64,
    /// By filter: replay without asking (for scripts); without a terminal to ask on and
    /// without --yes, nothing is replayed.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// `queue discard` and `queue forget`.
#[derive(Debug, Args)]
pub struct IdsArgs {
    /// The webhook-ids.
    #[arg(value_name = "ID", value_parser = parse_message_id, required = true)]
    pub ids: Vec<String>,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// `queue purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Delete the dead letters that died before this: a duration ago (30d, 12h) or a time.
    #[arg(long, value_name = "AGE|TIME", value_parser = when::parse_time)]
    pub older_than: i64,
    /// Delete without asking (for scripts); without a terminal to ask on and without --yes,
    /// nothing is deleted.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// `queue stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The filters (every state is counted).
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Output: readable lines, or one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// Runs one `queue` subcommand.
pub async fn run(command: QueueCommand) -> Result<(), Failure> {
    match command {
        QueueCommand::List(args) => {
            let filter = args.filters.filter(&args.states.state)?;
            list::run(&args.queue, &filter, &args.page).await
        }
        QueueCommand::Show(args) => {
            show::run(&args.queue, &args.id, args.format, Scope::Queue).await
        }
        QueueCommand::Replay(args) => replay(args).await,
        QueueCommand::Discard(args) => act::discard(&args.queue, &args.ids).await,
        QueueCommand::Forget(args) => act::forget(&args.queue, &args.ids).await,
        QueueCommand::Purge(args) => act::purge(&args.queue, args.older_than, args.yes).await,
        QueueCommand::Stats(args) => {
            let filter = args.filters.filter(&[])?;
            stats::run(&args.queue, &filter, args.format).await
        }
    }
}

/// Lists deliveries (`dlq list` is this with `--state dead`).
pub async fn list(
    queue: &QueueArgs,
    filter: &DeliveryFilter,
    page: &PageArgs,
) -> Result<(), Failure> {
    list::run(queue, filter, page).await
}

/// Shows one delivery (`dlq show` is this in the dead letters' scope).
pub async fn show(
    queue: &QueueArgs,
    id: &str,
    format: Format,
    scope: Scope,
) -> Result<(), Failure> {
    show::run(queue, id, format, scope).await
}

/// `queue replay`: by id, or by filter.
async fn replay(args: ReplayArgs) -> Result<(), Failure> {
    let states = &args.states.state;
    if !args.ids.is_empty() {
        if args.filters.any() {
            return Err(Failure::bad_input(
                "queue replay takes webhook-ids or a filter (--type, --since, --until, --id, \
                 --id-prefix), not both; --state may narrow the ids",
            ));
        }
        return replay_ids(&args.queue, &args.ids, states, Scope::Queue).await;
    }
    if states.is_empty() {
        return Err(Failure::bad_input(
            "queue replay needs the webhook-ids to replay (`queue list` shows them), or a filter \
             with --state dead and/or done (`queue replay --state dead --type contract`)",
        ));
    }
    if let Some(state) = states.iter().find(|state| !state.replayable()) {
        return Err(Failure::bad_input(format!(
            "--state {state}: only done or dead deliveries are replayed (a waiting, running or \
             retrying one runs anyway; `queue discard` stops one)"
        )));
    }
    let filter = args.filters.filter(states)?;
    let limit = usize::try_from(args.limit).unwrap_or(MAX_BULK);
    replay_matching(&args.queue, &filter, limit, args.yes, Scope::Queue).await
}

/// `--state`'s parser.
fn parse_state(text: &str) -> Result<DeliveryState, String> {
    text.trim()
        .to_ascii_lowercase()
        .parse::<DeliveryState>()
        .map_err(|e| e.to_string())
}

/// `--type`'s parser: a type or a group name, as sent (unknown types are on record too).
fn parse_type(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.len() > 256 || text.chars().any(char::is_control) {
        return Err(
            "an event type (contract.updated) or a group (producersync, contract, id.producer)"
                .to_owned(),
        );
    }
    Ok(text.to_owned())
}

/// `--after`'s parser.
fn parse_cursor(text: &str) -> Result<Cursor, String> {
    text.trim().parse::<Cursor>().map_err(|e| e.to_string())
}
