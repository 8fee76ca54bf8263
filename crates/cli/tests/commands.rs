//! `sign`, `verify`, `secret new`, and the exit status of every kind of bad input.

mod common;

use std::path::PathBuf;

use common::{Listener, OTHER_SECRET, SECRET, run, send, stderr, stdout};

/// A scratch directory for header files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agentsync-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, contents: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn sign_matches_the_standard_webhooks_test_vector() {
    let output = run(
        &[
            "sign",
            "--secret",
            SECRET,
            "--id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "--timestamp",
            "1614265330",
        ],
        br#"{"test": 2432232314}"#,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(
            "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\n\
             webhook-timestamp: 1614265330\n\
             webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n\n\
             curl "
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"--data-binary '{"test": 2432232314}'"#),
        "{text}"
    );
}

#[test]
fn sign_then_verify_round_trips_and_explains_failures() {
    let scratch = Scratch::new("verify");
    let body = br#"{"type":"producersync.updates_available","data":{"runDate":"2025-07-24"}}"#;
    let signed = run(&["sign", "--secret", SECRET], body);
    assert!(signed.status.success());
    let headers = scratch.write("headers.txt", &signed.stdout);

    let ok = run(&["verify", "--secret", SECRET, "--headers", &headers], body);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("valid:"), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("producersync.updates_available"));

    // One byte changed.
    let tampered = String::from_utf8_lossy(body).replace("24", "25");
    let bad = run(
        &["verify", "--secret", SECRET, "--headers", &headers],
        tampered.as_bytes(),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("invalid: signature_mismatch (a receiver answers 401)"));

    // Another endpoint's secret.
    let bad = run(
        &["verify", "--secret", OTHER_SECRET, "--headers", &headers],
        body,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("signing secret of the endpoint"),
        "{}",
        stderr(&bad)
    );

    // A newline added when the capture was saved.
    let mut with_newline = body.to_vec();
    with_newline.push(b'\n');
    let bad = run(
        &["verify", "--secret", SECRET, "--headers", &headers],
        &with_newline,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("without its trailing whitespace/newline"));

    // A pretty-printed capture (same key order, whitespace added).
    let pretty = "{\n  \"type\": \"producersync.updates_available\",\n  \"data\": {\n    \"runDate\": \"2025-07-24\"\n  }\n}\n";
    let bad = run(
        &["verify", "--secret", SECRET, "--headers", &headers],
        pretty.as_bytes(),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("once its whitespace is removed"),
        "{}",
        stderr(&bad)
    );

    // Headers missing.
    let only_id = scratch.write("only-id.txt", b"webhook-id: msg_1\n");
    let bad = run(&["verify", "--secret", SECRET, "--headers", &only_id], body);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("missing_header"), "{}", stderr(&bad));
}

#[test]
fn verify_explains_an_old_capture_and_checks_it_with_ignore_timestamp() {
    let scratch = Scratch::new("old");
    let body = br#"{"type":"contract.updated","data":{}}"#;
    let an_hour_ago = (now() - 3_600).to_string();
    let signed = run(
        &["sign", "--secret", SECRET, "--timestamp", &an_hour_ago],
        body,
    );
    // The svix-* names work too, and a JSON object of headers.
    let text = stdout(&signed);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    let json = serde_json::json!({
        "svix-id": value("webhook-id"),
        "svix-timestamp": value("webhook-timestamp"),
        "svix-signature": value("webhook-signature"),
    });
    let headers = scratch.write("headers.json", json.to_string().as_bytes());

    let old = run(&["verify", "--secret", SECRET, "--headers", &headers], body);
    assert_eq!(old.status.code(), Some(1));
    let why = stderr(&old);
    assert!(why.contains("timestamp_too_old"), "{why}");
    assert!(why.contains("The signature itself is valid"), "{why}");

    let ok = run(
        &[
            "verify",
            "--secret",
            SECRET,
            "--headers",
            &headers,
            "--ignore-timestamp",
        ],
        body,
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn the_curl_line_from_sign_is_accepted_by_listen() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl is not installed: only the line's shape is checked elsewhere");
        return;
    }
    let listener = Listener::start(&["--secret", SECRET]);
    let body = br#"{"id":"whe_1","type":"id.producer.phone.deleted","data":{"it's":"quoted"}}"#;
    let signed = run(&["sign", "--secret", SECRET, "--url", &listener.url], body);
    let text = stdout(&signed);
    let curl = text.lines().find(|l| l.starts_with("curl ")).unwrap();
    let output = std::process::Command::new("sh")
        .args(["-c", curl])
        .output()
        .unwrap();
    assert!(
        stdout(&output).starts_with("HTTP/1.1 200"),
        "{}",
        stdout(&output)
    );
    let line = listener.next_line();
    assert!(line.contains("id.producer.phone.deleted"), "{line}");
    assert!(line.ends_with("200 accepted"), "{line}");
}

#[test]
fn secret_new_is_32_random_bytes_that_sign_accepts() {
    let first = stdout(&run(&["secret", "new"], b""));
    let second = stdout(&run(&["secret", "new"], b""));
    let first = first.trim();
    assert!(first.starts_with("whsec_"), "{first}");
    // 32 bytes are 44 base64 characters with padding.
    assert_eq!(first.len(), "whsec_".len() + 44, "{first}");
    assert_ne!(first, second.trim());
    assert!(run(&["sign", "--secret", first], b"{}").status.success());
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                SECRET,
                "--event",
                "contract.nope",
            ],
            "id.producer.phone.deleted", // the list of known types
        ),
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                "whsec_???",
                "--event",
                "contract.updated",
            ],
            "secret_not_base64",
        ),
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                "v1,abc=",
                "--event",
                "contract.updated",
            ],
            "looks like a signature",
        ),
        (
            &[
                "send",
                "--url",
                "not a url",
                "--secret",
                SECRET,
                "--event",
                "contract.updated",
            ],
            "bad --url",
        ),
        (
            &[
                "send",
                "--url",
                "https://127.0.0.1:9/x",
                "--secret",
                SECRET,
                "--event",
                "contract.updated",
            ],
            "plain http only",
        ),
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                SECRET,
                "--event",
                "contract.updated",
                "--data",
                "/nonexistent/data.json",
            ],
            "cannot read /nonexistent/data.json",
        ),
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                SECRET,
                "--event",
                "contract.updated",
                "--schedule",
                "5",
            ],
            "bad delay",
        ),
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                SECRET,
                "--event",
                "contract.updated",
                "--id",
                "has space",
            ],
            "bad --id",
        ),
        (
            &["send", "--url", "http://127.0.0.1:9", "--secret", SECRET],
            "--event",
        ),
        (&["sign", "--secret", ""], "secret"),
        (
            &[
                "verify",
                "--secret",
                SECRET,
                "--headers",
                "/nonexistent/h.txt",
            ],
            "cannot read --headers",
        ),
        (&["listen", "--path", "webhooks"], "must start with /"),
        (&["listen", "--secret", "whsk_abc"], "asymmetric"),
    ];
    for (args, message) in cases {
        let output = run(args, b"");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {:?} not in {}",
            message,
            stderr(&output)
        );
    }
}

/// A port nothing listens on: bound, then closed.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhooks/psapi", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[test]
fn an_unreachable_url_fails_at_once_with_exit_1() {
    let url = closed_port();
    for extra in [&[][..], &["--count", "50", "--concurrency", "5"][..]] {
        let args = [&["--event", "contract.updated"][..], extra].concat();
        let output = send(&url, SECRET, &args, b"");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains(&format!("cannot reach {url}")),
            "{message}"
        );
        assert!(message.contains("agentsync-webhooks listen"), "{message}");
    }
}

#[test]
fn listen_on_a_busy_port_fails_with_exit_1() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let output = run(&["listen", "--port", &port, "--secret", SECRET], b"");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot listen on"),
        "{}",
        stderr(&output)
    );
}
