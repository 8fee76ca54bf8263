#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub use agentsync_webhooks_core::*;

#[cfg(feature = "tower")]
pub use agentsync_webhooks_tower as tower;

#[cfg(feature = "axum")]
pub use agentsync_webhooks_axum as axum;

#[cfg(feature = "actix")]
pub use agentsync_webhooks_actix as actix;

#[cfg(feature = "warp")]
pub use agentsync_webhooks_warp as warp;

#[cfg(feature = "redis")]
pub use agentsync_webhooks_redis as redis;

#[cfg(feature = "queue")]
pub use agentsync_webhooks_queue as queue;

#[cfg(feature = "dashboard")]
pub use agentsync_webhooks_dashboard as dashboard;
