//! `listen` and `send` against each other, as two real processes over loopback.

mod common;

use common::{
    Listener, OTHER_SECRET, SECRET, assert_stdout_contains, command, run, send, sent_webhook_id,
    stderr, stdout,
};

#[test]
fn a_sent_example_is_verified_and_printed() {
    let listener = Listener::start(&["--secret", SECRET]);
    let output = send(
        &listener.url,
        SECRET,
        &["--event", "producersync.updates_available"],
        b"",
    );
    let log = stdout(&output);
    assert!(output.status.success(), "{log}{}", stderr(&output));
    assert!(log.contains("Succeeded  200 OK"), "{log}");
    assert!(log.contains("Delivered on attempt 1 of 6."), "{log}");

    let id = sent_webhook_id(&log);
    let line = listener.next_line();
    assert!(line.contains(&id), "{line}");
    assert!(line.contains("producersync.updates_available"), "{line}");
    assert!(line.ends_with("200 accepted"), "{line}");
}

#[test]
fn every_documented_type_is_accepted_verbose_shows_the_json() {
    let listener = Listener::start(&["--secret", SECRET, "--verbose"]);
    for event_type in agentsync_webhooks_core::EventType::ALL {
        let output = send(
            &listener.url,
            SECRET,
            &["--event", event_type.as_str(), "--schedule", "none"],
            b"",
        );
        assert!(output.status.success(), "{event_type}: {}", stdout(&output));
        let (line, json) = listener.verbose_delivery();
        assert!(line.contains(event_type.as_str()), "{line}");
        assert!(line.ends_with("200 accepted"), "{line}");
        assert!(
            json.contains(&format!("\"type\":\"{event_type}\"")),
            "{json}"
        );
        assert!(json.contains("\"data\":{"), "{json}");
        assert!(json.contains("    webhook-signature: v1,"), "{json}");
    }
}

#[test]
fn a_wrong_secret_is_refused_retried_and_explained_on_both_sides() {
    let listener = Listener::start(&["--secret", SECRET]);
    let output = send(
        &listener.url,
        OTHER_SECRET,
        &["--event", "contract.updated", "--schedule", "0,10ms,20ms"],
        b"",
    );
    let log = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert_eq!(
        log.matches("Failed     401 Unauthorized").count(),
        3,
        "{log}"
    );
    assert_eq!(log.matches("next attempt in").count(), 2, "{log}");
    assert!(log.contains("signature_mismatch"), "{log}");
    assert!(stderr(&output).contains("all 3 attempts failed"));

    let id = sent_webhook_id(&log);
    for line in listener.next_lines(3) {
        assert!(line.contains(&id), "{line}");
        // The type the body claims, although the signature failed.
        assert!(line.contains("contract.updated"), "{line}");
        assert!(
            line.contains("401 signature_mismatch: no signature matches"),
            "{line}"
        );
    }
}

#[test]
fn raw_bodies_and_custom_data_reach_the_receiver_as_sent() {
    let listener = Listener::start(&["--secret", SECRET, "--verbose"]);
    let dir = std::env::temp_dir().join(format!("agentsync-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let data = dir.join("data.json");
    std::fs::write(
        &data,
        r#"{"npn": "42", "activatedAt": "2025-01-02T03:04:05Z"}"#,
    )
    .unwrap();
    let output = send(
        &listener.url,
        SECRET,
        &[
            "--event",
            "producersync.npn.activated",
            "--data",
            data.to_str().unwrap(),
            "--id",
            "msg_custom_data",
        ],
        b"",
    );
    assert!(output.status.success(), "{}", stdout(&output));
    let (line, json) = listener.verbose_delivery();
    assert!(line.contains("msg_custom_data"), "{line}");
    assert!(json.contains("\"npn\":\"42\""), "{json}");
    assert!(json.contains("\"id\":\"whe_custom_data\""), "{json}");

    // Not an envelope: the library refuses it after verifying the signature.
    let output = send(
        &listener.url,
        SECRET,
        &["--body", "-", "--schedule", "none"],
        b"not json",
    );
    assert_eq!(output.status.code(), Some(1));
    assert_stdout_contains(&output, "400 Bad Request");
    let (line, raw) = listener.verbose_delivery();
    assert!(line.contains("400 invalid_payload"), "{line}");
    // --verbose shows refused deliveries too, raw body included.
    assert!(raw.contains("    not json"), "{raw}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_a_secret_listen_generates_one_and_prints_the_send_command() {
    let listener = Listener::start(&[]);
    let banner = listener.banner.join("\n");
    let send_line = listener
        .banner
        .iter()
        .find(|l| l.contains(" send --url "))
        .unwrap_or_else(|| panic!("no send command in {banner}"));
    let args: Vec<&str> = send_line.split_whitespace().collect();
    let send_at = args.iter().position(|a| *a == "send").unwrap();
    let secret = args[args.iter().position(|a| *a == "--secret").unwrap() + 1];
    assert!(secret.starts_with("whsec_"), "{banner}");
    assert!(
        banner.contains(&format!("--url {}", listener.url)),
        "{banner}"
    );

    let output = run(&args[send_at..], b"");
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(listener.next_line().ends_with("200 accepted"));
}

#[test]
fn listen_reads_the_secret_from_the_environment() {
    let mut listen = command(&["listen", "--port", "0"]);
    listen.env("AGENTSYNC_WEBHOOK_SECRET", SECRET);
    let listener = Listener::start_with(listen);
    assert!(listener.banner.iter().all(|l| !l.contains("whsec_")));
    let mut send = command(&[
        "send",
        "--url",
        &listener.url,
        "--event",
        "contract.packet.submitted",
    ]);
    send.env("AGENTSYNC_WEBHOOK_SECRET", SECRET);
    let output = send.output().unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(listener.next_line().contains("contract.packet.submitted"));
}

#[test]
fn load_mode_reports_throughput_latency_and_statuses() {
    let listener = Listener::start(&["--secret", SECRET]);
    let output = send(
        &listener.url,
        SECRET,
        &[
            "--event",
            "id.producer.updated",
            "--count",
            "200",
            "--concurrency",
            "8",
        ],
        b"",
    );
    let report = stdout(&output);
    assert!(output.status.success(), "{report}{}", stderr(&output));
    assert!(report.contains("200 requests in"), "{report}");
    assert!(report.contains("requests/s"), "{report}");
    for percentile in ["p50", "p90", "p99", "max"] {
        assert!(report.contains(percentile), "{report}");
    }
    assert!(report.contains("statuses  200 OK: 200"), "{report}");
    assert!(report.contains("delivered 200 of 200"), "{report}");

    let mut ids: Vec<String> = listener
        .next_lines(200)
        .into_iter()
        .map(|line| {
            assert!(line.ends_with("200 accepted"), "{line}");
            line.split_whitespace().nth(1).unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every delivery has its own webhook-id");
}

#[test]
fn load_mode_duplicate_resends_one_webhook_id() {
    let listener = Listener::start(&["--secret", SECRET]);
    let output = send(
        &listener.url,
        SECRET,
        &[
            "--event",
            "contract.updated",
            "--count",
            "20",
            "--concurrency",
            "1",
            "--duplicate",
        ],
        b"",
    );
    let report = stdout(&output);
    assert!(output.status.success(), "{report}{}", stderr(&output));
    assert!(report.contains("statuses  200 OK: 20"), "{report}");
    let id = report
        .split("all with webhook-id ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("{report}"))
        .to_owned();
    let lines = listener.next_lines(20);
    assert!(lines.iter().all(|l| l.contains(&id)), "{lines:?}");
    // Processed once, the other 19 acknowledged as duplicates.
    assert!(lines[0].ends_with("200 accepted"), "{lines:?}");
    assert!(
        lines[1..].iter().all(|l| l.contains("200 duplicate")),
        "{lines:?}"
    );
}

#[test]
fn load_mode_counts_refusals_and_fails() {
    let listener = Listener::start(&["--secret", SECRET]);
    let output = send(
        &listener.url,
        OTHER_SECRET,
        &[
            "--event",
            "contract.updated",
            "--count",
            "10",
            "--concurrency",
            "2",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("statuses  401 Unauthorized: 10"));
    assert!(stderr(&output).contains("10 of 10 deliveries failed"));
    assert_eq!(listener.next_lines(10).len(), 10);
}

#[test]
fn a_delivery_to_another_path_is_a_404_and_printed() {
    let listener = Listener::start(&["--secret", SECRET]);
    let url = listener
        .url
        .replace("/webhooks/psapi", "/webhooks/contracting");
    let output = send(
        &url,
        SECRET,
        &["--event", "contract.updated", "--schedule", "none"],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert_stdout_contains(&output, "404 Not Found");
    let line = listener.next_line();
    assert!(line.contains("POST /webhooks/contracting -> 404"), "{line}");
}

#[test]
fn duplicate_sends_the_same_message_twice() {
    let listener = Listener::start(&["--secret", SECRET]);
    let output = send(
        &listener.url,
        SECRET,
        &["--event", "producersync.npn.activated", "--duplicate"],
        b"",
    );
    let log = stdout(&output);
    assert!(output.status.success(), "{log}{}", stderr(&output));
    assert!(log.contains("as a duplicate"), "{log}");
    assert_eq!(log.matches("Delivered on attempt 1").count(), 2, "{log}");
    let id = sent_webhook_id(&log);
    let lines = listener.next_lines(2);
    assert!(lines.iter().all(|l| l.contains(&id)), "{lines:?}");
    assert!(lines[0].ends_with("200 accepted"), "{lines:?}");
    assert!(
        lines[1].ends_with("200 duplicate: already processed, handler not run"),
        "{lines:?}"
    );
    // The duplicate line shows the type too.
    assert!(lines[1].contains("producersync.npn.activated"), "{lines:?}");

    // Without idempotency, both are processed.
    let listener = Listener::start(&["--secret", SECRET, "--no-idempotency"]);
    let output = send(
        &listener.url,
        SECRET,
        &["--event", "producersync.npn.activated", "--duplicate"],
        b"",
    );
    assert!(output.status.success());
    let lines = listener.next_lines(2);
    assert!(
        lines.iter().all(|l| l.ends_with("200 accepted")),
        "{lines:?}"
    );
}
