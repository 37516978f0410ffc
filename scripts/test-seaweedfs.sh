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
SLUICE_TEST_S3_ENDPOINT="$("$ROOT/scripts/seaweedfs.sh" endpoint)"
"$ROOT/scripts/seaweedfs.sh" bucket sluice-test

export SLUICE_TEST_S3_ENDPOINT
export SLUICE_TEST_S3_BUCKET=sluice-test
# The identity scripts/seaweedfs.sh configures; SeaweedFS checks SigV4.
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
# Never look for credentials or a region anywhere but the variables above
# (in particular not the EC2 metadata address, which is off this machine).
export AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ENDPOINT AWS_ENDPOINT_URL
# The test must fail, not skip, when S3 is missing.
export SLUICE_REQUIRE_S3=1
echo "SLUICE_TEST_S3_ENDPOINT=$SLUICE_TEST_S3_ENDPOINT SLUICE_TEST_S3_BUCKET=$SLUICE_TEST_S3_BUCKET"

# --- test ---------------------------------------------------------------------

section "cargo test -p sluice-tests --test log concurrent_writers_s3 -- --nocapture"
cargo test -p sluice-tests --test log concurrent_writers_s3 -- --nocapture

STATUS="OK"
