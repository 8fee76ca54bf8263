//! `SqliteBackend` on real SQLite files: the shared queue contract, durability across a reopen,
//! the claim path's indexes, and the retention purge.
#![cfg(feature = "sqlite")]

use std::time::Duration;

use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, Enqueued, Purged, Queue,
    contract::{self, QueueContract},
    sqlite::{SqliteBackend, SqliteOptions, statements_for_tests},
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
agentsync_webhooks_queue::queue_event_time_contract_tests!(contract);

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

/// The index a statement must search, where one is named (`None`: any index, or the primary
/// key).
fn expected_index(name: &str) -> Option<&'static str> {
    match name {
        "select_expired" => Some("jobs_lease"),
        "select_due" => Some("jobs_due"),
        "key_running" => Some("jobs_key_running"),
        "key_head" => Some("jobs_key_waiting"),
        "purge_keys" => Some("ordering_keys_updated"),
        "pending" => Some("jobs_state_received"),
        "purge_done" => Some("jobs_done"),
        "dead_letters" | "purge_dead" | "purge_dead_before" => Some("jobs_dead_order"),
        "list: everything, first page" | "list: everything, next page" => Some("jobs_received"),
        "list: one state, first page" | "list: one state, next page" => Some("jobs_state_received"),
        "list: a type, first page" | "list: a type, next page" => Some("jobs_type_received"),
        "list: a group, first page" | "list: a group, next page" => Some("jobs_group_received"),
        "counts: everything"
        | "counts: a time range"
        | "counts: everything, with windows"
        | "counts: a time range, with windows" => Some("jobs_counts"),
        _ => None,
    }
}

/// Every statement the backend runs, the record's queries for every shape of filter included,
/// goes through an index: never a scan of the table, never a sort of a list's rows.
#[tokio::test]
async fn every_statement_goes_through_an_index_never_a_table_scan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    drop(SqliteBackend::open(&path).await.unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    let statements = statements_for_tests();
    assert!(statements.len() > 40, "{} statements", statements.len());
    for (name, sql) in statements {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let unbound = vec![rusqlite::types::Null; statement.parameter_count()];
        let plan: Vec<String> = statement
            .query_map(rusqlite::params_from_iter(unbound), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        if let Some(index) = expected_index(&name) {
            assert!(plan.contains(index), "{name}: {plan}");
        }
        for step in plan.split("; ") {
            assert!(
                !step.starts_with("SCAN jobs") || step.contains("INDEX"),
                "{name} scans the table: {plan}"
            );
            assert!(
                !step.starts_with("SCAN history"),
                "{name} scans the history: {plan}"
            );
        }
        // An id prefix narrows by the primary key and sorts only what it matched.
        assert!(
            !plan.contains("USE TEMP B-TREE FOR ORDER BY") || name.contains("an id prefix"),
            "{name} sorts instead of reading an index in order: {plan}"
        );
        if name.starts_with("counts") && expected_index(&name).is_some() {
            assert!(
                !plan.contains("USE TEMP B-TREE FOR GROUP BY"),
                "{name} sorts to group: {plan}"
            );
            // The index holds all it counts (state, type, received-at): no row is read.
            assert!(
                plan.contains("COVERING INDEX jobs_counts"),
                "{name} reads rows: {plan}"
            );
        }
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
        SqliteOptions::new()
            .retention(Duration::from_secs(2))
            .record_retention(Duration::from_secs(2)),
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
    tokio::time::sleep(Duration::from_millis(2_500)).await;
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
             VALUES ('msg_stray', 't', 0, 's', 0, X'', 'waiting', 0);",
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

/// A queue file written before the delivery record (schema 1, built here from that version's
/// DDL) opens, is migrated in place once, and keeps what it held: a waiting job, a retrying
/// one, a running one with its lease, a done id (still a duplicate) and a dead letter.
#[tokio::test]
async fn a_queue_of_schema_1_is_migrated_in_place_with_its_jobs_and_dead_letters() {
    use agentsync_webhooks_queue::{
        record::{DeliveryFilter, DeliveryState},
        sqlite::VERSION_1_FOR_TESTS,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    let now = agentsync_webhooks_core::handoff::now_ms();
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(VERSION_1_FOR_TESTS).unwrap();
        let mut insert = old
            .prepare(
                "INSERT INTO jobs (webhook_id, event_type, webhook_timestamp, signature, \
                 received_at_ms, body, state, attempts, next_run_at_ms, locked_until_ms, lease, \
                 last_error, died_at_ms, done_at_ms) \
                 VALUES (?1, ?2, 1700000000, 'v1,sig', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .unwrap();
        // id, type, state, attempts, lease end, lease, last error
        type Row<'a> = (
            &'a str,
            &'a str,
            &'a str,
            i64,
            Option<i64>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let rows: [Row<'_>; 5] = [
            (
                "msg_waiting",
                "contract.signed",
                "queued",
                0,
                None,
                None,
                None,
            ),
            (
                "msg_retrying",
                "producersync.updates_available",
                "queued",
                2,
                None,
                None,
                Some("boom"),
            ),
            (
                "msg_running",
                "id.producer.created",
                "running",
                1,
                Some(now + 600_000),
                Some("lease-1"),
                None,
            ),
            (
                "msg_done",
                "producersync.updates_available",
                "done",
                1,
                None,
                None,
                None,
            ),
            (
                "msg_dead",
                "endpoint.unknown",
                "dead",
                3,
                None,
                None,
                Some("handler_permanent: no"),
            ),
        ];
        for (n, (id, event_type, state, attempts, locked, lease, error)) in rows.iter().enumerate()
        {
            let received = now - 10_000 + i64::try_from(n).unwrap() * 1_000;
            let body: &[u8] = if *state == "done" {
                b""
            } else {
                b"{\"type\":\"x\"}"
            };
            insert
                .execute(rusqlite::params![
                    id,
                    event_type,
                    received,
                    body,
                    state,
                    attempts,
                    now - 5_000,
                    locked,
                    lease,
                    error,
                    (*state == "dead").then_some(now - 1_000),
                    (*state == "done").then_some(now - 2_000),
                ])
                .unwrap();
        }
    }

    let backend = SqliteBackend::open(&path).await.unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT version FROM agentsync_schema", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 3, "migrated to the current version");
    let state = |id: &'static str| {
        let backend = &backend;
        async move { backend.delivery(id).await.unwrap().unwrap().state }
    };
    assert_eq!(state("msg_waiting").await, DeliveryState::Waiting);
    assert_eq!(state("msg_retrying").await, DeliveryState::Retrying);
    assert_eq!(state("msg_running").await, DeliveryState::Running);
    assert_eq!(state("msg_done").await, DeliveryState::Done);
    assert_eq!(state("msg_dead").await, DeliveryState::Dead);
    let dead = backend.dead_letter("msg_dead").await.unwrap().unwrap();
    assert_eq!(
        (dead.attempts, dead.last_error.as_str()),
        (3, "handler_permanent: no")
    );
    assert_eq!(
        backend.enqueue(&delivery("msg_done")).await.unwrap(),
        Enqueued::Duplicate,
        "a done id stays known"
    );
    let group = backend
        .list(&DeliveryFilter::new().event_type("id.producer"), None, 10)
        .await
        .unwrap();
    assert_eq!(
        group.deliveries.len(),
        1,
        "the group of each type was computed"
    );
    // The running job keeps its lease: only the two due ones are claimed, the retry at its
    // third attempt.
    let mut claimed: Vec<(String, u32)> = backend
        .claim(10, Duration::from_secs(30))
        .await
        .unwrap()
        .into_iter()
        .map(|job| (job.delivery.webhook_id, job.attempt))
        .collect();
    claimed.sort();
    assert_eq!(
        claimed,
        [
            ("msg_retrying".to_owned(), 3),
            ("msg_waiting".to_owned(), 1)
        ]
    );
    drop(backend);
    // Opened again: nothing more to migrate, nothing lost.
    let again = SqliteBackend::open(&path).await.unwrap();
    assert_eq!(again.stats().await.unwrap().dead, 1);
}

/// A file written by a newer version is refused with a clear error, and nothing is written to
/// it (not even the journal mode).
#[tokio::test]
async fn a_queue_of_a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    {
        let newer = rusqlite::Connection::open(&path).unwrap();
        newer
            .execute_batch(
                "CREATE TABLE agentsync_schema (version INTEGER NOT NULL);
                 INSERT INTO agentsync_schema (version) VALUES (99);
                 CREATE TABLE jobs (webhook_id TEXT PRIMARY KEY, future TEXT);",
            )
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteBackend::open(&path).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("newer") && message.contains("99"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was written"
    );
    assert!(
        !dir.path().join("queue.sqlite3-wal").exists(),
        "a WAL was started"
    );
}

#[tokio::test]
async fn a_queue_of_schema_2_is_migrated_to_3_in_place_and_orders_events_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite3");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(&agentsync_webhooks_queue::sqlite::version_2_for_tests())
            .unwrap();
        connection
            .execute(
                "INSERT INTO jobs (webhook_id, event_type, event_group, webhook_timestamp, signature,
                                   received_at_ms, body, state, attempts, next_run_at_ms)
                 VALUES ('msg_old', 'producersync.updates_available', 'producersync', 1, 'v1,x',
                         1, x'7B7D', 'waiting', 0, 0)",
                [],
            )
            .unwrap();
    }
    let backend = SqliteBackend::open(&path).await.unwrap();
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection
        .query_row("SELECT max(version) FROM agentsync_schema", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(version, 3);
    let tables: i64 = connection
        .query_row(
            "SELECT count(*) FROM sqlite_master \
             WHERE name IN ('ordering_keys', 'jobs_key_running', 'jobs_key_waiting')",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 3);
    // The version-2 job is there, without a key, and keyed jobs work beside it.
    let order = agentsync_webhooks_queue::EventOrder {
        key: "npn:1".into(),
        occurred_at_ms: 5,
    };
    backend
        .enqueue_ordered(&delivery("msg_keyed"), &order)
        .await
        .unwrap();
    let token = agentsync_webhooks_queue::ClaimToken::new().unwrap();
    let claimed = backend
        .claim_ordered(&token, 8, Duration::from_secs(60))
        .await
        .unwrap();
    let mut ids: Vec<_> = claimed
        .iter()
        .map(|c| (c.job.delivery.webhook_id.as_str(), c.order.is_some()))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [("msg_keyed", true), ("msg_old", false)]);
    drop(backend);
    // Opening again is a no-op.
    let again = SqliteBackend::open(&path).await.unwrap();
    drop(again);
}

/// A row the claim cannot decode, as someone editing the file by hand leaves it: its id, what
/// was changed (a column set with SQL) and a word the reason it is buried with must hold.
const TAMPERED: &[(&str, &str, &str)] = &[
    // The sqlite3 shell's `UPDATE jobs SET body = '{...}'` stores TEXT, not a BLOB.
    ("msg_text_body", "body = '{\"type\":\"x\"}'", "body"),
    (
        "msg_text_timestamp",
        "webhook_timestamp = 'soon'",
        "webhook_timestamp",
    ),
    (
        "msg_bad_utf8_type",
        "event_type = CAST(x'fffe' AS TEXT)",
        "event_type",
    ),
    (
        "msg_blob_key",
        "ordering_key = x'ff00', occurred_at_ms = 1",
        "ordering_key",
    ),
    ("msg_real_attempts", "attempts = 1.5", "attempts"),
    // A running job whose lease ran out: the claim re-claims it first.
    (
        "msg_expired_bad_worker",
        "state = 'running', locked_until_ms = 0, lease = 'gone', claimed_at_ms = 0, \
         worker = x'ff'",
        "worker",
    ),
];

/// A row that cannot be decoded never stops the queue: the claim buries it as dead with a reason
/// that names what was wrong (left decodable, so that the record shows it), and the workers go
/// on with every other delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_row_is_buried_with_its_reason_and_the_others_still_run() {
    use std::sync::{Arc, Mutex};

    use agentsync_webhooks_core::{
        EventType, UpdatesAvailable,
        event::samples,
        route::{Event, EventRouter, HandlerError},
    };
    use agentsync_webhooks_queue::{Workers, record::DeliveryState};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite3");
    let queue = Queue::sqlite(&path).await.unwrap();
    let stored = |id: &str| agentsync_webhooks_queue::ReceivedDelivery {
        body: samples::example_body(
            EventType::ProducerSyncUpdatesAvailable,
            &format!("whe_{id}"),
            1_700_000_000,
        )
        .into(),
        ..delivery(id)
    };
    let good: Vec<String> = (0..20).map(|i| format!("msg_good_{i}")).collect();
    for (i, id) in good.iter().enumerate() {
        assert_eq!(queue.enqueue(&stored(id)).await.unwrap(), Enqueued::New);
        // The tampered rows sit between the good ones.
        if let Some((bad, change, _)) = TAMPERED.get(i) {
            assert_eq!(queue.enqueue(&stored(bad)).await.unwrap(), Enqueued::New);
            let connection = rusqlite::Connection::open(&path).unwrap();
            connection.busy_timeout(Duration::from_secs(10)).unwrap();
            let changed = connection
                .execute(
                    &format!("UPDATE jobs SET {change} WHERE webhook_id = ?1"),
                    [bad],
                )
                .unwrap();
            assert_eq!(changed, 1, "{bad}");
        }
    }

    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let router = EventRouter::new().on(EventType::ProducerSyncUpdatesAvailable, {
        let ran = ran.clone();
        move |event: Event<UpdatesAvailable>| {
            let ran = ran.clone();
            async move {
                ran.lock().unwrap().push(event.webhook_id.clone());
                Ok::<_, HandlerError>(())
            }
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(
        Workers::new(queue.clone(), router)
            .concurrency(4)
            .poll_interval(Duration::from_millis(10))
            .run_until(async move {
                let _ = stopped.await;
            }),
    );
    // Generous: it only keeps a broken build from hanging.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while queue.stats().await.unwrap().depth > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue stalled: {:?}, ran {:?}",
            queue.stats().await.unwrap(),
            ran.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    workers.await.unwrap();

    let mut ran = ran.lock().unwrap().clone();
    ran.sort_unstable();
    let mut expected = good.clone();
    expected.sort_unstable();
    assert_eq!(
        ran, expected,
        "every good delivery ran once, no tampered one"
    );
    for (bad, _, column) in TAMPERED {
        let record = queue
            .delivery(bad)
            .await
            .unwrap_or_else(|err| panic!("{bad}: the record cannot show it: {err}"))
            .unwrap_or_else(|| panic!("{bad} is not on record"));
        assert_eq!(record.state, DeliveryState::Dead, "{bad}");
        let reason = record.last_error.clone().unwrap_or_default();
        assert!(reason.contains(column), "{bad}: {reason}");
        assert!(
            record.history.iter().any(|entry| matches!(
                &entry.event,
                agentsync_webhooks_queue::record::HistoryEvent::Attempt { error: Some(error), .. }
                    if error == &reason
            )),
            "{bad}: the history has no entry with the reason: {:?}",
            record.history
        );
    }
    assert_eq!(queue.stats().await.unwrap().dead, TAMPERED.len() as u64);
    // The dead letters list them all, the record's list too.
    assert_eq!(queue.dead_letters(100).await.unwrap().len(), TAMPERED.len());
    let page = queue
        .list(
            &agentsync_webhooks_queue::record::DeliveryFilter::new().state(DeliveryState::Dead),
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(page.deliveries.len(), TAMPERED.len());
}

/// `counts_since` (one query, a column per window) answers what `counts` answers of each
/// window: everything, then each time since, intersected with the filter's own range; a
/// window nothing falls in is all zeros, no type listed.
#[tokio::test]
async fn counts_since_answers_the_counts_of_each_window_in_one_query() {
    use agentsync_webhooks_queue::record::DeliveryFilter;
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(dir.path().join("queue.sqlite3"))
        .await
        .unwrap();
    for n in 0..12_i64 {
        let mut stored = delivery(&format!("msg_window_{n}"));
        stored.received_at_ms = 1_000 * n;
        if n % 3 == 0 {
            stored.event_type = "contract.signed".into();
        }
        assert_eq!(backend.enqueue(&stored).await.unwrap(), Enqueued::New);
    }
    let jobs = backend.claim(5, Duration::from_secs(30)).await.unwrap();
    for job in &jobs[..3] {
        assert!(backend.complete(job).await.unwrap());
    }
    assert!(backend.bury(&jobs[3], "no such NPN").await.unwrap());
    let windows = [4_000, 9_500, 50_000];
    for filter in [
        DeliveryFilter::new(),
        DeliveryFilter::new().received_since(6_000),
        DeliveryFilter::new().event_type("contract.signed"),
    ] {
        let answers = backend.counts_since(&filter, &windows).await.unwrap();
        let mut expected = vec![backend.counts(&filter).await.unwrap()];
        for since in windows {
            let window = DeliveryFilter {
                received_since_ms: Some(filter.received_since_ms.unwrap_or(0).max(since)),
                ..filter.clone()
            };
            expected.push(backend.counts(&window).await.unwrap());
        }
        assert_eq!(answers, expected, "{filter:?}");
        assert_eq!(answers[3].total(), 0);
        assert!(answers[3].by_type.is_empty());
    }
    let all = backend
        .counts_since(&DeliveryFilter::new(), &[4_000])
        .await
        .unwrap();
    assert_eq!((all[0].total(), all[1].total()), (12, 8));
    assert_eq!(all[1].by_type["contract.signed"], 2);
}
