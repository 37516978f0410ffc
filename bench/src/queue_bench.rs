//! `sluice-bench queue`: queue mode over HTTP against a `sluice` process (`sluice dev` on a temp
//! folder, or a gateway on S3): receive + ack throughput of concurrent receivers with receive and
//! ack latency, redelivery latency after a visibility timeout, and the object writes (state-log
//! entries and snapshots, counted in the bucket) per 1,000 acks. Figures only, no pass / fail.

use crate::http_bench::{
    print_log_summary, print_rss, sluice_bin, spawn_gateway, wait_healthy, GatewayOpts,
};
use crate::stats::Latencies;
use futures::TryStreamExt;
use serde_json::{json, Value};
use sluice_core::clock;
use sluice_core::store::{self, StoreOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// `dev` and / or `s3` (needs --endpoint).
    #[arg(long, value_delimiter = ',', default_value = "dev,s3")]
    backends: Vec<String>,
    /// Concurrent receivers, each receiving then acking one batch at a time.
    #[arg(long, default_value_t = 16)]
    receivers: usize,
    /// `max` of each receive.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Records produced before the throughput phase.
    #[arg(long, default_value_t = 300_000)]
    records: usize,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
    /// Seconds of the throughput phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Records left to expire in the redelivery phase.
    #[arg(long, default_value_t = 200)]
    redeliveries: usize,
    /// Also build, in process, a queue state with this many records in flight and print its
    /// memory, snapshot size and planning times (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    in_flight: u64,
    #[arg(long)]
    sluice_bin: Option<PathBuf>,
    /// Another `sluice` binary (e.g. a build from before a change) measured in the same run,
    /// alternating with the one under test, each figure printed next to the other.
    #[arg(long)]
    baseline_sluice_bin: Option<PathBuf>,
    /// With --baseline-sluice-bin: how many times to alternate baseline and build under test.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    #[arg(long, env = "SLUICE_TEST_S3_ENDPOINT")]
    endpoint: Option<String>,
    #[arg(long, env = "SLUICE_TEST_S3_BUCKET", default_value = "sluice-test")]
    bucket: String,
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Result<Value, String> {
    let r = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {v}"));
    }
    Ok(v)
}

/// Objects under the queue's state-log prefix: (entries, snapshots).
async fn state_objects(store_url: &str, endpoint: Option<&str>) -> Result<(u64, u64), String> {
    let s = store::open(
        store_url,
        &StoreOptions {
            endpoint: endpoint.map(str::to_string),
            ..StoreOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let prefix = object_store::path::Path::from("queues/qbench/state");
    let metas: Vec<_> = s
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let count = |part: &str| {
        metas
            .iter()
            .filter(|m| m.location.as_ref().contains(part))
            .count() as u64
    };
    Ok((count("/log/"), count("/snap/")))
}

/// Produce `records` records of `record_bytes` bytes to `qbench`, 1,000 per request, 8 at once.
async fn fill(
    client: &reqwest::Client,
    base: &str,
    records: usize,
    record_bytes: usize,
) -> Result<(), String> {
    let value = "x".repeat(record_bytes);
    let per = 1000.min(records.max(1));
    let batches = records.div_ceil(per);
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, base, value, next) = (
                client.clone(),
                base.to_string(),
                value.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if b >= batches {
                        return Ok::<(), String>(());
                    }
                    let n = per.min(records - b * per);
                    let records: Vec<Value> = (0..n).map(|_| json!({"value": value})).collect();
                    post(
                        &client,
                        format!("{base}/v1/topics/qbench/records?ack=durable"),
                        json!({"records": records}),
                    )
                    .await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    acked: u64,
    receive: Latencies,
    ack: Latencies,
    errors: u64,
}

async fn receiver(client: reqwest::Client, base: String, batch: usize, until: Instant) -> Tally {
    let mut t = Tally::default();
    while Instant::now() < until {
        let at = Instant::now();
        let Ok(v) = post(
            &client,
            format!("{base}/v1/queues/qbench/receive"),
            json!({"max": batch}),
        )
        .await
        else {
            t.errors += 1;
            continue;
        };
        t.receive.push(at.elapsed());
        let receipts: Vec<Value> = v["messages"]
            .as_array()
            .map(|m| m.iter().map(|m| m["receipt"].clone()).collect())
            .unwrap_or_default();
        if receipts.is_empty() {
            break; // drained
        }
        let at = Instant::now();
        match post(
            &client,
            format!("{base}/v1/queues/qbench/ack"),
            json!({"receipts": receipts}),
        )
        .await
        {
            Ok(v) => {
                t.ack.push(at.elapsed());
                t.acked += v["acked"].as_u64().unwrap_or(0);
            }
            Err(_) => t.errors += 1,
        }
    }
    t
}

/// `VmRSS` of this process, MiB.
fn own_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            l.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// A queue state with `n` leased records (as 1000-op entries would build it): memory per
/// record in flight, snapshot size and time, and the cost of planning on it.
fn in_flight(n: u64) {
    use sluice_core::queue::state::{self, QueueOp, QueueState, Rules, Settle};
    use sluice_core::statelog::StateMachine;
    let before = own_rss_mib();
    let t = Instant::now();
    let mut st = QueueState::default();
    let partitions = 8u32;
    for i in 0..n {
        let p = (i % partitions as u64) as u32;
        let o = i / partitions as u64;
        st.apply(
            &QueueOp::Admit {
                p,
                o,
                key: None,
                lease: Some((i + 1, 3_600_000)),
                gw: Some("01JDGWID".into()),
            },
            1000,
        );
    }
    let built = t.elapsed();
    let rss = own_rss_mib() - before;
    let rules = Rules {
        max_deliveries: 5,
        ordering_key: false,
    };
    let t = Instant::now();
    let clone = st.clone();
    let (_, grants) = state::plan_receive(&clone, &rules, &[], 100, 2_000_000, 1_000_000, None);
    let plan = t.elapsed();
    let t = Instant::now();
    let receipts: Vec<_> = (0..1000u64)
        .map(|i| {
            Some(state::ReceiptRef {
                p: (i % partitions as u64) as u32,
                o: i / partitions as u64,
                lease: i + 1,
            })
        })
        .collect();
    let (ops, _) = state::plan_settle(&st, &rules, &receipts, &Settle::Ack, 2000);
    let mut work = st.clone();
    for op in &ops {
        work.apply(op, 2000);
    }
    let ack = t.elapsed();
    let t = Instant::now();
    let counts = state::counts(&st, 2000);
    let count = t.elapsed();
    let t = Instant::now();
    let snap = st.snapshot().map(|b| b.len()).unwrap_or(0);
    let snap_t = t.elapsed();
    println!(
        "in process: {n} records in flight built in {:.1} s; RSS +{rss:.0} MiB ({:.0} B per record)",
        built.as_secs_f64(),
        rss * 1048576.0 / n.max(1) as f64
    );
    println!(
        "  clone + plan a receive of 100 on it: {:.2} ms ({} granted: all leased)   plan + apply 1000 acks: {:.1} ms   stats: {:.0} ms (in flight {})",
        plan.as_secs_f64() * 1000.0,
        grants.len(),
        ack.as_secs_f64() * 1000.0,
        count.as_secs_f64() * 1000.0,
        counts.1
    );
    println!(
        "  snapshot: {:.0} MiB of JSON in {:.1} s",
        snap as f64 / 1048576.0,
        snap_t.as_secs_f64()
    );
}

/// CPU seconds (user + system) a process has used so far, from `/proc/{pid}/stat`.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// The figures of one throughput phase, for the side-by-side summary.
struct Summary {
    rate: f64,
    receive_p99: f64,
    ack_p99: f64,
    /// Gateway and load generator CPU, µs per record received and acked.
    gateway_us: f64,
    bench_us: f64,
}

pub async fn run(args: Args) {
    if args.in_flight > 0 {
        in_flight(args.in_flight);
    }
    let bin = sluice_bin(args.sluice_bin.as_ref());
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return println!("no temp dir: {e}"),
    };
    let client = reqwest::Client::new();
    let bin = match bin {
        Ok(b) => b,
        Err(e) => return println!("skipped, {e}"),
    };
    let mut binaries = vec![("this build", bin)];
    if let Some(base) = &args.baseline_sluice_bin {
        binaries = (0..args.rounds.max(1))
            .flat_map(|_| [("baseline", base.clone()), binaries[0].clone()])
            .collect();
    }
    for backend in &args.backends {
        if backend == "s3" && args.endpoint.is_none() {
            println!("backend s3: skipped, no --endpoint / SLUICE_TEST_S3_ENDPOINT given");
            continue;
        }
        let mut summaries = Vec::new();
        for (label, bin) in &binaries {
            if args.baseline_sluice_bin.is_some() {
                println!("[{label}: {}]", bin.display());
            }
            if let Some(s) = run_one(backend, bin, &args, dir.path(), &client).await {
                summaries.push((*label, s));
            }
        }
        if args.baseline_sluice_bin.is_some() {
            println!(
                "backend {backend}, side by side ({} receivers x max {}, load average {}):",
                args.receivers,
                args.batch,
                load_average()
            );
            for (label, s) in &summaries {
                println!(
                    "  {label:<11} {:>8.0} records/s   receive p99 {:>5.1} ms   ack p99 {:>5.1} ms   CPU per record: gateway {:.1} µs, load generator {:.1} µs",
                    s.rate, s.receive_p99, s.ack_p99, s.gateway_us, s.bench_us
                );
            }
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

async fn run_one(
    backend: &str,
    bin: &std::path::Path,
    args: &Args,
    dir: &std::path::Path,
    client: &reqwest::Client,
) -> Option<Summary> {
    let run_id = sluice_core::ids::new_ulid(clock::system().now_ms()).to_string();
    let opts = GatewayOpts {
        endpoint: args.endpoint.as_deref(),
        bucket: &args.bucket,
        linger_ms: None,
        max_pending_mib: None,
    };
    let mut gw = match spawn_gateway(bin, backend, &opts, dir, &run_id) {
        Ok(g) => g,
        Err(e) => {
            println!("backend {backend}: {e}");
            return None;
        }
    };
    let store_url = match backend {
        "dev" => dir.join(format!("dev-{run_id}")).display().to_string(),
        _ => format!("s3://{}/bench-{run_id}", args.bucket),
    };
    let r = async {
        wait_healthy(&mut gw, client).await?;
        measure(backend, &gw.base, gw.pid(), args, client, &store_url).await
    }
    .await;
    let log = gw.log.clone();
    drop(gw);
    print_log_summary(&log);
    match r {
        Ok(s) => Some(s),
        Err(e) => {
            println!("backend {backend}: failed: {e}");
            None
        }
    }
}

async fn measure(
    backend: &str,
    base: &str,
    pid: u32,
    args: &Args,
    client: &reqwest::Client,
    store_url: &str,
) -> Result<Summary, String> {
    println!("backend {backend} ({base}):");
    post(
        client,
        format!("{base}/v1/topics"),
        json!({"name": "qbench", "partitions": args.partitions}),
    )
    .await?;
    let t = Instant::now();
    fill(client, base, args.records, args.record_bytes).await?;
    println!(
        "  produced {} records of {} B in {:.1} s",
        args.records,
        args.record_bytes,
        t.elapsed().as_secs_f64()
    );
    let r = client
        .put(format!("{base}/v1/queues/qbench"))
        .json(&json!({"topic": "qbench", "visibility_timeout_ms": 60000}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("PUT queue: {}", r.status()));
    }
    let endpoint = (backend == "s3")
        .then_some(args.endpoint.as_deref())
        .flatten();
    let before = state_objects(store_url, endpoint).await?;
    let cpu_before = (cpu_secs(pid), cpu_secs(std::process::id()));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.seconds);
    let tasks: Vec<_> = (0..args.receivers)
        .map(|_| {
            tokio::spawn(receiver(
                client.clone(),
                base.to_string(),
                args.batch,
                until,
            ))
        })
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.acked += t.acked;
            all.errors += t.errors;
            all.receive.extend(t.receive);
            all.ack.extend(t.ack);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_after = (cpu_secs(pid), cpu_secs(std::process::id()));
    let after = state_objects(store_url, endpoint).await?;
    let writes = (after.0 - before.0) + (after.1 - before.1);
    println!(
        "  {} receivers × max {}: {:.0} records/s received and acked ({} in {:.1} s, {} errors)",
        args.receivers,
        args.batch,
        all.acked as f64 / secs,
        all.acked,
        secs,
        all.errors
    );
    println!(
        "  receive p50 / p99 {:.1} / {:.1} ms   ack p50 / p99 {:.1} / {:.1} ms",
        all.receive.quantile_ms(0.5),
        all.receive.quantile_ms(0.99),
        all.ack.quantile_ms(0.5),
        all.ack.quantile_ms(0.99)
    );
    println!(
        "  state-log objects written: {} entries + {} snapshots = {:.2} per 1,000 acks ({:.0} writes/s)",
        after.0 - before.0,
        after.1 - before.1,
        1000.0 * writes as f64 / all.acked.max(1) as f64,
        writes as f64 / secs
    );
    let per_record = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => 1e6 * (b - a) / all.acked.max(1) as f64,
        _ => f64::NAN,
    };
    let summary = Summary {
        rate: all.acked as f64 / secs,
        receive_p99: all.receive.quantile_ms(0.99),
        ack_p99: all.ack.quantile_ms(0.99),
        gateway_us: per_record(cpu_before.0, cpu_after.0),
        bench_us: per_record(cpu_before.1, cpu_after.1),
    };
    println!(
        "  CPU per record received and acked: gateway {:.1} µs, load generator (this process) {:.1} µs; gateway used {:.2} cores   load average {}",
        summary.gateway_us,
        summary.bench_us,
        summary.gateway_us * summary.rate / 1e6,
        load_average()
    );
    print_rss("after the throughput phase", pid);
    if args.redeliveries > 0 {
        redelivery(base, args, client).await?;
    }
    Ok(summary)
}

/// Lease records with a short timeout, never ack them, and time how long after their deadline
/// a long-polling receiver gets them again.
async fn redelivery(base: &str, args: &Args, client: &reqwest::Client) -> Result<(), String> {
    let vt = 500i64;
    // The throughput phase may have drained the queue: give this phase records of its own.
    fill(client, base, args.redeliveries, args.record_bytes).await?;
    let mut deadlines = std::collections::HashMap::new();
    while deadlines.len() < args.redeliveries {
        let sent = clock::system().now_ms();
        let v = post(
            client,
            format!("{base}/v1/queues/qbench/receive"),
            json!({"max": (args.redeliveries - deadlines.len()).min(1000), "visibility_timeout_ms": vt}),
        )
        .await?;
        let msgs = v["messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            deadlines.insert((m["partition"].as_u64(), m["offset"].as_u64()), sent + vt);
        }
    }
    let mut lat = Latencies::default();
    let give_up = Instant::now() + Duration::from_secs(30);
    while !deadlines.is_empty() && Instant::now() < give_up {
        let v = post(
            client,
            format!("{base}/v1/queues/qbench/receive"),
            json!({"max": 1000, "wait_ms": 2000}),
        )
        .await?;
        let now = clock::system().now_ms();
        let mut receipts = Vec::new();
        for m in v["messages"].as_array().cloned().unwrap_or_default() {
            if let Some(d) = deadlines.remove(&(m["partition"].as_u64(), m["offset"].as_u64())) {
                lat.push(Duration::from_millis((now - d).max(0) as u64));
            }
            receipts.push(m["receipt"].clone());
        }
        post(
            client,
            format!("{base}/v1/queues/qbench/ack"),
            json!({"receipts": receipts}),
        )
        .await?;
    }
    println!(
        "  redelivery after a {vt} ms timeout: {} records, p50 / p99 {:.0} / {:.0} ms after the deadline{}",
        lat.len(),
        lat.quantile_ms(0.5),
        lat.quantile_ms(0.99),
        if deadlines.is_empty() { "" } else { " (some never came back!)" }
    );
    Ok(())
}
