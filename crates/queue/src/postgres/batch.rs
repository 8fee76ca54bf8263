//! Group commit for enqueues and completions: the calls that arrive while one statement is in
//! flight share the next one, committed once for all of them.
//!
//! One task per backend and kind owns the order of its batches: it takes every call waiting (at
//! most [`MAX_BATCH`]), runs them as one statement, and answers each caller only then.
//!
//! **Enqueues** run as a multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING webhook_id` over
//! arrays on a durable connection (an autocommit statement: its answer arrives after its commit,
//! flushed). Within a batch an id is sent once: its later occurrences are answered as
//! duplicates of the first (or with its error). The ids the `INSERT` did not store are known
//! ones: each is then tried for the take-over (the resend of a dead, forgotten or long-done
//! delivery) on its own, as a single enqueue is, and a failure there fails that delivery alone.
//! A batch whose `INSERT` fails answers every member with the error, none as stored; when the
//! failure is the statement's (a value the server refused, not the connection), each member is
//! tried on its own, so that one bad delivery does not fail the others.
//!
//! **Completions** (a handler's success) run as one `UPDATE` of the batch's rows through the
//! primary key on a bookkeeping connection, each row settled only under its own receipt, with
//! each row's history entry and each key's newest done occurred-at (the newest of the batch's
//! rows of that key) in the same statement. A job completes once, so an id seen twice in one
//! batch (a caller that gave up and asked again) waits for the next statement: each call is
//! answered as it would be on its own. A deadlock between two instances' batches (the server
//! aborts one) runs that statement again.

use std::{collections::HashMap, future::Future, time::Duration};

use agentsync_webhooks_core::{
    handoff::Enqueued,
    idempotency::{StoreError, StoreErrorKind},
};
use bytes::Bytes;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::backend::{pg_error, pool_error};

/// At most this many enqueues share one statement.
pub(super) const MAX_BATCH: usize = 128;

/// One delivery's row as the enqueue statements bind it.
pub(super) struct EnqueueRow {
    pub(super) webhook_id: String,
    pub(super) event_type: String,
    pub(super) group: &'static str,
    pub(super) webhook_timestamp: i64,
    pub(super) signature: String,
    pub(super) received_at_ms: i64,
    pub(super) body: Bytes,
    /// The ordering key, `None` without one.
    pub(super) key: Option<String>,
    pub(super) occurred_at_ms: Option<i64>,
}

type Answer = Result<Enqueued, StoreError>;

/// One call waiting for its batch: what it asks, and where its answer goes.
pub(super) struct Pending<T, A> {
    item: T,
    reply: oneshot::Sender<Result<A, StoreError>>,
}

/// The callers' side of a batching task: hands an item to it and waits for its answer.
#[derive(Debug)]
pub(super) struct Batched<T, A> {
    sender: mpsc::UnboundedSender<Pending<T, A>>,
    what: &'static str,
}

/// The task's side, until [`serve`] starts on it.
pub(super) struct Inbox<T, A>(mpsc::UnboundedReceiver<Pending<T, A>>);

/// The enqueues' group commit.
pub(super) type Enqueues = Batched<EnqueueRow, Enqueued>;

/// One completion: the job's id and the receipt (claim token) it is held under.
pub(super) struct Completion {
    pub(super) webhook_id: String,
    pub(super) receipt: String,
}

/// The completions' group commit: whether each receipt still held its job.
pub(super) type Completions = Batched<Completion, bool>;

impl<T, A> Batched<T, A> {
    /// A channel to a task not started yet: [`serve`] it once the pool is final. `what`
    /// names the calls in errors.
    pub(super) fn new(what: &'static str) -> (Self, Inbox<T, A>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self { sender, what }, Inbox(receiver))
    }

    /// `item` in the next batch; answered once that batch's statement committed, or with an
    /// error (a timeout past twice `timeout` of waiting, the batch's own bound included).
    pub(super) async fn call(&self, item: T, timeout: Duration) -> Result<A, StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Pending { item, reply }).is_err() {
            return Err(stopped(self.what));
        }
        // The batch bounds its own statements; this bounds the wait behind earlier batches.
        let limit = timeout.saturating_mul(2);
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(stopped(self.what)),
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("PostgreSQL {} took longer than {limit:?}", self.what),
            )),
        }
    }
}

fn stopped(what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        format!("PostgreSQL {what}: the queue's batching task stopped (its runtime shut down)"),
    )
}

/// Runs the batches until every [`Batched`] is dropped: one batch in flight at a time, the
/// next made of what arrived meanwhile (at most `max`). `skip_abandoned`: a call whose caller
/// stopped waiting (its request dropped) is not run.
pub(super) async fn serve<T, A, F, Fut>(
    Inbox(mut inbox): Inbox<T, A>,
    max: usize,
    skip_abandoned: bool,
    mut run: F,
) where
    F: FnMut(Vec<Pending<T, A>>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut waiting = Vec::with_capacity(max);
    while inbox.recv_many(&mut waiting, max).await > 0 {
        let batch: Vec<Pending<T, A>> = waiting
            .drain(..)
            .filter(|pending| !(skip_abandoned && pending.reply.is_closed()))
            .collect();
        if !batch.is_empty() {
            run(batch).await;
        }
    }
}

/// What the enqueues' task runs the batches with.
pub(super) struct Engine {
    /// Connections whose commits wait for the WAL flush.
    pub(super) pool: Pool,
    /// The single-row `INSERT` (a batch of one).
    pub(super) insert_one: String,
    /// The multi-row `INSERT` over arrays.
    pub(super) insert_many: String,
    pub(super) take_over: String,
    /// The retention past which a done delivery is stored again (`i64::MAX`: never).
    pub(super) retention_ms: i64,
    pub(super) timeout: Duration,
}

/// The enqueues' task: [`serve`] with `engine`.
pub(super) async fn serve_enqueues(inbox: Inbox<EnqueueRow, Enqueued>, engine: Engine) {
    let engine = &engine;
    serve(inbox, MAX_BATCH, true, |batch| engine.run(batch)).await;
}

/// A copy of `err` for another member of its batch (the kind and message are what matter).
fn copy(err: &StoreError) -> StoreError {
    StoreError::new(err.kind(), err.to_string())
}

impl Engine {
    async fn run(&self, batch: Vec<Pending<EnqueueRow, Enqueued>>) {
        // Each id once, at its first occurrence; the later ones wait for its answer.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
        let mut unique = Vec::with_capacity(batch.len());
        let mut repeats = Vec::new();
        for (index, pending) in batch.iter().enumerate() {
            match first.get(pending.item.webhook_id.as_str()) {
                Some(&of) => repeats.push((index, of)),
                None => {
                    first.insert(pending.item.webhook_id.as_str(), index);
                    unique.push(index);
                }
            }
        }
        // In id order: two instances' batches then take the ids' locks in the same order.
        unique.sort_by(|&a, &b| batch[a].item.webhook_id.cmp(&batch[b].item.webhook_id));
        let rows: Vec<&EnqueueRow> = unique.iter().map(|&index| &batch[index].item).collect();
        let answers = self.store(&rows).await;
        let mut by_index: Vec<Option<Answer>> = (0..batch.len()).map(|_| None).collect();
        for (&index, answer) in unique.iter().zip(answers) {
            by_index[index] = Some(answer);
        }
        for (index, of) in repeats {
            by_index[index] = Some(match &by_index[of] {
                Some(Ok(_)) => Ok(Enqueued::Duplicate),
                Some(Err(err)) => Err(copy(err)),
                None => Err(stopped("enqueue")),
            });
        }
        for (pending, answer) in batch.into_iter().zip(by_index) {
            let _ = pending
                .reply
                .send(answer.unwrap_or_else(|| Err(stopped("enqueue"))));
        }
    }

    /// The answers for `rows` (distinct ids), in their order.
    async fn store(&self, rows: &[&EnqueueRow]) -> Vec<Answer> {
        let client = match self.client().await {
            Ok(client) => client,
            Err(err) => return rows.iter().map(|_| Err(copy(&err))).collect(),
        };
        let stored = match self.insert(&client, rows).await {
            Ok(stored) => stored,
            // The statement refused a value: each on its own, so that only that one fails.
            Err(err) if rows.len() > 1 && err.kind() == StoreErrorKind::Other => {
                let mut answers = Vec::with_capacity(rows.len());
                for row in rows {
                    answers.push(match self.insert(&client, &[*row]).await {
                        Ok(stored) if stored[0] => Ok(Enqueued::New),
                        Ok(_) => self.take_over(&client, row).await,
                        Err(err) => Err(err),
                    });
                }
                return answers;
            }
            Err(err) => return rows.iter().map(|_| Err(copy(&err))).collect(),
        };
        let mut answers = Vec::with_capacity(rows.len());
        for (row, stored) in rows.iter().zip(stored) {
            answers.push(if stored {
                Ok(Enqueued::New)
            } else {
                self.take_over(&client, row).await
            });
        }
        answers
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        client(&self.pool, "enqueue", self.timeout).await
    }

    /// One statement for `rows`: which of them it stored (the others' ids were known).
    async fn insert(
        &self,
        client: &deadpool_postgres::Client,
        rows: &[&EnqueueRow],
    ) -> Result<Vec<bool>, StoreError> {
        if let [row] = rows {
            let body: &[u8] = row.body.as_ref();
            let key = row.key.as_deref();
            let values: [&(dyn ToSql + Sync); 9] = [
                &row.webhook_id,
                &row.event_type,
                &row.group,
                &row.webhook_timestamp,
                &row.signature,
                &row.received_at_ms,
                &body,
                &key,
                &row.occurred_at_ms,
            ];
            let sql = &self.insert_one;
            let stored = self
                .bounded("enqueue", async {
                    let statement = client.prepare_cached(sql).await?;
                    client.query_opt(&statement, &values).await
                })
                .await?;
            return Ok(vec![stored.is_some()]);
        }
        let ids: Vec<&str> = rows.iter().map(|row| row.webhook_id.as_str()).collect();
        let types: Vec<&str> = rows.iter().map(|row| row.event_type.as_str()).collect();
        let groups: Vec<&str> = rows.iter().map(|row| row.group).collect();
        let timestamps: Vec<i64> = rows.iter().map(|row| row.webhook_timestamp).collect();
        let signatures: Vec<&str> = rows.iter().map(|row| row.signature.as_str()).collect();
        let received: Vec<i64> = rows.iter().map(|row| row.received_at_ms).collect();
        let bodies: Vec<&[u8]> = rows.iter().map(|row| row.body.as_ref()).collect();
        let keys: Vec<Option<&str>> = rows.iter().map(|row| row.key.as_deref()).collect();
        let occurred: Vec<Option<i64>> = rows.iter().map(|row| row.occurred_at_ms).collect();
        let values: [&(dyn ToSql + Sync); 9] = [
            &ids,
            &types,
            &groups,
            &timestamps,
            &signatures,
            &received,
            &bodies,
            &keys,
            &occurred,
        ];
        let sql = &self.insert_many;
        let returned = self
            .bounded("enqueue a batch", async {
                let statement = client.prepare_cached(sql).await?;
                client.query(&statement, &values).await
            })
            .await?;
        let mut stored = vec![false; rows.len()];
        let position: HashMap<&str, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        for row in &returned {
            let id: &str = row
                .try_get(0)
                .map_err(|err| pg_error("read an enqueued id", &err))?;
            if let Some(&index) = position.get(id) {
                stored[index] = true;
            }
        }
        Ok(stored)
    }

    /// A known id stored again if its delivery is dead, forgotten or done past the retention.
    async fn take_over(&self, client: &deadpool_postgres::Client, row: &EnqueueRow) -> Answer {
        let body: &[u8] = row.body.as_ref();
        let key = row.key.as_deref();
        let values: [&(dyn ToSql + Sync); 10] = [
            &row.webhook_id,
            &row.event_type,
            &row.group,
            &row.webhook_timestamp,
            &row.signature,
            &row.received_at_ms,
            &body,
            &key,
            &row.occurred_at_ms,
            &self.retention_ms,
        ];
        let sql = &self.take_over;
        let resent = self
            .bounded("enqueue", async {
                let statement = client.prepare_cached(sql).await?;
                client.query_opt(&statement, &values).await
            })
            .await?;
        Ok(if resent.is_some() {
            Enqueued::New
        } else {
            Enqueued::Duplicate
        })
    }

    async fn bounded<T>(
        &self,
        what: &'static str,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        bounded(what, self.timeout, work).await
    }
}

/// A connection from `pool`, the wait bounded by `timeout`.
async fn client(
    pool: &Pool,
    what: &'static str,
    timeout: Duration,
) -> Result<deadpool_postgres::Client, StoreError> {
    match tokio::time::timeout(timeout, pool.get()).await {
        Ok(result) => result.map_err(|err| pool_error(what, err)),
        Err(_) => Err(timed_out(what, timeout)),
    }
}

/// `work` bounded by `timeout`, its error read as a [`StoreError`].
async fn bounded<T>(
    what: &'static str,
    timeout: Duration,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.map_err(|err| pg_error(what, &err)),
        Err(_) => Err(timed_out(what, timeout)),
    }
}

/// How many times a completions' statement runs again after the server aborted it as one side
/// of a deadlock (nothing of it was written).
const DEADLOCK_RETRIES: usize = 2;

/// What the completions' task runs the batches with.
pub(super) struct CompletionEngine {
    /// Connections with `synchronous_commit = off`, as every settlement's.
    pub(super) pool: Pool,
    /// The single-row completion (a batch of one).
    pub(super) complete_one: String,
    /// The completion of the batch's rows, over arrays.
    pub(super) complete_many: String,
    pub(super) timeout: Duration,
}

/// The completions' task: [`serve`] with `engine`.
pub(super) async fn serve_completions(inbox: Inbox<Completion, bool>, engine: CompletionEngine) {
    let engine = &engine;
    serve(inbox, MAX_BATCH, true, |batch| engine.run(batch)).await;
}

impl CompletionEngine {
    async fn run(&self, batch: Vec<Pending<Completion, bool>>) {
        let mut rest = batch;
        while !rest.is_empty() {
            // Each id once per statement, at its first occurrence; a repeat goes in the next.
            let mut seen = std::collections::HashSet::with_capacity(rest.len());
            let (now, later): (Vec<_>, Vec<_>) = rest
                .into_iter()
                .partition(|pending| seen.insert(pending.item.webhook_id.clone()));
            let answers = self.settle(&now).await;
            for (pending, answer) in now.into_iter().zip(answers) {
                let _ = pending.reply.send(answer);
            }
            rest = later;
        }
    }

    /// Whether each of `batch`'s receipts (distinct ids) still held its job, in its order.
    async fn settle(&self, batch: &[Pending<Completion, bool>]) -> Vec<Result<bool, StoreError>> {
        let held = match client(&self.pool, "complete", self.timeout).await {
            Ok(client) => self.settle_on(&client, batch).await,
            Err(err) => Err(err),
        };
        match held {
            Ok(held) => held.into_iter().map(Ok).collect(),
            Err(err) => batch.iter().map(|_| Err(copy(&err))).collect(),
        }
    }

    async fn settle_on(
        &self,
        client: &deadpool_postgres::Client,
        batch: &[Pending<Completion, bool>],
    ) -> Result<Vec<bool>, StoreError> {
        let what = "complete";
        let mut deadlocks = 0;
        loop {
            let work = async {
                if let [one] = batch {
                    let statement = client.prepare_cached(&self.complete_one).await?;
                    let changed = client
                        .execute(&statement, &[&one.item.webhook_id, &one.item.receipt])
                        .await?;
                    return Ok(vec![changed == 1]);
                }
                let ids: Vec<&str> = batch.iter().map(|p| p.item.webhook_id.as_str()).collect();
                let receipts: Vec<&str> = batch.iter().map(|p| p.item.receipt.as_str()).collect();
                let statement = client.prepare_cached(&self.complete_many).await?;
                let rows = client.query(&statement, &[&ids, &receipts]).await?;
                let mut settled = std::collections::HashSet::with_capacity(rows.len());
                for row in &rows {
                    settled.insert(row.try_get::<_, String>(0)?);
                }
                Ok(batch
                    .iter()
                    .map(|p| settled.contains(&p.item.webhook_id))
                    .collect())
            };
            match tokio::time::timeout(self.timeout, work).await {
                Ok(Ok(held)) => return Ok(held),
                Ok(Err(err)) if deadlocks < DEADLOCK_RETRIES && is_deadlock(&err) => {
                    deadlocks += 1;
                }
                Ok(Err(err)) => return Err(pg_error(what, &err)),
                Err(_) => return Err(timed_out(what, self.timeout)),
            }
        }
    }
}

/// The server aborted the statement as one side of a deadlock.
fn is_deadlock(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
}

fn timed_out(what: &str, timeout: Duration) -> StoreError {
    StoreError::new(
        StoreErrorKind::Timeout,
        format!("PostgreSQL {what} took longer than {timeout:?}"),
    )
}
