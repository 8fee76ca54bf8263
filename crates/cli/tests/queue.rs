//! `queue list|show|replay|discard|forget|purge|stats` as a real process against real queues: a
//! SQLite file in a scratch directory, the Redis at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`) under a key prefix of its own, and the PostgreSQL at `POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`) in a database of its own, created and
//! dropped by the test. The deliveries are made with the library, as a service's receive port
//! and workers make them: enqueued, claimed, then completed, retried or buried.
//!
//! When `REDIS_URL` (`POSTGRES_URL`) is set, an unreachable Redis (PostgreSQL) fails its test;
//! when it is not, that test is skipped with a note.

mod common;

use std::{
    process::Output,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agentsync_webhooks_queue::{
    Enqueued, Queue, ReceivedDelivery,
    record::{DeliveryFilter, DeliveryState},
    redis::{RedisBackend, RedisOptions},
};
use common::{Scratch, assert_stderr_contains, assert_stdout_contains, stderr, stdout};

const LEASE: Duration = Duration::from_secs(30);
const SIGNATURE: &str = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=";
const MINUTE_MS: i64 = 60_000;

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A delivery of `event_type` received `minutes_ago`.
fn delivery(webhook_id: &str, event_type: &str, minutes_ago: i64, body: &[u8]) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: webhook_id.to_owned(),
        event_type: event_type.to_owned(),
        webhook_timestamp: 1_700_000_000,
        signature: SIGNATURE.to_owned(),
        received_at_ms: now_ms() - minutes_ago * MINUTE_MS,
        body: body.to_vec().into(),
    }
}

fn json_body(event_type: &str) -> Vec<u8> {
    format!(r#"{{"type":"{event_type}","data":{{"npn":"1234567","changes":[]}}}}"#).into_bytes()
}

/// Stores `delivery` (unless `again`: it is stored, due for a retry) and claims it.
async fn claim(
    queue: &Queue,
    delivery: &ReceivedDelivery,
    again: bool,
) -> agentsync_webhooks_queue::Job {
    if !again {
        assert_eq!(queue.enqueue(delivery).await.unwrap(), Enqueued::New);
    }
    // Due at once (a retry after zero): the engine's clock may need a moment.
    for _ in 0..100 {
        let mut jobs = queue.backend().claim(1, LEASE).await.unwrap();
        if let Some(job) = jobs.pop() {
            assert_eq!(job.delivery.webhook_id, delivery.webhook_id);
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} was never claimable", delivery.webhook_id);
}

/// The five deliveries every test starts from, newest first:
///
/// | id     | type                           | received | state    | attempts                        |
/// |--------|--------------------------------|----------|----------|---------------------------------|
/// | msg_e5 | contract.updated               | 5 m ago  | dead     | 2: retried, then buried          |
/// | msg_d4 | id.producer.updated            | 10 m ago | waiting  | none                            |
/// | msg_c3 | contract.created               | 20 m ago | dead     | 1: buried (permanent)            |
/// | msg_b2 | contract.updated               | 50 m ago | retrying | 1: retried in an hour            |
/// | msg_a1 | producersync.updates_available | 3 h ago  | done     | 1: ok                            |
async fn fill(queue: &Queue) {
    let backend = queue.backend();
    let a1 = delivery(
        "msg_a1",
        "producersync.updates_available",
        180,
        &json_body("producersync.updates_available"),
    );
    let job = claim(queue, &a1, false).await;
    assert!(backend.complete(&job).await.unwrap());

    let b2 = delivery(
        "msg_b2",
        "contract.updated",
        50,
        &json_body("contract.updated"),
    );
    let job = claim(queue, &b2, false).await;
    assert!(
        backend
            .retry(&job, Duration::from_secs(3_600), "HTTP 503 from the PSAPI")
            .await
            .unwrap()
    );

    let c3 = delivery("msg_c3", "contract.created", 20, b"not json \x1b[31m\xff");
    let job = claim(queue, &c3, false).await;
    assert!(
        backend
            .bury(&job, "permanent: unknown contract")
            .await
            .unwrap()
    );

    let e5 = delivery(
        "msg_e5",
        "contract.updated",
        5,
        &json_body("contract.updated"),
    );
    let job = claim(queue, &e5, false).await;
    assert!(
        backend
            .retry(&job, Duration::ZERO, "pull failed: timeout after 30 s")
            .await
            .unwrap()
    );
    let job = claim(queue, &e5, true).await;
    assert_eq!(job.attempt, 2);
    assert!(
        backend
            .bury(&job, "pull failed: HTTP 500\n  at page 3")
            .await
            .unwrap()
    );

    let d4 = delivery("msg_d4", "id.producer.updated", 10, b"{}");
    assert_eq!(queue.enqueue(&d4).await.unwrap(), Enqueued::New);
}

/// A scratch SQLite queue filled by [`fill`]: the scratch directory, the URL and the queue.
async fn sqlite_queue(name: &str) -> (Scratch, String, Queue) {
    let scratch = Scratch::new(name);
    let file = scratch.path("queue.sqlite3");
    let queue = Queue::sqlite(&file).await.unwrap();
    fill(&queue).await;
    (scratch, format!("sqlite://{file}"), queue)
}

/// `agentsync-webhooks ARGS --queue URL`, with no queue URL from the environment and no
/// terminal on stdin.
fn run(args: &[&str], url: &str) -> Output {
    let mut command = common::command(args);
    command
        .args(["--queue", url])
        .env_remove("AGENTSYNC_QUEUE_URL");
    command.output().unwrap()
}

fn status(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

#[track_caller]
fn ok(output: &Output) -> String {
    assert_eq!(status(output), 0, "{}{}", stdout(output), stderr(output));
    stdout(output)
}

/// The webhook-ids of a text list, in order (the second column).
fn listed_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|w| w.starts_with("msg_"))
        })
        .map(|line| line.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

/// `queue list ARGS` as the ids it printed.
fn list(url: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["queue", "list"];
    all.extend_from_slice(args);
    listed_ids(&ok(&run(&all, url)))
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The cursor a text page printed, if any.
fn next_cursor(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("next page: --after "))
        .map(str::to_owned)
}

async fn state(queue: &Queue, id: &str) -> Option<DeliveryState> {
    queue.delivery(id).await.unwrap().map(|record| record.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_state_type_time_and_id_and_pages() {
    let (_scratch, url, _queue) = sqlite_queue("queue-list").await;

    // Everything, newest first, one line each, then the counts.
    let text = ok(&run(&["queue", "list"], &url));
    assert_eq!(
        listed_ids(&text),
        ["msg_e5", "msg_d4", "msg_c3", "msg_b2", "msg_a1"],
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    let e5 = lines[0];
    for expected in [
        "contract.updated",
        "dead",
        "2 attempts",
        "pull failed: HTTP 500 at page 3",
    ] {
        assert!(e5.contains(expected), "{expected}: {text}");
    }
    assert!(chrono::DateTime::parse_from_rfc3339(e5.split_whitespace().next().unwrap()).is_ok());
    assert!(
        lines[1].contains("waiting") && lines[1].contains("0 attempts"),
        "{text}"
    );
    assert!(lines[3].contains("retrying") && lines[3].ends_with("HTTP 503 from the PSAPI"));
    assert!(
        lines[4].contains("done") && lines[4].ends_with("1 attempt"),
        "{text}"
    );
    assert_eq!(
        lines[5],
        "5 of 5 deliveries shown, newest first (all states: 1 waiting, 1 retrying, 1 done, 2 \
         dead)."
    );

    // What failed in the last hour, the states comma-separated or repeated.
    let failed = ["msg_e5", "msg_c3", "msg_b2"];
    assert_eq!(
        list(&url, &["--state", "retrying,dead", "--since", "1h"]),
        failed
    );
    assert_eq!(
        list(
            &url,
            &["--state", "dead", "--state", "retrying", "--since", "60m"]
        ),
        failed
    );
    let text = ok(&run(
        &[
            "queue",
            "list",
            "--state",
            "retrying,dead",
            "--since",
            "30m",
        ],
        &url,
    ));
    assert_eq!(listed_ids(&text), ["msg_e5", "msg_c3"]);
    assert!(
        text.contains("2 of 2 retrying or dead deliveries received since "),
        "{text}"
    );
    assert_eq!(list(&url, &["--state", "done"]), ["msg_a1"]);
    assert_eq!(list(&url, &["--state", "WAITING"]), ["msg_d4"]);

    // A type, or a group.
    assert_eq!(list(&url, &["--type", "contract"]), failed);
    assert_eq!(
        list(&url, &["--type", "contract.updated"]),
        ["msg_e5", "msg_b2"]
    );
    assert_eq!(list(&url, &["--type", "id.producer"]), ["msg_d4"]);
    assert_eq!(
        list(&url, &["--type", "producersync", "--state", "done"]),
        ["msg_a1"]
    );
    assert!(list(&url, &["--type", "contract.deleted"]).is_empty());

    // Received since / until: durations ago and RFC 3339 times.
    assert_eq!(list(&url, &["--until", "30m"]), ["msg_b2", "msg_a1"]);
    assert_eq!(
        list(&url, &["--since", "1h", "--until", "15m"]),
        ["msg_c3", "msg_b2"]
    );
    let hour_ago = chrono::DateTime::from_timestamp_millis(now_ms() - 60 * MINUTE_MS)
        .unwrap()
        .to_rfc3339();
    assert_eq!(list(&url, &["--until", &hour_ago]), ["msg_a1"]);
    assert_eq!(
        list(&url, &["--since", &hour_ago, "--type", "contract"]),
        failed
    );

    // An id, exact or a prefix.
    assert_eq!(list(&url, &["--id", "msg_c3"]), ["msg_c3"]);
    assert!(list(&url, &["--id", "msg_c"]).is_empty());
    assert_eq!(list(&url, &["--id-prefix", "msg_b"]), ["msg_b2"]);
    assert_eq!(list(&url, &["--id-prefix", "msg_"]).len(), 5);

    // Nothing matches: said, exit 0.
    let text = ok(&run(&["queue", "list", "--state", "running"], &url));
    assert!(
        text.starts_with("No running deliveries in the SQLite file"),
        "{text}"
    );

    // Pages of 2: each prints the next cursor, the last one none.
    let first = ok(&run(&["queue", "list", "--limit", "2"], &url));
    assert_eq!(listed_ids(&first), ["msg_e5", "msg_d4"]);
    assert!(
        first.contains("2 of 5 deliveries shown, newest first"),
        "{first}"
    );
    let cursor = next_cursor(&first).expect("a next page");
    let second = ok(&run(
        &["queue", "list", "--limit", "2", "--after", &cursor],
        &url,
    ));
    assert_eq!(listed_ids(&second), ["msg_c3", "msg_b2"]);
    assert!(second.contains("after the cursor"), "{second}");
    let cursor = next_cursor(&second).expect("a third page");
    let third = ok(&run(
        &["queue", "list", "--limit", "2", "--after", &cursor],
        &url,
    ));
    assert_eq!(listed_ids(&third), ["msg_a1"]);
    assert_eq!(next_cursor(&third), None, "{third}");
    // Paging keeps the filter.
    let page = ok(&run(
        &["queue", "list", "--type", "contract", "--limit", "1"],
        &url,
    ));
    assert_eq!(listed_ids(&page), ["msg_e5"]);
    let cursor = next_cursor(&page).unwrap();
    assert_eq!(
        list(
            &url,
            &["--type", "contract", "--limit", "5", "--after", &cursor]
        ),
        ["msg_c3", "msg_b2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_json_is_one_object_per_line_with_its_cursor() {
    let (_scratch, url, _queue) = sqlite_queue("queue-json").await;
    let listed = run(&["queue", "list", "--format", "json", "--limit", "3"], &url);
    let objects = json_lines(&ok(&listed));
    assert_eq!(objects.len(), 3);
    let ids: Vec<&str> = objects
        .iter()
        .map(|o| o["webhook_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["msg_e5", "msg_d4", "msg_c3"]);
    let e5 = &objects[0];
    assert_eq!(e5["type"], "contract.updated");
    assert_eq!(e5["state"], "dead");
    assert_eq!(e5["attempts"], 2);
    assert_eq!(e5["last_error"], "pull failed: HTTP 500\n  at page 3");
    assert!(chrono::DateTime::parse_from_rfc3339(e5["received_at"].as_str().unwrap()).is_ok());
    assert!(e5["received_at_ms"].is_i64());
    assert_eq!(objects[1]["state"], "waiting");
    assert_eq!(objects[1]["last_error"], serde_json::Value::Null);
    // The summary and the next page on stderr; each object's cursor continues after it.
    assert_stderr_contains(&listed, "3 of 5 deliveries shown");
    assert_stderr_contains(&listed, "next page: --after ");
    let cursor = objects[2]["cursor"].as_str().unwrap();
    let rest = run(
        &["queue", "list", "--format", "json", "--after", cursor],
        &url,
    );
    let ids: Vec<String> = json_lines(&ok(&rest))
        .iter()
        .map(|o| o["webhook_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["msg_b2", "msg_a1"]);
    let retrying = json_lines(&ok(&run(
        &["queue", "list", "--format", "json", "--state", "retrying"],
        &url,
    )));
    assert!(
        chrono::DateTime::parse_from_rfc3339(retrying[0]["next_run_at"].as_str().unwrap()).is_ok(),
        "{}",
        retrying[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_prints_headers_body_and_every_attempt_with_its_error() {
    let (_scratch, url, _queue) = sqlite_queue("queue-show").await;

    let text = ok(&run(&["queue", "show", "msg_e5"], &url));
    for expected in [
        "webhook-id         msg_e5\n",
        "type               contract.updated\n",
        "state              dead\n",
        "attempts           2\n",
        "webhook-timestamp  1700000000 (2023-11-14T22:13:20Z)\n",
        "webhook-signature  v1,K5oZfzN9... (shortened)\n",
        "last error\n  pull failed: HTTP 500\n    at page 3\n",
        "body (65 bytes, JSON)\n{\n  \"type\": \"contract.updated\",\n  \"data\": {\n    \"npn\": \
         \"1234567\",\n    \"changes\": []\n  }\n}\n",
        "history (2 entries, oldest first)\n",
        "  pull failed: timeout after 30 s\n",
        "  pull failed: HTTP 500\n        at page 3\n",
    ] {
        assert!(text.contains(expected), "{expected:?}:\n{text}");
    }
    assert!(!text.contains(SIGNATURE), "the signature in full:\n{text}");
    let attempts: Vec<&str> = text.lines().filter(|l| l.contains("  attempt ")).collect();
    assert_eq!(attempts.len(), 2, "{text}");
    assert!(attempts[0].contains("attempt 1") && attempts[0].contains("failed, retried"));
    assert!(attempts[1].contains("attempt 2") && attempts[1].contains("failed, dead"));
    for attempt in &attempts {
        let at = attempt.split_whitespace().next().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "{attempt}"
        );
        assert!(
            attempt.contains(" ms ") || attempt.contains(" s "),
            "{attempt}"
        );
        assert!(attempt.contains("worker "), "{attempt}");
    }
    assert!(text.lines().any(|l| l.starts_with("died at            ")));

    // A body that is not JSON: as text, lossily, escaped.
    let text = ok(&run(&["queue", "show", "msg_c3"], &url));
    assert!(
        text.contains("body (15 bytes, not JSON, shown as text)\nnot json \\u{1b}[31m\u{fffd}"),
        "{text}"
    );
    assert!(!text.contains('\x1b'));

    // A retrying delivery says when it runs next; a done one when it was done.
    let text = ok(&run(&["queue", "show", "msg_b2"], &url));
    assert!(text.contains("state              retrying\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("next run at        ") && l.contains("(in 59m")),
        "{text}"
    );
    let text = ok(&run(&["queue", "show", "msg_a1"], &url));
    assert!(text.contains("done at            "), "{text}");
    assert!(!text.contains("last error"), "{text}");
    assert!(text.contains("attempt 1   ok"), "{text}");

    // JSON: one object, the signature shortened there too, the body itself, the history.
    let object = &json_lines(&ok(&run(
        &["queue", "show", "msg_e5", "--format", "json"],
        &url,
    )))[0];
    assert_eq!(object["webhook_signature"], "v1,K5oZfzN9...");
    assert_eq!(object["state"], "dead");
    assert_eq!(object["body_is_json"], true);
    assert_eq!(object["body"]["data"]["npn"], "1234567");
    let history = object["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["event"], "attempt");
    assert_eq!(history[0]["outcome"], "retry");
    assert_eq!(history[0]["error"], "pull failed: timeout after 30 s");
    assert_eq!(history[1]["outcome"], "dead");
    assert!(history[1]["worker"].is_string() && history[1]["duration_ms"].is_u64());

    // No such delivery: exit 1, named.
    let missing = run(&["queue", "show", "msg_zz"], &url);
    assert_eq!(status(&missing), 1);
    assert!(stdout(&missing).is_empty());
    assert_stderr_contains(&missing, "msg_zz is not in the SQLite file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_discard_and_forget_by_id() {
    let (_scratch, url, queue) = sqlite_queue("queue-actions").await;

    // replay: a dead and a done one run again; a waiting one is refused, an unknown one too.
    let replayed = run(
        &["queue", "replay", "msg_e5", "msg_a1", "msg_d4", "msg_zz"],
        &url,
    );
    assert_eq!(status(&replayed), 1, "{}", stderr(&replayed));
    assert_eq!(
        stdout(&replayed),
        "msg_e5  replayed\nmsg_a1  replayed\nmsg_d4  waiting: not replayed (only done or dead \
         deliveries are; it runs anyway)\nmsg_zz  not found\n"
    );
    assert_stderr_contains(&replayed, "2 of 4 ids were not replayed");
    assert_eq!(state(&queue, "msg_e5").await, Some(DeliveryState::Waiting));
    assert_eq!(state(&queue, "msg_a1").await, Some(DeliveryState::Waiting));
    let text = ok(&run(&["queue", "show", "msg_e5"], &url));
    assert!(text.contains("replayed by cli"), "{text}");
    assert!(text.contains("attempts           0\n"), "{text}");

    // --state narrows the ids: a dead one only.
    let replayed = run(&["queue", "replay", "msg_c3", "--state", "done"], &url);
    assert_eq!(status(&replayed), 1);
    assert_eq!(stdout(&replayed), "msg_c3  dead: not replayed (--state)\n");
    assert_eq!(state(&queue, "msg_c3").await, Some(DeliveryState::Dead));

    // discard: a retrying or waiting one goes to the dead letters; a dead one is refused.
    let discarded = run(&["queue", "discard", "msg_b2", "msg_c3"], &url);
    assert_eq!(status(&discarded), 1);
    assert_eq!(
        stdout(&discarded),
        "msg_b2  discarded: now a dead letter\nmsg_c3  dead: not discarded (only a waiting or \
         retrying delivery is; a running one is its worker's until it settles)\n"
    );
    assert_eq!(state(&queue, "msg_b2").await, Some(DeliveryState::Dead));
    let text = ok(&run(&["queue", "show", "msg_b2"], &url));
    assert!(text.contains("discarded by cli"), "{text}");
    assert!(text.contains("discarded by operator"), "{text}");

    // forget: a dead one's id is forgotten, and the sender's resend is new.
    let forgotten = ok(&run(&["queue", "forget", "msg_c3"], &url));
    assert_eq!(
        forgotten,
        "msg_c3  forgotten: the sender's next resend of it is processed as new\n"
    );
    let forgotten = run(&["queue", "forget", "msg_d4"], &url);
    assert_eq!(status(&forgotten), 1);
    assert_stdout_contains(&forgotten, "msg_d4  waiting: not forgotten");
    let resent = delivery("msg_c3", "contract.created", 0, b"{}");
    assert_eq!(queue.enqueue(&resent).await.unwrap(), Enqueued::New);

    // Bad input: no id, ids with a filter.
    for (args, expected) in [
        (&["queue", "discard"][..], "<ID>"),
        (&["queue", "forget"][..], "<ID>"),
        (
            &["queue", "replay", "msg_a1", "--type", "contract"][..],
            "not both",
        ),
        (&["queue", "replay"][..], "--state dead"),
    ] {
        let output = run(args, &url);
        assert_eq!(status(&output), 2, "{args:?}: {}", stderr(&output));
        assert_stderr_contains(&output, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_replay_says_how_many_and_needs_a_terminal_or_yes() {
    let (_scratch, url, queue) = sqlite_queue("queue-bulk").await;

    // No terminal, no --yes: how many it would touch, then nothing, exit 2.
    let refused = run(
        &["queue", "replay", "--state", "dead", "--type", "contract"],
        &url,
    );
    assert_eq!(status(&refused), 2, "{}", stderr(&refused));
    assert_stdout_contains(
        &refused,
        "2 dead letters of group contract in the SQLite file",
    );
    assert_stdout_contains(&refused, "this replays all 2");
    assert_stderr_contains(&refused, "nothing replayed");
    assert_stderr_contains(&refused, "no terminal to ask on");
    assert_stderr_contains(&refused, "--yes");
    assert_eq!(state(&queue, "msg_e5").await, Some(DeliveryState::Dead));
    assert_eq!(state(&queue, "msg_c3").await, Some(DeliveryState::Dead));

    // A non-replayable state is refused before anything.
    let output = run(&["queue", "replay", "--state", "retrying", "--yes"], &url);
    assert_eq!(status(&output), 2);
    assert_stderr_contains(&output, "only done or dead deliveries are replayed");

    // --yes: bounded by --limit, the newest first, the count said.
    let replayed = ok(&run(
        &[
            "queue", "replay", "--state", "dead", "--type", "contract", "--limit", "1", "--yes",
        ],
        &url,
    ));
    assert!(
        replayed.contains("this replays the newest 1 of them (--limit 1)"),
        "{replayed}"
    );
    assert!(
        replayed.contains("Replayed 1 dead letter of group contract."),
        "{replayed}"
    );
    assert!(replayed.contains("1 more matched"), "{replayed}");
    assert_eq!(state(&queue, "msg_e5").await, Some(DeliveryState::Waiting));
    assert_eq!(state(&queue, "msg_c3").await, Some(DeliveryState::Dead));

    // Done and dead together.
    let replayed = ok(&run(
        &["queue", "replay", "--state", "done,dead", "--yes"],
        &url,
    ));
    assert!(
        replayed.contains("Replayed 2 done or dead deliveries."),
        "{replayed}"
    );
    assert_eq!(state(&queue, "msg_a1").await, Some(DeliveryState::Waiting));
    assert_eq!(state(&queue, "msg_c3").await, Some(DeliveryState::Waiting));
    let record = queue.delivery("msg_c3").await.unwrap().unwrap();
    assert!(
        record
            .history
            .iter()
            .any(|e| format!("{:?}", e.event).contains("Replayed { by: \"cli\" }"))
    );

    // Nothing left to replay: said, exit 0, no question.
    let text = ok(&run(&["queue", "replay", "--state", "dead"], &url));
    assert!(
        text.starts_with("No dead letters in the SQLite file")
            && text.contains("nothing to replay"),
        "{text}"
    );
}

/// `agentsync-webhooks ARGS --queue URL` on a terminal (util-linux `script` gives it one), with
/// `answer` typed; its output and exit status. `None` without `script`.
fn on_a_terminal(args: &[&str], url: &str, answer: &str) -> Option<(String, i32)> {
    use std::{io::Write as _, process::Stdio};

    let mut line = format!("'{}'", common::BIN);
    for arg in args.iter().chain(&["--queue", url]) {
        line.push_str(&format!(" '{arg}'"));
    }
    line.push_str("; echo \"exit=$?\"");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("AGENTSYNC_QUEUE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Typed once the question is up (a terminal's input typed early is kept too).
    std::thread::sleep(Duration::from_millis(300));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n");
    let code = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("exit="))?
        .parse()
        .ok()?;
    Some((text, code))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_a_bulk_replay_asks_and_only_yes_goes_ahead() {
    let (_scratch, url, queue) = sqlite_queue("queue-terminal").await;
    let args = ["queue", "replay", "--state", "dead"];
    let Some((text, code)) = on_a_terminal(&args, &url, "n\n") else {
        eprintln!("skipping: no util-linux `script` to run the command on a terminal");
        return;
    };
    assert!(text.contains("Replay 2 deliveries? [y/N]"), "{text}");
    assert!(text.contains("nothing replayed: not confirmed"), "{text}");
    assert_eq!(code, 1, "{text}");
    assert_eq!(state(&queue, "msg_e5").await, Some(DeliveryState::Dead));

    let (text, code) = on_a_terminal(&args, &url, "y\n").unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Replayed 2 dead letters."), "{text}");
    assert_eq!(state(&queue, "msg_e5").await, Some(DeliveryState::Waiting));
    assert_eq!(state(&queue, "msg_c3").await, Some(DeliveryState::Waiting));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_old_dead_letters_once_confirmed() {
    let (_scratch, url, queue) = sqlite_queue("queue-purge").await;

    // None died 30 days ago.
    let text = ok(&run(&["queue", "purge", "--older-than", "30d"], &url));
    assert!(text.contains("nothing to purge"), "{text}");

    // Every dead letter died before now: asked first, refused without a terminal.
    let refused = run(&["queue", "purge", "--older-than", "0s"], &url);
    assert_eq!(status(&refused), 2);
    assert_stdout_contains(
        &refused,
        "at most 2 (the dead letters received before then)",
    );
    assert_stderr_contains(&refused, "nothing deleted");
    assert_eq!(
        queue
            .counts(&DeliveryFilter::new())
            .await
            .unwrap()
            .state(DeliveryState::Dead),
        2
    );

    let purged = ok(&run(
        &["queue", "purge", "--older-than", "0s", "--yes"],
        &url,
    ));
    assert!(
        purged.contains("Deleted 2 dead letters that died before "),
        "{purged}"
    );
    let counts = queue.counts(&DeliveryFilter::new()).await.unwrap();
    assert_eq!(counts.state(DeliveryState::Dead), 0);
    assert_eq!(counts.total(), 3);
    assert!(queue.delivery("msg_e5").await.unwrap().is_none());

    let output = run(&["queue", "purge"], &url);
    assert_eq!(status(&output), 2);
    assert_stderr_contains(&output, "--older-than");
    let output = run(&["queue", "purge", "--older-than", "a month"], &url);
    assert_eq!(status(&output), 2);
    assert_stderr_contains(&output, "duration ago");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_by_state_and_type() {
    let (_scratch, url, _queue) = sqlite_queue("queue-stats").await;
    let text = ok(&run(&["queue", "stats"], &url));
    for expected in [
        "5 deliveries in the SQLite file",
        "  waiting   1\n",
        "  running   0\n",
        "  retrying  1\n",
        "  done      1\n",
        "  dead      2\n",
        "by type\n  contract.updated                2\n",
        "  producersync.updates_available  1\n",
        "oldest waiting: ",
    ] {
        assert!(text.contains(expected), "{expected:?}:\n{text}");
    }
    let text = ok(&run(
        &["queue", "stats", "--type", "contract", "--since", "1h"],
        &url,
    ));
    assert!(
        text.starts_with("3 deliveries of group contract received since "),
        "{text}"
    );
    assert!(!text.contains("producersync"), "{text}");

    let object = &json_lines(&ok(&run(&["queue", "stats", "--format", "json"], &url)))[0];
    assert_eq!(object["total"], 5);
    assert_eq!(object["by_state"]["dead"], 2);
    assert_eq!(object["by_state"]["running"], 0);
    assert_eq!(object["by_type"]["contract.updated"], 2);
    assert!(object["oldest_waiting_age_ms"].is_u64(), "{object}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_is_queue_with_state_dead() {
    let (_scratch, url, _queue) = sqlite_queue("queue-dlq").await;
    assert_eq!(
        ok(&run(&["dlq", "list"], &url)),
        ok(&run(&["queue", "list", "--state", "dead"], &url))
    );
    assert_eq!(
        ok(&run(
            &[
                "dlq",
                "list",
                "--type",
                "contract.updated",
                "--format",
                "json"
            ],
            &url
        )),
        ok(&run(
            &[
                "queue",
                "list",
                "--state",
                "dead",
                "--type",
                "contract.updated",
                "--format",
                "json"
            ],
            &url
        ))
    );
    assert_eq!(
        ok(&run(&["dlq", "show", "msg_c3"], &url)),
        ok(&run(&["queue", "show", "msg_c3"], &url))
    );
    let not_dead = run(&["dlq", "show", "msg_b2"], &url);
    assert_eq!(status(&not_dead), 1);
    assert_stderr_contains(
        &not_dead,
        "msg_b2 is not in the dead letters of the SQLite file",
    );
    assert_stderr_contains(&not_dead, "it is retrying");
    let replayed = run(&["dlq", "replay", "msg_a1"], &url);
    assert_eq!(status(&replayed), 1);
    assert_eq!(stdout(&replayed), "msg_a1  not in the dead letters\n");
    let refused = run(&["dlq", "replay", "--all"], &url);
    assert_eq!(status(&refused), 2);
    assert_stdout_contains(&refused, "2 dead letters in the SQLite file");
}

/// A body whose envelope says its event occurred `late_ms` before `received_at_ms`.
fn body_occurred(event_type: &str, received_at_ms: i64, late_ms: i64) -> Vec<u8> {
    let occurred = chrono::DateTime::from_timestamp_millis(received_at_ms - late_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!(r#"{{"type":"{event_type}","timestamp":"{occurred}","data":{{}}}}"#).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_each_delay_and_filters_the_late_ones() {
    let scratch = Scratch::new("queue-delay");
    let file = scratch.path("queue.sqlite3");
    let queue = Queue::sqlite(&file).await.unwrap();
    let url = format!("sqlite://{file}");
    // (id, received minutes ago, received minus occurred in ms)
    for (id, minutes_ago, late_ms) in [
        ("msg_late", 3, 2 * 3_600_000),
        ("msg_prompt", 2, 4_000),
        ("msg_edge", 1, 15 * MINUTE_MS),
    ] {
        let mut one = delivery(id, "contract.updated", minutes_ago, b"");
        one.body = body_occurred("contract.updated", one.received_at_ms, late_ms).into();
        assert_eq!(queue.enqueue(&one).await.unwrap(), Enqueued::New);
    }

    let text = ok(&run(&["queue", "list"], &url));
    let line = |id: &str| {
        text.lines()
            .find(|line| line.contains(id))
            .unwrap_or_else(|| panic!("{id}: {text}"))
            .to_owned()
    };
    assert!(line("msg_late").contains("delay 2h 00m"), "{text}");
    assert!(line("msg_prompt").contains("delay 4 s"), "{text}");
    assert!(line("msg_edge").contains("delay 15m 00s"), "{text}");

    let late = ok(&run(&["queue", "list", "--delayed-over", "15m"], &url));
    assert_eq!(listed_ids(&late), ["msg_edge", "msg_late"], "{late}");
    assert!(
        late.contains(
            "2 of 2 deliveries received at least 15m 00s after their event occurred shown"
        ),
        "{late}"
    );
    assert_eq!(
        list(&url, &["--delayed-over", "1h", "--state", "waiting"]),
        ["msg_late"]
    );
    assert!(list(&url, &["--delayed-over", "3h"]).is_empty());

    let output = run(
        &["queue", "list", "--delayed-over", "1h", "--format", "json"],
        &url,
    );
    let objects = json_lines(&ok(&output));
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0]["webhook_id"], "msg_late");
    assert_eq!(objects[0]["delay_ms"], 2 * 3_600_000);
    let received = objects[0]["received_at_ms"].as_i64().unwrap();
    assert_eq!(objects[0]["occurred_at_ms"], received - 2 * 3_600_000);
    assert!(objects[0]["occurred_at"].as_str().unwrap().ends_with('Z'));

    let shown = ok(&run(&["queue", "show", "msg_late"], &url));
    let occurred = shown
        .lines()
        .find(|line| line.starts_with("occurred at "))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(occurred.ends_with("(delay 2h 00m)"), "{shown}");
    let json = ok(&run(
        &["queue", "show", "msg_late", "--format", "json"],
        &url,
    ));
    let record: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(record["delay_ms"], 2 * 3_600_000);
    assert_eq!(record["occurred_at_stand_in"], false);
}

#[test]
fn bad_filters_exit_2() {
    let scratch = Scratch::new("queue-bad-input");
    let url = format!("sqlite://{}", scratch.path("queue.sqlite3"));
    for (args, expected) in [
        (
            &["queue", "list", "--state", "lost"][..],
            "unknown delivery state",
        ),
        (
            &["queue", "list", "--since", "yesterday"][..],
            "duration ago",
        ),
        (&["queue", "list", "--until", "5"][..], "RFC 3339"),
        (
            &["queue", "list", "--since", "1h", "--until", "2h"][..],
            "is not before --until",
        ),
        (
            &["queue", "list", "--after", "page2"][..],
            "invalid page cursor",
        ),
        (&["queue", "list", "--limit", "0"][..], "--limit"),
        (
            &["queue", "list", "--id", "a", "--id-prefix", "b"][..],
            "cannot be used with",
        ),
        (&["queue", "list", "--type", ""][..], "an event type"),
        (&["queue", "list", "--format", "yaml"][..], "--format"),
        (
            &["queue", "list", "--delayed-over", "15"][..],
            "expected a duration",
        ),
        (&["queue", "show"][..], "<ID>"),
        (
            &["queue", "replay", "--limit", "1001", "--state", "dead"][..],
            "--limit",
        ),
    ] {
        let output = run(args, &url);
        assert_eq!(status(&output), 2, "{args:?}: {}", stderr(&output));
        assert!(stdout(&output).is_empty(), "{args:?}");
        assert_stderr_contains(&output, expected);
    }
    // A file that is not there is not created.
    let output = run(&["queue", "list"], &url);
    assert_eq!(status(&output), 1);
    assert_stderr_contains(&output, "no queue at the SQLite file");
}

/// A name unique to this run of this process, for keys and databases.
fn run_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}_{nanos:x}", std::process::id())
}

/// `queue list` and `queue show` against `queue` (filled here) at `args`.
async fn list_and_show_on(queue: &Queue, queue_args: &[&str]) {
    fill(queue).await;
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(queue_args);
        let mut command = common::command(&all);
        command.env_remove("AGENTSYNC_QUEUE_URL");
        command.output().unwrap()
    };
    let text = ok(&with(&[
        "queue",
        "list",
        "--state",
        "retrying,dead",
        "--since",
        "1h",
    ]));
    assert_eq!(listed_ids(&text), ["msg_e5", "msg_c3", "msg_b2"], "{text}");
    let text = ok(&with(&["queue", "list", "--limit", "2"]));
    assert_eq!(listed_ids(&text), ["msg_e5", "msg_d4"], "{text}");
    let cursor = next_cursor(&text).expect("a next page");
    let text = ok(&with(&[
        "queue", "list", "--limit", "5", "--after", &cursor,
    ]));
    assert_eq!(listed_ids(&text), ["msg_c3", "msg_b2", "msg_a1"], "{text}");

    let text = ok(&with(&["queue", "show", "msg_e5"]));
    for expected in [
        "state              dead\n",
        "webhook-signature  v1,K5oZfzN9... (shortened)\n",
        "\"npn\": \"1234567\"",
        "  pull failed: timeout after 30 s\n",
        "failed, dead",
    ] {
        assert!(text.contains(expected), "{expected:?}:\n{text}");
    }
    assert!(!text.contains(SIGNATURE));
}

/// `REDIS_URL`, and whether it was set (then Redis is required).
fn redis_url() -> (String, bool) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => ("redis://127.0.0.1:6379".to_owned(), false),
    }
}

/// Deletes the keys under a test's prefix when the test ends.
struct DropKeys {
    url: String,
    prefix: String,
}

impl Drop for DropKeys {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_deliveries_are_listed_and_shown() {
    let (url, required) = redis_url();
    let prefix = format!("agentsync-webhooks-test:cli-queue:{}:", run_name());
    let backend = match RedisBackend::connect_with(&url, RedisOptions::new().prefix(prefix.clone()))
        .await
    {
        Ok(backend) => backend,
        Err(err) if required => panic!("REDIS_URL={url} is set but Redis is unreachable: {err}"),
        Err(err) => {
            eprintln!("skipping: no Redis at {url} ({err}); set REDIS_URL to require it");
            return;
        }
    };
    let _cleanup = DropKeys {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let queue = Queue::new(backend);
    list_and_show_on(&queue, &["--queue", &url, "--redis-prefix", &prefix]).await;
}

/// `POSTGRES_URL`, and whether it was set (then PostgreSQL is required).
fn postgres_url() -> (String, bool) {
    match std::env::var("POSTGRES_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => ("postgres://postgres@127.0.0.1:5432/test".to_owned(), false),
    }
}

/// A database of its own on the server of `admin_url`, dropped (with its connections) on drop.
struct ScratchDatabase {
    admin_url: String,
    name: String,
    /// `admin_url` with this database in its path.
    url: String,
}

impl ScratchDatabase {
    async fn create(admin_url: &str) -> Result<Self, tokio_postgres::Error> {
        let name = format!("agentsync_cli_queue_{}", run_name());
        execute(admin_url, &format!("CREATE DATABASE {name}")).await?;
        let mut url = reqwest::Url::parse(admin_url).unwrap();
        url.set_path(&format!("/{name}"));
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // A runtime of its own, on a thread of its own: drop may run inside the test's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime
                .block_on(execute(
                    &admin_url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ))
                .ok()
        });
        let _ = dropped.join();
    }
}

/// Runs one statement on a connection of its own.
async fn execute(url: &str, statement: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let result = client.batch_execute(statement).await;
    drop(client);
    let _ = driver.await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_deliveries_are_listed_and_shown() {
    let (admin_url, required) = postgres_url();
    let database = match ScratchDatabase::create(&admin_url).await {
        Ok(database) => database,
        Err(err) if required => {
            panic!("POSTGRES_URL is set but no database could be created there: {err}")
        }
        Err(err) => {
            eprintln!(
                "skipping: no PostgreSQL at {admin_url} ({err}); set POSTGRES_URL to require it"
            );
            return;
        }
    };
    let queue = Queue::postgres(&database.url).await.unwrap();
    list_and_show_on(&queue, &["--queue", &database.url]).await;
    drop(queue);
}

/// A Redis Cluster URL (`redis+cluster://`, `rediss+cluster://`, the seed nodes comma-separated)
/// is a queue URL, as `Queue::from_url` reads it: with no cluster there, `queue stats` fails to
/// connect (exit 1, the nodes named, the password never), not to parse (exit 2). With
/// `REDIS_CLUSTER_URL` set (`.ci/redis-cluster.sh start`), `queue stats` runs against it.
#[test]
fn a_redis_cluster_url_is_accepted() {
    let closed = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port()
    };
    let (a, b) = (closed(), closed());
    for scheme in ["redis+cluster", "rediss+cluster"] {
        let url = format!("{scheme}://:hunter2@127.0.0.1:{a},127.0.0.1:{b}");
        let output = run(&["queue", "stats"], &url);
        assert_eq!(status(&output), 1, "{}{}", stdout(&output), stderr(&output));
        assert_stderr_contains(
            &output,
            &format!("cannot open the queue at {scheme}://127.0.0.1:{a},127.0.0.1:{b}"),
        );
        assert!(!stderr(&output).contains("hunter2"), "{}", stderr(&output));
    }
    let output = run(
        &["queue", "stats"],
        "redis+cluster://127.0.0.1:1,,127.0.0.1:2",
    );
    assert_eq!(status(&output), 2, "{}", stderr(&output));
    if let Ok(cluster) = std::env::var("REDIS_CLUSTER_URL") {
        ok(&run(&["queue", "stats"], &cluster));
    } else {
        eprintln!("REDIS_CLUSTER_URL is not set: queue stats against a cluster skipped");
    }
}
