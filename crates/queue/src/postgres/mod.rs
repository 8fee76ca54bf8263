//! Work in progress: the postgres backend is being written.
#![allow(missing_docs)]

use std::time::{Duration, SystemTime};

use agentsync_webhooks_core::{
    handoff::{Enqueued, ReceivedDelivery},
    idempotency::{StoreError, StoreErrorKind},
};

use crate::backend::{Backend, DeadLetter, Job, QueueFuture, QueueStats};

#[derive(Debug)]
pub struct PostgresBackend;

fn todo() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "the postgres queue backend is not written yet",
    )
}

impl PostgresBackend {
    pub async fn connect(_url: &str) -> Result<Self, StoreError> {
        Err(todo())
    }
}

impl Backend for PostgresBackend {
    fn enqueue<'a>(&'a self, _: &'a ReceivedDelivery) -> QueueFuture<'a, Enqueued> {
        Box::pin(async { Err(todo()) })
    }
    fn claim(&self, _: usize, _: Duration) -> QueueFuture<'_, Vec<Job>> {
        Box::pin(async { Err(todo()) })
    }
    fn complete<'a>(&'a self, _: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(async { Err(todo()) })
    }
    fn retry<'a>(&'a self, _: &'a Job, _: SystemTime, _: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async { Err(todo()) })
    }
    fn extend<'a>(&'a self, _: &'a Job, _: Duration) -> QueueFuture<'a, bool> {
        Box::pin(async { Err(todo()) })
    }
    fn release<'a>(&'a self, _: &'a Job) -> QueueFuture<'a, bool> {
        Box::pin(async { Err(todo()) })
    }
    fn bury<'a>(&'a self, _: &'a Job, _: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async { Err(todo()) })
    }
    fn dead_letters(&self, _: usize) -> QueueFuture<'_, Vec<DeadLetter>> {
        Box::pin(async { Err(todo()) })
    }
    fn dead_letter<'a>(&'a self, _: &'a str) -> QueueFuture<'a, Option<DeadLetter>> {
        Box::pin(async { Err(todo()) })
    }
    fn replay<'a>(&'a self, _: &'a str) -> QueueFuture<'a, bool> {
        Box::pin(async { Err(todo()) })
    }
    fn stats(&self) -> QueueFuture<'_, QueueStats> {
        Box::pin(async { Err(todo()) })
    }
}
