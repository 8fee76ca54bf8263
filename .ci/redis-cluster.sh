#!/usr/bin/env bash
# A 6-node Redis Cluster on loopback (3 primaries, 3 replicas) for the cluster tests:
#   .ci/redis-cluster.sh start [BASE]   nodes on 127.0.0.1:BASE+1 .. BASE+6 (BASE 7100 by default)
#   .ci/redis-cluster.sh stop [BASE]    stops them and deletes their data
#   .ci/redis-cluster.sh status [BASE]  exits 0 when the cluster answers with every slot served
# Each node keeps an append-only file (appendfsync everysec) and evicts nothing, under
# /tmp/agentsync-redis-cluster-BASE/PORT; cluster-node-timeout is 2 s so that a failover takes
# a few seconds. `start` does nothing when the cluster already answers.
set -euo pipefail

action="${1:-start}"
base="${2:-7100}"
dir="/tmp/agentsync-redis-cluster-$base"
ports=()
for i in 1 2 3 4 5 6; do ports+=("$((base + i))"); done

cluster_ok() {
  redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

case "$action" in
  start)
    if cluster_ok; then
      echo "the Redis Cluster on 127.0.0.1:${ports[0]}-${ports[5]} already answers"
      exit 0
    fi
    command -v redis-server >/dev/null || { echo "no redis-server to start a cluster" >&2; exit 1; }
    started="$(date +%s%N)"
    for port in "${ports[@]}"; do
      redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
    for port in "${ports[@]}"; do
      mkdir -p "$dir/$port"
      redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir/$port" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction \
        --logfile "$dir/$port/redis.log" --pidfile "$dir/$port/redis.pid"
    done
    for port in "${ports[@]}"; do
      for _ in $(seq 50); do
        redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
      done
    done
    nodes=()
    for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log"
    # Every node agrees the cluster is up, and every replica has finished its first sync (a
    # replica still syncing cannot take over from its primary).
    for _ in $(seq 200); do
      ready=0
      for port in "${ports[@]}"; do
        info="$(redis-cli -h 127.0.0.1 -p "$port" info replication 2>/dev/null)"
        state="$(redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null)"
        if grep -q '^cluster_state:ok' <<<"$state" &&
          { grep -q '^role:master' <<<"$info" || grep -q '^master_link_status:up' <<<"$info"; }; then
          ready=$((ready + 1))
        fi
      done
      replicas="$(redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster nodes | grep -c ' slave ' || true)"
      [ "$ready" -eq 6 ] && [ "$replicas" -eq 3 ] && break
      sleep 0.1
    done
    cluster_ok || { echo "the Redis Cluster did not come up (see $dir)" >&2; exit 1; }
    echo "Redis Cluster on 127.0.0.1:${ports[0]}-${ports[5]} started in $(( ($(date +%s%N) - started) / 1000000 )) ms"
    ;;
  stop)
    for port in "${ports[@]}"; do
      redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
    ;;
  status)
    cluster_ok
    ;;
  *)
    echo "usage: $0 start|stop|status [BASE]" >&2
    exit 2
    ;;
esac
