#!/usr/bin/env bash
# Parquet tables read by DuckDB: starts `sluice dev` on a temporary folder, creates a topic with
# `"parquet": true`, produces records (keys, binary values, headers) over the REST API, waits
# for the compactor's manifest to cover them, then reads
# `read_parquet('<folder>/tables/<topic>/**/*.parquet')` with the `duckdb` Python package and
# checks row count, (partition, offset) uniqueness and every value against the REST API's
# answer for the same range (scripts/test_tables.py). ~10 s once the venv exists.
#
# Environment:
#   CARGO_TARGET_DIR  build dir (default: $HOME/.cache/sluice-target)
#   SLUICE_CACHE      venv dir (default: $HOME/.cache/sluice)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
SERVICE_SCRIPT="test-tables.sh"
DUCKDB_VERSION=2.0.1
CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
VENV="$CACHE/venv-duckdb"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
# install_venv, log, die
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

venv_ok() {
    [[ "$("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)' 2>/dev/null || true)" == "$DUCKDB_VERSION" ]]
}
mkdir -p "$CACHE"
install_venv 3 9 "duckdb $DUCKDB_VERSION" "'import duckdb' fails in $VENV" "duckdb==$DUCKDB_VERSION"

log "cargo build -p sluice-cli"
cargo build --quiet -p sluice-cli
SLUICE="$CARGO_TARGET_DIR/debug/sluice"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-tables.XXXXXX")"
SERVER_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if ((rc != 0)) && [[ -f "$WORK/server.log" ]]; then
        log "last lines of the server's log:"
        tail -n 30 "$WORK/server.log" || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$(free_port)"
log "starting sluice dev on 127.0.0.1:$PORT (data in $WORK/data)"
SLUICE_LOG="${SLUICE_LOG:-warn}" "$SLUICE" dev --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_http_ok "http://127.0.0.1:$PORT/healthz" "$SERVER_PID" "sluice dev"

"$VENV/bin/python" "$ROOT/scripts/test_tables.py" "http://127.0.0.1:$PORT" "$WORK/data"
log "OK"
