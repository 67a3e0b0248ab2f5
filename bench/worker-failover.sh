#!/usr/bin/env bash
# Worker failover and agent memory: how long after a worker dies do its pods serve elsewhere, and how
# much memory does an agent hold idle and with 100 pods. See docs/benchmarks.md.
#
#   ./bench/worker-failover.sh
#   RUNS=3 ./bench/worker-failover.sh
#
# One control node (127.0.0.1), two workers on 127.0.0.2 and 127.0.0.3, a gateway; the example app
# (2 replicas). Each run kills -9 the worker that holds the most replicas, and measures until every
# replica is Running and ready on the surviving worker AND the gateway answers 200 twenty times in a
# row; then the killed worker is started again on its state dir. Published defaults for comparison: Nomad
# ≈ 20 s (heartbeat grace), Kubernetes ≈ 5 min 50 s (40 s node-monitor grace + 5 min eviction).
#
# Settings (environment):
#   RUNS (10)            failover repetitions
#   PODS (100)           pods on one agent for the memory figure
#   PORT_BASE (19070)    +0 API, +1 peer, +2 gateway, +3/+4 data planes
#   KEEP (0)             keep the temporary directory
#   SKIP_BUILD (0)       use the skiff binary already built
#   CARGO_TARGET_DIR     where skiff is built (default $HOME/.cache/skiff/target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-10}
PODS=${PODS:-100}
PORT_BASE=${PORT_BASE:-19070}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}
SKIFF=$CARGO_TARGET_DIR/release/skiff
API=127.0.0.1:$PORT_BASE
GW=127.0.0.1:$((PORT_BASE + 2))

# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh" skiff-worker-bench

if [[ $SKIP_BUILD != 1 ]]; then
    log "building skiff (release)"
    (cd "$ROOT" && cargo build --release -q -p skiff-cli)
fi
[[ -x $SKIFF ]] || die "no skiff binary at $SKIFF"


"$SKIFF" server --plain-http --dir "$WORK/server" --api "$API" --peer-listen "127.0.0.1:$((PORT_BASE + 1))" >"$WORK/server.log" 2>&1 &
PID[server]=$!
wait_for "server" test -s "$WORK/server/admin.token"
TOKEN=$(cat "$WORK/server/admin.token")
sk() { "$SKIFF" --server "http://$API" --token "$TOKEN" "$@"; }
wait_for "server ready" curl -sf "http://$API/readyz"
JOIN=$(sk token create --ttl 4h --description worker-failover-bench 2>/dev/null)

agent_start() { # w1|w2
    local n=$1 host port
    if [[ $n == w1 ]]; then host=127.0.0.2 port=$((PORT_BASE + 3)); else host=127.0.0.3 port=$((PORT_BASE + 4)); fi
    "$SKIFF" agent --server "http://$API" --token "$JOIN" --name "$n" --dir "$WORK/$n" \
        --data-plane "$host:$port" >>"$WORK/$n.log" 2>&1 &
    PID[$n]=$!
}
ready_nodes() { sk get nodes | awk '$2 ~ /^Ready/ {print $1}' | sort | tr '\n' ' '; }
agent_start w1
agent_start w2
both_ready() { [[ "$(ready_nodes)" == "w1 w2 " ]]; }
wait_for "two ready workers" both_ready

sk apply -f "$ROOT/examples/hello-http/app.yaml" >/dev/null
running_on() { # node: how many ready replicas run there
    sk get pods -o json | python3 -c "
import json,sys
items=json.load(sys.stdin)
print(sum(1 for p in items if p['spec'].get('nodeName')=='$1' and p['status'].get('phase')=='Running' and p['status'].get('ready')))"
}
all_ok() { # twenty 200s in a row through the gateway
    local i
    for i in $(seq 20); do curl -sf -o /dev/null -m 1 "http://$GW/" || return 1; done
}
"$SKIFF" gateway --server "http://$API" --token "$JOIN" --dir "$WORK/gateway" --listen "$GW" >"$WORK/gateway.log" 2>&1 &
PID[gateway]=$!
two_running() { (($(running_on w1) + $(running_on w2) == 2)); }
wait_for "replicas running" two_running
wait_for "gateway answers" all_ok

FILE=$WORK/failover.txt
: >"$FILE"
for run in $(seq 1 "$RUNS"); do
    if (($(running_on w1) >= $(running_on w2))); then victim=w1 other=w2; else victim=w2 other=w1; fi
    kill -9 "${PID[$victim]}"
    wait "${PID[$victim]}" 2>/dev/null || true
    t0=$(now_ms)
    until (($(running_on "$other") == 2)) && all_ok; do
        (($(now_ms) - t0 < 120000)) || die "run $run: pods did not move within 120 s"
        sleep 0.1
    done
    ms=$(($(now_ms) - t0))
    echo "$ms" >>"$FILE"
    log "run $run: killed $victim, pods serving on $other after $ms ms"
    agent_start "$victim"
    wait_for "$victim ready again" both_ready
    # The next run kills the worker that now holds both replicas.
done
sort -n "$FILE" | awk '{a[NR]=$1} END {
    printf "worker killed -> pods serving elsewhere: %d runs, p50 %d ms, p99 %d ms, max %d ms\n",
        NR, a[int((NR-1)*0.5)+1], a[int((NR-1)*0.99)+1], a[NR] }' | tee "$WORK/results.txt"

# Memory: an idle agent, then the same agent with $PODS pods.
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
sk delete -f "$ROOT/examples/hello-http/app.yaml" >/dev/null
no_pods() { sk get pods -o json | python3 -c 'import json,sys; sys.exit(1 if json.load(sys.stdin) else 0)'; }
wait_for "no pods" no_pods
kill -9 "${PID[w2]}"
wait "${PID[w2]}" 2>/dev/null || true
kill -9 "${PID[w1]}"
wait "${PID[w1]}" 2>/dev/null || true
rm -rf "$WORK/w1"
sk delete node w1 >/dev/null # a fresh w1 joins again: free the name of the one just killed
agent_start w1
only_w1_ready() { [[ "$(ready_nodes)" == "w1 " ]]; }
wait_for "w1 ready and w2 gone" only_w1_ready
sleep 5 # let it settle before reading its idle memory (a benchmark, not a test)
idle=$(rss_kib "${PID[w1]}")
# 1 GiB of node capacity: give each pod 8Mi so that 100 fit (the example asks 32Mi).
sed -e "s/replicas: 2/replicas: $PODS/" -e "s/memory: 32Mi/memory: 8Mi/" -e "s|path: hello.wasm|path: $ROOT/examples/hello-http/hello.wasm|" \
    "$ROOT/examples/hello-http/app.yaml" >"$WORK/many.yaml"
sk apply -f "$WORK/many.yaml" >/dev/null
all_running() { (($(running_on w1) == PODS)); }
wait_for "$PODS pods running" all_running
loaded=$(rss_kib "${PID[w1]}")
printf 'agent resident memory: idle %d KiB (%.1f MiB), with %d pods %d KiB (%.1f MiB)\n' \
    "$idle" "$(echo "$idle/1024" | bc -l)" "$PODS" "$loaded" "$(echo "$loaded/1024" | bc -l)" | tee -a "$WORK/results.txt"
# Of which anonymous (heap, stacks, wasm instance memory) and file-backed (mapped compiled code,
# the redb store, the binary):
grep -E '^(RssAnon|RssFile|RssShmem)' "/proc/${PID[w1]}/status" | tr -s ' \t' ' ' | tee -a "$WORK/results.txt"
cat "$WORK/results.txt"
