//! `sluice-bench direct`: read throughput of the SDK's direct consumer (the bucket, no gateway)
//! against the same records read through a gateway's REST API (in-process `sluice_gateway::serve`
//! on loopback, SDK `Client`), in one run, on a local folder and on S3. Both read every partition
//! at once (one reader per partition) with the same page limits, each measurement with cold
//! caches (a fresh gateway / a fresh reader), twice: while the records are still in the journal
//! tail (flush segments), and after the compactor folded them into indexed data objects.
//! The direct path runs twice: with the consumer's read-ahead (`--read-ahead` pages) and without
//! (`direct-0`), so the read-ahead's effect is measured in the same run.
//! Nothing here passes or fails on a timing.

use crate::stats::mib;
use bytes::Bytes;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig, ProduceRequest, Start};
use sluice_core::store::{self, DynStore, Instrumented, StoreOptions};
use sluice_sdk::{Client, DirectReader};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Backends: `local` (a temp folder), `s3` (needs --endpoint; credentials from AWS_*),
    /// `sim-s3` (memory behind S3 Standard's GET latency, as `sluice-bench hot`: where request
    /// latency, not a server's CPU, bounds reads).
    #[arg(long, value_delimiter = ',', default_value = "local,s3")]
    backends: Vec<String>,
    /// Records written (and read back by each path).
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Records per page, both paths (the gateway's most is 10 000 and 4 MiB).
    #[arg(long, default_value_t = 10_000)]
    page: u64,
    /// Pages the direct consumer reads ahead (its default; the `direct-0` row reads none).
    #[arg(long, default_value_t = sluice_sdk::DEFAULT_READ_AHEAD)]
    read_ahead: usize,
    #[arg(long, env = "SLUICE_TEST_S3_ENDPOINT")]
    endpoint: Option<String>,
    #[arg(long, env = "SLUICE_TEST_S3_BUCKET", default_value = "sluice-test")]
    bucket: String,
}

const TOPIC: &str = "direct-bench";

struct Figures {
    records: u64,
    bytes: u64,
    elapsed: Duration,
}

impl Figures {
    fn mib_s(&self) -> f64 {
        mib(self.bytes) / self.elapsed.as_secs_f64()
    }
    fn rec_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// Where the records are: a bucket opened by URL, or memory behind simulated S3 latency.
enum Bucket {
    Url(String, Option<String>),
    Simulated(DynStore),
}

impl Bucket {
    fn open(backend: &str, args: &Args, dir: &std::path::Path, prefix: &str) -> Self {
        match backend {
            "local" => Bucket::Url(dir.display().to_string(), None),
            "s3" => Bucket::Url(
                format!("s3://{}/{prefix}", args.bucket),
                Some(
                    args.endpoint
                        .clone()
                        .expect("--endpoint (or SLUICE_TEST_S3_ENDPOINT) for s3"),
                ),
            ),
            "sim-s3" => Bucket::Simulated(
                store::open("memory://", &StoreOptions::default()).expect("memory store"),
            ),
            other => panic!("unknown backend {other} (local, s3, sim-s3)"),
        }
    }

    /// A client for writing and compacting (no simulated latency).
    fn writer(&self) -> DynStore {
        match self {
            Bucket::Url(url, endpoint) => store::open(
                url,
                &StoreOptions {
                    endpoint: endpoint.clone(),
                    ..StoreOptions::default()
                },
            )
            .expect("open store"),
            Bucket::Simulated(inner) => inner.clone(),
        }
    }

    /// A fresh client for one reader (cold caches), with the simulated latency if any.
    fn reader(&self) -> DynStore {
        match self {
            Bucket::Url(..) => self.writer(),
            Bucket::Simulated(inner) => {
                let s = Instrumented::new(inner.clone(), 1);
                s.set_faults(crate::hot_bench::s3_standard());
                s
            }
        }
    }
}

/// Write the records straight through the log: many records per flush, as a busy gateway would.
async fn write(store: DynStore, args: &Args) {
    let log = Log::new(store, clock::system(), LogConfig::default());
    let topic = log
        .topics()
        .create(TOPIC, args.partitions, None, 0)
        .await
        .expect("create topic");
    let per_request = 1000u64;
    let requests_per_flush = ((4u64 << 20) / (per_request * args.record_bytes as u64)).max(1);
    let value = Bytes::from(vec![b'v'; args.record_bytes]);
    let mut written = 0u64;
    while written < args.records {
        let mut requests = Vec::new();
        for _ in 0..requests_per_flush {
            if written >= args.records {
                break;
            }
            let n = per_request.min(args.records - written);
            let p = (requests.len() as u32 + (written / per_request) as u32) % args.partitions;
            requests.push(ProduceRequest {
                topic: topic.clone(),
                records: (0..n)
                    .map(|_| (Some(p), Record::new(None, value.clone())))
                    .collect(),
                dedup_key: None,
                producer: None,
            });
            written += n;
        }
        for r in log.flush(requests).await {
            r.expect("flush");
        }
    }
}

/// Every partition at once through a fresh in-process gateway.
async fn through_gateway(store: DynStore, args: &Args) -> Figures {
    let log = Log::new(store, clock::system(), LogConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sluice_gateway::serve(
        listener,
        log,
        Default::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = Client::new(&url).expect("client");
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.partitions)
        .map(|p| {
            let client = client.clone();
            let page = args.page;
            tokio::spawn(async move {
                let end = client
                    .describe_topic(TOPIC)
                    .await
                    .expect("describe")
                    .partition_info[p as usize]
                    .next_offset;
                let (mut at, mut records, mut bytes) = (0u64, 0u64, 0u64);
                while at < end {
                    let b = client
                        .read(TOPIC, p, Start::Offset(at), page, None)
                        .await
                        .expect("REST read");
                    records += b.records.len() as u64;
                    bytes += b
                        .records
                        .iter()
                        .map(|r| r.record.value.len() as u64)
                        .sum::<u64>();
                    at = b.next_offset;
                }
                (records, bytes)
            })
        })
        .collect();
    let fig = collect(tasks, start).await;
    let _ = stop.send(());
    let _ = server.await;
    fig
}

/// Every partition at once straight from the bucket, with a fresh reader.
async fn direct(store: DynStore, args: &Args, read_ahead: usize) -> Figures {
    let reader = DirectReader::from_store(store);
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.partitions)
        .map(|p| {
            let reader = reader.clone();
            let page = args.page as usize;
            tokio::spawn(async move {
                let end = reader
                    .partition_info(TOPIC, p)
                    .await
                    .expect("info")
                    .next_offset;
                let mut c = reader
                    .consumer(TOPIC, p, Start::Earliest)
                    .await
                    .expect("consumer");
                c.set_limits(page, 4 << 20);
                c.set_read_ahead(read_ahead);
                let (mut records, mut bytes) = (0u64, 0u64);
                while c.position() < end {
                    let b = c.poll(Duration::ZERO).await.expect("direct read");
                    records += b.records.len() as u64;
                    bytes += b
                        .records
                        .iter()
                        .map(|r| r.record.value.len() as u64)
                        .sum::<u64>();
                }
                (records, bytes)
            })
        })
        .collect();
    collect(tasks, start).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<(u64, u64)>>, start: Instant) -> Figures {
    let (mut records, mut bytes) = (0, 0);
    for t in tasks {
        let (r, b) = t.await.expect("reader task");
        records += r;
        bytes += b;
    }
    Figures {
        records,
        bytes,
        elapsed: start.elapsed(),
    }
}

/// Fold everything into indexes and collect the flush segments.
async fn compact(store: DynStore, args: &Args) {
    let mut c = Compactor::new(
        store.clone(),
        clock::system(),
        CompactorConfig {
            lease_duration: Duration::from_millis(100),
            gc_grace_ms: 0,
            truncate_keep_entries: 0,
            truncate_min_age_ms: 0,
            ..Default::default()
        },
    );
    let reader = DirectReader::from_store(store);
    let topic = reader.topic(TOPIC).await.expect("topic");
    let shard = reader.log().shard(topic.shard).await.expect("shard");
    for _ in 0..600 {
        c.run_once().await.expect("compactor pass");
        shard.refresh_checkpoint().await.expect("checkpoint");
        let done = (0..args.partitions).all(|partition| {
            let p = sluice_core::ids::PartitionId {
                topic: topic.topic_id().expect("id"),
                partition,
            };
            shard.covered(&p) == shard.next_offset(&p)
        });
        if done {
            c.run_once().await.expect("gc pass");
            return;
        }
    }
    panic!("the compactor did not fold everything in 600 passes");
}

pub async fn run(args: Args) {
    println!(
        "direct reads vs a gateway: {} records of {} B over {} partitions, pages of {}",
        args.records, args.record_bytes, args.partitions, args.page
    );
    println!(
        "{:<7} {:<8} {:<8} {:>9} {:>9} {:>10} {:>8}",
        "backend", "stored", "path", "records", "MiB/s", "rec/s", "x gw"
    );
    for backend in &args.backends {
        let tmp = tempfile::tempdir().expect("tempdir");
        let prefix = format!(
            "direct-bench-{}",
            sluice_core::ids::new_ulid(clock::system().now_ms())
        );
        let bucket = Bucket::open(backend, &args, &tmp.path().join("bucket"), &prefix);
        write(bucket.writer(), &args).await;
        for stored in ["tail", "indexed"] {
            if stored == "indexed" {
                compact(bucket.writer(), &args).await;
            }
            let gw = through_gateway(bucket.reader(), &args).await;
            let d0 = direct(bucket.reader(), &args, 0).await;
            let d = direct(bucket.reader(), &args, args.read_ahead).await;
            for (path, f) in [("gateway", &gw), ("direct-0", &d0), ("direct", &d)] {
                println!(
                    "{:<7} {:<8} {:<8} {:>9} {:>9.1} {:>10.0} {:>8.2}",
                    backend,
                    stored,
                    path,
                    f.records,
                    f.mib_s(),
                    f.rec_s(),
                    f.mib_s() / gw.mib_s()
                );
            }
        }
    }
}
