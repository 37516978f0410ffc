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

readonly LOCALSTACK_VERSION="4.13.1"
readonly HOST="127.0.0.1"
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

log() { echo "localstack.sh: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
}

# --- prerequisites ----------------------------------------------------------

apt_install() {
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "need $* installed (install it, or run as root on Debian/Ubuntu to have it installed)"
    fi
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}

ensure_curl() {
    command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
    command -v curl >/dev/null 2>&1 || die "curl still not found after installing it"
}

# Prints the path of a Python >= 3.11 that can create venvs.
find_python() {
    local cand
    for cand in "${SLUICE_PYTHON:-}" python3.11 python3; do
        [[ -n "$cand" ]] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

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
    if venv_ok; then
        return 0
    fi
    local py
    if ! py="$(find_python)"; then
        apt_install python3 python3-venv python3-pip
        py="$(find_python)" || die "no Python >= 3.11 with venv support found (set SLUICE_PYTHON)"
    fi
    log "installing LocalStack $LOCALSTACK_VERSION into $VENV (using $py)"
    rm -rf "$VENV"
    local t0=$SECONDS
    if ! { "$py" -m venv "$VENV" &&
        "$VENV/bin/pip" install --disable-pip-version-check --no-input -q \
            "localstack-core[base-runtime]==$LOCALSTACK_VERSION" \
            'cbor2<6' 'pyopenssl<25' 'cryptography<45' service_identity; } >&2; then
        rm -rf "$VENV"
        die "installing LocalStack $LOCALSTACK_VERSION failed (see pip output above)"
    fi
    venv_ok || {
        rm -rf "$VENV"
        die "LocalStack $LOCALSTACK_VERSION installed but 'import localstack' fails in $VENV"
    }
    log "installed LocalStack in $((SECONDS - t0)) s"
}

# --- process helpers --------------------------------------------------------

healthy() {
    curl -s --max-time 3 "$ENDPOINT/_localstack/health" 2>/dev/null |
        grep -Eq '"s3": ?"(running|available)"'
}

# Something (anything) accepts TCP connections on the port.
port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

# Prints the PID from the PID file if that process is alive and is LocalStack.
recorded_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PIDFILE")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against PID reuse: it must still be our LocalStack process.
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'localstack\.runtime\.main' || return 1
    fi
    echo "$pid"
}

log_tail() {
    if [[ -s "$LOGFILE" ]]; then
        echo "----- last 60 lines of $LOGFILE -----" >&2
        tail -n 60 "$LOGFILE" >&2
        echo "----- end of $LOGFILE -----" >&2
    else
        echo "(log $LOGFILE is empty or missing)" >&2
    fi
}

# Kill the recorded process and its process group (start makes it a session
# and group leader with setsid, so the group is exactly LocalStack and its
# children). Waits for it to go away.
kill_recorded() {
    local pid="$1" pgid="" stat sig i
    # Field 5 of /proc/PID/stat is the process group; comm (field 2) may
    # contain spaces, so cut everything up to its closing parenthesis.
    if stat="$(cat "/proc/$pid/stat" 2>/dev/null)"; then
        stat="${stat##*) }"
        read -r _ _ pgid _ <<<"$stat"
    fi
    for sig in TERM KILL; do
        if [[ "$pgid" == "$pid" ]]; then
            kill "-$sig" -- "-$pid" 2>/dev/null || true
        else
            kill "-$sig" "$pid" 2>/dev/null || true
        fi
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break 2
            sleep 0.2
        done
        if [[ "$sig" == TERM ]]; then
            log "pid $pid still alive after SIGTERM; sending SIGKILL"
        fi
    done
    # The leader is gone; make sure no straggler of its group survives.
    if [[ "$pgid" == "$pid" ]]; then
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    if kill -0 "$pid" 2>/dev/null; then
        die "could not stop LocalStack pid $pid"
    fi
}

# --- commands ---------------------------------------------------------------

cmd_start() {
    ensure_curl
    mkdir -p "$CACHE"

    # Serialize concurrent starts (and installs) for this port.
    exec 9>"$LOCKFILE"
    if command -v flock >/dev/null 2>&1; then
        flock -w 900 9 || die "timed out waiting for lock $LOCKFILE"
    fi

    local pid
    if healthy; then
        if pid="$(recorded_pid)"; then
            log "already running at $ENDPOINT (pid $pid)"
        else
            log "reusing LocalStack already running at $ENDPOINT (not started by this script)"
        fi
        return 0
    fi

    if pid="$(recorded_pid)"; then
        log "pid $pid (started earlier) is alive but not healthy; waiting for it"
    else
        rm -f "$PIDFILE"
        if port_in_use; then
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

    local t0=$SECONDS
    while ! healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            log_tail
            die "LocalStack (pid $pid) exited before becoming healthy"
        fi
        if ((SECONDS - t0 >= TIMEOUT)); then
            log_tail
            log "LocalStack did not become healthy within ${TIMEOUT}s; stopping pid $pid"
            kill_recorded "$pid" || true
            rm -f "$PIDFILE"
            die "LocalStack did not become healthy within ${TIMEOUT}s"
        fi
        sleep 0.5
    done
    log "LocalStack S3 healthy at $ENDPOINT (pid $pid, ready after $((SECONDS - t0)) s)"
}

cmd_stop() {
    local pid
    if pid="$(recorded_pid)"; then
        log "stopping LocalStack (pid $pid)"
        kill_recorded "$pid"
        rm -f "$PIDFILE"
        log "stopped"
    else
        if [[ -f "$PIDFILE" ]]; then
            log "removing stale PID file $PIDFILE"
            rm -f "$PIDFILE"
        fi
        if command -v curl >/dev/null 2>&1 && healthy; then
            log "a LocalStack not started by this script is running at $ENDPOINT; leaving it alone"
        else
            log "not running"
        fi
    fi
}

cmd_status() {
    ensure_curl
    local pid
    if healthy; then
        if pid="$(recorded_pid)"; then
            echo "running at $ENDPOINT (pid $pid)"
        else
            echo "running at $ENDPOINT (not started by this script)"
        fi
        return 0
    fi
    if pid="$(recorded_pid)"; then
        echo "not healthy: pid $pid is alive but $ENDPOINT is not healthy (yet)"
    else
        echo "not running at $ENDPOINT"
    fi
    return 1
}

cmd_bucket() {
    local name="${1:-}"
    [[ -n "$name" ]] || die "usage: $0 bucket NAME"
    [[ "$name" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "invalid bucket name: $name"
    ensure_curl
    healthy || die "LocalStack is not healthy at $ENDPOINT (run: $0 start)"
    local code
    BODY="$(mktemp)"
    trap 'rm -f "$BODY"' EXIT
    code="$(curl -s -o "$BODY" -w '%{http_code}' --max-time 30 -X PUT "$ENDPOINT/$name")" || code="000"
    case "$code" in
    200)
        log "bucket $name ready at $ENDPOINT/$name"
        ;;
    409)
        if grep -q 'BucketAlreadyOwnedByYou' "$BODY"; then
            log "bucket $name already exists (owned by you)"
        else
            cat "$BODY" >&2
            die "bucket $name exists and is not ours (HTTP 409)"
        fi
        ;;
    *)
        cat "$BODY" >&2 || true
        die "creating bucket $name failed (HTTP $code)"
        ;;
    esac
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    endpoint) echo "$ENDPOINT" ;;
    bucket)
        shift
        cmd_bucket "$@"
        ;;
    -h | --help | help) usage ;;
    *)
        usage
        exit 2
        ;;
    esac
}

main "$@"
