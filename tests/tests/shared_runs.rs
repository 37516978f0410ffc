//! Shared runs (issue 10, point 1): small partitions' records go into one run per shard and
//! pass, partitions with enough bytes move to their own objects, runs merge, and retention and
//! GC delete a run only once nothing in it is needed (I6). Every test reads back through a
//! fresh reader and checks the history with the checker.

use bytes::Bytes;
use sluice_compactor::{Compactor, CompactorConfig, PassReport};
use sluice_core::clock::{Clock, ManualClock};
use sluice_core::format::checkpoint::Checkpoint;
use sluice_core::format::record::Record;
use sluice_core::keys;
use sluice_core::log::{Log, LogConfig, ProduceRequest};
use sluice_core::store::{self, DynStore, Instrumented};
use sluice_core::topic::TopicConfig;
use sluice_tests::checker::{check, History};
use sluice_tests::{compact_fully, read_back};
use std::sync::Arc;
use std::time::Duration;

fn memory() -> DynStore {
    store::open("memory://", &Default::default()).unwrap()
}

/// One flush with one record of `size` bytes for each topic; the acks go into `history`.
async fn produce_each(log: &Log, topics: &[Arc<TopicConfig>], size: usize, history: &mut History) {
    let reqs: Vec<ProduceRequest> = topics
        .iter()
        .map(|t| {
            let n = history.acked.len();
            let mut value = format!("{}-{n}-", t.name).into_bytes();
            value.resize(size.max(value.len()), b'.');
            ProduceRequest {
                topic: t.clone(),
                records: vec![(Some(0), Record::new(None, Bytes::from(value)))],
                dedup_key: None,
                producer: None,
            }
        })
        .collect();
    for (req, ack) in reqs.iter().zip(log.flush(reqs.clone()).await) {
        history.record_ack(0, req, &ack.expect("produce"));
    }
}

/// Read every topic back through a fresh reader: no violation, every acked record read.
async fn verify(store: DynStore, clock: Arc<dyn Clock>, names: &[String], history: &History) {
    let reader = Log::new(store, clock, LogConfig::default());
    let mut h = History {
        acked: history.acked.clone(),
        ..Default::default()
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    read_back(&reader, &names, &mut h).await;
    let v = check(&h);
    assert!(v.is_empty(), "violations: {v:#?}");
    let read: usize = h.read.values().map(Vec::len).sum();
    assert_eq!(read, h.acked.len());
}

async fn objects_under(store: &DynStore, prefix: &str) -> usize {
    store::list_under(&**store, &prefix.into())
        .await
        .unwrap()
        .len()
}

async fn checkpoint(store: &DynStore, shard: u32) -> Checkpoint {
    sluice_core::shard::newest_checkpoint(&**store, shard, 0, true)
        .await
        .unwrap()
        .expect("a checkpoint")
}

async fn topics(log: &Log, n: usize, shards: u32, retention: Option<i64>) -> Vec<Arc<TopicConfig>> {
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("t{i:04}");
        out.push(
            log.topics()
                .create(&name, 1, retention, i as u32 % shards)
                .await
                .unwrap(),
        );
    }
    out
}

fn names(topics: &[Arc<TopicConfig>]) -> Vec<String> {
    topics.iter().map(|t| t.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_partitions_share_one_run_per_shard_and_pass() {
    let bucket = memory();
    let clock = ManualClock::new(1_000_000);
    let log = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    let topics = topics(&log, 300, 2, None).await;
    let counted = Instrumented::new(bucket.clone(), 0);
    let mut c = Compactor::new(counted.clone(), clock.clone(), CompactorConfig::default());
    let mut history = History::default();
    for pass in 0..3 {
        produce_each(&log, &topics, 100, &mut history).await;
        let before = counted.counts();
        let r = c.run_once().await.unwrap();
        let puts = counted.counts().put - before.put;
        assert_eq!(
            (r.runs_written, r.index_objects),
            (2, 0),
            "pass {pass}: {r:?}"
        );
        // A run, a checkpoint and its pointer per shard (and the lease the first time):
        // not one object per partition.
        assert!(
            puts <= 2 * 3 + 1,
            "pass {pass}: {puts} PUTs for 300 partitions"
        );
        verify(bucket.clone(), clock.clone(), &names(&topics), &history).await;
    }
    assert_eq!(objects_under(&bucket, keys::DATA).await, 0);
    assert_eq!(objects_under(&bucket, keys::INDEX).await, 0);
    for shard in 0..2 {
        let cp = checkpoint(&bucket, shard).await;
        assert_eq!(cp.runs.len(), 3, "shard {shard}");
        assert_eq!(
            cp.slices.len(),
            150 * 3,
            "shard {shard}: a slice per partition and run"
        );
    }
    // A timestamp look-up lands in a slice, and a read from there finds the record.
    let t = &topics[7];
    let ts = history
        .acked
        .iter()
        .filter(|a| a.topic == t.name)
        .map(|a| a.offset)
        .collect::<Vec<_>>();
    assert_eq!(ts, [0, 1, 2]);
    let fresh = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    assert_eq!(fresh.offset_for_timestamp(t, 0, 0).await.unwrap(), 0);
    assert_eq!(fresh.offset_for_timestamp(t, 0, i64::MAX).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_with_enough_bytes_moves_to_its_own_objects() {
    let bucket = memory();
    let clock = ManualClock::new(1_000_000);
    let log = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    let all = topics(&log, 2, 1, None).await;
    let (big, small) = (&all[0], &all[1]);
    let cfg = CompactorConfig {
        own_object_bytes: 8 << 10,
        ..Default::default()
    };
    let mut c = Compactor::new(bucket.clone(), clock.clone(), cfg);
    let mut history = History::default();
    let mut moved = None;
    for pass in 0..12 {
        // 1 KiB a pass for `big`, 50 bytes for `small`.
        produce_each(&log, std::slice::from_ref(big), 1024, &mut history).await;
        produce_each(&log, std::slice::from_ref(small), 50, &mut history).await;
        let r = c.run_once().await.unwrap();
        if r.index_objects > 0 {
            assert_eq!(r.index_objects, 1, "only the big one moves: {r:?}");
            moved.get_or_insert(pass);
        }
        verify(bucket.clone(), clock.clone(), &names(&all), &history).await;
    }
    // Its first own object starts at offset 0 (the slices' records copied), and the next
    // checkpoint has no slice of it below the object's end.
    assert!(moved.is_some_and(|p| p >= 6), "moved at pass {moved:?}");
    let own = store::list_names(&*bucket, &keys::index_dir(big.topic_id().unwrap(), 0), None)
        .await
        .unwrap();
    let first = keys::IndexKey::parse(&own[0]).unwrap();
    assert_eq!(first.base, 0);
    let cp = checkpoint(&bucket, 0).await;
    let big_id = big.topic_id().unwrap();
    assert!(cp
        .slices
        .iter()
        .filter(|s| s.partition.topic == big_id)
        .all(|s| s.base >= first.end));
    assert!(cp
        .slices
        .iter()
        .any(|s| s.partition.topic == small.topic_id().unwrap()));
    assert_eq!(
        objects_under(&bucket, keys::DATA).await,
        own.len(),
        "no own object for the small partition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_merge_into_few_and_merged_ones_are_deleted_after_the_grace() {
    let bucket = memory();
    let clock = ManualClock::new(1_000_000);
    let log = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    let topics = topics(&log, 20, 1, None).await;
    let cfg = CompactorConfig {
        merge_fan_in: 2,
        gc_grace_ms: 60_000,
        retention_interval: Duration::ZERO,
        ..Default::default()
    };
    let mut c = Compactor::new(bucket.clone(), clock.clone(), cfg);
    let mut history = History::default();
    let mut report = PassReport::default();
    for pass in 1..=20u32 {
        produce_each(&log, &topics, 200, &mut history).await;
        clock.advance(1_000);
        let r = c.run_once().await.unwrap();
        report.runs_merged += r.runs_merged;
        report.runs_deleted += r.runs_deleted;
        // Fan-in 2: the runs are a binary counter of the passes.
        let cp = checkpoint(&bucket, 0).await;
        assert_eq!(cp.runs.len() as u32, pass.count_ones(), "pass {pass}");
        for t in &topics {
            let id = t.topic_id().unwrap();
            let n = cp.slices.iter().filter(|s| s.partition.topic == id).count();
            assert_eq!(
                n as u32,
                pass.count_ones(),
                "pass {pass}: slices of {}",
                t.name
            );
        }
        verify(bucket.clone(), clock.clone(), &names(&topics), &history).await;
    }
    assert_eq!(report.runs_merged, 20 - 2, "{report:?}");
    // Merged runs no checkpoint names are deleted once older than the grace, not before.
    assert!(objects_under(&bucket, keys::RUNS).await > 2);
    clock.advance(61_000);
    let r = c.run_once().await.unwrap();
    let cp = checkpoint(&bucket, 0).await;
    assert!(r.runs_deleted > 0, "{r:?}");
    let listed = store::list_names(&*bucket, &keys::run_dir(0), None)
        .await
        .unwrap();
    let mut named: Vec<String> = cp.runs.iter().map(|r| r.id.to_string()).collect();
    named.sort();
    assert_eq!(
        listed, named,
        "exactly the runs the checkpoint names are left"
    );
    verify(bucket.clone(), clock.clone(), &names(&topics), &history).await;
}

/// I6 with shared runs: topics with short and no retention share runs; every record inside
/// its topic's retention stays readable at every step, expired slices leave the checkpoint
/// (also of a shard nobody writes to any more), and a run is deleted only once no slice
/// names it: while a record of the long-lived topic is in it, it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_expired_slices_and_deletes_a_run_only_when_nothing_in_it_is_kept() {
    let bucket = memory();
    let clock = ManualClock::new(1_000_000);
    let mut lcfg = LogConfig::default();
    lcfg.shard.checkpoint_refresh = Duration::ZERO;
    let log = Log::new(bucket.clone(), clock.clone(), lcfg);
    let short = log
        .topics()
        .create("short", 1, Some(10_000), 0)
        .await
        .unwrap();
    let long = log.topics().create("long", 1, None, 0).await.unwrap();
    let both = [short.clone(), long.clone()];
    let cfg = CompactorConfig {
        retention_interval: Duration::ZERO,
        gc_grace_ms: 5_000,
        merge_fan_in: 4,
        ..Default::default()
    };
    let mut c = Compactor::new(bucket.clone(), clock.clone(), cfg);
    let mut history = History::default();
    let mut expired = 0;
    let mut ts: Vec<(String, u64, i64)> = Vec::new();
    for step in 0..30 {
        let n = history.acked.len();
        produce_each(&log, &both, 64, &mut history).await;
        let now = clock.now_ms();
        ts.extend(
            history.acked[n..]
                .iter()
                .map(|a| (a.topic.clone(), a.offset, now)),
        );
        clock.advance(1_000);
        expired += c.run_once().await.unwrap().slices_expired;
        let now = clock.now_ms();
        let fresh = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
        for (name, offset, at) in &ts {
            let topic = if name == "short" { &short } else { &long };
            if name == "long" || *at >= now - 10_000 {
                let b = fresh
                    .read(topic, 0, *offset, 1, 1 << 20)
                    .await
                    .unwrap_or_else(|e| panic!("step {step}: {name}@{offset} unreadable: {e}"));
                assert_eq!(b.records[0].offset, *offset);
            }
        }
    }
    assert!(expired > 0, "retention never dropped a slice");
    let info = log.partition_info(&short, 0).await.unwrap();
    assert!(info.earliest_offset > 0, "earliest moves with retention");
    // Every run left holds a slice of `long` (never expires), so none was deleted.
    let cp = checkpoint(&bucket, 0).await;
    let long_id = long.topic_id().unwrap();
    for r in &cp.runs {
        assert!(cp
            .slices
            .iter()
            .any(|s| s.run == r.id && s.partition.topic == long_id));
    }
    // Nobody writes any more: the short topic's remaining slices still expire (an entry with
    // no appends numbers the new checkpoint).
    let fresh_only_short = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    clock.advance(20_000);
    let r = c.run_once().await.unwrap();
    assert!(r.slices_expired > 0, "{r:?}");
    let cp = checkpoint(&bucket, 0).await;
    assert!(cp.slices.iter().all(|s| s.partition.topic == long_id));
    assert!(matches!(
        fresh_only_short
            .read(&short, 0, info.next_offset - 1, 1, 1 << 20)
            .await,
        Err(sluice_core::Error::OffsetOutOfRange { .. })
    ));
    let mut h = History {
        acked: history
            .acked
            .iter()
            .filter(|a| a.topic == "long")
            .cloned()
            .collect(),
        ..Default::default()
    };
    read_back(&fresh_only_short, &["long"], &mut h).await;
    assert!(check(&h).is_empty());
}

#[tokio::test]
async fn a_corrupt_run_is_reported_with_its_key() {
    use object_store::{ObjectStoreExt, PutPayload};
    let bucket = memory();
    let clock = ManualClock::new(1_000_000);
    let log = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    let topics = topics(&log, 3, 1, None).await;
    let mut history = History::default();
    produce_each(&log, &topics, 100, &mut history).await;
    let mut c = Compactor::new(bucket.clone(), clock.clone(), CompactorConfig::default());
    compact_fully(&mut c).await;
    let name = store::list_names(&*bucket, &keys::run_dir(0), None)
        .await
        .unwrap()
        .remove(0);
    let path = keys::run_dir(0).join(name.as_str());
    let mut bytes = store::get_opt(&*bucket, &path)
        .await
        .unwrap()
        .unwrap()
        .to_vec();
    let last = bytes.len() - 6; // inside the last slice's last frame
    bytes[last] ^= 0xFF;
    bucket.put(&path, PutPayload::from(bytes)).await.unwrap();
    // Exactly one partition's slice is hit: its read names the run; the others read.
    let reader = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    let (mut corrupt, mut fine) = (0, 0);
    for t in &topics {
        match reader.read(t, 0, 0, 10, 1 << 20).await {
            Err(sluice_core::Error::Corrupt { key, .. }) => {
                assert!(key.starts_with("runs/"), "{key}");
                corrupt += 1;
            }
            Ok(b) => {
                assert_eq!(b.records.len(), 1);
                fine += 1;
            }
            other => panic!("expected a corrupt-object error or records, got {other:?}"),
        }
    }
    assert_eq!((corrupt, fine), (1, 2));
}
