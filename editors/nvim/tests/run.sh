#!/usr/bin/env bash
# Runs the headless unit and end-to-end tests on each Neovim given (paths or names on PATH):
#   AURORA_BIN=target/debug/aurora editors/nvim/tests/run.sh nvim /path/to/nvim-0.11
# Each run gets fresh XDG folders (no user config) and a hard time limit, so a hang cannot
# stall CI. Exits non-zero if any run failed.
set -uo pipefail
cd "$(dirname "$0")/../../.."
: "${AURORA_BIN:?set AURORA_BIN to the aurora binary}"
AURORA_BIN="$(realpath "$AURORA_BIN")"
export AURORA_BIN
[ "$#" -gt 0 ] || set -- nvim
status=0
for nvim in "$@"; do
  tmp="$(mktemp -d)"
  echo "=== $("$nvim" --version | head -1) ($nvim)"
  export XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state" \
    XDG_CACHE_HOME="$tmp/cache" AURORA_E2E_TMP="$tmp/e2e"
  timeout -k 10 60 "$nvim" --headless -i NONE -u editors/nvim/tests/minimal_init.lua \
    -c "lua require('aurora_unit').run()" </dev/null
  unit=$?
  timeout -k 10 300 "$nvim" --headless -i NONE -u editors/nvim/tests/minimal_init.lua \
    -c "lua require('aurora_e2e').run()" </dev/null
  rc=$?
  [ "$unit" -eq 0 ] || rc=$unit
  if [ "$rc" -ne 0 ]; then
    echo "=== FAILED ($nvim exited $rc; files kept in $tmp)"
    status=1
  else
    rm -rf "$tmp"
  fi
done
exit "$status"
