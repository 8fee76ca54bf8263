//! Receive AgentSync webhooks in Rust: Standard Webhooks verification, typed events, and
//! adapters for tower, axum, actix-web and warp.
//!
//! This facade re-exports [`agentsync_webhooks_core`] and, behind cargo features, the adapter
//! crates, so one dependency line is enough.
#![forbid(unsafe_code)]

pub use agentsync_webhooks_core::*;
