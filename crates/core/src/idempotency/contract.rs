//! The test suite every [`IdempotencyStore`] must pass (feature `testing`).
//!
//! Runtime-agnostic: the caller supplies the async sleep of its runtime. Each case works under
//! its own keys (the contract's namespace plus the case name), so cases, and tests of several
//! stores against one shared backend, can run in parallel. A failure panics with the case name.
//!
//! With tokio, [`store_contract_tests!`](crate::store_contract_tests) writes one `#[tokio::test]`
//! per case:
//!
//! ```ignore
//! use agentsync_webhooks_core::idempotency::{MemoryStore, contract::StoreContract};
//!
//! async fn contract(case: &'static str) -> Option<StoreContract> {
//!     Some(StoreContract::new(MemoryStore::new(), format!("test:{case}:"), tokio::time::sleep))
//! }
//!
//! agentsync_webhooks_core::store_contract_tests!(contract);
//! ```

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::{Duration, Instant},
};

use super::{Claim, Idempotency, IdempotencyStore, LeaseToken};
use crate::{EventData, EventType, Receiver, SignedRequest, Signer, Verifier, WebhookError};

/// A lease long enough never to expire during a case.
const LONG: Duration = Duration::from_secs(600);
/// A lease or TTL short enough to wait out.
const SHORT: Duration = Duration::from_millis(300);
/// Waiting out [`SHORT`] with a wide margin.
const PAST_SHORT: Duration = Duration::from_millis(900);
/// How long a background release may take before the case fails.
const SETTLE_DEADLINE: Duration = Duration::from_secs(10);
/// Concurrent claims of one key.
const CONTENDERS: usize = 200;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

type SleepFn = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One store under test, a namespace for its keys, and the runtime's sleep.
#[derive(Clone)]
pub struct StoreContract {
    store: Arc<dyn IdempotencyStore>,
    namespace: String,
    sleep: SleepFn,
}

impl std::fmt::Debug for StoreContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreContract")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The names of every case, in the order [`StoreContract::run_all`] runs them.
pub const CASES: &[&str] = &[
    "claim_is_new_then_in_flight",
    "complete_makes_done",
    "release_makes_claimable_with_a_new_token",
    "stale_token_changes_nothing",
    "lease_expires",
    "completion_expires_after_its_ttl",
    "forget_reopens_an_id",
    "namespaces_are_independent",
    "concurrent_claims_have_one_winner",
    "release_detached_reopens_an_id",
    "receiver_processes_each_id_once",
    "receiver_releases_after_a_failure",
    "receiver_releases_an_abandoned_delivery",
    "receiver_answers_in_flight_with_retry_after",
];

impl StoreContract {
    /// Tests `store`, keeping its keys under `namespace`, sleeping with `sleep`
    /// (e.g. `tokio::time::sleep`).
    pub fn new<F, Fut>(store: impl IdempotencyStore, namespace: impl Into<String>, sleep: F) -> Self
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::from_arc(Arc::new(store), namespace, sleep)
    }

    /// Tests a shared store.
    pub fn from_arc<F, Fut>(
        store: Arc<dyn IdempotencyStore>,
        namespace: impl Into<String>,
        sleep: F,
    ) -> Self
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            store,
            namespace: namespace.into(),
            sleep: Arc::new(move |duration| Box::pin(sleep(duration))),
        }
    }

    /// Runs every case, one after the other.
    pub async fn run_all(&self) {
        self.claim_is_new_then_in_flight().await;
        self.complete_makes_done().await;
        self.release_makes_claimable_with_a_new_token().await;
        self.stale_token_changes_nothing().await;
        self.lease_expires().await;
        self.completion_expires_after_its_ttl().await;
        self.forget_reopens_an_id().await;
        self.namespaces_are_independent().await;
        self.concurrent_claims_have_one_winner().await;
        self.release_detached_reopens_an_id().await;
        self.receiver_processes_each_id_once().await;
        self.receiver_releases_after_a_failure().await;
        self.receiver_releases_an_abandoned_delivery().await;
        self.receiver_answers_in_flight_with_retry_after().await;
    }

    fn key(&self, case: &str) -> String {
        format!("{}{case}", self.namespace)
    }

    async fn claim(&self, case: &str, key: &str, lease: Duration) -> Claim {
        match self.store.claim(key, lease).await {
            Ok(claim) => claim,
            Err(err) => panic!("{case}: claim({key}) failed: {err}"),
        }
    }

    async fn claim_new(&self, case: &str, key: &str, lease: Duration) -> LeaseToken {
        match self.claim(case, key, lease).await {
            Claim::New(token) => token,
            other => panic!("{case}: claim({key}) of a free key gave {other:?}, expected New"),
        }
    }

    async fn complete(&self, case: &str, key: &str, token: LeaseToken, ttl: Duration) -> bool {
        match self.store.complete(key, token, ttl).await {
            Ok(done) => done,
            Err(err) => panic!("{case}: complete({key}) failed: {err}"),
        }
    }

    async fn release(&self, case: &str, key: &str, token: LeaseToken) -> bool {
        match self.store.release(key, token).await {
            Ok(released) => released,
            Err(err) => panic!("{case}: release({key}) failed: {err}"),
        }
    }

    async fn forget(&self, case: &str, key: &str) -> bool {
        match self.store.forget(key).await {
            Ok(forgotten) => forgotten,
            Err(err) => panic!("{case}: forget({key}) failed: {err}"),
        }
    }

    async fn expect_in_flight(&self, case: &str, key: &str, lease: Duration) {
        match self.claim(case, key, LONG).await {
            Claim::InFlight { retry_after } => assert!(
                retry_after.is_none_or(|left| left <= lease),
                "{case}: retry_after {retry_after:?} is beyond the lease {lease:?}"
            ),
            other => {
                panic!("{case}: claim({key}) of a leased key gave {other:?}, expected InFlight")
            }
        }
    }

    async fn expect_done(&self, case: &str, key: &str) {
        let claim = self.claim(case, key, LONG).await;
        assert_eq!(
            claim,
            Claim::Done,
            "{case}: claim({key}) of a completed key"
        );
    }

    /// Claims `key` until it is new (a background release may take a moment), failing after
    /// [`SETTLE_DEADLINE`].
    async fn claim_new_eventually(&self, case: &str, key: &str) -> LeaseToken {
        let start = Instant::now();
        loop {
            match self.claim(case, key, LONG).await {
                Claim::New(token) => return token,
                other if start.elapsed() > SETTLE_DEADLINE => panic!(
                    "{case}: {key} still {other:?} {SETTLE_DEADLINE:?} after it was released"
                ),
                _ => (self.sleep)(Duration::from_millis(20)).await,
            }
        }
    }

    /// A receiver for `case` on this store, under its own key prefix.
    fn receiver(&self, case: &str) -> (Receiver, Idempotency, Signer) {
        let verifier = match Verifier::new(SECRET) {
            Ok(verifier) => verifier,
            Err(err) => panic!("{case}: test secret rejected: {err}"),
        };
        let signer = match Signer::new(SECRET) {
            Ok(signer) => signer,
            Err(err) => panic!("{case}: test secret rejected: {err}"),
        };
        let idempotency =
            Idempotency::from_arc(Arc::clone(&self.store)).with_key_prefix(self.key(case) + ":");
        let receiver = Receiver::new(verifier).with_idempotency(idempotency.clone());
        (receiver, idempotency, signer)
    }

    async fn deliver(
        receiver: &Receiver,
        request: &SignedRequest,
    ) -> Result<crate::adapter::Accepted<EventData>, WebhookError> {
        let headers = request.headers.to_pairs();
        receiver
            .accept::<EventData>(&headers, request.body.clone().into())
            .await
    }

    /// A new key is leased to one claimant; claiming it again finds it in flight.
    pub async fn claim_is_new_then_in_flight(&self) {
        let case = "claim_is_new_then_in_flight";
        let key = self.key(case);
        let lease = Duration::from_secs(120);
        self.claim_new(case, &key, lease).await;
        self.expect_in_flight(case, &key, lease).await;
        self.expect_in_flight(case, &key, lease).await;
    }

    /// A completed key is done, and stays done whatever its old token tries.
    pub async fn complete_makes_done(&self) {
        let case = "complete_makes_done";
        let key = self.key(case);
        let token = self.claim_new(case, &key, LONG).await;
        assert!(
            self.complete(case, &key, token, LONG).await,
            "{case}: complete with the lease's token"
        );
        self.expect_done(case, &key).await;
        assert!(
            !self.complete(case, &key, token, LONG).await,
            "{case}: second complete"
        );
        assert!(
            !self.release(case, &key, token).await,
            "{case}: release after complete"
        );
        self.expect_done(case, &key).await;
    }

    /// A released key is claimable again, under a different token; the old token is dead.
    pub async fn release_makes_claimable_with_a_new_token(&self) {
        let case = "release_makes_claimable_with_a_new_token";
        let key = self.key(case);
        let first = self.claim_new(case, &key, LONG).await;
        assert!(
            self.release(case, &key, first).await,
            "{case}: release with the lease's token"
        );
        let second = self.claim_new(case, &key, LONG).await;
        assert_ne!(first, second, "{case}: a new claim gets a new token");
        assert!(
            !self.release(case, &key, first).await,
            "{case}: release with the old token"
        );
        assert!(
            !self.complete(case, &key, first, LONG).await,
            "{case}: complete with the old token"
        );
        self.expect_in_flight(case, &key, LONG).await;
        assert!(
            self.complete(case, &key, second, LONG).await,
            "{case}: complete with the new token"
        );
        self.expect_done(case, &key).await;
    }

    /// A token that never held the lease cannot complete or release it.
    pub async fn stale_token_changes_nothing(&self) {
        let case = "stale_token_changes_nothing";
        let key = self.key(case);
        let token = self.claim_new(case, &key, LONG).await;
        let forged = LeaseToken::from_u128(token.as_u128() ^ 0xdead_beef);
        assert!(
            !self.complete(case, &key, forged, LONG).await,
            "{case}: complete with a foreign token"
        );
        assert!(
            !self.release(case, &key, forged).await,
            "{case}: release with a foreign token"
        );
        self.expect_in_flight(case, &key, LONG).await;
        let missing = self.key("stale_token_changes_nothing:never-claimed");
        assert!(
            !self.complete(case, &missing, token, LONG).await,
            "{case}: complete of a free key"
        );
        assert!(
            !self.release(case, &missing, token).await,
            "{case}: release of a free key"
        );
        self.claim_new(case, &missing, LONG).await;
    }

    /// A claim never completed nor released frees its key when the lease ends; its token is
    /// then dead.
    pub async fn lease_expires(&self) {
        let case = "lease_expires";
        let key = self.key(case);
        let abandoned = self.claim_new(case, &key, SHORT).await;
        (self.sleep)(PAST_SHORT).await;
        let fresh = self.claim_new(case, &key, LONG).await;
        assert!(
            !self.complete(case, &key, abandoned, LONG).await,
            "{case}: complete after the lease"
        );
        assert!(
            !self.release(case, &key, abandoned).await,
            "{case}: release after the lease"
        );
        self.expect_in_flight(case, &key, LONG).await;
        assert!(
            self.complete(case, &key, fresh, LONG).await,
            "{case}: complete of the new claim"
        );
        self.expect_done(case, &key).await;

        let expired = self.key("lease_expires:unclaimed");
        let token = self.claim_new(case, &expired, SHORT).await;
        (self.sleep)(PAST_SHORT).await;
        assert!(
            !self.complete(case, &expired, token, LONG).await,
            "{case}: complete of an expired lease nobody took over"
        );
        self.claim_new(case, &expired, LONG).await;
    }

    /// A completion is forgotten after its TTL.
    pub async fn completion_expires_after_its_ttl(&self) {
        let case = "completion_expires_after_its_ttl";
        let key = self.key(case);
        let token = self.claim_new(case, &key, LONG).await;
        assert!(
            self.complete(case, &key, token, SHORT).await,
            "{case}: complete"
        );
        (self.sleep)(PAST_SHORT).await;
        self.claim_new(case, &key, LONG).await;
    }

    /// `forget` removes a completion or a lease, so the id is processed again.
    pub async fn forget_reopens_an_id(&self) {
        let case = "forget_reopens_an_id";
        let key = self.key(case);
        assert!(
            !self.forget(case, &key).await,
            "{case}: forget of an unknown key"
        );
        let token = self.claim_new(case, &key, LONG).await;
        assert!(
            self.complete(case, &key, token, LONG).await,
            "{case}: complete"
        );
        assert!(
            self.forget(case, &key).await,
            "{case}: forget of a completed key"
        );
        let token = self.claim_new(case, &key, LONG).await;
        assert!(
            self.forget(case, &key).await,
            "{case}: forget of a leased key"
        );
        assert!(
            !self.complete(case, &key, token, LONG).await,
            "{case}: complete of a forgotten lease"
        );
        self.claim_new(case, &key, LONG).await;
    }

    /// The same webhook id under two prefixes is two ids; forgetting one leaves the other.
    pub async fn namespaces_are_independent(&self) {
        let case = "namespaces_are_independent";
        let store = Arc::clone(&self.store);
        let tenant_a =
            Idempotency::from_arc(Arc::clone(&store)).with_key_prefix(self.key(case) + ":a:");
        let tenant_b = Idempotency::from_arc(store).with_key_prefix(self.key(case) + ":b:");
        let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
        let (key_a, key_b) = (tenant_a.key(id), tenant_b.key(id));
        assert_ne!(key_a, key_b, "{case}: prefixes make distinct keys");
        let token_a = self.claim_new(case, &key_a, LONG).await;
        assert!(
            self.complete(case, &key_a, token_a, LONG).await,
            "{case}: complete in a"
        );
        self.claim_new(case, &key_b, LONG).await;
        match tenant_b.forget(id).await {
            Ok(forgotten) => assert!(forgotten, "{case}: forget in b"),
            Err(err) => panic!("{case}: forget failed: {err}"),
        }
        self.expect_done(case, &key_a).await;
    }

    /// Of many simultaneous claims of one key, exactly one is new.
    pub async fn concurrent_claims_have_one_winner(&self) {
        let case = "concurrent_claims_have_one_winner";
        let key = self.key(case);
        let claims = (0..CONTENDERS)
            .map(|_| self.store.claim(&key, LONG))
            .collect();
        let mut new = 0;
        for result in join_all(claims).await {
            match result {
                Ok(Claim::New(_)) => new += 1,
                Ok(Claim::InFlight { .. }) => {}
                Ok(Claim::Done) => panic!("{case}: Done without a completion"),
                Err(err) => panic!("{case}: claim failed: {err}"),
            }
        }
        assert_eq!(new, 1, "{case}: {CONTENDERS} concurrent claims");
    }

    /// `release_detached` (what a dropped completion calls) frees the key, now or soon.
    pub async fn release_detached_reopens_an_id(&self) {
        let case = "release_detached_reopens_an_id";
        let key = self.key(case);
        let token = self.claim_new(case, &key, LONG).await;
        self.store.release_detached(&key, token);
        self.claim_new_eventually(case, &key).await;
    }

    /// Through the receiver: a delivery finished with 2xx makes its retries duplicates.
    pub async fn receiver_processes_each_id_once(&self) {
        let case = "receiver_processes_each_id_once";
        let (receiver, idempotency, signer) = self.receiver(case);
        let request = signer.example(EventType::ProducerSyncUpdatesAvailable);
        match Self::deliver(&receiver, &request).await {
            Ok(accepted) => {
                assert!(accepted.completion.is_claimed(), "{case}: claimed");
                accepted.completion.finish(204).await;
            }
            Err(err) => panic!("{case}: first delivery refused: {err}"),
        }
        for _ in 0..3 {
            match Self::deliver(&receiver, &request).await {
                Err(WebhookError::Duplicate) => {}
                other => panic!("{case}: retry gave {other:?}, expected Duplicate"),
            }
        }
        match idempotency.forget(&request.headers.id).await {
            Ok(forgotten) => assert!(forgotten, "{case}: forget"),
            Err(err) => panic!("{case}: forget failed: {err}"),
        }
        if let Err(err) = Self::deliver(&receiver, &request).await {
            panic!("{case}: delivery after forget refused: {err}");
        }
    }

    /// Through the receiver: a delivery finished with a non-2xx is processed again on retry.
    pub async fn receiver_releases_after_a_failure(&self) {
        let case = "receiver_releases_after_a_failure";
        let (receiver, _, signer) = self.receiver(case);
        let request = signer.example(EventType::ProducerSyncUpdatesAvailable);
        for status in [500, 400, 302] {
            match Self::deliver(&receiver, &request).await {
                Ok(accepted) => accepted.completion.finish(status).await,
                Err(err) => panic!("{case}: delivery before a {status} refused: {err}"),
            }
        }
        match Self::deliver(&receiver, &request).await {
            Ok(accepted) => accepted.completion.finish(200).await,
            Err(err) => panic!("{case}: retry refused: {err}"),
        }
        match Self::deliver(&receiver, &request).await {
            Err(WebhookError::Duplicate) => {}
            other => panic!("{case}: retry after success gave {other:?}"),
        }
    }

    /// Through the receiver: a completion dropped unfinished (the handler panicked, the request
    /// was cancelled) lets the retry through.
    pub async fn receiver_releases_an_abandoned_delivery(&self) {
        let case = "receiver_releases_an_abandoned_delivery";
        let (receiver, _, signer) = self.receiver(case);
        let request = signer.example(EventType::ProducerSyncUpdatesAvailable);
        match Self::deliver(&receiver, &request).await {
            Ok(accepted) => drop(accepted),
            Err(err) => panic!("{case}: first delivery refused: {err}"),
        }
        let start = Instant::now();
        loop {
            match Self::deliver(&receiver, &request).await {
                Ok(accepted) => {
                    accepted.completion.finish(200).await;
                    break;
                }
                Err(WebhookError::InFlight { .. }) if start.elapsed() < SETTLE_DEADLINE => {
                    (self.sleep)(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("{case}: retry after an abandoned delivery: {err}"),
            }
        }
    }

    /// Through the receiver: a delivery of an id being processed is a 409 with `Retry-After`
    /// no longer than the lease; a body that fails to parse releases its claim.
    pub async fn receiver_answers_in_flight_with_retry_after(&self) {
        let case = "receiver_answers_in_flight_with_retry_after";
        let (receiver, _, signer) = self.receiver(case);
        let request = signer.example(EventType::ProducerSyncUpdatesAvailable);
        let accepted = match Self::deliver(&receiver, &request).await {
            Ok(accepted) => accepted,
            Err(err) => panic!("{case}: first delivery refused: {err}"),
        };
        match Self::deliver(&receiver, &request).await {
            Err(err @ WebhookError::InFlight { .. }) => {
                let rejection = crate::adapter::Rejection::new(err, Some(&request.headers.id));
                assert_eq!(rejection.status(), 409, "{case}: status");
                let retry_after = rejection.retry_after().unwrap_or_default();
                assert!(
                    (1..=60).contains(&retry_after),
                    "{case}: Retry-After {retry_after} within the default 60 s lease"
                );
            }
            other => panic!("{case}: concurrent delivery gave {other:?}, expected InFlight"),
        }
        accepted.completion.finish(200).await;

        // Signed, but not an envelope: refused, and the id stays free.
        let body = b"[1, 2, 3]";
        let headers = signer.sign_now(body);
        let pairs = headers.to_pairs();
        for _ in 0..2 {
            match receiver
                .accept::<EventData>(&pairs, body.to_vec().into())
                .await
            {
                Err(WebhookError::InvalidPayload { .. }) => {}
                other => panic!("{case}: bad envelope gave {other:?}, expected InvalidPayload"),
            }
        }
    }
}

/// Polls every future until all are ready (no executor needed, no spawning): enough to put many
/// store calls in flight at once.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_ready = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => all_ready = false,
                }
            }
        }
        if all_ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Writes one `#[tokio::test]` per case of the store contract, for a store crate's tests.
///
/// `$make` is an async function from the case name (`&'static str`) to
/// `Option<StoreContract>`: the contract to run the case on (give each case its own namespace),
/// or `None` to skip it (say why on stderr; e.g. no backend configured). Needs `tokio` with the
/// `macros`, `rt-multi-thread` and `time` features in the calling crate.
#[macro_export]
#[doc(hidden)] // for store crates' tests, not part of the public API
macro_rules! store_contract_tests {
    ($make:path) => {
        $crate::store_contract_tests!(@cases $make;
            claim_is_new_then_in_flight,
            complete_makes_done,
            release_makes_claimable_with_a_new_token,
            stale_token_changes_nothing,
            lease_expires,
            completion_expires_after_its_ttl,
            forget_reopens_an_id,
            namespaces_are_independent,
            concurrent_claims_have_one_winner,
            release_detached_reopens_an_id,
            receiver_processes_each_id_once,
            receiver_releases_after_a_failure,
            receiver_releases_an_abandoned_delivery,
            receiver_answers_in_flight_with_retry_after
        );
    };
    (@cases $make:path; $($case:ident),+) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let ::core::option::Option::Some(contract) = $make(::core::stringify!($case)).await {
                    contract.$case().await;
                }
            }
        )+
    };
}
