//! `dlq list|show|replay` as a real process against real queues: a SQLite file in a scratch
//! directory, the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`) under a key prefix of
//! its own, and the PostgreSQL at `POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! in a database of its own, created and dropped by the test. The dead letters are made with the
//! library, as a service's workers make them: enqueued, claimed, then buried.
//!
//! When `REDIS_URL` (`POSTGRES_URL`) is set, an unreachable Redis (PostgreSQL) fails its test;
//! when it is not, that test is skipped with a note.

mod common;

use std::{
    net::TcpListener,
    path::Path,
    process::Output,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agentsync_webhooks_queue::{
    Queue, ReceivedDelivery,
    redis::{RedisBackend, RedisOptions},
    sqlite::DEFAULT_FILE,
};
use common::{Scratch, assert_stderr_contains, stderr, stdout};

const LEASE: Duration = Duration::from_secs(30);

/// A JSON delivery of `event_type` received at `received_at_ms`.
fn delivery(webhook_id: &str, event_type: &str, body: &[u8]) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: webhook_id.to_owned(),
        event_type: event_type.to_owned(),
        webhook_timestamp: 1_700_000_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".to_owned(),
        received_at_ms: 1_700_000_000_123,
        body: body.to_vec().into(),
    }
}

const UPDATES_BODY: &[u8] =
    br#"{"type":"producersync.updates_available","data":{"npn":"1234567","changes":[]}}"#;

/// Enqueues `deliveries`, claims them (one attempt each) and buries them with `error`, in order.
async fn bury(queue: &Queue, deliveries: &[ReceivedDelivery], error: &str) {
    for delivery in deliveries {
        queue.enqueue(delivery).await.unwrap();
        let jobs = queue.backend().claim(1, LEASE).await.unwrap();
        assert_eq!(jobs.len(), 1, "{} was claimed", delivery.webhook_id);
        assert_eq!(jobs[0].delivery.webhook_id, delivery.webhook_id);
        assert!(queue.backend().bury(&jobs[0], error).await.unwrap());
        // A distinct died-at for each, so that the order is the burial order.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `agentsync-webhooks ARGS` run to completion, with no queue URL from the environment.
fn run(args: &[&str]) -> Output {
    run_in(args, None, None)
}

/// `agentsync-webhooks ARGS` run in `dir` (or here) with `AGENTSYNC_QUEUE_URL` set to `env_url`
/// (or unset).
fn run_in(args: &[&str], dir: Option<&Path>, env_url: Option<&str>) -> Output {
    let mut command = common::command(args);
    command.env_remove("AGENTSYNC_QUEUE_URL");
    if let Some(url) = env_url {
        command.env("AGENTSYNC_QUEUE_URL", url);
    }
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().unwrap()
}

fn status(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// Whether `text` starts with an RFC 3339 UTC time with milliseconds.
fn starts_with_rfc3339(text: &str) -> bool {
    let time = text.split_whitespace().next().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z') && time.len() == 24
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// A localhost port that nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dead_letters_are_listed_shown_and_replayed() {
    let scratch = Scratch::new("dlq-sqlite");
    let file = scratch.path("queue.sqlite3");
    let url = format!("sqlite://{file}");
    let queue = Queue::sqlite(&file).await.unwrap();
    bury(
        &queue,
        &[delivery(
            "msg_updates",
            "producersync.updates_available",
            UPDATES_BODY,
        )],
        "pull failed: HTTP 503 from the PSAPI\n  after 3 pages",
    )
    .await;
    bury(
        &queue,
        &[delivery(
            "msg_text",
            "contract.updated",
            b"not json \x1b[31m\xff",
        )],
        "permanent: unknown contract",
    )
    .await;
    queue
        .enqueue(&delivery("msg_waiting", "contract.created", b"{}"))
        .await
        .unwrap();
    drop(queue);

    // list: newest first (by received-at, then webhook-id), one line each, then the counts.
    let listed = run(&["dlq", "list", "--queue", &url]);
    assert_eq!(status(&listed), 0, "{}", stderr(&listed));
    let text = stdout(&listed);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(starts_with_rfc3339(lines[0]), "{text}");
    for expected in [
        "msg_updates",
        "producersync.updates_available",
        "1 attempt",
        "pull failed: HTTP 503 from the PSAPI after 3 pages",
    ] {
        assert!(lines[0].contains(expected), "{expected}: {text}");
    }
    assert!(lines[1].contains("msg_text") && lines[1].contains("contract.updated"));
    assert!(lines[1].ends_with("permanent: unknown contract"), "{text}");
    assert_eq!(
        lines[2],
        "2 of 2 dead letters shown, newest first (all states: 1 waiting, 2 dead)."
    );

    let limited = run(&["dlq", "list", "--queue", &url, "--limit", "1"]);
    let text = stdout(&limited);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("msg_updates") && !text.contains("msg_text"));
    assert!(text.contains("1 of 2 dead letters shown"), "{text}");
    let cursor = text
        .lines()
        .find_map(|line| line.strip_prefix("next page: --after "))
        .expect("the next page's cursor");
    let next = stdout(&run(&[
        "dlq", "list", "--queue", &url, "--limit", "1", "--after", cursor,
    ]));
    assert!(
        next.contains("msg_text") && !next.contains("msg_updates"),
        "{next}"
    );

    // list --format json: only objects on stdout, the counts on stderr.
    let listed = run(&["dlq", "list", "--queue", &url, "--format", "json"]);
    assert_eq!(status(&listed), 0, "{}", stderr(&listed));
    let objects = json_lines(&listed);
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["webhook_id"], "msg_updates");
    assert_eq!(objects[0]["type"], "producersync.updates_available");
    assert_eq!(objects[0]["attempts"], 1);
    assert_eq!(
        objects[0]["last_error"],
        "pull failed: HTTP 503 from the PSAPI\n  after 3 pages"
    );
    assert_eq!(objects[0]["received_at"], "2023-11-14T22:13:20.123Z");
    assert_eq!(objects[0]["state"], "dead");
    assert_eq!(objects[1]["webhook_id"], "msg_text");
    assert!(stderr(&listed).contains("2 of 2 dead letters shown"));

    // show: everything, the JSON body pretty-printed in its own order.
    let shown = run(&["dlq", "show", "msg_updates", "--queue", &url]);
    assert_eq!(status(&shown), 0, "{}", stderr(&shown));
    let text = stdout(&shown);
    for expected in [
        "webhook-id         msg_updates",
        "type               producersync.updates_available",
        "attempts           1",
        "received at        2023-11-14T22:13:20.123Z",
        "webhook-timestamp  1700000000 (2023-11-14T22:13:20Z)",
        "webhook-signature  v1,K5oZfzN9... (shortened)",
        "  pull failed: HTTP 503 from the PSAPI\n    after 3 pages",
        "body (79 bytes, JSON)\n{\n  \"type\": \"producersync.updates_available\",\n  \"data\": {\n    \"npn\": \"1234567\",\n    \"changes\": []\n  }\n}",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("died at ") && starts_with_rfc3339(&l[19..]))
    );

    // A body that is not JSON is shown as text, lossily, without raw control characters.
    let shown = run(&["dlq", "show", "msg_text", "--queue", &url]);
    let text = stdout(&shown);
    assert!(
        text.contains("body (15 bytes, not JSON, shown as text)\nnot json \\u{1b}[31m\u{fffd}"),
        "{text}"
    );
    assert!(!text.contains('\x1b'));

    let shown = run(&[
        "dlq",
        "show",
        "msg_updates",
        "--queue",
        &url,
        "--format",
        "json",
    ]);
    let object = &json_lines(&shown)[0];
    assert_eq!(object["webhook_signature"], "v1,K5oZfzN9...");
    assert!(!stdout(&shown).contains("K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN"));
    assert_eq!(object["body_is_json"], true);
    assert_eq!(object["body"]["data"]["npn"], "1234567");
    assert_eq!(object["webhook_timestamp"], 1_700_000_000);

    // An id that is not a dead letter (waiting, or unknown): a message and exit 1.
    for id in ["msg_waiting", "msg_unknown"] {
        let missing = run(&["dlq", "show", id, "--queue", &url]);
        assert_eq!(status(&missing), 1, "{id}");
        assert!(stdout(&missing).is_empty());
        assert_stderr_contains(
            &missing,
            &format!("{id} is not in the dead letters of the SQLite file"),
        );
    }

    // replay: one line per id, exit 1 because one was not there.
    let replayed = run(&[
        "dlq",
        "replay",
        "msg_updates",
        "msg_unknown",
        "--queue",
        &url,
    ]);
    assert_eq!(status(&replayed), 1);
    assert_eq!(
        stdout(&replayed),
        "msg_updates  replayed\nmsg_unknown  not in the dead letters\n"
    );
    assert!(stderr(&replayed).contains("1 of 2 ids were not in the dead letters"));

    let listed = stdout(&run(&["dlq", "list", "--queue", &url]));
    assert!(!listed.contains("msg_updates") && listed.contains("msg_text"));
    assert!(
        listed.contains("1 of 1 dead letter shown, newest first (all states: 2 waiting, 1 dead)."),
        "{listed}"
    );

    // The replayed job is claimable again, as a first attempt.
    let queue = Queue::sqlite(&file).await.unwrap();
    let jobs = queue.backend().claim(10, LEASE).await.unwrap();
    let replayed_job = jobs
        .iter()
        .find(|job| job.delivery.webhook_id == "msg_updates")
        .expect("the replayed job is claimable");
    assert_eq!(replayed_job.attempt, 1);
    assert_eq!(replayed_job.delivery.body.as_ref(), UPDATES_BODY);
    drop(queue);

    // replay --all: a bulk action, so asked first; without a terminal, only with --yes.
    let refused = run(&["dlq", "replay", "--all", "--queue", &url]);
    assert_eq!(status(&refused), 2, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    // The rest; then the list says there is none.
    let replayed = run(&["dlq", "replay", "--all", "--yes", "--queue", &url]);
    assert_eq!(status(&replayed), 0, "{}", stderr(&replayed));
    assert!(
        stdout(&replayed).ends_with("Replayed 1 dead letter.\n"),
        "{}",
        stdout(&replayed)
    );
    let listed = run(&["dlq", "list", "--queue", &url]);
    assert_eq!(status(&listed), 0);
    assert!(
        stdout(&listed).starts_with("No dead letters in the SQLite file"),
        "{}",
        stdout(&listed)
    );
    let replayed = run(&["dlq", "replay", "--all", "--queue", &url]);
    assert_eq!(status(&replayed), 0);
    assert!(stdout(&replayed).contains("nothing to replay"));
}

#[tokio::test]
async fn the_queue_comes_from_the_environment_or_the_default_file() {
    let scratch = Scratch::new("dlq-default");
    let queue = Queue::sqlite(scratch.0.join(DEFAULT_FILE)).await.unwrap();
    bury(
        &queue,
        &[delivery("msg_default", "contract.updated", b"{}")],
        "boom",
    )
    .await;
    drop(queue);

    // Unset, and set but empty: the default file in the working directory.
    for env_url in [None, Some("")] {
        let listed = run_in(&["dlq", "list"], Some(&scratch.0), env_url);
        assert_eq!(status(&listed), 0, "{}", stderr(&listed));
        assert!(stdout(&listed).contains("msg_default"));
    }
    let env_url = format!("sqlite://{}", scratch.path(DEFAULT_FILE));
    let listed = run_in(&["dlq", "list"], None, Some(&env_url));
    assert_eq!(status(&listed), 0, "{}", stderr(&listed));
    assert!(stdout(&listed).contains("msg_default"));
}

#[test]
fn bad_input_exits_2_and_never_prints_a_password() {
    let scratch = Scratch::new("dlq-bad-input");
    let url = format!("sqlite://{}", scratch.path("queue.sqlite3"));
    let cases: &[(&[&str], &str)] = &[
        (&["dlq", "list", "--limit", "0"], "--limit"),
        (&["dlq", "list", "--limit", "many"], "--limit"),
        (&["dlq", "list", "--format", "yaml"], "--format"),
        (&["dlq", "replay"], "or --all"),
        (&["dlq", "replay", "msg_1", "--all"], "cannot be used with"),
        (&["dlq", "show", "msg 1"], "webhook-id"),
        (&["dlq", "show"], "<ID>"),
        (
            &["dlq", "list", "--queue", "mysql://admin:hunter2@db/app"],
            "unknown queue URL",
        ),
        (
            &["dlq", "list", "--queue", "redis://:hunter2@bad host"],
            "not a valid queue URL",
        ),
        (
            &["dlq", "list", "--queue", "sqlite://"],
            "needs a file path",
        ),
        (
            &["dlq", "list", "--queue", &url, "--redis-prefix", "x:"],
            "--redis-prefix is for a Redis queue",
        ),
    ];
    for (args, expected) in cases {
        let output = run(args);
        assert_eq!(status(&output), 2, "{args:?}: {}", stderr(&output));
        assert!(stdout(&output).is_empty(), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains(expected), "{args:?}: {message}");
        assert!(!message.contains("hunter2"), "{args:?}: {message}");
    }
    // The same check for a URL from the environment.
    let output = run_in(
        &["dlq", "list"],
        None,
        Some("amqp://guest:hunter2@127.0.0.1"),
    );
    assert_eq!(status(&output), 2);
    assert!(stderr(&output).contains("bad --queue (or AGENTSYNC_QUEUE_URL)"));
    assert!(!stderr(&output).contains("hunter2"));
}

#[test]
fn an_unreachable_queue_exits_1_naming_what_to_check() {
    let scratch = Scratch::new("dlq-unreachable");

    // A SQLite file that does not exist is not created (it would list nothing).
    let missing = scratch.path("typo.sqlite3");
    let output = run(&["dlq", "list", "--queue", &format!("sqlite://{missing}")]);
    assert_eq!(status(&output), 1);
    assert_stderr_contains(&output, &format!("no queue at the SQLite file {missing}"));
    assert!(stderr(&output).contains("AGENTSYNC_QUEUE_URL"));
    assert!(!Path::new(&missing).exists());
    let output = run_in(&["dlq", "list"], Some(&scratch.0), None);
    assert_eq!(status(&output), 1);
    assert_stderr_contains(&output, DEFAULT_FILE);

    // Servers that do not answer: the scheme and host are named, the password never.
    let port = closed_port();
    for (url, shown, check) in [
        (
            format!("redis://:hunter2@127.0.0.1:{port}/0"),
            format!("redis://127.0.0.1:{port}"),
            "that Redis is running there",
        ),
        (
            format!("postgres://app:hunter2@127.0.0.1:{port}/app"),
            format!("postgres://127.0.0.1:{port}"),
            "that PostgreSQL is running there",
        ),
    ] {
        for args in [
            vec!["dlq", "list", "--queue", &url],
            vec!["dlq", "show", "msg_1", "--queue", &url],
            vec!["dlq", "replay", "msg_1", "--queue", &url],
        ] {
            let output = run(&args);
            let message = stderr(&output);
            assert_eq!(status(&output), 1, "{shown}: {message}");
            assert!(
                message.contains(&format!("cannot open the queue at {shown}")),
                "{message}"
            );
            assert!(message.contains(check), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}

/// A name unique to this run of this process, for keys and databases.
fn run_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}_{nanos:x}", std::process::id())
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
async fn redis_dead_letters_are_listed_shown_and_replayed() {
    let (url, required) = redis_url();
    let prefix = format!("agentsync-webhooks-test:cli-dlq:{}:", run_name());
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
    bury(
        &queue,
        &[
            delivery("msg_r1", "producersync.updates_available", UPDATES_BODY),
            delivery("msg_r2", "contract.updated", b"{}"),
        ],
        "permanent: bad data",
    )
    .await;

    let listed = run(&["dlq", "list", "--queue", &url, "--redis-prefix", &prefix]);
    assert_eq!(status(&listed), 0, "{}", stderr(&listed));
    let text = stdout(&listed);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // Received at the same time: the greater webhook-id first.
    assert!(
        starts_with_rfc3339(lines[0]) && lines[0].contains("msg_r2"),
        "{text}"
    );
    assert!(lines[1].contains("msg_r1") && lines[1].ends_with("permanent: bad data"));
    assert_eq!(
        lines[2],
        "2 of 2 dead letters shown, newest first (all states: 2 dead)."
    );

    let shown = run(&[
        "dlq",
        "show",
        "msg_r1",
        "--queue",
        &url,
        "--redis-prefix",
        &prefix,
        "--format",
        "json",
    ]);
    assert_eq!(status(&shown), 0, "{}", stderr(&shown));
    assert_eq!(json_lines(&shown)[0]["body"]["data"]["npn"], "1234567");

    let replayed = run(&[
        "dlq",
        "replay",
        "msg_r1",
        "--queue",
        &url,
        "--redis-prefix",
        &prefix,
    ]);
    assert_eq!(status(&replayed), 0, "{}", stderr(&replayed));
    assert_eq!(stdout(&replayed), "msg_r1  replayed\n");

    let jobs = queue.backend().claim(10, LEASE).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].delivery.webhook_id, "msg_r1");
    assert_eq!(jobs[0].attempt, 1);
    let remaining = queue.dead_letters(10).await.unwrap();
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].delivery.webhook_id, "msg_r2");
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
        let name = format!("agentsync_cli_dlq_{}", run_name());
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
async fn postgres_dead_letters_are_listed_shown_and_replayed() {
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
    bury(
        &queue,
        &[
            delivery("msg_p1", "producersync.updates_available", UPDATES_BODY),
            delivery("msg_p2", "contract.updated", b"{}"),
        ],
        "permanent: bad data",
    )
    .await;

    // The URL from the environment, as the services read it.
    let listed = run_in(&["dlq", "list"], None, Some(&database.url));
    assert_eq!(status(&listed), 0, "{}", stderr(&listed));
    let text = stdout(&listed);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // Received at the same time: the greater webhook-id first.
    assert!(
        starts_with_rfc3339(lines[0]) && lines[0].contains("msg_p2"),
        "{text}"
    );
    assert!(lines[1].contains("msg_p1") && lines[1].ends_with("permanent: bad data"));
    assert_eq!(
        lines[2],
        "2 of 2 dead letters shown, newest first (all states: 2 dead)."
    );

    let shown = run_in(&["dlq", "show", "msg_p1"], None, Some(&database.url));
    assert_eq!(status(&shown), 0, "{}", stderr(&shown));
    assert!(stdout(&shown).contains("\"npn\": \"1234567\""));

    let replayed = run_in(
        &["dlq", "replay", "msg_p1", "msg_p9"],
        None,
        Some(&database.url),
    );
    assert_eq!(status(&replayed), 1);
    assert_eq!(
        stdout(&replayed),
        "msg_p1  replayed\nmsg_p9  not in the dead letters\n"
    );

    let jobs = queue.backend().claim(10, LEASE).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].delivery.webhook_id, "msg_p1");
    assert_eq!(jobs[0].attempt, 1);
    drop(queue);
}

#[tokio::test]
async fn list_into_a_closed_pipe_ends_quietly() {
    let scratch = Scratch::new("dlq-closed-stdout");
    let file = scratch.path("queue.sqlite3");
    let queue = Queue::sqlite(&file).await.unwrap();
    let dead: Vec<ReceivedDelivery> = (0..20)
        .map(|n| delivery(&format!("msg_{n}"), "contract.updated", b"{}"))
        .collect();
    bury(&queue, &dead, "boom").await;
    drop(queue);
    for format in ["text", "json"] {
        let mut child = common::command(&[
            "dlq",
            "list",
            "--queue",
            &format!("sqlite://{file}"),
            "--format",
            format,
        ])
        .env_remove("AGENTSYNC_QUEUE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        let output = child.wait_with_output().unwrap();
        assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
        assert_eq!(status(&output), 0, "{format}: {}", stderr(&output));
    }
}
