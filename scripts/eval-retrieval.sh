#!/usr/bin/env bash
# Retrieval quality on the public question set (spec §8): recall@1/5/10 and MRR, overall, per
# difficulty and per repo, plus each question's first-hit rank and top result; a second run with
# --max-per-file 0 for diagnosis.
#
#   scripts/eval-retrieval.sh [--questions FILE] [--json FILE] [--limit N]
#
# Environment: WORK (default /tmp/aurora-bench, shared with bench-corpus.sh), AURORA_BIN (use this
# binary instead of `cargo build --release`), CARGO_TARGET_DIR (default /root/.cache/aurora-target),
# PYTHON (default python3), PIP (default "$PYTHON -m pip").
# Each corpus is indexed into a fresh store; each question asks only its own repo's store.
set -euo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPTS/.." && pwd)
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/aurora-bench}
QUESTIONS=$ROOT/../shared/data/retrieval-eval-public.json

die() { echo "eval-retrieval: FAILED at $1" >&2; exit 1; }

for a in "$@"; do
  case $a in -h|--help) exec "$PY" "$SCRIPTS/corpus.py" eval --help ;; esac
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

# --questions given later on the command line overrides this default (argparse: last one wins).
exec "$PY" "$SCRIPTS/corpus.py" eval --bin "$BIN" --root "$ROOT" --work "$WORK" \
  --questions "$QUESTIONS" "$@"
