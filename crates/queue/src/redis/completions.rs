//! Completions batched: the handlers' successes that arrive while one completion script is in
//! flight share the next one (`complete_many.lua`), one round trip and one script for all of
//! them, each job still settled under its own receipt.
//!
//! One task per backend takes every completion waiting (at most [`MAX_BATCH`]), runs one script
//! per partition they name, and answers each caller only once its script answered. A caller
//! that stopped waiting (its engine timeout passed, so it asks again) is not run. When no task
//! can run (no Tokio runtime, or the one that ran it shut down), a completion runs on its own,
//! as `complete.lua`.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use agentsync_webhooks_core::idempotency::{StoreError, StoreErrorKind};
use agentsync_webhooks_redis::connection::RedisConnection;
use tokio::sync::{mpsc, oneshot};

use super::{Keys, bounded_call, scripts::COMPLETE_MANY};

/// At most this many completions share one script.
pub(super) const MAX_BATCH: usize = 64;

/// One job's completion, as the batch script takes it.
pub(super) struct Completion {
    pub(super) partition: usize,
    pub(super) entry: String,
    pub(super) count: String,
    /// `ok`, or `stale` (complete_stale).
    pub(super) outcome: &'static str,
    pub(super) webhook_id: String,
}

struct Pending {
    item: Completion,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// What the batching task runs its scripts with.
pub(super) struct Engine {
    pub(super) connection: RedisConnection,
    pub(super) parts: Arc<[Keys]>,
    pub(super) group: String,
    pub(super) retention_secs: u64,
    pub(super) timeout: Duration,
}

/// The callers' side: hands a completion to the batching task (started on first use, and
/// again when the runtime that ran it is gone) and waits for its answer.
pub(super) struct Completions {
    engine: Arc<Engine>,
    sender: Mutex<Option<mpsc::UnboundedSender<Pending>>>,
}

impl std::fmt::Debug for Completions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completions").finish_non_exhaustive()
    }
}

impl Completions {
    pub(super) fn new(engine: Engine) -> Self {
        Self {
            engine: Arc::new(engine),
            sender: Mutex::new(None),
        }
    }

    /// Completes `item` in the next batch: whether its receipt still held the job. `None` when
    /// no batching task can run here (then the caller completes it on its own).
    pub(super) async fn call(&self, item: Completion) -> Option<Result<bool, StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.send(Pending { item, reply })?;
        // The batch bounds its own scripts; this bounds the wait behind an earlier batch.
        let limit = self.engine.timeout.saturating_mul(2);
        Some(match tokio::time::timeout(limit, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(StoreError::new(
                StoreErrorKind::Other,
                "Redis complete: the queue's batching task stopped (its runtime shut down)",
            )),
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("Redis complete took longer than {limit:?}"),
            )),
        })
    }

    /// Hands `pending` to the task, starting one on the current runtime if there is none or
    /// its runtime is gone; `None` when there is no runtime to start one on.
    fn send(&self, pending: Pending) -> Option<()> {
        let mut sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = match sender.as_ref() {
            Some(live) => match live.send(pending) {
                Ok(()) => return Some(()),
                Err(mpsc::error::SendError(pending)) => pending,
            },
            None => pending,
        };
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (fresh, inbox) = mpsc::unbounded_channel();
        runtime.spawn(serve(inbox, Arc::clone(&self.engine)));
        fresh.send(pending).ok()?;
        *sender = Some(fresh);
        Some(())
    }
}

/// Runs the batches until the backend (every sender) is dropped: one batch in flight at a time,
/// the next made of what arrived meanwhile.
async fn serve(mut inbox: mpsc::UnboundedReceiver<Pending>, engine: Arc<Engine>) {
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut waiting, MAX_BATCH).await > 0 {
        let batch: Vec<Pending> = waiting
            .drain(..)
            .filter(|pending| !pending.reply.is_closed())
            .collect();
        let mut partitions: Vec<usize> = batch.iter().map(|p| p.item.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let mut batch: Vec<Option<Pending>> = batch.into_iter().map(Some).collect();
        for partition in partitions {
            let members: Vec<Pending> = batch
                .iter_mut()
                .filter(|slot| slot.as_ref().is_some_and(|p| p.item.partition == partition))
                .filter_map(Option::take)
                .collect();
            engine.run(partition, members).await;
        }
    }
}

impl Engine {
    /// One script for `members`, all of partition `partition`; answers each.
    async fn run(&self, partition: usize, members: Vec<Pending>) {
        let Some(keys) = self.parts.get(partition) else {
            for pending in members {
                let _ = pending.reply.send(Ok(false));
            }
            return;
        };
        let mut invocation = COMPLETE_MANY.key(&keys.stream);
        invocation
            .key(&keys.leases)
            .arg(&self.group)
            .arg(self.retention_secs)
            .arg(&keys.prefix);
        for pending in &members {
            let item = &pending.item;
            invocation
                .arg(&item.entry)
                .arg(&item.count)
                .arg(item.outcome)
                .arg(&item.webhook_id);
        }
        let mut connection = self.connection.clone();
        let answer: Result<Vec<i64>, StoreError> = bounded_call(
            "complete",
            self.timeout,
            invocation.invoke_async(&mut connection),
        )
        .await;
        match answer {
            Ok(done) if done.len() == members.len() => {
                for (pending, done) in members.into_iter().zip(done) {
                    let _ = pending.reply.send(Ok(done == 1));
                }
            }
            Ok(done) => {
                let message = format!(
                    "Redis complete answered {} results for {} jobs",
                    done.len(),
                    members.len()
                );
                for pending in members {
                    let _ = pending
                        .reply
                        .send(Err(StoreError::new(StoreErrorKind::Other, message.clone())));
                }
            }
            Err(err) => {
                for pending in members {
                    let _ = pending
                        .reply
                        .send(Err(StoreError::new(err.kind(), err.to_string())));
                }
            }
        }
    }
}
