//! Running the `agentsync-webhooks` binary as a real process.
#![allow(dead_code)] // each test file uses part of it

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
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
    // A command that refuses its input exits without reading it: a closed pipe is its answer.
    if let Err(err) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    }
    child.wait_with_output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that `output`'s standard error contains `expected`, and shows all of it if not.
#[track_caller]
pub fn assert_stderr_contains(output: &Output, expected: &str) {
    let stderr = stderr(output);
    assert!(
        stderr.contains(expected),
        "{expected:?} not in stderr:\n{stderr}"
    );
}

/// Asserts that `output`'s standard output contains `expected`, and shows all of it if not.
#[track_caller]
pub fn assert_stdout_contains(output: &Output, expected: &str) {
    let stdout = stdout(output);
    assert!(
        stdout.contains(expected),
        "{expected:?} not in stdout:\n{stdout}"
    );
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

    pub fn start_with(command: Command) -> Self {
        Self::start_reading_banner(command, false)
    }

    /// Starts `listen --port 0 --format json ARGS`: the banner is read from stderr, the JSON
    /// lines from stdout.
    pub fn start_json(args: &[&str]) -> Self {
        let command = command(&[&["listen", "--port", "0", "--format", "json"], args].concat());
        Self::start_reading_banner(command, true)
    }

    fn start_reading_banner(mut command: Command, banner_on_stderr: bool) -> Self {
        let stderr = if banner_on_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let lines = line_channel(child.stdout.take().unwrap());
        let banner_lines = match child.stderr.take() {
            Some(stderr) => line_channel(stderr),
            None => lines_from(&[]),
        };
        let mut listener = Self {
            child,
            lines,
            banner: Vec::new(),
            url: String::new(),
        };
        loop {
            let line = if banner_on_stderr {
                banner_lines
                    .recv_timeout(LINE_WAIT)
                    .expect("the listener printed no banner")
            } else {
                listener.next_line()
            };
            if let Some(rest) = line.strip_prefix("Listening on ") {
                listener.url = rest.split_whitespace().next().unwrap().to_owned();
                if banner_on_stderr {
                    // Keep draining stderr so that the listener never blocks on it.
                    std::thread::spawn(move || for _ in banner_lines.iter() {});
                }
                return listener;
            }
            listener.banner.push(line);
        }
    }

    /// The next line, parsed as JSON (`--format json`).
    pub fn next_json(&self) -> serde_json::Value {
        let line = self.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Waits for the process to end by itself (a guard against a hang, not a timing check).
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the listener did not stop");
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

    /// A delivery line and, with `--verbose`, its headers and raw body (up to the blank line
    /// that ends them).
    pub fn verbose_delivery(&self) -> (String, String) {
        let lines = self.lines_until(str::is_empty);
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

/// A channel of the lines read from `stream` by a thread.
pub fn line_channel(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

fn lines_from(lines: &[&str]) -> mpsc::Receiver<String> {
    let (send, receiver) = mpsc::channel();
    for line in lines {
        let _ = send.send((*line).to_owned());
    }
    receiver
}

/// One raw HTTP/1.1 request to `url` (http://host:port/path); the status and the body.
pub fn raw_request(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(authority).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The `name: value` header lines that `sign` printed, as pairs.
pub fn signed_headers(sign_stdout: &str) -> Vec<(String, String)> {
    sign_stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agentsync-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn write(&self, name: &str, contents: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
