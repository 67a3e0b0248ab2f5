#!/usr/bin/env bash
# Placement throughput: pods bound per second through Skiff's real scheduler pass and state machine
# (redb), on simulated clusters, against the published goal of 1,500 placements/s (Nomad's C2M).
#   ./bench/placement.sh                 # 1,000 and 10,000 nodes, 100,000 pods each
#   NODES="1000" PODS=20000 ./bench/placement.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}
NODES=${NODES:-"1000 10000"}
PODS=${PODS:-100000}
BATCH=${BATCH:-1000}
GOAL=1500
(cd "$ROOT" && cargo build --release -q -p skiff-controllers --example placement)
for n in $NODES; do
    line=$("$CARGO_TARGET_DIR/release/examples/placement" "$n" "$PODS" "$BATCH" | tail -1)
    rate=$(sed -E 's/.*commit \(([0-9]+)\/s\).*/\1/' <<<"$line")
    echo "$line"
    awk -v r="$rate" -v g="$GOAL" -v n="$n" 'BEGIN { printf "  %d nodes: %.2fx the goal of %d placements/s\n", n, r / g, g }'
done
