//! `sluice-bench tables`: the compactor's Parquet throughput (MiB/s of records written into
//! tables) and the size of the table against the raw data objects holding the same records.

use crate::stats::mib;
use bytes::Bytes;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock;
use sluice_core::format::record::Record;
use sluice_core::keys;
use sluice_core::log::{Log, LogConfig, ProduceRequest};
use sluice_core::store::{self, DynStore};
use sluice_core::topic::TopicPatch;
use sluice_tables::{Fence, Tables, TablesConfig};
use std::time::Instant;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// MiB of records to produce before the table is switched on.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    #[arg(long, default_value_t = 8)]
    partitions: u32,
}

/// The benchmark is the only writer: no lease needed.
struct NoFence;
impl Fence for NoFence {
    async fn check(&mut self) -> sluice_core::Result<()> {
        Ok(())
    }
}

/// A JSON-ish event: repetitive field names, varying numbers and an id, padded to `len`.
fn value(n: u64, len: usize) -> Bytes {
    let mut s = format!(
        r#"{{"event":"page_view","user":{},"session":"{:016x}","path":"/products/{}","ms":{}}}"#,
        n % 100_003,
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        n % 997,
        n * 7
    );
    while s.len() < len {
        s.push_str(&format!(" {:08x}", n.wrapping_mul(s.len() as u64 + 31)));
    }
    s.truncate(len);
    Bytes::from(s)
}

async fn dir_bytes(store: &DynStore, prefix: &str) -> u64 {
    sluice_core::store::list_under(&**store, &prefix.into())
        .await
        .expect("list")
        .iter()
        .map(|m| m.size)
        .sum()
}

pub async fn run(args: Args) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        store::open(dir.path().to_str().expect("utf-8"), &Default::default()).expect("store");
    let log = Log::new(store.clone(), clock::system(), LogConfig::default());
    let topic = log
        .topics()
        .create("bench", args.partitions, None, 0)
        .await
        .expect("topic");
    let per_flush = (4 << 20) / args.record_bytes.max(1);
    let total = (args.mib << 20) / args.record_bytes.max(1);
    let mut n = 0u64;
    while (n as usize) < total {
        let records = (0..per_flush)
            .map(|i| {
                let key = format!("user-{}", (n + i as u64) % 1000);
                let mut r =
                    Record::new(Some(key.as_bytes()), value(n + i as u64, args.record_bytes));
                r.headers = vec![("type".into(), Bytes::from_static(b"page_view"))];
                (None, r)
            })
            .collect();
        log.flush(vec![ProduceRequest {
            topic: topic.clone(),
            records,
            dedup_key: None,
            producer: None,
        }])
        .await
        .remove(0)
        .expect("produce");
        n += per_flush as u64;
    }
    // Fold everything into data objects first (no table yet), then time the table alone.
    let mut c = Compactor::new(store.clone(), clock::system(), CompactorConfig::default());
    loop {
        let r = c.run_once().await.expect("compaction pass");
        if r.entries_folded == 0 && !r.backlog {
            break;
        }
    }
    let topic = log
        .topics()
        .update(
            "bench",
            TopicPatch {
                parquet: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("parquet on");
    let mut tables = Tables::new(store.clone(), clock::system(), TablesConfig::default());
    let started = Instant::now();
    let (mut rows, mut bytes, mut files) = (0u64, 0u64, 0u64);
    loop {
        let r = tables
            .pass(std::slice::from_ref(&topic), false, &mut NoFence)
            .await
            .expect("table pass");
        rows += r.rows_written;
        bytes += r.record_bytes;
        files += r.files_written;
        if !r.backlog {
            break;
        }
    }
    let elapsed = started.elapsed();
    let data = dir_bytes(&store, keys::DATA).await;
    let table = dir_bytes(&store, &format!("{}/bench", keys::TABLES)).await;
    println!(
        "tables: {rows} records of {} B in {} partitions, {files} files, {:.1} MiB of records in {:.2} s",
        args.record_bytes,
        args.partitions,
        mib(bytes),
        elapsed.as_secs_f64()
    );
    println!(
        "  Parquet throughput: {:.1} MiB/s of records ({:.0} k records/s)",
        mib(bytes) / elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64() / 1000.0
    );
    println!(
        "  size: raw data objects {:.1} MiB, Parquet (zstd) {:.1} MiB = {:.1}% of the raw segments",
        mib(data),
        mib(table),
        100.0 * table as f64 / data.max(1) as f64
    );
}
