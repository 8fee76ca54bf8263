//! agentsync-webhooks-redis (work in progress).
#![forbid(unsafe_code)]
