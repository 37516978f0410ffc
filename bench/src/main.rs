//! `sluice-bench`: benchmarks that print figures and compare them with a baseline measured in the
//! same run. Not tests: nothing here passes or fails on a timing.
//!
//! - `sluice-bench log`: commit throughput and latency of the log itself (no HTTP), several
//!   independent writers, against raw create-only PUTs of the same bytes (the store's ceiling).
//! - `sluice-bench http`: the `sluice` binary as a separate process (`sluice dev`, or a gateway on
//!   S3): produce throughput and ack latency of concurrent HTTP producers, end-to-end latency to
//!   long-polling readers at a fixed rate, and the gateway's RSS, against an in-process HTTP +
//!   JSON server that stores nothing (the ceiling of the HTTP path).
//! - `sluice-bench tables`: the compactor's Parquet throughput (MiB/s of records) and the
//!   table's size against the raw data objects of the same records.

mod http_bench;
mod log_bench;
mod stats;
mod tables_bench;

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
    /// Parquet table throughput of the compactor and size against the raw segments.
    Tables(tables_bench::Args),
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
        Command::Tables(args) => rt.block_on(tables_bench::run(args)),
    }
}
