//! The persistence check at connect, each case against a private `redis-server` started by the
//! test with that setting (skipped, with a note, where there is no `redis-server` binary): for
//! the queue (`RedisBackend`, `Queue::from_url` with `?persistence=required`, `Queue::health`)
//! and for the idempotency store (`RedisStore`).
#![cfg(feature = "redis")]

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use agentsync_webhooks_queue::{
    Queue,
    redis::{RedisBackend, RedisOptions},
};
use agentsync_webhooks_redis::RedisStore;

/// A private `redis-server` with `args`, killed when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(args: &[&str]) -> Option<Server> {
    let available = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        eprintln!("skipping: no redis-server binary");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--dir", dir.path().to_str().unwrap()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Server {
        child,
        url,
        _dir: dir,
    })
}

/// The settings each found, and what require_persistence says.
async fn findings(args: &[&str]) -> Option<(Vec<&'static str>, Vec<String>, String)> {
    let server = server(args)?;
    let backend = RedisBackend::connect(&server.url).await.unwrap();
    let report = backend.persistence().unwrap().clone();
    let refused =
        RedisBackend::connect_with(&server.url, RedisOptions::new().require_persistence())
            .await
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
    Some((
        report.findings.iter().map(|f| f.setting).collect(),
        report.unchecked.clone(),
        refused,
    ))
}

#[tokio::test]
async fn nothing_on_disk_is_found_and_refused_when_required() {
    let Some((found, unchecked, refused)) = findings(&["--appendonly", "no", "--save", ""]).await
    else {
        return;
    };
    assert_eq!(found, ["appendonly"]);
    assert!(unchecked.is_empty(), "{unchecked:?}");
    assert!(refused.contains("appendonly no and save \"\""), "{refused}");
    assert!(refused.contains("CONFIG SET appendonly yes"), "{refused}");
}

#[tokio::test]
async fn snapshots_only_are_found() {
    let Some((found, _, refused)) = findings(&["--appendonly", "no", "--save", "60 1"]).await
    else {
        return;
    };
    assert_eq!(found, ["appendonly"]);
    assert!(refused.contains("RDB snapshots only"), "{refused}");
}

#[tokio::test]
async fn appendfsync_no_is_found() {
    let Some((found, _, refused)) =
        findings(&["--appendonly", "yes", "--appendfsync", "no", "--save", ""]).await
    else {
        return;
    };
    assert_eq!(found, ["appendfsync"]);
    assert!(refused.contains("appendfsync everysec"), "{refused}");
}

#[tokio::test]
async fn an_eviction_policy_is_found() {
    let Some((found, _, refused)) = findings(&[
        "--appendonly",
        "yes",
        "--save",
        "",
        "--maxmemory-policy",
        "volatile-lru",
    ])
    .await
    else {
        return;
    };
    assert_eq!(found, ["maxmemory-policy"]);
    assert!(refused.contains("maxmemory-policy noeviction"), "{refused}");
}

#[tokio::test]
async fn aof_everysec_and_noeviction_pass() {
    let Some((found, unchecked, refused)) = findings(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
    ])
    .await
    else {
        return;
    };
    assert!(found.is_empty(), "{found:?}");
    assert!(unchecked.is_empty(), "{unchecked:?}");
    assert_eq!(refused, "");
}

#[tokio::test]
async fn a_refused_config_is_said_once_and_info_still_checks() {
    // A managed service's Redis: CONFIG renamed away, INFO allowed.
    let Some(server) = server(&[
        "--appendonly",
        "no",
        "--save",
        "",
        "--rename-command",
        "CONFIG",
        "",
    ]) else {
        return;
    };
    let backend = RedisBackend::connect(&server.url).await.unwrap();
    let report = backend.persistence().unwrap();
    assert_eq!(report.unchecked.len(), 1, "{report:?}");
    assert!(report.unchecked[0].contains("CONFIG GET was refused"));
    // aof_enabled:0 from INFO is still a finding.
    assert_eq!(
        report
            .findings
            .iter()
            .map(|f| f.setting)
            .collect::<Vec<_>>(),
        ["appendonly"]
    );
    let health = Queue::new(backend).health().await.unwrap();
    assert_eq!(health.engine, "redis");
    assert_eq!(health.warnings.len(), 2, "{health:?}");
}

#[tokio::test]
async fn the_url_option_refuses_and_health_reports() {
    let Some(server) = server(&["--appendonly", "no", "--save", ""]) else {
        return;
    };
    let err = Queue::from_url(&format!("{}?persistence=required", server.url))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("persistence is required"), "{err}");
    // Warned, not refused, by default; the health check carries the finding.
    let queue = Queue::from_url(&server.url).await.unwrap();
    let health = queue.health().await.unwrap();
    assert!(
        health.warnings.iter().any(|w| w.contains("appendonly no")),
        "{health:?}"
    );
    drop(server);
    // The engine is gone: health fails with the reason.
    let err = queue.health().await.unwrap_err();
    assert!(!err.to_string().is_empty());
}

#[tokio::test]
async fn the_idempotency_store_runs_the_same_check() {
    let Some(server) = server(&["--appendonly", "no", "--save", ""]) else {
        return;
    };
    let store = RedisStore::connect(&server.url).await.unwrap();
    let report = store.persistence().unwrap();
    assert_eq!(report.findings.len(), 1, "{report:?}");
    let err = RedisStore::connect_requiring_persistence(&server.url)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("appendonly"), "{err}");
    let err = RedisStore::connect(&format!("{}?persistence=required", server.url))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("appendonly"), "{err}");
    let good = server_pass().await;
    if let Some(good) = good {
        let store = RedisStore::connect_requiring_persistence(&good.url)
            .await
            .unwrap();
        assert!(store.persistence().unwrap().is_clean());
    }
}

async fn server_pass() -> Option<Server> {
    server(&["--appendonly", "yes", "--save", ""])
}

#[tokio::test]
async fn wait_for_aof_is_refused_before_redis_7_2_naming_the_version() {
    let Some(server) = server_pass().await else {
        return;
    };
    let result = RedisBackend::connect_with(
        &server.url,
        RedisOptions::new().wait_for_aof(true, 0, Duration::from_millis(200)),
    )
    .await;
    let mut connection = redis::Client::open(server.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut connection)
        .unwrap();
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap()
        .trim()
        .to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    if (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (7, 2) {
        let err = result.unwrap_err().to_string();
        assert!(err.contains("WAITAOF"), "{err}");
        assert!(err.contains(&version), "{err}");
    } else {
        let backend = result.unwrap();
        let delivery = agentsync_webhooks_queue::contract::sample_delivery("aof");
        agentsync_webhooks_queue::Backend::enqueue(&backend, &delivery)
            .await
            .unwrap();
    }
}
