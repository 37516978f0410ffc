#!/usr/bin/env bash
# Sluice against its peers in one run (issue 17): installs what it needs, starts it, runs one
# load from one Rust load generator (`sluice-bench peers`) against every system, stops
# everything it started, and prints one table, Sluice's ratios, and the cost model.
#
# Usage: scripts/bench.sh [extra `sluice-bench peers` arguments]
#
# What it does (safe to run again; nothing is installed twice):
#   1. apt-get installs nats-server, redis-server and rabbitmq-server if their binaries are
#      missing (Debian packages; as root). Their services are never started: the benchmark
#      starts each as its own process on 127.0.0.1 with a temp data folder and kills it by its
#      process group id when done.
#   2. cargo build --release -p sluice-cli -p sluice-bench.
#   3. Starts LocalStack (scripts/localstack.sh) and SeaweedFS (scripts/seaweedfs.sh) on their
#      own ports unless already running there, creates the bucket, and stops what it started
#      on exit.
#   4. Runs `sluice-bench peers` and keeps its output in $SLUICE_BENCH_OUT.
#
# Not part of scripts/test.sh (it takes minutes). Figures on a shared 2-core machine are noisy:
# compare the ratios of one run, not figures across runs.
#
# Environment:
#   SLUICE_BENCH_SECONDS        seconds of load per system (default 10)
#   SLUICE_BENCH_SYSTEMS        comma-separated systems (default: all; see --help of
#                               `sluice-bench peers`)
#   SLUICE_BENCH_S3             1 (default): start LocalStack and SeaweedFS; 0: skip the
#                               Sluice-on-S3 systems
#   SLUICE_BENCH_LOCALSTACK_PORT  (default 4576)   SLUICE_BENCH_SEAWEEDFS_PORT (default 8433)
#   SLUICE_BENCH_QUEUES         1 (default): also `sluice-bench queue` and `groups` on
#                               `sluice dev`, Sluice's side of the consuming figures
#   SLUICE_BENCH_CURVES         1 (default): also `sluice-bench curves` (scaling curves as tables
#                               and PNG plots into docs/bench/; ~3 min)
#   SLUICE_BENCH_OUT            where the output is kept (default: target/bench-peers.txt
#                               under CARGO_TARGET_DIR)
#   CARGO_TARGET_DIR            build dir (default: $HOME/.cache/sluice-target)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
# export_test_s3_env
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
LS_PORT="${SLUICE_BENCH_LOCALSTACK_PORT:-4576}"
SW_PORT="${SLUICE_BENCH_SEAWEEDFS_PORT:-8433}"
WANT_S3="${SLUICE_BENCH_S3:-1}"
OUT="${SLUICE_BENCH_OUT:-$CARGO_TARGET_DIR/bench-peers.txt}"
BUCKET=sluice-bench
LS_STARTED=0
SW_STARTED=0

section() { echo; echo "==> [bench $SECONDS s] $*"; }

on_exit() {
    local rc=$?
    if ((SW_STARTED)); then
        echo "==> stopping SeaweedFS started by this run"
        SLUICE_SEAWEEDFS_PORT="$SW_PORT" "$ROOT/scripts/seaweedfs.sh" stop || true
    fi
    if ((LS_STARTED)); then
        echo "==> stopping LocalStack started by this run"
        SLUICE_LOCALSTACK_PORT="$LS_PORT" "$ROOT/scripts/localstack.sh" stop || true
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. peers from Debian packages --------------------------------------------------------
section "peers (Debian packages)"
need=()
command -v nats-server >/dev/null 2>&1 || [[ -x /usr/sbin/nats-server ]] || need+=(nats-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || command -v rabbitmq-server >/dev/null 2>&1 \
    || need+=(rabbitmq-server)
if ((${#need[@]})); then
    if [[ "$(id -u)" != 0 ]]; then
        echo "bench.sh: missing ${need[*]} and not root: install them with apt-get" >&2
        exit 1
    fi
    echo "installing ${need[*]}"
    # policy-rc.d keeps the packages' services from starting (the benchmark starts its own).
    apt-get update -qq
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "${need[@]}"; then
        echo "bench.sh: apt-get install ${need[*]} FAILED" >&2
        exit 1
    fi
fi
for b in redis-server epmd; do
    command -v "$b" >/dev/null 2>&1 || { echo "bench.sh: $b missing after install" >&2; exit 1; }
done
echo "nats-server, redis-server, rabbitmq-server present (Kafka / Redpanda: no Debian package)"

# --- 2. build --------------------------------------------------------------------------------
section "cargo build --release -p sluice-cli -p sluice-bench"
cargo build --release -p sluice-cli -p sluice-bench
BENCH="$CARGO_TARGET_DIR/release/sluice-bench"

# --- 3. S3 servers -----------------------------------------------------------------------------
args=()
if [[ "$WANT_S3" == 1 ]]; then
    section "LocalStack on $LS_PORT, SeaweedFS on $SW_PORT"
    if ! SLUICE_LOCALSTACK_PORT="$LS_PORT" "$ROOT/scripts/localstack.sh" status >/dev/null 2>&1; then
        LS_STARTED=1
    fi
    SLUICE_LOCALSTACK_PORT="$LS_PORT" "$ROOT/scripts/localstack.sh" start
    SLUICE_LOCALSTACK_PORT="$LS_PORT" "$ROOT/scripts/localstack.sh" bucket "$BUCKET"
    if ! SLUICE_SEAWEEDFS_PORT="$SW_PORT" "$ROOT/scripts/seaweedfs.sh" status >/dev/null 2>&1; then
        SW_STARTED=1
    fi
    SLUICE_SEAWEEDFS_PORT="$SW_PORT" "$ROOT/scripts/seaweedfs.sh" start
    SLUICE_SEAWEEDFS_PORT="$SW_PORT" "$ROOT/scripts/seaweedfs.sh" bucket "$BUCKET"
    # The test/test identity both accept; no credentials looked up anywhere else.
    export_test_s3_env "http://127.0.0.1:$LS_PORT" "$BUCKET" >/dev/null
    export SLUICE_BENCH_LOCALSTACK="http://127.0.0.1:$LS_PORT"
    export SLUICE_BENCH_SEAWEEDFS="http://127.0.0.1:$SW_PORT"
    export SLUICE_BENCH_BUCKET="$BUCKET"
fi
if [[ -n "${SLUICE_BENCH_SYSTEMS:-}" ]]; then
    args+=(--systems "$SLUICE_BENCH_SYSTEMS")
elif [[ "$WANT_S3" != 1 ]]; then
    args+=(--systems "sluice-dev,nats,redis-always,redis-everysec,rabbitmq")
fi

# --- 4. run --------------------------------------------------------------------------------------
section "sluice-bench peers ${args[*]} $*"
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    "$BENCH" peers "${args[@]}" "$@"
    if [[ "${SLUICE_BENCH_QUEUES:-1}" == 1 ]]; then
        # Sluice's side of the consuming figures printed above for RabbitMQ and Redis.
        echo
        echo "--- sluice-bench queue --backends dev --receivers 16 (beside rabbitmq-queue)"
        "$BENCH" queue --backends dev --receivers 16 --records 100000 --in-flight 0
        echo
        echo "--- sluice-bench groups --backends dev --members 8 (beside redis-groups)"
        "$BENCH" groups --backends dev --members 8 --records 100000 --record-bytes 100
    fi
    if [[ "${SLUICE_BENCH_CURVES:-1}" == 1 ]]; then
        # Scaling curves (producers, partitions, topics) on `sluice dev`, PNGs into docs/bench/.
        echo
        echo "--- sluice-bench curves --out $ROOT/docs/bench"
        "$BENCH" curves --out "$ROOT/docs/bench"
    fi
} 2>&1 | tee "$OUT"
echo
echo "output kept in $OUT"
