//! What the queue benches share: the stored delivery they enqueue, and each engine opened under
//! a name of the bench's own, handed to the bench, then cleared.

use std::sync::Arc;

use agentsync_webhooks_core::handoff::now_ms;
use agentsync_webhooks_queue::{Backend, ReceivedDelivery};

/// Delivery `n` of run `run`: an `updates_available` whose `data` parses as `UpdatesAvailable`.
pub fn delivery(run: &str, n: usize) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: format!("msg_{run}_{n}"),
        event_type: "producersync.updates_available".into(),
        webhook_timestamp: 1_700_000_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
        received_at_ms: now_ms(),
        body: bytes::Bytes::from(format!(
            r#"{{"id":"whe_{run}_{n}","type":"producersync.updates_available","timestamp":"2026-01-01T00:00:00.000Z","data":{{"runDate":"2026-01-01"}}}}"#
        )),
    }
}

/// A number from the environment, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// `REDIS_URL`, as in the tests.
#[cfg(feature = "redis")]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// Runs `bench` on every engine compiled in that `BENCH_BACKENDS` names (all when unset):
/// `sqlite-full`, `sqlite-normal`, `redis`, `postgres`, each opened under `label` (a directory,
/// a key prefix, a table of its own) and cleared afterwards.
pub async fn for_each_engine(
    label: &str,
    mut bench: impl AsyncFnMut(&'static str, Arc<dyn Backend>),
) {
    let wanted = std::env::var("BENCH_BACKENDS").unwrap_or_default();
    let wants = |name: &str| wanted.is_empty() || wanted.split(',').any(|w| w == name);
    let id = std::process::id();

    #[cfg(feature = "sqlite")]
    for (name, synchronous) in [
        (
            "sqlite-full",
            agentsync_webhooks_queue::sqlite::Synchronous::Full,
        ),
        (
            "sqlite-normal",
            agentsync_webhooks_queue::sqlite::Synchronous::Normal,
        ),
    ] {
        if !wants(name) {
            continue;
        }
        let dir = std::env::temp_dir().join(format!("agentsync-{label}-bench-{id}"));
        let _ = std::fs::create_dir_all(&dir);
        let backend = agentsync_webhooks_queue::sqlite::SqliteBackend::open_with(
            dir.join(format!("{name}.sqlite3")),
            agentsync_webhooks_queue::sqlite::SqliteOptions::new().synchronous(synchronous),
        )
        .await
        .unwrap_or_else(|err| panic!("{name}: {err}"));
        bench(name, Arc::new(backend)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(feature = "redis")]
    if wants("redis") {
        let prefix = format!("agentsync-webhooks-{label}-bench:{id}:");
        let backend = agentsync_webhooks_queue::redis::RedisBackend::connect_with(
            &redis_url(),
            agentsync_webhooks_queue::redis::RedisOptions::new().prefix(prefix.clone()),
        )
        .await
        .unwrap_or_else(|err| panic!("redis: {err}"));
        bench("redis", Arc::new(backend)).await;
        if let Ok(client) = redis::Client::open(redis_url())
            && let Ok(mut connection) = client.get_connection()
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut connection)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
        }
    }

    // The Redis Cluster only when named: `redis-cluster-p1` and `redis-cluster-p3`, the queue in
    // 1 and 3 partitions on `REDIS_CLUSTER_URL` (default the `.ci/redis-cluster.sh` cluster).
    #[cfg(feature = "redis")]
    for (name, partitions) in [("redis-cluster-p1", 1), ("redis-cluster-p3", 3)] {
        if !wanted.split(',').any(|w| w == name) {
            continue;
        }
        let url = std::env::var("REDIS_CLUSTER_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| {
                "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103".to_owned()
            });
        let prefix = format!("agentsync-webhooks-{label}-bench:{id}:{name}:");
        let backend = agentsync_webhooks_queue::redis::RedisBackend::connect_with(
            &url,
            agentsync_webhooks_queue::redis::RedisOptions::new()
                .prefix(prefix.clone())
                .partitions(partitions),
        )
        .await
        .unwrap_or_else(|err| panic!("{name}: {err}"));
        bench(name, Arc::new(backend)).await;
        cluster_forget(&url, &prefix);
    }

    #[cfg(feature = "postgres")]
    if wants("postgres") {
        let url = std::env::var("POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        // A table name is a plain identifier: the labels name modes with `-`.
        let table = format!("{}_bench_{id}", label.replace('-', "_"));
        let backend = agentsync_webhooks_queue::postgres::PostgresBackend::connect_with(
            &url,
            agentsync_webhooks_queue::postgres::PostgresOptions::new().table(table.clone()),
        )
        .await
        .unwrap_or_else(|err| panic!("postgres: {err}"));
        bench("postgres", Arc::new(backend)).await;
        if let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            let _ = client
                // The queue's table, its attempts' history, its schema record and its ordering keys.
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {table}, {table}_history, {table}_schema, {table}_ordering_keys"
                ))
                .await;
        }
    }
}

/// Deletes the keys under `prefix` on every primary of the cluster `url` names.
#[cfg(feature = "redis")]
fn cluster_forget(url: &str, prefix: &str) {
    let Ok(seeds) = agentsync_webhooks_redis::connection::cluster_nodes(url) else {
        return;
    };
    let Some(nodes) = seeds.iter().find_map(|seed| {
        let mut connection = redis::Client::open(seed.as_str())
            .ok()?
            .get_connection()
            .ok()?;
        redis::cmd("CLUSTER")
            .arg("NODES")
            .query::<String>(&mut connection)
            .ok()
    }) else {
        return;
    };
    for address in nodes
        .lines()
        .filter(|line| line.contains("master") && !line.contains("fail"))
        .filter_map(|line| line.split_whitespace().nth(1))
    {
        let address = address.split('@').next().unwrap_or(address);
        let Ok(mut connection) = redis::Client::open(format!("redis://{address}").as_str())
            .and_then(|client| client.get_connection())
        else {
            continue;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut connection)
            .unwrap_or_default();
        for key in keys {
            let _: Result<i64, _> = redis::cmd("DEL").arg(key).query(&mut connection);
        }
    }
}
