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
# Modes (MODES, default "bare floor layer"): `bare` parses the JSON body without verifying;
# `floor` is bare plus one `Verifier::verify` call in the handler, the least any verifying
# receiver adds; `layer` is our layer / middleware / filter with its typed extractor.
#
# Prints requests/s, the server's CPU time per request (from /proc, so it does not depend on
# whether the load generator or the server saturates first) and p99 latency per run, then the
# medians per mode and their cost against bare (target: at most 5% of throughput).
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-50000}
rounds=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
frameworks=("${@:-axum}")
[ $# -gt 0 ] || frameworks=(axum actix warp)
concurrency=${CONCURRENCY:-32}
port=${PORT:-3900}

# shellcheck source=benches/common.sh
source benches/common.sh

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
    # A mode that refuses the delivery would look fast: every answer must be 2xx.
    if grep -q 'Non-2xx' <<<"$out"; then echo "$fw $mode: non-2xx answers: $out" >&2; kill "$server"; exit 1; fi
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
  echo "$rps $(awk -v t="$ticks" -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}') $p99"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

modes=(${MODES:-bare floor layer})
printf '%-9s %-5s %5s %10s %16s %9s\n' framework mode round requests/s "server µs/req" p99
for fw in "${frameworks[@]}"; do
  declare -A rps_of=() cpu_of=()
  for round in $(seq "$rounds"); do
    for mode in "${modes[@]}"; do
      port=$((port + 1)) # a fresh port per run: the last server's may still be closing
      read -r rps cpu p99 unit <<<"$(run "$fw" "$mode" "$port")"
      printf '%-9s %-5s %5s %10s %16s %9s\n' "$fw" "$mode" "$round" "$rps" "$cpu" "$p99 $unit"
      rps_of[$mode]+="$rps "
      cpu_of[$mode]+="$cpu "
    done
  done
  b=$(printf '%s\n' ${rps_of[bare]} | median)
  bc=$(printf '%s\n' ${cpu_of[bare]} | median)
  for mode in "${modes[@]}"; do
    [ "$mode" = bare ] && continue
    m=$(printf '%s\n' ${rps_of[$mode]} | median)
    mc=$(printf '%s\n' ${cpu_of[$mode]} | median)
    awk -v fw="$fw" -v mode="$mode" -v b="$b" -v m="$m" -v bc="$bc" -v mc="$mc" 'BEGIN {
      printf "%s %s: median %.0f requests/s bare, %.0f %s (%+.1f%%); server CPU %.2f µs/request bare, %.2f %s (%+.2f µs, %+.1f%%)\n",
        fw, mode, b, m, mode, (m - b) * 100 / b, bc, mc, mode, mc - bc, (mc - bc) * 100 / bc }'
  done
  unset rps_of cpu_of
done
