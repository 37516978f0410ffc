//! `sluice-bench topics`: what the compactor writes for the same total load spread over 10,
//! 1,000 and 100,000 single-partition topics (issue #10 point 1). An in-memory bucket and a
//! simulated clock: producers send one-record requests to random topics at a fixed rate, a
//! flush every `--flush-ms` (as a gateway's linger would), the compactor runs a pass every
//! simulated second. Prints the compactor's object PUTs per simulated minute and the data and
//! index objects in the bucket, next to the 10-topic baseline (target: 100,000 topics within
//! 1.5× of it).

use bytes::Bytes;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock::ManualClock;
use sluice_core::format::record::Record;
use sluice_core::keys;
use sluice_core::log::{Log, LogConfig, ProduceRequest};
use sluice_core::store::{self, DynStore, Instrumented};
use std::time::Instant;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Topic counts to run (one partition each).
    #[arg(long, value_delimiter = ',', default_value = "10,1000,100000")]
    topics: Vec<usize>,
    /// Records per simulated second, whatever the topic count.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Simulated seconds of load.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Simulated milliseconds between flushes.
    #[arg(long, default_value_t = 10)]
    flush_ms: u64,
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Compactor layouts to run, by `own_object_bytes`: 0 is every partition in its own
    /// objects (the layout before shared runs), 4194304 the default.
    #[arg(long, value_delimiter = ',', default_value = "0,4194304")]
    own_object_bytes: Vec<u64>,
}

impl Args {
    /// The defaults of the command line with `seconds` simulated seconds of load.
    pub(crate) fn simulated(seconds: u64) -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: Args,
        }
        let mut args = <Defaults as clap::Parser>::parse_from(["topics"]).args;
        args.seconds = seconds;
        args
    }
}

/// What one topic count cost the compactor.
pub(crate) struct Figures {
    pub topics: usize,
    pub records: u64,
    pub puts_per_min: f64,
    pub data_objects: usize,
    pub index_objects: usize,
    pub run_objects: usize,
    /// Bytes of the shards' newest checkpoints (rewritten every pass that folds).
    pub checkpoint_bytes: u64,
    pub lists: u64,
    pub gets: u64,
}

async fn count_under(store: &DynStore, prefix: &str) -> usize {
    store::list_under(&**store, &prefix.into())
        .await
        .map_or(0, |v| v.len())
}

/// The load of `args` over `n` single-partition topics: what the compactor (with its default
/// layout) wrote and read.
pub(crate) async fn run_one(args: &Args, n: usize) -> Figures {
    run_layout(args, n, CompactorConfig::default().own_object_bytes).await
}

async fn run_layout(args: &Args, n: usize, own_object_bytes: u64) -> Figures {
    let bucket: DynStore = store::open("memory://", &Default::default()).expect("memory");
    let clock = ManualClock::new(1_764_633_600_000);
    let log = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    let mut topics = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("t{i:06}");
        let t = log
            .topics()
            .create(&name, 1, None, i as u32 % args.shards)
            .await
            .expect("create topic");
        topics.push(t);
    }
    let counted = Instrumented::new(bucket.clone(), 0);
    let cfg = CompactorConfig {
        own_object_bytes,
        ..Default::default()
    };
    let mut compactor = Compactor::new(counted.clone(), clock.clone(), cfg);
    let value = Bytes::from(vec![b'v'; args.value_bytes]);
    let per_flush = (args.rate * args.flush_ms / 1000).max(1);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut records = 0;
    let mut since_pass = 0;
    for _ in 0..args.seconds * 1000 / args.flush_ms {
        let reqs: Vec<ProduceRequest> = (0..per_flush)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                ProduceRequest {
                    topic: topics[(rng % n as u64) as usize].clone(),
                    records: vec![(None, Record::new(None, value.clone()))],
                    dedup_key: None,
                    producer: None,
                }
            })
            .collect();
        for ack in log.flush(reqs).await {
            ack.expect("produce");
            records += 1;
        }
        clock.advance(args.flush_ms as i64);
        since_pass += args.flush_ms;
        if since_pass >= 1000 {
            since_pass = 0;
            compactor.run_once().await.expect("compactor pass");
        }
    }
    compactor.run_once().await.expect("compactor pass");
    let c = counted.counts();
    let minutes = args.seconds as f64 / 60.0;
    Figures {
        topics: n,
        records,
        puts_per_min: c.put as f64 / minutes,
        data_objects: count_under(&bucket, keys::DATA).await,
        index_objects: count_under(&bucket, keys::INDEX).await,
        run_objects: count_under(&bucket, keys::RUNS).await,
        checkpoint_bytes: store::list_under(&*bucket, &keys::CHECKPOINTS.into())
            .await
            .map_or(0, |v| {
                v.iter()
                    .filter(|m| m.location.as_ref().contains("/latest/"))
                    .map(|m| m.size)
                    .sum()
            }),
        lists: c.list,
        gets: c.get,
    }
}

pub async fn run(args: Args) {
    println!(
        "sluice-bench topics: {} records/s of {} B for {} simulated s, a flush every {} ms, {} shards, a compactor pass every second",
        args.rate, args.value_bytes, args.seconds, args.flush_ms, args.shards
    );
    for &own in &args.own_object_bytes {
        println!(
            "layout: {}",
            if own == 0 {
                "every partition in its own objects (before shared runs)".to_string()
            } else {
                format!("shared runs, own objects from {own} B a partition")
            }
        );
        println!(
            "{:>8} {:>9} {:>16} {:>10} {:>11} {:>9} {:>14} {:>9} {:>9} {:>10} {:>8}",
            "topics",
            "records",
            "compactor PUT/min",
            "data objs",
            "index objs",
            "run objs",
            "checkpoint KiB",
            "LISTs",
            "GETs",
            "× 10 topics",
            "wall s"
        );
        let mut baseline: Option<f64> = None;
        for &n in &args.topics {
            let started = Instant::now();
            let f = run_layout(&args, n, own).await;
            let base = *baseline.get_or_insert(f.puts_per_min);
            println!(
                "{:>8} {:>9} {:>16.0} {:>10} {:>11} {:>9} {:>14.0} {:>9} {:>9} {:>10.2} {:>8.1}",
                f.topics,
                f.records,
                f.puts_per_min,
                f.data_objects,
                f.index_objects,
                f.run_objects,
                f.checkpoint_bytes as f64 / 1024.0,
                f.lists,
                f.gets,
                f.puts_per_min / base,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!("target (issue #10): 100,000 topics within 1.5× of 10 topics' PUTs per minute");
}
