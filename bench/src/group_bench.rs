//! `sluice-bench groups`: consumer-group poll + commit throughput through a `sluice` process
//! (`sluice dev` on a temp folder, `sluice gateway --with-compactor` on S3), and the object
//! writes the group's state costs: entries and snapshots of its state log per 1,000 commits.
//!
//! A topic is filled first; then `--members` members of one group each loop on
//! poll (`limit` records) → commit, for `--seconds`. Printed: records/s, commits/s, latency of
//! poll and commit (p50/p99), and the objects under `groups/{group}/` afterwards (every one is
//! one create-only PUT). Nothing here passes or fails on a timing.

use crate::http_bench::{self, print_log_summary, sluice_bin, spawn_gateway, wait_healthy};
use crate::stats::Latencies;
use serde_json::{json, Value};
use sluice_core::clock;
use sluice_core::store::{self, StoreOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Gateway, backend and topic options (as `sluice-bench http`; `--partitions`,
    /// `--record-bytes`, `--batch` for filling, `--seconds` per run).
    #[command(flatten)]
    pub gw: http_bench::Args,
    /// Members of the group, each polling and committing in a loop.
    #[arg(long, default_value_t = 8)]
    pub members: usize,
    /// Records per poll (`limit`, at most 1000).
    #[arg(long, default_value_t = 100)]
    pub poll_limit: u64,
    /// Records written to the topic before the group starts.
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
}

const GROUP: &str = "bench-group";
const TOPIC: &str = "bench";

#[derive(Default)]
struct Tally {
    records: u64,
    polls: u64,
    commits: u64,
    poll_lat: Latencies,
    commit_lat: Latencies,
    errors: u64,
    sample: Option<String>,
}

impl Tally {
    fn error(&mut self, m: String) {
        self.errors += 1;
        self.sample.get_or_insert(m);
    }
    fn merge(&mut self, o: Tally) {
        self.records += o.records;
        self.polls += o.polls;
        self.commits += o.commits;
        self.poll_lat.extend(o.poll_lat);
        self.commit_lat.extend(o.commit_lat);
        self.errors += o.errors;
        if self.sample.is_none() {
            self.sample = o.sample;
        }
    }
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> Result<Value, String> {
    let r = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!("HTTP {status}: {v}"))
    }
}

async fn fill(client: &reqwest::Client, base: &str, args: &Args) -> Result<(), String> {
    let value = "x".repeat(args.gw.record_bytes);
    let batch = args.gw.batch.max(1) as u64;
    let mut sent = 0u64;
    let mut inflight = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    while sent < args.records || !inflight.is_empty() {
        while sent < args.records && inflight.len() < 16 {
            let n = batch.min(args.records - sent);
            let records: Vec<Value> = (0..n)
                .map(|i| json!({"key": format!("k{}", (sent + i) % 1000), "value": value}))
                .collect();
            let body = json!({ "records": records });
            let url = format!("{base}/v1/topics/{TOPIC}/records");
            inflight.push(async move { post(client, url, &body).await });
            sent += n;
        }
        if let Some(r) = inflight.next().await {
            r?;
        }
    }
    Ok(())
}

async fn member(client: reqwest::Client, base: String, limit: u64, until: Instant) -> Tally {
    let mut t = Tally::default();
    let joined = post(
        &client,
        format!("{base}/v1/groups/{GROUP}/members"),
        &json!({"topics": [TOPIC]}),
    )
    .await;
    let id = match joined {
        Ok(v) => v["member_id"].as_str().unwrap_or_default().to_string(),
        Err(e) => {
            t.error(format!("join: {e}"));
            return t;
        }
    };
    while Instant::now() < until {
        let at = Instant::now();
        let r = client
            .get(format!(
                "{base}/v1/groups/{GROUP}/records?member_id={id}&limit={limit}&wait_ms=1000"
            ))
            .send()
            .await;
        let v: Value = match r {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
            Ok(r) => {
                t.error(format!("poll: HTTP {}", r.status()));
                continue;
            }
            Err(e) => {
                t.error(format!("poll: {e}"));
                continue;
            }
        };
        t.poll_lat.push(at.elapsed());
        t.polls += 1;
        let records = v["records"].as_array().cloned().unwrap_or_default();
        t.records += records.len() as u64;
        let mut next = std::collections::BTreeMap::new();
        for r in &records {
            let key = (
                r["topic"].as_str().unwrap_or_default().to_string(),
                r["partition"].as_u64().unwrap_or(0),
            );
            let o = r["offset"].as_u64().unwrap_or(0) + 1;
            let e = next.entry(key).or_insert(0);
            *e = o.max(*e);
        }
        if next.is_empty() {
            continue;
        }
        let offsets: Vec<Value> = next
            .iter()
            .map(|((t, p), o)| json!({"topic": t, "partition": p, "offset": o}))
            .collect();
        let body = json!({"member_id": id, "generation": v["generation"], "offsets": offsets});
        let at = Instant::now();
        match post(&client, format!("{base}/v1/groups/{GROUP}/offsets"), &body).await {
            Ok(_) => {
                t.commit_lat.push(at.elapsed());
                t.commits += 1;
            }
            // A rebalance while members join: learn the generation and go on.
            Err(e) => {
                if !e.contains("stale_generation") && !e.contains("not_assigned") {
                    t.error(format!("commit: {e}"));
                }
                let _ = post(
                    &client,
                    format!("{base}/v1/groups/{GROUP}/members/{id}/heartbeat"),
                    &json!({}),
                )
                .await;
            }
        }
    }
    t
}

/// Objects of the group's state log: (entries, snapshots).
async fn state_objects(
    backend: &str,
    args: &Args,
    dir: &Path,
    run_id: &str,
) -> Result<(usize, usize), String> {
    let store = match backend {
        "dev" => store::open(
            dir.join(format!("dev-{run_id}"))
                .to_str()
                .unwrap_or_default(),
            &StoreOptions::default(),
        ),
        _ => store::open(
            &format!("s3://{}/bench-{run_id}", args.gw.bucket),
            &StoreOptions {
                endpoint: args.gw.endpoint.clone(),
                ..StoreOptions::default()
            },
        ),
    }
    .map_err(|e| e.to_string())?;
    let prefix = sluice_core::group::service::prefix(GROUP);
    let count = |sub: &'static str| {
        let store = store.clone();
        let dir = object_store::path::Path::from(format!("{prefix}/{sub}"));
        async move {
            store::list_names(&*store, &dir, None)
                .await
                .map(|v| v.len())
        }
    };
    let entries = count("log").await.map_err(|e| e.to_string())?;
    let snaps = count("snap").await.map_err(|e| e.to_string())?;
    Ok((entries, snaps))
}

async fn run_backend(
    backend: &str,
    args: &Args,
    dir: &Path,
    client: &reqwest::Client,
) -> Result<(), String> {
    let bin = sluice_bin(args.gw.sluice_bin.as_ref())?;
    let run_id = sluice_core::ids::new_ulid(clock::system().now_ms()).to_string();
    let mut gw = spawn_gateway(&bin, backend, &args.gw.opts(), dir, &run_id)?;
    let r = async {
        wait_healthy(&mut gw, client).await?;
        let base = gw.base.clone();
        post(
            client,
            format!("{base}/v1/topics"),
            &json!({"name": TOPIC, "partitions": args.gw.partitions}),
        )
        .await?;
        let t0 = Instant::now();
        fill(client, &base, args).await?;
        println!(
            "backend {backend}: {} records of {} B in {} partitions written in {:.1} s",
            args.records,
            args.gw.record_bytes,
            args.gw.partitions,
            t0.elapsed().as_secs_f64()
        );
        let (entries0, _) = state_objects(backend, args, dir, &run_id).await.unwrap_or((0, 0));
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(args.gw.seconds);
        let tasks: Vec<_> = (0..args.members)
            .map(|_| tokio::spawn(member(client.clone(), base.clone(), args.poll_limit, until)))
            .collect();
        let mut total = Tally::default();
        for t in tasks {
            total.merge(t.await.map_err(|e| e.to_string())?);
        }
        let secs = start.elapsed().as_secs_f64();
        let (entries, snaps) = state_objects(backend, args, dir, &run_id).await?;
        let writes = entries.saturating_sub(entries0) + snaps;
        println!(
            "  {} members, limit {}: {:.0} records/s polled, {:.0} polls/s, {:.0} commits/s; \
             poll p50 {:.2} ms p99 {:.2} ms; commit p50 {:.2} ms p99 {:.2} ms; {} errors{}",
            args.members,
            args.poll_limit,
            total.records as f64 / secs,
            total.polls as f64 / secs,
            total.commits as f64 / secs,
            total.poll_lat.quantile_ms(0.5),
            total.poll_lat.quantile_ms(0.99),
            total.commit_lat.quantile_ms(0.5),
            total.commit_lat.quantile_ms(0.99),
            total.errors,
            total.sample.map(|s| format!(" (first: {s})")).unwrap_or_default()
        );
        println!(
            "  group state: {writes} object writes ({} log entries, {snaps} snapshots) for {} commits and {} polls = {:.1} writes per 1,000 commits, {:.1} writes/s",
            entries.saturating_sub(entries0),
            total.commits,
            total.polls,
            writes as f64 * 1000.0 / total.commits.max(1) as f64,
            writes as f64 / secs
        );
        Ok::<(), String>(())
    }
    .await;
    let log = gw.log.clone();
    drop(gw);
    print_log_summary(&log);
    r
}

pub async fn run(args: Args) {
    println!(
        "sluice-bench groups: {} members of one group poll {} records and commit, {} s per backend, topic of {} partitions",
        args.members, args.poll_limit, args.gw.seconds, args.gw.partitions
    );
    let Some((client, dir)) = crate::stats::client_and_dir() else {
        return;
    };
    let args = Arc::new(args);
    for backend in &args.gw.backends {
        if backend == "s3" && args.gw.endpoint.is_none() {
            println!("backend s3: skipped, no --endpoint / SLUICE_TEST_S3_ENDPOINT given");
            continue;
        }
        if let Err(e) = run_backend(backend, &args, dir.path(), &client).await {
            println!("backend {backend}: failed: {e}");
        }
    }
}
