//! `PostgresBackend` against a real PostgreSQL: the shared queue contract, the claim path's
//! indexes, two instances sharing a table, and an unreachable server.
//!
//! Uses `POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`). When `POSTGRES_URL`
//! is set, an unreachable PostgreSQL fails every test; when it is not, the tests are skipped with
//! a note. Every test works in a table of its own (dropped at its end), so tests run in parallel.
#![cfg(feature = "postgres")]

use std::{
    net::TcpListener,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, Enqueued, Queue, StoreErrorKind,
    contract::QueueContract,
    postgres::{PostgresBackend, PostgresOptions},
};

/// `POSTGRES_URL`, and whether it was set (then PostgreSQL is required).
fn postgres_url() -> (String, bool) {
    match std::env::var("POSTGRES_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => ("postgres://postgres@127.0.0.1:5432/test".to_owned(), false),
    }
}

/// A table name unique to this process and call.
fn unique_table() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or_default();
    format!(
        "queue_test_{}_{nanos:x}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops a test's table when the test ends.
struct DropTable {
    url: String,
    table: String,
}

impl Drop for DropTable {
    fn drop(&mut self) {
        let (url, table) = (self.url.clone(), self.table.clone());
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                    .await;
            });
        })
        .join();
    }
}

/// A backend on a fresh table, or `None` (skip, with a note) when PostgreSQL is unreachable and
/// `POSTGRES_URL` is not set.
async fn backend(test: &str) -> Option<(PostgresBackend, DropTable)> {
    let (url, required) = postgres_url();
    let table = unique_table();
    match PostgresBackend::connect_with(&url, PostgresOptions::new().table(table.clone())).await {
        Ok(backend) => Some((backend, DropTable { url, table })),
        Err(err) if required => {
            panic!("POSTGRES_URL={url} is set but PostgreSQL is unreachable: {err}")
        }
        Err(err) => {
            eprintln!(
                "skipping {test}: no PostgreSQL at {url} ({err}); set POSTGRES_URL to require it"
            );
            None
        }
    }
}

async fn contract(case: &'static str) -> Option<QueueContract> {
    let (backend, table) = backend(case).await?;
    Some(QueueContract::new(backend, case).keep_alive(table))
}

agentsync_webhooks_queue::queue_contract_tests!(contract);

/// An address where nothing listens.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("postgres://postgres@127.0.0.1:{port}/test")
}

#[tokio::test]
async fn an_unreachable_postgres_is_an_unreachable_store_error() {
    let err = PostgresBackend::connect(&closed_port_url())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");
    let err = Queue::from_url(&closed_port_url()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unreachable, "{err}");
}

#[tokio::test]
async fn a_table_name_that_is_not_an_identifier_is_refused() {
    let (url, _) = postgres_url();
    let err =
        PostgresBackend::connect_with(&url, PostgresOptions::new().table("jobs; DROP TABLE x"))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("plain identifier"), "{err}");
}

#[tokio::test]
async fn two_instances_share_one_table_and_the_table_is_created_once() {
    let test = "two_instances_share_one_table_and_the_table_is_created_once";
    let Some((first, table)) = backend(test).await else {
        return;
    };
    let (url, _) = postgres_url();
    let second =
        PostgresBackend::connect_with(&url, PostgresOptions::new().table(table.table.clone()))
            .await
            .unwrap();
    assert_eq!(
        first.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::New
    );
    assert_eq!(
        second.enqueue(&delivery("msg_1")).await.unwrap(),
        Enqueued::Duplicate
    );
    let jobs = second.claim(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(
        first
            .claim(10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(first.complete(&jobs[0]).await.unwrap());
}

#[tokio::test]
async fn claims_use_the_partial_indexes() {
    let test = "claims_use_the_partial_indexes";
    let Some((_backend, table)) = backend(test).await else {
        return;
    };
    let (client, connection) = tokio_postgres::connect(&table.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let t = &table.table;
    // Without rows the planner would scan anyway; forbid it to see which index it can use.
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    for (sql, index) in [
        (
            format!(
                "SELECT webhook_id FROM {t} WHERE state = 'queued' AND next_run_at_ms <= 1 ORDER BY next_run_at_ms LIMIT 5"
            ),
            format!("{t}_due"),
        ),
        (
            format!(
                "SELECT webhook_id FROM {t} WHERE state = 'running' AND locked_until_ms <= 1 ORDER BY locked_until_ms LIMIT 5"
            ),
            format!("{t}_lease"),
        ),
    ] {
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN {sql}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains(&index), "{sql}:\n{plan}");
    }
}

#[tokio::test]
async fn a_postgres_that_never_answers_is_a_timeout_not_a_hang() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "postgres://postgres@{}/test",
        listener.local_addr().unwrap()
    );
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let err = PostgresBackend::connect_with(
        &url,
        PostgresOptions::new().timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    silent.abort();
}
