//! agentsync-webhooks-warp (work in progress).
#![forbid(unsafe_code)]
