#!/usr/bin/env bash
# Builds Skiff's fuzz targets (fuzz/, cargo-fuzz on nightly), replays every regression input, then
# fuzzes each target for a bounded time. Fails on any crash. See docs/fuzzing.md.
#   ./scripts/fuzz.sh                          # ~10 s per target (what scripts/test.sh runs)
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh         # longer runs
#   ./scripts/fuzz.sh manifest_parse           # some targets only
# Environment: FUZZ_SECONDS (per target, default 10), FUZZ_SANITIZER (none | address, default
# none), FUZZ_TARGET_DIR (default $HOME/.cache/skiff/target-fuzz: apart from the main build, whose
# flags differ). A missing nightly toolchain or cargo-fuzz is installed; if that fails, the run
# fails under CI=true and is skipped with a warning elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/skiff/target-fuzz}"
export CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
mkdir -p "$CARGO_TARGET_DIR"

# missing TOOL HOW: a tool could not be installed. Under CI=true that fails the run; on a
# developer's machine the fuzz step is skipped with a warning (as scripts/test.sh treats its tools).
missing() {
  if [ "${CI:-}" = "true" ]; then
    echo "ERROR: $1 is missing and could not be installed ($2); the fuzz targets cannot run"
    exit 1
  fi
  echo "WARNING: $1 is missing and could not be installed ($2); fuzzing SKIPPED (it fails under CI)"
  exit 0
}
# The fuzz targets need a nightly toolchain (libFuzzer's coverage instrumentation) and cargo-fuzz.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== fuzz: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal || missing "the nightly toolchain" "rustup toolchain install nightly"
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked || missing "cargo-fuzz" "cargo install cargo-fuzz --locked"
fi

ALL_TARGETS=$(cd fuzz && cargo +nightly fuzz list)
TARGETS=${*:-$ALL_TARGETS}
fuzz=(cargo +nightly fuzz)
build_flags=(--sanitizer "$FUZZ_SANITIZER" --target-dir "$CARGO_TARGET_DIR")
bin_dir="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

echo "== fuzz: building $(echo "$TARGETS" | wc -w) targets (sanitizer: $FUZZ_SANITIZER)"
start=$SECONDS
# cargo-fuzz has no --locked: check by hand that the build kept the committed lock file.
lock_before=$(cksum <fuzz/Cargo.lock)
if [ $# -eq 0 ]; then
  "${fuzz[@]}" build "${build_flags[@]}"
else
  for t in $TARGETS; do "${fuzz[@]}" build "${build_flags[@]}" "$t"; done
fi
echo "   built in $((SECONDS - start)) s"
if [ "$(cksum <fuzz/Cargo.lock)" != "$lock_before" ]; then
  echo "ERROR: building the fuzz targets changed fuzz/Cargo.lock: commit the updated lock file"
  exit 1
fi

failed=()
for t in $TARGETS; do
  # Regression inputs: each crash found so far, kept after its fix. Each must now pass.
  regressions="fuzz/regressions/$t"
  if compgen -G "$regressions/*" >/dev/null; then
    count=$(find "$regressions" -type f | wc -l)
    echo "== fuzz: $t: replaying $count regression inputs"
    if ! "$bin_dir/$t" "$regressions"/* >"$CARGO_TARGET_DIR/fuzz-$t-regressions.log" 2>&1; then
      tail -n 40 "$CARGO_TARGET_DIR/fuzz-$t-regressions.log"
      echo "FAILED: $t crashes on a regression input (log: $CARGO_TARGET_DIR/fuzz-$t-regressions.log)"
      failed+=("$t (regression)")
      continue
    fi
  fi

  # A bounded run. New inputs go to a scratch corpus outside the tree (kept between runs, so longer
  # runs build on shorter ones); the committed seeds are read only.
  work="$CARGO_TARGET_DIR/fuzz-corpus/$t"
  artifacts="$CARGO_TARGET_DIR/fuzz-artifacts/$t/"
  mkdir -p "$work" "$artifacts"
  echo "== fuzz: $t: fuzzing for $FUZZ_SECONDS s"
  log="$CARGO_TARGET_DIR/fuzz-$t.log"
  if "${fuzz[@]}" run "${build_flags[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units' "$log" | sed "s/^/   /" || true
  else
    tail -n 60 "$log"
    echo "FAILED: $t crashed; the input is in $artifacts (log: $log)."
    echo "  Reproduce: cargo +nightly fuzz run -s $FUZZ_SANITIZER $t <input>; fix it, keep the input in fuzz/regressions/$t/."
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "== fuzz: every target passed its regressions and $FUZZ_SECONDS s of fuzzing"
