#!/usr/bin/env bash
# The anchors in the same run, one command: builds the bench server (examples/bench_axum) and the
# CLI in the workspace, then this crate (its own lockfile and target directory, outside the
# workspace), and runs it: this crate's queue against apalis 1.0 on SQLite, Redis and PostgreSQL,
# the disk's own sync rate, the SQLite deliveries through the server at c=1 and c=32,
# redis-benchmark on the enqueue script and pgbench on the enqueue INSERT, then a table of ratios.
#
#   benches/anchors/run.sh                 # ANCHORS_JOBS, ANCHORS_ENGINES, REDIS_URL, POSTGRES_URL
#
# Needs redis-server, redis-benchmark, PostgreSQL with pgbench, sqlite3 (Debian packages
# redis-server, redis-tools, postgresql, postgresql-contrib, sqlite3).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release --all-features -p agentsync-webhooks --example bench_axum
cargo build -q --release -p agentsync-webhooks-cli
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release")
cd benches/anchors
CARGO_TARGET_DIR=target cargo build -q --release  # its own target directory, whatever the caller set
ANCHORS_SERVER=$bin/examples/bench_axum ANCHORS_CLI=$bin/agentsync-webhooks \
  exec target/release/agentsync-webhooks-anchors
