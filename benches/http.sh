#!/usr/bin/env bash
# The HTTP benchmark: each framework's bench server (examples/bench_<framework>.rs) with and
# without verification, loaded over loopback by the CLI's load mode. Rounds alternate bare and
# verified runs so that drift on a shared machine hits both alike. With `taskset`, the server
# runs on CPU 0 and the load generator on CPU 1.
#
#   benches/http.sh [COUNT] [ROUNDS] [FRAMEWORKS...]      e.g. benches/http.sh 50000 3 axum warp
#   LOADGEN=wrk benches/http.sh 0 3                        wrk (Debian package) instead of the CLI
#
# The CLI signs every delivery afresh, like the real sender, but on two cores it saturates before
# the server does. `LOADGEN=wrk` replays one signed delivery (the bench servers keep no
# idempotency state) for DURATION seconds (default 5) from a generator light enough for the server
# to become the bottleneck, which is what "throughput" means.
#
# Prints requests/s, the server's CPU time per request (from /proc, so it does not depend on
# whether the load generator or the server saturates first) and p99 latency per run, then the
# medians per mode and the cost of verification (target: at most 5% of throughput).
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-50000}
rounds=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
frameworks=("${@:-axum}")
[ $# -gt 0 ] || frameworks=(axum actix warp)
concurrency=${CONCURRENCY:-32}
port=${PORT:-3900}

cargo build -q --release --all-features -p agentsync-webhooks \
  --example bench_axum --example bench_actix --example bench_warp
cargo build -q --release -p agentsync-webhooks-cli
bin=${CARGO_TARGET_DIR:-target}/release
cli=$bin/agentsync-webhooks
AGENTSYNC_WEBHOOK_SECRET=$("$cli" secret new)
export AGENTSYNC_WEBHOOK_SECRET

taskset=(); command -v taskset >/dev/null && taskset=(taskset -c)
pin() { if [ ${#taskset[@]} -gt 0 ]; then "${taskset[@]}" "$@"; else "${@:2}"; fi; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A wrk script that POSTs one freshly signed AgentSync delivery.
wrk_script() {
  local body headers
  body=$(printf '{"id":"whe_bench","type":"producersync.updates_available","timestamp":"2025-07-24T22:51:05.206Z","data":{"runDate":"2025-07-24"}}')
  headers=$(printf '%s' "$body" | "$cli" sign | grep '^webhook-')
  echo 'wrk.method = "POST"'
  printf 'wrk.body = [[%s]]\n' "$body"
  echo 'wrk.headers["content-type"] = "application/json"'
  while IFS=': ' read -r name value; do printf 'wrk.headers["%s"] = "%s"\n' "$name" "$value"; done <<<"$headers"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() { # framework mode port -> "requests/s server-CPU-µs-per-request p99"
  local fw=$1 mode=$2 port=$3 server out rps p99 ticks
  if [ ${#taskset[@]} -gt 0 ]; then
    MODE=$mode PORT=$port WORKERS=1 "${taskset[@]}" 0 "$bin/examples/bench_$fw" >/dev/null 2>&1 &
  else
    MODE=$mode PORT=$port WORKERS=1 "$bin/examples/bench_$fw" >/dev/null 2>&1 &
  fi
  server=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  local url="http://127.0.0.1:$port/webhooks/psapi" requests=$count
  if [ "${LOADGEN:-cli}" = wrk ]; then
    wrk_script "$url" > "$tmp/request.lua"
    out=$(pin 1 wrk -t1 -c"$concurrency" -d"${DURATION:-5}s" --latency -s "$tmp/request.lua" "$url")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {sub(/ms$/, " ms", $2); sub(/us$/, " µs", $2); print $2}' <<<"$out")
  else
    out=$(pin 1 "$cli" send --url "$url" --event producersync.updates_available \
      --count "$count" --concurrency "$concurrency" 2>/dev/null)
    rps=$(sed -n 's/.*: \([0-9.]*\) requests\/s.*/\1/p' <<<"$out")
    p99=$(sed -n 's/.*p99 \([0-9.]* [mµ]*s\).*/\1/p' <<<"$out")
  fi
  ticks=$(cpu_ticks "$server")
  kill "$server" 2>/dev/null || { echo "the $fw $mode server stopped early" >&2; exit 1; }
  wait "$server" 2>/dev/null || true
  echo "$rps $(awk -v t="$ticks" -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}') $p99"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf '%-9s %-5s %5s %10s %16s %9s\n' framework mode round requests/s "server µs/req" p99
for fw in "${frameworks[@]}"; do
  bare=() layer=() bare_cpu=() layer_cpu=()
  for round in $(seq "$rounds"); do
    for mode in bare layer; do
      port=$((port + 1)) # a fresh port per run: the last server's may still be closing
      read -r rps cpu p99 unit <<<"$(run "$fw" "$mode" "$port")"
      printf '%-9s %-5s %5s %10s %16s %9s\n' "$fw" "$mode" "$round" "$rps" "$cpu" "$p99 $unit"
      if [ "$mode" = bare ]; then bare+=("$rps"); bare_cpu+=("$cpu"); else layer+=("$rps"); layer_cpu+=("$cpu"); fi
    done
  done
  b=$(printf '%s\n' "${bare[@]}" | median)
  l=$(printf '%s\n' "${layer[@]}" | median)
  bc=$(printf '%s\n' "${bare_cpu[@]}" | median)
  lc=$(printf '%s\n' "${layer_cpu[@]}" | median)
  awk -v fw="$fw" -v b="$b" -v l="$l" -v bc="$bc" -v lc="$lc" 'BEGIN {
    printf "%s: median %.0f requests/s bare, %.0f verified (%+.1f%%); server CPU %.1f µs/request bare, %.1f verified (%+.1f%%)\n",
      fw, b, l, (l - b) * 100 / b, bc, lc, (lc - bc) * 100 / bc }'
done
