//! `agentsync-webhooks`: a verifying listener and an AgentSync-like test sender.
//!
//! `listen` runs a receiver built on the library, so that what it accepts is what a service using
//! the library accepts; `send` signs and delivers like AgentSync's Standard Webhooks sender (and
//! doubles as a load generator); `replay`, `sign`, `verify`, `events`, `secret new` and
//! `completions` help around them; `queue` lists, shows and acts on every delivery on record in a
//! service's durable queue, and `dlq` is `queue` with `--state dead`.
//!
//! ```sh
//! # terminal 1: prints a fresh secret and the exact send command
//! cargo run -p agentsync-webhooks-cli -- listen
//! # terminal 2
//! cargo run -p agentsync-webhooks-cli -- send --url http://127.0.0.1:8080/webhooks/psapi \
//!     --secret whsec_... --event producersync.updates_available
//! # load: 10 000 deliveries, 64 in flight, then requests/s, p50/p90/p99/max and statuses
//! cargo run --release -p agentsync-webhooks-cli -- send --url http://127.0.0.1:8080/webhooks/psapi \
//!     --secret whsec_... --event contract.updated --count 10000 --concurrency 64
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod capture;
mod cli;
mod completions;
mod dashboard;
mod dlq;
mod events;
mod failure;
mod http_client;
mod input;
mod keys;
mod listen;
mod output;
mod queue;
mod replay;
mod secret;
mod send;
mod sign;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, parser::ValueSource};

use crate::{
    cli::{Cli, Command},
    secret::SecretCommand,
};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    // `listen` prints a ready `send` line, which differs when the secret came from the
    // environment (the other terminal needs the variable, not the value).
    let secret_from_env = matches
        .subcommand_matches("listen")
        .and_then(|listen| listen.value_source("secret"))
        == Some(ValueSource::EnvVariable);
    init_tracing();
    let outcome = match cli.command {
        Command::Listen(args) => {
            runtime().and_then(|rt| rt.block_on(listen::run(args, secret_from_env)))
        }
        Command::Send(args) => runtime().and_then(|rt| rt.block_on(send::run(args))),
        Command::Replay(args) => runtime().and_then(|rt| rt.block_on(replay::run(args))),
        Command::Sign(args) => sign::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Events => events::list(),
        Command::Queue { command } => runtime().and_then(|rt| rt.block_on(queue::run(command))),
        Command::Dlq { command } => runtime().and_then(|rt| rt.block_on(dlq::run(command))),
        Command::Secret {
            command: SecretCommand::New { v1a },
        } => secret::new(v1a),
        Command::Completions { shell } => completions::print(shell),
        Command::Dashboard(args) => runtime().and_then(|rt| rt.block_on(dashboard::run(args))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, failure::Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failure::Failure::failed(format!("could not start the async runtime: {e}")))
}

/// Library logs (`tracing`) go to stderr, filtered by `RUST_LOG` (default: errors only, since the
/// commands print their own readable lines for what the library logs at lower levels).
fn init_tracing() {
    use tracing_subscriber::{
        filter::Targets, layer::SubscriberExt as _, util::SubscriberInitExt as _,
    };

    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::ERROR));
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
}
