//! Cost of idempotency on the memory store, per event: claim + complete of a new id (the path of
//! every first delivery, with the store full so that every completion also evicts), claim +
//! release (a failed handler), and the claim of a duplicate. Target: under 1 µs per event.
//!
//! `cargo bench -p agentsync-webhooks-core --bench idempotency`

use std::{
    fmt::Write as _,
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use agentsync_webhooks_core::idempotency::{
    Claim, DEFAULT_LEASE, DEFAULT_TTL, IdempotencyStore, MemoryStore,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The memory store's futures are ready at once: poll them in place, as a runtime would.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the memory store never waits"),
    }
}

fn claim_complete(store: &dyn IdempotencyStore, key: &str) {
    match now(store.claim(key, DEFAULT_LEASE)) {
        Ok(Claim::New(token)) => {
            let done = now(store.complete(key, token, DEFAULT_TTL));
            black_box(done.ok());
        }
        other => panic!("{key}: {other:?}"),
    }
}

fn memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("idempotency/memory");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));

    // A full store (default capacity): each new completion evicts the oldest.
    let store = MemoryStore::new();
    let mut key = String::with_capacity(64);
    let mut n = 0u64;
    let mut next_key = |key: &mut String| {
        key.clear();
        n += 1;
        let _ = write!(key, "agentsync-webhooks:msg_{n:024}");
    };
    for _ in 0..store.capacity() {
        next_key(&mut key);
        claim_complete(&store, &key);
    }
    group.bench_function("claim+complete new id", |b| {
        b.iter(|| {
            next_key(&mut key);
            claim_complete(&store, &key);
        })
    });

    group.bench_function("claim+release", |b| {
        b.iter(|| {
            next_key(&mut key);
            if let Ok(Claim::New(token)) = now(store.claim(&key, DEFAULT_LEASE)) {
                black_box(now(store.release(&key, token)).ok());
            }
        })
    });

    let duplicate = "agentsync-webhooks:msg_duplicate";
    claim_complete(&store, duplicate);
    group.bench_function("claim duplicate", |b| {
        b.iter(|| black_box(now(store.claim(black_box(duplicate), DEFAULT_LEASE)).ok()))
    });
    group.finish();
}

criterion_group!(benches, memory);
criterion_main!(benches);
