//! The workers' handler as a tower [`Service`], so that tower middleware (a timeout, a rate
//! limit, a concurrency limit per dependency, tracing of its own) wraps every job.

use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use agentsync_webhooks_core::{
    handoff::ReceivedDelivery,
    route::{DispatchFuture, EventRouter, HandlerError, JobContext, Routed},
};
use tower_service::Service;

/// A boxed error, tower's convention for middleware errors.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// One claimed job, as the workers hand it to their service.
///
/// ```
/// use agentsync_webhooks_queue::{JobRequest, contract::sample_delivery};
///
/// let request = JobRequest::new(sample_delivery("msg_1"), 1);
/// assert_eq!((request.delivery.webhook_id.as_str(), request.attempt), ("msg_1", 1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobRequest {
    /// The delivery as the port stored it.
    pub delivery: ReceivedDelivery,
    /// 1 for the first run, counting every claim (see [`Job::attempt`](crate::Job::attempt)).
    pub attempt: u32,
    /// The ordering key stored with the delivery, if any.
    pub ordering_key: Option<String>,
    /// Older than the newest completed event of its key: the router does not run it unless
    /// its handler opted in, and answers [`Routed::Stale`]; a service of your own should do
    /// the same.
    pub stale: bool,
}

impl JobRequest {
    /// The request for `attempt` of `delivery`.
    pub fn new(delivery: ReceivedDelivery, attempt: u32) -> Self {
        Self {
            delivery,
            attempt,
            ordering_key: None,
            stale: false,
        }
    }

    /// The same request for a keyed job, stale or not.
    #[must_use]
    pub fn with_order(mut self, ordering_key: Option<String>, stale: bool) -> Self {
        self.ordering_key = ordering_key;
        self.stale = stale;
        self
    }
}

/// A [`HandlerError`] as a [`std::error::Error`]: what the [`EventRouter`] service fails with,
/// so that the error keeps its kind (permanent or retryable) and code through middleware that
/// boxes its inner service's errors. The workers unwrap it; any other error a service returns
/// (a timeout's, a shed load's) is a retryable failure.
///
/// ```
/// use agentsync_webhooks_core::route::HandlerError;
/// use agentsync_webhooks_queue::JobError;
///
/// let err = JobError::new(HandlerError::permanent("not our producer"));
/// assert_eq!(err.to_string(), "not our producer");
/// assert!(err.into_inner().is_permanent());
/// ```
pub struct JobError(HandlerError);

impl JobError {
    /// Wraps `error`.
    pub fn new(error: HandlerError) -> Self {
        Self(error)
    }

    /// The handler's error.
    pub fn handler_error(&self) -> &HandlerError {
        &self.0
    }

    /// The handler's error, unwrapped.
    pub fn into_inner(self) -> HandlerError {
        self.0
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JobError").field(&self.0).finish()
    }
}

impl StdError for JobError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.0.error())
    }
}

/// The router as the workers' default service: [`EventRouter::dispatch`] for each job.
impl Service<JobRequest> for EventRouter {
    type Response = Routed;
    type Error = JobError;
    type Future = JobFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: JobRequest) -> Self::Future {
        let mut job = JobContext::attempt(request.attempt);
        if let Some(key) = request.ordering_key {
            job = job.with_key(key, request.stale);
        }
        JobFuture(self.dispatch_with(&request.delivery, job))
    }
}

/// The future of the [`EventRouter`] service: its dispatch, with the error as a [`JobError`].
pub struct JobFuture(DispatchFuture);

impl Future for JobFuture {
    type Output = Result<Routed, JobError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map_err(JobError)
    }
}

impl fmt::Debug for JobFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobFuture")
    }
}

/// What a job's failure is, whatever service it came from: a [`JobError`] unwrapped, any other
/// error retryable.
pub(crate) fn handler_error(error: impl Into<BoxError>) -> HandlerError {
    match error.into().downcast::<JobError>() {
        Ok(job) => job.0,
        Err(other) => HandlerError::retryable(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_error_keeps_its_kind_through_a_box_and_others_are_retryable() {
        let boxed: BoxError = Box::new(JobError::new(HandlerError::permanent("no")));
        let unboxed = handler_error(boxed);
        assert!(unboxed.is_permanent());
        assert_eq!(unboxed.code(), "handler_permanent");

        let other = handler_error(std::io::Error::other("request timed out"));
        assert!(!other.is_permanent());
        assert_eq!(other.to_string(), "request timed out");
    }
}
