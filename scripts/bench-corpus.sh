#!/usr/bin/env bash
# Performance figures of `aurora index` and `aurora search` on pinned corpora (spec §7.2).
#
#   scripts/bench-corpus.sh [--stdlib] [--only django,flask,requests,stdlib] [--json FILE]
#                           [--queries FILE] [--runs N]
#
# Environment: WORK (default /tmp/aurora-bench), RUNS (default 5), AURORA_BIN (use this binary
# instead of `cargo build --release`), CARGO_TARGET_DIR (default /root/.cache/aurora-target),
# PYTHON (default python3), PIP (default "$PYTHON -m pip").
# Network: only PyPI, through `pip download`, and only when the wheels are not in $WORK/wheels.
# Prints the machine, then a table on stdout; progress on stderr; exits non-zero on any failure.
set -euo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPTS/.." && pwd)
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/aurora-bench}
RUNS=${RUNS:-5}

die() { echo "bench-corpus: FAILED at $1" >&2; exit 1; }

for a in "$@"; do
  case $a in -h|--help) exec "$PY" "$SCRIPTS/corpus.py" bench --help ;; esac
done

command -v "$PY" >/dev/null || die "setup: $PY not found"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 8))' || die "setup: $PY is older than 3.8"

if [[ -n ${AURORA_BIN:-} ]]; then
  BIN=$AURORA_BIN
else
  target=${CARGO_TARGET_DIR:-/root/.cache/aurora-target}
  echo "building aurora (release) into $target ..." >&2
  CARGO_TARGET_DIR=$target cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2 \
    || die "build: cargo build --release failed"
  BIN=$target/release/aurora
fi
[[ -x $BIN ]] || die "setup: no executable aurora binary at $BIN"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

exec "$PY" "$SCRIPTS/corpus.py" bench --bin "$BIN" --root "$ROOT" --work "$WORK" --runs "$RUNS" "$@"
