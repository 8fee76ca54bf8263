//! `SqliteBackend` on real SQLite files: the shared queue contract, durability across a reopen,
//! the claim path's indexes, and the retention purge.
#![cfg(feature = "sqlite")]

use std::time::Duration;

use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, Enqueued, Queue,
    contract::QueueContract,
    sqlite::{SqliteBackend, SqliteOptions},
};

async fn contract(case: &'static str) -> Option<QueueContract> {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(dir.path().join("queue.sqlite3"))
        .await
        .unwrap();
    Some(QueueContract::new(backend, case).keep_alive(dir))
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

#[tokio::test]
async fn claims_and_purges_go_through_indexes_never_a_table_scan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    drop(SqliteBackend::open(&path).await.unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    let plans = [
        (
            "SELECT rowid FROM jobs WHERE state = 'running' AND locked_until_ms <= 1 ORDER BY locked_until_ms LIMIT 5",
            "jobs_lease",
        ),
        (
            "SELECT rowid FROM jobs WHERE state = 'queued' AND next_run_at_ms <= 1 ORDER BY next_run_at_ms LIMIT 5",
            "jobs_due",
        ),
        (
            "SELECT rowid FROM jobs WHERE state = 'done' AND done_at_ms <= 1 LIMIT 5",
            "jobs_done",
        ),
        (
            "SELECT count(*), min(received_at_ms) FROM jobs WHERE state IN ('queued', 'running')",
            "jobs_pending",
        ),
    ];
    for (sql, index) in plans {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let plan: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains(index), "{sql}: {plan}");
        assert!(
            !plan.starts_with("SCAN jobs") || plan.contains("INDEX"),
            "{sql}: {plan}"
        );
    }
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
}

#[tokio::test]
async fn done_rows_are_purged_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open_with(
        dir.path().join("queue.sqlite3"),
        SqliteOptions::new().retention(Duration::from_millis(1)),
    )
    .await
    .unwrap();
    backend.enqueue(&delivery("msg_done")).await.unwrap();
    let job = backend
        .claim(1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    assert!(backend.complete(&job).await.unwrap());
    // Within the retention a done id is a duplicate, past it the next claim purges it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    backend.claim(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        backend.enqueue(&delivery("msg_done")).await.unwrap(),
        Enqueued::New
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
