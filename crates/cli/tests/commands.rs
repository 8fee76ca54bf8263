//! `sign`, `verify`, `secret new`, and the exit status of every kind of bad input.

mod common;

use common::{
    Listener, OTHER_SECRET, SECRET, Scratch, assert_stderr_contains, run, send, stderr, stdout,
};

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
    assert_stderr_contains(&bad, "signing secret of the endpoint");

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
    assert_stderr_contains(&bad, "once its whitespace is removed");

    // Headers missing.
    let only_id = scratch.write("only-id.txt", b"webhook-id: msg_1\n");
    let bad = run(&["verify", "--secret", SECRET, "--headers", &only_id], body);
    assert_eq!(bad.status.code(), Some(1));
    assert_stderr_contains(&bad, "missing_header");
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
            "invalid value 'not a url' for '--url <URL>'",
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
            "--id",
        ),
        (
            &["send", "--url", "http://127.0.0.1:9", "--secret", SECRET],
            "--event",
        ),
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                "nothing",
                "--event",
                "contract.updated",
            ],
            "secret_too_short",
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
                "--header",
                "novalue",
            ],
            "NAME:VALUE",
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
                "--header",
                "webhook-id:x",
            ],
            "signing header",
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
                "--set",
                "data.npn",
            ],
            "PATH=VALUE",
        ),
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                SECRET,
                "--event",
                "producersync.npn.activated",
                "--set",
                "data.npn.x=1",
            ],
            "the payload has a string there",
        ),
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                SECRET,
                "--events",
                "contract,nope",
            ],
            "\"nope\" is neither",
        ),
        (
            &[
                "send",
                "--url",
                "http://127.0.0.1:9",
                "--secret",
                SECRET,
                "--events",
                "contract",
                "--event",
                "contract.updated",
            ],
            "cannot be used with",
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
        (&["listen", "--secret", "whsk_abc"], "not a valid v1a key"),
        (&["listen", "--secret", "nothing"], "secret_too_short"),
        (&["sign", "--secret", "whsec_c2hvcnQ="], "16-byte minimum"),
        (
            &[
                "sign",
                "--secret",
                "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=",
            ],
            "cannot sign",
        ),
        (
            &["listen", "--forward-to", "https://127.0.0.1:9/x"],
            "plain http only",
        ),
        (
            &["listen", "--forward-to", "127.0.0.1:3000"],
            "--forward-to",
        ),
        (
            &["listen", "--format", "xml"],
            "possible values: text, json",
        ),
        (
            &["listen", "--color", "sometimes"],
            "possible values: auto, always, never",
        ),
        (
            &["listen", "--events", "contract,nope"],
            "\"nope\" is neither",
        ),
        (&["listen", "--fail-rate", "2"], "fraction from 0 to 1"),
        (&["listen", "--fail-rate", "x%"], "fraction from 0 to 1"),
        (&["listen", "--status", "99"], "--status"),
        (&["listen", "--status", "600"], "--status"),
        (&["listen", "--host", "a b"], "IP address"),
        (
            &["listen", "--host", "no-such-host.invalid"],
            "cannot resolve --host",
        ),
        (&["completions", "tcsh"], "possible values"),
        (
            &[
                "replay",
                "/nonexistent.http",
                "--url",
                "http://127.0.0.1:9/",
            ],
            "give --secret",
        ),
        (
            &[
                "replay",
                "/nonexistent.http",
                "--url",
                "http://127.0.0.1:9/",
                "--as-captured",
            ],
            "cannot read /nonexistent.http",
        ),
        (
            &["replay", "--url", "http://127.0.0.1:9/", "--as-captured"],
            "<FILE>",
        ),
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
    for extra in [
        &["--schedule", "none"][..],
        &["--count", "50", "--concurrency", "5"][..],
    ] {
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
    assert_stderr_contains(&output, "cannot listen on");
}

#[test]
fn sign_says_so_when_receivers_will_refuse_the_body() {
    let empty = run(&["sign", "--secret", SECRET], b"");
    assert!(empty.status.success());
    assert_stderr_contains(&empty, "warning: the body is empty");
    let big = vec![b'a'; 1024 * 1024 + 1];
    let over = run(&["sign", "--secret", SECRET], &big);
    assert!(over.status.success());
    assert_stderr_contains(&over, "413 payload_too_large");
    let fine = run(&["sign", "--secret", SECRET], b"{}");
    assert!(!stderr(&fine).contains("warning"), "{}", stderr(&fine));
}

#[test]
fn a_short_secret_is_warned_about_and_a_very_short_one_refused() {
    // 18 bytes: accepted, with a warning.
    let short = run(
        &["sign", "--secret", "whsec_plJ3nmyCDGBKInavdOK15jsl"],
        b"{}",
    );
    assert!(short.status.success(), "{}", stderr(&short));
    assert_stderr_contains(
        &short,
        "only 18 bytes once decoded; Standard Webhooks secrets are 24 to 64 bytes",
    );
    // 5 bytes: refused with a hint, exit 2.
    for secret in ["nothing", "whsec_c2hvcnQ="] {
        let refused = run(&["sign", "--secret", secret], b"{}");
        assert_eq!(refused.status.code(), Some(2), "{secret}");
        assert_stderr_contains(&refused, "only 5 bytes");
    }
    // The core's tracing warning from Verifier::new, shown with RUST_LOG=warn.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let output = common::command(&[
        "listen",
        "--port",
        &port,
        "--secret",
        "whsec_plJ3nmyCDGBKInavdOK15jsl",
    ])
    .env("RUST_LOG", "warn")
    .output()
    .unwrap();
    assert_stderr_contains(&output, "WARN");
    assert_stderr_contains(&output, "the webhook signing secret is only 18 bytes");
}

#[test]
fn secrets_with_trailing_bits_in_the_last_character_work_as_in_the_reference_libraries() {
    for (loose, canonical) in [
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaQ=",
        ),
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBg==",
        ),
    ] {
        let args = ["--id", "msg_1", "--timestamp", "1614265330"];
        let ours = run(&[&["sign", "--secret", loose][..], &args].concat(), b"{}");
        assert!(ours.status.success(), "{loose}: {}", stderr(&ours));
        let same_key = run(
            &[&["sign", "--secret", canonical][..], &args].concat(),
            b"{}",
        );
        assert_eq!(
            common::signed_headers(&stdout(&ours)),
            common::signed_headers(&stdout(&same_key)),
            "{loose}"
        );
        // And over TCP: a listener with the loose form accepts what send signs with it.
        let listener = Listener::start(&["--secret", loose]);
        let output = send(&listener.url, loose, &["--event", "contract.updated"], b"");
        assert!(output.status.success(), "{}", stdout(&output));
        assert!(listener.next_line().ends_with("200 accepted"));
    }
}

#[test]
fn v1a_key_pairs_sign_and_verify_end_to_end() {
    let output = run(&["secret", "new", "--v1a"], b"");
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let (signing, public) = (lines[0], lines[1]);
    assert!(
        signing.starts_with("whsk_") && public.starts_with("whpk_"),
        "{text}"
    );

    let signed = run(&["sign", "--secret", signing, "--id", "msg_v1a"], b"{}");
    assert!(signed.status.success(), "{}", stderr(&signed));
    let headers = common::signed_headers(&stdout(&signed));
    assert!(headers[2].1.starts_with("v1a,"), "{headers:?}");

    // A listener trusting the public key accepts what send signs with the signing key.
    let listener = Listener::start(&["--secret", public]);
    let output = send(
        &listener.url,
        signing,
        &["--event", "contract.updated"],
        b"",
    );
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(listener.next_line().ends_with("200 accepted"));
    // A v1 secret's signature is refused by it.
    let output = send(
        &listener.url,
        SECRET,
        &["--event", "contract.updated", "--schedule", "none"],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(listener.next_line().contains("401"));
}

#[test]
fn events_lists_the_21_types_by_group() {
    let output = run(&["events"], b"");
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.starts_with("21 documented AgentSync event types in 3 groups"),
        "{text}"
    );
    for event_type in agentsync_webhooks_core::EventType::ALL {
        assert!(
            text.contains(&format!("\n  {event_type}\n"))
                || text.ends_with(&format!("  {event_type}\n")),
            "{event_type}"
        );
    }
    for group in ["producersync (", "contract (", "id.producer ("] {
        assert!(text.contains(group), "{text}");
    }
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let output = run(&["completions", shell], b"");
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(script.contains("agentsync-webhooks"), "{shell}");
        assert!(script.contains("forward-to"), "{shell}");
        assert!(script.contains("replay"), "{shell}");
    }
}
