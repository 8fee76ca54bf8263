//! A reader that closes early (`| head -1`) ends the command quietly: no panic, exit 0 or 1.

mod common;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::Stdio,
};

use common::{Listener, SECRET, command, stderr};

#[test]
fn sign_into_a_closed_pipe_ends_quietly() {
    let mut child = command(&["sign", "--secret", SECRET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is written
    child.stdin.take().unwrap().write_all(b"{}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn send_count_into_a_closed_pipe_ends_quietly() {
    let listener = Listener::start(&["--secret", SECRET]);
    let mut child = command(&[
        "send",
        "--url",
        &listener.url,
        "--secret",
        SECRET,
        "--event",
        "contract.updated",
        "--count",
        "3000",
        "--concurrency",
        "8",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap(); // `head -1`: one line, then the pipe closes
    assert!(first.starts_with("Sending 3000 deliveries"), "{first}");
    let output = child.wait_with_output().unwrap();
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{:?}",
        output.status
    );
}

#[test]
fn listen_into_a_closed_pipe_answers_then_stops_quietly() {
    let mut child = command(&["listen", "--port", "0", "--secret", SECRET])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no banner");
        if let Some(rest) = line.strip_prefix("Listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    drop(reader); // `listen | head -N`: the reader has gone
    let output = common::send(
        &url,
        SECRET,
        &["--event", "contract.updated", "--schedule", "none"],
        b"",
    );
    // The delivery that found stdout closed was still answered...
    assert!(output.status.success(), "{}", common::stdout(&output));
    // ...and the listener then stopped by itself, without a panic.
    let mut listener = ChildGuard(Some(child));
    let status = listener.wait();
    let mut rest = String::new();
    if let Some(mut err) = listener.0.as_mut().and_then(|c| c.stderr.take()) {
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    }
    assert!(!rest.contains("panicked"), "{rest}");
    assert_eq!(status.code(), Some(0), "{rest}");
}

/// Kills the process if the test fails before it ended.
struct ChildGuard(Option<std::process::Child>);

impl ChildGuard {
    /// Waits for the end (a guard against a hang, not a timing check).
    fn wait(&mut self) -> std::process::ExitStatus {
        let child = self.0.as_mut().unwrap();
        for _ in 0..600 {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the listener did not stop after its stdout closed");
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
