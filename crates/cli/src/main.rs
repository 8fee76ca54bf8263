//! agentsync-webhooks command-line tool (work in progress).
#![forbid(unsafe_code)]

fn main() {}
