//! The SQLite queue reading back rows of a file someone tampered with: structured (`arbitrary`)
//! rows whose columns hold any SQLite value (NULL, integer, real, text, text that is not UTF-8,
//! blob; or a well-formed value for the column), written with a raw connection into the `jobs`
//! table the real `SqliteBackend` created (CHECK constraints on or off), then read and settled
//! through the real backend: `stats`, `dead_letters`, `dead_letter`, `claim` and the settles
//! (complete, retry, extend, release, bury), `replay`.
//!
//! Checks: nothing panics (on the backend's thread either: a panic aborts the process) or
//! hangs; every call answers `Ok` or `Err`; what it answers is bounded by what was written:
//! at most `limit` dead letters and at most `max` jobs, ids that are stored ids, distinct jobs,
//! the dead letter asked for by id has that id, counts no larger than the rows; a job completes
//! once only; a replayed dead letter is no longer one.
#![no_main]

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{LazyLock, Mutex},
    time::Duration,
};

use agentsync_webhooks_queue::{
    Queue,
    sqlite::{SqliteBackend, SqliteOptions, Synchronous},
};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rusqlite::{
    Connection,
    types::{Value as SqlValue, ValueRef},
};

/// Any value a column of a tampered file may hold.
#[derive(Arbitrary, Debug, Clone)]
enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    /// Stored as TEXT, bytes as they are (SQLite does not check that text is UTF-8).
    RawText(Vec<u8>),
    Blob(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Cell {
    /// A well-formed value for the column, as the backend writes it.
    WellFormed,
    Value(Value),
}

#[derive(Arbitrary, Debug)]
struct Row {
    /// `queued`, `running`, `done` or `dead`, for a well-formed `state`.
    state: u8,
    /// The cells of the columns in order (`PRAGMA table_info`); missing ones are well-formed.
    cells: Vec<Cell>,
}

#[derive(Arbitrary, Debug)]
enum Id {
    /// The `webhook_id` stored in this row (by index, modulo the rows).
    Row(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Settle {
    Complete,
    Retry(u16, String),
    Extend(u16),
    Release,
    Bury(String),
    Leave,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Stats,
    DeadLetters(u8),
    DeadLetter(Id),
    Claim {
        max: u8,
        lease_ms: u16,
        settles: Vec<Settle>,
    },
    Replay(Id),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// `PRAGMA ignore_check_constraints` while writing: any `state`, as a hand edit could.
    ignore_checks: bool,
    rows: Vec<Row>,
    ops: Vec<Op>,
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    queue: Queue,
    raw: Mutex<Connection>,
    columns: Vec<String>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = ["/dev/shm"]
        .into_iter()
        .map(PathBuf::from)
        .find(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!(
        "agentsync-fuzz-sqlite-{}.sqlite3",
        std::process::id()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let mut stale = path.clone().into_os_string();
        stale.push(suffix);
        let _ = std::fs::remove_file(stale);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let options = SqliteOptions::new().synchronous(Synchronous::Normal);
    let backend = runtime
        .block_on(SqliteBackend::open_with(&path, options))
        .expect("the queue's file");
    let raw = Connection::open(&path).expect("a second connection");
    raw.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let columns = raw
        .prepare("SELECT name FROM pragma_table_info('jobs') ORDER BY cid")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .expect("the jobs table's columns");
    Fixture {
        runtime,
        queue: Queue::new(backend),
        raw: Mutex::new(raw),
        columns,
    }
});

const STATES: [&str; 4] = ["queued", "running", "done", "dead"];
const NOW_MS: i64 = 1_700_000_000_000;

/// What the backend itself would have written in `column` of row `index`.
fn well_formed(column: &str, index: usize, state: &str) -> Value {
    let text = |s: &str| Value::Text(s.to_owned());
    match column {
        "webhook_id" => Value::Text(format!("msg_{index}")),
        "event_type" => text("producersync.updates_available"),
        "webhook_timestamp" => Value::Integer(NOW_MS / 1000),
        "signature" => text("v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="),
        "received_at_ms" => Value::Integer(NOW_MS),
        "body" => Value::Blob(br#"{"type":"producersync.updates_available"}"#.to_vec()),
        "state" => text(state),
        "attempts" => Value::Integer(1),
        "next_run_at_ms" => Value::Integer(0),
        "locked_until_ms" if state == "running" => Value::Integer(0),
        "lease" if state == "running" => text("lease-0"),
        "last_error" if state == "dead" => text("boom"),
        "died_at_ms" if state == "dead" => Value::Integer(NOW_MS),
        "done_at_ms" if state == "done" => Value::Integer(NOW_MS),
        _ => Value::Null,
    }
}

/// Empties the table and writes `rows`; returns the `webhook_id`s stored, as read back
/// (`None` for one that is not UTF-8 text).
fn write_rows(fixture: &Fixture, input: &Input) -> Vec<Option<String>> {
    let raw = fixture.raw.lock().unwrap_or_else(|e| e.into_inner());
    raw.execute_batch("DELETE FROM jobs")
        .expect("empty the table");
    let checks = if input.ignore_checks { "ON" } else { "OFF" };
    raw.execute_batch(&format!("PRAGMA ignore_check_constraints = {checks}"))
        .expect("pragma");
    let columns = &fixture.columns;
    for (index, row) in input.rows.iter().take(32).enumerate() {
        let state = STATES[usize::from(row.state) % STATES.len()];
        let values: Vec<Value> = columns
            .iter()
            .enumerate()
            .map(|(i, column)| match row.cells.get(i) {
                Some(Cell::Value(value)) => value.clone(),
                Some(Cell::WellFormed) | None => well_formed(column, index, state),
            })
            .collect();
        let placeholders: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, value)| match value {
                Value::RawText(_) => format!("CAST(?{} AS TEXT)", i + 1),
                _ => format!("?{}", i + 1),
            })
            .collect();
        let sql = format!(
            "INSERT OR REPLACE INTO jobs ({}) VALUES ({})",
            columns.join(", "),
            placeholders.join(", ")
        );
        let params: Vec<SqlValue> = values
            .into_iter()
            .map(|value| match value {
                Value::Null => SqlValue::Null,
                Value::Integer(n) => SqlValue::Integer(n),
                Value::Real(x) => SqlValue::Real(x),
                Value::Text(s) => SqlValue::Text(s),
                Value::RawText(b) | Value::Blob(b) => SqlValue::Blob(b),
            })
            .collect();
        // A NOT NULL or CHECK constraint may refuse the row: the file then does not hold it.
        let _ = raw.execute(&sql, rusqlite::params_from_iter(params));
    }
    raw.prepare("SELECT webhook_id FROM jobs")
        .and_then(|mut s| {
            s.query_map([], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Text(id) => String::from_utf8(id.to_vec()).ok(),
                    _ => None,
                })
            })?
            .collect()
        })
        .expect("read the ids back")
}

fuzz_target!(|input: Input| {
    let fixture = &*FIXTURE;
    let stored = write_rows(fixture, &input);
    let ids: HashSet<&str> = stored.iter().flatten().map(String::as_str).collect();
    let rows = u64::try_from(stored.len()).unwrap_or(u64::MAX);
    let id_of = |id: &Id| match id {
        Id::Row(i) if !stored.is_empty() => stored[usize::from(*i) % stored.len()]
            .clone()
            .unwrap_or_default(),
        Id::Row(_) => String::new(),
        Id::Other(id) => id.clone(),
    };
    let queue = &fixture.queue;
    let backend = queue.backend();

    fixture.runtime.block_on(async {
        for op in input.ops.iter().take(16) {
            match op {
                Op::Stats => {
                    if let Ok(stats) = queue.stats().await {
                        assert!(stats.depth <= rows && stats.dead <= rows, "{stats:?}");
                        assert!(stats.depth + stats.dead <= rows, "{stats:?}");
                    }
                }
                Op::DeadLetters(limit) => {
                    if let Ok(dead) = queue.dead_letters(usize::from(*limit)).await {
                        assert!(dead.len() <= usize::from(*limit) && dead.len() <= stored.len());
                        for letter in &dead {
                            assert!(ids.contains(letter.delivery.webhook_id.as_str()));
                        }
                    }
                }
                Op::DeadLetter(id) => {
                    let id = id_of(id);
                    if let Ok(Some(letter)) = queue.dead_letter(&id).await {
                        assert_eq!(letter.delivery.webhook_id, id);
                    }
                }
                Op::Claim {
                    max,
                    lease_ms,
                    settles,
                } => {
                    let max = 1 + usize::from(*max % 16);
                    let lease = Duration::from_millis(u64::from(*lease_ms));
                    let Ok(jobs) = backend.claim(max, lease).await else {
                        continue;
                    };
                    assert!(jobs.len() <= max, "{} jobs for {max}", jobs.len());
                    let claimed: HashSet<&str> = jobs
                        .iter()
                        .map(|job| job.delivery.webhook_id.as_str())
                        .collect();
                    assert_eq!(claimed.len(), jobs.len(), "a job claimed twice");
                    assert!(claimed.is_subset(&ids), "{claimed:?} not in {ids:?}");
                    for (job, settle) in jobs.iter().zip(settles) {
                        let settled = match settle {
                            Settle::Complete => backend.complete(job).await,
                            Settle::Retry(ms, error) => {
                                let after = Duration::from_millis(u64::from(*ms));
                                backend.retry(job, after, error).await
                            }
                            Settle::Extend(ms) => {
                                let lease = Duration::from_millis(u64::from(*ms));
                                backend.extend(job, lease).await
                            }
                            Settle::Release => backend.release(job).await,
                            Settle::Bury(error) => backend.bury(job, error).await,
                            Settle::Leave => continue,
                        };
                        if matches!(settle, Settle::Complete) && matches!(settled, Ok(true)) {
                            let again = backend.complete(job).await;
                            assert!(!matches!(again, Ok(true)), "completed twice");
                        }
                    }
                }
                Op::Replay(id) => {
                    let id = id_of(id);
                    if let Ok(true) = queue.replay(&id).await {
                        let after = queue.dead_letter(&id).await;
                        assert!(
                            !matches!(after, Ok(Some(_))),
                            "a replayed dead letter is still one"
                        );
                    }
                }
            }
        }
    });
});
