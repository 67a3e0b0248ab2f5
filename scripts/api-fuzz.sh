#!/usr/bin/env bash
# Fuzzes every operation of the API with schemathesis against a live `skiff up` (docs/api.md):
# generated requests, valid and invalid, a bounded number per operation. Fails when any answer
# is a 5xx, a 4xx without Skiff's JSON error body, an answer that does not match the OpenAPI
# document, or when the process dies or logs a panic.
#   ./scripts/api-fuzz.sh                 # API_FUZZ_EXAMPLES (default 20) per operation and phase
# Installs schemathesis (PyPI, pinned) into ~/.cache/skiff/schemathesis; fails if it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}"
SCHEMATHESIS_VERSION=4.32.5
venv="$HOME/.cache/skiff/schemathesis"
examples="${API_FUZZ_EXAMPLES:-20}"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "== api-fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" || {
    echo "FAILED: schemathesis $SCHEMATHESIS_VERSION could not be installed from PyPI; the API fuzz run cannot run" >&2
    exit 1
  }
fi

cargo build --locked -q -p skiff-cli --bin skiff
skiff="$CARGO_TARGET_DIR/debug/skiff"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_for URL WHAT: polls URL until it answers 200, for at most 60 s.
wait_for() {
  local deadline=$((SECONDS + 60))
  until curl -sf -o /dev/null "$1"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "FAILED: $2 did not answer $1 within 60 s" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Runs schemathesis in the run's own directory (it keeps a cache of what it found in
# ./.schemathesis, which belongs to the run, not to the tree).
st() {
  (cd "$work" && SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$root/tests/api" \
    "$venv/bin/schemathesis" --config-file "$root/tests/api/schemathesis.toml" run --no-color \
    --request-timeout 20 --workers 2 "$@")
}
checks=not_a_server_error,error_answers_are_json_error_bodies,response_schema_conformance,content_type_conformance

echo "== api-fuzz: the checks fail on an API that answers errors in plain text"
port=$(free_port)
python3 "$root/tests/api/plain_errors_server.py" "$port" &
pids+=($!)
wait_for "http://127.0.0.1:$port/openapi.json" "the plain-error server"
if st "http://127.0.0.1:$port/openapi.json" --checks "$checks" -n 5 --phases examples,fuzzing >"$work/selfcheck.out" 2>&1; then
  cat "$work/selfcheck.out"
  echo "FAILED: schemathesis passed an API whose 404s are text/plain: the JSON error check does not run" >&2
  exit 1
fi
grep -q "not application/json" "$work/selfcheck.out" || {
  cat "$work/selfcheck.out"
  echo "FAILED: the run against the plain-error server failed, but not on the JSON error check" >&2
  exit 1
}

echo "== api-fuzz: skiff up"
api=$(free_port) gateway=$(free_port) data_plane=$(free_port)
"$skiff" up --dir "$work/state" --plain-http --api "127.0.0.1:$api" --gateway "127.0.0.1:$gateway" \
  --data-plane "127.0.0.1:$data_plane" >"$work/skiff.log" 2>&1 &
skiff_pid=$!
pids+=("$skiff_pid")
wait_for "http://127.0.0.1:$api/readyz" "skiff up"
token=$(cat "$work/state/admin.token")

echo "== api-fuzz: schemathesis, $examples examples per operation and phase"
start=$SECONDS
status=0
st "http://127.0.0.1:$api/openapi.json" -H "Authorization: Bearer $token" --checks "$checks" \
  -n "$examples" --phases examples,coverage,fuzzing >"$work/run.out" 2>&1 || status=$?
grep -v '^  - ' "$work/run.out" | tail -40
echo "== api-fuzz: schemathesis took $((SECONDS - start)) s"

if ! kill -0 "$skiff_pid" 2>/dev/null; then
  tail -50 "$work/skiff.log"
  echo "FAILED: skiff up died during the run" >&2
  exit 1
fi
curl -sf -o /dev/null "http://127.0.0.1:$api/readyz" || {
  tail -50 "$work/skiff.log"
  echo "FAILED: skiff up no longer ready after the run" >&2
  exit 1
}
if grep -n "panicked" "$work/skiff.log"; then
  echo "FAILED: skiff up logged a panic during the run" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  cat "$work/run.out"
  echo "FAILED: schemathesis found failures (above; rerun with --seed to reproduce)" >&2
  exit 1
fi
echo "== api-fuzz: passed"
