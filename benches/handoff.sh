#!/usr/bin/env bash
# The durable handoff through a real server: examples/bench_axum.rs in `MODE=memory` (the layer
# with MemoryStore idempotency, the baseline) and `MODE=handoff` on SQLite (its default,
# synchronous = FULL), Redis and PostgreSQL, loaded over loopback by the CLI's load mode (every
# delivery a fresh webhook-id, signed afresh). Prints deliveries/s and p50/p99 time to 2xx per
# queue and concurrency, checks that every answer was 202 and every delivery is in the queue,
# then Redis's commands per delivery (INFO commandstats), `redis-benchmark` running the same
# enqueue script at the same concurrencies, and, unless WORKER_JOBS=0, the workers bench
# (crates/queue/benches/workers.rs: trivial-handler jobs processed per second).
#
#   benches/handoff.sh [COUNT] [ROUNDS]          e.g. benches/handoff.sh 5000 2
#
# Settings: CONCURRENCIES (default "1 8 32"), QUEUES (default "memory sqlite redis postgres"),
# REDIS_URL (default redis://127.0.0.1:6379; the queue uses database REDIS_DB, default 15, under
# the default prefix, emptied of that prefix before and after each run), POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/test; each run gets a schema of its own, dropped after),
# BENCH_COUNT for redis-benchmark (default 50000 per concurrency), WORKER_JOBS (default 10000).
# The queues `cluster1` and `cluster3` (not in the default list) are the Redis Cluster at
# REDIS_CLUSTER_URL (default the .ci/redis-cluster.sh one) in 1 and 3 partitions, each run under
# a key prefix of its own (`?prefix=`), its keys deleted on every primary after; the workers
# bench then runs `redis-cluster-p1` and `redis-cluster-p3` too.
# NO_BUILD=1 runs the release binaries already built. Nothing is pinned to a CPU: the engines need one too. No workers run in the server.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-5000}
rounds=${2:-1}
concurrencies=(${CONCURRENCIES:-1 8 32})
queues=(${QUEUES:-memory sqlite redis postgres})
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
redis_db=${REDIS_DB:-15}
postgres_url=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
port=${PORT:-4100}
cluster_url=${REDIS_CLUSTER_URL:-redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103}
cluster_seed=${cluster_url#*://}; cluster_seed=${cluster_seed%%,*}; cluster_seed=${cluster_seed%%\?*}
cluster_primaries() { # host:port of every primary
  redis-cli -h "${cluster_seed%:*}" -p "${cluster_seed##*:}" cluster nodes |
    awk '/master/ && !/fail/ {split($2, a, "@"); print a[1]}'
}
cluster_forget() { # deletes the keys under $1 on every primary
  local node
  for node in $(cluster_primaries); do
    # One UNLINK per key, pipelined (a multi-key UNLINK would need every key in one slot).
    redis-cli -h "${node%:*}" -p "${node##*:}" --scan --pattern "$1*" | sed 's/^/UNLINK /' |
      redis-cli -h "${node%:*}" -p "${node##*:}" >/dev/null
  done
}
cluster_stored() { # the entries of every partition's stream under $1
  local node total=0 key
  for node in $(cluster_primaries); do
    for key in $(redis-cli -h "${node%:*}" -p "${node##*:}" --scan --pattern "$1*:stream"); do
      total=$((total + $(redis-cli -h "${node%:*}" -p "${node##*:}" xlen "$key")))
    done
  done
  echo "$total"
}

if [ -z "${NO_BUILD:-}" ]; then # NO_BUILD=1: the release binaries as they are
  cargo build -q --release --all-features -p agentsync-webhooks --example bench_axum
  cargo build -q --release -p agentsync-webhooks-cli
fi
bin=${CARGO_TARGET_DIR:-target}/release
cli=$bin/agentsync-webhooks
AGENTSYNC_WEBHOOK_SECRET=$("$cli" secret new)
export AGENTSYNC_WEBHOOK_SECRET

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rcli=(redis-cli -u "$redis_url/$redis_db")
prefix=agentsync-webhooks:queue: # RedisOptions' default, which Queue::from_url uses
redis_forget() { # deletes this bench's keys from the bench database
  "${rcli[@]}" --scan --pattern "$1*" | xargs -r -n 500 "${rcli[@]}" unlink >/dev/null
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
redis_pid=$("${rcli[@]}" info server | tr -d '\r' | sed -n 's/^process_id://p')
redis_ticks() { if [ -r "/proc/$redis_pid/stat" ]; then cpu_ticks "$redis_pid"; else echo 0; fi; }
per() { awk -v t="$1" -v hz="$hz" -v n="$2" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}'; } # ticks count -> µs each

# `INFO commandstats` as "command calls" lines.
commandstats() {
  "${rcli[@]}" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' | sort
}

# The queue URL for one run of `queue`, made fresh.
queue_url() {
  case $1 in
    sqlite) echo "sqlite://$tmp/queue-$2.sqlite3" ;;
    redis) redis_forget "$prefix"; echo "$redis_url/$redis_db" ;;
    cluster1 | cluster3)
      echo "${cluster_url%%\?*}?prefix=hbench%3A$$%3A$2%3A&partitions=${1#cluster}" ;;
    postgres)
      psql -q "$postgres_url" -c "CREATE SCHEMA hbench_$$_$2"
      echo "$postgres_url?options=-c%20search_path%3Dhbench_$$_$2" ;;
    *) echo "" ;;
  esac
}

# How many deliveries the run left in the queue, then the queue removed.
stored_and_drop() {
  case $1 in
    sqlite) sqlite3 "$tmp/queue-$2.sqlite3" 'SELECT count(*) FROM jobs'; rm -f "$tmp/queue-$2".sqlite3* ;;
    redis) "${rcli[@]}" xlen "${prefix}stream"; redis_forget "$prefix" ;;
    cluster1 | cluster3) cluster_stored "hbench:$$:$2:"; cluster_forget "hbench:$$:$2:" ;;
    postgres)
      psql -qtA "$postgres_url" -c "SELECT count(*) FROM hbench_$$_$2.agentsync_webhook_jobs"
      psql -q "$postgres_url" -c "SET client_min_messages = warning" -c "DROP SCHEMA hbench_$$_$2 CASCADE" ;;
    *) echo "$count" ;;
  esac
}

run() { # queue concurrency run-number port -> "deliveries/s p50 p99 server-µs redis-µs"
  local queue=$1 concurrency=$2 n=$3 port=$4 mode=handoff url server out rps p50 p99 statuses stored
  local ticks redis_before redis_after
  [ "$queue" = memory ] && mode=memory
  url=$(queue_url "$queue" "$n")
  MODE=$mode PORT=$port AGENTSYNC_QUEUE_URL=$url "$bin/examples/bench_axum" >"$tmp/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  [ "$queue" = redis ] && [ "$concurrency" = "${concurrencies[-1]}" ] && commandstats >"$tmp/before"
  redis_before=$(redis_ticks)
  out=$("$cli" send --url "http://127.0.0.1:$port/webhooks/psapi" \
    --event producersync.updates_available --count "$count" --concurrency "$concurrency" 2>/dev/null) ||
    { echo "$queue c=$concurrency: $out" >&2; cat "$tmp/server.log" >&2; exit 1; }
  redis_after=$(redis_ticks)
  [ "$queue" = redis ] && [ "$concurrency" = "${concurrencies[-1]}" ] && commandstats >"$tmp/after"
  ticks=$(cpu_ticks "$server")
  kill "$server" 2>/dev/null || { echo "the $mode server stopped early" >&2; cat "$tmp/server.log" >&2; exit 1; }
  wait "$server" 2>/dev/null || true
  rps=$(sed -n 's/.*: \([0-9.]*\) requests\/s.*/\1/p' <<<"$out")
  p50=$(sed -n 's/.*p50 \([0-9.]*\) ms.*/\1/p' <<<"$out")
  p99=$(sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p' <<<"$out")
  statuses=$(sed -n 's/^statuses *//p' <<<"$out")
  stored=$(stored_and_drop "$queue" "$n")
  # A run that refused deliveries or lost one would look fast.
  if [ "$statuses" != "202 Accepted: $count" ] || [ "$stored" != "$count" ]; then
    echo "$queue c=$concurrency: statuses '$statuses', $stored of $count stored" >&2; exit 1
  fi
  echo "$rps ${p50:-?} ${p99:-?} $(per "$ticks" "$count") $(per $((redis_after - redis_before)) "$count")"
}

echo "$(date -u '+%F %T UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
sync_ms=$(dd if=/dev/zero of="$tmp/sync" bs=4k count=200 oflag=dsync 2>&1 |
  sed -n 's/.* copied, \([0-9.]*\) s.*/\1/p' | awk '{printf "%.2f", $1 * 1000 / 200}')
echo "one synced 4 KiB write (dd oflag=dsync) in $tmp's file system: $sync_ms ms"
echo "$count deliveries per run, CLI load mode, each a fresh webhook-id; times to 2xx in ms;"
echo "CPU time per delivery (µs) of the bench server and of redis-server (any client's work counts)"
printf '%-9s %5s %11s %13s %8s %8s %10s %10s\n' queue round concurrency deliveries/s p50 p99 server-µs redis-µs
n=0
for round in $(seq "$rounds"); do
  for concurrency in "${concurrencies[@]}"; do
    for queue in "${queues[@]}"; do
      n=$((n + 1))
      result=$(run "$queue" "$concurrency" "$n" $((port + n))) # a fresh port per run
      read -r rps p50 p99 cpu redis_cpu <<<"$result"
      printf '%-9s %5s %11s %13s %8s %8s %10s %10s\n' "$queue" "$round" "$concurrency" "$rps" "$p50" "$p99" "$cpu" "$redis_cpu"
    done
  done
  if [ -s "$tmp/before" ] && [ -s "$tmp/after" ]; then
    echo "redis, concurrency ${concurrencies[-1]}, round $round: commands Redis counted per delivery (INFO commandstats; the probe's redis-cli adds one SELECT and one INFO):"
    join -a2 -e0 -o 0,1.2,2.2 "$tmp/before" "$tmp/after" |
      awk -v n="$count" '$3 > $2 {printf "  %-14s %.3f (%d)\n", $1, ($3 - $2) / n, $3 - $2}'
    rm -f "$tmp/before" "$tmp/after"
  fi
done

if [[ " ${queues[*]} " == *" redis "* ]]; then
  # The backend's enqueue script, as in crates/queue/src/redis/mod.rs, with the arguments of a
  # delivery the server stored (webhook-id and id mark made random per call).
  script=$(awk '/^static ENQUEUE/ {on = 1; next} on && /^        r"$/ {body = 1; next}
               body && /^",$/ {exit} body {print}' crates/queue/src/redis/mod.rs)
  sha=$("${rcli[@]}" script load $'\n'"$script"$'\n')
  url=$(queue_url redis probe)
  port=$((port + n + 1))
  MODE=handoff PORT=$port AGENTSYNC_QUEUE_URL=$url "$bin/examples/bench_axum" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  "$cli" send --url "http://127.0.0.1:$port/webhooks/psapi" --event producersync.updates_available \
    --count 1 >/dev/null 2>&1
  kill "$server"; wait "$server" 2>/dev/null || true
  mapfile -t fields < <("${rcli[@]}" --raw xrange "${prefix}stream" - + count 1 | tail -n +2)
  redis_forget "$prefix"
  declare -A field=()
  for ((i = 0; i + 1 < ${#fields[@]}; i += 2)); do field[${fields[i]}]=${fields[i + 1]}; done
  echo "redis-benchmark, EVALSHA $sha (the enqueue script: SET NX EX + XADD), ${BENCH_COUNT:-50000} calls, ${#field[body]}-byte body:"
  for concurrency in "${concurrencies[@]}"; do
    redis_before=$(redis_ticks)
    rps=$(redis-benchmark -u "$redis_url" --dbnum "$redis_db" -c "$concurrency" -n "${BENCH_COUNT:-50000}" \
      -r 100000000 -q evalsha "$sha" 2 "hbench:$$:id:__rand_int__" "hbench:$$:stream" 259200 \
      "msg___rand_int__" "${field[type]}" "${field[ts]}" "${field[sig]}" "${field[recv]}" "${field[body]}" |
      tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
    printf '  concurrency %-3s %10s calls/s, redis-server %s µs each\n' "$concurrency" "$rps" \
      "$(per $(($(redis_ticks) - redis_before)) "${BENCH_COUNT:-50000}")"
    redis_forget "hbench:$$:"
  done
fi

echo "load average now $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${WORKER_JOBS:-10000}" != 0 ]; then
  backends=()
  for queue in "${queues[@]}"; do
    case $queue in
      sqlite) backends+=(sqlite-full sqlite-normal) ;;
      redis | postgres) backends+=("$queue") ;;
      cluster1 | cluster3) backends+=("redis-cluster-p${queue#cluster}") ;;
    esac
  done
  BENCH_BACKENDS=$(IFS=,; echo "${backends[*]}") BENCH_JOBS=${WORKER_JOBS:-10000} REDIS_URL=$redis_url POSTGRES_URL=$postgres_url \
    REDIS_CLUSTER_URL=$cluster_url \
    cargo bench -q -p agentsync-webhooks-queue --all-features --bench workers
fi
