#!/usr/bin/env bash
# Run the commit-protocol race test (4 independent writers racing create-only
# journal commits, checked by the history checker) against SeaweedFS, a second
# S3 implementation besides LocalStack.
#
# Usage: scripts/test-seaweedfs.sh
#
# Starts SeaweedFS with scripts/seaweedfs.sh (installing it into a venv on
# first use) unless one is already healthy, creates bucket sluice-test, runs
#   cargo test -p sluice-tests --test log concurrent_writers_s3 -- --nocapture
# and stops SeaweedFS again only if this run started it. Safe to run again.
# scripts/test.sh calls it as an extra suite.
#
# Environment:
#   CARGO_TARGET_DIR        build dir (default: $HOME/.cache/sluice-target)
#   SLUICE_SEAWEEDFS_PORT   SeaweedFS S3 port (default: 8333; PORT..PORT+14 used)
#   SLUICE_CACHE            SeaweedFS venv/log/data dir (default: $HOME/.cache/sluice)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
# export_test_s3_env
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"
T_START=$SECONDS
SEAWEEDFS_STARTED_HERE=0
STATUS="FAILED"
SW_PORT="${SLUICE_SEAWEEDFS_PORT:-8333}"
if [[ "$SW_PORT" == 8333 ]]; then
    SW_LOG="${SLUICE_CACHE:-$HOME/.cache/sluice}/seaweedfs.log"
else
    SW_LOG="${SLUICE_CACHE:-$HOME/.cache/sluice}/seaweedfs-$SW_PORT.log"
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
if [[ "${CI:-}" == true ]]; then
    export CARGO_TERM_COLOR=never
fi
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

section() {
    echo
    echo "==> [seaweedfs $((SECONDS - T_START))s] $*"
}

on_exit() {
    local rc=$?
    if ((rc != 0)) && [[ -s "$SW_LOG" ]]; then
        echo
        echo "==> last 30 lines of $SW_LOG"
        tail -n 30 "$SW_LOG" || true
    fi
    if ((SEAWEEDFS_STARTED_HERE)); then
        echo
        echo "==> stopping SeaweedFS started by this run"
        "$ROOT/scripts/seaweedfs.sh" stop || true
    fi
    if ((rc != 0)); then
        STATUS="FAILED"
    fi
    echo
    echo "==> scripts/test-seaweedfs.sh: $STATUS (exit $rc) after $((SECONDS - T_START)) s"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- S3 (SeaweedFS) -----------------------------------------------------------

section "SeaweedFS S3"
if "$ROOT/scripts/seaweedfs.sh" status >/dev/null 2>&1; then
    echo "SeaweedFS already running; using it and leaving it running"
    "$ROOT/scripts/seaweedfs.sh" start
else
    SEAWEEDFS_STARTED_HERE=1
    "$ROOT/scripts/seaweedfs.sh" start
fi
SW_ENDPOINT="$("$ROOT/scripts/seaweedfs.sh" endpoint)"
"$ROOT/scripts/seaweedfs.sh" bucket sluice-test

# SLUICE_TEST_S3_*, the identity scripts/seaweedfs.sh configures (SeaweedFS
# checks SigV4) and SLUICE_REQUIRE_S3=1: the test must fail, not skip, when S3
# is missing.
export_test_s3_env "$SW_ENDPOINT" sluice-test

# --- test ---------------------------------------------------------------------

section "cargo test -p sluice-tests --test log concurrent_writers_s3 -- --nocapture"
cargo test -p sluice-tests --test log concurrent_writers_s3 -- --nocapture

STATUS="OK"
