#!/usr/bin/env bash
# Sluice's Compose stacks without Docker: an S3 server, two gateways and one compactor as plain
# processes on 127.0.0.1 (what localstack/compose.localstack.yml runs in containers).
#
# Usage: scripts/stack.sh start [localstack|seaweedfs]
#        scripts/stack.sh stop | status
#        scripts/stack.sh smoke [localstack|seaweedfs]
#
#   start   start the S3 server (scripts/localstack.sh or scripts/seaweedfs.sh; reused if one
#           is already healthy), create the bucket, start gateway-1 on 127.0.0.1:PORT and
#           gateway-2 on PORT+1 (they elect shard committers and hand each other commits at
#           their advertised URLs) and one compactor; wait until both gateways are ready
#   stop    stop the processes `start` launched (only those PIDs), and the S3 server if
#           `start` started it
#   status  exit 0 if both gateways are ready
#   smoke   start, produce a record through gateway-1 and read it back through gateway-2 with
#           curl, check the bucket holds a shard committer lease, the compactor's lease and,
#           soon, a checkpoint; then stop. On free ports unless SLUICE_STACK_PORT is set (CI
#           runs this)
#
# MinIO has no package installable on these machines (no PyPI, npm or Debian build), so the
# MinIO stack exists only as localstack/compose.minio.yml; SeaweedFS stands in as the second
# S3 implementation here.
#
# Environment:
#   SLUICE_STACK_PORT    gateway-1's port (default 8080; gateway-2 uses the next one)
#   SLUICE_STACK_BUCKET  bucket (default sluice; smoke appends -smoke-TIME-RANDOM to it)
#   SLUICE_BIN           sluice binary (default: cargo build -p sluice-cli, in CARGO_TARGET_DIR)
#   SLUICE_CACHE         state and logs under $SLUICE_CACHE/stack-PORT (default ~/.cache/sluice)
#   SLUICE_STACK_TIMEOUT seconds to wait for the gateways (default 60)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
SERVICE_SCRIPT="stack.sh"
# log, die, usage
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
BUCKET="${SLUICE_STACK_BUCKET:-sluice}"
TIMEOUT="${SLUICE_STACK_TIMEOUT:-60}"
HOST=127.0.0.1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
# Both S3 servers accept this identity (LocalStack any; SeaweedFS is configured with it).
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE

set_port() {
    PORT="$1"
    if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65534)); then
        die "bad port: $PORT"
    fi
    STATE="$CACHE/stack-$PORT"
}
set_port "${SLUICE_STACK_PORT:-8080}"

backend_script() {
    case "$1" in
    localstack) echo "$ROOT/scripts/localstack.sh" ;;
    seaweedfs) echo "$ROOT/scripts/seaweedfs.sh" ;;
    *) die "unknown backend $1 (localstack or seaweedfs)" ;;
    esac
}

sluice_bin() {
    if [[ -n "${SLUICE_BIN:-}" ]]; then
        [[ -x "$SLUICE_BIN" ]] || die "SLUICE_BIN=$SLUICE_BIN is not executable"
        echo "$SLUICE_BIN"
        return
    fi
    log "cargo build -p sluice-cli"
    cargo build --quiet -p sluice-cli >&2 || die "cargo build -p sluice-cli failed"
    echo "$CARGO_TARGET_DIR/debug/sluice"
}

ready() { curl -sf --max-time 5 "http://$HOST:$1/readyz" >/dev/null 2>&1; }

# A process start launched, if still alive and still a sluice process (PID reuse).
alive_pid() {
    local f="$STATE/$1.pid" pid
    [[ -f "$f" ]] || return 1
    pid="$(tr -dc '0-9' <"$f")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "sluice" || return 1
    echo "$pid"
}

# launch NAME ARGS...: start `sluice ARGS...` in its own session, log to $STATE/NAME.log.
launch() {
    local name="$1"
    shift
    setsid "$SLUICE" "$@" >"$STATE/$name.log" 2>&1 </dev/null &
    echo $! >"$STATE/$name.pid"
    log "$name: sluice $* (pid $!, log $STATE/$name.log)"
}

stop_one() {
    local name="$1" pid i
    pid="$(alive_pid "$name")" || {
        rm -f "$STATE/$name.pid"
        return 0
    }
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) still alive after SIGTERM; SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/$name.pid"
    log "stopped $name (pid $pid)"
}

cmd_start() {
    local backend="${1:-localstack}" s3 endpoint p
    s3="$(backend_script "$backend")"
    command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
    mkdir -p "$STATE"
    for p in gateway-1 gateway-2 compactor; do
        if alive_pid "$p" >/dev/null; then
            die "a stack is already running on port $PORT ($p: pid $(alive_pid "$p")); run: $0 stop"
        fi
    done
    port_in_use "$PORT" && die "port $PORT is taken"
    port_in_use "$((PORT + 1))" && die "port $((PORT + 1)) is taken"

    rm -f "$STATE/s3-started-here"
    if ! "$s3" status >/dev/null 2>&1; then
        echo "$s3" >"$STATE/s3-started-here"
    fi
    "$s3" start
    "$s3" bucket "$BUCKET"
    endpoint="$("$s3" endpoint)"
    ENDPOINT="$endpoint"
    SLUICE="$(sluice_bin)"

    local common=(--store "s3://$BUCKET" --endpoint "$endpoint")
    launch gateway-1 gateway "${common[@]}" --listen "$HOST:$PORT" --advertise-url "http://$HOST:$PORT"
    launch gateway-2 gateway "${common[@]}" --listen "$HOST:$((PORT + 1))" --advertise-url "http://$HOST:$((PORT + 1))"
    launch compactor compactor "${common[@]}" --interval-ms 1000

    local t0=$SECONDS
    for p in "$PORT" "$((PORT + 1))"; do
        until ready "$p"; do
            for name in gateway-1 gateway-2 compactor; do
                if ! alive_pid "$name" >/dev/null; then
                    tail -n 30 "$STATE/$name.log" >&2 || true
                    die "$name exited during start (log above)"
                fi
            done
            ((SECONDS - t0 < TIMEOUT)) || die "gateway on port $p not ready within ${TIMEOUT}s"
            sleep 0.2
        done
    done
    log "ready after $((SECONDS - t0)) s: http://$HOST:$PORT and http://$HOST:$((PORT + 1)) on $backend ($endpoint, bucket $BUCKET)"
}

cmd_stop() {
    local s3
    for p in gateway-1 gateway-2 compactor; do
        stop_one "$p"
    done
    if [[ -f "$STATE/s3-started-here" ]]; then
        s3="$(cat "$STATE/s3-started-here")"
        rm -f "$STATE/s3-started-here"
        "$s3" stop
    fi
}

cmd_status() {
    local ok=0
    for p in "$PORT" "$((PORT + 1))"; do
        if ready "$p"; then echo "gateway on http://$HOST:$p ready"; else
            echo "gateway on http://$HOST:$p not ready"
            ok=1
        fi
    done
    if pid="$(alive_pid compactor)"; then echo "compactor running (pid $pid)"; else
        echo "compactor not running"
        ok=1
    fi
    return "$ok"
}

free_port_pair() {
    local p
    for ((p = 20000 + RANDOM % 20000; ; p += 2)); do
        if ! port_in_use "$p" && ! port_in_use "$((p + 1))"; then
            echo "$p"
            return
        fi
    done
}

# Keys under PREFIX in the stack's bucket (a signed ListObjectsV2; both servers accept it).
# The prefix's slashes are percent-encoded, as SigV4's canonical query string has them.
s3_keys() {
    local xml
    xml="$(curl -sf --max-time 10 --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        "$ENDPOINT/$BUCKET?list-type=2&prefix=${1//\//%2F}")" || die "listing $ENDPOINT/$BUCKET/$1 failed"
    grep -o '<Key>[^<]*</Key>' <<<"$xml" | sed -e 's/<[^>]*>//g' || true
}

cmd_smoke() {
    local backend="${1:-localstack}" t0=$SECONDS topic body got
    [[ -n "${SLUICE_STACK_PORT:-}" ]] || set_port "$(free_port_pair)"
    # A fresh bucket: no lease of an earlier run to wait for, and every key found is this run's.
    BUCKET="$BUCKET-smoke-$(date +%s)-$RANDOM"
    trap cmd_stop EXIT
    cmd_start "$backend"
    local gw1="http://$HOST:$PORT" gw2="http://$HOST:$((PORT + 1))"
    topic="smoke-$(date +%s)-$RANDOM"
    curl -sf --max-time 30 -X POST "$gw1/v1/topics" -H 'content-type: application/json' \
        -d "{\"name\":\"$topic\",\"partitions\":1}" >/dev/null || die "creating topic $topic failed"
    body="$(curl -sf --max-time 30 -X POST "$gw1/v1/topics/$topic/records" -H 'content-type: application/json' \
        -H "Idempotency-Key: $topic-1" -d '{"records":[{"key":"k","value":"hello from gateway-1"}]}')" ||
        die "produce through gateway-1 failed"
    log "produced through gateway-1: $body"
    got="$(curl -sf --max-time 30 "$gw2/v1/topics/$topic/partitions/0/records?offset=0&limit=10&wait_ms=5000")" ||
        die "read through gateway-2 failed"
    log "read through gateway-2: $got"
    grep -q '"value":"hello from gateway-1"' <<<"$got" || die "gateway-2 did not return the record gateway-1 acked"
    grep -q '"offset":0' <<<"$got" || die "the record is not at offset 0"

    # The bucket shows the roles at work: a gateway holds a shard committer lease, the
    # compactor its lease, and the compactor folds the entry into a checkpoint (bounded wait).
    local keys i
    # The compactor takes its lease only when it has something to write: wait for it (bounded).
    for ((i = 0; i < 100; i++)); do
        keys="$(s3_keys leases/)"
        grep -q "leases/compactor/" <<<"$keys" && break
        sleep 0.2
    done
    grep -q "leases/committer-" <<<"$keys" || die "no shard committer lease in the bucket (keys: $keys)"
    grep -q "leases/compactor/" <<<"$keys" || die "no compactor lease in the bucket (keys: $keys)"
    for ((i = 0; i < 150; i++)); do
        [[ -n "$(s3_keys checkpoints/)" ]] && break
        sleep 0.2
    done
    [[ -n "$(s3_keys checkpoints/)" ]] || die "the compactor wrote no checkpoint within 30 s"
    log "bucket: committer and compactor leases, checkpoint $(s3_keys checkpoints/ | head -n 1)"
    log "smoke OK on $backend in $((SECONDS - t0)) s"
    trap - EXIT
    cmd_stop
    rm -rf "$STATE" # its logs; kept when the smoke fails
}

case "${1:-}" in
start) cmd_start "${2:-localstack}" ;;
stop) cmd_stop ;;
status) cmd_status ;;
smoke) cmd_smoke "${2:-localstack}" ;;
-h | --help | help) usage ;;
*)
    usage
    exit 2
    ;;
esac
