//! agentsync-webhooks-actix (work in progress).
#![forbid(unsafe_code)]
