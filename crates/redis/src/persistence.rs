//! What Redis says about its own durability, read at connect: whether a write it answered
//! survives a restart, and whether it may evict keys.
//!
//! Each server (every primary of a cluster) is asked `INFO persistence` (`aof_enabled`),
//! `INFO memory` (`maxmemory_policy`) and `CONFIG GET appendonly`, `save`, `appendfsync` and
//! `maxmemory-policy`. Managed services often refuse `CONFIG`: what `INFO` tells is still
//! checked, and the report says which settings could not be read. A [`Finding`] names the
//! setting, what it costs and its fix:
//!
//! | setting | finding |
//! |---|---|
//! | `appendonly no` and `save ""` | nothing reaches the disk: every write answered is lost when Redis restarts |
//! | `appendonly no`, RDB `save` points only | what was answered since the last snapshot is lost when Redis crashes |
//! | `appendfsync no` | the kernel flushes the AOF when it likes (about every 30 s): a machine crash loses what was answered since |
//! | `maxmemory-policy` other than `noeviction` | under memory pressure Redis deletes keys (`volatile-*` ones too: the done marks and leases have expiries) |
//!
//! `appendonly yes` with `appendfsync everysec` (Redis's default for AOF; at most a second lost
//! when the machine, not only Redis, crashes) or `always` passes.

use agentsync_webhooks_core::idempotency::{StoreError, StoreErrorKind};
use redis::Value;

use crate::connection::RedisConnection;

/// One problem with a server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The server's address (`""` for a single Redis).
    pub node: String,
    /// The setting, as Redis names it (`appendonly`, `appendfsync`, `maxmemory-policy`).
    pub setting: &'static str,
    /// What it costs and how to fix it, one sentence.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.node.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} (on {})", self.message, self.node)
        }
    }
}

/// What the check found on every server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistenceReport {
    /// The problems found.
    pub findings: Vec<Finding>,
    /// What could not be read (a refused `CONFIG`, a refused `INFO`), one sentence each.
    pub unchecked: Vec<String>,
    /// Whether every server's `appendonly` (or `aof_enabled`) could be read.
    pub aof_known: bool,
}

impl PersistenceReport {
    /// Nothing found, nothing left unchecked.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.unchecked.is_empty()
    }

    /// The findings and what was not checked, one line each, for a health check.
    pub fn lines(&self) -> Vec<String> {
        self.findings
            .iter()
            .map(ToString::to_string)
            .chain(self.unchecked.iter().cloned())
            .collect()
    }

    /// Logs each finding as a warning naming `what` (the queue, the idempotency store), and
    /// once what could not be checked.
    pub fn log(&self, what: &str) {
        for finding in &self.findings {
            tracing::warn!(
                setting = finding.setting,
                node = %finding.node,
                "IMPORTANT! Redis persistence for {what}: {}",
                finding.message
            );
        }
        if !self.unchecked.is_empty() {
            tracing::warn!(
                "Redis persistence for {what} could not be fully checked: {}",
                self.unchecked.join("; ")
            );
        }
    }

    /// An error when a finding (or nothing readable) means a 2xx might not be kept, for
    /// `require_persistence`: names each setting and its fix.
    pub fn require(&self, what: &str) -> Result<(), StoreError> {
        if self.findings.is_empty() && self.aof_known {
            return Ok(());
        }
        let mut reasons: Vec<String> = self.findings.iter().map(ToString::to_string).collect();
        if !self.aof_known {
            reasons.push(format!(
                "its persistence could not be read ({})",
                self.unchecked.join("; ")
            ));
        }
        Err(StoreError::new(
            StoreErrorKind::Other,
            format!(
                "Redis does not keep what {what} writes, and persistence is required: {} \
                 (or drop the requirement: require_persistence / ?persistence=required)",
                reasons.join("; ")
            ),
        ))
    }
}

/// Reads every server's persistence and eviction settings. Never fails: what cannot be read
/// is in [`PersistenceReport::unchecked`].
pub async fn check(connection: &RedisConnection) -> PersistenceReport {
    let mut connection = connection.clone();
    let mut report = PersistenceReport {
        aof_known: true,
        ..PersistenceReport::default()
    };
    let info = connection
        .on_each_primary(redis::cmd("INFO").arg("persistence").arg("memory").clone())
        .await;
    let config = connection
        .on_each_primary(
            redis::cmd("CONFIG")
                .arg("GET")
                .arg("appendonly")
                .arg("save")
                .arg("appendfsync")
                .arg("maxmemory-policy")
                .clone(),
        )
        .await;
    let info = match info {
        Ok(replies) => replies,
        Err(err) => {
            report.aof_known = false;
            report
                .unchecked
                .push(format!("INFO failed ({})", err.category()));
            Vec::new()
        }
    };
    let config = config.unwrap_or_default();
    let mut config_refused = false;
    let nodes: Vec<String> = if info.is_empty() {
        config.iter().map(|(node, _)| node.clone()).collect()
    } else {
        info.iter().map(|(node, _)| node.clone()).collect()
    };
    for node in nodes {
        let info_text = info
            .iter()
            .find(|(n, _)| *n == node)
            .and_then(|(_, value)| text(value));
        let settings = config
            .iter()
            .find(|(n, _)| *n == node)
            .and_then(|(_, value)| pairs(value));
        if settings.is_none() {
            config_refused = true;
        }
        let from_info = |name: &str| {
            info_text.as_deref().and_then(|info| {
                info.lines()
                    .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
                    .map(|value| value.trim().to_owned())
            })
        };
        let setting = |name: &str| {
            settings
                .as_ref()
                .and_then(|pairs| pairs.iter().find(|(n, _)| n == name))
                .map(|(_, value)| value.clone())
        };
        let aof = setting("appendonly")
            .map(|value| value == "yes")
            .or_else(|| from_info("aof_enabled").map(|value| value == "1"));
        let save = setting("save");
        let fsync = setting("appendfsync");
        let policy = setting("maxmemory-policy").or_else(|| from_info("maxmemory_policy"));
        let mut find = |setting: &'static str, message: String| {
            report.findings.push(Finding {
                node: node.clone(),
                setting,
                message,
            });
        };
        match (aof, save.as_deref()) {
            (None, _) => report.aof_known = false,
            (Some(true), _) => {
                if fsync.as_deref() == Some("no") {
                    find(
                        "appendfsync",
                        "appendfsync no: the kernel flushes the append-only file when it likes \
                         (about every 30 s), so a crash of the machine loses what was answered \
                         since; fix: CONFIG SET appendfsync everysec (at most 1 s lost) or \
                         always, and the same in redis.conf"
                            .to_owned(),
                    );
                }
            }
            (Some(false), Some("")) => find(
                "appendonly",
                "appendonly no and save \"\": nothing reaches the disk, so every delivery \
                 answered 2xx is lost when Redis restarts; fix: CONFIG SET appendonly yes \
                 (appendfsync everysec or always), and appendonly yes in redis.conf"
                    .to_owned(),
            ),
            (Some(false), Some(points)) => find(
                "appendonly",
                format!(
                    "appendonly no (RDB snapshots only, save \"{points}\"): what was answered \
                     2xx since the last snapshot is lost when Redis crashes; fix: CONFIG SET \
                     appendonly yes (appendfsync everysec or always), and the same in \
                     redis.conf"
                ),
            ),
            (Some(false), None) => find(
                "appendonly",
                "appendonly no: at best RDB snapshots (the save points could not be read), so \
                 what was answered 2xx since the last one is lost when Redis crashes; fix: \
                 appendonly yes (appendfsync everysec or always)"
                    .to_owned(),
            ),
        }
        if let Some(policy) = policy
            && policy != "noeviction"
        {
            find(
                "maxmemory-policy",
                format!(
                    "maxmemory-policy {policy}: when Redis reaches maxmemory it deletes keys, \
                     and the queue's (jobs, records, de-duplication marks, leases) are among \
                     them; fix: CONFIG SET maxmemory-policy noeviction (a full Redis then \
                     refuses writes, answered 503, instead of losing them), and the same in \
                     redis.conf"
                ),
            );
        }
    }
    if config_refused {
        report.unchecked.push(
            "CONFIG GET was refused (a managed service?): the save points and appendfsync \
             were not checked; appendonly and the eviction policy were read from INFO"
                .to_owned(),
        );
    }
    report
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// `CONFIG GET`'s reply as (name, value) pairs: an array of name, value... (RESP2) or a map.
fn pairs(value: &Value) -> Option<Vec<(String, String)>> {
    match value {
        Value::Array(items) => Some(
            items
                .chunks(2)
                .filter_map(|pair| Some((text(pair.first()?)?, text(pair.get(1)?)?)))
                .collect(),
        ),
        Value::Map(items) => Some(
            items
                .iter()
                .filter_map(|(name, value)| Some((text(name)?, text(value)?)))
                .collect(),
        ),
        _ => None,
    }
}
