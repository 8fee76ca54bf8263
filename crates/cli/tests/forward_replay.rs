//! `listen --forward-to`, `listen --save` and `replay`, over real TCP.

mod common;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpListener,
    sync::mpsc,
};

use common::{
    Listener, OTHER_SECRET, SECRET, Scratch, assert_stderr_contains, assert_stdout_contains,
    raw_request, run, send, sent_webhook_id, signed_headers, stderr, stdout,
};

/// One request as the app saw it.
struct AppRequest {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A stand-in for the user's app: answers every request 201 with a JSON body and reports what
/// it read.
fn app() -> (String, mpsc::Receiver<AppRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let (report, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(&mut stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let answer = r#"{"handled":true}"#;
            write!(
                stream,
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            )
            .unwrap();
            let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
            if report
                .send(AppRequest {
                    path,
                    headers,
                    body,
                })
                .is_err()
            {
                break;
            }
        }
    });
    (url, seen)
}

fn header<'a>(request: &'a AppRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn verified_deliveries_are_forwarded_as_received_and_the_sender_gets_the_apps_answer() {
    let (app_url, seen) = app();
    let listener = Listener::start(&["--secret", SECRET, "--forward-to", &app_url]);
    assert!(
        listener
            .banner
            .iter()
            .any(|l| l.contains(&format!("Forwarding verified deliveries to {app_url}"))),
        "{:?}",
        listener.banner
    );

    // svix-* names and an exact body with odd spacing, as received.
    let body = br#"{ "type": "contract.updated",  "data": {"id": "c1"} }"#;
    let signed = stdout(&run(&["sign", "--secret", SECRET], body));
    let headers: Vec<(String, String)> = signed_headers(&signed)
        .into_iter()
        .map(|(n, v)| (n.replace("webhook-", "svix-"), v))
        .collect();
    let mut pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    pairs.push(("content-type", "application/json; charset=utf-8"));
    pairs.push(("x-not-forwarded", "1"));
    let (status, answer) = raw_request(&listener.url, "POST", &pairs, body);
    assert_eq!(status, 201);
    assert_eq!(answer, r#"{"handled":true}"#);

    let forwarded = seen.recv().unwrap();
    assert_eq!(forwarded.path, "/hooks");
    assert_eq!(forwarded.body, body);
    for (name, value) in &headers {
        assert_eq!(header(&forwarded, name), Some(value.as_str()), "{name}");
    }
    assert_eq!(
        header(&forwarded, "content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(header(&forwarded, "x-not-forwarded"), None);
    let line = listener.next_line();
    assert!(line.contains("contract.updated"), "{line}");
    assert!(
        line.ends_with("201 forwarded: the app answered 201 Created"),
        "{line}"
    );

    // `send` sees the app's status and body.
    let output = send(&listener.url, SECRET, &["--event", "contract.updated"], b"");
    assert!(output.status.success(), "{}", stdout(&output));
    assert_stdout_contains(&output, r#"Succeeded  201 Created"#);
    assert!(stdout(&output).contains(r#"{"handled":true}"#));
    let id = sent_webhook_id(&stdout(&output));
    assert_eq!(
        header(&seen.recv().unwrap(), "webhook-id"),
        Some(id.as_str())
    );
    listener.next_line();

    // Forged, then stale: refused by the listener, never forwarded. The next request the app
    // sees is the valid one sent after them.
    let forged = send(
        &listener.url,
        OTHER_SECRET,
        &["--event", "contract.updated", "--schedule", "none"],
        b"",
    );
    assert_eq!(forged.status.code(), Some(1));
    assert!(listener.next_line().contains("401 signature_mismatch"));
    let an_hour_ago = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3_600)
        .to_string();
    let stale = signed_headers(&stdout(&run(
        &["sign", "--secret", SECRET, "--timestamp", &an_hour_ago],
        body,
    )));
    let stale: Vec<(&str, &str)> = stale
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (status, _) = raw_request(&listener.url, "POST", &stale, body);
    assert_eq!(status, 401);
    assert!(listener.next_line().contains("401 timestamp_too_old"));
    let output = send(
        &listener.url,
        SECRET,
        &["--event", "producersync.npn.activated"],
        b"",
    );
    assert!(output.status.success());
    let next = seen.recv().unwrap();
    assert_eq!(
        header(&next, "webhook-id"),
        Some(sent_webhook_id(&stdout(&output)).as_str())
    );
}

#[test]
fn an_app_that_is_down_gets_the_sender_a_502() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let app_url = format!("http://{}/hooks", closed.local_addr().unwrap());
    drop(closed);
    let listener = Listener::start(&["--secret", SECRET, "--forward-to", &app_url]);
    let output = send(
        &listener.url,
        SECRET,
        &["--event", "contract.updated", "--schedule", "none"],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert_stdout_contains(&output, "502 Bad Gateway");
    assert_stdout_contains(&output, "forward_failed");
    let line = listener.next_line();
    assert!(
        line.contains("502 not forwarded: cannot reach the app at"),
        "{line}"
    );
}

#[test]
fn saved_deliveries_replay_re_signed_or_as_captured() {
    let scratch = Scratch::new("save");
    let dir = scratch.path("captures");
    let first = Listener::start(&["--secret", SECRET, "--save", &dir]);
    let output = send(&first.url, SECRET, &["--event", "contract.updated"], b"");
    assert!(output.status.success());
    let id = sent_webhook_id(&stdout(&output));
    first.next_line();
    let forged = send(
        &first.url,
        OTHER_SECRET,
        &["--event", "contract.updated", "--schedule", "none"],
        b"",
    );
    assert_eq!(forged.status.code(), Some(1));
    first.next_line();

    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].ends_with(&format!("-00001-{id}.http")),
        "{files:?}"
    );
    let saved = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        saved.starts_with("POST /webhooks/psapi HTTP/1.1\n"),
        "{saved}"
    );
    assert!(saved.contains(&format!("\nwebhook-id: {id}\n")), "{saved}");
    // `verify --headers` reads the saved file as it is.
    let body = saved.split_once("\n\n").unwrap().1;
    let verified = run(
        &["verify", "--secret", SECRET, "--headers", &files[0]],
        body.as_bytes(),
    );
    assert!(verified.status.success(), "{}", stderr(&verified));

    // Re-signed: the same id and body, a fresh timestamp; another listener accepts both (the
    // forged one too, now signed with the right secret).
    let second = Listener::start(&["--secret", SECRET, "--verbose"]);
    let output = run(
        &[
            "replay",
            &files[0],
            &files[1],
            "--url",
            &second.url,
            "--secret",
            SECRET,
        ],
        b"",
    );
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert_stdout_contains(&output, &format!("{id}  -> 200 OK"));
    let (line, raw) = second.verbose_delivery();
    assert!(
        line.contains(&id) && line.ends_with("200 accepted"),
        "{line}"
    );
    assert!(raw.contains(body), "{raw}");
    let (line, _) = second.verbose_delivery();
    assert!(line.ends_with("200 accepted"), "{line}");

    // As captured: the original signature, which still holds, so it is a duplicate here...
    let output = run(
        &["replay", &files[0], "--url", &second.url, "--as-captured"],
        b"",
    );
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(second.verbose_delivery().0.contains("200 duplicate"));

    // ...and an old capture reproduces the stale-timestamp refusal, which re-signing fixes.
    let old = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3_600)
        .to_string();
    let old_body = br#"{"type":"contract.updated","data":{}}"#;
    let signed = stdout(&run(
        &["sign", "--secret", SECRET, "--timestamp", &old],
        old_body,
    ));
    let head = signed.split("\n\n").next().unwrap();
    let mut capture =
        format!("POST /webhooks/psapi HTTP/1.1\ncontent-type: application/json\n{head}\n\n")
            .into_bytes();
    capture.extend_from_slice(old_body);
    let old_file = scratch.write("old.http", &capture);
    let output = run(
        &["replay", &old_file, "--url", &second.url, "--as-captured"],
        b"",
    );
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert_stdout_contains(&output, "401 Unauthorized");
    assert_stdout_contains(&output, "timestamp_too_old");
    assert!(
        second
            .verbose_delivery()
            .0
            .contains("401 timestamp_too_old")
    );
    let output = run(
        &[
            "replay",
            &old_file,
            "--url",
            &second.url,
            "--secret",
            SECRET,
        ],
        b"",
    );
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(second.verbose_delivery().0.ends_with("200 accepted"));

    // A file that is not a capture: exit 2, nothing sent.
    let bad = scratch.write("bad.http", b"just text");
    let output = run(
        &["replay", &bad, "--url", &second.url, "--secret", SECRET],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert_stderr_contains(&output, "not a delivery saved by `listen --save`");

    // --save into a path that cannot be a directory: exit 2.
    let file = scratch.write("a-file", b"");
    let output = run(
        &[
            "listen",
            "--port",
            "0",
            "--secret",
            SECRET,
            "--save",
            &format!("{file}/sub"),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert_stderr_contains(&output, "cannot create --save");
}
