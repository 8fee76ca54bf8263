//! Writing to stdout: a reader that closed early (`| head -1`) ends the command quietly instead
//! of a panic, and colour only where it helps.

use std::{
    fmt,
    io::{IsTerminal as _, Write as _},
    sync::atomic::{AtomicBool, Ordering},
};

use clap::ValueEnum;

use crate::failure::Failure;

/// Set once a write to stdout failed: nothing more is written.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Stdout is gone (its reader closed the pipe): the command stops, quietly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdoutClosed;

impl From<StdoutClosed> for Failure {
    fn from(_: StdoutClosed) -> Self {
        Failure::stdout_closed()
    }
}

/// Writes `text` to stdout as it is, flushed.
pub fn write_text(text: &str) -> Result<(), StdoutClosed> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Err(StdoutClosed);
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(_) => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Err(StdoutClosed)
        }
    }
}

/// Writes one line to stdout.
pub fn write_line(line: fmt::Arguments<'_>) -> Result<(), StdoutClosed> {
    write_text(&format!("{line}\n"))
}

/// `println!` that stops the command quietly (with `?`) when stdout was closed.
macro_rules! out {
    () => {
        $crate::output::write_text("\n")?
    };
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))?
    };
}
pub(crate) use out;

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and `NO_COLOR` is unset or empty.
    Auto,
    /// Always, even into a pipe or with `NO_COLOR` set.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour stdout.
    pub fn enabled(self) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => {
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                !no_color && std::io::stdout().is_terminal()
            }
        }
    }
}

/// The colours lines use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Accepted, delivered.
    Green,
    /// Acknowledged without processing: duplicates, filtered types.
    Yellow,
    /// Refused, failed.
    Red,
    /// Secondary details.
    Dim,
}

/// `text` in `color` when `enabled`, else as it is.
pub fn paint(text: &str, color: Color, enabled: bool) -> String {
    if !enabled {
        return text.to_owned();
    }
    let code = match color {
        Color::Green => "32",
        Color::Yellow => "33",
        Color::Red => "31",
        Color::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paints_only_when_enabled() {
        assert_eq!(paint("ok", Color::Green, false), "ok");
        assert_eq!(paint("ok", Color::Green, true), "\x1b[32mok\x1b[0m");
        assert!(ColorChoice::Always.enabled());
        assert!(!ColorChoice::Never.enabled());
    }
}
