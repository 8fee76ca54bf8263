//! Redis round trips per event: claim + complete of a new id (two round trips, each a Lua
//! script), the claim of a duplicate (one), and 64 deliveries in flight at once on one
//! multiplexed connection (throughput).
//!
//! `REDIS_URL=redis://127.0.0.1:6379 cargo bench -p agentsync-webhooks-redis --bench redis_store`
//!
//! Keys live under a per-run prefix and expire after a minute.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agentsync_webhooks_core::idempotency::{Claim, IdempotencyStore};
use agentsync_webhooks_redis::RedisStore;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const LEASE: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(60);
const IN_FLIGHT: u64 = 64;

async fn claim_complete(store: &RedisStore, key: &str) {
    match store.claim(key, LEASE).await {
        Ok(Claim::New(token)) => {
            assert!(store.complete(key, token, TTL).await.unwrap_or(false));
        }
        other => panic!("{key}: {other:?}"),
    }
}

fn redis(c: &mut Criterion) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = runtime
        .block_on(RedisStore::connect(&url))
        .unwrap_or_else(|err| panic!("no Redis at {url}: {err}"));
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let prefix = format!("agentsync-webhooks-bench:{run:x}:");
    let counter = AtomicU64::new(0);
    let next_key = || format!("{prefix}{}", counter.fetch_add(1, Ordering::Relaxed));

    let mut group = c.benchmark_group("idempotency/redis");
    group.measurement_time(Duration::from_secs(5));

    group.throughput(Throughput::Elements(1));
    group.bench_function("claim+complete new id", |b| {
        b.iter(|| runtime.block_on(claim_complete(&store, &next_key())))
    });

    let duplicate = next_key();
    runtime.block_on(claim_complete(&store, &duplicate));
    group.bench_function("claim duplicate", |b| {
        b.iter(|| {
            let claim = runtime.block_on(store.claim(&duplicate, LEASE));
            assert!(matches!(claim, Ok(Claim::Done)));
        })
    });

    group.throughput(Throughput::Elements(IN_FLIGHT));
    group.bench_function("claim+complete, 64 in flight", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let tasks: Vec<_> = (0..IN_FLIGHT)
                    .map(|_| {
                        let store = store.clone();
                        let key = next_key();
                        tokio::spawn(async move { claim_complete(&store, &key).await })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, redis);
criterion_main!(benches);
