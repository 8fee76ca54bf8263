//! Durable handoff for AgentSync webhooks: the verified delivery is written to a queue before the
//! 2xx, and routed, typed handlers run later on workers, with retries, dead letters and replay.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod backend;

pub use crate::backend::{Backend, DeadLetter, Job, QueueFuture, QueueStats, Receipt};
pub use agentsync_webhooks_core::{
    handoff::{Enqueued, Handoff, ReceivedDelivery},
    idempotency::{StoreError, StoreErrorKind},
};
