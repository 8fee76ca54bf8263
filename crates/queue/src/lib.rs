//! Durable handoff for AgentSync webhooks: the verified delivery is written to a queue before the
//! 2xx, and routed, typed handlers run later on workers, with retries, dead letters and replay.
//!
//! A [`Queue`] is the handle users hold; it writes through one [`Backend`], each an engine used
//! through its own primitives, each behind its cargo feature:
//!
//! | feature | engine | for |
//! |---|---|---|
//! | `sqlite` (default) | [`sqlite::SqliteBackend`]: one file, WAL, `synchronous = FULL` | one instance, no server |
//! | `redis` | [`redis::RedisBackend`]: a stream with a consumer group | several instances |
//! | `postgres` | [`postgres::PostgresBackend`]: one table, `FOR UPDATE SKIP LOCKED` | several instances |
//!
//! The `testing` feature adds [`contract`], the test suite every backend passes.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod backend;
mod queue;
pub mod record;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod url;
mod worker;

#[cfg(feature = "testing")]
pub mod contract;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use crate::backend::{
    Backend, ClaimToken, Claimed, ClaimedOrder, DEFAULT_KEY_RETENTION, DeadLetter, EventOrder,
    Health, Job, Purged, QueueFuture, QueueStats, Receipt, default_worker,
};
pub use crate::queue::Queue;
pub use crate::url::{QueueUrl, UrlSettings};
pub use crate::worker::{Backoff, JobError, JobFuture, JobRequest, Workers, metrics};
pub use agentsync_webhooks_core::{
    handoff::{Enqueued, Handoff, ReceivedDelivery},
    idempotency::{StoreError, StoreErrorKind},
};
