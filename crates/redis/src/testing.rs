//! Helpers for test suites that run against a real Redis (feature `testing`).
//!
//! `REDIS_URL` (default `redis://127.0.0.1:6379`) names the server. When the variable is set,
//! Redis is required: an unreachable one fails the test instead of skipping it, so that CI,
//! which sets it, cannot pass without having run the Redis tests.

use std::{
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use crate::RedisStore;

/// `REDIS_URL`, and whether it was set (then Redis is required).
pub fn redis_url() -> (String, bool) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, true),
        _ => ("redis://127.0.0.1:6379".to_owned(), false),
    }
}

/// A store on the real Redis, or `None` (skip `test`, with a note) when it is unreachable and
/// `REDIS_URL` is not set.
///
/// # Panics
///
/// When `REDIS_URL` is set and Redis is unreachable.
pub async fn real_store(test: &str) -> Option<RedisStore> {
    let (url, required) = redis_url();
    match RedisStore::connect(&url).await {
        Ok(store) => Some(store),
        Err(err) if required => panic!("REDIS_URL={url} is set but Redis is unreachable: {err}"),
        Err(err) => {
            eprintln!("skipping {test}: no Redis at {url} ({err}); set REDIS_URL to require it");
            None
        }
    }
}

/// A key prefix unique to `test` in this run of this process, so that tests run in parallel and
/// again without seeing each other's keys.
pub fn namespace(test: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{nanos:x}", std::process::id())
    });
    format!("agentsync-webhooks-test:{run}:{test}:")
}
