//! How a command fails: a message for the user and an exit status that scripts can test.

use std::{fmt::Display, process::ExitCode};

/// Exit status when a delivery or a check failed.
const FAILED: u8 = 1;
/// Exit status on bad input (the same status clap uses for a bad flag).
const BAD_INPUT: u8 = 2;

/// A command's failure: printed once to stderr, then the process exits with its status.
#[derive(Debug)]
pub struct Failure {
    status: u8,
    message: String,
}

impl Failure {
    /// The input is unusable (bad secret, unreadable file, malformed value): exit 2.
    pub fn bad_input(message: impl Display) -> Self {
        Self {
            status: BAD_INPUT,
            message: message.to_string(),
        }
    }

    /// The command ran but what it checked or delivered failed: exit 1.
    pub fn failed(message: impl Display) -> Self {
        Self {
            status: FAILED,
            message: message.to_string(),
        }
    }

    /// Stdout was closed by its reader (`| head -1`): stop quietly, exit 0.
    pub fn stdout_closed() -> Self {
        Self {
            status: 0,
            message: String::new(),
        }
    }

    /// Prints the message and gives the exit status.
    pub fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            eprintln!("error: {}", self.message);
        }
        ExitCode::from(self.status)
    }
}

/// A secret that does not parse is bad input; the core's message says how to fix it.
pub fn bad_secret(error: agentsync_webhooks_core::SecretError) -> Failure {
    Failure::bad_input(format!("bad --secret ({}): {error}", error.code()))
}
