#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS, one after the other.
#
#   fuzz/run.sh SECONDS [TARGET...]      e.g. nice -n 19 fuzz/run.sh 600
#
# Exits non-zero if any target crashed (a panic, a failed assertion, an AddressSanitizer
# report), leaked, timed out on one input (-timeout) or went over the memory limit
# (-rss_limit_mb); the input is then in fuzz/artifacts/TARGET/. Each target starts from its
# committed seeds (fuzz/seeds/TARGET) and the corpus grown by earlier runs (fuzz/corpus/TARGET,
# not committed). Logs and final stats: fuzz/logs/TARGET.log.
#
# cargo-fuzz needs nightly features: with a stable toolchain this sets RUSTC_BOOTSTRAP=1.
set -euo pipefail

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-1}
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build
mkdir -p logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== $target: ${seconds}s"
    if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -detect_leaks=1 -print_final_stats=1 >"logs/$target.log" 2>&1; then
        failed+=("$target")
        echo "!! $target failed: see fuzz/logs/$target.log and fuzz/artifacts/$target/"
    fi
    # The last status line (executions, coverage, corpus) and the final stats.
    grep -E '^#[0-9]+' "logs/$target.log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "logs/$target.log" || true
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
echo "all ${#targets[@]} targets ran ${seconds}s without a crash, leak or timeout"
