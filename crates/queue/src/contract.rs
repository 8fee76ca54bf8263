//! The test suite every [`Backend`] must pass (feature `testing`).
//!
//! Each case needs a fresh, empty queue of its own (a new SQLite file, table or key prefix), so
//! that cases run in parallel without seeing each other's jobs, opened with a retention of
//! [`RETENTION`] and a dead-letter retention of [`DEAD_RETENTION`], and a second instance on the
//! same queue ([`QueueContract::second_instance`]: another connection, pool or file handle, as a
//! second process would open it). A failure panics with the case name. Cases use short leases (200 ms) and wait well past them, and check that a job is not
//! claimable only within leases of 1.5 s or more; nothing asserts how long a call took. The cases
//! run on tokio (they spawn concurrent tasks).
//!
//! [`queue_contract_tests!`](crate::queue_contract_tests) writes one `#[tokio::test]` per case
//! from a function that makes the queue for a case (`None` skips it):
//!
//! ```ignore
//! use agentsync_webhooks_queue::contract::{self, QueueContract};
//! use agentsync_webhooks_queue::sqlite::{SqliteBackend, SqliteOptions};
//!
//! async fn contract(case: &'static str) -> Option<QueueContract> {
//!     let dir = tempfile::tempdir().unwrap();
//!     let path = dir.path().join("queue.sqlite3");
//!     let options = || SqliteOptions::new()
//!         .retention(contract::RETENTION)
//!         .dead_retention(contract::DEAD_RETENTION);
//!     let first = SqliteBackend::open_with(&path, options()).await.unwrap();
//!     let second = SqliteBackend::open_with(&path, options()).await.unwrap();
//!     Some(QueueContract::new(first, case).second_instance(second).keep_alive(dir))
//! }
//!
//! agentsync_webhooks_queue::queue_contract_tests!(contract);
//! ```

use std::{
    any::Any,
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use agentsync_webhooks_core::handoff::{Enqueued, ReceivedDelivery, now_ms};
use bytes::Bytes;

use crate::{
    backend::{Backend, ClaimToken, DeadLetter, Job, Purged, QueueStats},
    record::{
        AttemptOutcome, Cursor, DeliveryCounts, DeliveryFilter, DeliveryPage, DeliveryRecord,
        DeliveryState, HistoryEvent, MAX_ERROR_LEN, MAX_HISTORY,
    },
};

/// The retention of done `webhook-id`s every case's queue is opened with.
pub const RETENTION: Duration = Duration::from_secs(3);
/// The dead-letter retention every case's queue is opened with.
pub const DEAD_RETENTION: Duration = Duration::from_secs(3);
/// Waiting out [`RETENTION`] and [`DEAD_RETENTION`].
const PAST_RETENTION: Duration = Duration::from_millis(4_000);

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
    "concurrent_completions_each_settle_once",
    "retry_waits_until_its_time",
    "release_does_not_count_the_attempt",
    "bury_lists_shows_and_replays",
    "extend_keeps_the_lease",
    "stats_count_depth_oldest_and_dead",
    "delivery_round_trips_byte_for_byte",
    "concurrent_claimers_take_each_job_once",
    "abandon_gives_a_lost_claim_back",
    "done_ids_are_known_for_the_retention_then_forgotten",
    "dead_letters_are_purged_after_their_retention",
    "concurrent_enqueues_on_two_instances_store_one",
    "concurrent_claimers_on_two_instances_take_each_job_once",
    "a_lease_extended_on_one_instance_holds_on_the_other",
    "a_resend_of_a_dead_delivery_is_stored_again_and_runs",
    "the_record_lists_newest_first_by_filter_and_cursor",
    "the_record_counts_by_state_and_type",
    "the_record_shows_a_delivery_with_its_history",
    "the_history_is_capped_and_errors_bounded",
    "replay_runs_done_and_dead_deliveries_again",
    "replay_matching_is_bounded_and_counts",
    "discard_moves_waiting_and_retrying_to_the_dead_letters",
    "forget_lets_the_next_resend_in",
    "purge_dead_deletes_dead_letters_older_than_a_time",
    "the_record_keeps_when_each_event_occurred_and_filters_the_late",
    "a_delay_filtered_list_pages_by_cursor",
];

/// One empty queue under test, for one case.
pub struct QueueContract {
    backend: Arc<dyn Backend>,
    second: Option<Arc<dyn Backend>>,
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
            second: None,
            case,
            _keep_alive: None,
        }
    }

    /// A second instance on the same queue (another connection, pool or handle on the same
    /// file, table or prefix), for the cases where two processes share the work.
    pub fn second_instance(mut self, backend: impl Backend) -> Self {
        self.second = Some(Arc::new(backend));
        self
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
        self.concurrent_completions_each_settle_once().await;
        self.retry_waits_until_its_time().await;
        self.release_does_not_count_the_attempt().await;
        self.bury_lists_shows_and_replays().await;
        self.extend_keeps_the_lease().await;
        self.stats_count_depth_oldest_and_dead().await;
        self.delivery_round_trips_byte_for_byte().await;
        self.concurrent_claimers_take_each_job_once().await;
        self.abandon_gives_a_lost_claim_back().await;
        self.done_ids_are_known_for_the_retention_then_forgotten()
            .await;
        self.dead_letters_are_purged_after_their_retention().await;
        self.concurrent_enqueues_on_two_instances_store_one().await;
        self.concurrent_claimers_on_two_instances_take_each_job_once()
            .await;
        self.a_lease_extended_on_one_instance_holds_on_the_other()
            .await;
        self.a_resend_of_a_dead_delivery_is_stored_again_and_runs()
            .await;
        self.the_record_lists_newest_first_by_filter_and_cursor()
            .await;
        self.the_record_counts_by_state_and_type().await;
        self.the_record_shows_a_delivery_with_its_history().await;
        self.the_history_is_capped_and_errors_bounded().await;
        self.replay_runs_done_and_dead_deliveries_again().await;
        self.replay_matching_is_bounded_and_counts().await;
        self.discard_moves_waiting_and_retrying_to_the_dead_letters()
            .await;
        self.forget_lets_the_next_resend_in().await;
        self.purge_dead_deletes_dead_letters_older_than_a_time()
            .await;
        self.the_record_keeps_when_each_event_occurred_and_filters_the_late()
            .await;
        self.a_delay_filtered_list_pages_by_cursor().await;
    }

    /// A new id never seen is `New`; the same id again is `Duplicate` whether it waits, runs or
    /// is done; a dead delivery is not claimable (its resend is
    /// [`a_resend_of_a_dead_delivery_is_stored_again_and_runs`](Self::a_resend_of_a_dead_delivery_is_stored_again_and_runs)).
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
        assert!(
            self.claim(10, LONG).await.is_empty(),
            "{}: a dead or duplicate delivery must not be claimable",
            self.case
        );
    }

    /// Of many concurrent enqueues of one id, exactly one is `New`, and one job results.
    pub async fn concurrent_enqueues_of_one_id_store_one(&self) {
        self.enqueues_of_one_id_store_one("contended", &[Arc::clone(&self.backend)])
            .await;
    }

    /// [`CONTENDERS`] concurrent enqueues of one delivery, spread over `instances`: exactly one
    /// is `New`, and one job results.
    async fn enqueues_of_one_id_store_one(&self, name: &str, instances: &[Arc<dyn Backend>]) {
        let one = delivery(self.case, name);
        let mut tasks = Vec::with_capacity(CONTENDERS);
        for n in 0..CONTENDERS {
            let backend = Arc::clone(&instances[n % instances.len()]);
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

    /// A receipt from before the job changed hands settles nothing: complete, retry, extend,
    /// release and bury all return `false` and change nothing, whether the job was re-claimed
    /// after its lease expired, after a retry, after a release, or after a bury and a replay.
    pub async fn stale_receipt_settles_nothing(&self) {
        let case = self.case;
        let one = delivery(case, "expired");
        self.enqueue(&one).await;
        let stale = self.claim_one(SHORT).await;
        tokio::time::sleep(PAST_SHORT).await;
        let current = self.claim_one(LONG).await;
        self.assert_stale(&stale, &current, "after the lease expired")
            .await;

        let two = delivery(case, "retried");
        self.enqueue(&two).await;
        let stale = self.claim_one(LONG).await;
        assert!(self.retry(&stale, Duration::ZERO).await, "{case}: retry");
        let current = self.claim_one(LONG).await;
        self.assert_stale(&stale, &current, "after a retry").await;

        let three = delivery(case, "released");
        self.enqueue(&three).await;
        let stale = self.claim_one(LONG).await;
        assert!(self.release(&stale).await, "{case}: release");
        let current = self.claim_one(LONG).await;
        self.assert_stale(&stale, &current, "after a release").await;

        let four = delivery(case, "replayed");
        self.enqueue(&four).await;
        let stale = self.claim_one(LONG).await;
        assert!(self.bury(&stale, "dead").await, "{case}: bury");
        assert!(self.replay(&four.webhook_id).await, "{case}: replay");
        let current = self.claim_one(LONG).await;
        self.assert_stale(&stale, &current, "after a bury and a replay")
            .await;
    }

    /// `stale` settles nothing while `current` holds the job; then `current` completes it.
    async fn assert_stale(&self, stale: &Job, current: &Job, when: &str) {
        let case = self.case;
        let later = Duration::from_secs(1);
        assert!(!self.complete(stale).await, "{case}: stale complete {when}");
        assert!(
            !self.retry(stale, later).await,
            "{case}: stale retry {when}"
        );
        assert!(
            !self.extend(stale, LONG).await,
            "{case}: stale extend {when}"
        );
        assert!(!self.release(stale).await, "{case}: stale release {when}");
        assert!(
            !self.bury(stale, "stale").await,
            "{case}: stale bury {when}"
        );
        assert!(
            self.claim(10, LONG).await.is_empty(),
            "{case}: a stale settle {when} freed the job"
        );
        assert!(
            self.dead_letters().await.is_empty(),
            "{case}: a stale bury {when} buried"
        );
        assert!(
            self.complete(current).await,
            "{case}: current complete {when}"
        );
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

    /// Completions that arrive together (an engine may settle them in one round trip) are each
    /// answered as they would be alone: every job's first completion `true` and its second
    /// `false`, a stale receipt's `false` beside the current one's `true`; every job ends done
    /// with one successful attempt on record.
    pub async fn concurrent_completions_each_settle_once(&self) {
        let case = self.case;
        let expired = delivery(case, "expired");
        self.enqueue(&expired).await;
        let stale = self.claim_one(SHORT).await;
        tokio::time::sleep(PAST_SHORT).await;
        let current = self.claim_one(LONG).await;
        for n in 0..8 {
            self.enqueue(&delivery(case, &format!("together-{n}")))
                .await;
        }
        let jobs = self.claim(10, LONG).await;
        assert_eq!(jobs.len(), 8, "{case}: claimed");
        let mut calls = tokio::task::JoinSet::new();
        let mut spawn = |job: Job| {
            let backend = Arc::clone(&self.backend);
            calls.spawn(async move {
                let held = backend.complete(&job).await.map_err(|e| e.to_string());
                (job.delivery.webhook_id, job.receipt.0, held)
            });
        };
        spawn(stale.clone());
        spawn(current.clone());
        for job in &jobs {
            spawn(job.clone());
            spawn(job.clone());
        }
        let mut held: HashMap<(String, String), Vec<bool>> = HashMap::new();
        while let Some(joined) = calls.join_next().await {
            let (id, receipt, answer) = joined.unwrap_or_else(|err| panic!("{case}: {err}"));
            let answer = answer.unwrap_or_else(|err| panic!("{case}: complete failed: {err}"));
            held.entry((id, receipt)).or_default().push(answer);
        }
        let key = |job: &Job| (job.delivery.webhook_id.clone(), job.receipt.0.clone());
        assert_eq!(held[&key(&stale)], [false], "{case}: the stale receipt");
        assert_eq!(held[&key(&current)], [true], "{case}: the current receipt");
        for job in &jobs {
            let mut answers = held[&key(job)].clone();
            answers.sort_unstable();
            assert_eq!(
                answers,
                [false, true],
                "{case}: {}",
                job.delivery.webhook_id
            );
        }
        assert_eq!(self.stats().await.depth, 0, "{case}: depth");
        for job in jobs.iter().chain([&current]) {
            let id = &job.delivery.webhook_id;
            let record = self
                .backend
                .delivery(id)
                .await
                .unwrap_or_else(|err| panic!("{case}: delivery failed: {err}"))
                .unwrap_or_else(|| panic!("{case}: {id} not on record"));
            assert_eq!(record.state, DeliveryState::Done, "{case}: {id}");
            let ok = record
                .history
                .iter()
                .filter(|entry| {
                    matches!(
                        entry.event,
                        HistoryEvent::Attempt {
                            outcome: AttemptOutcome::Ok,
                            ..
                        }
                    )
                })
                .count();
            assert_eq!(ok, 1, "{case}: {id}'s successful attempts");
        }
    }

    /// A retried job is not claimable before its time and is after it, as the next attempt.
    pub async fn retry_waits_until_its_time(&self) {
        let one = delivery(self.case, "retried");
        self.enqueue(&one).await;
        let job = self.claim_one(LONG).await;
        assert!(
            self.retry(&job, Duration::from_secs(4)).await,
            "{}: retry",
            self.case
        );
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
        assert!(self.retry(&first, Duration::ZERO).await, "{case}: retry");
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

    /// A job claimed with a short lease and extended with a longer one is held for the
    /// extended lease, whatever lease the other claimers ask for: never re-claimed past its
    /// first lease while it is extended.
    pub async fn extend_keeps_the_lease(&self) {
        self.enqueue(&delivery(self.case, "extended")).await;
        let job = self.claim_one(SHORT).await;
        assert!(self.extend(&job, WITHIN).await, "{}: extend", self.case);
        // Three rounds, each past the claimers' short lease, never past an extended one.
        for _ in 0..3 {
            tokio::time::sleep(PAST_SHORT).await;
            assert!(
                self.claim(10, SHORT).await.is_empty(),
                "{}: re-claimed despite its extended lease",
                self.case
            );
            assert!(self.extend(&job, WITHIN).await, "{}: extend", self.case);
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
        self.claimers_take_each_job_once(&[Arc::clone(&self.backend)])
            .await;
    }

    /// [`CLAIMERS`] claimers, spread over `instances`, race over [`SHARED_JOBS`] jobs.
    async fn claimers_take_each_job_once(&self, instances: &[Arc<dyn Backend>]) {
        let case = self.case;
        let mut expected = HashSet::new();
        for n in 0..SHARED_JOBS {
            let one = delivery(case, &format!("job-{n}"));
            expected.insert(one.webhook_id.clone());
            assert_eq!(self.enqueue(&one).await, Enqueued::New, "{case}");
        }
        let mut claimers = Vec::with_capacity(CLAIMERS);
        for n in 0..CLAIMERS {
            let backend = Arc::clone(&instances[n % instances.len()]);
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

    /// A claim whose answer was lost (the call timed out after the engine committed it) is
    /// given back by its token: its jobs are claimable at once, their attempt not counted. A
    /// token gives back only what is still leased under it.
    pub async fn abandon_gives_a_lost_claim_back(&self) {
        let case = self.case;
        for name in ["lost-1", "lost-2"] {
            self.enqueue(&delivery(case, name)).await;
        }
        let lost = self.token();
        let taken = self.claim_with(&lost, 10, LONG).await;
        assert_eq!(taken.len(), 2, "{case}: claimed");
        assert_eq!(self.abandon(&lost).await, 2, "{case}: abandoned");
        assert_eq!(self.abandon(&lost).await, 0, "{case}: abandoned twice");
        let again = self.token();
        let jobs = self.claim_with(&again, 10, LONG).await;
        assert_eq!(jobs.len(), 2, "{case}: given back");
        assert!(
            jobs.iter().all(|job| job.attempt == 1),
            "{case}: an abandoned claim counted its attempt: {:?}",
            jobs.iter().map(|job| job.attempt).collect::<Vec<_>>()
        );
        assert_eq!(
            self.abandon(&lost).await,
            0,
            "{case}: the old token took them"
        );
        assert!(self.complete(&jobs[0]).await, "{case}");
        assert_eq!(
            self.abandon(&again).await,
            1,
            "{case}: abandon takes back only what is still leased under the token"
        );
        assert!(
            !self.complete(&jobs[1]).await,
            "{case}: abandoned job settled"
        );
        let last = self.claim_one(LONG).await;
        assert_eq!(last.attempt, 1, "{case}");
        assert!(self.complete(&last).await, "{case}");
        assert_eq!(self.stats().await.depth, 0, "{case}: depth");
    }

    /// A done `webhook-id` is a duplicate within the retention ([`RETENTION`]), and is new
    /// again once it passed and the queue was purged.
    pub async fn done_ids_are_known_for_the_retention_then_forgotten(&self) {
        let case = self.case;
        let one = delivery(case, "kept");
        self.enqueue(&one).await;
        let job = self.claim_one(LONG).await;
        assert!(self.complete(&job).await, "{case}");
        self.purge().await;
        assert_eq!(
            self.enqueue(&one).await,
            Enqueued::Duplicate,
            "{case}: within the retention a done id is a duplicate"
        );
        tokio::time::sleep(PAST_RETENTION).await;
        while self.purge().await.more {}
        assert_eq!(
            self.enqueue(&one).await,
            Enqueued::New,
            "{case}: past the retention a done id is forgotten"
        );
        let again = self.claim_one(LONG).await;
        assert_eq!(again.attempt, 1, "{case}: a new delivery");
        assert!(self.complete(&again).await, "{case}");
    }

    /// A dead letter stays within [`DEAD_RETENTION`], and is purged (its `webhook-id`
    /// forgotten with it) once that passed; a waiting job is never purged.
    pub async fn dead_letters_are_purged_after_their_retention(&self) {
        let case = self.case;
        let dead = delivery(case, "dead");
        self.enqueue(&dead).await;
        let job = self.claim_one(LONG).await;
        assert!(self.bury(&job, "permanent").await, "{case}");
        let waiting = delivery(case, "waiting");
        self.enqueue(&waiting).await;
        let purged = self.purge().await;
        assert_eq!(purged.dead, 0, "{case}: purged within the retention");
        assert_eq!(self.dead_letters().await.len(), 1, "{case}: kept");
        tokio::time::sleep(PAST_RETENTION).await;
        let mut dead_purged = 0;
        loop {
            let purged = self.purge().await;
            dead_purged += purged.dead;
            if !purged.more {
                break;
            }
        }
        assert_eq!(dead_purged, 1, "{case}: dead letters purged");
        assert!(self.dead_letters().await.is_empty(), "{case}: still listed");
        assert!(
            matches!(self.backend.dead_letter(&dead.webhook_id).await, Ok(None)),
            "{case}: still shown"
        );
        let stats = self.stats().await;
        assert_eq!((stats.depth, stats.dead), (1, 0), "{case}: stats");
        let job = self.claim_one(LONG).await;
        assert_eq!(job.delivery, waiting, "{case}: the waiting job was purged");
        assert_eq!(
            self.enqueue(&dead).await,
            Enqueued::New,
            "{case}: a purged dead letter's id is forgotten"
        );
    }

    /// [`concurrent_enqueues_of_one_id_store_one`](Self::concurrent_enqueues_of_one_id_store_one)
    /// from two instances at once.
    pub async fn concurrent_enqueues_on_two_instances_store_one(&self) {
        let instances = [Arc::clone(&self.backend), Arc::clone(self.second())];
        self.enqueues_of_one_id_store_one("contended-twice", &instances)
            .await;
    }

    /// [`concurrent_claimers_take_each_job_once`](Self::concurrent_claimers_take_each_job_once)
    /// with the claimers spread over two instances.
    pub async fn concurrent_claimers_on_two_instances_take_each_job_once(&self) {
        let instances = [Arc::clone(&self.backend), Arc::clone(self.second())];
        self.claimers_take_each_job_once(&instances).await;
    }

    /// A lease taken and extended on one instance holds against claims from the other.
    pub async fn a_lease_extended_on_one_instance_holds_on_the_other(&self) {
        let case = self.case;
        let other = Arc::clone(self.second());
        self.enqueue(&delivery(case, "shared")).await;
        let job = self.claim_one(SHORT).await;
        assert!(self.extend(&job, WITHIN).await, "{case}: extend");
        for _ in 0..3 {
            tokio::time::sleep(PAST_SHORT).await;
            let taken = other
                .claim(10, SHORT)
                .await
                .unwrap_or_else(|err| panic!("{case}: claim failed: {err}"));
            assert!(
                taken.is_empty(),
                "{case}: the other instance took a held job"
            );
            assert!(self.extend(&job, WITHIN).await, "{case}: extend");
        }
        assert!(self.complete(&job).await, "{case}");
        assert!(
            !other
                .complete(&job)
                .await
                .unwrap_or_else(|err| panic!("{case}: complete failed: {err}")),
            "{case}: completed twice across instances"
        );
    }

    /// The sender's resend of a dead delivery (the portal's replay: same id, a fresh timestamp
    /// and signature) is stored again as it was resent, `New`, runs, and is in its history.
    pub async fn a_resend_of_a_dead_delivery_is_stored_again_and_runs(&self) {
        let case = self.case;
        let first = delivery(case, "resent");
        self.enqueue(&first).await;
        let job = self.claim_one(LONG).await;
        assert!(self.bury(&job, "handler_failed: boom").await, "{case}");
        let resent = ReceivedDelivery {
            webhook_timestamp: first.webhook_timestamp + 3_600,
            signature: "v1,cmVzZW50IHNpZ25hdHVyZSBieXRlcyBoZXJlIQ==".into(),
            received_at_ms: first.received_at_ms + 3_600_000,
            body: Bytes::from_static(b"{\"type\":\"producersync.updates_available\",\"data\":{}}"),
            ..first.clone()
        };
        assert_eq!(
            self.enqueue(&resent).await,
            Enqueued::New,
            "{case}: a resend of a dead delivery is stored again"
        );
        assert!(self.dead_letters().await.is_empty(), "{case}: still dead");
        let again = self.claim_one(LONG).await;
        assert_eq!(again.delivery, resent, "{case}: runs as resent");
        assert_eq!(again.attempt, 1, "{case}: attempts counted anew");
        assert!(self.complete(&again).await, "{case}");
        assert_eq!(
            self.enqueue(&resent).await,
            Enqueued::Duplicate,
            "{case}: a resend of a done delivery is a duplicate"
        );
        let record = self.record(&first.webhook_id).await;
        assert!(
            record
                .history
                .iter()
                .any(|entry| entry.event == HistoryEvent::Resent),
            "{case}: the resend is not in the history: {:?}",
            record.history
        );
    }

    /// Lists are newest first, filtered by state(s), type, group, time and id, and paged by
    /// cursor with nothing skipped or repeated.
    pub async fn the_record_lists_newest_first_by_filter_and_cursor(&self) {
        let case = self.case;
        let base = now_ms() - 100_000;
        let types = [
            "producersync.updates_available",
            "contract.signed",
            "contract.future_thing",
            "endpoint.unknown",
        ];
        let mut all = Vec::new();
        for n in 0..8_i64 {
            let one = ReceivedDelivery {
                event_type: types[usize::try_from(n).unwrap_or(0) % types.len()].into(),
                received_at_ms: base + n * 1_000,
                ..delivery(case, &format!("listed-{n}"))
            };
            self.enqueue(&one).await;
            all.push(one);
        }
        let newest_first: Vec<String> = all.iter().rev().map(|d| d.webhook_id.clone()).collect();
        let page = self.list(&DeliveryFilter::new(), None, 100).await;
        assert_eq!(ids(&page), newest_first, "{case}: newest first");
        assert_eq!(page.next, None, "{case}: one page");

        let mut paged = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let page = self.list(&DeliveryFilter::new(), after.as_ref(), 3).await;
            assert!(page.deliveries.len() <= 3, "{case}: page size");
            paged.extend(ids(&page));
            match page.next {
                Some(next) => {
                    let text = next.to_string();
                    after = Some(text.parse().unwrap_or_else(|_| panic!("{case}: cursor")));
                }
                None => break,
            }
        }
        assert_eq!(paged, newest_first, "{case}: pages skip or repeat nothing");

        let filtered =
            |filter: DeliveryFilter| async move { ids(&self.list(&filter, None, 100).await) };
        let expect = |ns: &[usize]| -> Vec<String> {
            ns.iter().map(|n| all[*n].webhook_id.clone()).collect()
        };
        assert_eq!(
            filtered(DeliveryFilter::new().event_type("contract.signed")).await,
            expect(&[5, 1]),
            "{case}: one type"
        );
        assert_eq!(
            filtered(DeliveryFilter::new().event_type("contract")).await,
            expect(&[6, 5, 2, 1]),
            "{case}: a group, undocumented types included"
        );
        assert_eq!(
            filtered(DeliveryFilter::new().event_type("endpoint.unknown")).await,
            expect(&[7, 3]),
            "{case}: an unknown type is listed like any other"
        );
        assert_eq!(
            filtered(
                DeliveryFilter::new()
                    .received_since(base + 2_000)
                    .received_until(base + 5_000)
            )
            .await,
            expect(&[4, 3, 2]),
            "{case}: a time range, its end excluded"
        );
        assert_eq!(
            filtered(DeliveryFilter::new().id(all[3].webhook_id.clone())).await,
            expect(&[3]),
            "{case}: an id"
        );
        assert_eq!(
            filtered(DeliveryFilter::new().id_prefix(format!("{case}:listed-"))).await,
            newest_first,
            "{case}: an id prefix"
        );
        assert!(
            filtered(DeliveryFilter::new().id_prefix(format!("{case}:listed-x")))
                .await
                .is_empty(),
            "{case}: an id prefix that matches nothing"
        );

        // The four oldest are held: 0 done, 1 dead, 2 retrying, 3 still running. Every job is
        // claimed and the others given back: a partitioned queue (Redis `partitions`) claims
        // in order within a partition, not across them.
        let mut jobs: HashMap<String, Job> = self
            .claim(8, LONG)
            .await
            .into_iter()
            .map(|job| (job.delivery.webhook_id.clone(), job))
            .collect();
        for later in &all[4..] {
            if let Some(job) = jobs.remove(&later.webhook_id) {
                assert!(
                    self.release(&job).await,
                    "{case}: give back {}",
                    later.webhook_id
                );
            }
        }
        let job = |n: usize| {
            jobs.get(&all[n].webhook_id)
                .unwrap_or_else(|| panic!("{case}: listed-{n} was not claimed first"))
        };
        assert!(self.complete(job(0)).await, "{case}");
        assert!(self.bury(job(1), "dead").await, "{case}");
        assert!(self.retry(job(2), LONG).await, "{case}");
        for (states, expected) in [
            (vec![DeliveryState::Done], vec![0]),
            (vec![DeliveryState::Dead], vec![1]),
            (vec![DeliveryState::Running], vec![3]),
            (vec![DeliveryState::Waiting], vec![7, 6, 5, 4]),
            (
                vec![DeliveryState::Retrying, DeliveryState::Dead],
                vec![2, 1],
            ),
            (
                vec![
                    DeliveryState::Dead,
                    DeliveryState::Waiting,
                    DeliveryState::Done,
                ],
                vec![7, 6, 5, 4, 1, 0],
            ),
        ] {
            let filter = DeliveryFilter::new().states(states.clone());
            assert_eq!(
                filtered(filter.clone()).await,
                expect(&expected),
                "{case}: states {states:?}"
            );
            // The same, two at a time across the states' merge.
            let mut paged = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let page = self.list(&filter, after.as_ref(), 2).await;
                paged.extend(ids(&page));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert_eq!(paged, expect(&expected), "{case}: states {states:?}, paged");
        }
        let retrying = self
            .list(
                &DeliveryFilter::new().state(DeliveryState::Retrying),
                None,
                10,
            )
            .await;
        let summary = &retrying.deliveries[0];
        assert_eq!(summary.event_type, types[2], "{case}: its type");
        assert_eq!(summary.received_at_ms, base + 2_000, "{case}: received at");
        assert_eq!(summary.attempts, 1, "{case}: attempts");
        assert_eq!(summary.last_error.as_deref(), Some("try again"), "{case}");
        assert!(
            summary.next_run_at_ms.is_some_and(|due| due > now_ms()),
            "{case}: due later: {:?}",
            summary.next_run_at_ms
        );
        let done = self
            .list(&DeliveryFilter::new().state(DeliveryState::Done), None, 10)
            .await;
        assert_eq!(
            done.deliveries[0].next_run_at_ms, None,
            "{case}: done is not due"
        );
        assert!(self.complete(job(3)).await, "{case}");
    }

    /// Counts by state and by type, for everything and for a time range.
    pub async fn the_record_counts_by_state_and_type(&self) {
        let case = self.case;
        let base = now_ms() - 50_000;
        for (n, event_type) in [
            "contract.signed",
            "contract.signed",
            "producersync.updates_available",
            "endpoint.unknown",
        ]
        .into_iter()
        .enumerate()
        {
            let one = ReceivedDelivery {
                event_type: event_type.into(),
                received_at_ms: base + i64::try_from(n).unwrap_or(0) * 1_000,
                ..delivery(case, &format!("counted-{n}"))
            };
            self.enqueue(&one).await;
        }
        let jobs = self.claim(3, LONG).await;
        assert_eq!(jobs.len(), 3, "{case}");
        assert!(self.complete(&jobs[0]).await, "{case}");
        assert!(self.bury(&jobs[1], "dead").await, "{case}");
        assert!(self.retry(&jobs[2], LONG).await, "{case}");
        let counts = self.counts(&DeliveryFilter::new()).await;
        assert_eq!(counts.total(), 4, "{case}: total");
        for (state, n) in [
            (DeliveryState::Waiting, 1),
            (DeliveryState::Running, 0),
            (DeliveryState::Retrying, 1),
            (DeliveryState::Done, 1),
            (DeliveryState::Dead, 1),
        ] {
            assert_eq!(counts.state(state), n, "{case}: {state}");
        }
        assert_eq!(counts.by_state.len(), 5, "{case}: every state is present");
        assert_eq!(counts.by_type.get("contract.signed"), Some(&2), "{case}");
        assert_eq!(counts.by_type.get("endpoint.unknown"), Some(&1), "{case}");
        assert_eq!(counts.by_type.len(), 3, "{case}: types");
        let recent = self
            .counts(&DeliveryFilter::new().received_since(base + 2_000))
            .await;
        assert_eq!(recent.total(), 2, "{case}: a time range");
        let contracts = self
            .counts(
                &DeliveryFilter::new()
                    .event_type("contract")
                    .state(DeliveryState::Dead),
            )
            .await;
        assert_eq!(
            contracts.total(),
            2,
            "{case}: a group, every state counted whatever the filter's states"
        );
    }

    /// One delivery shows its body, headers, state and every attempt: when, how long, how it
    /// ended, its error and its worker; a replay and who asked; a lost lease.
    pub async fn the_record_shows_a_delivery_with_its_history(&self) {
        let case = self.case;
        assert!(
            self.backend
                .delivery("never-seen")
                .await
                .unwrap_or_else(|err| panic!("{case}: delivery failed: {err}"))
                .is_none(),
            "{case}: unknown id"
        );
        let one = delivery(case, "shown");
        self.enqueue(&one).await;
        let waiting = self.record(&one.webhook_id).await;
        assert_eq!(waiting.state, DeliveryState::Waiting, "{case}");
        assert_eq!(waiting.delivery, one, "{case}: stored as received");
        assert!(waiting.history.is_empty(), "{case}: nothing happened yet");
        assert!(waiting.next_run_at_ms.is_some(), "{case}: due");

        let worker = ClaimToken::for_worker("contract-worker")
            .unwrap_or_else(|err| panic!("{case}: token: {err}"));
        let first = self.claim_with(&worker, 10, LONG).await.remove(0);
        assert_eq!(
            self.record(&one.webhook_id).await.state,
            DeliveryState::Running,
            "{case}"
        );
        assert!(self.retry(&first, Duration::ZERO).await, "{case}");
        let retrying = self.record(&one.webhook_id).await;
        assert_eq!(retrying.state, DeliveryState::Retrying, "{case}");
        assert_eq!(retrying.last_error.as_deref(), Some("try again"), "{case}");
        let second = self.claim_one(SHORT).await;
        tokio::time::sleep(PAST_SHORT).await;
        let third = self.claim_one(LONG).await;
        assert_eq!((second.attempt, third.attempt), (2, 3), "{case}");
        assert!(
            self.bury(&third, "handler_permanent: no such NPN").await,
            "{case}"
        );
        assert!(
            self.replay_by(&one.webhook_id, "cli").await,
            "{case}: replay"
        );
        let fourth = self.claim_one(LONG).await;
        assert!(self.complete(&fourth).await, "{case}");

        let done = self.record(&one.webhook_id).await;
        assert_eq!(done.state, DeliveryState::Done, "{case}");
        assert_eq!(done.delivery, one, "{case}: a done delivery keeps its body");
        assert!(done.done_at_ms.is_some(), "{case}: done at");
        let events: Vec<(String, Option<AttemptOutcome>, u32)> = done
            .history
            .iter()
            .map(|entry| match &entry.event {
                HistoryEvent::Attempt {
                    number, outcome, ..
                } => ("attempt".to_owned(), Some(*outcome), *number),
                other => (other.kind().to_owned(), None, 0),
            })
            .collect();
        assert_eq!(
            events,
            [
                ("attempt".to_owned(), Some(AttemptOutcome::Retry), 1),
                ("attempt".to_owned(), Some(AttemptOutcome::LeaseExpired), 2),
                ("attempt".to_owned(), Some(AttemptOutcome::Dead), 3),
                ("replayed".to_owned(), None, 0),
                ("attempt".to_owned(), Some(AttemptOutcome::Ok), 1),
            ],
            "{case}: the history"
        );
        let HistoryEvent::Attempt { error, worker, .. } = &done.history[0].event else {
            panic!("{case}: the first entry is an attempt");
        };
        assert_eq!(error.as_deref(), Some("try again"), "{case}: its error");
        assert_eq!(worker, "contract-worker", "{case}: its worker");
        let HistoryEvent::Attempt { error, .. } = &done.history[2].event else {
            panic!("{case}: the third entry is an attempt");
        };
        assert_eq!(
            error.as_deref(),
            Some("handler_permanent: no such NPN"),
            "{case}"
        );
        assert_eq!(
            done.history[3].event,
            HistoryEvent::Replayed { by: "cli".into() },
            "{case}: who replayed"
        );
        let started = one.received_at_ms - 1_000;
        assert!(
            done.history
                .iter()
                .all(|entry| entry.at_ms >= started && entry.at_ms <= now_ms() + 1_000),
            "{case}: history times are about now: {:?}",
            done.history
        );
        assert!(
            done.history
                .windows(2)
                .all(|pair| pair[0].at_ms <= pair[1].at_ms),
            "{case}: oldest first"
        );
        assert_eq!(done.history_dropped, 0, "{case}");
    }

    /// A delivery that fails for a long time keeps its first history entry and the latest, at
    /// most [`MAX_HISTORY`], saying how many were dropped; errors are cut to
    /// [`MAX_ERROR_LEN`].
    pub async fn the_history_is_capped_and_errors_bounded(&self) {
        let case = self.case;
        let one = delivery(case, "capped");
        self.enqueue(&one).await;
        let long_error = "x".repeat(3 * MAX_ERROR_LEN);
        let runs = MAX_HISTORY + 5;
        for run in 0..runs {
            let job = self.claim_one(LONG).await;
            let error = if run + 1 == runs {
                long_error.as_str()
            } else {
                "try again"
            };
            let backend = Arc::clone(&self.backend);
            assert!(
                backend
                    .retry(&job, Duration::ZERO, error)
                    .await
                    .unwrap_or_else(|err| panic!("{case}: retry failed: {err}")),
                "{case}"
            );
        }
        let record = self.record(&one.webhook_id).await;
        assert_eq!(record.history.len(), MAX_HISTORY, "{case}: capped");
        assert_eq!(record.history_dropped, 5, "{case}: dropped");
        let numbers: Vec<u32> = record
            .history
            .iter()
            .filter_map(|entry| match entry.event {
                HistoryEvent::Attempt { number, .. } => Some(number),
                _ => None,
            })
            .collect();
        let runs = u32::try_from(runs).unwrap_or(u32::MAX);
        let mut expected = vec![1];
        expected.extend(7..=runs);
        assert_eq!(numbers, expected, "{case}: the first and the latest");
        let HistoryEvent::Attempt { error, .. } = &record.history[MAX_HISTORY - 1].event else {
            panic!("{case}: the last entry is an attempt");
        };
        let error = error.as_deref().unwrap_or_default();
        assert!(
            error.len() <= MAX_ERROR_LEN && error.len() >= MAX_ERROR_LEN - 4,
            "{case}: the error is bounded: {} bytes",
            error.len()
        );
        assert!(
            record.last_error.as_deref().unwrap_or_default().len() <= MAX_ERROR_LEN,
            "{case}: the last error is bounded"
        );
    }

    /// Any done or dead delivery can be replayed (waiting, attempts counted anew); a waiting,
    /// running or unknown one cannot.
    pub async fn replay_runs_done_and_dead_deliveries_again(&self) {
        let case = self.case;
        // Claimed in the order stored: the first three.
        for name in ["done", "dead", "runs", "waits"] {
            self.enqueue(&delivery(case, name)).await;
        }
        let id = |name: &str| format!("{case}:{name}");
        let jobs: HashMap<String, Job> = self
            .claim(3, LONG)
            .await
            .into_iter()
            .map(|job| (job.delivery.webhook_id.clone(), job))
            .collect();
        assert_eq!(jobs.len(), 3, "{case}");
        assert!(self.complete(&jobs[&id("done")]).await, "{case}");
        assert!(self.bury(&jobs[&id("dead")], "dead").await, "{case}");
        assert!(
            !self.replay_by(&id("waits"), "cli").await,
            "{case}: a waiting one"
        );
        assert!(
            !self.replay_by(&id("runs"), "cli").await,
            "{case}: a running one"
        );
        assert!(
            !self.replay_by("never-seen", "cli").await,
            "{case}: unknown"
        );
        assert!(
            self.replay_by(&id("done"), "dashboard").await,
            "{case}: done"
        );
        assert!(
            self.replay_by(&id("dead"), "dashboard").await,
            "{case}: dead"
        );
        assert!(
            !self.replay_by(&id("done"), "dashboard").await,
            "{case}: twice"
        );
        let mut again: Vec<(String, u32)> = self
            .claim(10, LONG)
            .await
            .into_iter()
            .map(|job| (job.delivery.webhook_id, job.attempt))
            .collect();
        again.sort();
        assert_eq!(
            again,
            [(id("dead"), 1), (id("done"), 1), (id("waits"), 1)],
            "{case}: replayed deliveries run again"
        );
    }

    /// A bulk replay takes the done or dead deliveries a filter keeps, at most the bound asked
    /// for, and says how many.
    pub async fn replay_matching_is_bounded_and_counts(&self) {
        let case = self.case;
        for n in 0..5 {
            self.enqueue(&ReceivedDelivery {
                event_type: "contract.signed".into(),
                ..delivery(case, &format!("bulk-{n}"))
            })
            .await;
        }
        self.enqueue(&delivery(case, "other-type")).await;
        for job in self.claim(10, LONG).await {
            assert!(self.bury(&job, "dead").await, "{case}");
        }
        let filter = DeliveryFilter::new()
            .state(DeliveryState::Dead)
            .event_type("contract.signed");
        assert_eq!(self.replay_matching(&filter, 3).await, 3, "{case}: bounded");
        assert_eq!(
            self.replay_matching(&filter, 3).await,
            2,
            "{case}: the rest"
        );
        assert_eq!(
            self.replay_matching(&filter, 3).await,
            0,
            "{case}: none left"
        );
        let waiting = DeliveryFilter::new().state(DeliveryState::Waiting);
        assert_eq!(
            self.replay_matching(&waiting, 10).await,
            0,
            "{case}: waiting deliveries are not replayed"
        );
        assert_eq!(self.claim(10, LONG).await.len(), 5, "{case}: replayed");
        assert_eq!(self.dead_letters().await.len(), 1, "{case}: the other type");
    }

    /// Discarding moves a waiting or retrying delivery to the dead letters, recorded; a
    /// running or done one stays.
    pub async fn discard_moves_waiting_and_retrying_to_the_dead_letters(&self) {
        let case = self.case;
        for name in ["waits", "retries", "runs"] {
            self.enqueue(&delivery(case, name)).await;
        }
        let id = |name: &str| format!("{case}:{name}");
        // Every job claimed, and the one that waits given back: a partitioned queue (Redis
        // `partitions`) claims in order within a partition, not across them.
        let mut jobs: HashMap<String, Job> = self
            .claim(3, LONG)
            .await
            .into_iter()
            .map(|job| (job.delivery.webhook_id.clone(), job))
            .collect();
        if let Some(job) = jobs.remove(&id("waits")) {
            assert!(self.release(&job).await, "{case}: give back");
        }
        let (retries, runs) = if jobs.contains_key(&id("retries")) {
            (
                &jobs[&id("retries")],
                jobs.values()
                    .find(|j| j.delivery.webhook_id != id("retries")),
            )
        } else {
            panic!("{case}: the oldest two were not claimed")
        };
        let runs = runs.unwrap_or_else(|| panic!("{case}: two claimed"));
        assert!(self.retry(retries, LONG).await, "{case}");
        assert!(
            self.discard(&id("retries"), "dashboard").await,
            "{case}: retrying"
        );
        assert!(
            !self.discard(&runs.delivery.webhook_id, "dashboard").await,
            "{case}: a running one is its worker's"
        );
        let waiting_id = if runs.delivery.webhook_id == id("waits") {
            id("runs")
        } else {
            id("waits")
        };
        assert!(self.discard(&waiting_id, "cli").await, "{case}: waiting");
        assert!(!self.discard(&waiting_id, "cli").await, "{case}: twice");
        assert!(!self.discard("never-seen", "cli").await, "{case}: unknown");
        let dead = self.record(&id("retries")).await;
        assert_eq!(dead.state, DeliveryState::Dead, "{case}");
        assert!(
            dead.last_error
                .as_deref()
                .is_some_and(|error| error.contains("discarded by operator")),
            "{case}: {:?}",
            dead.last_error
        );
        assert_eq!(
            dead.history.last().map(|entry| &entry.event),
            Some(&HistoryEvent::Discarded {
                by: "dashboard".into()
            }),
            "{case}: who discarded"
        );
        assert!(self.claim(10, LONG).await.is_empty(), "{case}: nothing due");
        assert!(self.complete(runs).await, "{case}: the running one settles");
        assert_eq!(self.dead_letters().await.len(), 2, "{case}");
    }

    /// A done delivery's id is a duplicate until forgotten; then the sender's resend is new.
    pub async fn forget_lets_the_next_resend_in(&self) {
        let case = self.case;
        let one = delivery(case, "forgotten");
        self.enqueue(&one).await;
        assert!(
            !self.forget(&one.webhook_id, "cli").await,
            "{case}: a waiting one"
        );
        let job = self.claim_one(LONG).await;
        assert!(self.complete(&job).await, "{case}");
        assert_eq!(self.enqueue(&one).await, Enqueued::Duplicate, "{case}");
        assert!(self.forget(&one.webhook_id, "cli").await, "{case}: forget");
        assert!(!self.forget("never-seen", "cli").await, "{case}: unknown");
        assert_eq!(
            self.enqueue(&one).await,
            Enqueued::New,
            "{case}: the resend after forget is new"
        );
        let again = self.claim_one(LONG).await;
        assert_eq!(again.attempt, 1, "{case}");
        assert!(self.complete(&again).await, "{case}");
        assert_eq!(
            self.enqueue(&one).await,
            Enqueued::Duplicate,
            "{case}: known again"
        );
    }

    /// Dead letters older than a time are purged, the newer kept, their ids forgotten.
    pub async fn purge_dead_deletes_dead_letters_older_than_a_time(&self) {
        let case = self.case;
        for name in ["old-1", "old-2"] {
            self.enqueue(&delivery(case, name)).await;
        }
        for job in self.claim(10, LONG).await {
            assert!(self.bury(&job, "dead").await, "{case}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let cutoff = now_ms();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let young = delivery(case, "young");
        self.enqueue(&young).await;
        let job = self.claim_one(LONG).await;
        assert!(self.bury(&job, "dead").await, "{case}");
        let purged = self
            .backend
            .purge_dead(cutoff, 1)
            .await
            .unwrap_or_else(|err| panic!("{case}: purge_dead failed: {err}"));
        assert_eq!(purged, 1, "{case}: bounded");
        let purged = self
            .backend
            .purge_dead(cutoff, 100)
            .await
            .unwrap_or_else(|err| panic!("{case}: purge_dead failed: {err}"));
        assert_eq!(purged, 1, "{case}: the other old one");
        let left: Vec<String> = self
            .dead_letters()
            .await
            .into_iter()
            .map(|dead| dead.delivery.webhook_id)
            .collect();
        assert_eq!(left, [young.webhook_id], "{case}: the young one stays");
        assert_eq!(
            self.enqueue(&delivery(case, "old-1")).await,
            Enqueued::New,
            "{case}: a purged id is forgotten"
        );
    }

    /// Every delivery's summary carries when its event occurred (keyed or not; none for a
    /// body that is not an envelope), and a delay filter keeps exactly those received at least
    /// that long after it: in lists (with a state, with an exact id), counts and bulk replay.
    pub async fn the_record_keeps_when_each_event_occurred_and_filters_the_late(&self) {
        let case = self.case;
        let base = now_ms() - 60_000;
        let quarter = Duration::from_secs(15 * 60);
        // (name, received minus occurred): the filter's bound is 15 min, inclusive.
        let delays: [(&str, i64); 5] = [
            ("on-time", 2_000),
            ("two-hours", 7_200_000),
            ("just-under", 899_999),
            ("exactly", 900_000),
            ("clock-ahead", -30_000),
        ];
        let mut expected: Vec<(String, Option<i64>)> = Vec::new();
        for (n, (name, delay)) in (0_i64..).zip(delays) {
            let received = base + n * 1_000;
            let one = timed_delivery(case, name, received, Some(received - delay));
            assert_eq!(self.enqueue(&one).await, Enqueued::New, "{case}: {name}");
            expected.push((one.webhook_id, Some(received - delay)));
        }
        // A keyed one, late by an hour (its occurred-at also the ordering's).
        let received = base + 10_000;
        let keyed = timed_delivery(case, "keyed", received, Some(received - 3_600_000));
        let order = crate::EventOrder {
            key: format!("{case}:npn"),
            occurred_at_ms: received - 3_600_000,
        };
        let enqueued = self
            .backend
            .enqueue_ordered(&keyed, &order)
            .await
            .unwrap_or_else(|err| panic!("{case}: enqueue_ordered failed: {err}"));
        assert_eq!(enqueued, Enqueued::New, "{case}: keyed");
        expected.push((keyed.webhook_id.clone(), Some(received - 3_600_000)));
        // A body that is not an envelope: no occurred-at, never in a delay filter.
        let opaque = ReceivedDelivery {
            received_at_ms: base + 11_000,
            body: Bytes::from_static(b"not an envelope"),
            ..delivery(case, "opaque")
        };
        assert_eq!(self.enqueue(&opaque).await, Enqueued::New, "{case}: opaque");
        expected.push((opaque.webhook_id.clone(), None));

        let page = self.list(&DeliveryFilter::new(), None, 100).await;
        let mut occurred: Vec<(String, Option<i64>)> = page
            .deliveries
            .iter()
            .map(|s| (s.webhook_id.clone(), s.occurred_at_ms))
            .collect();
        occurred.reverse();
        assert_eq!(occurred, expected, "{case}: every summary's occurred-at");
        let two_hours = &page.deliveries[page.deliveries.len() - 2];
        assert_eq!(two_hours.delay_ms(), Some(7_200_000), "{case}: its delay");
        assert_eq!(
            two_hours.delay(),
            Some(Duration::from_secs(7_200)),
            "{case}: its delay"
        );

        let late = DeliveryFilter::new().delayed_by_at_least(quarter);
        let late_ids = vec![
            keyed.webhook_id.clone(),
            expected[3].0.clone(),
            expected[1].0.clone(),
        ];
        assert_eq!(
            ids(&self.list(&late, None, 100).await),
            late_ids,
            "{case}: exactly the late ones, newest first"
        );
        assert_eq!(self.counts(&late).await.total(), 3, "{case}: counted");
        assert_eq!(
            ids(&self
                .list(&late.clone().id(expected[1].0.clone()), None, 10)
                .await),
            vec![expected[1].0.clone()],
            "{case}: a late id"
        );
        assert!(
            ids(&self
                .list(&late.clone().id(expected[2].0.clone()), None, 10)
                .await)
            .is_empty(),
            "{case}: an id not late enough"
        );
        for job in self.claim(10, LONG).await {
            assert!(self.complete(&job).await, "{case}");
        }
        let done_late = late.clone().state(DeliveryState::Done);
        assert_eq!(
            ids(&self.list(&done_late, None, 100).await),
            late_ids,
            "{case}: late and done"
        );
        assert_eq!(
            self.replay_matching(&done_late, 100).await,
            3,
            "{case}: only the late ones replayed"
        );
        assert_eq!(
            ids(&self
                .list(
                    &DeliveryFilter::new().state(DeliveryState::Waiting),
                    None,
                    100
                )
                .await),
            late_ids,
            "{case}: the late ones wait again"
        );
        let replayed = self.record(&keyed.webhook_id).await;
        assert_eq!(
            replayed.event_time().map(|t| t.delay_ms),
            Some(3_600_000),
            "{case}: the record's delay agrees"
        );
    }

    /// A delay filter pages by cursor: late and on-time deliveries interleaved, two late ones
    /// a page, none skipped or repeated, none on time.
    pub async fn a_delay_filtered_list_pages_by_cursor(&self) {
        let case = self.case;
        let base = now_ms() - 60_000;
        let mut late = Vec::new();
        for n in 0..10_i64 {
            let received = base + n * 1_000;
            let delay = if n % 2 == 0 { 3_600_000 } else { 1_000 };
            let one = timed_delivery(
                case,
                &format!("paged-{n}"),
                received,
                Some(received - delay),
            );
            self.enqueue(&one).await;
            if n % 2 == 0 {
                late.push(one.webhook_id);
            }
        }
        late.reverse();
        let filter = DeliveryFilter::new().delayed_by_at_least(Duration::from_secs(60));
        let mut paged = Vec::new();
        let mut after: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            let page = self.list(&filter, after.as_ref(), 2).await;
            assert!(page.deliveries.len() <= 2, "{case}: page size");
            paged.extend(ids(&page));
            pages += 1;
            assert!(pages <= 10, "{case}: the pages end");
            match page.next {
                Some(next) => {
                    after = Some(
                        next.to_string()
                            .parse()
                            .unwrap_or_else(|_| panic!("{case}")),
                    );
                }
                None => break,
            }
        }
        assert_eq!(paged, late, "{case}: the late ones, paged");
    }

    async fn record(&self, webhook_id: &str) -> DeliveryRecord {
        self.backend
            .delivery(webhook_id)
            .await
            .unwrap_or_else(|err| panic!("{}: delivery failed: {err}", self.case))
            .unwrap_or_else(|| panic!("{}: {webhook_id} is not on record", self.case))
    }

    async fn list(
        &self,
        filter: &DeliveryFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> DeliveryPage {
        self.backend
            .list(filter, after, limit)
            .await
            .unwrap_or_else(|err| panic!("{}: list failed: {err}", self.case))
    }

    async fn counts(&self, filter: &DeliveryFilter) -> DeliveryCounts {
        self.backend
            .counts(filter)
            .await
            .unwrap_or_else(|err| panic!("{}: counts failed: {err}", self.case))
    }

    async fn replay_by(&self, webhook_id: &str, by: &str) -> bool {
        self.backend
            .replay_by(webhook_id, by)
            .await
            .unwrap_or_else(|err| panic!("{}: replay failed: {err}", self.case))
    }

    async fn replay_matching(&self, filter: &DeliveryFilter, max: usize) -> u64 {
        self.backend
            .replay_matching(filter, "cli", max)
            .await
            .unwrap_or_else(|err| panic!("{}: replay_matching failed: {err}", self.case))
    }

    async fn discard(&self, webhook_id: &str, by: &str) -> bool {
        self.backend
            .discard(webhook_id, by)
            .await
            .unwrap_or_else(|err| panic!("{}: discard failed: {err}", self.case))
    }

    async fn forget(&self, webhook_id: &str, by: &str) -> bool {
        self.backend
            .forget(webhook_id, by)
            .await
            .unwrap_or_else(|err| panic!("{}: forget failed: {err}", self.case))
    }

    fn second(&self) -> &Arc<dyn Backend> {
        self.second.as_ref().unwrap_or_else(|| {
            panic!(
                "{}: this case needs a second instance on the same queue \
                 (QueueContract::second_instance)",
                self.case
            )
        })
    }

    fn token(&self) -> ClaimToken {
        ClaimToken::new().unwrap_or_else(|err| panic!("{}: no claim token: {err}", self.case))
    }

    async fn claim_with(&self, token: &ClaimToken, max: usize, lease: Duration) -> Vec<Job> {
        self.backend
            .claim_with(token, max, lease)
            .await
            .unwrap_or_else(|err| panic!("{}: claim failed: {err}", self.case))
    }

    async fn abandon(&self, token: &ClaimToken) -> u64 {
        self.backend
            .abandon(token)
            .await
            .unwrap_or_else(|err| panic!("{}: abandon failed: {err}", self.case))
    }

    async fn purge(&self) -> Purged {
        self.backend
            .purge()
            .await
            .unwrap_or_else(|err| panic!("{}: purge failed: {err}", self.case))
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

    async fn retry(&self, job: &Job, after: Duration) -> bool {
        self.backend
            .retry(job, after, "try again")
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

/// The event-time cases ([`queue_event_time_contract_tests!`](crate::queue_event_time_contract_tests)):
/// for engines that order events ([`Backend::orders_events`]).
pub const EVENT_TIME_CASES: &[&str] = &[
    "an_older_event_of_a_done_key_is_claimed_stale",
    "a_newer_event_and_an_equal_one_are_not_stale",
    "a_stale_completion_is_recorded_stale_and_keeps_the_newest",
    "one_job_of_a_key_runs_at_a_time_in_occurred_at_order",
    "a_key_is_freed_when_its_jobs_lease_expires",
    "jobs_without_a_key_run_concurrently_beside_keyed_ones",
];

#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test suite: a failure panics, naming the case"
)]
impl QueueContract {
    async fn enqueue_keyed(&self, name: &str, event_type: &str, key: &str, at_ms: i64) -> String {
        let mut stored = delivery(self.case, name);
        stored.event_type = event_type.into();
        let order = crate::EventOrder {
            key: key.into(),
            occurred_at_ms: at_ms,
        };
        let enqueued = self
            .backend
            .enqueue_ordered(&stored, &order)
            .await
            .unwrap_or_else(|err| panic!("{}: enqueue_ordered failed: {err}", self.case));
        assert_eq!(enqueued, Enqueued::New, "{}: {name}", self.case);
        stored.webhook_id
    }

    async fn claim_ordered(&self, max: usize, lease: Duration) -> Vec<crate::Claimed> {
        let token = ClaimToken::new().unwrap();
        self.backend
            .claim_ordered(&token, max, lease)
            .await
            .unwrap_or_else(|err| panic!("{}: claim_ordered failed: {err}", self.case))
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.case)
    }

    /// Activated (10:05) is done; the deactivation of 10:00, arriving after, is claimed stale.
    pub async fn an_older_event_of_a_done_key_is_claimed_stale(&self) {
        assert!(self.backend.orders_events(), "{}: orders_events", self.case);
        let npn = self.key("npn");
        self.enqueue_keyed("activated", "producersync.npn.activated", &npn, 10_500)
            .await;
        let first = self.claim_ordered(8, LONG).await;
        assert_eq!(first.len(), 1, "{}", self.case);
        let order = first[0]
            .order
            .clone()
            .expect("a keyed job carries its order");
        assert_eq!(
            (order.key.as_str(), order.occurred_at_ms),
            (npn.as_str(), 10_500)
        );
        assert_eq!(order.newest_done_ms, None);
        assert!(self.complete(&first[0].job).await);

        self.enqueue_keyed("deactivated", "producersync.npn.deactivated", &npn, 10_000)
            .await;
        let second = self.claim_ordered(8, LONG).await;
        assert_eq!(second.len(), 1, "{}", self.case);
        let order = second[0].order.clone().expect("keyed");
        assert_eq!(order.newest_done_ms, Some(10_500), "{}", self.case);
        assert!(order.is_stale(), "{}", self.case);
    }

    /// Deactivated (10:00) done, then activated (10:05): not stale; then one at 10:05: a tie, not stale.
    pub async fn a_newer_event_and_an_equal_one_are_not_stale(&self) {
        let npn = self.key("npn");
        self.enqueue_keyed("deactivated", "producersync.npn.deactivated", &npn, 10_000)
            .await;
        let first = self.claim_ordered(8, LONG).await;
        assert!(self.complete(&first[0].job).await);
        self.enqueue_keyed("activated", "producersync.npn.activated", &npn, 10_500)
            .await;
        let second = self.claim_ordered(8, LONG).await;
        let order = second[0].order.clone().expect("keyed");
        assert!(!order.is_stale(), "{}: newer", self.case);
        assert!(self.complete(&second[0].job).await);
        self.enqueue_keyed("again", "producersync.npn.activated", &npn, 10_500)
            .await;
        let third = self.claim_ordered(8, LONG).await;
        let order = third[0].order.clone().expect("keyed");
        assert_eq!(order.newest_done_ms, Some(10_500));
        assert!(!order.is_stale(), "{}: a tie runs", self.case);
    }

    /// A stale job completed as stale: done, outcome `stale` in its record, the newest kept.
    pub async fn a_stale_completion_is_recorded_stale_and_keeps_the_newest(&self) {
        let npn = self.key("npn");
        self.enqueue_keyed("new", "producersync.npn.activated", &npn, 20_000)
            .await;
        let first = self.claim_ordered(8, LONG).await;
        assert!(self.complete(&first[0].job).await);
        let old = self
            .enqueue_keyed("old", "producersync.npn.deactivated", &npn, 10_000)
            .await;
        let second = self.claim_ordered(8, LONG).await;
        assert!(
            second[0]
                .order
                .as_ref()
                .is_some_and(crate::ClaimedOrder::is_stale)
        );
        let settled = self
            .backend
            .complete_stale(&second[0].job)
            .await
            .unwrap_or_else(|err| panic!("{}: complete_stale failed: {err}", self.case));
        assert!(settled, "{}", self.case);
        let record = self.record(&old).await;
        assert_eq!(record.state, DeliveryState::Done, "{}", self.case);
        assert!(record.is_stale(), "{}: {:?}", self.case, record.history);
        // The newest is still the newer event's.
        self.enqueue_keyed("later", "producersync.npn.activated", &npn, 15_000)
            .await;
        let third = self.claim_ordered(8, LONG).await;
        assert_eq!(
            third[0].order.as_ref().and_then(|o| o.newest_done_ms),
            Some(20_000)
        );
    }

    /// Two events of one key enqueued together: one claim takes only the older; nothing of the
    /// key is claimable while it runs; once it settles, the newer one is.
    pub async fn one_job_of_a_key_runs_at_a_time_in_occurred_at_order(&self) {
        let npn = self.key("npn");
        // The newer is enqueued first: order is by occurred-at, not arrival.
        self.enqueue_keyed("newer", "producersync.npn.activated", &npn, 20_000)
            .await;
        let older = self
            .enqueue_keyed("older", "producersync.npn.deactivated", &npn, 10_000)
            .await;
        let first = self.claim_ordered(8, LONG).await;
        assert_eq!(first.len(), 1, "{}: one of the key at a time", self.case);
        assert_eq!(first[0].job.delivery.webhook_id, older, "{}", self.case);
        let on_second = match &self.second {
            Some(second) => second.clone(),
            None => self.backend.clone(),
        };
        let token = ClaimToken::new().unwrap();
        let held = on_second.claim_ordered(&token, 8, LONG).await.unwrap();
        assert!(
            held.is_empty(),
            "{}: the key is held on every instance",
            self.case
        );
        // A retry frees the key too, but the retried head holds the rest until it is due.
        assert!(self.complete(&first[0].job).await);
        let next = self.claim_ordered(8, LONG).await;
        assert_eq!(next.len(), 1, "{}", self.case);
        assert_eq!(next[0].job.delivery.webhook_id, self.key("newer"));
        assert!(
            !next[0]
                .order
                .as_ref()
                .is_some_and(crate::ClaimedOrder::is_stale)
        );
    }

    /// A worker killed while it holds a key: once the lease ends, the key's job is re-claimed
    /// (holding the key), and the next job of the key follows it.
    pub async fn a_key_is_freed_when_its_jobs_lease_expires(&self) {
        let npn = self.key("npn");
        let first_id = self
            .enqueue_keyed("first", "producersync.npn.activated", &npn, 10_000)
            .await;
        self.enqueue_keyed("second", "producersync.npn.deactivated", &npn, 20_000)
            .await;
        let taken = self.claim_ordered(8, WITHIN).await;
        assert_eq!(taken.len(), 1);
        assert!(
            self.claim_ordered(8, LONG).await.is_empty(),
            "{}",
            self.case
        );
        tokio::time::sleep(PAST_WITHIN).await;
        let again = self.claim_ordered(8, LONG).await;
        assert_eq!(again.len(), 1, "{}: only the expired job", self.case);
        assert_eq!(again[0].job.delivery.webhook_id, first_id);
        assert!(self.complete(&again[0].job).await);
        let next = self.claim_ordered(8, LONG).await;
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].job.delivery.webhook_id, self.key("second"));
    }

    /// Unkeyed jobs are claimed as before, whatever keys are held.
    pub async fn jobs_without_a_key_run_concurrently_beside_keyed_ones(&self) {
        let npn = self.key("npn");
        self.enqueue_keyed("a", "producersync.npn.activated", &npn, 1)
            .await;
        self.enqueue_keyed("b", "producersync.npn.activated", &npn, 2)
            .await;
        for n in 0..3 {
            assert_eq!(
                self.enqueue(&delivery(self.case, &format!("plain{n}")))
                    .await,
                Enqueued::New
            );
        }
        let claimed = self.claim_ordered(8, LONG).await;
        assert_eq!(
            claimed.len(),
            4,
            "{}: three plain and one of the key",
            self.case
        );
        assert_eq!(claimed.iter().filter(|c| c.order.is_none()).count(), 3);
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

/// The ids of a page, in its order.
fn ids(page: &DeliveryPage) -> Vec<String> {
    page.deliveries
        .iter()
        .map(|summary| summary.webhook_id.clone())
        .collect()
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

/// A delivery for `case` named `name`, received at `received_at_ms`, whose envelope says its
/// event occurred at `occurred_at_ms` (no `timestamp` for `None`).
fn timed_delivery(
    case: &str,
    name: &str,
    received_at_ms: i64,
    occurred_at_ms: Option<i64>,
) -> ReceivedDelivery {
    let timestamp = occurred_at_ms.map_or_else(String::new, |ms| {
        format!(r#","timestamp":"{}""#, rfc3339(ms))
    });
    ReceivedDelivery {
        received_at_ms,
        body: Bytes::from(format!(
            r#"{{"type":"producersync.updates_available"{timestamp},"data":{{"name":"{name}"}}}}"#
        )),
        ..delivery(case, name)
    }
}

/// `ms` since the epoch as RFC 3339 in UTC with milliseconds (`2026-12-06T23:35:00.123Z`).
fn rfc3339(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
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
            concurrent_completions_each_settle_once,
            retry_waits_until_its_time,
            release_does_not_count_the_attempt,
            bury_lists_shows_and_replays,
            extend_keeps_the_lease,
            stats_count_depth_oldest_and_dead,
            delivery_round_trips_byte_for_byte,
            concurrent_claimers_take_each_job_once,
            abandon_gives_a_lost_claim_back,
            done_ids_are_known_for_the_retention_then_forgotten,
            dead_letters_are_purged_after_their_retention,
            concurrent_enqueues_on_two_instances_store_one,
            concurrent_claimers_on_two_instances_take_each_job_once,
            a_lease_extended_on_one_instance_holds_on_the_other,
            a_resend_of_a_dead_delivery_is_stored_again_and_runs,
            the_record_lists_newest_first_by_filter_and_cursor,
            the_record_counts_by_state_and_type,
            the_record_shows_a_delivery_with_its_history,
            the_history_is_capped_and_errors_bounded,
            replay_runs_done_and_dead_deliveries_again,
            replay_matching_is_bounded_and_counts,
            discard_moves_waiting_and_retrying_to_the_dead_letters,
            forget_lets_the_next_resend_in,
            purge_dead_deletes_dead_letters_older_than_a_time,
            the_record_keeps_when_each_event_occurred_and_filters_the_late,
            a_delay_filtered_list_pages_by_cursor
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

/// Writes one `#[tokio::test]` per event-time case ([`EVENT_TIME_CASES`]) for an engine that
/// orders events, each on a fresh queue from `$make` (as [`queue_contract_tests!`]). A test file
/// adds it beside `queue_contract_tests!` once its engine implements the event-time rules of
/// [`Backend`](crate::Backend).
#[macro_export]
macro_rules! queue_event_time_contract_tests {
    ($make:path) => {
        $crate::queue_contract_tests!(@cases $make;
            an_older_event_of_a_done_key_is_claimed_stale,
            a_newer_event_and_an_equal_one_are_not_stale,
            a_stale_completion_is_recorded_stale_and_keeps_the_newest,
            one_job_of_a_key_runs_at_a_time_in_occurred_at_order,
            a_key_is_freed_when_its_jobs_lease_expires,
            jobs_without_a_key_run_concurrently_beside_keyed_ones
        );
    };
}
