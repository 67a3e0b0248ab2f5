# Shared by the bench scripts: logging, a temporary work dir whose processes are all ended on exit,
# and polling with a deadline. Source it after setting KEEP; pass the work dir's name prefix.
#
#   source "$ROOT/bench/lib.sh" skiff-cp-bench
#   PID[name]=$!            # every process started is recorded here
#   wait_for "what" command args…

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    KEEP=1
    exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

WORK=$(mktemp -d "/tmp/$1.XXXXXX")
declare -A PID
cleanup() {
    for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ $KEEP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Polls a command until it succeeds, for at most WAIT_MS (default 300 s).
wait_for() { # what, command…
    local what=$1 t0
    shift
    t0=$(now_ms)
    until "$@" >/dev/null 2>&1; do
        (($(now_ms) - t0 < ${WAIT_MS:-300000})) || die "timed out waiting for $what (logs in $WORK)"
        sleep 0.05
    done
}
