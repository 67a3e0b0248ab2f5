#!/usr/bin/env bash
# Skiff's HTTP benchmark: the hello component through the Skiff gateway vs the same component
# under `wasmtime serve` vs a plain hyper server, per-request and instance-reuse modes, with wrk on
# loopback; plus apply -> first 200 latency. See docs/benchmarks.md.
#
#   ./bench/run.sh                      # everything, defaults below
#   WRK_DURATION=5s ROUNDS=3 ./bench/run.sh
#
# Settings (environment):
#   WRK_THREADS (2) WRK_CONNS (32) WRK_DURATION (10s) WARMUP (3s)  wrk load per measured run
#   ROUNDS (2)           rounds of the alternating sequence of targets
#   APPLY_REPS (5)       apply -> first 200 repetitions (delete + re-apply between them)
#   PORT_BASE (17070)    ports used: +0 api, +1 data plane, +2 gateway, +3/+4 wasmtime, +5 hyper
#   KEEP (0)             keep the temporary directory (logs, state) instead of deleting it
#   SKIP_BUILD (0)       use the binaries already built
#   SKIFF                the skiff binary to measure (default: the release build; with
#                        SKIP_BUILD=1 compares two builds, see bench/compare.sh)
#   CARGO_TARGET_DIR     where skiff is built (default $HOME/.cache/skiff/target)
#   TOOLS_DIR            where wasmtime-cli is installed (default $HOME/.cache/skiff/tools)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-32}
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-2}
APPLY_REPS=${APPLY_REPS:-5}
PORT_BASE=${PORT_BASE:-17070}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}
TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/skiff/tools}
WASMTIME_SERIES=48

API=127.0.0.1:$((PORT_BASE + 0))
DATA_PLANE=127.0.0.1:$((PORT_BASE + 1))
GATEWAY=127.0.0.1:$((PORT_BASE + 2))
WT_PER_REQUEST=127.0.0.1:$((PORT_BASE + 3))
WT_REUSE=127.0.0.1:$((PORT_BASE + 4))
HYPER=127.0.0.1:$((PORT_BASE + 5))

SKIFF=${SKIFF:-$CARGO_TARGET_DIR/release/skiff}
WASMTIME=$TOOLS_DIR/bin/wasmtime
HYPER_DIR=$ROOT/bench/hyper-hello
HYPER_BIN=$HYPER_DIR/target/release/hyper-hello
HELLO_WASM=$ROOT/examples/hello-http/hello.wasm
DEMO=$ROOT/examples/hello-http/app.yaml

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
now_ns() { date +%s%N; }

# ---------------------------------------------------------------------------------------------
# Cleanup: every process this script starts is recorded here and ended on exit, in all cases.
PIDS=()
WORK=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        local deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ $KEEP == 1 || $status != 0 ]]; then
            log "logs and state kept in $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools: wrk, curl, wasmtime-cli 48.x, skiff (release), hyper-hello (release).
need_apt() { # need_apt COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2 (apt-get)"
    if [[ -z ${APT_UPDATED:-} ]]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need_apt wrk wrk
need_apt curl curl

wasmtime_ok() { [[ -x $WASMTIME ]] && "$WASMTIME" --version 2>/dev/null | grep -q "^wasmtime $WASMTIME_SERIES\."; }

WT_INSTALL_PID=""
mkdir -p "$TOOLS_DIR"
if ! wasmtime_ok; then
    # A long compile: started first, in the background, while skiff builds.
    log "installing wasmtime-cli $WASMTIME_SERIES.x into $TOOLS_DIR (background, log $TOOLS_DIR/install.log)"
    (
        unset CARGO_TARGET_DIR # cargo install's own temporary target dir
        exec nice -n 19 cargo install --locked wasmtime-cli --version "^$WASMTIME_SERIES" --root "$TOOLS_DIR"
    ) >"$TOOLS_DIR/install.log" 2>&1 &
    WT_INSTALL_PID=$!
    PIDS+=("$WT_INSTALL_PID")
fi

if [[ $SKIP_BUILD != 1 ]]; then
    log "building skiff (release) into $CARGO_TARGET_DIR"
    (cd "$ROOT" && nice -n 19 cargo build --release --locked -p skiff-cli)
    log "building hyper-hello (release)"
    (cd "$HYPER_DIR" && CARGO_TARGET_DIR="$HYPER_DIR/target" nice -n 19 cargo build --release --locked)
fi
[[ -x $SKIFF ]] || die "no skiff binary at $SKIFF (run without SKIP_BUILD=1)"
[[ -x $HYPER_BIN ]] || die "no hyper-hello binary at $HYPER_BIN (run without SKIP_BUILD=1)"

if [[ -n $WT_INSTALL_PID ]]; then
    log "waiting for the wasmtime-cli install to finish"
    wait "$WT_INSTALL_PID" || die "cargo install wasmtime-cli failed: see $TOOLS_DIR/install.log"
fi
wasmtime_ok || die "$WASMTIME is not wasmtime $WASMTIME_SERIES.x"

# ---------------------------------------------------------------------------------------------
# Helpers.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/skiff-bench.XXXXXX")
log "work dir $WORK"

port_free() { ! (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
for addr in "$API" "$DATA_PLANE" "$GATEWAY" "$WT_PER_REQUEST" "$WT_REUSE" "$HYPER"; do
    port_free "$addr" || die "$addr is already in use: stop what listens there or set PORT_BASE"
done

# status URL [curl args...]: the HTTP status code, 000 when nothing answered.
status() {
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true
}

# wait_status CODE TIMEOUT_S URL [curl args...]: poll until URL answers CODE.
wait_status() {
    local code=$1 timeout=$2 url=$3
    shift 3
    local deadline=$((SECONDS + timeout))
    while [[ $(status "$url" "$@") != "$code" ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.02
    done
}

start() { # start NAME COMMAND...: runs in the background, logs to $WORK/NAME.log
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PIDS+=($!)
}

skiffc() { "$SKIFF" --config "$WORK/state/client.yaml" "$@"; }

# ---------------------------------------------------------------------------------------------
# Skiff: a one-node cluster.
log "starting skiff up (api $API, gateway $GATEWAY, data plane $DATA_PLANE)"
start skiff "$SKIFF" up --plain-http --dir "$WORK/state" --api "$API" --gateway "$GATEWAY" --data-plane "$DATA_PLANE"
wait_status 200 60 "http://$API/readyz" || die "skiff did not become ready: see $WORK/skiff.log"

# apply -> first 200: from the start of `skiff apply` to the first 200 through the gateway.
# The first repetition also compiles the component (cold); later ones reuse the compiled cache.
APPLY_MS=()
for rep in $(seq 1 "$APPLY_REPS"); do
    t0=$(now_ns)
    skiffc apply -f "$DEMO" >>"$WORK/apply.log"
    deadline=$((SECONDS + 60))
    while [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$GATEWAY/") != 200 ]]; do
        ((SECONDS < deadline)) || die "no 200 through the gateway 60 s after apply: see $WORK/skiff.log"
    done
    t1=$(now_ns)
    APPLY_MS+=($(((t1 - t0) / 1000000)))
    log "apply -> first 200, repetition $rep: ${APPLY_MS[-1]} ms"
    if ((rep < APPLY_REPS)); then
        skiffc delete -f "$DEMO" >>"$WORK/apply.log"
        deadline=$((SECONDS + 60))
        # Gone when the route no longer answers 200 and no hello pod is left.
        while [[ $(status "http://$GATEWAY/") == 200 ]] || [[ -n $(skiffc get pods -l app=hello 2>/dev/null | awk 'NR > 1') ]]; do
            ((SECONDS < deadline)) || die "the demo was not gone 60 s after delete"
            sleep 0.05
        done
    fi
done
APPLY_COLD=${APPLY_MS[0]}
mapfile -t apply_warm_sorted < <(printf '%s\n' "${APPLY_MS[@]:1}" | sed '/^$/d' | sort -n)
if ((${#apply_warm_sorted[@]} > 0)); then
    APPLY_WARM_MEDIAN=${apply_warm_sorted[$((${#apply_warm_sorted[@]} / 2))]}
else
    APPLY_WARM_MEDIAN=n/a
fi

# The reuse-mode copy: its own Deployment/Service/HTTPRoute, reached with Host: reuse.local.
cp "$HELLO_WASM" "$WORK/hello.wasm"
cat >"$WORK/reuse.yaml" <<'EOF'
apiVersion: skiff.dev/v1
kind: Deployment
metadata:
  name: hello-reuse
  labels:
    app: hello-reuse
spec:
  replicas: 2
  selector:
    matchLabels:
      app: hello-reuse
  template:
    metadata:
      labels:
        app: hello-reuse
    spec:
      components:
        - name: web
          wasm:
            path: hello.wasm
            instanceReuse: true
          env:
            - name: GREETING
              value: hello
          resources:
            memory: 32Mi
            timeout: 5s
---
apiVersion: skiff.dev/v1
kind: Service
metadata:
  name: hello-reuse
spec:
  selector:
    app: hello-reuse
  ports:
    - name: http
      port: 80
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata:
  name: hello-reuse
spec:
  hostnames: [reuse.local]
  rules:
    - pathPrefix: /
      backends:
        - service: hello-reuse
      timeout: 10s
EOF
skiffc apply -f "$WORK/reuse.yaml" >>"$WORK/apply.log"
wait_status 200 60 "http://$GATEWAY/" -H 'Host: reuse.local' || die "the reuse deployment never answered 200"
# Instance reuse shows as a per-instance call count above 1.
for _ in 1 2 3 4 5 6; do curl -s -o /dev/null -H 'Host: reuse.local' "http://$GATEWAY/"; done
reuse_count=$(curl -s -H 'Host: reuse.local' "http://$GATEWAY/count" | tr -d '[:space:]')
[[ $reuse_count =~ ^[0-9]+$ ]] && ((reuse_count > 1)) ||
    die "Skiff reuse mode did not reuse (count '$reuse_count')"
fresh_count=$(curl -s "http://$GATEWAY/count" | tr -d '[:space:]')
[[ $fresh_count == 1 ]] || die "Skiff per-request mode answered count '$fresh_count', expected 1"

# ---------------------------------------------------------------------------------------------
# wasmtime serve, same component: a fresh instance per request (the default for a WASIp2
# component) and instance reuse (--max-instance-reuse-count; WASIp2 instances are called one
# request at a time, so reuse means a pool of instances each serving requests in turn).
log "starting wasmtime serve (per-request $WT_PER_REQUEST, reuse $WT_REUSE)"
start wasmtime-per-request "$WASMTIME" serve -Scli --addr "$WT_PER_REQUEST" "$HELLO_WASM"
start wasmtime-reuse "$WASMTIME" serve -Scli --addr "$WT_REUSE" --max-instance-reuse-count 1000000000 "$HELLO_WASM"
log "starting hyper-hello ($HYPER)"
start hyper "$HYPER_BIN" "$HYPER"
wait_status 200 60 "http://$WT_PER_REQUEST/" || die "wasmtime serve (per-request) did not answer: see $WORK/wasmtime-per-request.log"
wait_status 200 60 "http://$WT_REUSE/" || die "wasmtime serve (reuse) did not answer: see $WORK/wasmtime-reuse.log"
wait_status 200 60 "http://$HYPER/" || die "hyper-hello did not answer: see $WORK/hyper.log"
for _ in 1 2 3; do curl -s -o /dev/null "http://$WT_REUSE/"; done
wt_count=$(curl -s "http://$WT_REUSE/count" | tr -d '[:space:]')
[[ $wt_count =~ ^[0-9]+$ ]] && ((wt_count > 1)) ||
    die "wasmtime serve reuse mode did not reuse (count '$wt_count')"
[[ $(curl -s "http://$WT_PER_REQUEST/count" | tr -d '[:space:]') == 1 ]] || die "wasmtime serve per-request mode reused an instance"

# ---------------------------------------------------------------------------------------------
# Targets, in the alternating order of each round.
TARGETS=(skiff-per-request wasmtime-per-request skiff-reuse wasmtime-reuse hyper)
declare -A URL HDR LABEL
URL[skiff-per-request]=http://$GATEWAY/
URL[wasmtime-per-request]=http://$WT_PER_REQUEST/
URL[skiff-reuse]=http://$GATEWAY/
HDR[skiff-reuse]='Host: reuse.local'
URL[wasmtime-reuse]=http://$WT_REUSE/
URL[hyper]=http://$HYPER/
LABEL[skiff-per-request]="Skiff gateway, per-request"
LABEL[wasmtime-per-request]="wasmtime serve, per-request"
LABEL[skiff-reuse]="Skiff gateway, reuse"
LABEL[wasmtime-reuse]="wasmtime serve, reuse"
LABEL[hyper]="hyper hello (no wasm)"
for t in "${TARGETS[@]}"; do
    hdr=()
    [[ -n ${HDR[$t]:-} ]] && hdr=(-H "${HDR[$t]}")
    [[ $(status "${URL[$t]}" "${hdr[@]}") == 200 ]] || die "target $t does not answer 200"
done

# to_ms VALUE: wrk's 1.23us / 4.56ms / 1.20s to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

# run_wrk TARGET DURATION OUT: one wrk run; prints "rps p50_ms p99_ms errors".
run_wrk() {
    local t=$1 d=$2 out=$3
    local hdr=()
    [[ -n ${HDR[$t]:-} ]] && hdr=(-H "${HDR[$t]}")
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$d" --latency "${hdr[@]}" "${URL[$t]}" >"$out" 2>&1 || die "wrk failed on $t: $(cat "$out")"
    local rps p50 p99 non2xx sock
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sock=$(awk '/Socket errors:/ { s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$out")
    echo "$rps $p50 $p99 $((${non2xx:-0} + ${sock:-0}))"
}

log "warm-up: $WARMUP per target"
for t in "${TARGETS[@]}"; do run_wrk "$t" "$WARMUP" "$WORK/wrk-warmup-$t.txt" >/dev/null; done

declare -A RPS P50 P99 ERR
for round in $(seq 1 "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        log "round $round/$ROUNDS: $t (wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION)"
        res=$(run_wrk "$t" "$WRK_DURATION" "$WORK/wrk-$round-$t.txt")
        read -r rps p50 p99 err <<<"$res"
        RPS[$t]+="$rps "
        P50[$t]+="$p50 "
        P99[$t]+="$p99 "
        ERR[$t]=$((${ERR[$t]:-0} + err))
        log "  $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $err"
    done
done

mean() { awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.2f", s / NF }' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# ---------------------------------------------------------------------------------------------
# Report.
mkdir -p "$ROOT/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
REPORT=$ROOT/bench/results/$STAMP.md
{
    echo "# Skiff HTTP benchmark, $STAMP"
    echo
    echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr)"
    echo "- skiff: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' (with uncommitted changes in crates/)'); $("$WASMTIME" --version)"
    echo "- wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION --latency, $ROUNDS rounds alternating in the order of the table, $WARMUP warm-up per target; all on 127.0.0.1"
    echo "- figures: mean over rounds (req/s, and p50/p99 in ms); per-round req/s in the last column"
    echo
    echo "| target | req/s | p50 ms | p99 ms | errors | req/s per round |"
    echo "|---|---:|---:|---:|---:|---|"
    for t in "${TARGETS[@]}"; do
        echo "| ${LABEL[$t]} | $(mean "${RPS[$t]}") | $(mean "${P50[$t]}") | $(mean "${P99[$t]}") | ${ERR[$t]} | ${RPS[$t]% } |"
    done
    echo
    echo "| mode | Skiff / wasmtime serve (req/s) | p50 Skiff / wasmtime | p99 Skiff / wasmtime |"
    echo "|---|---:|---:|---:|"
    for mode in per-request reuse; do
        echo "| $mode | $(ratio "$(mean "${RPS[skiff-$mode]}")" "$(mean "${RPS[wasmtime-$mode]}")") | $(ratio "$(mean "${P50[skiff-$mode]}")" "$(mean "${P50[wasmtime-$mode]}")") | $(ratio "$(mean "${P99[skiff-$mode]}")" "$(mean "${P99[wasmtime-$mode]}")") |"
    done
    echo
    echo "apply -> first 200 through the gateway (\`skiff apply\` of examples/hello-http/app.yaml, 2 replicas):"
    echo "cold (first apply, component compiled) $APPLY_COLD ms; warm median of $((APPLY_REPS - 1)) (delete + re-apply) $APPLY_WARM_MEDIAN ms; all: ${APPLY_MS[*]} ms"
} >"$REPORT"
cat "$REPORT"
log "report written to $REPORT"
