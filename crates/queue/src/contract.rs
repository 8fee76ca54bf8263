//! The test suite every [`Backend`] must pass (feature `testing`).
//!
//! Each case needs a fresh, empty queue of its own (a new SQLite file, table or key prefix), so
//! that cases run in parallel without seeing each other's jobs. A failure panics with the case
//! name. Cases use short leases (200 ms) and wait well past them, and check that a job is not
//! claimable only within leases of 1.5 s or more; nothing asserts how long a call took. The cases
//! run on tokio (they spawn concurrent tasks).
//!
//! [`queue_contract_tests!`](crate::queue_contract_tests) writes one `#[tokio::test]` per case
//! from a function that makes the queue for a case (`None` skips it):
//!
//! ```ignore
//! use agentsync_webhooks_queue::{contract::QueueContract, sqlite::SqliteBackend};
//!
//! async fn contract(case: &'static str) -> Option<QueueContract> {
//!     let dir = tempfile::tempdir().unwrap();
//!     let backend = SqliteBackend::open(dir.path().join("queue.sqlite3")).await.unwrap();
//!     Some(QueueContract::new(backend, case).keep_alive(dir))
//! }
//!
//! agentsync_webhooks_queue::queue_contract_tests!(contract);
//! ```

use std::{
    any::Any,
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, SystemTime},
};

use agentsync_webhooks_core::handoff::{Enqueued, ReceivedDelivery, now_ms};
use bytes::Bytes;

use crate::backend::{Backend, DeadLetter, Job, QueueStats};

/// A lease short enough to wait out.
const SHORT: Duration = Duration::from_millis(200);
/// Waiting out [`SHORT`] with a wide margin.
const PAST_SHORT: Duration = Duration::from_millis(700);
/// A lease within which a case checks that the job is not claimable: long enough that a slow,
/// loaded machine does not reach its end before the check.
const WITHIN: Duration = Duration::from_millis(1_500);
/// Waiting out [`WITHIN`].
const PAST_WITHIN: Duration = Duration::from_millis(2_000);
/// A lease that never expires during a case.
const LONG: Duration = Duration::from_secs(600);
/// Concurrent enqueues of one id.
const CONTENDERS: usize = 500;
/// Jobs shared by the concurrent claimers.
const SHARED_JOBS: usize = 200;
/// Concurrent claimers.
const CLAIMERS: usize = 4;

/// The names of every case, in the order [`QueueContract::run_all`] runs them.
pub const CASES: &[&str] = &[
    "enqueue_is_new_then_duplicate",
    "concurrent_enqueues_of_one_id_store_one",
    "claim_leases_until_expiry",
    "stale_receipt_settles_nothing",
    "complete_is_final",
    "retry_waits_until_its_time",
    "release_does_not_count_the_attempt",
    "bury_lists_shows_and_replays",
    "extend_keeps_the_lease",
    "stats_count_depth_oldest_and_dead",
    "delivery_round_trips_byte_for_byte",
    "concurrent_claimers_take_each_job_once",
];

/// One empty queue under test, for one case.
pub struct QueueContract {
    backend: Arc<dyn Backend>,
    case: &'static str,
    _keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for QueueContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueContract")
            .field("case", &self.case)
            .finish_non_exhaustive()
    }
}

impl QueueContract {
    /// Tests `backend`, which must be empty and used by no other case, for `case` (its name
    /// appears in failures).
    pub fn new(backend: impl Backend, case: &'static str) -> Self {
        Self::from_arc(Arc::new(backend), case)
    }

    /// Tests a shared backend (empty, used by no other case).
    pub fn from_arc(backend: Arc<dyn Backend>, case: &'static str) -> Self {
        Self {
            backend,
            case,
            _keep_alive: None,
        }
    }

    /// Keeps `guard` (a temporary directory, a server) alive as long as the case runs.
    pub fn keep_alive(mut self, guard: impl Any + Send + Sync) -> Self {
        self._keep_alive = Some(Box::new(guard));
        self
    }

    /// Runs every case, one after the other, on this one backend: only for a backend that is
    /// emptied between cases; prefer one backend per case ([`queue_contract_tests!`](crate::queue_contract_tests)).
    pub async fn run_all(&self) {
        self.enqueue_is_new_then_duplicate().await;
        self.concurrent_enqueues_of_one_id_store_one().await;
        self.claim_leases_until_expiry().await;
        self.stale_receipt_settles_nothing().await;
        self.complete_is_final().await;
        self.retry_waits_until_its_time().await;
        self.release_does_not_count_the_attempt().await;
        self.bury_lists_shows_and_replays().await;
        self.extend_keeps_the_lease().await;
        self.stats_count_depth_oldest_and_dead().await;
        self.delivery_round_trips_byte_for_byte().await;
        self.concurrent_claimers_take_each_job_once().await;
    }

    /// A new id never seen is `New`; the same id again is `Duplicate` whether it waits, runs,
    /// is done or is dead.
    pub async fn enqueue_is_new_then_duplicate(&self) {
        let first = delivery(self.case, "first");
        assert_eq!(self.enqueue(&first).await, Enqueued::New, "{}", self.case);
        assert_eq!(
            self.enqueue(&first).await,
            Enqueued::Duplicate,
            "{}: a waiting id enqueued again",
            self.case
        );
        let job = self.claim_one(LONG).await;
        assert_eq!(
            self.enqueue(&first).await,
            Enqueued::Duplicate,
            "{}: a running id enqueued again",
            self.case
        );
        assert!(self.complete(&job).await, "{}: complete", self.case);
        assert_eq!(
            self.enqueue(&first).await,
            Enqueued::Duplicate,
            "{}: a done id enqueued again",
            self.case
        );

        let second = delivery(self.case, "second");
        assert_eq!(self.enqueue(&second).await, Enqueued::New, "{}", self.case);
        let job = self.claim_one(LONG).await;
        assert!(self.bury(&job, "permanent").await, "{}: bury", self.case);
        assert_eq!(
            self.enqueue(&second).await,
            Enqueued::Duplicate,
            "{}: a dead id enqueued again",
            self.case
        );
        assert!(
            self.claim(10, LONG).await.is_empty(),
            "{}: a duplicate must not be claimable",
            self.case
        );
    }

    /// Of many concurrent enqueues of one id, exactly one is `New`, and one job results.
    pub async fn concurrent_enqueues_of_one_id_store_one(&self) {
        let one = delivery(self.case, "contended");
        let mut tasks = Vec::with_capacity(CONTENDERS);
        for _ in 0..CONTENDERS {
            let backend = Arc::clone(&self.backend);
            let one = one.clone();
            tasks.push(tokio::spawn(
                async move { backend.enqueue(&one).await.ok() },
            ));
        }
        let mut new = 0;
        for task in tasks {
            match task.await {
                Ok(Some(Enqueued::New)) => new += 1,
                Ok(Some(Enqueued::Duplicate)) => {}
                Ok(None) => panic!("{}: a concurrent enqueue failed", self.case),
                Err(err) => panic!("{}: an enqueue task panicked: {err}", self.case),
            }
        }
        assert_eq!(new, 1, "{}: New answers", self.case);
        let jobs = self.claim(CONTENDERS, LONG).await;
        assert_eq!(jobs.len(), 1, "{}: jobs stored", self.case);
        assert_eq!(jobs[0].delivery, one, "{}", self.case);
    }

    /// A claimed job is not claimable again before its lease ends, and is after it, with the
    /// attempt counted and a new receipt.
    pub async fn claim_leases_until_expiry(&self) {
        let one = delivery(self.case, "leased");
        self.enqueue(&one).await;
        let first = self.claim_one(WITHIN).await;
        assert_eq!(first.attempt, 1, "{}: first attempt", self.case);
        assert_eq!(first.delivery, one, "{}", self.case);
        assert!(
            self.claim(10, WITHIN).await.is_empty(),
            "{}: claimable again within its lease",
            self.case
        );
        tokio::time::sleep(PAST_WITHIN).await;
        let second = self.claim_one(SHORT).await;
        assert_eq!(second.delivery, one, "{}", self.case);
        assert_eq!(second.attempt, 2, "{}: a re-claim counts", self.case);
        assert_ne!(second.receipt, first.receipt, "{}: new receipt", self.case);
        assert!(self.complete(&second).await, "{}", self.case);
    }

    /// After a re-claim, the first receipt settles nothing: complete, retry, extend, release and
    /// bury all return `false` and change nothing.
    pub async fn stale_receipt_settles_nothing(&self) {
        self.enqueue(&delivery(self.case, "stale")).await;
        let stale = self.claim_one(SHORT).await;
        tokio::time::sleep(PAST_SHORT).await;
        let current = self.claim_one(LONG).await;
        let later = SystemTime::now() + Duration::from_secs(1);
        let case = self.case;
        assert!(!self.complete(&stale).await, "{case}: stale complete");
        assert!(!self.retry(&stale, later).await, "{case}: stale retry");
        assert!(!self.extend(&stale, LONG).await, "{case}: stale extend");
        assert!(!self.release(&stale).await, "{case}: stale release");
        assert!(!self.bury(&stale, "stale").await, "{case}: stale bury");
        assert!(
            self.claim(10, LONG).await.is_empty(),
            "{case}: a stale settle freed the job"
        );
        assert!(
            self.dead_letters().await.is_empty(),
            "{case}: a stale bury buried"
        );
        assert!(self.complete(&current).await, "{case}: current complete");
    }

    /// A completed job is never claimed again, leaves the depth, and settles only once.
    pub async fn complete_is_final(&self) {
        self.enqueue(&delivery(self.case, "done")).await;
        let job = self.claim_one(SHORT).await;
        assert!(self.complete(&job).await, "{}", self.case);
        assert!(!self.complete(&job).await, "{}: completed twice", self.case);
        tokio::time::sleep(PAST_SHORT).await;
        assert!(
            self.claim(10, SHORT).await.is_empty(),
            "{}: a done job was claimed",
            self.case
        );
        assert_eq!(self.stats().await.depth, 0, "{}: depth", self.case);
    }

    /// A retried job is not claimable before its time and is after it, as the next attempt.
    pub async fn retry_waits_until_its_time(&self) {
        let one = delivery(self.case, "retried");
        self.enqueue(&one).await;
        let job = self.claim_one(LONG).await;
        let at = SystemTime::now() + Duration::from_secs(4);
        assert!(self.retry(&job, at).await, "{}: retry", self.case);
        assert!(
            self.claim(10, LONG).await.is_empty(),
            "{}: claimable before its time",
            self.case
        );
        assert_eq!(self.stats().await.depth, 1, "{}: depth", self.case);
        tokio::time::sleep(Duration::from_millis(4_600)).await;
        let again = self.claim_one(LONG).await;
        assert_eq!(again.delivery, one, "{}", self.case);
        assert_eq!(again.attempt, 2, "{}: second attempt", self.case);
        assert!(self.complete(&again).await, "{}", self.case);
    }

    /// A released job is claimable at once, and the released attempt does not count.
    pub async fn release_does_not_count_the_attempt(&self) {
        self.enqueue(&delivery(self.case, "released")).await;
        let job = self.claim_one(LONG).await;
        assert_eq!(job.attempt, 1, "{}", self.case);
        assert!(self.release(&job).await, "{}: release", self.case);
        let again = self.claim_one(LONG).await;
        assert_eq!(again.attempt, 1, "{}: a release counted", self.case);
        assert!(!self.release(&job).await, "{}: released twice", self.case);
        assert!(self.complete(&again).await, "{}", self.case);
    }

    /// A buried job is listed and shown with its attempts and error, is not claimable, and a
    /// replay makes it claimable again with its attempts reset.
    pub async fn bury_lists_shows_and_replays(&self) {
        let case = self.case;
        let one = delivery(case, "buried");
        self.enqueue(&one).await;
        let first = self.claim_one(LONG).await;
        assert!(self.retry(&first, SystemTime::now()).await, "{case}: retry");
        let second = self.claim_one(LONG).await;
        assert_eq!(second.attempt, 2, "{case}");
        let before = now_ms();
        assert!(
            self.bury(&second, "permanent: no such license").await,
            "{case}: bury"
        );
        assert!(!self.bury(&second, "again").await, "{case}: buried twice");

        let listed = self.dead_letters().await;
        assert_eq!(listed.len(), 1, "{case}: dead letters");
        let shown = match self.backend.dead_letter(&one.webhook_id).await {
            Ok(Some(shown)) => shown,
            Ok(None) => panic!("{case}: the dead letter is not shown by id"),
            Err(err) => panic!("{case}: dead_letter failed: {err}"),
        };
        for dead in [&listed[0], &shown] {
            assert_eq!(dead.delivery, one, "{case}");
            assert_eq!(dead.attempts, 2, "{case}: attempts");
            assert_eq!(dead.last_error, "permanent: no such license", "{case}");
            assert!(
                dead.died_at_ms >= before - 1_000 && dead.died_at_ms <= now_ms() + 1_000,
                "{case}: died_at_ms {} is not about now",
                dead.died_at_ms
            );
        }
        assert!(
            self.claim(10, SHORT).await.is_empty(),
            "{case}: dead claimed"
        );
        let stats = self.stats().await;
        assert_eq!((stats.depth, stats.dead), (0, 1), "{case}: stats");
        assert!(
            matches!(self.backend.dead_letter("never-seen").await, Ok(None)),
            "{case}: unknown dead letter"
        );

        assert!(self.replay(&one.webhook_id).await, "{case}: replay");
        assert!(
            !self.replay(&one.webhook_id).await,
            "{case}: replayed twice"
        );
        assert!(!self.replay("never-seen").await, "{case}: replay unknown");
        assert!(self.dead_letters().await.is_empty(), "{case}: still dead");
        let replayed = self.claim_one(LONG).await;
        assert_eq!(replayed.delivery, one, "{case}");
        assert_eq!(replayed.attempt, 1, "{case}: attempts reset");
        assert!(self.complete(&replayed).await, "{case}");
        assert_eq!(
            self.enqueue(&one).await,
            Enqueued::Duplicate,
            "{case}: a replayed and done id enqueued again"
        );
    }

    /// A job whose lease is extended is not re-claimed past its first lease.
    pub async fn extend_keeps_the_lease(&self) {
        self.enqueue(&delivery(self.case, "extended")).await;
        let job = self.claim_one(WITHIN).await;
        // Three extensions, 700 ms apart: past the first lease, never past an extended one.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert!(self.extend(&job, WITHIN).await, "{}: extend", self.case);
            assert!(
                self.claim(10, WITHIN).await.is_empty(),
                "{}: re-claimed despite its extended lease",
                self.case
            );
        }
        assert!(self.complete(&job).await, "{}", self.case);
    }

    /// Depth counts waiting and running jobs, the oldest age follows `received_at_ms`, dead
    /// counts the dead letters.
    pub async fn stats_count_depth_oldest_and_dead(&self) {
        let case = self.case;
        assert_eq!(self.stats().await, QueueStats::default(), "{case}: empty");
        let mut old = delivery(case, "old");
        old.received_at_ms = now_ms() - 60_000;
        self.enqueue(&old).await;
        for name in ["b", "c"] {
            self.enqueue(&delivery(case, name)).await;
        }
        let stats = self.stats().await;
        assert_eq!((stats.depth, stats.dead), (3, 0), "{case}: three waiting");
        let oldest = stats.oldest_age.unwrap_or_default();
        assert!(
            oldest >= Duration::from_secs(59),
            "{case}: oldest age {oldest:?}, expected about a minute"
        );
        let jobs = self.claim(2, LONG).await;
        assert_eq!(jobs.len(), 2, "{case}");
        assert_eq!(self.stats().await.depth, 3, "{case}: running jobs count");
        assert!(self.complete(&jobs[0]).await, "{case}");
        assert!(self.bury(&jobs[1], "dead").await, "{case}");
        let stats = self.stats().await;
        assert_eq!((stats.depth, stats.dead), (1, 1), "{case}: after settling");
        assert!(stats.oldest_age.is_some(), "{case}: one still waits");
    }

    /// The delivery comes back exactly as stored: any body bytes (not UTF-8, NUL, empty is
    /// allowed), any id, type, signature and timestamps.
    pub async fn delivery_round_trips_byte_for_byte(&self) {
        let case = self.case;
        let all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let deliveries = [
            ReceivedDelivery {
                webhook_id: format!("{case}:msg_2Lp0Y:ünï"),
                event_type: "contract.signed.v2 — ünknown".into(),
                webhook_timestamp: -1,
                signature: "v1,abc= v1a,def= v1,".into(),
                received_at_ms: i64::from(i32::MAX) * 1_000 + 7,
                body: Bytes::from(all_bytes),
            },
            ReceivedDelivery {
                body: Bytes::new(),
                webhook_timestamp: 1_700_000_000,
                ..delivery(case, "empty-body")
            },
            ReceivedDelivery {
                body: Bytes::from_static(b"\xff\xfe\x00{\"type\":\"x\"}\x00\x80"),
                ..delivery(case, "binary")
            },
        ];
        for one in &deliveries {
            assert_eq!(self.enqueue(one).await, Enqueued::New, "{case}");
        }
        let mut claimed: HashMap<String, Job> = self
            .claim(10, LONG)
            .await
            .into_iter()
            .map(|job| (job.delivery.webhook_id.clone(), job))
            .collect();
        assert_eq!(claimed.len(), deliveries.len(), "{case}: claimed");
        for one in &deliveries {
            let Some(job) = claimed.remove(&one.webhook_id) else {
                panic!("{case}: {} was not claimed", one.webhook_id);
            };
            assert_eq!(&job.delivery, one, "{case}: claimed delivery");
            assert!(self.bury(&job, "inspect").await, "{case}");
            let dead: Option<DeadLetter> = self
                .backend
                .dead_letter(&one.webhook_id)
                .await
                .unwrap_or_else(|err| panic!("{case}: dead_letter failed: {err}"));
            let dead = dead.unwrap_or_else(|| panic!("{case}: no dead letter"));
            assert_eq!(&dead.delivery, one, "{case}: dead letter's delivery");
        }
    }

    /// Several claimers racing over many jobs take each job exactly once.
    pub async fn concurrent_claimers_take_each_job_once(&self) {
        let case = self.case;
        let mut expected = HashSet::new();
        for n in 0..SHARED_JOBS {
            let one = delivery(case, &format!("job-{n}"));
            expected.insert(one.webhook_id.clone());
            assert_eq!(self.enqueue(&one).await, Enqueued::New, "{case}");
        }
        let mut claimers = Vec::with_capacity(CLAIMERS);
        for _ in 0..CLAIMERS {
            let backend = Arc::clone(&self.backend);
            claimers.push(tokio::spawn(async move {
                let mut taken = Vec::new();
                let mut idle_rounds = 0;
                while idle_rounds < 5 {
                    let jobs = backend.claim(7, LONG).await.map_err(|e| e.to_string())?;
                    if jobs.is_empty() {
                        idle_rounds += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    idle_rounds = 0;
                    for job in jobs {
                        if !backend.complete(&job).await.map_err(|e| e.to_string())? {
                            return Err(format!("complete of {} refused", job.delivery.webhook_id));
                        }
                        taken.push(job.delivery.webhook_id);
                    }
                }
                Ok::<_, String>(taken)
            }));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for claimer in claimers {
            let taken = match claimer.await {
                Ok(Ok(taken)) => taken,
                Ok(Err(err)) => panic!("{case}: a claimer failed: {err}"),
                Err(err) => panic!("{case}: a claimer panicked: {err}"),
            };
            for id in taken {
                *seen.entry(id).or_default() += 1;
            }
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{case}: jobs taken twice: {twice:?}");
        let taken: HashSet<String> = seen.into_keys().collect();
        assert_eq!(taken, expected, "{case}: every job taken once");
    }

    async fn enqueue(&self, delivery: &ReceivedDelivery) -> Enqueued {
        self.backend
            .enqueue(delivery)
            .await
            .unwrap_or_else(|err| panic!("{}: enqueue failed: {err}", self.case))
    }

    async fn claim(&self, max: usize, lease: Duration) -> Vec<Job> {
        self.backend
            .claim(max, lease)
            .await
            .unwrap_or_else(|err| panic!("{}: claim failed: {err}", self.case))
    }

    async fn claim_one(&self, lease: Duration) -> Job {
        let mut jobs = self.claim(10, lease).await;
        assert_eq!(jobs.len(), 1, "{}: expected one job to claim", self.case);
        jobs.remove(0)
    }

    async fn complete(&self, job: &Job) -> bool {
        self.backend
            .complete(job)
            .await
            .unwrap_or_else(|err| panic!("{}: complete failed: {err}", self.case))
    }

    async fn retry(&self, job: &Job, at: SystemTime) -> bool {
        self.backend
            .retry(job, at, "try again")
            .await
            .unwrap_or_else(|err| panic!("{}: retry failed: {err}", self.case))
    }

    async fn extend(&self, job: &Job, lease: Duration) -> bool {
        self.backend
            .extend(job, lease)
            .await
            .unwrap_or_else(|err| panic!("{}: extend failed: {err}", self.case))
    }

    async fn release(&self, job: &Job) -> bool {
        self.backend
            .release(job)
            .await
            .unwrap_or_else(|err| panic!("{}: release failed: {err}", self.case))
    }

    async fn bury(&self, job: &Job, error: &str) -> bool {
        self.backend
            .bury(job, error)
            .await
            .unwrap_or_else(|err| panic!("{}: bury failed: {err}", self.case))
    }

    async fn replay(&self, webhook_id: &str) -> bool {
        self.backend
            .replay(webhook_id)
            .await
            .unwrap_or_else(|err| panic!("{}: replay failed: {err}", self.case))
    }

    async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.backend
            .dead_letters(100)
            .await
            .unwrap_or_else(|err| panic!("{}: dead_letters failed: {err}", self.case))
    }

    async fn stats(&self) -> QueueStats {
        self.backend
            .stats()
            .await
            .unwrap_or_else(|err| panic!("{}: stats failed: {err}", self.case))
    }
}

/// A small stored `producersync.updates_available` delivery with this `webhook-id`, for engine
/// tests outside the contract.
///
/// ```
/// let delivery = agentsync_webhooks_queue::contract::sample_delivery("msg_1");
/// assert_eq!(delivery.webhook_id, "msg_1");
/// ```
pub fn sample_delivery(webhook_id: &str) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: webhook_id.into(),
        event_type: "producersync.updates_available".into(),
        webhook_timestamp: 1_700_000_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
        received_at_ms: 1_700_000_000_123,
        body: Bytes::from_static(b"{\"type\":\"producersync.updates_available\"}"),
    }
}

/// A small delivery for `case`, named `name`.
fn delivery(case: &str, name: &str) -> ReceivedDelivery {
    ReceivedDelivery {
        webhook_id: format!("{case}:{name}"),
        event_type: "producersync.updates_available".into(),
        webhook_timestamp: now_ms() / 1_000,
        signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
        received_at_ms: now_ms(),
        body: Bytes::from(format!(
            r#"{{"type":"producersync.updates_available","data":{{"name":"{name}"}}}}"#
        )),
    }
}

/// Writes one `#[tokio::test]` per contract case, each on a fresh queue from `$make`, an
/// `async fn(&'static str) -> Option<QueueContract>` (`None` skips the case).
#[macro_export]
macro_rules! queue_contract_tests {
    ($make:path) => {
        $crate::queue_contract_tests!(@cases $make;
            enqueue_is_new_then_duplicate,
            concurrent_enqueues_of_one_id_store_one,
            claim_leases_until_expiry,
            stale_receipt_settles_nothing,
            complete_is_final,
            retry_waits_until_its_time,
            release_does_not_count_the_attempt,
            bury_lists_shows_and_replays,
            extend_keeps_the_lease,
            stats_count_depth_oldest_and_dead,
            delivery_round_trips_byte_for_byte,
            concurrent_claimers_take_each_job_once
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
