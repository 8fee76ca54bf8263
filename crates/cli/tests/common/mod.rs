//! Running the `agentsync-webhooks` binary as a real process.
#![allow(dead_code)] // each test file uses part of it

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_agentsync-webhooks");
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const OTHER_SECRET: &str = "whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBrZXk=";

/// A guard against a hang, not a timing assertion: a line that never comes fails the test.
const LINE_WAIT: Duration = Duration::from_secs(60);

/// The command with a clean environment for the secret and the log filter.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("AGENTSYNC_WEBHOOK_SECRET")
        .env_remove("RUST_LOG");
    command
}

/// Runs the binary to completion with `stdin` as its input.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running `listen` process, killed on drop.
pub struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Everything printed before "Listening on".
    pub banner: Vec<String>,
    /// The URL it listens on.
    pub url: String,
}

impl Listener {
    /// Starts `listen --port 0 ARGS` and waits until it listens.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(command(&[&["listen", "--port", "0"], args].concat()))
    }

    pub fn start_with(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listener = Self {
            child,
            lines,
            banner: Vec::new(),
            url: String::new(),
        };
        loop {
            let line = listener.next_line();
            if let Some(rest) = line.strip_prefix("Listening on ") {
                listener.url = rest.split_whitespace().next().unwrap().to_owned();
                return listener;
            }
            listener.banner.push(line);
        }
    }

    /// The next line it prints.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(LINE_WAIT)
            .expect("the listener printed nothing more")
    }

    /// Lines up to and including the first for which `last` holds.
    pub fn lines_until(&self, last: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.next_line();
            let found = last(&line);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }

    /// A delivery line and, with `--verbose`, its pretty JSON (up to the envelope's `}`).
    pub fn verbose_delivery(&self) -> (String, String) {
        let lines = self.lines_until(|l| l == "    }");
        (lines[0].clone(), lines[1..].join("\n"))
    }

    /// The next `n` delivery lines.
    pub fn next_lines(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.next_line()).collect()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `webhook-id` that `send` printed in its header.
pub fn sent_webhook_id(send_stdout: &str) -> String {
    send_stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("webhook-id"))
        .map(|id| id.trim().to_owned())
        .expect("send prints the webhook-id")
}

/// Runs `send --url URL --secret SECRET ARGS` to completion with `stdin` as its input.
pub fn send(url: &str, secret: &str, args: &[&str], stdin: &[u8]) -> Output {
    run(
        &[&["send", "--url", url, "--secret", secret], args].concat(),
        stdin,
    )
}
