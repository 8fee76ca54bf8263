//! The memory store: the shared store contract, its bound under a million ids, and the
//! receiver's handling of a store that fails.

use std::{
    future::Future,
    pin::pin,
    sync::{
        Arc, Barrier,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use agentsync_webhooks_core::{
    EventData, EventPayload, EventType, Receiver, Signer, Verifier, WebhookError,
    adapter::Rejection,
    idempotency::{
        Claim, Idempotency, IdempotencyStore, LeaseToken, MemoryStore, StoreError, StoreErrorKind,
        StoreFuture, contract::StoreContract,
    },
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HOUR: Duration = Duration::from_secs(3600);

async fn contract(case: &'static str) -> Option<StoreContract> {
    Some(StoreContract::new(
        MemoryStore::new(),
        format!("memory:{case}:"),
        tokio::time::sleep,
    ))
}

agentsync_webhooks_core::store_contract_tests!(contract);

/// The memory store answers at once, so its futures need no executor.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

fn claim(store: &MemoryStore, key: &str) -> Claim {
    now(store.claim(key, HOUR)).unwrap()
}

#[test]
fn entry_count_stays_bounded_under_a_million_distinct_ids() {
    const CAPACITY: u64 = 10_000;
    let store = MemoryStore::with_capacity(CAPACITY);
    let pinned = "msg_running_all_along";
    let Claim::New(pinned_token) = claim(&store, pinned) else {
        panic!("new")
    };
    for i in 0..1_000_000u32 {
        let key = format!("msg_{i:08}");
        let Claim::New(token) = claim(&store, &key) else {
            panic!("{key} is new")
        };
        assert!(now(store.complete(&key, token, HOUR)).unwrap());
        if i % 100_000 == 99_999 {
            let count = store.entry_count();
            assert!(
                count <= CAPACITY + 1,
                "{count} entries after {} ids, capacity {CAPACITY} + 1 running",
                i + 1
            );
        }
    }
    // The claim running since the start was never evicted, however many ids completed since.
    assert!(matches!(claim(&store, pinned), Claim::InFlight { .. }));
    assert!(now(store.complete(pinned, pinned_token, HOUR)).unwrap());
    assert_eq!(claim(&store, pinned), Claim::Done);
    // The most recent completions are still remembered; the oldest were evicted first.
    assert_eq!(claim(&store, "msg_00999999"), Claim::Done);
    assert!(matches!(claim(&store, "msg_00000000"), Claim::New(_)));
}

#[test]
fn threads_claiming_one_id_have_one_winner() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 200;
    let store = MemoryStore::new();
    let barrier = Barrier::new(THREADS);
    for round in 0..ROUNDS {
        let key = format!("msg_round_{round}");
        let winners = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    barrier.wait();
                    if let Claim::New(_) = claim(&store, &key) {
                        winners.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(winners.into_inner(), 1, "round {round}");
    }
}

#[tokio::test]
async fn a_dropped_completion_releases_at_once() {
    let receiver =
        Receiver::new(Verifier::new(SECRET).unwrap()).with_idempotency(MemoryStore::new());
    let request = Signer::new(SECRET)
        .unwrap()
        .example(EventType::ProducerSyncUpdatesAvailable);
    let headers = request.headers.to_pairs();
    let accepted = receiver
        .accept::<EventData>(&headers, request.body.clone().into())
        .await
        .unwrap();
    drop(accepted); // as when the handler panics or the request is cancelled
    let retry = receiver
        .accept::<EventData>(&headers, request.body.into())
        .await
        .unwrap();
    retry.completion.finish(200).await;
}

/// A store that is always down.
struct DownStore;

impl IdempotencyStore for DownStore {
    fn claim<'a>(&'a self, _: &'a str, _: Duration) -> StoreFuture<'a, Claim> {
        Box::pin(async {
            Err(StoreError::new(
                StoreErrorKind::Unreachable,
                "db-7.internal refused",
            ))
        })
    }
    fn complete<'a>(&'a self, _: &'a str, _: LeaseToken, _: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::new(StoreErrorKind::Unreachable, "down")) })
    }
    fn release<'a>(&'a self, _: &'a str, _: LeaseToken) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::new(StoreErrorKind::Unreachable, "down")) })
    }
    fn release_detached(&self, _: &str, _: LeaseToken) {}
    fn forget<'a>(&'a self, _: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::new(StoreErrorKind::Unreachable, "down")) })
    }
}

#[tokio::test]
async fn an_unavailable_store_is_a_503_by_default_and_passes_when_fail_open() {
    let verifier = Verifier::new(SECRET).unwrap();
    let request = Signer::new(SECRET)
        .unwrap()
        .example(EventType::ProducerSyncUpdatesAvailable);
    let headers = request.headers.to_pairs();

    let closed = Receiver::new(verifier.clone()).with_idempotency(
        Idempotency::new(DownStore).with_unavailable_retry_after(Duration::from_secs(7)),
    );
    let err = closed
        .accept::<EventData>(&headers, request.body.clone().into())
        .await
        .unwrap_err();
    let rejection = Rejection::new(err, Some(&request.headers.id));
    assert_eq!(
        (rejection.status(), rejection.retry_after()),
        (503, Some(7))
    );
    let body = String::from_utf8(rejection.body().to_vec()).unwrap();
    assert!(
        body.contains("store_unavailable") && body.contains("unreachable"),
        "{body}"
    );
    assert!(
        !body.contains("db-7.internal"),
        "the store's own message stays in the logs: {body}"
    );

    let open = Receiver::new(verifier).with_idempotency(Idempotency::new(DownStore).fail_open());
    let accepted = open
        .accept::<EventData>(&headers, request.body.into())
        .await
        .unwrap();
    assert!(!accepted.completion.is_claimed());
    accepted.completion.finish(200).await;
}

#[tokio::test]
async fn without_idempotency_nothing_is_claimed() {
    let receiver = Receiver::new(Verifier::new(SECRET).unwrap());
    let request = Signer::new(SECRET)
        .unwrap()
        .example(EventType::ProducerSyncUpdatesAvailable);
    let headers = request.headers.to_pairs();
    for _ in 0..2 {
        let accepted = receiver
            .accept::<EventData>(&headers, request.body.clone().into())
            .await
            .unwrap();
        assert!(!accepted.completion.is_claimed());
        accepted.completion.finish(200).await;
    }
}

#[test]
fn a_shared_store_can_be_kept_for_operators() {
    let store = Arc::new(MemoryStore::new());
    let receiver =
        Receiver::new(Verifier::new(SECRET).unwrap()).with_idempotency(Arc::clone(&store));
    let idempotency = receiver.idempotency().unwrap();
    assert_eq!(idempotency.key("msg_1"), "agentsync-webhooks:msg_1");
    assert_eq!(idempotency.lease(), Duration::from_secs(60));
    assert_eq!(idempotency.ttl(), Duration::from_secs(72 * 3600));
    assert!(!idempotency.is_fail_open());
    let Claim::New(_) = claim(&store, "agentsync-webhooks:msg_1") else {
        panic!("new")
    };
    assert!(now(idempotency.forget("msg_1")).unwrap());
}

/// A payload type that cannot cross threads.
struct NotSend(std::marker::PhantomData<std::rc::Rc<()>>);

impl EventPayload for NotSend {
    fn from_data(_: &str, _: &serde_json::value::RawValue) -> Result<Self, WebhookError> {
        Ok(Self(std::marker::PhantomData))
    }
}

#[test]
fn accept_and_finish_are_send_whatever_the_payload() {
    fn assert_send<T: Send>(_: &T) {}
    let receiver =
        Receiver::new(Verifier::new(SECRET).unwrap()).with_idempotency(MemoryStore::new());
    let headers: [(&str, String); 0] = [];
    let accept = receiver.accept::<NotSend>(&headers, bytes::Bytes::new());
    assert_send(&accept);
    let result = now(accept);
    assert!(result.is_err());
}
