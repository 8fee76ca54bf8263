//! What `listen` prints of its secret: the secret it generated, never one it was given.

mod common;

use std::{
    process::{Child, Stdio},
    sync::mpsc,
    time::Duration,
};

use common::{SECRET, command, line_channel, send, stdout};

/// A guard against a hang, not a timing assertion.
const LINE_WAIT: Duration = Duration::from_secs(60);

/// A `listen` run with both of its streams read, each line kept.
struct Run {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    seen: Vec<String>,
    url: String,
}

impl Run {
    /// Starts `listen --port 0 ARGS` (with `env`), reading up to "Listening on" on whichever
    /// stream carries the banner.
    fn start(args: &[&str], env: Option<&str>) -> Self {
        let mut listen = command(&[&["listen", "--port", "0"], args].concat());
        if let Some(secret) = env {
            listen.env("AGENTSYNC_WEBHOOK_SECRET", secret);
        }
        let mut child = listen
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = line_channel(child.stdout.take().unwrap());
        let err = line_channel(child.stderr.take().unwrap());
        let banner_on_stderr = args.contains(&"json");
        let mut run = Self {
            child,
            out,
            err,
            seen: Vec::new(),
            url: String::new(),
        };
        loop {
            let stream = if banner_on_stderr { &run.err } else { &run.out };
            let line = stream
                .recv_timeout(LINE_WAIT)
                .unwrap_or_else(|_| panic!("no banner in {:?}", run.seen));
            run.seen.push(line.clone());
            if let Some(rest) = line.strip_prefix("Listening on ") {
                run.url = rest.split_whitespace().next().unwrap().to_owned();
                return run;
            }
        }
    }

    /// Sends one delivery signed with `secret`, waits for its line, stops the listener and
    /// gives everything it printed on stdout and stderr.
    fn deliver_and_stop(mut self, secret: &str) -> String {
        let output = send(&self.url, secret, &["--event", "contract.updated"], b"");
        assert!(output.status.success(), "{}", stdout(&output));
        let line = self.out.recv_timeout(LINE_WAIT).expect("no delivery line");
        self.seen.push(line);
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The streams closed with the process: the rest of what it printed.
        self.seen.extend(self.out.iter());
        self.seen.extend(self.err.iter());
        self.seen.join("\n")
    }
}

#[test]
fn a_given_secret_never_appears_in_listens_output() {
    let key = SECRET.trim_start_matches("whsec_");
    let runs: [(&[&str], Option<&str>); 6] = [
        (&["--secret", SECRET], None),
        (&["--secret", SECRET, "--verbose"], None),
        (&["--secret", SECRET, "--format", "json", "--verbose"], None),
        (&["--secret", key], None),
        (&[], Some(SECRET)),
        (&["--secret", SECRET, "--format", "json"], Some(SECRET)),
    ];
    for (args, env) in runs {
        let printed = Run::start(args, env).deliver_and_stop(SECRET);
        assert!(
            printed.contains("send --url "),
            "{args:?}: no send line in\n{printed}"
        );
        assert!(
            !printed.contains(key),
            "{args:?} (env {env:?}): the secret was printed:\n{printed}"
        );
    }
}

#[test]
fn a_generated_secret_is_printed_and_is_the_one_listen_verifies() {
    let run = Run::start(&[], None);
    let banner = run.seen.join("\n");
    let generated = run
        .seen
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("whsec_"))
        .unwrap_or_else(|| panic!("no generated secret in\n{banner}"))
        .to_owned();
    assert!(
        banner.contains(&format!("--secret {generated} ")),
        "the send line lacks the generated secret:\n{banner}"
    );
    let printed = run.deliver_and_stop(&generated);
    assert!(printed.contains("200 accepted"), "{printed}");
}
