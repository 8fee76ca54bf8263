#!/usr/bin/env bash
# User-space instructions per delivery in each bench server (examples/bench_<framework>.rs), by
# mode, counted by callgrind: repeatable to a few instructions whatever else the machine does,
# where the wall-clock runs of benches/http.sh drift by 10%. Kernel time is not counted.
#
#   benches/instructions.sh [COUNT] [FRAMEWORKS...]     e.g. benches/instructions.sh 3000 axum
#
# Under valgrind, sha2 sees no SHA extensions and runs its portable code, so the count of
# `sha2::sha256::soft::*` is reported apart: on hardware with SHA-NI it is a few hundred
# instructions, not the ~17,000 shown. Needs valgrind (Debian package valgrind).
#
# The servers run one tokio worker thread (TOKIO_WORKER_THREADS=1): with two, the same binary
# gave counts up to 260 apart from run to run. CONCURRENCY (default 8) is the sender's: at 8,
# the order in which connections allocate still moves glibc's malloc between its thread cache
# and its slow path, by up to about 300 a delivery from one build to the next; CONCURRENCY=1
# repeats within about 50, the better setting to compare two builds. Other variables pass
# through, e.g. METRICS=prometheus for bench_axum. KEEP=DIR keeps each run's callgrind file as
# DIR/<framework>.<mode> (for `callgrind_annotate --inclusive=yes DIR/axum.layer`).
#
# MODES (default "bare floor layer") may also name floor-typed: `floor` with the layer's typed
# parse of the event in place of `floor`'s `serde_json::Value`, so that layer over floor-typed is
# what the layer adds over verifying and parsing alike (`floor` stays the issue's reference).
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-3000}
shift $(( $# > 0 ? 1 : 0 ))
frameworks=("$@")
[ $# -gt 0 ] || frameworks=(axum actix warp)
modes=(${MODES:-bare floor layer})

# shellcheck source=benches/common.sh
source benches/common.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
port=${PORT:-3950}

# Sums the self cost of every function in a callgrind part, and that of sha2's portable code.
totals() {
  awk '/^fn=/ {sha = ($0 ~ /sha2::sha256::soft/)} /^calls=/ {skip = 1; next}
       /^[0-9+*-]/ && NF >= 2 {if (skip) {skip = 0; next} all += $2; if (sha) soft += $2}
       END {printf "%d %d\n", all, soft}' "$1"
}

printf '%-7s %-11s %14s %16s %14s\n' framework mode instructions "of them sha soft" "without sha"
for fw in "${frameworks[@]}"; do
  for mode in "${modes[@]}"; do
    port=$((port + 1))
    out=$tmp/$fw.$mode
    MODE=$mode PORT=$port WORKERS=1 TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --compress-strings=no \
      --compress-pos=no --callgrind-out-file="$out" "$bin/examples/bench_$fw" >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    send() {
      "$cli" send --url "http://127.0.0.1:$port/webhooks/psapi" \
        --event producersync.updates_available --count "$1" --concurrency "${CONCURRENCY:-8}" >"$tmp/send" 2>&1 \
        || { echo "$fw $mode: deliveries failed: $(cat "$tmp/send")" >&2; exit 1; }
    }
    send 500                                # warm-up, then count only what follows
    callgrind_control -d "$server" >/dev/null 2>&1
    send "$count"
    callgrind_control -d "$server" >/dev/null 2>&1
    kill "$server"
    wait "$server" 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$out.2" "$KEEP/$fw.$mode"; fi
    read -r all soft <<<"$(totals "$out.2")"
    printf '%-7s %-11s %14d %16d %14d\n' "$fw" "$mode" $((all / count)) $((soft / count)) \
      $(((all - soft) / count))
  done
done
