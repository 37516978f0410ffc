#!/usr/bin/env bash
# Property-based fuzzing of the REST API with Schemathesis, driven by the gateway's own
# OpenAPI document (`GET /v1/openapi.json`). Every answer must be documented: no 5xx, bodies
# that match the response schemas, the documented content types and status codes.
#
# Usage: scripts/api-fuzz.sh [extra `schemathesis run` options]
#
# Builds the `sluice` binary (debug), starts `sluice dev` on a temporary folder and a free
# loopback port, creates the topics the document's examples name (`orders`, 4 partitions, with a
# record in partition 0; `scratch`, which the DELETE example removes), then runs Schemathesis
# against it, with the hooks in scripts/api-fuzz-hooks.py. Exits non-zero on any failure.
# Schemathesis is installed (pinned) into a venv on first use; safe to run again.
#
# Environment:
#   CARGO_TARGET_DIR        build dir (default: $HOME/.cache/sluice-target)
#   SLUICE_CACHE            venv dir (default: $HOME/.cache/sluice)
#   SLUICE_API_FUZZ_EXAMPLES  test cases per operation and phase (default: 100)
#   SLUICE_API_FUZZ_SEED    Hypothesis seed (default: 20240601; fixed so runs are reproducible)
#   SLUICE_API_FUZZ_TIMEOUT hard limit for the Schemathesis run, in seconds (default: 420)
#
# Replay a failure with the `st replay <id>` line Schemathesis prints, or re-run with the same
# seed. A typical run is ~20 s and some 2,000 requests.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
SERVICE_SCRIPT="api-fuzz"
# log, die, free_port, wait_http_ok
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

SCHEMATHESIS_VERSION=4.32.5
CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
VENV="$CACHE/venv-schemathesis"
EXAMPLES="${SLUICE_API_FUZZ_EXAMPLES:-100}"
SEED="${SLUICE_API_FUZZ_SEED:-20240601}"
TIMEOUT="${SLUICE_API_FUZZ_TIMEOUT:-420}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"

# --- Schemathesis (pinned, in its own venv) ---------------------------------------

mkdir -p "$CACHE"
if [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != *"version $SCHEMATHESIS_VERSION"* ]]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv --clear "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/schemathesis" --version

# --- the gateway -----------------------------------------------------------------

log "cargo build -p sluice-cli"
cargo build --quiet -p sluice-cli
SLUICE="$CARGO_TARGET_DIR/debug/sluice"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-api-fuzz.XXXXXX")"
SERVER_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if ((rc != 0)) && [[ -f "$WORK/server.log" ]]; then
        echo "api-fuzz: last lines of the gateway's log:"
        tail -n 30 "$WORK/server.log" || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
log "starting sluice dev on $BASE (data in $WORK/data)"
SLUICE_LOG="${SLUICE_LOG:-warn}" "$SLUICE" dev --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

wait_http_ok "$BASE/healthz" "$SERVER_PID" "sluice dev"

# Topics the OpenAPI examples name, so topic-specific operations reach real data too.
create_topic() {
    curl -fsS -o /dev/null -X POST "$BASE/v1/topics" -H 'content-type: application/json' \
        -d "{\"name\":\"$1\",\"partitions\":$2}"
}
create_topic orders 4
create_topic scratch 2
curl -fsS -o /dev/null -X POST "$BASE/v1/topics/orders/records" -H 'content-type: application/json' \
    -d '{"records":[{"key":"user-7","value":"created"},{"value":"paid","partition":0}]}'

# --- Schemathesis ----------------------------------------------------------------

log "schemathesis run (max $EXAMPLES examples per operation, seed $SEED, timeout ${TIMEOUT}s)"
# Run from the scratch folder: Schemathesis keeps a `.schemathesis/` cache in its working dir.
# One worker: with several, Hypothesis parses lambda sources in parallel threads and trips a
# CPython 3.11 `ast` bug ("AST constructor recursion depth mismatch"), an error of the tool.
cd "$WORK"
export SCHEMATHESIS_HOOKS="$ROOT/scripts/api-fuzz-hooks.py"
set +e
timeout --signal=TERM --kill-after=10 "$TIMEOUT" \
    "$VENV/bin/schemathesis" run "$BASE/v1/openapi.json" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --request-timeout 10 \
    --workers 1 \
    --no-color \
    "$@"
rc=$?
set -e
if ((rc == 124)); then
    log "FAILED: schemathesis did not finish within ${TIMEOUT}s"
elif ((rc != 0)); then
    log "FAILED (exit $rc)"
else
    log "OK"
fi
exit "$rc"
