#!/usr/bin/env bash
# Runs one benchmark against two skiff binaries, alternating them, so a change is measured
# before and after in the same session (same machine, same load). See docs/benchmarks.md.
#
#   ./bench/compare.sh BEFORE_BINARY AFTER_BINARY bench/run.sh [ROUNDS]
#   WRK_DURATION=5s ./bench/compare.sh /tmp/skiff-old target/release/skiff bench/control-plane.sh 2
#
# Each round runs the benchmark with BEFORE, then with AFTER (SKIP_BUILD=1, SKIFF=…); the
# benchmark's own output (with its figures) goes to stdout, labelled.
set -euo pipefail
[[ $# -ge 3 ]] || {
    echo "usage: $0 BEFORE_BINARY AFTER_BINARY BENCH_SCRIPT [ROUNDS]" >&2
    exit 2
}
before=$1 after=$2 bench=$3 rounds=${4:-1}
for b in "$before" "$after"; do
    [[ -x $b ]] || {
        echo "error: $b is not an executable skiff binary" >&2
        exit 1
    }
done
[[ -x $bench ]] || {
    echo "error: $bench is not a benchmark script (bench/*.sh)" >&2
    exit 1
}
for ((r = 1; r <= rounds; r++)); do
    for which in before after; do
        bin=$before
        [[ $which == after ]] && bin=$after
        echo "=== round $r: $which ($bin)"
        SKIP_BUILD=1 SKIFF=$bin "$bench"
    done
done
