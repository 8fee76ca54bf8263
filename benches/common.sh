# Sourced by the HTTP benchmark scripts: builds the bench servers and the CLI in release mode and
# exports a fresh shared secret. Sets `bin` (the release directory) and `cli` (the CLI binary).
cargo build -q --release --all-features -p agentsync-webhooks \
  --example bench_axum --example bench_actix --example bench_warp
cargo build -q --release -p agentsync-webhooks-cli
bin=${CARGO_TARGET_DIR:-target}/release
cli=$bin/agentsync-webhooks
AGENTSYNC_WEBHOOK_SECRET=$("$cli" secret new)
export AGENTSYNC_WEBHOOK_SECRET
