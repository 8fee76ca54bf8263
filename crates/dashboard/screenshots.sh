#!/usr/bin/env bash
# Writes docs/dashboard-overview.png and docs/dashboard-delivery.png: the browser test's own
# screenshots (headless Debian Chromium through chromedriver), taken while it runs its scenarios.
# Needs: apt-get install -y chromium chromium-driver
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$root/docs"
cd "$root"
DASHBOARD_SCREENSHOTS="$root/docs" cargo test -p agentsync-webhooks-dashboard --test browser -- --nocapture
ls -l docs/dashboard-*.png
