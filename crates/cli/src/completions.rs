//! `completions SHELL`: a completion script for bash, zsh, fish (and the other shells
//! clap_complete knows).

use clap::CommandFactory as _;

use crate::{cli::Cli, failure::Failure, output::write_text};

/// Prints the completion script of `shell` for this command line.
pub fn print(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "agentsync-webhooks",
        &mut script,
    );
    write_text(&String::from_utf8_lossy(&script))?;
    Ok(())
}
