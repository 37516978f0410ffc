//! `sluice-bench peers`: Sluice and its peers in one run, under one load from this one load
//! generator (issue 17). Every system gets `producers` producers, each sending a batch of
//! `batch` values of `record_bytes` (the same bytes: a send stamp then random symbols, so no
//! system gains from compression) and waiting for the acknowledgement of all of them before the
//! next, for `seconds`, with nobody reading; only acknowledged records count (records/s, ack
//! latency, CPU per GiB). Acknowledgements are durable where the peer offers it. Then the same
//! producers paced to `rate_mib` (the same offered load for every system) for `seconds` more,
//! with a consumer reading while they produce, from the end of what was written before:
//! end-to-end latency, send → receipt (see `peer_clients` for why the phases are apart).
//!
//! Systems: `sluice-dev` (`sluice dev`, fsync on), `sluice-localstack` and `sluice-seaweedfs`
//! (`sluice gateway --with-compactor` on those S3 servers), `nats` (JetStream, file storage;
//! acks before fsync), `redis-always` / `redis-everysec` (Streams, AOF `appendfsync`),
//! `rabbitmq` (quorum queue, publisher confirms). Peers run as local processes started here
//! (see `peer_servers`), measured through `/proc` (CPU seconds and peak RSS of the server's
//! process tree; for Sluice on S3 the gateway only, not the S3 server). Then the cost model
//! (`cost`). Figures only, nothing passes or fails on a timing.

use crate::cost;
use crate::http_bench::{
    self, create_topic, end_offsets, print_log_summary, run_producers, sluice_bin, spawn_gateway,
    wait_healthy, GatewayOpts, Phase, Shape, Tally,
};
use crate::peer_clients::{self, E2e, Load, Sender, Values};
use crate::peer_queue;
use crate::peer_servers::{self, Server};
use crate::procstat::{self, Usage};
use crate::stats::mib;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ALL: &str =
    "sluice-dev,sluice-localstack,sluice-seaweedfs,nats,redis-always,redis-everysec,rabbitmq";

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Systems to run, in order; one may be listed more than once (paired rounds: no run pays
    /// for the deletions of another, every folder is removed at the end).
    #[arg(long, value_delimiter = ',', default_value = ALL)]
    systems: Vec<String>,
    /// Concurrent producers, each with one batch in flight.
    #[arg(long, default_value_t = 16)]
    producers: usize,
    /// Records per batch (one produce request for Sluice; one pipeline / set of publishes
    /// awaited together for the peers).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Seconds of load per system.
    #[arg(long, env = "SLUICE_BENCH_SECONDS", default_value_t = 10.0)]
    seconds: f64,
    /// Offered load of the end-to-end phase, MiB/s of record values over all producers.
    #[arg(long, default_value_t = 10.0)]
    rate_mib: f64,
    /// Seconds the consumer may take after the producers stop to read every acked record.
    #[arg(long, default_value_t = 15.0)]
    drain_seconds: f64,
    /// Partitions of Sluice's topic (one long-poll reader each).
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    #[arg(long, env = "SLUICE_BENCH_LOCALSTACK")]
    localstack: Option<String>,
    #[arg(long, env = "SLUICE_BENCH_SEAWEEDFS")]
    seaweedfs: Option<String>,
    #[arg(long, env = "SLUICE_BENCH_BUCKET", default_value = "sluice-bench")]
    bucket: String,
    #[arg(long)]
    sluice_bin: Option<PathBuf>,
    /// Seconds of ingest for the cost model (0: no cost model).
    #[arg(long, env = "SLUICE_BENCH_COST_SECONDS", default_value_t = 10.0)]
    cost_seconds: f64,
    /// Produce lingers (ms) of the cost model's sweep (empty: no sweep). A flush holds what
    /// arrives within one linger, so PUTs per GiB fall as it grows, and ack latency rises.
    #[arg(long, value_delimiter = ',', default_value = "10,100,250")]
    cost_lingers_ms: Vec<u64>,
    /// Producers of the sweep: enough batches in flight to fill the longer lingers' flushes
    /// (closed-loop producers bound a flush by what they have in flight).
    #[arg(long, default_value_t = 256)]
    cost_sweep_producers: usize,
    /// Seconds of each idle window (one topic, then `idle_topics`). The default spans one
    /// compactor retention pass (every 60 s), which lists every topic: a shorter window misses
    /// what that costs per idle topic.
    #[arg(long, env = "SLUICE_BENCH_IDLE_SECONDS", default_value_t = 60.0)]
    idle_seconds: f64,
    #[arg(long, default_value_t = 100)]
    idle_topics: usize,
    #[command(flatten)]
    queue: peer_queue::QueueArgs,
}

/// One line of the table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub system: String,
    pub records_s: f64,
    pub mib_s: f64,
    pub ack_p50: f64,
    pub ack_p99: f64,
    pub e2e_p50: f64,
    pub e2e_p99: f64,
    pub peak_rss_mib: f64,
    pub cpu_s_per_gib: f64,
    pub errors: u64,
    /// Acked records the consumer had not read at the end of the drain time.
    pub unread: u64,
    pub note: String,
}

impl Row {
    fn new(system: &str, note: String, mut produce: Phase, mut e2e: Tally, unread: u64) -> Self {
        let secs = produce.elapsed.as_secs_f64().max(1e-9);
        let t = &mut produce.tally;
        Row {
            system: system.to_string(),
            records_s: t.records as f64 / secs,
            mib_s: mib(t.bytes) / secs,
            ack_p50: t.acks.quantile_ms(0.5),
            ack_p99: t.acks.quantile_ms(0.99),
            e2e_p50: e2e.acks.quantile_ms(0.5),
            e2e_p99: e2e.acks.quantile_ms(0.99),
            errors: t.errors + e2e.errors,
            unread,
            note,
            ..Default::default()
        }
    }

    /// CPU per GiB of the throughput phase (`before` → `after`, `bytes` acked in it) and the
    /// peak RSS over both phases (`end`, after the end-to-end phase).
    fn usage(
        &mut self,
        before: Option<Usage>,
        after: Option<Usage>,
        end: Option<Usage>,
        bytes: u64,
    ) {
        if let (Some(b), Some(a)) = (before, after) {
            self.peak_rss_mib = end.unwrap_or(a).peak_rss_mib;
            let gib = bytes as f64 / (1024.0 * 1024.0 * 1024.0);
            self.cpu_s_per_gib = if gib > 0.0 {
                (a.cpu_s - b.cpu_s) / gib
            } else {
                f64::NAN
            };
        } else {
            self.peak_rss_mib = f64::NAN;
            self.cpu_s_per_gib = f64::NAN;
        }
    }
}

fn num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "-".into()
    }
}

/// The table: one line per system, then its notes.
pub fn format_table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<18} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>7}",
        "system",
        "rec/s",
        "MiB/s",
        "ack p50",
        "ack p99",
        "e2e p50",
        "e2e p99",
        "peak RSS",
        "CPU s/GiB",
        "errors",
        "unread"
    );
    let _ = writeln!(
        o,
        "{:<18} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>7}",
        "", "", "", "ms", "ms", "ms", "ms", "MiB", "", "", ""
    );
    for r in rows {
        let _ = writeln!(
            o,
            "{:<18} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>7}",
            r.system,
            num(r.records_s, 0),
            num(r.mib_s, 1),
            num(r.ack_p50, 2),
            num(r.ack_p99, 2),
            num(r.e2e_p50, 1),
            num(r.e2e_p99, 1),
            num(r.peak_rss_mib, 0),
            num(r.cpu_s_per_gib, 1),
            r.errors,
            r.unread,
        );
    }
    for r in rows.iter().filter(|r| !r.note.is_empty()) {
        let _ = writeln!(o, "  {}: {}", r.system, r.note);
    }
    o
}

/// Sluice's ratios to each peer: records/s (higher is better for Sluice when > 1) and ack p99
/// (peer ÷ Sluice: > 1 means Sluice acks faster).
pub fn format_ratios(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let sluice: Vec<&Row> = rows
        .iter()
        .filter(|r| r.system.starts_with("sluice"))
        .collect();
    let peers: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.system.starts_with("sluice"))
        .collect();
    if sluice.is_empty() || peers.is_empty() {
        return o;
    }
    let mut block = |title: &str, ratio: &dyn Fn(&Row, &Row) -> f64| {
        let _ = write!(o, "{title:<30}");
        for p in &peers {
            let _ = write!(o, " {:>15}", p.system);
        }
        o.push('\n');
        for s in &sluice {
            let _ = write!(o, "{:<30}", s.system);
            for p in &peers {
                let _ = write!(o, " {:>14}x", num(ratio(s, p), 2));
            }
            o.push('\n');
        }
    };
    block("ratio: records/s, sluice ÷ peer", &|s, p| {
        s.records_s / p.records_s
    });
    block("ratio: ack p99, peer ÷ sluice", &|s, p| {
        p.ack_p99 / s.ack_p99
    });
    o
}

/// The targets against this run's rows.
pub fn format_targets(rows: &[Row]) -> String {
    let find = |name: &str| rows.iter().find(|r| r.system == name);
    let mut o = String::new();
    let Some(dev) = find("sluice-dev") else {
        return "targets: sluice-dev not run\n".into();
    };
    let mut check = |what: &str, peer: &str, factor: f64| {
        if let Some(p) = find(peer) {
            let ratio = dev.records_s / p.records_s;
            o.push_str(&format!(
                "  target {what}: sluice-dev {:.0} rec/s vs {peer} {:.0} rec/s = {ratio:.2}x (want >= {factor}x): {}\n",
                dev.records_s,
                p.records_s,
                if ratio >= factor { "MET" } else { "NOT MET" }
            ));
        }
    };
    check("durable Sluice >= NATS JetStream", "nats", 1.0);
    check(">= 3x Redis appendfsync always", "redis-always", 3.0);
    check(">= 3x RabbitMQ quorum queue", "rabbitmq", 3.0);
    o
}

// ---------------------------------------------------------------------------------------------
// Sluice

async fn sluice_system(
    system: &str,
    bin: &Path,
    endpoint: Option<&str>,
    args: &Args,
    dir: &Path,
    client: &reqwest::Client,
) -> Result<Row, String> {
    let run_id = sluice_core::ids::new_ulid(sluice_core::clock::system().now_ms()).to_string();
    let backend = if endpoint.is_some() { "s3" } else { "dev" };
    let opts = GatewayOpts {
        endpoint,
        bucket: &args.bucket,
        linger_ms: None,
        max_pending_mib: None,
    };
    let mut gw = spawn_gateway(bin, backend, &opts, dir, &run_id)?;
    let r = sluice_measure(system, &mut gw, args, client).await;
    let log = gw.log.clone();
    drop(gw);
    print_log_summary(&log);
    r
}

async fn sluice_measure(
    system: &str,
    gw: &mut http_bench::Gateway,
    args: &Args,
    client: &reqwest::Client,
) -> Result<Row, String> {
    wait_healthy(gw, client).await?;
    let pid = gw.pid();
    let base = gw.base.clone();
    create_topic(client, &base, args.partitions).await?;
    let shape = Arc::new(Shape::with(args.batch, args.record_bytes, true));
    let start = Instant::now();
    let url = format!("{base}/v1/topics/bench/records?ack=durable");
    // 1. Throughput, nobody reading.
    let before = procstat::tree_usage(pid);
    let phase = run_producers(
        client,
        &url,
        &shape,
        args.producers,
        args.seconds,
        None,
        start,
    )
    .await;
    let after = procstat::tree_usage(pid);
    let ends = end_offsets(client, &base).await?;
    // 2. End to end at the offered rate, a long-poll reader per partition from the end.
    let fixed = http_bench::fixed_rate(
        client,
        &base,
        &url,
        &shape,
        args.producers,
        args.seconds,
        args.rate_mib * 1024.0 * 1024.0,
        start,
        &ends,
        Duration::from_secs_f64(args.drain_seconds),
    )
    .await?;
    let e2e = fixed.e2e;
    let after_e2e = procstat::tree_usage(pid);
    let targets = fixed.targets;
    let acked_e2e = fixed.phase.tally.records;
    let stored: u64 = targets.iter().sum();
    let paced_errors = fixed.phase.tally.errors;
    let mut note = match system {
        "sluice-dev" => "sluice dev on a temp folder, fsync on, ack=durable".to_string(),
        _ => "sluice gateway --with-compactor, ack=durable (the S3 server's own CPU and memory not counted)".to_string(),
    };
    if stored < phase.tally.records + acked_e2e {
        note.push_str(&format!(
            "; FEWER records stored ({stored}) than acked ({})",
            phase.tally.records + acked_e2e
        ));
    }
    for m in phase
        .tally
        .error_samples
        .iter()
        .chain(&e2e.error_samples)
        .take(3)
    {
        note.push_str(&format!("; error: {}", http_bench::truncate(m, 160)));
    }
    let bytes = phase.tally.bytes;
    let unread = acked_e2e.saturating_sub(e2e.records);
    let mut row = Row::new(system, note, phase, e2e, unread);
    row.errors += paced_errors;
    row.usage(before, after, after_e2e, bytes);
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// Peers

/// Both phases on a peer: `senders(name)` connects producers to stream or queue `name`,
/// `consumer(name)` a consumer of it from its start. The end-to-end phase uses a fresh one.
async fn peer_run<S, FS, FSF, FC, FCF>(
    system: &str,
    server: &mut Server,
    senders: FS,
    consumer: FC,
    load: Load,
    note: &str,
) -> Result<Row, String>
where
    S: Sender,
    FS: Fn(&'static str) -> FSF,
    FSF: std::future::Future<Output = Result<Vec<S>, String>>,
    FC: Fn(&'static str) -> FCF,
    FCF: std::future::Future<Output = Result<Values, String>>,
{
    let pid = server.pid();
    let producers = senders("bench").await?;
    let before = procstat::tree_usage(pid);
    let produce = peer_clients::throughput(producers, load).await;
    let after = procstat::tree_usage(pid);
    let values = consumer("bench-e2e").await?;
    let producers = senders("bench-e2e").await?;
    let E2e {
        produce: paced,
        e2e,
        unread,
    } = peer_clients::end_to_end(producers, values, load).await;
    let after_e2e = procstat::tree_usage(pid);
    let mut note = format!("{}; {note}", server.version);
    if let Some(e) = server.exited() {
        note.push_str(&format!("; the server EXITED: {e}"));
    }
    for m in produce
        .tally
        .error_samples
        .iter()
        .chain(&paced.tally.error_samples)
        .chain(&e2e.error_samples)
        .take(3)
    {
        note.push_str(&format!("; error: {}", http_bench::truncate(m, 160)));
    }
    let bytes = produce.tally.bytes;
    let mut row = Row::new(system, note, produce, e2e, unread);
    row.errors += paced.tally.errors;
    row.usage(before, after, after_e2e, bytes);
    Ok(row)
}

async fn peer_system(system: &str, args: &Args, dir: &Path) -> Result<Row, String> {
    let load = Load {
        batch: args.batch,
        record_bytes: args.record_bytes,
        seconds: args.seconds,
        rate: args.rate_mib * 1024.0 * 1024.0,
        drain: Duration::from_secs_f64(args.drain_seconds),
    };
    let sub = dir.join(system);
    std::fs::create_dir_all(&sub).map_err(|e| e.to_string())?;
    let limit = Duration::from_secs(90);
    let n = args.producers;
    match system {
        "nats" => {
            let mut s = peer_servers::nats(&sub)?;
            peer_servers::wait_port(&mut s, limit).await?;
            let port = s.port;
            peer_run(
                system,
                &mut s,
                |name| peer_clients::nats_senders(port, n, name),
                |name| peer_clients::nats_consumer(port, name),
                load,
                "JetStream, file storage; acks BEFORE fsync (sync_interval default 2 min)",
            )
            .await
        }
        "redis-always" | "redis-everysec" => {
            let fsync = system.trim_start_matches("redis-");
            let mut s = peer_servers::redis(&sub, fsync)?;
            peer_servers::wait_port(&mut s, limit).await?;
            let port = s.port;
            let note = if fsync == "always" {
                "Streams XADD, AOF appendfsync always (fsync before the reply)"
            } else {
                "Streams XADD, AOF appendfsync everysec (acks before fsync; up to 1 s lost)"
            };
            peer_run(
                system,
                &mut s,
                |name| peer_clients::redis_senders(port, n, name),
                |name| peer_clients::redis_consumer(port, name),
                load,
                note,
            )
            .await
        }
        "rabbitmq" => {
            let mut s = peer_servers::rabbitmq(&sub)?;
            peer_servers::wait_port(&mut s, limit).await?;
            let port = s.port;
            peer_clients::ready(Duration::from_secs(60), || peer_clients::rabbit_ping(port))
                .await?;
            peer_run(
                system,
                &mut s,
                |name| peer_clients::rabbit_senders(port, n, name),
                |name| peer_clients::rabbit_consumer(port, name),
                load,
                "quorum queue (1 node), persistent messages, publisher confirms",
            )
            .await
        }
        other => Err(format!("unknown system {other} (known: {ALL})")),
    }
}

pub async fn run(args: Args) {
    println!(
        "sluice-bench peers: {} producers x {}-record batches of {} B values (send stamp + random symbols), one batch in flight per producer, {} s per system back to back with nobody reading (records/s, ack, CPU; only acked records count), then {} s at {} MiB/s with a consumer reading while producing (e2e)",
        args.producers, args.batch, args.record_bytes, args.seconds, args.seconds, args.rate_mib
    );
    let Some((client, dir)) = crate::stats::client_and_dir() else {
        return;
    };
    let bin = sluice_bin(args.sluice_bin.as_ref());
    let mut rows = Vec::new();
    for system in &args.systems {
        // Every system starts with the page cache written back (durable peers fsync too).
        http_bench::flush_page_cache();
        let t0 = Instant::now();
        let r = match system.as_str() {
            "sluice-dev" | "sluice-localstack" | "sluice-seaweedfs" => {
                let endpoint = match system.as_str() {
                    "sluice-localstack" => args.localstack.as_deref(),
                    "sluice-seaweedfs" => args.seaweedfs.as_deref(),
                    _ => None,
                };
                match (&bin, system.as_str(), endpoint) {
                    (Err(e), _, _) => Err(e.clone()),
                    (_, "sluice-localstack" | "sluice-seaweedfs", None) => Err(format!(
                        "no endpoint (--{} or SLUICE_BENCH_{})",
                        system.trim_start_matches("sluice-"),
                        system.trim_start_matches("sluice-").to_uppercase()
                    )),
                    (Ok(b), _, ep) => {
                        sluice_system(system, b, ep, &args, dir.path(), &client).await
                    }
                }
            }
            other => peer_system(other, &args, dir.path()).await,
        };
        match r {
            Ok(row) => {
                println!(
                    "  {system}: {:.0} rec/s, ack p99 {:.1} ms, e2e p99 {:.1} ms ({} s)",
                    row.records_s,
                    row.ack_p99,
                    row.e2e_p99,
                    t0.elapsed().as_secs()
                );
                rows.push(row);
            }
            Err(e) => println!("  {system}: SKIPPED: {e}"),
        }
    }
    println!();
    print!("{}", format_table(&rows));
    println!();
    print!("{}", format_ratios(&rows));
    print!("{}", format_targets(&rows));
    println!();
    peer_queue::run(&args.queue, dir.path()).await;

    if args.cost_seconds > 0.0 {
        println!();
        match cost::measure(
            &client,
            args.producers,
            args.cost_seconds,
            3,
            cost::S3_LINGER,
        )
        .await
        {
            Ok((m, run)) => {
                println!("{}", run.note);
                println!(
                    "  PUT/GET per GiB ingested by area of the bucket: {}",
                    run.by_area
                );
                print!("{}", cost::report(&m, &cost::SCENARIO));
                let b = cost::monthly(&m, &cost::SCENARIO, &cost::S3_STANDARD);
                println!(
                    "  target modelled cost on S3 Standard <= $6,000/month: requests {} + storage {} = {}: {} (requests alone: {})",
                    cost::dollars(b.requests_total()),
                    cost::dollars(b.storage),
                    cost::dollars(b.total()),
                    if b.total() <= 6000.0 { "MET" } else { "NOT MET" },
                    if b.requests_total() <= 6000.0 { "within" } else { "over" },
                );
            }
            Err(e) => println!("cost model: FAILED: {e}"),
        }
        if !args.cost_lingers_ms.is_empty() {
            let lingers: Vec<Duration> = args
                .cost_lingers_ms
                .iter()
                .map(|&ms| Duration::from_millis(ms))
                .collect();
            print!(
                "{}",
                cost::linger_sweep(
                    &client,
                    args.cost_sweep_producers,
                    args.cost_seconds,
                    3,
                    &lingers
                )
                .await
            );
        }
        if args.idle_seconds > 0.0 {
            match cost::idle(
                &client,
                Duration::from_secs_f64(args.idle_seconds),
                args.idle_topics,
            )
            .await
            {
                Ok(line) => println!("{line}"),
                Err(e) => println!("idle: FAILED: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, records_s: f64, ack_p99: f64) -> Row {
        Row {
            system: system.into(),
            records_s,
            mib_s: records_s / 1024.0,
            ack_p50: ack_p99 / 2.0,
            ack_p99,
            e2e_p50: 3.0,
            e2e_p99: 9.0,
            peak_rss_mib: 100.0,
            cpu_s_per_gib: 12.5,
            ..Default::default()
        }
    }

    #[test]
    fn the_table_has_a_line_per_system_and_its_notes() {
        let mut a = row("sluice-dev", 120_000.0, 20.0);
        a.note = "fsync on".into();
        let mut b = row("nats", 60_000.0, 40.0);
        b.cpu_s_per_gib = f64::NAN;
        let t = format_table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[0].starts_with("system"));
        assert!(lines[2].starts_with("sluice-dev") && lines[2].contains("120000"));
        assert!(lines[3].starts_with("nats") && lines[3].contains(" - "));
        assert_eq!(lines[4], "  sluice-dev: fsync on");
        // Columns line up: every data line as long as the header.
        assert_eq!(lines[0].len(), lines[2].len());
        assert_eq!(lines[0].len(), lines[3].len());
    }

    #[test]
    fn ratios_divide_sluice_by_each_peer() {
        let rows = [
            row("sluice-dev", 120_000.0, 20.0),
            row("nats", 60_000.0, 40.0),
            row("redis-always", 30_000.0, 10.0),
        ];
        let r = format_ratios(&rows);
        let lines: Vec<&str> = r.lines().collect();
        assert!(lines[1].starts_with("sluice-dev"));
        assert!(
            lines[1].contains("2.00x") && lines[1].contains("4.00x"),
            "{r}"
        );
        assert!(
            lines[3].contains("2.00x") && lines[3].contains("0.50x"),
            "{r}"
        );
        assert!(format_ratios(&rows[..1]).is_empty());
    }

    #[test]
    fn targets_say_met_or_not() {
        let rows = [
            row("sluice-dev", 90_000.0, 20.0),
            row("nats", 60_000.0, 40.0),
            row("redis-always", 40_000.0, 10.0),
        ];
        let t = format_targets(&rows);
        assert!(t.contains("NATS JetStream") && t.contains("1.50x") && t.contains(": MET"));
        assert!(t.contains("Redis") && t.contains("2.25x") && t.contains("NOT MET"));
        assert!(!t.contains("RabbitMQ"), "not run, not judged");
        assert!(format_targets(&rows[1..]).contains("not run"));
    }

    #[test]
    fn a_row_from_tallies() {
        let mut t = Tally {
            records: 1000,
            bytes: 1000 * 1024,
            ..Default::default()
        };
        t.acks.push(Duration::from_millis(4));
        let p = Phase {
            tally: t,
            elapsed: Duration::from_secs(2),
        };
        let mut r = Row::new("x", String::new(), p, Tally::default(), 7);
        assert_eq!(r.records_s, 500.0);
        assert!((r.mib_s - 0.48828125).abs() < 1e-9);
        assert_eq!(r.ack_p99, 4.0);
        assert!(r.e2e_p99.is_nan());
        assert_eq!(r.unread, 7);
        let b = Usage {
            cpu_s: 1.0,
            peak_rss_mib: 10.0,
            processes: 1,
        };
        let a = Usage {
            cpu_s: 3.0,
            peak_rss_mib: 50.0,
            processes: 1,
        };
        let end = Usage {
            cpu_s: 9.0,
            peak_rss_mib: 70.0,
            processes: 1,
        };
        // CPU of the throughput phase only; the peak over both phases.
        r.usage(Some(b), Some(a), Some(end), 1 << 29);
        assert_eq!(r.cpu_s_per_gib, 4.0);
        assert_eq!(r.peak_rss_mib, 70.0);
        r.usage(Some(b), Some(a), None, 1 << 29);
        assert_eq!(r.peak_rss_mib, 50.0);
    }
}
