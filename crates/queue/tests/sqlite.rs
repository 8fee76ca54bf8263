//! `SqliteBackend` on real SQLite files: the shared queue contract, durability across a reopen,
//! the claim path's indexes, and the retention purge.
#![cfg(feature = "sqlite")]

use std::time::Duration;

use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, Enqueued, Purged, Queue,
    contract::{self, QueueContract},
    sqlite::{STATEMENTS, SqliteBackend, SqliteOptions},
};

async fn contract(case: &'static str) -> Option<QueueContract> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    let options = || {
        SqliteOptions::new()
            .retention(contract::RETENTION)
            .dead_retention(contract::DEAD_RETENTION)
    };
    let first = SqliteBackend::open_with(&path, options()).await.unwrap();
    // A second handle on the file: its own connection and thread, as a second process has.
    let second = SqliteBackend::open_with(&path, options()).await.unwrap();
    Some(
        QueueContract::new(first, case)
            .second_instance(second)
            .keep_alive(dir),
    )
}

agentsync_webhooks_queue::queue_contract_tests!(contract);

#[tokio::test]
async fn a_stored_delivery_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    {
        let queue = Queue::sqlite(&path).await.unwrap();
        assert_eq!(
            queue.enqueue(&delivery("msg_1")).await.unwrap(),
            Enqueued::New
        );
    }
    let queue = Queue::sqlite(&path).await.unwrap();
    assert_eq!(
        queue.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::Duplicate
    );
    let jobs = queue
        .backend()
        .claim(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].delivery, delivery("msg_1"));
}

#[tokio::test]
async fn from_url_opens_sqlite_files_and_names_missing_features() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("by-url.sqlite3");
    let url = format!("sqlite://{}", path.display());
    let queue = Queue::from_url(&url).await.unwrap();
    assert_eq!(
        queue.enqueue(&delivery("msg_url")).await.unwrap(),
        Enqueued::New
    );
    drop(queue);
    assert!(path.exists(), "{url} did not create {}", path.display());
    let queue = Queue::from_url(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(
        queue.enqueue(&delivery("msg_url")).await.unwrap(),
        Enqueued::Duplicate
    );

    let err = Queue::from_url("ftp://example").await.unwrap_err();
    assert!(err.to_string().contains("unknown queue URL"), "{err}");
    #[cfg(not(feature = "redis"))]
    {
        let err = Queue::from_url("redis://127.0.0.1:6379").await.unwrap_err();
        assert!(err.to_string().contains("`redis` cargo feature"), "{err}");
    }
    #[cfg(not(feature = "postgres"))]
    {
        let err = Queue::from_url("postgres://localhost/db")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("`postgres` cargo feature"),
            "{err}"
        );
    }
}

/// The index each statement that reads rows must search (`None`: by primary key or rowid).
fn expected_index(name: &str) -> Option<&'static str> {
    match name {
        "select_expired" | "abandon" => Some("jobs_lease"),
        "select_due" => Some("jobs_due"),
        "pending" => Some("jobs_pending"),
        "purge_done" => Some("jobs_done"),
        "dead_letters" | "dead_count" | "purge_dead" => Some("jobs_dead_order"),
        _ => None,
    }
}

#[tokio::test]
async fn every_statement_goes_through_an_index_never_a_table_scan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    drop(SqliteBackend::open(&path).await.unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    for (name, sql) in STATEMENTS {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let unbound = vec![rusqlite::types::Null; statement.parameter_count()];
        let plan: Vec<String> = statement
            .query_map(rusqlite::params_from_iter(unbound), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        if let Some(index) = expected_index(name) {
            assert!(plan.contains(index), "{name}: {plan}");
        }
        for step in plan.split("; ") {
            assert!(
                !step.starts_with("SCAN jobs") || step.contains("INDEX"),
                "{name} scans the table: {plan}"
            );
        }
        assert!(
            !plan.contains("USE TEMP B-TREE FOR ORDER BY"),
            "{name} sorts instead of reading an index in order: {plan}"
        );
    }
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
}

#[tokio::test]
async fn done_rows_are_purged_after_the_retention_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open_with(
        dir.path().join("queue.sqlite3"),
        SqliteOptions::new().retention(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    for n in 0..501 {
        backend
            .enqueue(&delivery(&format!("msg_done_{n}")))
            .await
            .unwrap();
    }
    let jobs = backend.claim(600, Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.len(), 501);
    for job in &jobs {
        assert!(backend.complete(job).await.unwrap());
    }
    assert_eq!(
        backend.enqueue(&delivery("msg_done_0")).await.unwrap(),
        Enqueued::Duplicate,
        "within the retention a done id is a duplicate"
    );
    assert_eq!(backend.purge().await.unwrap(), Purged::default());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let first = backend.purge().await.unwrap();
    assert_eq!(
        (first.done, first.more),
        (500, true),
        "one batch: {first:?}"
    );
    let second = backend.purge().await.unwrap();
    assert_eq!(
        (second.done, second.more),
        (1, false),
        "the rest: {second:?}"
    );
    assert_eq!(
        backend.enqueue(&delivery("msg_done_0")).await.unwrap(),
        Enqueued::New
    );
}

/// A transaction left open on the engine's connection (a failed COMMIT whose ROLLBACK failed
/// too) is rolled back before the next group, never committed with it: before, `BEGIN
/// IMMEDIATE` failed, the group ran inside the open transaction and the enqueue was answered
/// `New` without being committed.
#[tokio::test]
async fn a_transaction_left_open_is_rolled_back_never_answered_as_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    let backend = SqliteBackend::open(&path).await.unwrap();
    backend
        .execute_alone_for_tests(
            "BEGIN; INSERT INTO jobs (webhook_id, event_type, webhook_timestamp, signature, \
             received_at_ms, body, state, next_run_at_ms) \
             VALUES ('msg_stray', 't', 0, 's', 0, X'', 'queued', 0);",
        )
        .await
        .unwrap();
    assert_eq!(
        backend.enqueue(&delivery("msg_answered")).await.unwrap(),
        Enqueued::New
    );
    // What another connection sees is what was committed.
    let reader = rusqlite::Connection::open(&path).unwrap();
    let ids: Vec<String> = reader
        .prepare("SELECT webhook_id FROM jobs ORDER BY webhook_id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        ids,
        ["msg_answered"],
        "the answered enqueue is committed, the stray transaction's write is not"
    );
}

#[tokio::test]
async fn a_file_that_cannot_be_opened_is_an_unreachable_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Queue::sqlite(dir.path().join("no-such-dir").join("queue.sqlite3"))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        agentsync_webhooks_queue::StoreErrorKind::Unreachable,
        "{err}"
    );
}

#[tokio::test]
async fn an_empty_url_is_the_default_file_in_the_working_directory() {
    // The only test that changes the working directory; every other one uses absolute paths.
    let dir = tempfile::tempdir().unwrap();
    let previous = std::env::current_dir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let opened = Queue::from_url("").await;
    std::env::set_current_dir(previous).unwrap();
    let queue = opened.unwrap();
    assert_eq!(
        queue.enqueue(&delivery("msg_default")).await.unwrap(),
        Enqueued::New
    );
    assert!(
        dir.path()
            .join(agentsync_webhooks_queue::sqlite::DEFAULT_FILE)
            .exists()
    );
}

/// Set in the child process of [`every_answered_enqueue_survives_a_kill_9`]: the queue file.
const ENQUEUER_CHILD: &str = "AGENTSYNC_QUEUE_TEST_SQLITE_ENQUEUER";

/// Not a test of its own: the process the kill test starts, which enqueues one delivery after the
/// other and prints `stored <webhook-id>` once each is answered, until it is killed.
#[tokio::test]
async fn child_enqueuer() {
    use std::io::Write;
    let Some(path) = std::env::var_os(ENQUEUER_CHILD) else {
        return;
    };
    let queue = Queue::sqlite(path).await.unwrap();
    // Bounded, so that an orphan stops on its own.
    for n in 0..100_000 {
        let id = format!("msg_kill_{n}");
        assert_eq!(queue.enqueue(&delivery(&id)).await.unwrap(), Enqueued::New);
        let mut out = std::io::stdout().lock();
        writeln!(out, "stored {id}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn every_answered_enqueue_survives_a_kill_9() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_enqueuer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENQUEUER_CHILD, &path)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut answered = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while answered.len() < 200 {
            let Some(line) = lines.next_line().await.unwrap() else {
                panic!("the enqueuer ended before it was killed");
            };
            // The harness's "test child_enqueuer ... " has no line end of its own.
            if let Some((_, id)) = line.split_once("stored ") {
                answered.push(id.to_owned());
            }
        }
    })
    .await
    .expect("the enqueuer answered 200 deliveries");
    // SIGKILL, as `kill -9`, while it is still enqueueing.
    child.start_kill().unwrap();
    assert!(!child.wait().await.unwrap().success());

    let queue = Queue::sqlite(&path).await.unwrap();
    for id in &answered {
        assert_eq!(
            queue.enqueue(&delivery(id)).await.unwrap(),
            Enqueued::Duplicate,
            "{id} was answered, then lost to the kill"
        );
    }
    let stored = queue.stats().await.unwrap().depth;
    assert!(stored >= answered.len() as u64, "{stored} stored");
}
