use crate::stats::{mib, Latencies};
use bytes::Bytes;
use sluice_core::clock;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig, ProduceRequest};
use sluice_core::store::{self, DynStore, Instrumented, StoreOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Backends to run: `local` (a temp folder with fsync, as `sluice dev`), `local-nofsync`
    /// (the same without fsync, as `sluice dev --no-fsync`), `s3` (needs --endpoint), `memory`.
    #[arg(long, value_delimiter = ',', default_value = "local")]
    backends: Vec<String>,
    /// Independent writers (each its own store client and log, like separate gateways).
    #[arg(long, default_value_t = 4)]
    writers: usize,
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Bytes of records per flush (one segment, one journal entry).
    #[arg(long, default_value_t = 4 << 20)]
    flush_bytes: usize,
    /// Produce requests per flush (the records of a flush are split among them).
    #[arg(long, default_value_t = 16)]
    requests_per_flush: usize,
    /// Topics (each on its own journal shard); writer w produces to topic w % topics, so 1 =
    /// every writer contends on one shard, `--topics` = `--writers` = no contention.
    #[arg(long, default_value_t = 1)]
    topics: usize,
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// S3 endpoint for the `s3` backend (e.g. http://127.0.0.1:4566).
    #[arg(long, env = "SLUICE_TEST_S3_ENDPOINT")]
    endpoint: Option<String>,
    #[arg(long, env = "SLUICE_TEST_S3_BUCKET", default_value = "sluice-test")]
    bucket: String,
}

#[derive(Default)]
struct Run {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    latencies: Latencies,
    /// Journal commit step only (after the segment PUT).
    commit_latencies: Latencies,
    requests: u64,
    puts: u64,
}

fn open_client(
    backend: &str,
    args: &Args,
    local: &std::path::Path,
    prefix: &str,
    memory: &DynStore,
) -> DynStore {
    match backend {
        "memory" => memory.clone(),
        "local" | "local-nofsync" => store::open(
            local.to_str().expect("utf-8"),
            &StoreOptions {
                fsync: backend == "local",
                ..Default::default()
            },
        )
        .expect("local store"),
        "s3" => store::open(
            &format!("s3://{}/{prefix}", args.bucket),
            &StoreOptions {
                endpoint: args.endpoint.clone(),
                ..Default::default()
            },
        )
        .expect("s3 store"),
        other => panic!("unknown backend {other}"),
    }
}

/// Baseline: the same bytes as plain create-only PUTs of flush-sized objects, no journal.
async fn raw_puts(clients: Vec<Arc<Instrumented>>, args: &Args) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let payload = Bytes::from(vec![7u8; args.flush_bytes]);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, c)| {
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut lat = Latencies::default();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let key = object_store::path::Path::from(format!("bench-raw/{w}/{n:020}"));
                    store::put_create(&*c, &key, payload.clone())
                        .await
                        .expect("raw put");
                    lat.push(t.elapsed());
                    n += 1;
                }
                (n, lat, c.counts())
            })
        })
        .collect();
    let mut run = Run::default();
    for t in tasks {
        let (n, lat, counts) = t.await.expect("raw writer");
        run.bytes += n * args.flush_bytes as u64;
        run.records += n * (args.flush_bytes / args.record_bytes) as u64;
        run.latencies.extend(lat);
        run.requests += counts.total();
        run.puts += counts.put;
    }
    run.elapsed = start.elapsed();
    run
}

async fn sluice_commits(clients: Vec<Arc<Instrumented>>, args: &Args) -> Run {
    let admin = Log::new(clients[0].clone(), clock::system(), LogConfig::default());
    let mut topics = Vec::new();
    for t in 0..args.topics {
        let name = format!("bench-{t}");
        let cfg = match admin
            .topics()
            .create(&name, args.partitions, None, t as u32)
            .await
        {
            Ok(c) => c,
            Err(_) => admin.topics().get(&name).await.expect("topic"),
        };
        topics.push(cfg);
    }
    let before: Vec<_> = clients.iter().map(|c| c.counts()).collect();
    let records_per_flush = (args.flush_bytes / args.record_bytes).max(1);
    let per_request = (records_per_flush / args.requests_per_flush.max(1)).max(1);
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .enumerate()
        .map(|(w, c)| {
            let topics = topics.clone();
            let record_bytes = args.record_bytes;
            let requests = args.requests_per_flush.max(1);
            tokio::spawn(async move {
                let log = Log::new(c, clock::system(), LogConfig::default());
                let value = Bytes::from(vec![b'x'; record_bytes.saturating_sub(16)]);
                let mut lat = Latencies::default();
                let mut commit_lat = Latencies::default();
                let (mut records, mut bytes, mut n) = (0u64, 0u64, 0u64);
                while Instant::now() < deadline {
                    let reqs: Vec<ProduceRequest> = (0..requests)
                        .map(|r| ProduceRequest {
                            topic: topics[w % topics.len()].clone(),
                            records: (0..per_request)
                                .map(|i| {
                                    let key = format!("{w}-{n}-{r}-{i}");
                                    (
                                        None,
                                        Record::new(
                                            Some(&key.as_bytes()[..key.len().min(16)]),
                                            value.clone(),
                                        ),
                                    )
                                })
                                .collect(),
                            dedup_key: None,
                            producer: None,
                        })
                        .collect();
                    let size: u64 = reqs.iter().map(|r| r.encoded_len() as u64).sum();
                    let t = Instant::now();
                    let prepared = log.write_segment(reqs).await;
                    let c = Instant::now();
                    for r in log.commit(prepared, None).await {
                        let ack = r.expect("commit");
                        records += ack.offsets.len() as u64;
                    }
                    lat.push(t.elapsed());
                    commit_lat.push(c.elapsed());
                    bytes += size;
                    n += 1;
                }
                (records, bytes, lat, commit_lat)
            })
        })
        .collect();
    let mut run = Run::default();
    for t in tasks {
        let (r, b, lat, commit_lat) = t.await.expect("writer");
        run.records += r;
        run.bytes += b;
        run.latencies.extend(lat);
        run.commit_latencies.extend(commit_lat);
    }
    run.elapsed = start.elapsed();
    for (c, b) in clients.iter().zip(before) {
        let a = c.counts();
        run.requests += a.total() - b.total();
        run.puts += a.put - b.put;
    }
    run
}

fn print(label: &str, run: &mut Run) {
    let secs = run.elapsed.as_secs_f64();
    let gib = run.bytes as f64 / (1u64 << 30) as f64;
    println!(
        "  {label:<28} {:>10.0} rec/s {:>8.1} MiB/s   flush p50 {:>7.2} ms  p99 {:>7.2} ms   {:>6.0} requests/GiB ({:.0} PUTs/GiB)   [{} flushes]",
        run.records as f64 / secs,
        mib(run.bytes) / secs,
        run.latencies.quantile_ms(0.5),
        run.latencies.quantile_ms(0.99),
        run.requests as f64 / gib.max(1e-9),
        run.puts as f64 / gib.max(1e-9),
        run.latencies.len(),
    );
    if run.commit_latencies.len() > 0 {
        println!(
            "  {:<28} journal commit step: p50 {:>7.2} ms  p99 {:>7.2} ms",
            "",
            run.commit_latencies.quantile_ms(0.5),
            run.commit_latencies.quantile_ms(0.99)
        );
    }
}

pub async fn run(args: Args) {
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "sluice-bench log: {} writers, {} B records, {} KiB flushes in {} requests, {} topic(s) x {} partitions, {} s per run",
        args.writers, args.record_bytes, args.flush_bytes / 1024, args.requests_per_flush, args.topics, args.partitions, args.seconds
    );
    for backend in &args.backends {
        if backend == "s3" && args.endpoint.is_none() {
            println!("backend s3: skipped, no --endpoint / SLUICE_TEST_S3_ENDPOINT given");
            continue;
        }
        // No run pays for the writeback of the one before (`local-nofsync` above all).
        crate::http_bench::flush_page_cache();
        let run_id = sluice_core::ids::new_ulid(clock::system().now_ms());
        let local = dir.path().join(format!("{backend}-{run_id}"));
        let memory = store::open("memory://", &StoreOptions::default()).expect("memory");
        let clients = |prefix: &str| -> Vec<Arc<Instrumented>> {
            (0..args.writers)
                .map(|w| {
                    Instrumented::new(
                        open_client(backend, &args, &local, prefix, &memory),
                        w as u64,
                    )
                })
                .collect()
        };
        println!("backend {backend}:");
        let mut raw = raw_puts(clients(&format!("bench-{run_id}-raw")), &args).await;
        print("baseline: raw PUTs", &mut raw);
        let mut s = sluice_commits(clients(&format!("bench-{run_id}")), &args).await;
        print("sluice: segment + commit", &mut s);
        println!(
            "  sluice / baseline throughput: {:.0}%",
            100.0 * (s.bytes as f64 / s.elapsed.as_secs_f64())
                / (raw.bytes as f64 / raw.elapsed.as_secs_f64()).max(1e-9)
        );
    }
    println!("targets (issue #3): local >= 300 MiB/s with 4 writers; LocalStack commit p50 <= 20 ms; <= 200 PUTs/GiB");
}
