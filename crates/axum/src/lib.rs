//! agentsync-webhooks-axum (work in progress).
#![forbid(unsafe_code)]
