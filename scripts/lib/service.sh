# shellcheck shell=bash
# shellcheck disable=SC2154  # the variables below are set by the sourcing script
#
# Shared parts of the local S3 service scripts (scripts/localstack.sh,
# scripts/seaweedfs.sh) and of the test scripts that use them
# (scripts/test.sh, scripts/test-seaweedfs.sh). Sourced, never run.
#
# A service script sets these variables (read when the functions run):
#   SERVICE_SCRIPT  prefix of log messages, e.g. "localstack.sh"
#   SERVICE_NAME    name in messages, e.g. "LocalStack"
#   HOST PORT       where the service listens
#   ENDPOINT        its S3 endpoint URL
#   TIMEOUT         seconds to wait for health
#   CACHE LOCKFILE PIDFILE LOGFILE
#   VENV            the venv `install_venv` creates
# and defines these functions:
#   venv_ok          exit 0 if the service is installed in VENV
#   healthy          exit 0 if S3 is healthy at ENDPOINT
#   cmdline_matches  read a process's command line (NULs turned into spaces)
#                    on stdin; exit 0 if it is the service's process
#   curl_ok          exit 0 if curl is present and usable for the service
#   s3_curl ARGS...  curl -s (plus whatever the service needs) ARGS
#   cmd_start        the `start` command
# and optionally:
#   check_curl       called by ensure_curl once curl is present; dies if it
#                    is not usable
#   after_kill       called by kill_recorded once the process is gone

log() { echo "$SERVICE_SCRIPT: $*" >&2; }
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
    if declare -F check_curl >/dev/null; then
        check_curl
    fi
}

# find_python MAJOR MINOR: prints the path of a Python >= MAJOR.MINOR that can
# create venvs.
# install_venv MAJOR MINOR WHAT BROKEN PACKAGE...: unless `venv_ok` (defined by the
# service script) already holds, install PACKAGEs into a fresh venv at $VENV with a Python
# >= MAJOR.MINOR (installing Debian's python3-venv if none is found). WHAT names the install in
# messages ("LocalStack 4.13.1"); BROKEN says what failed when `venv_ok` still does not hold.
install_venv() {
    local major="$1" minor="$2" what="$3" broken="$4"
    shift 4
    if venv_ok; then
        return 0
    fi
    local py
    if ! py="$(find_python "$major" "$minor")"; then
        apt_install python3 python3-venv python3-pip
        py="$(find_python "$major" "$minor")" ||
            die "no Python >= $major.$minor with venv support found (set SLUICE_PYTHON)"
    fi
    log "installing $what into $VENV (using $py)"
    rm -rf "$VENV"
    local t0=$SECONDS
    if ! { "$py" -m venv "$VENV" &&
        "$VENV/bin/pip" install --disable-pip-version-check --no-input -q "$@"; } >&2; then
        rm -rf "$VENV"
        die "installing $what failed (see pip output above)"
    fi
    venv_ok || {
        rm -rf "$VENV"
        die "$what installed but $broken"
    }
    log "installed $what in $((SECONDS - t0)) s"
}

find_python() {
    local cand
    for cand in "${SLUICE_PYTHON:-}" python3.11 python3; do
        [[ -n "$cand" ]] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        if "$cand" -c "import sys, venv, ensurepip; sys.exit(sys.version_info < ($1, $2))" >/dev/null 2>&1; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

# --- process helpers --------------------------------------------------------

# Something (anything) accepts TCP connections on port $1 (default: PORT).
port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/${1:-$PORT}") 2>/dev/null
}

# Prints the PID from the PID file if that process is alive and is the
# service's process.
recorded_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PIDFILE")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against PID reuse: it must still be our process.
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | cmdline_matches || return 1
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
# and group leader with setsid, so the group is exactly the service and its
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
        die "could not stop $SERVICE_NAME pid $pid"
    fi
    if declare -F after_kill >/dev/null; then
        after_kill
    fi
}

# --- pieces of cmd_start ----------------------------------------------------

# Serialize concurrent starts (and installs) for this port: holds LOCKFILE on
# fd 9 until the script exits.
start_lock() {
    exec 9>"$LOCKFILE"
    if command -v flock >/dev/null 2>&1; then
        flock -w 900 9 || die "timed out waiting for lock $LOCKFILE"
    fi
}

# Says which healthy instance `start` reuses.
log_reused() {
    local pid
    if pid="$(recorded_pid)"; then
        log "already running at $ENDPOINT (pid $pid)"
    else
        log "reusing $SERVICE_NAME already running at $ENDPOINT (not started by this script)"
    fi
}

# wait_healthy PID INTERVAL: waits until the service is healthy; stops PID and
# dies if it exits first or TIMEOUT passes.
wait_healthy() {
    local pid="$1" interval="$2" t0=$SECONDS
    while ! healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            log_tail
            die "$SERVICE_NAME (pid $pid) exited before becoming healthy"
        fi
        if ((SECONDS - t0 >= TIMEOUT)); then
            log_tail
            log "$SERVICE_NAME did not become healthy within ${TIMEOUT}s; stopping pid $pid"
            kill_recorded "$pid" || true
            rm -f "$PIDFILE"
            die "$SERVICE_NAME did not become healthy within ${TIMEOUT}s"
        fi
        sleep "$interval"
    done
    log "$SERVICE_NAME S3 healthy at $ENDPOINT (pid $pid, ready after $((SECONDS - t0)) s)"
}

# --- commands ---------------------------------------------------------------

cmd_stop() {
    local pid
    if pid="$(recorded_pid)"; then
        log "stopping $SERVICE_NAME (pid $pid)"
        kill_recorded "$pid"
        rm -f "$PIDFILE"
        log "stopped"
    else
        if [[ -f "$PIDFILE" ]]; then
            log "removing stale PID file $PIDFILE"
            rm -f "$PIDFILE"
        fi
        if curl_ok && healthy; then
            log "a $SERVICE_NAME not started by this script is running at $ENDPOINT; leaving it alone"
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
    healthy || die "$SERVICE_NAME is not healthy at $ENDPOINT (run: $0 start)"
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

# --- test scripts -----------------------------------------------------------

# export_test_s3_env ENDPOINT BUCKET: exports the SLUICE_TEST_S3_* and AWS_*
# variables the S3 tests use (the identity test/test both scripts/localstack.sh
# and scripts/seaweedfs.sh accept) and prints the endpoint and bucket.
export_test_s3_env() {
    export SLUICE_TEST_S3_ENDPOINT="$1"
    export SLUICE_TEST_S3_BUCKET="$2"
    export AWS_ACCESS_KEY_ID=test
    export AWS_SECRET_ACCESS_KEY=test
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    # Never look for credentials or a region anywhere but the variables above
    # (in particular not the EC2 metadata address, which is off this machine).
    export AWS_EC2_METADATA_DISABLED=true
    unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ENDPOINT AWS_ENDPOINT_URL
    # Tests that need S3 must fail, not skip, when it is missing.
    export SLUICE_REQUIRE_S3=1
    echo "SLUICE_TEST_S3_ENDPOINT=$SLUICE_TEST_S3_ENDPOINT SLUICE_TEST_S3_BUCKET=$SLUICE_TEST_S3_BUCKET"
}

# --- servers started by test scripts -------------------------------------------

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http_ok URL PID WHAT [TRIES]: wait (0.1 s steps, default 200 tries) until URL answers
# 2xx; die if process PID exits first or it never answers.
wait_http_ok() {
    local url="$1" pid="$2" what="$3" tries="${4:-200}" i
    for ((i = 0; i < tries; i++)); do
        curl -fsS "$url" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited early"
        sleep 0.1
    done
    die "$what did not answer $url"
}
