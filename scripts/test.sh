#!/usr/bin/env bash
# Runs Skiff's whole test suite on a fresh machine, installing what it needs first.
#   ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Build outside the clone so reruns reuse the dependency build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR=never
# Incremental caches only grow between runs and the test binaries are large: a run that fills the
# disk dies in the linker (SIGBUS), so the suite builds without them and makes room first.
export CARGO_INCREMENTAL=0
free_gib() { df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print int($4 / 1048576) }'; }
NEED_GIB=25
if [ "$(free_gib)" -lt "$NEED_GIB" ]; then
  echo "== disk: $(free_gib) GiB free, the suite needs about $NEED_GIB: removing incremental caches and old test binaries"
  rm -rf "$CARGO_TARGET_DIR/debug/incremental"
  find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f -executable -mtime +0 -delete 2>/dev/null || true
fi
if [ "$(free_gib)" -lt "$NEED_GIB" ]; then
  echo "== disk: still $(free_gib) GiB free: cleaning the build directory (a full rebuild follows)"
  cargo clean --target-dir "$CARGO_TARGET_DIR"
fi
echo "== disk: $(free_gib) GiB free for the build"

echo "== setup: wasm32-wasip2 target (guest components are built from source by the tests)"
rustup target add wasm32-wasip2

# apt_install WHAT PACKAGE...: installs Debian packages (updating the index once if needed); a
# failure only warns here: the tests that need WHAT fail under CI (and say they skipped elsewhere).
apt_install() {
  local what=$1 sudo_if_needed=""
  shift
  [ "$(id -u)" -eq 0 ] || sudo_if_needed="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -q "$@" >/dev/null 2>&1 || {
    $sudo_if_needed apt-get update -q >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -q "$@" >/dev/null ||
      echo "WARNING: $* could not be installed; the $what will fail under CI"
  }
}

echo "== setup: docker-registry (the OCI registry the agent's wasm.image test pushes to)"
[ -x /usr/bin/docker-registry ] || apt_install "wasm.image test" docker-registry

echo "== setup: runc and busybox-static (the OCI plugin's container tests run busybox under runc)"
{ command -v runc >/dev/null && [ -x /bin/busybox ]; } || apt_install "container test" runc busybox-static

echo "== setup: a C compiler with static libc (the OCI plugin's seccomp test builds a syscall probe)"
{ command -v cc >/dev/null && [ -e "$(cc -print-file-name=libc.a)" ]; } || apt_install "seccomp test" gcc libc6-dev

echo "== setup: python3 with venv (scripts/api-fuzz.sh installs schemathesis from PyPI into one)"
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install "API fuzz run" python3-venv
command -v curl >/dev/null || apt_install "API fuzz run" curl

echo "== setup: mosquitto and its clients (the MQTT trigger test runs a broker on loopback)"
{ [ -x /usr/sbin/mosquitto ] && command -v mosquitto_pub >/dev/null; } ||
  apt_install "MQTT trigger test" mosquitto mosquitto-clients
# Debian installs the broker under /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin"

echo "== format"
cargo fmt --all -- --check
# fuzz/ is a workspace of its own (scripts/fuzz.sh builds it).
(cd fuzz && cargo fmt -- --check)

echo "== lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== advisories (offline RustSec snapshot)"
advisory_db=../shared/tools/advisory-db
if [ -x "$advisory_db" ]; then
  tools="$HOME/.cache/skiff/tools"
  export PATH="$tools/bin:$PATH"
  command -v cargo-deny >/dev/null || cargo install --locked cargo-deny --root "$tools"
  ADVISORY_DB_CACHE="$HOME/.cache/advisory-db" "$advisory_db" >/dev/null
  cargo fetch --locked
  cargo deny --offline check advisories
else
  echo "skipped: $advisory_db not found (it comes with the project's shared/ folder)"
fi

echo "== tests"
cargo test --workspace --locked --no-fail-fast

echo "== API fuzz (schemathesis against a live skiff up, from /openapi.json; docs/api.md)"
api_fuzz_start=$SECONDS
./scripts/api-fuzz.sh
echo "== API fuzz: done in $((SECONDS - api_fuzz_start)) s"

echo "== fuzz (cargo-fuzz on nightly: regression inputs, then ${FUZZ_SECONDS:-10} s per target; docs/fuzzing.md)"
fuzz_start=$SECONDS
./scripts/fuzz.sh
echo "== fuzz: done in $((SECONDS - fuzz_start)) s"
