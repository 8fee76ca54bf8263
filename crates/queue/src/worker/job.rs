//! One claimed job, from its handler's start to its settlement.

use std::{any::Any, future::Future, sync::Arc, time::Duration};

use agentsync_webhooks_core::route::{HandlerError, Routed};
use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore, watch},
    task::JoinError,
    time::{Instant, MissedTickBehavior, interval_at, sleep},
};
use tower_service::Service;
use tracing::Instrument;

use super::{
    Config, bounded, millis,
    service::{BoxError, JobRequest, handler_error},
};
use crate::{Backend, Claimed, Job, StoreError};

/// What every job task shares.
pub(super) struct Context {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) config: Config,
}

/// How a handler run ended.
enum Ran {
    Finished(Result<Routed, HandlerError>),
    /// Stopped by the end of the grace period.
    Interrupted,
}

/// The handler slots of one `Workers`: at most `concurrency` handlers run at once. A job holds
/// its [`Slot`] while its handler runs and gives it back before its settlement's round trip.
pub(super) struct Slots {
    free: Arc<Semaphore>,
    freed: Arc<Notify>,
}

/// One handler's slot, given back when dropped (its handler ended, or its task did).
pub(super) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Slots {
    pub(super) fn new(concurrency: usize) -> Self {
        Self {
            free: Arc::new(Semaphore::new(concurrency)),
            freed: Arc::new(Notify::new()),
        }
    }

    /// How many slots are free now.
    pub(super) fn free(&self) -> usize {
        self.free.available_permits()
    }

    /// Resolves when a slot is given back (at once if one was since the last call).
    pub(super) async fn freed(&self) {
        self.freed.notified().await;
    }

    /// A free slot for the next job (the claim asked for at most [`free`](Self::free) jobs, and
    /// only this loop takes slots). Should none be free, the job runs without one: the
    /// concurrency is then exceeded by one, which is better than a job claimed and not run.
    pub(super) fn take(&self) -> Slot {
        Slot {
            permit: Arc::clone(&self.free).try_acquire_owned().ok(),
            freed: Arc::clone(&self.freed),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The permit first, so that the loop woken by the notification sees the slot free.
        drop(self.permit.take());
        self.freed.notify_one();
    }
}

/// `at + delay`, or about a year after `at` when that does not fit (a configured `Duration::MAX`).
fn later(at: Instant, delay: Duration) -> Instant {
    at.checked_add(delay)
        .or_else(|| at.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(at)
}

/// Runs `job` through `service` (the router, in whatever middleware) and settles the job; never
/// fails (every failure is logged, and the lease brings the job back if nothing else does).
pub(super) async fn run<S>(
    ctx: Arc<Context>,
    mut service: S,
    claimed: Claimed,
    slot: Slot,
    mut aborted: watch::Receiver<bool>,
) where
    S: Service<JobRequest, Response = Routed> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let Claimed { job, order } = claimed;
    let max_attempts = ctx.config.max_attempts;
    let id = job.delivery.webhook_id.as_str();
    if job.attempt > max_attempts {
        let error = format!(
            "claimed for attempt {} of at most {max_attempts} without any earlier attempt \
             reporting back: its handler probably kills the worker",
            job.attempt
        );
        tracing::error!(
            webhook_id = id,
            event_type = %job.delivery.event_type,
            attempt = job.attempt,
            code = "attempts_exhausted",
            error = %error,
            "webhook moved to the dead letters without running"
        );
        super::metrics::attempt("dead");
        drop(slot);
        ctx.settle(&job, "bury", || ctx.backend.bury(&job, &error))
            .await;
        return;
    }

    let started = Instant::now();
    let mut lease_until = later(started, ctx.config.lease);
    // A task of its own, so that a panic is caught (as a JoinError) and a handler stuck past the
    // grace period can be aborted.
    // The call itself runs in the task too: a handler may panic before its first await, and a
    // service that is not ready yet (a rate limit) waits there, its lease extended meanwhile.
    let stale = order.as_ref().is_some_and(crate::ClaimedOrder::is_stale);
    let request = JobRequest::new(job.delivery.clone(), job.attempt)
        .with_order(order.as_ref().map(|o| o.key.clone()), stale);
    let span = tracing::info_span!(
        "webhook_job",
        webhook_id = %request.delivery.webhook_id,
        event_type = %request.delivery.event_type,
        attempt = request.attempt,
        ordering_key = tracing::field::Empty,
        delay_ms = tracing::field::Empty,
    );
    if let Some(order) = &order {
        span.record("ordering_key", order.key.as_str());
        span.record(
            "delay_ms",
            job.delivery
                .received_at_ms
                .saturating_sub(order.occurred_at_ms),
        );
    }
    let mut handler = tokio::spawn(
        async move {
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(handler_error)?;
            service.call(request).await.map_err(handler_error)
        }
        .instrument(span),
    );
    let every = ctx.config.extend_every();
    let mut extend = interval_at(later(started, every), every);
    extend.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let ran = loop {
        tokio::select! {
            biased;
            joined = &mut handler => break Ran::Finished(joined.unwrap_or_else(from_join_error)),
            () = wait_aborted(&mut aborted) => {
                handler.abort();
                // A handler that finished just before the abort keeps its result.
                break match (&mut handler).await {
                    Ok(result) => Ran::Finished(result),
                    Err(err) if err.is_cancelled() => Ran::Interrupted,
                    Err(err) => Ran::Finished(from_join_error(err)),
                };
            }
            _ = extend.tick() => {
                let asked = Instant::now();
                match bounded(
                    ctx.config.engine_timeout,
                    "extend",
                    ctx.backend.extend(&job, ctx.config.lease),
                )
                .await
                {
                    Ok(true) => lease_until = later(asked, ctx.config.lease),
                    Ok(false) => tracing::warn!(
                        webhook_id = id,
                        attempt = job.attempt,
                        "the job's lease was lost (it expired and another worker may run it); \
                         the handler keeps running but its outcome will not be recorded"
                    ),
                    Err(err) => tracing::warn!(
                        webhook_id = id,
                        attempt = job.attempt,
                        error = %err,
                        "could not extend the job's lease; retrying at the next tick"
                    ),
                }
            }
        }
    };
    // The handler is done: its slot goes to the next job while this one is settled.
    drop(slot);
    let elapsed_ms = millis(started.elapsed());

    let result = match ran {
        Ran::Interrupted => {
            tracing::warn!(
                webhook_id = id,
                attempt = job.attempt,
                elapsed_ms,
                "handler stopped at the end of the grace period; giving the job back"
            );
            ctx.release_unrun(&job).await;
            return;
        }
        Ran::Finished(result) => result,
    };
    match result {
        Ok(Routed::Stale) => {
            let order = order.as_ref();
            tracing::info!(
                webhook_id = id,
                event_type = %job.delivery.event_type,
                attempt = job.attempt,
                ordering_key = order.map(|o| o.key.as_str()),
                occurred_at_ms = order.map(|o| o.occurred_at_ms),
                newest_done_ms = order.and_then(|o| o.newest_done_ms),
                "stale webhook event not run: a newer event of its key was processed; recorded as stale"
            );
            agentsync_webhooks_core::adapter::metrics::stale(job.delivery.event_type.parse().ok());
            ctx.settle_until(&job, "complete", lease_until, || {
                ctx.backend.complete_stale(&job)
            })
            .await;
        }
        Ok(routed) => {
            tracing::info!(
                webhook_id = id,
                event_type = %job.delivery.event_type,
                attempt = job.attempt,
                routed = %routed,
                elapsed_ms,
                "webhook processed"
            );
            super::metrics::attempt("ok");
            ctx.settle_until(&job, "complete", lease_until, || ctx.backend.complete(&job))
                .await;
        }
        Err(err) if err.is_permanent() || job.attempt >= max_attempts => {
            let reason = if err.is_permanent() {
                "permanent error"
            } else {
                "attempts exhausted"
            };
            tracing::error!(
                webhook_id = id,
                event_type = %job.delivery.event_type,
                attempt = job.attempt,
                max_attempts,
                code = err.code(),
                error = %err,
                reason,
                elapsed_ms,
                "webhook handler failed; moved to the dead letters"
            );
            let error = format!("{}: {err}", err.code());
            super::metrics::attempt("dead");
            ctx.settle_until(&job, "bury", lease_until, || ctx.backend.bury(&job, &error))
                .await;
        }
        Err(err) => {
            let delay = err.retry_after().map_or_else(
                || ctx.config.backoff.delay(job.attempt),
                |hint| hint.min(ctx.config.backoff.cap()),
            );
            tracing::warn!(
                webhook_id = id,
                event_type = %job.delivery.event_type,
                attempt = job.attempt,
                max_attempts,
                code = err.code(),
                error = %err,
                retry_in_ms = millis(delay),
                elapsed_ms,
                "webhook handler failed; will retry"
            );
            let error = format!("{}: {err}", err.code());
            super::metrics::attempt("retry");
            ctx.settle_until(&job, "retry", lease_until, || {
                ctx.backend.retry(&job, delay, &error)
            })
            .await;
        }
    }
}

/// A handler task that did not return: a panic (retryable) or an abort.
fn from_join_error(err: JoinError) -> Result<Routed, HandlerError> {
    if err.is_panic() {
        Err(HandlerError::panicked(panic_message(err.into_panic())))
    } else {
        Err(HandlerError::retryable("the handler task was cancelled"))
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&'static str>().map_or_else(
            || "a non-text panic payload".to_owned(),
            |s| (*s).to_owned(),
        ),
    }
}

/// Resolves once the workers' grace period is over; never if the workers are gone.
async fn wait_aborted(aborted: &mut watch::Receiver<bool>) {
    loop {
        if *aborted.borrow_and_update() {
            return;
        }
        if aborted.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Context {
    /// Settles `job`, retrying failed engine calls for as long as the lease holds (after that
    /// another worker may have it, and the job runs again: at least once).
    pub(super) async fn settle_until<F, Fut>(
        &self,
        job: &Job,
        what: &'static str,
        lease_until: Instant,
        call: F,
    ) where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<bool, StoreError>> + Send,
    {
        let id = job.delivery.webhook_id.as_str();
        let mut wait = Duration::from_millis(50);
        loop {
            match bounded(self.config.engine_timeout, what, call()).await {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(
                        webhook_id = id,
                        attempt = job.attempt,
                        settle = what,
                        "the job's lease was lost before it could be settled: another worker \
                         may run it again"
                    );
                    return;
                }
                Err(err) if later(Instant::now(), wait) < lease_until => {
                    tracing::warn!(
                        webhook_id = id,
                        attempt = job.attempt,
                        settle = what,
                        error = %err,
                        retry_in_ms = millis(wait),
                        "could not settle the job; retrying"
                    );
                    sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(err) => {
                    tracing::error!(
                        webhook_id = id,
                        attempt = job.attempt,
                        settle = what,
                        error = %err,
                        "could not settle the job before its lease ends: it will run again"
                    );
                    return;
                }
            }
        }
    }

    /// [`settle_until`](Self::settle_until) a job that was just claimed.
    pub(super) async fn settle<F, Fut>(&self, job: &Job, what: &'static str, call: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<bool, StoreError>> + Send,
    {
        let lease_until = later(Instant::now(), self.config.lease);
        self.settle_until(job, what, lease_until, call).await;
    }

    /// Gives a job back without counting its attempt (shutdown).
    pub(super) async fn release_unrun(&self, job: &Job) {
        self.settle(job, "release", || self.backend.release(job))
            .await;
    }
}
