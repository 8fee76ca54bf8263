//! What the single-Redis test files share: the server's URL, a key prefix of its own per test
//! (its keys deleted at the end), and a backend under it.
#![allow(dead_code)]

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agentsync_webhooks_queue::redis::{RedisBackend, RedisOptions};

/// `REDIS_URL`, and whether it was set (then Redis is required).
pub fn redis_url() -> (String, bool) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => ("redis://127.0.0.1:6379".to_owned(), false),
    }
}

/// A key prefix unique to `test` in this run of this process.
pub fn prefix(test: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{nanos:x}", std::process::id())
    });
    format!("agentsync-webhooks-test:queue:{run}:{test}:")
}

/// Deletes a test's keys when the test ends.
pub struct DropKeys {
    pub url: String,
    pub prefix: String,
}

impl Drop for DropKeys {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// A backend under its own prefix, or `None` (skip, with a note) when Redis is unreachable and
/// `REDIS_URL` is not set.
pub async fn backend(test: &str) -> Option<(RedisBackend, DropKeys)> {
    backend_with(test, RedisOptions::new()).await
}

/// Like [`backend`], with `options` (their prefix replaced by the test's).
pub async fn backend_with(test: &str, options: RedisOptions) -> Option<(RedisBackend, DropKeys)> {
    let (url, required) = redis_url();
    let prefix = prefix(test);
    match RedisBackend::connect_with(&url, options.prefix(prefix.clone())).await {
        Ok(backend) => Some((backend, DropKeys { url, prefix })),
        Err(err) if required => panic!("REDIS_URL={url} is set but Redis is unreachable: {err}"),
        Err(err) => {
            eprintln!("skipping {test}: no Redis at {url} ({err}); set REDIS_URL to require it");
            None
        }
    }
}
