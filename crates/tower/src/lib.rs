//! agentsync-webhooks-tower (work in progress).
#![forbid(unsafe_code)]
