#!/usr/bin/env bash
# Durable embedded mode: `sluice dev` must fsync every segment and journal entry (the file and
# the directory entry that names it) before a produce is acknowledged, and `--no-fsync` must
# turn the syncs off.
#
# Usage: scripts/fsync-check.sh
#
# Builds the `sluice` binary (debug), runs `sluice dev` under `strace -f -y` (which prints the
# path of each fsynced file descriptor) on a temporary folder and a free loopback port, sends
# N sequential `ack=durable` produce requests (each its own flush: one segment, one journal
# entry) and counts the fsync/fdatasync calls on segment files, journal entry files and their
# directories. Fails unless every produce has its four syncs, and unless the same run with
# `--no-fsync` makes none at all. strace is installed with apt-get on first use (as root).
# Takes ~10 s.
#
# Environment:
#   CARGO_TARGET_DIR   build dir (default: $HOME/.cache/sluice-target)
#   SLUICE_FSYNC_N     produce requests per run (default: 40)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
SERVICE_SCRIPT="fsync-check.sh"
# apt_install, log, die
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
N="${SLUICE_FSYNC_N:-40}"

command -v strace >/dev/null 2>&1 || apt_install strace
command -v strace >/dev/null 2>&1 || die "strace still not found after installing it"
command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates

log "cargo build -p sluice-cli"
cargo build --quiet -p sluice-cli
SLUICE="$CARGO_TARGET_DIR/debug/sluice"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-fsync.XXXXXX")"
SERVER_PID=""
# SERVER_PID is strace's; stop the traced `sluice` (its child) and strace ends with it.
stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        local child
        child="$(pgrep -P "$SERVER_PID" || true)"
        if [[ -n "$child" ]]; then
            kill -TERM "$child" 2>/dev/null || true
        else
            kill -TERM "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    local rc=$?
    stop_server
    if ((rc != 0)) && [[ -f "$WORK/server.log" ]]; then
        log "last lines of the server's log:"
        tail -n 20 "$WORK/server.log" || true
    fi
    [[ -n "${SLUICE_FSYNC_KEEP:-}" ]] || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_dev NAME [FLAGS...]: run `sluice dev` under strace, produce N records one request at a
# time, stop it; the trace is in $WORK/NAME.trace, the data in $WORK/NAME.
run_dev() {
    local name="$1"
    shift
    local port base
    port="$(free_port)"
    base="http://127.0.0.1:$port"
    SLUICE_LOG=warn strace -f -y -qq -e trace=fsync,fdatasync -o "$WORK/$name.trace" \
        "$SLUICE" dev --data-dir "$WORK/$name" --listen "127.0.0.1:$port" "$@" \
        >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http_ok "$base/healthz" "$SERVER_PID" "sluice dev"
    curl -fsS -o /dev/null -X POST "$base/v1/topics" -H 'content-type: application/json' \
        -d '{"name":"durable","partitions":2}'
    for i in $(seq 1 "$N"); do
        curl -fsS -o /dev/null -X POST "$base/v1/topics/durable/records?ack=durable" \
            -H 'content-type: application/json' -d "{\"records\":[{\"value\":\"r$i\"}]}"
    done
    stop_server
}

# count NAME REGEX: sync calls in NAME's trace on a file descriptor whose path matches REGEX
# (a call strace splits into "<unfinished ...>" and "resumed" lines counts once).
count() {
    grep -cE "^[0-9]+ +f(data)?sync\([0-9]+<$WORK/$1/$2>" "$WORK/$1.trace" || true
}

run_dev on
seg_files="$(count on 'segments/[0-9A-Z]+#[0-9]+')"
seg_dirs="$(count on 'segments')"
journal_files="$(count on 'journal/[0-9]+/[0-9]+#[0-9]+')"
journal_dirs="$(count on 'journal/[0-9]+')"
log "fsync on:  $N produces -> segment files $seg_files, segments/ dir $seg_dirs," \
    "journal entry files $journal_files, journal dir $journal_dirs"

run_dev off --no-fsync
total_off="$(grep -cE 'f(data)?sync\(' "$WORK/off.trace" || true)"
log "--no-fsync: $N produces -> $total_off syncs"

fail=0
for v in "$seg_files" "$seg_dirs" "$journal_files" "$journal_dirs"; do
    if ((v < N)); then
        fail=1
    fi
done
if ((fail)); then
    die "FAILED: expected at least $N syncs of each kind (one per produce)"
fi
if ((total_off != 0)); then
    die "FAILED: --no-fsync still made $total_off syncs"
fi
log "OK"
