//! `send` retries like the real sender, against scripted HTTP servers.

mod common;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use agentsync_webhooks_core::Verifier;
use common::{SECRET, send, stderr, stdout};

/// One request as the scripted server read it.
struct Seen {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(stream: &mut TcpStream) -> Seen {
    let mut reader = BufReader::new(stream);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    Seen { headers, body }
}

/// Answers each connection with the next status of `statuses`, and reports what it read.
fn scripted_server(statuses: &'static [u16]) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhooks/psapi", listener.local_addr().unwrap());
    let (send, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for status in statuses {
            let (mut stream, _) = listener.accept().unwrap();
            let request = read_request(&mut stream);
            let body = format!("{{\"attempt_status\":{status}}}");
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            send.send(request).unwrap();
        }
    });
    (url, seen)
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    &seen.headers.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn a_failed_attempt_is_retried_with_the_same_id_and_body_and_a_fresh_signature() {
    let (url, seen) = scripted_server(&[500, 503, 204]);
    // More than a second between attempts, so that the timestamps must differ.
    let output = send(
        &url,
        SECRET,
        &[
            "--event",
            "producersync.npn.deactivated",
            "--schedule",
            "0,1200ms,10ms",
        ],
        b"",
    );
    let log = stdout(&output);
    assert!(output.status.success(), "{log}{}", stderr(&output));
    assert!(
        log.contains("Failed     500 Internal Server Error"),
        "{log}"
    );
    assert!(log.contains("Failed     503 Service Unavailable"), "{log}");
    assert!(log.contains("Succeeded  204 No Content"), "{log}");
    assert!(log.contains(r#"{"attempt_status":500}"#), "{log}");
    assert!(log.contains("Delivered on attempt 3 of 3."), "{log}");

    let attempts: Vec<Seen> = seen.iter().take(3).collect();
    let verifier = Verifier::builder()
        .secret(SECRET)
        .unwrap()
        .tolerance(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    for attempt in &attempts {
        verifier.verify(&attempt.headers, &attempt.body).unwrap();
        assert_eq!(header(attempt, "content-type"), "application/json");
        assert_eq!(
            header(attempt, "webhook-id"),
            header(&attempts[0], "webhook-id")
        );
        assert_eq!(attempt.body, attempts[0].body);
    }
    assert_ne!(
        header(&attempts[0], "webhook-timestamp"),
        header(&attempts[1], "webhook-timestamp")
    );
    assert_ne!(
        header(&attempts[0], "webhook-signature"),
        header(&attempts[1], "webhook-signature")
    );
}

#[test]
fn an_attempt_without_an_answer_times_out_after_5_seconds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhooks/psapi", listener.local_addr().unwrap());
    // Accepts, reads, never answers (the stream is kept open until the test ends).
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let _request = read_request(&mut stream);
        std::thread::park();
    });
    let output = send(
        &url,
        SECRET,
        &["--event", "contract.updated", "--schedule", "none"],
        b"",
    );
    let log = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("Failed     timeout"), "{log}");
    assert!(log.contains("no answer within 5 s"), "{log}");
    assert!(stderr(&output).contains("the only attempt failed"));
}

#[test]
fn a_refused_connection_is_retried_as_the_schedule_says() {
    // Nothing listens yet: the first attempts are refused.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/webhooks/psapi");
    let schedule = format!("0{}", ",1s".repeat(60));
    let mut child = common::command(&[
        "send",
        "--url",
        &url,
        "--secret",
        SECRET,
        "--event",
        "contract.updated",
        "--schedule",
        &schedule,
    ])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let lines = common::line_channel(child.stdout.take().unwrap());
    let wait = std::time::Duration::from_secs(60);
    loop {
        let line = lines
            .recv_timeout(wait)
            .expect("send printed no failed attempt");
        if line.contains("Failed     no connection") {
            break;
        }
    }
    // The receiver comes up after send started; a later attempt reaches it.
    let listener = common::Listener::start_with(common::command(&[
        "listen",
        "--port",
        &port.to_string(),
        "--secret",
        SECRET,
    ]));
    let rest: Vec<String> = lines.iter().collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.starts_with("Delivered on attempt")),
        "{rest:?}"
    );
    assert!(listener.next_line().ends_with("200 accepted"));
}
