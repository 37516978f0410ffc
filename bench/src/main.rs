//! `sluice-bench`: benchmarks that print figures and compare them with a baseline measured in the
//! same run. Not tests: nothing here passes or fails on a timing.
//!
//! - `sluice-bench log`: commit throughput and latency of the log itself (no HTTP), several
//!   independent writers, against raw create-only PUTs of the same bytes (the store's ceiling).
//! - `sluice-bench http`: the `sluice` binary as a separate process (`sluice dev`, or a gateway on
//!   S3): produce throughput and ack latency of concurrent HTTP producers, end-to-end latency to
//!   long-polling readers at a fixed rate, and the gateway's RSS, against an in-process HTTP +
//!   JSON server that stores nothing (the ceiling of the HTTP path).
//! - `sluice-bench direct`: read throughput of the SDK's direct consumer (straight from the
//!   bucket) against the same records through a gateway, on a local folder and on S3.
//! - `sluice-bench queue`: queue mode against a `sluice` process: receive+ack throughput of 16
//!   receivers, receive / ack latency, redelivery latency after a timeout, object writes per
//!   1,000 acks.
//! - `sluice-bench filter`: bytes read from the store by a filtered scan (skipping index objects
//!   by their summaries) against an unfiltered scan of the same 1M-record partition.
//! - `sluice-bench hot`: one hot topic through 1..16 gateways on a simulated S3 Standard bucket,
//!   every gateway committing itself (the baseline) against the elected shard committer.
//! - `sluice-bench tables`: the compactor's Parquet throughput (MiB/s of records) and the
//!   table's size against the raw data objects of the same records.
//! - `sluice-bench delayed`: delivery lag after due of delayed records with 1,000,000 pending,
//!   the mover's object requests per minute while idle, and RSS, against nothing pending.
//! - `sluice-bench topics`: the compactor's object PUTs per minute and the objects in the
//!   bucket for the same load over 10, 1,000 and 100,000 topics, against the 10-topic run.
//! - `sluice-bench seek`: object requests, bytes and latency of a timestamp seek on partitions of
//!   10^4, 10^6 and 10^7 records, cold and warm, against a read by offset of the same records.
//! - `sluice-bench curves`: scaling curves of `sluice dev` as producers (1 … 64), partitions
//!   (1 … 1,000) and topics (10 … 100,000) grow, as tables and PNG plots (`docs/bench/`).
//! - `sluice-bench peers`: Sluice (`sluice dev`, gateways on LocalStack and SeaweedFS) against
//!   NATS JetStream, Redis Streams and RabbitMQ quorum queues under one load, Sluice's ratio to
//!   each, then the cost model from counted object requests (`scripts/bench.sh`).

mod cost;
mod curves;
mod delayed_bench;
mod direct_bench;
mod filter_bench;
mod group_bench;
mod hot_bench;
mod http_bench;
mod log_bench;
mod peer_clients;
mod peer_queue;
mod peer_servers;
mod peers_bench;
mod procstat;
mod queue_bench;
mod seek_bench;
mod stats;
mod tables_bench;
mod topics_bench;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sluice-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Commit throughput/latency and object requests per GiB of the log (no HTTP).
    Log(log_bench::Args),
    /// HTTP produce throughput, ack and end-to-end latency, and RSS of a `sluice` gateway.
    Http(http_bench::Args),
    /// Direct reads from the bucket (SDK) vs the same records through a gateway.
    Direct(direct_bench::Args),
    /// Consumer-group poll + commit throughput and object writes per 1,000 commits.
    Groups(group_bench::Args),
    /// Queue mode: receive+ack throughput, redelivery latency, object writes per 1,000 acks.
    Queue(queue_bench::Args),
    /// Store bytes read by a filtered scan (1% match) against an unfiltered one.
    Filter(filter_bench::Args),
    /// One hot topic through G gateways on simulated S3 Standard: direct commits vs the
    /// elected shard committer.
    Hot(hot_bench::Args),
    /// Parquet table throughput of the compactor and size against the raw segments.
    Tables(tables_bench::Args),
    /// Delayed records: delivery lag after due with 1,000,000 pending, idle requests, RSS.
    Delayed(delayed_bench::Args),
    /// Compactor PUTs per minute and objects for the same load over 10 … 100,000 topics.
    Topics(topics_bench::Args),
    /// Time-travel cost: requests, bytes and latency of a timestamp seek, cold and warm, on
    /// 10^4 … 10^7-record partitions against a read by offset of the same records.
    Seek(seek_bench::Args),
    /// Scaling curves (producers, partitions, topics) as tables and PNG plots.
    Curves(curves::Args),
    /// Sluice against NATS JetStream, Redis Streams and RabbitMQ under one load, then the
    /// object-store cost model (scripts/bench.sh installs and runs everything).
    Peers(peers_bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match cli.command {
        Command::Log(args) => rt.block_on(log_bench::run(args)),
        Command::Http(args) => rt.block_on(http_bench::run(args)),
        Command::Direct(args) => rt.block_on(direct_bench::run(args)),
        Command::Groups(args) => rt.block_on(group_bench::run(args)),
        Command::Queue(args) => rt.block_on(queue_bench::run(args)),
        Command::Filter(args) => rt.block_on(filter_bench::run(args)),
        Command::Hot(args) => rt.block_on(hot_bench::run(args)),
        Command::Tables(args) => rt.block_on(tables_bench::run(args)),
        Command::Delayed(args) => rt.block_on(delayed_bench::run(args)),
        Command::Topics(args) => rt.block_on(topics_bench::run(args)),
        Command::Seek(args) => rt.block_on(seek_bench::run(args)),
        Command::Curves(args) => rt.block_on(curves::run(args)),
        Command::Peers(args) => rt.block_on(peers_bench::run(args)),
    }
}
