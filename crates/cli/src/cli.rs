//! The command line's top: `Cli` and its subcommands. Each command's flags live in the
//! command's own module (`listen::ListenArgs`, `send::SendArgs`, `dlq::DlqCommand`, ...), and
//! none of those imports this one back.

use clap::{Parser, Subcommand};

use crate::dashboard::DashboardArgs;

use crate::{
    dlq::DlqCommand, listen::ListenArgs, queue::QueueCommand, replay::ReplayArgs,
    secret::SecretCommand, send::SendArgs, sign::SignArgs, verify::VerifyArgs,
};

/// Receive, send, sign and check AgentSync webhooks (Standard Webhooks / Svix signing).
#[derive(Debug, Parser)]
#[command(
    name = "agentsync-webhooks",
    version,
    after_help = "Exit status: 0 on success, 1 when a delivery or a check failed (or a queue \
                  could not be reached), 2 on bad input (a bad secret, an unknown event type, an \
                  unreadable file, a bad flag or queue URL)."
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a verifying receiver and print every delivery it gets (optionally forwarding
    /// verified ones to your app).
    Listen(ListenArgs),
    /// Sign and deliver events like AgentSync's sender does (or load-test a receiver).
    Send(SendArgs),
    /// Send deliveries saved by `listen --save` again, re-signed with a fresh timestamp.
    Replay(ReplayArgs),
    /// Print the webhook-* headers for a body read from stdin, and a ready curl line.
    Sign(SignArgs),
    /// Check a captured delivery (headers file + body on stdin) and explain why it fails.
    Verify(VerifyArgs),
    /// List the 21 documented event types by group.
    Events,
    /// Every delivery on record in a durable queue (SQLite, Redis, PostgreSQL): list, show,
    /// replay, discard, forget, purge, stats.
    Queue {
        /// What to do.
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// The dead letters of a durable queue: list, show, replay (`queue` with --state dead).
    Dlq {
        /// What to do.
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Signing secrets and keys.
    Secret {
        /// What to do.
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Print a shell completion script: `agentsync-webhooks completions bash > ...`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Serve the operator's dashboard over a queue's delivery record (127.0.0.1:8081).
    Dashboard(DashboardArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
