//! A failover under load, on a private 6-node Redis Cluster (`.ci/redis-cluster.sh start 7200`:
//! 127.0.0.1:7201-7206, cluster-node-timeout 2 s) that this test starts and stops: a primary is
//! killed with SIGKILL while two queues (3 partitions each) take enqueues, one with
//! `wait_for_replicas(1, 200 ms)`, one without. Its replica takes over, the library reconnects
//! on its own (enqueues succeed again without a new backend), and every delivery the waiting
//! queue answered `Ok` (a 2xx) is on record afterwards. What the queue without it lost is
//! printed (asynchronous replication; BENCHMARKS.md keeps the figures).
//!
//! Skipped, with a note, without `redis-server`; required under CI (`CI` set).
#![cfg(feature = "redis")]

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use agentsync_webhooks_queue::{
    Backend,
    contract::sample_delivery as delivery,
    redis::{RedisBackend, RedisOptions},
};

const BASE: &str = "7200";
const URL: &str = "redis+cluster://127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/redis-cluster.sh")
}

/// Stops the private cluster when the test ends, however it ends.
struct Cluster;

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", BASE])
            .status();
    }
}

fn start() -> Option<Cluster> {
    let has = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !has {
        assert!(std::env::var_os("CI").is_none(), "CI needs redis-server");
        eprintln!("skipping: no redis-server");
        return None;
    }
    let started = Instant::now();
    let status = Command::new("bash")
        .arg(script())
        .args(["start", BASE])
        .status()
        .unwrap();
    assert!(status.success(), "the private cluster did not start");
    eprintln!("private cluster up in {:?}", started.elapsed());
    Some(Cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_fails_over_and_no_waited_2xx_is_lost() {
    let Some(_cluster) = start() else {
        return;
    };
    let options = |prefix: &str| {
        RedisOptions::new()
            .prefix(prefix)
            .partitions(3)
            .timeout(Duration::from_millis(1_000))
    };
    let waiting = RedisBackend::connect_with(
        URL,
        options("failover:waiting:").wait_for_replicas(1, Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let plain = RedisBackend::connect_with(URL, options("failover:plain:"))
        .await
        .unwrap();

    let pidfile = format!("/tmp/agentsync-redis-cluster-{BASE}/7201/redis.pid");
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    let mut acked_waiting = Vec::new();
    let mut acked_plain = Vec::new();
    let (mut failed_waiting, mut failed_plain) = (0_u32, 0_u32);
    let mut killed_at = None;
    let mut ok_after_failover = 0_u32;
    let start = Instant::now();
    let mut n = 0_u64;
    let mut last_report = 0_u64;
    while start.elapsed() < Duration::from_secs(12) {
        let second = start.elapsed().as_secs();
        if second != last_report {
            last_report = second;
            eprintln!(
                "t={second}s ok={}/{} failed={failed_waiting}/{failed_plain}",
                acked_waiting.len(),
                acked_plain.len()
            );
        }
        if killed_at.is_none() && start.elapsed() > Duration::from_millis(1_500) {
            let status = Command::new("kill").args(["-9", &pid]).status().unwrap();
            assert!(status.success());
            killed_at = Some(Instant::now());
        }
        n += 1;
        let id_w = format!("w{n}");
        let id_p = format!("p{n}");
        match waiting.enqueue(&delivery(&id_w)).await {
            Ok(_) => {
                acked_waiting.push(id_w);
                if killed_at.is_some_and(|at| at.elapsed() > Duration::from_secs(6)) {
                    ok_after_failover += 1;
                }
            }
            Err(err) => {
                failed_waiting += 1;
                if failed_waiting % 50 == 1 {
                    eprintln!("{:?} waiting: {err}", start.elapsed());
                }
            }
        }
        match plain.enqueue(&delivery(&id_p)).await {
            Ok(_) => acked_plain.push(id_p),
            Err(err) => {
                failed_plain += 1;
                if failed_plain % 50 == 1 {
                    eprintln!("{:?} plain: {err}", start.elapsed());
                }
            }
        }
    }
    assert!(
        ok_after_failover > 0,
        "the library did not get back to the cluster after the failover"
    );
    let mut lost_waiting = Vec::new();
    for id in &acked_waiting {
        if waiting.delivery(id).await.unwrap().is_none() {
            lost_waiting.push(id.clone());
        }
    }
    let mut lost_plain = 0;
    for id in &acked_plain {
        if plain.delivery(id).await.unwrap().is_none() {
            lost_plain += 1;
        }
    }
    eprintln!(
        "failover: wait_for_replicas(1): {} answered Ok, {failed_waiting} refused (503), {} lost; \
         without: {} answered Ok, {failed_plain} refused, {lost_plain} lost",
        acked_waiting.len(),
        lost_waiting.len(),
        acked_plain.len()
    );
    assert!(
        lost_waiting.is_empty(),
        "lost after a 2xx: {lost_waiting:?}"
    );
}
