//! Filtered reads through the core (`Log::read_filtered`): a read that finds few matches stays
//! within its scan budget and answers with `next_offset` advanced; walking a partition with
//! filtered reads returns exactly the records an unfiltered read returns and the filter passes,
//! across the journal tail and index objects; index objects whose summary rules a filter out
//! are skipped without reading their data.

use bytes::Bytes;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock;
use sluice_core::filter::Filter;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig, ProduceRequest, ReadRecord, ScanBudget};
use sluice_core::store::{self, DynStore, Instrumented};
use sluice_core::topic::TopicConfig;
use std::sync::Arc;

fn memory() -> DynStore {
    store::open("memory://", &Default::default()).unwrap()
}

fn record(i: u64, kind: &str) -> Record {
    let mut r = Record::new(
        Some(format!("k{}", i % 7).as_bytes()),
        Bytes::from(format!("v{i}")),
    );
    r.headers
        .push(("type".into(), Bytes::from(kind.to_string())));
    r.headers
        .push(("n".into(), Bytes::from((i % 100).to_string())));
    r
}

/// Produce `kinds.len()` records to partition 0 in flushes of `per_flush`.
async fn produce(log: &Log, topic: &Arc<TopicConfig>, kinds: &[&str], per_flush: usize) {
    for (f, chunk) in kinds.chunks(per_flush).enumerate() {
        let base = (f * per_flush) as u64;
        let records = chunk
            .iter()
            .enumerate()
            .map(|(i, k)| (Some(0), record(base + i as u64, k)))
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
    }
}

/// Every record of partition 0, unfiltered.
async fn read_all(log: &Log, topic: &TopicConfig) -> Vec<ReadRecord> {
    let mut out = Vec::new();
    loop {
        let b = log
            .read(topic, 0, out.len() as u64, 1000, 4 << 20)
            .await
            .unwrap();
        if b.records.is_empty() {
            return out;
        }
        out.extend(b.records);
    }
}

/// Walk partition 0 with filtered reads; returns the records and the number of reads.
async fn walk(
    log: &Log,
    topic: &TopicConfig,
    filter: &Filter,
    limit: usize,
    budget: ScanBudget,
) -> (Vec<ReadRecord>, usize) {
    let (mut out, mut reads, mut at) = (Vec::new(), 0, 0);
    loop {
        let b = log
            .read_filtered(topic, 0, at, limit, 4 << 20, filter, budget)
            .await
            .unwrap();
        reads += 1;
        assert!(b.records.len() <= limit);
        assert!(b
            .records
            .iter()
            .all(|r| r.offset >= at && r.offset < b.next_offset));
        assert!(b.next_offset >= at && b.next_offset <= b.high_watermark);
        if b.next_offset == at {
            assert!(b.records.is_empty());
            return (out, reads);
        }
        at = b.next_offset;
        out.extend(b.records);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_few_matches_stays_within_its_scan_budget() {
    let log = Log::new(memory(), clock::system(), LogConfig::default());
    let topic = log.topics().create("t", 1, None, 0).await.unwrap();
    let mut kinds = vec!["skip"; 1000];
    kinds[990] = "hit";
    produce(&log, &topic, &kinds, 100).await;
    let filter = Filter::parse("type = 'hit'").unwrap();
    let budget = ScanBudget {
        records: 300,
        bytes: 1 << 20,
    };
    let b = log
        .read_filtered(&topic, 0, 0, 10, 4 << 20, &filter, budget)
        .await
        .unwrap();
    assert!(b.records.is_empty());
    assert_eq!((b.next_offset, b.high_watermark), (300, 1000));
    // A byte budget bounds it too: each record is about 40 bytes, a flush 4 KB.
    let small = ScanBudget {
        records: 100_000,
        bytes: 3000,
    };
    let b = log
        .read_filtered(&topic, 0, 0, 10, 4 << 20, &filter, small)
        .await
        .unwrap();
    assert!(b.records.is_empty() && b.next_offset > 0 && b.next_offset < 200);
    // Going on from next_offset finds the one match.
    let (got, reads) = walk(&log, &topic, &filter, 10, budget).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [990]);
    assert_eq!(reads, 5, "300 + 300 + 300 + 100 scanned, then the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_walks_equal_filtering_everything_across_tail_and_index() {
    let store = memory();
    let log = Log::new(store.clone(), clock::system(), LogConfig::default());
    let topic = log.topics().create("t", 1, None, 0).await.unwrap();
    let kinds: Vec<&str> = (0..2000)
        .map(|i| ["a", "b", "c", "d"][(i * 7 % 13) % 4])
        .collect();
    produce(&log, &topic, &kinds[..1500], 50).await;
    // Fold the first 1500 into a shared run; the rest stays in the journal tail.
    let mut compactor = Compactor::new(store, clock::system(), CompactorConfig::default());
    let report = compactor.run_once().await.unwrap();
    assert_eq!(
        (report.runs_written, report.index_objects),
        (1, 0),
        "{report:?}"
    );
    produce(&log, &topic, &kinds[1500..], 50).await;
    let all = read_all(&log, &topic).await;
    assert_eq!(all.len(), 2000);
    for f in [
        "type = 'a'",
        "type IN ('b', 'c') AND n < 10",
        "NOT type = 'd' OR key = 'k3'",
        "type = 'none'",
        "n >= 0",
    ] {
        let filter = Filter::parse(f).unwrap();
        let want: Vec<&ReadRecord> = all.iter().filter(|r| filter.matches(&r.record)).collect();
        for (limit, budget) in [(7, 97), (1000, 100_000)] {
            let budget = ScanBudget {
                records: budget,
                bytes: 32 << 20,
            };
            let (got, _) = walk(&log, &topic, &filter, limit, budget).await;
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "{f} limit {limit}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_reads_skip_index_objects_their_summaries_rule_out() {
    let counted = Instrumented::new(memory(), 1);
    let store: DynStore = counted.clone();
    let log = Log::new(store.clone(), clock::system(), LogConfig::default());
    let topic = log.topics().create("t", 1, None, 0).await.unwrap();
    // Own index objects (whose summaries a read sees before fetching data).
    let own = CompactorConfig {
        own_object_bytes: 0,
        ..Default::default()
    };
    let mut compactor = Compactor::new(store.clone(), clock::system(), own);
    // Four index objects of 500 records; only the second has `type = 'rare'`.
    for kind in ["common", "rare", "common", "common"] {
        produce(&log, &topic, &[kind; 500], 100).await;
        let report = compactor.run_once().await.unwrap();
        assert_eq!(report.index_objects, 1, "{report:?}");
    }
    let fresh = || Log::new(store.clone(), clock::system(), LogConfig::default());
    let bytes_read = || counted.counts().get_bytes;

    let before = bytes_read();
    let all = read_all(&fresh(), &topic).await;
    let unfiltered = bytes_read() - before;
    assert_eq!(all.len(), 2000);

    let filter = Filter::parse("type = 'rare' AND n < 50").unwrap();
    let before = bytes_read();
    let (got, _) = walk(&fresh(), &topic, &filter, 1000, ScanBudget::default()).await;
    let filtered = bytes_read() - before;
    let want: Vec<&ReadRecord> = all.iter().filter(|r| filter.matches(&r.record)).collect();
    assert_eq!(got.iter().collect::<Vec<_>>(), want);
    assert!(!want.is_empty() && want.iter().all(|r| (500..1000).contains(&r.offset)));
    // One data object of four is read (plus the small index objects).
    assert!(
        filtered * 3 < unfiltered,
        "filtered read {filtered} bytes, unfiltered {unfiltered}"
    );
    // A filter no summary rules out reads everything.
    let before = bytes_read();
    let (got, _) = walk(
        &fresh(),
        &topic,
        &Filter::parse("n < 50").unwrap(),
        100,
        ScanBudget::default(),
    )
    .await;
    assert_eq!(got.len(), 1000);
    assert!(bytes_read() - before >= unfiltered);
}
