#!/usr/bin/env bash
# Skiff's control-plane benchmark: a 3-member Skiff control plane vs a 3-member etcd 3.4 (Debian's
# etcd-server) on loopback, in the same run. See docs/benchmarks.md.
#
#   ./bench/control-plane.sh
#   RUNS=5 WRK_DURATION=5s ./bench/control-plane.sh
#
# What is measured, alternating Skiff and etcd:
#   - write latency with 1 client (wrk -c1, keep-alive) and throughput with 64 clients (wrk -c64);
#     every request is a durable write acknowledged after a majority has it:
#       Skiff: POST /api/v1/apply {"objects":[Namespace bench-N with a label]}  (upsert of 1000 keys)
#       etcd:  POST /v3/kv/put {"key": bench-N, "value": …}  (its JSON gateway; 1000 keys)
#     both sent to the leader;
#   - leader failover: kill -9 the leader, then time until the first write succeeds through any
#     surviving member (polled every ~10 ms), restart the killed member, repeat RUNS times;
#     for Skiff and for etcd.
#
# Settings (environment):
#   WRK_DURATION (10s) WARMUP (3s)  wrk run length
#   ROUNDS (1)          rounds of the alternating write measurements
#   RUNS (20)           failover repetitions per system
#   PORT_BASE (18070)   Skiff uses +0..+2 (API) and +10..+12 (peer); etcd +20..+22 (client),
#                       +30..+32 (peer)
#   KEEP (0)            keep the temporary directory (logs, state)
#   SKIP_BUILD (0)      use the skiff binary already built
#   SKIFF               the skiff binary to measure (default: the release build)
#   CARGO_TARGET_DIR    where skiff is built (default $HOME/.cache/skiff/target)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-1}
RUNS=${RUNS:-20}
PORT_BASE=${PORT_BASE:-18070}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}
SKIFF=${SKIFF:-$CARGO_TARGET_DIR/release/skiff}

# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh" skiff-cp-bench

# --- set-up ------------------------------------------------------------------------------------
command -v wrk >/dev/null || {
    log "installing wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null || die "cannot install wrk"
}
if ! command -v etcd >/dev/null; then
    log "installing etcd-server (Debian, etcd 3.4)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server etcd-client >/dev/null ||
        die "cannot install etcd-server: run as root or install it by hand"
fi
if [[ $SKIP_BUILD != 1 ]]; then
    log "building skiff (release)"
    (cd "$ROOT" && cargo build --release -q -p skiff-cli)
fi
[[ -x $SKIFF ]] || die "no skiff binary at $SKIFF"

# --- Skiff: 3 members ----------------------------------------------------------------------------
s_api() { echo "127.0.0.1:$((PORT_BASE + $1))"; }
s_peer() { echo "127.0.0.1:$((PORT_BASE + 10 + $1))"; }
skiff_start() { # member index, first start?
    local i=$1 args=()
    if [[ $i != 0 && ! -f $WORK/s$i/cluster.json ]]; then
        args=(--join "$(s_peer 0)" --join-token "$(cat "$WORK/s0/join.token")")
    fi
    "$SKIFF" server --plain-http --dir "$WORK/s$i" --name "s$i" --api "$(s_api "$i")" --peer-listen "$(s_peer "$i")" \
        "${args[@]}" >>"$WORK/s$i.log" 2>&1 &
    PID[s$i]=$!
}
skiff_info() { curl -s -m 0.5 -H "Authorization: Bearer $TOKEN" "http://$(s_api "$1")/api/v1/cluster"; }
skiff_voters() { skiff_info 0 | grep -q '"voters":\[[0-9]*,[0-9]*,[0-9]*\]'; }
skiff_leader() { # prints the index of the member that leads
    local i
    for i in 0 1 2; do
        if skiff_info "$i" | python3 -c 'import json,sys; r=json.load(sys.stdin)["raft"]; sys.exit(0 if r["leader"]==r["id"] else 1)' 2>/dev/null; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

log "starting 3 Skiff control members"
skiff_start 0
wait_for "skiff s0" test -s "$WORK/s0/join.token"
TOKEN=$(cat "$WORK/s0/admin.token")
wait_for "skiff s0 leads" skiff_leader
skiff_start 1
skiff_start 2
wait_for "3 voters" skiff_voters

# --- etcd: 3 members -----------------------------------------------------------------------------
e_client() { echo "127.0.0.1:$((PORT_BASE + 20 + $1))"; }
e_peer() { echo "127.0.0.1:$((PORT_BASE + 30 + $1))"; }
INITIAL="e0=http://$(e_peer 0),e1=http://$(e_peer 1),e2=http://$(e_peer 2)"
etcd_start() {
    local i=$1 state=new
    [[ -d $WORK/e$i/member ]] && state=existing
    etcd --name "e$i" --data-dir "$WORK/e$i" \
        --listen-client-urls "http://$(e_client "$i")" --advertise-client-urls "http://$(e_client "$i")" \
        --listen-peer-urls "http://$(e_peer "$i")" --initial-advertise-peer-urls "http://$(e_peer "$i")" \
        --initial-cluster "$INITIAL" --initial-cluster-state "$state" --initial-cluster-token skiff-bench \
        >>"$WORK/e$i.log" 2>&1 &
    PID[e$i]=$!
}
etcd_leader() {
    local i
    for i in 0 1 2; do
        if ETCDCTL_API=3 etcdctl --endpoints "http://$(e_client "$i")" --command-timeout=500ms endpoint status -w json 2>/dev/null |
            python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; sys.exit(0 if s["leader"]==s["header"]["member_id"] else 1)'; then
            echo "$i"
            return 0
        fi
    done
    return 1
}
log "starting 3 etcd members ($(etcd --version | head -1))"
for i in 0 1 2; do etcd_start "$i"; done
wait_for "etcd leader" etcd_leader

# --- writes --------------------------------------------------------------------------------------
cat >"$WORK/skiff.lua" <<'EOF'
local n = 0
local id = tostring(math.random(1, 1000000))
request = function()
    n = n + 1
    local key = "bench-" .. (n % 1000)
    local body = '{"objects":[{"apiVersion":"skiff.dev/v1","kind":"Namespace","metadata":{"name":"' ..
        key .. '","labels":{"v":"' .. id .. "-" .. n .. '"}}}]}'
    return wrk.format("POST", "/api/v1/apply", nil, body)
end
EOF
cat >"$WORK/etcd.lua" <<'EOF'
local b = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
    return ((data:gsub('.', function(x)
        local r, byte = '', x:byte()
        for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and '1' or '0') end
        return r
    end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
        if #x < 6 then return '' end
        local c = 0
        for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
        return b:sub(c + 1, c + 1)
    end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
local n = 0
local id = tostring(math.random(1, 1000000))
request = function()
    n = n + 1
    local body = '{"key":"' .. b64("bench-" .. (n % 1000)) .. '","value":"' .. b64(id .. "-" .. n) .. '"}'
    return wrk.format("POST", "/v3/kv/put", nil, body)
end
EOF

RESULTS=$WORK/results.txt
: >"$RESULTS"
measure() { # label, url, lua, connections, threads
    local label=$1 url=$2 lua=$3 conns=$4 threads=$5 out auth=()
    # etcd would take a bearer token for its own (disabled) auth and refuse it.
    [[ $lua == *skiff.lua ]] && auth=(-H "Authorization: Bearer $TOKEN")
    # Flush what the previous measurement left in the page cache, so neither system pays for the
    # other's writeback.
    sync
    wrk -t"$threads" -c"$conns" -d"$WARMUP" -s "$lua" "${auth[@]}" \
        -H "Content-Type: application/json" "$url" >/dev/null
    out=$(wrk -t"$threads" -c"$conns" -d"$WRK_DURATION" --latency -s "$lua" \
        "${auth[@]}" -H "Content-Type: application/json" "$url")
    if grep -q "Non-2xx" <<<"$out"; then
        echo "$out" >&2
        die "$label: some writes failed"
    fi
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    printf '%-28s %10s req/s   p50 %8s   p99 %8s\n' "$label" "$rps" "$p50" "$p99" | tee -a "$RESULTS"
}

for round in $(seq 1 "$ROUNDS"); do
    sl=$(skiff_leader) || die "no skiff leader"
    el=$(etcd_leader) || die "no etcd leader"
    log "round $round: skiff leader s$sl, etcd leader e$el"
    measure "skiff  1 client" "http://$(s_api "$sl")" "$WORK/skiff.lua" 1 1
    measure "etcd   1 client" "http://$(e_client "$el")" "$WORK/etcd.lua" 1 1
    measure "skiff 64 clients" "http://$(s_api "$sl")" "$WORK/skiff.lua" 64 2
    measure "etcd  64 clients" "http://$(e_client "$el")" "$WORK/etcd.lua" 64 2
done

# --- failover ------------------------------------------------------------------------------------
skiff_write() { # member index
    curl -sf -m 0.3 -o /dev/null -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
        -d '{"objects":[{"apiVersion":"skiff.dev/v1","kind":"Namespace","metadata":{"name":"failover"}}]}' \
        "http://$(s_api "$1")/api/v1/apply"
}
etcd_write() {
    curl -sf -m 0.3 -o /dev/null -d '{"key":"ZmFpbG92ZXI=","value":"MQ=="}' "http://$(e_client "$1")/v3/kv/put"
}
percentiles() { # label, file of ms values
    sort -n "$2" | awk -v label="$1" '{a[NR]=$1} END {
        p50=a[int((NR-1)*0.50)+1]; p99=a[int((NR-1)*0.99)+1];
        printf "%-28s %3d runs   p50 %6d ms   p99 %6d ms   max %6d ms\n", label, NR, p50, p99, a[NR] }' |
        tee -a "$RESULTS"
}
failover() { # system (skiff|etcd)
    local sys=$1 file=$WORK/failover-$1.txt run leader t0 i done_ms
    : >"$file"
    for run in $(seq 1 "$RUNS"); do
        leader=$("${sys}_leader") || die "no $sys leader"
        wait_for "$sys writes before run $run" "${sys}_write" "$(((leader + 1) % 3))"
        kill -9 "${PID[${sys:0:1}$leader]}"
        wait "${PID[${sys:0:1}$leader]}" 2>/dev/null || true
        t0=$(now_ms)
        done_ms=""
        while [[ -z $done_ms ]]; do
            for i in 0 1 2; do
                [[ $i == "$leader" ]] && continue
                if "${sys}_write" "$i"; then
                    done_ms=$(($(now_ms) - t0))
                    break
                fi
            done
            (($(now_ms) - t0 < 30000)) || die "$sys: no write succeeded within 30 s of killing the leader"
        done
        echo "$done_ms" >>"$file"
        log "$sys failover run $run: first write after $done_ms ms"
        "${sys}_start" "$leader"
        if [[ $sys == skiff ]]; then
            wait_for "s$leader back" curl -sf "http://$(s_api "$leader")/readyz"
        else
            wait_for "e$leader back" etcd_write "$leader"
        fi
    done
    percentiles "$sys failover (kill -9 leader)" "$file"
}
failover skiff
failover etcd

log "results (also in docs/benchmarks.md when recorded):"
cat "$RESULTS"
