#!/usr/bin/env bash
# The web console in a real browser: headless Chromium (Debian's `chromium`) driven by
# Playwright for Python (scripts/test-console.py), against two `sluice dev` gateways on free
# loopback ports and temporary folders — one open, one with bearer tokens. It creates a topic in
# the UI, produces through the API, sees the records, seeks by offset and by time, pages past
# 500 records, checks bad filters and offsets show the API's problem next to the field, lists
# and cancels delayed records on the Delayed page, visits every page at 1280×800 and 400×800
# with no JavaScript error, and saves a screenshot of each.
#
# Usage: scripts/test-console.sh
#
# Installs, as root on Debian, `chromium` with apt-get and Playwright (pinned) into a venv on
# first use; never runs `playwright install` (the system browser is used). Safe to run again.
#
# Environment:
#   CARGO_TARGET_DIR          build dir (default: $HOME/.cache/sluice-target)
#   SLUICE_CACHE              venv dir (default: $HOME/.cache/sluice)
#   SLUICE_CONSOLE_ARTIFACTS  screenshots folder (default: a new folder under $TMPDIR or /tmp);
#                             printed at the end, kept after the run
#   SLUICE_CHROMIUM           the browser (default: /usr/bin/chromium)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
SERVICE_SCRIPT="test-console.sh"
# apt_install, install_venv
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

PLAYWRIGHT_VERSION=1.65.2
CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
VENV="$CACHE/venv-playwright"
CHROMIUM="${SLUICE_CHROMIUM:-/usr/bin/chromium}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
T0=$SECONDS

# --- the browser and Playwright ---------------------------------------------------------

if [[ ! -x "$CHROMIUM" ]]; then
    apt_install chromium fonts-dejavu-core
    [[ -x "$CHROMIUM" ]] || die "$CHROMIUM still missing after installing chromium"
fi
"$CHROMIUM" --version

venv_ok() {
    [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c "import sys, importlib.metadata as m, playwright.sync_api
sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null
}
mkdir -p "$CACHE"
install_venv 3 9 "Playwright $PLAYWRIGHT_VERSION" "its Python package does not import" \
    "playwright==$PLAYWRIGHT_VERSION"

# --- two gateways ---------------------------------------------------------------------------

log "cargo build -p sluice-cli"
cargo build --quiet -p sluice-cli
SLUICE="$CARGO_TARGET_DIR/debug/sluice"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-console.XXXXXX")"
ARTIFACTS="${SLUICE_CONSOLE_ARTIFACTS:-$(mktemp -d "${TMPDIR:-/tmp}/sluice-console-artifacts.XXXXXX")}"
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png
PIDS=()
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if ((rc != 0)); then
        for f in "$WORK"/*.log; do
            [[ -f "$f" ]] || continue
            echo "test-console: last lines of $(basename "$f"):"
            tail -n 30 "$f" || true
        done
    fi
    rm -rf "$WORK"
    echo "test-console: screenshots in $ARTIFACTS"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_dev NAME [ENV=VALUE...]: a `sluice dev` on a free port; sets DEV_URL to its base URL.
start_dev() {
    local name="$1" port
    shift
    port="$(free_port)"
    env SLUICE_LOG="${SLUICE_LOG:-warn}" "$@" "$SLUICE" dev --data-dir "$WORK/$name" \
        --listen "127.0.0.1:$port" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    wait_http_ok "http://127.0.0.1:$port/healthz" "$!" "sluice dev ($name)"
    DEV_URL="http://127.0.0.1:$port"
}

start_dev open
BASE="$DEV_URL"
AUTH_TOKEN="console-test-$RANDOM$RANDOM"
start_dev auth "SLUICE_TOKENS=$AUTH_TOKEN=admin:*"
AUTH_BASE="$DEV_URL"
log "gateways at $BASE (open) and $AUTH_BASE (tokens)"

# --- the browser test -----------------------------------------------------------------------

CONSOLE_BASE="$BASE" CONSOLE_AUTH_BASE="$AUTH_BASE" CONSOLE_AUTH_TOKEN="$AUTH_TOKEN" \
    CONSOLE_ARTIFACTS="$ARTIFACTS" CONSOLE_CHROMIUM="$CHROMIUM" CONSOLE_PROFILE="$WORK/profile" \
    "$VENV/bin/python" "$ROOT/scripts/test-console.py"
log "OK after $((SECONDS - T0)) s"
