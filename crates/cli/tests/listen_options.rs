//! `listen`'s options and `send`'s payload options, over real TCP between real processes.

mod common;

use common::{Listener, OTHER_SECRET, SECRET, command, raw_request, send, stderr, stdout};

#[test]
fn with_a_secret_the_ready_send_line_names_the_variable_and_works() {
    let listener = Listener::start(&["--secret", SECRET]);
    let banner = listener.banner.join("\n");
    let send_line = listener
        .banner
        .iter()
        .find(|l| l.contains(" send --url "))
        .unwrap_or_else(|| panic!("no send command in {banner}"));
    // The secret given is never printed: the line reads it from the variable, as the banner says.
    assert!(
        send_line.contains(r#"--secret "$AGENTSYNC_WEBHOOK_SECRET""#),
        "{send_line}"
    );
    assert!(
        banner.contains("with AGENTSYNC_WEBHOOK_SECRET set there to the secret given to --secret"),
        "{banner}"
    );
    assert!(!banner.contains("whsec_"), "{banner}");
    // Pasted into a shell with the variable set, it delivers.
    let send_at = send_line.find(" send ").unwrap();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("\"$0\" {}", &send_line[send_at + 1..]))
        .arg(common::BIN)
        .env_remove("RUST_LOG")
        .env("AGENTSYNC_WEBHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(listener.next_line().ends_with("200 accepted"));

    // From the environment: the line, without the secret, says to set the variable.
    let mut listen = command(&["listen", "--port", "0"]);
    listen.env("AGENTSYNC_WEBHOOK_SECRET", SECRET);
    let listener = Listener::start_with(listen);
    let banner = listener.banner.join("\n");
    assert!(banner.contains(" send --url "), "{banner}");
    assert!(
        banner.contains("with AGENTSYNC_WEBHOOK_SECRET set there too"),
        "{banner}"
    );
    assert!(!banner.contains("whsec_"), "{banner}");
}

#[test]
fn host_localhost_is_accepted() {
    let listener = Listener::start(&["--host", "localhost", "--secret", SECRET]);
    assert!(
        listener.url.starts_with("http://localhost:"),
        "{}",
        listener.url
    );
    let output = send(&listener.url, SECRET, &["--event", "contract.updated"], b"");
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(listener.next_line().ends_with("200 accepted"));
}

#[test]
fn a_get_on_the_webhook_path_is_405_and_other_paths_404() {
    let listener = Listener::start(&["--secret", SECRET]);
    let (status, _) = raw_request(&listener.url, "GET", &[], b"");
    assert_eq!(status, 405);
    let line = listener.next_line();
    assert!(
        line.contains("GET /webhooks/psapi -> 405 (deliveries are POSTs)"),
        "{line}"
    );
    let elsewhere = listener.url.replace("/webhooks/psapi", "/health");
    let (status, _) = raw_request(&elsewhere, "GET", &[], b"");
    assert_eq!(status, 404);
    assert!(listener.next_line().contains("GET /health -> 404"));
}

#[test]
fn several_paths_receive() {
    let listener = Listener::start(&[
        "--secret",
        SECRET,
        "--path",
        "/webhooks/psapi",
        "--path",
        "/webhooks/contracting",
    ]);
    let banner = listener.url.clone();
    for path in ["/webhooks/psapi", "/webhooks/contracting"] {
        let url = banner.replace("/webhooks/psapi", path);
        let output = send(&url, SECRET, &["--event", "contract.updated"], b"");
        assert!(output.status.success(), "{path}: {}", stdout(&output));
        assert!(listener.next_line().ends_with("200 accepted"));
    }
}

#[test]
fn json_format_prints_one_object_per_delivery() {
    let listener = Listener::start_json(&["--secret", SECRET]);
    let output = send(&listener.url, SECRET, &["--event", "contract.updated"], b"");
    assert!(output.status.success());
    let id = common::sent_webhook_id(&stdout(&output));
    let line = listener.next_json();
    assert_eq!(line["webhook_id"], id.as_str());
    assert_eq!(line["type"], "contract.updated");
    assert_eq!(line["status"], 200);
    assert_eq!(line["outcome"], "accepted");
    assert!(line["code"].is_null());
    assert!(line["bytes"].as_u64().unwrap() > 0);
    assert!(line["ms"].as_f64().is_some());
    assert!(line["app_status"].is_null());

    let output = send(
        &listener.url,
        OTHER_SECRET,
        &["--event", "contract.updated", "--schedule", "none"],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    let line = listener.next_json();
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["status"], 401);
    assert_eq!(line["code"], "signature_mismatch");
}

#[test]
fn events_filter_answers_other_types_200_as_filtered() {
    let listener = Listener::start(&[
        "--secret",
        SECRET,
        "--events",
        "contract,id.producer.updated",
    ]);
    let output = send(
        &listener.url,
        SECRET,
        &["--event", "producersync.updates_available"],
        b"",
    );
    assert!(output.status.success(), "{}", stdout(&output));
    let line = listener.next_line();
    assert!(line.contains("producersync.updates_available"), "{line}");
    assert!(
        line.ends_with("200 filtered: not in --events, handler not run"),
        "{line}"
    );
    for event_type in ["contract.packet.submitted", "id.producer.updated"] {
        let output = send(&listener.url, SECRET, &["--event", event_type], b"");
        assert!(output.status.success());
        assert!(listener.next_line().ends_with("200 accepted"));
    }
}

#[test]
fn color_always_even_with_no_color_and_never_by_default_into_a_pipe() {
    let mut listen = command(&[
        "listen", "--port", "0", "--secret", SECRET, "--color", "always",
    ]);
    listen.env("NO_COLOR", "1"); // an explicit --color always wins
    let listener = Listener::start_with(listen);
    send(&listener.url, SECRET, &["--event", "contract.updated"], b"");
    let line = listener.next_line();
    assert!(line.contains("\x1b[32m200 accepted\x1b[0m"), "{line:?}");

    let mut listen = command(&["listen", "--port", "0", "--secret", SECRET]);
    listen.env("NO_COLOR", "1");
    let listener = Listener::start_with(listen);
    send(&listener.url, SECRET, &["--event", "contract.updated"], b"");
    let line = listener.next_line();
    assert!(!line.contains('\x1b'), "{line:?}");
}

#[test]
fn status_and_fail_rate_answer_errors_on_purpose_and_retries_are_processed() {
    // Every delivery fails, so every retry is processed again (the claim is released).
    let listener = Listener::start(&["--secret", SECRET, "--fail-rate", "100%", "--status", "503"]);
    let output = send(
        &listener.url,
        SECRET,
        &["--event", "contract.updated", "--schedule", "0,10ms"],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output).matches("503 Service Unavailable").count(),
        2
    );
    for line in listener.next_lines(2) {
        assert!(
            line.ends_with("503 failed on purpose (--fail-rate/--status)"),
            "{line}"
        );
    }
    // --status alone: every delivery gets it.
    let listener = Listener::start(&["--secret", SECRET, "--status", "500"]);
    let output = send(
        &listener.url,
        SECRET,
        &["--event", "contract.updated", "--schedule", "none"],
        b"",
    );
    assert!(stdout(&output).contains("500 Internal Server Error"));
    assert!(
        listener
            .next_line()
            .ends_with("500 failed on purpose (--fail-rate/--status)")
    );
    // A rate of 0: every delivery accepted.
    let listener = Listener::start(&["--secret", SECRET, "--fail-rate", "0"]);
    let output = send(&listener.url, SECRET, &["--event", "contract.updated"], b"");
    assert!(output.status.success());
    assert!(listener.next_line().ends_with("200 accepted"));
}

#[test]
fn send_headers_overrides_and_several_events() {
    let listener = Listener::start(&["--secret", SECRET, "--verbose"]);
    let output = send(
        &listener.url,
        SECRET,
        &[
            "--event",
            "producersync.npn.activated",
            "--header",
            "X-Tenant: acme",
            "--set",
            "data.npn=123",
            "--set",
            "data.extra.flag=true",
        ],
        b"",
    );
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).contains("with data.npn, data.extra.flag from --set"));
    let (line, raw) = listener.verbose_delivery();
    assert!(line.ends_with("200 accepted"), "{line}");
    assert!(raw.contains("    x-tenant: acme"), "{raw}");
    assert!(raw.contains(r#""npn":"123""#), "{raw}");
    assert!(raw.contains(r#""extra":{"flag":true}"#), "{raw}");

    let listener = Listener::start(&["--secret", SECRET]);
    let output = send(&listener.url, SECRET, &["--events", "producersync"], b"");
    assert!(output.status.success(), "{}", stdout(&output));
    assert_eq!(stdout(&output).matches("Delivered on attempt 1").count(), 3);
    let lines = listener.next_lines(3);
    for (line, event_type) in lines.iter().zip([
        "producersync.updates_available",
        "producersync.npn.activated",
        "producersync.npn.deactivated",
    ]) {
        assert!(
            line.contains(event_type) && line.ends_with("200 accepted"),
            "{lines:?}"
        );
    }

    // In load mode the types take turns.
    let output = send(
        &listener.url,
        SECRET,
        &["--events", "contract", "--count", "16"],
        b"",
    );
    assert!(output.status.success(), "{}", stdout(&output));
    let lines = listener.next_lines(16);
    assert!(
        lines.iter().any(|l| l.contains("contract.updated ")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("contract.packet.submitted")),
        "{lines:?}"
    );
}

/// A delivery whose body drips in a byte per second is answered 408 once `--body-read-timeout`
/// passes, the listener prints the refusal, and the connection is closed.
#[test]
fn a_body_sent_a_byte_per_second_is_cut_off_with_408() {
    use std::io::{Read as _, Write as _};

    let listener = Listener::start(&["--secret", SECRET, "--body-read-timeout", "1"]);
    let rest = listener.url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\nwebhook-id: msg_slow\r\nwebhook-timestamp: 1\r\nwebhook-signature: v1,x\r\ncontent-length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut writer = writer;
        while writer.write_all(b" ").is_ok() {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    });
    // Bounds a listener that never answers; the deadline is 1 s, the body would take 100 s.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("body_read_timeout"), "{response}");
    let line = listener.next_line();
    assert!(line.contains("408"), "{line}");
}
