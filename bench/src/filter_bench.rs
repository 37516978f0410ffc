//! `sluice-bench filter`: bytes read from the store by a filtered scan of a compacted partition
//! against an unfiltered scan of the same partition (counted by the instrumented store), for a
//! filter that matches 1% of the records, in three layouts of the matching records:
//! - `burst`: the matching records were produced together (one run of flushes, e.g. an
//!   incident, a backfill, one tenant's import): the index objects around them are skipped;
//! - `spread`: every 100th flush matches: only the index objects holding one are read;
//! - `mixed`: 1 record in 100 of every flush: every object may match, nothing is skipped (the
//!   limit of per-object summaries; the filter still saves the network to the client).

use bytes::Bytes;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock;
use sluice_core::filter::Filter;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig, ProduceRequest, ScanBudget};
use sluice_core::store::{self, DynStore, Instrumented, StoreOptions};
use sluice_core::topic::TopicConfig;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Records in the partition.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Records per flush (one batch each).
    #[arg(long, default_value_t = 1000)]
    flush_records: u64,
    /// Flushes folded into one index object (the compactor runs after this many).
    #[arg(long, default_value_t = 10)]
    flushes_per_object: u64,
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Layouts to run: burst, spread, mixed.
    #[arg(long, value_delimiter = ',', default_value = "burst,spread,mixed")]
    layouts: Vec<String>,
}

/// Whether record `i` (of flush `f`) is one of the 1% that match, per layout.
fn matches(layout: &str, args: &Args, i: u64) -> bool {
    let f = i / args.flush_records;
    let flushes = args.records / args.flush_records;
    match layout {
        "burst" => f >= flushes / 2 && f < flushes / 2 + flushes.div_ceil(100),
        "spread" => f % 100 == 50,
        "mixed" => i % 100 == 7,
        other => panic!("unknown layout {other}"),
    }
}

/// Write the partition; returns the topic and the number of index objects written.
async fn build(layout: &str, args: &Args, store: &DynStore) -> (Arc<TopicConfig>, u64) {
    let log = Log::new(store.clone(), clock::system(), LogConfig::default());
    let topic = log
        .topics()
        .create("bench", 1, None, 0)
        .await
        .expect("topic");
    let mut compactor = Compactor::new(store.clone(), clock::system(), CompactorConfig::default());
    let value = Bytes::from(vec![b'v'; args.value_bytes]);
    let flushes = args.records / args.flush_records;
    let mut objects = 0;
    for f in 0..flushes {
        let records = (f * args.flush_records..(f + 1) * args.flush_records)
            .map(|i| {
                let mut r =
                    Record::new(Some(format!("user-{}", i % 1000).as_bytes()), value.clone());
                let kind = if matches(layout, args, i) {
                    "refund"
                } else {
                    "order"
                };
                r.headers
                    .push(("type".into(), Bytes::from_static(kind.as_bytes())));
                r.headers.push(("seq".into(), Bytes::from(i.to_string())));
                (Some(0), r)
            })
            .collect();
        let req = ProduceRequest {
            topic: topic.clone(),
            records,
            dedup_key: None,
            producer: None,
        };
        for ack in log.flush(vec![req]).await {
            ack.expect("produce");
        }
        if (f + 1) % args.flushes_per_object == 0 || f + 1 == flushes {
            objects += compactor.run_once().await.expect("compact").index_objects;
        }
    }
    (topic, objects)
}

/// Scan the whole partition with a fresh log (cold caches); (records returned, reads).
async fn scan(store: &DynStore, topic: &TopicConfig, filter: Option<&Filter>) -> (u64, u64) {
    let log = Log::new(store.clone(), clock::system(), LogConfig::default());
    let (mut at, mut returned, mut reads) = (0u64, 0u64, 0u64);
    loop {
        let b = match filter {
            None => log.read(topic, 0, at, 10_000, 4 << 20).await,
            Some(f) => {
                log.read_filtered(topic, 0, at, 1000, 4 << 20, f, ScanBudget::default())
                    .await
            }
        }
        .expect("read");
        reads += 1;
        returned += b.records.len() as u64;
        if b.next_offset == at {
            return (returned, reads);
        }
        at = b.next_offset;
    }
}

pub async fn run(args: Args) {
    let filter = Filter::parse("type = 'refund'").expect("filter");
    println!(
        "filter bench: {} records of {} B values, {} per flush, {} flushes per index object; filter `{filter}` (1% of the records)",
        args.records, args.value_bytes, args.flush_records, args.flushes_per_object
    );
    println!(
        "layout   scan        records    reads   GETs    MiB read   seconds   bytes vs unfiltered"
    );
    for layout in &args.layouts {
        let counted = Instrumented::new(
            store::open("memory://", &StoreOptions::default()).expect("memory store"),
            1,
        );
        let store: DynStore = counted.clone();
        let (topic, objects) = build(layout, &args, &store).await;
        println!("{layout}: {objects} index objects");
        let mut unfiltered_bytes = 0u64;
        for (name, f) in [("unfiltered", None), ("filtered", Some(&filter))] {
            let before = counted.counts();
            let started = Instant::now();
            let (returned, reads) = scan(&store, &topic, f).await;
            let secs = started.elapsed().as_secs_f64();
            let after = counted.counts();
            let bytes = after.get_bytes - before.get_bytes;
            let ratio = if f.is_none() {
                unfiltered_bytes = bytes;
                "1×".to_string()
            } else {
                format!(
                    "{:.1}× fewer",
                    unfiltered_bytes as f64 / bytes.max(1) as f64
                )
            };
            println!(
                "{layout:<8} {name:<11} {returned:>8} {reads:>8} {:>6} {:>10.1} {secs:>9.2}   {ratio}",
                after.get - before.get,
                crate::stats::mib(bytes),
            );
        }
    }
}
