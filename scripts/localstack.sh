#!/usr/bin/env bash
# Run LocalStack (S3 only) as a plain local process, without Docker.
#
# Usage: scripts/localstack.sh start|stop|status|endpoint|bucket NAME
#
#   start        install LocalStack into a venv if needed, start it in the
#                background and wait until S3 is healthy. Reuses an instance
#                that is already healthy on the port instead of starting a
#                second one.
#   stop         stop the instance that `start` launched (only that PID and
#                its process group; nothing else is ever killed).
#   status       exit 0 and say so if S3 is healthy on the port, else exit 1.
#   endpoint     print the S3 endpoint URL (http://127.0.0.1:PORT).
#   bucket NAME  create bucket NAME (idempotent).
#
# Environment:
#   SLUICE_CACHE            cache dir (default: $HOME/.cache/sluice); holds the
#                           venv, the log, the PID file and LocalStack's files
#   SLUICE_LOCALSTACK_PORT  port to listen on (default: 4566), 127.0.0.1 only
#   SLUICE_LOCALSTACK_TIMEOUT  seconds to wait for health (default: 120)
#   SLUICE_PYTHON           Python >= 3.11 to build the venv with
#                           (default: python3.11)
#
# Files (for the default port; another port N gets a "-N" suffix):
#   $SLUICE_CACHE/venv-localstack   the venv (shared by all ports)
#   $SLUICE_CACHE/localstack.log    the log of the last start
#   $SLUICE_CACHE/localstack.pid    PID of the process `start` launched
#   $SLUICE_CACHE/localstack/fs     LocalStack's FILESYSTEM_ROOT (wiped on start)
set -euo pipefail

# log, die, usage, the process helpers, stop/status/bucket and main.
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

readonly LOCALSTACK_VERSION="4.13.1"
readonly HOST="127.0.0.1"
readonly SERVICE_SCRIPT="localstack.sh"
readonly SERVICE_NAME="LocalStack"
CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
PORT="${SLUICE_LOCALSTACK_PORT:-4566}"
TIMEOUT="${SLUICE_LOCALSTACK_TIMEOUT:-120}"
VENV="$CACHE/venv-localstack"
ENDPOINT="http://$HOST:$PORT"

if [[ ! "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
    echo "localstack.sh: invalid SLUICE_LOCALSTACK_PORT: $PORT" >&2
    exit 2
fi
if [[ ! "$TIMEOUT" =~ ^[0-9]+$ ]]; then
    echo "localstack.sh: invalid SLUICE_LOCALSTACK_TIMEOUT: $TIMEOUT" >&2
    exit 2
fi

if [[ "$PORT" == 4566 ]]; then
    SUFFIX=""
else
    SUFFIX="-$PORT"
fi
PIDFILE="$CACHE/localstack$SUFFIX.pid"
LOGFILE="$CACHE/localstack$SUFFIX.log"
DATADIR="$CACHE/localstack$SUFFIX"
LOCKFILE="$CACHE/localstack$SUFFIX.lock"

# --- prerequisites ----------------------------------------------------------

venv_ok() {
    [[ -x "$VENV/bin/python" ]] || return 1
    "$VENV/bin/python" - "$LOCALSTACK_VERSION" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
import localstack  # noqa: F401
import localstack.runtime.main  # noqa: F401
sys.exit(version("localstack-core") != sys.argv[1])
EOF
}

ensure_installed() {
    install_venv 3 11 "LocalStack $LOCALSTACK_VERSION" "'import localstack' fails in $VENV" \
        "localstack-core[base-runtime]==$LOCALSTACK_VERSION" \
        'cbor2<6' 'pyopenssl<25' 'cryptography<45' service_identity
}

# --- process helpers --------------------------------------------------------

healthy() {
    curl -s --max-time 3 "$ENDPOINT/_localstack/health" 2>/dev/null |
        grep -Eq '"s3": ?"(running|available)"'
}

# The command line of a process (on stdin) is our LocalStack's.
cmdline_matches() {
    grep -q 'localstack\.runtime\.main'
}

curl_ok() {
    command -v curl >/dev/null 2>&1
}

s3_curl() {
    curl -s "$@"
}

# --- commands ---------------------------------------------------------------

cmd_start() {
    ensure_curl
    mkdir -p "$CACHE"

    start_lock

    local pid
    if healthy; then
        log_reused
        return 0
    fi

    if pid="$(recorded_pid)"; then
        log "pid $pid (started earlier) is alive but not healthy; waiting for it"
    else
        rm -f "$PIDFILE"
        if port_in_use "$PORT"; then
            die "port $PORT on $HOST is in use by something that is not a healthy LocalStack S3 (set SLUICE_LOCALSTACK_PORT to use another port)"
        fi

        ensure_installed

        rm -rf "$DATADIR"
        mkdir -p "$DATADIR/fs"
        : >"$LOGFILE"
        log "starting LocalStack $LOCALSTACK_VERSION on $ENDPOINT (log: $LOGFILE)"
        # setsid: own session and process group, so `stop` can take down
        # LocalStack and its children without touching anything else, and so
        # it outlives this script. All fds are redirected so nothing waits on
        # our stdout/stderr.
        OVERRIDE_IN_DOCKER=0 \
            SERVICES=s3 \
            GATEWAY_LISTEN="$HOST:$PORT" \
            LOCALSTACK_HOST="$HOST:$PORT" \
            DNS_ADDRESS=0 \
            DISABLE_EVENTS=1 \
            SKIP_SSL_CERT_DOWNLOAD=1 \
            FILESYSTEM_ROOT="$DATADIR/fs" \
            setsid "$VENV/bin/python" -m localstack.runtime.main \
            </dev/null >>"$LOGFILE" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$PIDFILE"
    fi

    wait_healthy "$pid" 0.5
}

main "$@"
