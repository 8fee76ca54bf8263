//! `RedisBackend` against a real Redis Cluster (6 nodes: 3 primaries, 3 replicas, from
//! `.ci/redis-cluster.sh start`): the shared queue contract with 3 partitions (and with one),
//! the partitions' keys on every primary, the one round trip of an enqueue, and the
//! persistence check reading every primary.
//!
//! Uses `REDIS_CLUSTER_URL` (default `redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103`).
//! When it is set, an unreachable cluster fails every test; when it is not, the tests are
//! skipped with a note. Every test works under its own key prefix.
#![cfg(feature = "redis")]

use std::{
    collections::BTreeSet,
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agentsync_webhooks_queue::contract::sample_delivery as delivery;
use agentsync_webhooks_queue::{
    Backend, Enqueued, Queue,
    contract::{self, QueueContract},
    redis::{RedisBackend, RedisOptions},
};

/// `REDIS_CLUSTER_URL`, and whether it was set (then the cluster is required).
fn cluster_url() -> (String, bool) {
    match std::env::var("REDIS_CLUSTER_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => (
            "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103".to_owned(),
            false,
        ),
    }
}

/// A key prefix unique to `test` in this run of this process.
fn prefix(test: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{nanos:x}", std::process::id())
    });
    format!("agentsync-webhooks-test:cluster:{run}:{test}:")
}

/// The primaries of the cluster, as `redis://HOST:PORT`.
fn primaries(url: &str) -> Vec<String> {
    let seeds = agentsync_webhooks_redis::connection::cluster_nodes(url).unwrap();
    let client = redis::Client::open(seeds[0].as_str()).unwrap();
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connection)
        .unwrap();
    nodes
        .lines()
        .filter(|line| line.contains("master") && !line.contains("fail"))
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|address| format!("redis://{}", address.split('@').next().unwrap_or(address)))
        .collect()
}

/// The keys under `prefix` on the node `node`.
fn keys_on(node: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(node).unwrap();
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut connection)
        .unwrap_or_default()
}

/// Deletes a test's keys on every primary when the test ends.
struct DropKeys {
    url: String,
    prefix: String,
}

impl Drop for DropKeys {
    fn drop(&mut self) {
        for node in primaries(&self.url) {
            let Ok(client) = redis::Client::open(node.as_str()) else {
                continue;
            };
            let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1))
            else {
                continue;
            };
            for key in keys_on(&node, &self.prefix) {
                let _: Result<i64, _> = redis::cmd("DEL").arg(key).query(&mut connection);
            }
        }
    }
}

/// A backend on the cluster under its own prefix, or `None` (skip, with a note).
async fn backend_with(test: &str, options: RedisOptions) -> Option<(RedisBackend, DropKeys)> {
    let (url, required) = cluster_url();
    let prefix = prefix(test);
    match RedisBackend::connect_with(&url, options.prefix(prefix.clone())).await {
        Ok(backend) => Some((backend, DropKeys { url, prefix })),
        Err(err) if required => {
            panic!("REDIS_CLUSTER_URL={url} is set but the cluster is unreachable: {err}")
        }
        Err(err) => {
            eprintln!(
                "skipping {test}: no Redis Cluster at {url} ({err}); run .ci/redis-cluster.sh \
                 start, set REDIS_CLUSTER_URL to require it"
            );
            None
        }
    }
}

fn contract_options(partitions: usize) -> RedisOptions {
    RedisOptions::new()
        .retention(contract::RETENTION)
        .dead_retention(contract::DEAD_RETENTION)
        .partitions(partitions)
}

async fn contract_in(case: &'static str, partitions: usize) -> Option<QueueContract> {
    let (backend, keys) = backend_with(case, contract_options(partitions)).await?;
    // A second instance on the same prefix, with connections of its own.
    let (url, _) = cluster_url();
    let second =
        RedisBackend::connect_with(&url, contract_options(partitions).prefix(prefix(case)))
            .await
            .unwrap_or_else(|err| panic!("{case}: the second instance: {err}"));
    Some(
        QueueContract::new(backend, case)
            .second_instance(second)
            .keep_alive(keys),
    )
}

/// The contract with the queue in 3 partitions, one per primary.
mod partitioned {
    use super::*;

    async fn contract(case: &'static str) -> Option<QueueContract> {
        contract_in(case, 3).await
    }

    agentsync_webhooks_queue::queue_contract_tests!(contract);
    // A keyed delivery is stored in its key's partition: the key's order holds.
    agentsync_webhooks_queue::queue_event_time_contract_tests!(contract);
}

/// The contract with the queue in one partition (one slot, under its `{0}` tag).
mod one_partition {
    use super::*;

    async fn contract(case: &'static str) -> Option<QueueContract> {
        contract_in(case, 1).await
    }

    agentsync_webhooks_queue::queue_contract_tests!(contract);
    agentsync_webhooks_queue::queue_event_time_contract_tests!(contract);
}

#[tokio::test]
async fn three_partitions_put_queue_keys_on_every_primary() {
    let test = "three_partitions_put_queue_keys_on_every_primary";
    let Some((backend, keys)) = backend_with(test, RedisOptions::new().partitions(3)).await else {
        return;
    };
    let prefixes: Vec<String> = backend
        .partition_prefixes()
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(prefixes.len(), 3);
    let queue = Queue::new(backend);
    for i in 0..60 {
        assert_eq!(
            queue.enqueue(&delivery(&format!("msg_{i}"))).await.unwrap(),
            Enqueued::New
        );
    }
    let nodes = primaries(&keys.url);
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let mut tags_seen = BTreeSet::new();
    for node in &nodes {
        let found = keys_on(node, &keys.prefix);
        assert!(
            found.iter().any(|key| key.ends_with(":stream")),
            "no partition's stream on {node}: {found:?}"
        );
        // Every key of a node is under one partition's prefix (its hash tag).
        let tags: BTreeSet<&str> = found
            .iter()
            .filter_map(|key| prefixes.iter().find(|p| key.starts_with(p.as_str())))
            .map(String::as_str)
            .collect();
        assert_eq!(tags.len(), 1, "{node} holds keys of {tags:?}");
        tags_seen.extend(tags.into_iter().map(str::to_owned));
        // The deliveries' records and marks live beside their partition's stream.
        assert!(found.iter().any(|key| key.contains("d:msg_")), "{found:?}");
        assert!(found.iter().any(|key| key.contains("id:msg_")), "{found:?}");
    }
    assert_eq!(tags_seen.len(), 3);
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats.depth, 60);
    // Every job is claimed once, from every partition.
    let mut claimed = BTreeSet::new();
    for _ in 0..20 {
        let jobs = queue
            .backend()
            .claim(8, Duration::from_secs(30))
            .await
            .unwrap();
        for job in &jobs {
            assert!(claimed.insert(job.delivery.webhook_id.clone()));
            assert!(queue.backend().complete(job).await.unwrap());
        }
        if claimed.len() == 60 {
            break;
        }
    }
    assert_eq!(claimed.len(), 60);
    assert_eq!(queue.stats().await.unwrap().depth, 0);
}

#[tokio::test]
async fn claims_take_from_every_partition_in_turn() {
    let test = "claims_take_from_every_partition_in_turn";
    let Some((backend, _keys)) = backend_with(test, RedisOptions::new().partitions(3)).await else {
        return;
    };
    for i in 0..90 {
        backend
            .enqueue(&delivery(&format!("fair_{i}")))
            .await
            .unwrap();
    }
    // Three claims of 5: each starts with another partition, so none is left behind.
    let mut partitions_first = BTreeSet::new();
    for _ in 0..3 {
        let jobs = backend.claim(5, Duration::from_secs(30)).await.unwrap();
        assert_eq!(jobs.len(), 5);
        partitions_first.insert(backend.partition(&jobs[0].delivery.webhook_id));
        // A claim of 5 is served by its first partition alone (each holds about 30).
        let one: BTreeSet<usize> = jobs
            .iter()
            .map(|job| backend.partition(&job.delivery.webhook_id))
            .collect();
        assert_eq!(one.len(), 1);
        for job in &jobs {
            assert!(backend.complete(job).await.unwrap());
        }
    }
    assert_eq!(partitions_first.len(), 3);
}

#[tokio::test]
async fn the_cluster_persistence_is_read_on_every_primary_and_passes() {
    let test = "the_cluster_persistence_is_read_on_every_primary_and_passes";
    let Some((backend, _keys)) =
        backend_with(test, RedisOptions::new().require_persistence()).await
    else {
        return;
    };
    // .ci/redis-cluster.sh runs every node with appendonly yes, everysec, noeviction.
    let report = backend.persistence().unwrap();
    assert!(report.findings.is_empty(), "{report:?}");
    let health = Queue::new(backend).health().await.unwrap();
    assert!(health.warnings.is_empty(), "{health:?}");
}

#[tokio::test]
async fn wait_for_replicas_answers_once_a_replica_has_it() {
    let test = "wait_for_replicas_answers_once_a_replica_has_it";
    let options = RedisOptions::new()
        .partitions(3)
        .wait_for_replicas(1, Duration::from_millis(500));
    let Some((backend, _keys)) = backend_with(test, options).await else {
        return;
    };
    for i in 0..30 {
        assert_eq!(
            backend.enqueue(&delivery(&format!("w_{i}"))).await.unwrap(),
            Enqueued::New
        );
    }
    assert_eq!(
        backend.enqueue(&delivery("w_0")).await.unwrap(),
        Enqueued::Duplicate
    );
    // Two replicas are more than each primary has: stored, but answered as a failure (503).
    let (url, _) = cluster_url();
    let strict = RedisBackend::connect_with(
        &url,
        RedisOptions::new()
            .prefix(prefix(test))
            .partitions(3)
            .wait_for_replicas(2, Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let err = strict.enqueue(&delivery("w_strict")).await.unwrap_err();
    assert!(err.to_string().contains("replicas acknowledged"), "{err}");
    // The sender's retry, through an instance that waits for what the cluster has: a duplicate.
    assert_eq!(
        backend.enqueue(&delivery("w_strict")).await.unwrap(),
        Enqueued::Duplicate
    );
}
