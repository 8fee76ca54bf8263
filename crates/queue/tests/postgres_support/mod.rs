//! What the PostgreSQL test files share: the server's URL, a table of its own per test (dropped
//! with its side tables at the end), and a backend on it.
#![allow(dead_code)]

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use agentsync_webhooks_queue::postgres::{PostgresBackend, PostgresOptions};

/// `POSTGRES_URL`, and whether it was set (then PostgreSQL is required).
pub fn postgres_url() -> (String, bool) {
    match std::env::var("POSTGRES_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => ("postgres://postgres@127.0.0.1:5432/test".to_owned(), false),
    }
}

/// A table name unique to this process and call.
pub fn unique_table() -> String {
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
pub struct DropTable {
    pub url: String,
    pub table: String,
}

impl Drop for DropTable {
    fn drop(&mut self) {
        let t = &self.table;
        cleanup(
            &self.url,
            format!("DROP TABLE IF EXISTS {t}, {t}_history, {t}_schema, {t}_ordering_keys"),
        );
    }
}

/// Runs `sql` on a connection of its own, ignoring failures (cleanup from a `Drop`).
pub fn cleanup(url: &str, sql: String) {
    let url = url.to_owned();
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
            let _ = client.batch_execute(&sql).await;
        });
    })
    .join();
}

/// A backend on a fresh table, or `None` (skip, with a note) when PostgreSQL is unreachable and
/// `POSTGRES_URL` is not set.
pub async fn backend(test: &str) -> Option<(PostgresBackend, DropTable)> {
    backend_with(test, PostgresOptions::new()).await
}

/// [`backend`] with `options` (their table replaced by the fresh one).
pub async fn backend_with(
    test: &str,
    options: PostgresOptions,
) -> Option<(PostgresBackend, DropTable)> {
    let (url, required) = postgres_url();
    let table = unique_table();
    match PostgresBackend::connect_with(&url, options.table(table.clone())).await {
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
