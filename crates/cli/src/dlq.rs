//! `dlq list|show|replay`: the dead letters of a durable queue (SQLite, Redis, PostgreSQL). A
//! thin alias: each is the `queue` command with `--state dead` (`queue list --state dead`,
//! `queue show` of a dead letter, `queue replay --state dead`), the same code.

use agentsync_webhooks_queue::record::{DeliveryFilter, DeliveryState, MAX_BULK};
use clap::{Args, Subcommand};

use crate::{
    failure::Failure,
    input::parse_message_id,
    queue::{self, FilterArgs, Format, PageArgs, QueueArgs, Scope},
};

/// The one state of the dead letters.
const DEAD: &[DeliveryState] = &[DeliveryState::Dead];

/// `dlq ...`.
#[derive(Debug, Subcommand)]
#[command(
    after_help = "The queue is the one the service writes to: --queue URL, or \
                        AGENTSYNC_QUEUE_URL (sqlite://PATH, redis://..., postgres://...); unset or \
                        empty, the SQLite file agentsync-webhooks-queue.sqlite3 in the working \
                        directory. `dlq` is `queue` with --state dead: `queue` lists, shows and \
                        acts on every delivery on record. Exit status: 1 when the queue cannot be \
                        reached or an id is not a dead letter, 2 on bad input (and for --all \
                        neither confirmed on a terminal nor given --yes)."
)]
pub enum DlqCommand {
    /// One line per dead letter, newest first (received at, webhook-id, type, state,
    /// attempts, last error), then how many there are and the next page's cursor: `queue list
    /// --state dead`.
    List(DlqListArgs),
    /// Everything about one dead letter: its headers (the signature shortened), times, last
    /// error, body and history: `queue show` of a dead letter.
    Show(DlqShowArgs),
    /// Move dead letters back to the queue, due at once with their attempts counted anew
    /// (after the handler or its data was fixed): `queue replay --state dead`.
    Replay(DlqReplayArgs),
}

/// `dlq list`.
#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// The filters.
    #[command(flatten)]
    pub filters: FilterArgs,
    /// The page.
    #[command(flatten)]
    pub page: PageArgs,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// `dlq show`.
#[derive(Debug, Args)]
pub struct DlqShowArgs {
    /// The webhook-id of the dead letter.
    #[arg(value_name = "ID", value_parser = parse_message_id)]
    pub id: String,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Output: readable lines (the body pretty-printed when it is JSON), or one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `dlq replay`.
#[derive(Debug, Args)]
pub struct DlqReplayArgs {
    /// The webhook-ids of the dead letters to replay (or --all).
    #[arg(value_name = "ID", value_parser = parse_message_id, conflicts_with = "all")]
    pub ids: Vec<String>,
    /// Replay every dead letter, the newest first, at most 1,000 a call (asked first).
    #[arg(long)]
    pub all: bool,
    /// With --all: replay without asking (for scripts).
    #[arg(long, short = 'y', requires = "all")]
    pub yes: bool,
    /// The queue.
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// Runs one `dlq` subcommand.
pub async fn run(command: DlqCommand) -> Result<(), Failure> {
    match command {
        DlqCommand::List(args) => {
            let filter = args.filters.filter(DEAD)?;
            queue::list(&args.queue, &filter, &args.page).await
        }
        DlqCommand::Show(args) => {
            queue::show(&args.queue, &args.id, args.format, Scope::DeadLetters).await
        }
        DlqCommand::Replay(args) if args.all => {
            let filter = DeliveryFilter::new().states(DEAD.iter().copied());
            queue::replay_matching(&args.queue, &filter, MAX_BULK, args.yes, Scope::DeadLetters)
                .await
        }
        DlqCommand::Replay(args) if args.ids.is_empty() => Err(Failure::bad_input(
            "dlq replay needs the webhook-ids to replay (`dlq list` shows them), or --all for \
             every dead letter",
        )),
        DlqCommand::Replay(args) => {
            queue::replay_ids(&args.queue, &args.ids, DEAD, Scope::DeadLetters).await
        }
    }
}
