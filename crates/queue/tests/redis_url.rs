//! `Queue::from_url` with the settings in the URL, against the real engines: Redis (`prefix`,
//! `group`, `partitions`), the Redis Cluster, and PostgreSQL (`table`, a multi-host URL with
//! `target_session_attrs=read-write` passed to the driver). Required when `REDIS_URL`,
//! `REDIS_CLUSTER_URL` or `POSTGRES_URL` is set, as in the engines' own test files.
#![cfg(feature = "redis")]

use std::time::{SystemTime, UNIX_EPOCH};

use agentsync_webhooks_queue::{Enqueued, Queue, contract::sample_delivery as delivery};

fn unique(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{test}_{}_{nanos:x}", std::process::id())
}

fn env(name: &str, default: &str) -> (String, bool) {
    match std::env::var(name) {
        Ok(url) if !url.is_empty() => (url, true),
        _ => (default.to_owned(), false),
    }
}

#[tokio::test]
async fn redis_prefix_group_and_partitions_from_the_url() {
    let (url, required) = env("REDIS_URL", "redis://127.0.0.1:6379");
    let prefix = format!("agentsync-webhooks-test:url:{}:", unique("r"));
    let encoded = prefix.replace(':', "%3A");
    let queue = match Queue::from_url(&format!(
        "{url}?prefix={encoded}&group=url-workers&partitions=2"
    ))
    .await
    {
        Ok(queue) => queue,
        Err(err) if required => panic!("{err}"),
        Err(err) => return eprintln!("skipping: {err}"),
    };
    assert_eq!(queue.enqueue(&delivery("u1")).await.unwrap(), Enqueued::New);
    assert_eq!(
        queue.enqueue(&delivery("u1")).await.unwrap(),
        Enqueued::Duplicate
    );
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut connection)
        .unwrap();
    // Two partitions, each under its tag; the group named in the URL reads them.
    assert!(
        keys.iter().any(|k| k.starts_with(&format!("{prefix}{{0"))),
        "{keys:?}"
    );
    for key in keys.iter().filter(|k| k.ends_with(":stream")) {
        let groups: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(key)
            .query(&mut connection)
            .unwrap();
        assert!(format!("{groups:?}").contains("url-workers"), "{groups:?}");
    }
    let _: i64 = redis::cmd("DEL").arg(&keys).query(&mut connection).unwrap();
}

#[tokio::test]
async fn a_cluster_url_with_partitions() {
    let (url, required) = env(
        "REDIS_CLUSTER_URL",
        "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103",
    );
    let prefix = format!("agentsync-webhooks-test:url:{}:", unique("c"));
    let queue = match Queue::from_url(&format!(
        "{url}?prefix={}&partitions=3&persistence=required&wait_replicas=1",
        prefix.replace(':', "%3A")
    ))
    .await
    {
        Ok(queue) => queue,
        Err(err) if required => panic!("{err}"),
        Err(err) => return eprintln!("skipping: {err}"),
    };
    for i in 0..10 {
        let id = format!("c{i}");
        assert_eq!(queue.enqueue(&delivery(&id)).await.unwrap(), Enqueued::New);
    }
    assert_eq!(queue.stats().await.unwrap().depth, 10);
    assert!(queue.health().await.unwrap().warnings.is_empty());
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_table_and_a_multi_host_url() {
    let (url, required) = env("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
    // A first host where nothing listens: the driver tries the next one, and keeps the one
    // that accepts writes.
    let Some(rest) = url.strip_prefix("postgres://") else {
        return eprintln!("skipping: POSTGRES_URL is not postgres://");
    };
    let (auth, hosts_and_db) = rest.rsplit_once('@').map_or(("", rest), |(a, h)| (a, h));
    let at = if auth.is_empty() {
        String::new()
    } else {
        format!("{auth}@")
    };
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let table = unique("urlq").to_ascii_lowercase();
    let separator = if hosts_and_db.contains('?') { '&' } else { '?' };
    let multi = format!(
        "postgres://{at}127.0.0.1:{dead_port},{hosts_and_db}{separator}target_session_attrs=read-write&table={table}"
    );
    let queue = match Queue::from_url(&multi).await {
        Ok(queue) => queue,
        Err(err) if required => panic!("{err}"),
        Err(err) => return eprintln!("skipping: {err}"),
    };
    assert_eq!(queue.enqueue(&delivery("p1")).await.unwrap(), Enqueued::New);
    assert!(queue.health().await.unwrap().warnings.is_empty());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE $1",
            &[&format!("{table}%")],
        )
        .await
        .unwrap();
    let found: i64 = rows[0].get(0);
    assert!(found >= 1, "no table named {table}");
    for row in client
        .query(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE $1",
            &[&format!("{table}%")],
        )
        .await
        .unwrap()
    {
        let name: String = row.get(0);
        let _ = client
            .batch_execute(&format!("DROP TABLE IF EXISTS {name} CASCADE"))
            .await;
    }
}
