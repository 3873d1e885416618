#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ for SECONDS each (default 30), the way `cargo fuzz run` does
# (libFuzzer, AddressSanitizer, SanitizerCoverage), without needing cargo-fuzz installed.
# Crashing inputs are kept in fuzz/artifacts/<target>/ and fail the run; corpora grow in
# fuzz/corpus/<target>/ (seeded from fuzz/seeds/<target>/). Prints executions/s and corpus size.
#
#   scripts/fuzz.sh            # 30 s per target
#   scripts/fuzz.sh 600        # 10 minutes per target
#   scripts/fuzz.sh 30 chunker # one target
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET="${1:-30}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then TARGETS=(chunker model_json incremental_edit positions); fi
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${AURORA_FUZZ_TARGET_DIR:-$HOME/.cache/aurora-fuzz-target}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address -Cdebug-assertions -Coverflow-checks"
export ASAN_OPTIONS="detect_leaks=0"
cargo build --release --locked --target "$TRIPLE" --bins
failed=0
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  seeds=()
  if [ -d "seeds/$t" ]; then seeds=("seeds/$t"); fi
  log="$(mktemp)"
  if ! "$CARGO_TARGET_DIR/$TRIPLE/release/$t" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 "corpus/$t" "${seeds[@]}" >"$log" 2>&1; then
    echo "fuzz $t: FAILED"; tail -40 "$log"; failed=1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  echo "fuzz $t: ${runs:-?} runs in ${SECONDS_PER_TARGET}s (${rate:-?} exec/s), corpus $(ls "corpus/$t" | wc -l) inputs"
  rm -f "$log"
done
exit "$failed"
