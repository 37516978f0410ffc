//! `sluice-bench seek`: what a time-travel seek costs (issue 17, point 5): object requests,
//! bytes read and latency of `GET /v1/topics/{t}/partitions/{p}/records?timestamp_ms=T` on
//! partitions of 10^4, 10^6 and 10^7 records, cold (a fresh gateway: empty topic, listing,
//! index and shard caches) and warm (the same gateway again), next to a read by offset of the
//! same records (the baseline) in the same run.
//!
//! Each partition is written straight through the log (`Log::flush`, no HTTP) into an in-memory
//! bucket on a simulated clock: `--batch` records per flush, a flush every `--flush-ms`, a
//! compactor pass (in process) every `--pass-ms`, as a gateway and a compactor would for a
//! partition taking `batch × 1000 / flush_ms` records/s; so append timestamps increase and every
//! record ends up in an index object (one per pass). The seeks then go to an in-process gateway
//! (`sluice_gateway::serve` on 127.0.0.1) over a fresh counting store wrapper
//! (`core::store::Instrumented`) per gateway, on three stores holding the same objects: the
//! memory bucket itself, the memory bucket behind S3 Standard's GET/LIST latency (the latency
//! `sluice-bench hot` injects: p50 22 ms, p99 30 ms), and a local folder (a copy).
//!
//! Per seek `i` (of `--seeks`, timestamps drawn uniformly over the partition's time span): a
//! fresh gateway seeks to `T_i` (cold), then the same gateway seeks to another random `T'_i`
//! (warm: topic, listing and shard cached, the index object only if `T'_i` falls in one it read)
//! and to `T_i` again (repeat: everything cached). Three requests are measured that way:
//! `ts-read` (records from `timestamp_ms`, what a user seeking does), `offset-read` (records
//! from the offsets the `ts-read`s answered: the baseline), and `ts-lookup`
//! (`/offsets?timestamp_ms=`, the look-up alone). Nothing here passes or fails on a timing.

use crate::stats::Latencies;
use bytes::Bytes;

use object_store::ObjectStoreExt;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock::{self, ManualClock};
use sluice_core::format::record::Record;
use sluice_core::ids::PartitionId;
use sluice_core::keys;
use sluice_core::log::{Log, LogConfig, ProduceRequest};
use sluice_core::store::{self, DynStore, Instrumented, StoreOptions};
use sluice_gateway::txn::TxnSettings;
use sluice_gateway::GatewayConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Partition sizes in records (one partition each, built one after another).
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000,10000000")]
    sizes: Vec<u64>,
    /// Records per flush (one batch, one append timestamp).
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    /// Simulated milliseconds between flushes.
    #[arg(long, default_value_t = 100)]
    flush_ms: i64,
    /// Simulated milliseconds between compactor passes (one index object per pass).
    #[arg(long, default_value_t = 1000)]
    pass_ms: i64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 16)]
    value_bytes: usize,
    /// Seeks per size and request (each on a fresh gateway, then warm on the same one).
    #[arg(long, default_value_t = 20)]
    seeks: usize,
    /// Records per read answer (the REST default is 100).
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Stores the seeks run on: `memory`, `sim-s3` (memory behind S3 Standard's GET latency),
    /// `local` (a copy of the bucket in a temporary folder).
    #[arg(long, value_delimiter = ',', default_value = "memory,sim-s3,local")]
    stores: Vec<String>,
    /// Seed of the seek timestamps.
    #[arg(long, default_value_t = 17)]
    seed: u64,
}

const TOPIC: &str = "seek-bench";
/// Keys one S3 LIST page answers at most: a cold listing of `n` index objects is
/// `ceil(n / 1000)` requests on S3 (the in-process stores answer it in one).
const S3_LIST_PAGE: usize = 1000;

/// `n` timestamps drawn uniformly from `first..=last` (xorshift from `seed`: the same every
/// run). Empty when `last < first`.
pub fn pick_timestamps(first: i64, last: i64, n: usize, seed: u64) -> Vec<i64> {
    if last < first {
        return Vec::new();
    }
    let span = (last - first) as u64 + 1;
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            first + (s % span) as i64
        })
        .collect()
}

/// One partition, built and compacted.
struct Partition {
    bucket: DynStore,
    records: u64,
    first_ts: i64,
    last_ts: i64,
    index_objects: usize,
    data_objects: usize,
    data_bytes: u64,
    build: Duration,
}

async fn objects_under(store: &DynStore, prefix: &str) -> Vec<object_store::ObjectMeta> {
    store::list_under(&**store, &prefix.into())
        .await
        .expect("list")
}

async fn build(args: &Args, records: u64) -> Partition {
    let started = Instant::now();
    let bucket: DynStore =
        store::open("memory://", &StoreOptions::default()).expect("memory store");
    let flushes = records.div_ceil(args.batch);
    // Simulated time ends a minute before now, so nothing is in the future for a reader.
    let start = clock::system().now_ms() - flushes as i64 * args.flush_ms - 60_000;
    let clock = ManualClock::new(start);
    let log = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    let topic = log
        .topics()
        .create(TOPIC, 1, None, 0)
        .await
        .expect("create topic");
    let mut compactor = Compactor::new(
        bucket.clone(),
        clock.clone(),
        CompactorConfig {
            // Flush segments and journal entries go as soon as they are folded (memory).
            gc_grace_ms: 0,
            truncate_keep_entries: 0,
            truncate_min_age_ms: 0,
            ..Default::default()
        },
    );
    let value = Bytes::from(vec![b'v'; args.value_bytes]);
    let flushes_per_pass = (args.pass_ms / args.flush_ms).max(1) as u64;
    let mut written = 0;
    for f in 0..flushes {
        let n = args.batch.min(records - written);
        let req = ProduceRequest {
            topic: topic.clone(),
            records: (0..n)
                .map(|_| (Some(0), Record::new(None, value.clone())))
                .collect(),
            dedup_key: None,
            producer: None,
        };
        for ack in log.flush(vec![req]).await {
            ack.expect("produce");
        }
        written += n;
        clock.advance(args.flush_ms);
        if (f + 1) % flushes_per_pass == 0 {
            compactor.run_once().await.expect("compactor pass");
        }
    }
    // Fold what is left, until every record is indexed.
    let shard = log.shard(topic.shard).await.expect("shard");
    let p = PartitionId {
        topic: topic.topic_id().expect("topic id"),
        partition: 0,
    };
    for _ in 0..100 {
        compactor.run_once().await.expect("compactor pass");
        shard.refresh_checkpoint().await.expect("checkpoint");
        if shard.covered(&p) == records {
            break;
        }
    }
    assert_eq!(
        shard.covered(&p),
        records,
        "the compactor folded everything"
    );
    compactor.run_once().await.expect("gc pass");
    let first = log
        .read(&topic, 0, 0, 1, 1 << 20)
        .await
        .expect("read first");
    let last = log
        .read(&topic, 0, records - 1, 1, 1 << 20)
        .await
        .expect("read last");
    let data = objects_under(&bucket, keys::DATA).await;
    Partition {
        records,
        first_ts: first.records[0].append_ts,
        last_ts: last.records[0].append_ts,
        index_objects: objects_under(&bucket, keys::INDEX).await.len(),
        data_objects: data.len(),
        data_bytes: data.iter().map(|m| m.size).sum(),
        build: started.elapsed(),
        bucket,
    }
}

/// A copy of every object of `from` in a local folder.
async fn copy_to_folder(from: &DynStore, dir: &std::path::Path) -> DynStore {
    std::fs::create_dir_all(dir).expect("bucket folder");
    let to =
        store::open(&dir.display().to_string(), &StoreOptions::default()).expect("local store");
    for m in objects_under(from, "").await {
        let bytes = from
            .get(&m.location)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        to.put(&m.location, bytes.into()).await.expect("put");
    }
    to
}

/// An in-process gateway over its own counting wrapper of `inner` (fresh caches).
struct Gateway {
    url: String,
    counted: Arc<Instrumented>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_gateway(inner: &DynStore, sim_s3: bool, seed: u64) -> Gateway {
    let counted = Instrumented::new(inner.clone(), seed);
    if sim_s3 {
        counted.set_faults(crate::hot_bench::s3_standard());
    }
    let log = Log::new(counted.clone(), clock::system(), LogConfig::default());
    let cfg = GatewayConfig {
        // The transaction resolver's start-up LIST is not part of a seek.
        txn: TxnSettings {
            resolver: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sluice_gateway::serve(listener, log, cfg, async move {
        let _ = stopped.await;
    }));
    Gateway {
        url,
        counted,
        stop,
        server,
    }
}

impl Gateway {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Req {
    TsRead,
    OffsetRead,
    TsLookup,
}

impl Req {
    const ALL: [Req; 3] = [Req::TsRead, Req::OffsetRead, Req::TsLookup];
    fn name(self) -> &'static str {
        match self {
            Req::TsRead => "ts-read",
            Req::OffsetRead => "offset-read",
            Req::TsLookup => "ts-lookup",
        }
    }
}

const STATES: [&str; 3] = ["cold", "warm", "repeat"];

/// Requests and bytes of one seek, its latency, and the offset it started at.
#[derive(Clone, Copy, Default)]
struct Sample {
    get: u64,
    list: u64,
    head: u64,
    bytes: u64,
    latency: Duration,
    offset: u64,
}

/// One request to `gw`: records from timestamp `at` (or from offset `at`), or the look-up.
async fn seek(client: &reqwest::Client, gw: &Gateway, req: Req, at: i64, limit: u64) -> Sample {
    let base = format!("{}/v1/topics/{TOPIC}/partitions/0", gw.url);
    let url = match req {
        Req::TsRead => format!("{base}/records?timestamp_ms={at}&limit={limit}"),
        Req::OffsetRead => format!("{base}/records?offset={at}&limit={limit}"),
        Req::TsLookup => format!("{base}/offsets?timestamp_ms={at}"),
    };
    let (c0, h0) = (gw.counted.counts(), gw.counted.heads());
    let started = Instant::now();
    let answer = client.get(&url).send().await.expect("seek request");
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.expect("json answer");
    let latency = started.elapsed();
    let (c1, h1) = (gw.counted.counts(), gw.counted.heads());
    assert!(status.is_success(), "{url}: {status} {body}");
    let offset = match req {
        Req::TsLookup => body["offset"].as_u64().expect("offset"),
        Req::TsRead | Req::OffsetRead => {
            let first = &body["records"][0];
            let ts = first["timestamp_ms"].as_i64().expect("timestamp_ms");
            if req == Req::TsRead {
                assert!(ts >= at, "{url}: a record of {ts} < {at}");
            }
            first["offset"].as_u64().expect("offset")
        }
    };
    Sample {
        get: c1.get - c0.get - (h1 - h0),
        list: c1.list - c0.list,
        head: h1 - h0,
        bytes: c1.get_bytes - c0.get_bytes,
        latency,
        offset,
    }
}

/// Per state (cold, warm, repeat) the samples of one request kind on one store.
type Runs = [Vec<Sample>; 3];

/// `--seeks` fresh gateways, each asked cold, warm and repeat. `targets[s][i]` is what seek `i`
/// asks in state `s` (timestamps, or offsets for the baseline).
async fn measure(
    client: &reqwest::Client,
    bucket: &DynStore,
    sim_s3: bool,
    req: Req,
    targets: &[Vec<i64>; 3],
    limit: u64,
) -> Runs {
    let mut runs: Runs = Default::default();
    let [cold, warm, repeat] = targets;
    for (i, ((&c, &w), &r)) in cold.iter().zip(warm).zip(repeat).enumerate() {
        let gw = start_gateway(bucket, sim_s3, i as u64 + 1).await;
        let idle = gw.counted.counts().total();
        for (run, at) in runs.iter_mut().zip([c, w, r]) {
            run.push(seek(client, &gw, req, at, limit).await);
        }
        assert_eq!(idle, 0, "the gateway made requests before the first seek");
        gw.stop().await;
    }
    runs
}

fn mean(samples: &[Sample], f: impl Fn(&Sample) -> u64) -> f64 {
    samples.iter().map(f).sum::<u64>() as f64 / samples.len().max(1) as f64
}

fn latencies(samples: &[Sample]) -> Latencies {
    let mut l = Latencies::default();
    for s in samples {
        l.push(s.latency);
    }
    l
}

pub async fn run(args: Args) {
    let Some((client, tmp)) = crate::stats::client_and_dir() else {
        return;
    };
    println!(
        "sluice-bench seek: {} B values, {} records per flush, a flush every {} ms and a compactor pass every {} ms (simulated: {} records/s); {} seeks per size, request and state; pages of {} records",
        args.value_bytes,
        args.batch,
        args.flush_ms,
        args.pass_ms,
        args.batch * 1000 / args.flush_ms.max(1) as u64,
        args.seeks,
        args.limit
    );
    println!(
        "requests and KiB are means per seek (counted on the memory store; the same on every store), latency p50/p99 in ms per store"
    );
    let mut header = format!(
        "{:>9} {:<11} {:<6} {:>5} {:>5} {:>5} {:>8}",
        "records", "request", "state", "GET", "LIST", "HEAD", "KiB"
    );
    for s in &args.stores {
        header.push_str(&format!(" {:>15}", format!("{s} p50/p99")));
    }
    header.push_str(&format!(" {:>12}", "p50 × offset"));
    for &records in &args.sizes {
        let part = build(&args, records).await;
        let local = if args.stores.iter().any(|s| s == "local") {
            let dir = tmp.path().join(format!("bucket-{records}"));
            Some(copy_to_folder(&part.bucket, &dir).await)
        } else {
            None
        };
        println!(
            "\n{} records: built and compacted in {:.1} s; {} index objects ({} S3 LIST page(s) cold), {} data objects, {:.1} MiB of data; append timestamps over {:.0} s",
            part.records,
            part.build.as_secs_f64(),
            part.index_objects,
            part.index_objects.div_ceil(S3_LIST_PAGE).max(1),
            part.data_objects,
            crate::stats::mib(part.data_bytes),
            (part.last_ts - part.first_ts) as f64 / 1000.0
        );
        println!("{header}");
        let cold = pick_timestamps(part.first_ts, part.last_ts, args.seeks, args.seed);
        let warm = pick_timestamps(part.first_ts, part.last_ts, args.seeks, args.seed + 1);
        let ts_targets = [cold.clone(), warm, cold];
        // results[store][req] once measured.
        let mut results: Vec<Vec<Runs>> = Vec::new();
        for store_name in &args.stores {
            let (bucket, sim) = match store_name.as_str() {
                "memory" => (part.bucket.clone(), false),
                "sim-s3" => (part.bucket.clone(), true),
                "local" => (local.clone().expect("local copy"), false),
                other => panic!("unknown store {other} (memory, sim-s3, local)"),
            };
            let ts = measure(&client, &bucket, sim, Req::TsRead, &ts_targets, args.limit).await;
            let offsets: [Vec<i64>; 3] =
                [0, 1, 2].map(|s| ts[s].iter().map(|x| x.offset as i64).collect::<Vec<i64>>());
            let by_offset =
                measure(&client, &bucket, sim, Req::OffsetRead, &offsets, args.limit).await;
            let lookup = measure(
                &client,
                &bucket,
                sim,
                Req::TsLookup,
                &ts_targets,
                args.limit,
            )
            .await;
            for (s, run) in lookup.iter().enumerate() {
                for (a, b) in run.iter().zip(&ts[s]) {
                    assert_eq!(a.offset, b.offset, "look-up and read agree");
                }
            }
            results.push(vec![ts, by_offset, lookup]);
        }
        let ratio_store = args.stores.iter().position(|s| s == "sim-s3").unwrap_or(0);
        for (r, req) in Req::ALL.iter().enumerate() {
            for (s, state) in STATES.iter().enumerate() {
                let counted = &results[0][r][s];
                let mut line = format!(
                    "{:>9} {:<11} {:<6} {:>5.1} {:>5.1} {:>5.1} {:>8.1}",
                    records,
                    req.name(),
                    state,
                    mean(counted, |x| x.get),
                    mean(counted, |x| x.list),
                    mean(counted, |x| x.head),
                    mean(counted, |x| x.bytes) / 1024.0
                );
                for store_runs in &results {
                    let mut l = latencies(&store_runs[r][s]);
                    line.push_str(&format!(
                        " {:>15}",
                        format!("{:.2}/{:.2}", l.quantile_ms(0.5), l.quantile_ms(0.99))
                    ));
                }
                // The baseline: the offset read of the same records, same state.
                let on = &results[ratio_store];
                let p50 = latencies(&on[r][s]).quantile_ms(0.5);
                let base = latencies(&on[1][s]).quantile_ms(0.5);
                line.push_str(&format!(" {:>12.2}", p50 / base));
                println!("{line}");
                // Counts differ between stores only if a store answered differently.
                for (i, store_runs) in results.iter().enumerate().skip(1) {
                    let other = &store_runs[r][s];
                    if mean(other, |x| x.get) != mean(counted, |x| x.get)
                        || mean(other, |x| x.list) != mean(counted, |x| x.list)
                    {
                        println!(
                            "    ({}: GET {:.1}, LIST {:.1})",
                            args.stores[i],
                            mean(other, |x| x.get),
                            mean(other, |x| x.list)
                        );
                    }
                }
            }
        }
        drop(part);
    }
    println!("\n`× offset`: p50 latency over the offset read of the same records in the same state (on sim-s3 if run, else the first store)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_timestamps_are_in_range_repeatable_and_spread() {
        let t = pick_timestamps(1_000, 2_000, 200, 17);
        assert_eq!(t.len(), 200);
        assert!(t.iter().all(|&x| (1_000..=2_000).contains(&x)));
        assert_eq!(
            t,
            pick_timestamps(1_000, 2_000, 200, 17),
            "same seed, same picks"
        );
        assert_ne!(t, pick_timestamps(1_000, 2_000, 200, 18));
        // Both halves of the span are hit.
        assert!(t.iter().any(|&x| x < 1_500) && t.iter().any(|&x| x > 1_500));
        assert_eq!(pick_timestamps(5, 5, 3, 1), vec![5, 5, 5]);
        assert!(pick_timestamps(5, 4, 3, 1).is_empty());
    }
}
