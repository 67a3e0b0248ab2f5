#!/usr/bin/env bash
# Starts a one-node Skiff (`skiff up`) with the hello demo deployed, and prints what to curl.
#   ./scripts/demo.sh            (Ctrl-C stops it; state stays in ./.skiff)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}"
cargo build --release --locked -p skiff-cli
exec "$CARGO_TARGET_DIR/release/skiff" up --apply examples/hello-http/app.yaml "$@"
