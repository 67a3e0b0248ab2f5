#!/usr/bin/env bash
# Functions benchmark (see docs/benchmarks.md), all in one run on loopback:
#
#   in-worker   cold invocations on the agent's code path (`WasmRuntime::call_function`: a fresh
#               instance of the cached compiled component per call), p50/p90/p99, and the time
#               until a burst of 1,000 concurrent calls on one runtime is all answered
#   gateway     a function (world function, HTTP trigger, minScale 1) through `skiff up`'s
#               gateway, one request at a time (wrk -c1) and loaded (wrk -c32), against the
#               hello component under `wasmtime serve` (a fresh instance per request) with the
#               same wrk settings
#   events      events published through the API in batches until the function's subscriber
#               has taken them all (events/s end to end)
#
#   ./bench/functions.sh
#   CALLS=20000 EVENTS=20000 ./bench/functions.sh
#
# Settings (environment): CALLS (5000) sequential in-worker calls, BURST (1000), EVENTS (5000),
# BATCH (100) events per publish, WRK_DURATION (10s), PORT_BASE (17170: +0 API, +1 data plane,
# +2 gateway, +3 wasmtime serve), KEEP (0), SKIP_BUILD (0), CARGO_TARGET_DIR (default
# $HOME/.cache/skiff/target), TOOLS_DIR (where wasmtime-cli 48 is installed, default
# $HOME/.cache/skiff/tools).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CALLS=${CALLS:-5000}
BURST=${BURST:-1000}
EVENTS=${EVENTS:-5000}
BATCH=${BATCH:-100}
WRK_DURATION=${WRK_DURATION:-10s}
PORT_BASE=${PORT_BASE:-17170}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}
TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/skiff/tools}
WASMTIME=$TOOLS_DIR/bin/wasmtime
SKIFF=$CARGO_TARGET_DIR/release/skiff
COLD=$CARGO_TARGET_DIR/release/examples/cold_invoke
GUESTS=$ROOT/tests/guests
FUNCTION_WASM=$GUESTS/target/wasm32-wasip2/release/function.wasm
HELLO_WASM=$ROOT/examples/hello-http/hello.wasm
API=127.0.0.1:$PORT_BASE
DP=127.0.0.1:$((PORT_BASE + 1))
GW=127.0.0.1:$((PORT_BASE + 2))
WT=127.0.0.1:$((PORT_BASE + 3))

# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh" skiff-fn-bench

command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
wasmtime_ok() { [[ -x $WASMTIME ]] && "$WASMTIME" --version 2>/dev/null | grep -q '^wasmtime 48\.'; }
if ! wasmtime_ok; then
    log "installing wasmtime-cli 48.x into $TOOLS_DIR (log $TOOLS_DIR/install.log)"
    mkdir -p "$TOOLS_DIR"
    (unset CARGO_TARGET_DIR && cargo install --locked wasmtime-cli --version '^48' --root "$TOOLS_DIR") \
        >"$TOOLS_DIR/install.log" 2>&1 || die "cargo install wasmtime-cli failed: see $TOOLS_DIR/install.log"
fi
if [[ $SKIP_BUILD != 1 ]]; then
    log "building skiff and the cold_invoke example (release)"
    (cd "$ROOT" && cargo build --release --locked -p skiff-cli -p skiff-runtime-wasm --bins --examples)
    log "building the function guest"
    (cd "$GUESTS" && env -u CARGO_TARGET_DIR cargo build --release --target wasm32-wasip2 --quiet)
fi
for f in "$SKIFF" "$COLD" "$FUNCTION_WASM" "$HELLO_WASM"; do [[ -e $f ]] || die "missing $f (run without SKIP_BUILD=1)"; done

# --- in-worker ---------------------------------------------------------------------------------
log "in-worker: $CALLS sequential cold calls, then a burst of $BURST"
IN_WORKER=$("$COLD" "$FUNCTION_WASM" "$CALLS" "$BURST")
echo "$IN_WORKER" >"$WORK/in-worker.txt"
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2" | head -1; }
C_P50=$(field p50_us "$IN_WORKER")
C_P90=$(field p90_us "$IN_WORKER")
C_P99=$(field p99_us "$IN_WORKER")
C_MAX=$(field max_us "$IN_WORKER")
B_ALL=$(field all_done_ms "$IN_WORKER")
F_COST=$(field fuel_cost_p50 "$IN_WORKER")
F_COST99=$(field fuel_cost_p99 "$IN_WORKER")
log "  p50 ${C_P50} µs, p99 ${C_P99} µs; burst of $BURST done in ${B_ALL} ms"
log "  fuel metering (as on workers) vs none: p50 ${F_COST}x, p99 ${F_COST99}x"

# --- skiff up with a function, and wasmtime serve ----------------------------------------------
"$SKIFF" up --plain-http --dir "$WORK/state" --api "$API" --gateway "$GW" --data-plane "$DP" >"$WORK/skiff.log" 2>&1 &
PID[skiff]=$!
wait_for "skiff up" curl -sf "http://$API/readyz"
TOKEN=$(cat "$WORK/state/admin.token")
cat >"$WORK/fn.yaml" <<EOF
apiVersion: skiff.dev/v1
kind: Function
metadata: {name: bench}
spec:
  component: {wasm: {path: $FUNCTION_WASM, world: function}}
  minScale: 1
  concurrency: 1000
  maxScale: 1
  triggers:
    - http: {path: /bench}
    - event: {topic: bench}
EOF
"$SKIFF" apply -f "$WORK/fn.yaml" --server "http://$API" --token "$TOKEN" >/dev/null
wait_for "the function's pod" sh -c "curl -s -o /dev/null -w '%{http_code}' http://$GW/bench | grep -q 204"
"$WASMTIME" serve -Scli --addr "$WT" "$HELLO_WASM" >"$WORK/wasmtime.log" 2>&1 &
PID[wasmtime]=$!
wait_for "wasmtime serve" curl -sf "http://$WT/"

to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; printf "%.3f", n }'
}
wrk_run() { # URL CONNS -> "rps p50 p99 errors"
    local out=$WORK/wrk-$RANDOM.txt
    local threads=$(($2 < 2 ? $2 : 2))
    wrk -t"$threads" -c"$2" -d"$WRK_DURATION" --latency "$1" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    local non sock
    non=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sock=$(awk '/Socket errors:/ { s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$out")
    echo "$(awk '/^Requests\/sec:/ { print $2 }' "$out") $(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")") $(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")") $((${non:-0} + ${sock:-0}))"
}
declare -A R
for conns in 1 32; do
    for t in skiff wasmtime; do
        url="http://$GW/bench"
        [[ $t == wasmtime ]] && url="http://$WT/"
        wrk -t1 -c"$conns" -d2s "$url" >/dev/null 2>&1 || true
        log "gateway: $t, wrk -c$conns -d$WRK_DURATION"
        R[$t-$conns]=$(wrk_run "$url" "$conns")
        log "  ${R[$t-$conns]} (req/s p50_ms p99_ms errors)"
    done
done

# --- events end to end -------------------------------------------------------------------------
log "events: $EVENTS in batches of $BATCH"
t0=$(now_ms)
for ((b = 0; b < EVENTS / BATCH; b++)); do
    python3 - "$b" "$BATCH" >"$WORK/batch.json" <<'PY'
import json, sys
b, n = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps([{"id": f"e-{b}-{i}", "type": "echo", "data": {"n": i}} for i in range(n)]))
PY
    curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        --data-binary @"$WORK/batch.json" "http://$API/api/v1/namespaces/default/topics/bench/events" ||
        die "publish failed"
done
t1=$(now_ms)
delivered() {
    curl -sf -H "Authorization: Bearer $TOKEN" "http://$API/api/v1/namespaces/default/topics/bench" |
        python3 -c 'import json,sys; t=json.load(sys.stdin); print(sum(s["delivered"] for s in t["subscribers"]))'
}
until [[ $(delivered) -ge $EVENTS ]]; do
    (($(now_ms) - t0 < 600000)) || die "events not delivered in 10 min"
    sleep 0.05
done
t2=$(now_ms)
PUB_RATE=$(awk -v n="$EVENTS" -v ms=$((t1 - t0)) 'BEGIN { printf "%.0f", n * 1000 / ms }')
E2E_RATE=$(awk -v n="$EVENTS" -v ms=$((t2 - t0)) 'BEGIN { printf "%.0f", n * 1000 / ms }')
log "  published at $PUB_RATE events/s; all delivered after $((t2 - t0)) ms: $E2E_RATE events/s end to end"

# --- report ------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
read -r s1 s1p50 s1p99 s1e <<<"${R[skiff-1]}"
read -r w1 w1p50 w1p99 w1e <<<"${R[wasmtime-1]}"
read -r s32 s32p50 s32p99 s32e <<<"${R[skiff-32]}"
read -r w32 w32p50 w32p99 w32e <<<"${R[wasmtime-32]}"
cat <<EOF

## Functions ($(date -u +%Y-%m-%d), \`./bench/functions.sh\`, $(nproc) CPUs, skiff $(git -C "$ROOT" rev-parse --short HEAD), $("$WASMTIME" --version))

| in the worker (call_function, fresh instance, compiled code cached) | p50 | p90 | p99 | max |
|---|---:|---:|---:|---:|
| cold invocation, $CALLS sequential | ${C_P50} µs | ${C_P90} µs | ${C_P99} µs | ${C_MAX} µs |

| burst | all answered after |
|---|---:|
| $BURST concurrent calls on one runtime | ${B_ALL} ms |

| end to end (wrk -t1|2 -d$WRK_DURATION) | req/s | p50 ms | p99 ms | errors |
|---|---:|---:|---:|---:|
| Skiff gateway → function, -c1 | $s1 | $s1p50 | $s1p99 | $s1e |
| wasmtime serve (per-request), -c1 | $w1 | $w1p50 | $w1p99 | $w1e |
| Skiff gateway → function, -c32 | $s32 | $s32p50 | $s32p99 | $s32e |
| wasmtime serve (per-request), -c32 | $w32 | $w32p50 | $w32p99 | $w32e |
| ratio Skiff / wasmtime, -c1 / -c32 req/s | $(ratio "$s1" "$w1") | | | $(ratio "$s32" "$w32") |

| events (API → Raft → dispatcher → function) | events/s |
|---|---:|
| publish, batches of $BATCH | $PUB_RATE |
| published and delivered, $EVENTS events | $E2E_RATE |
EOF
