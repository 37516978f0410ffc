//! The compactor: crash at every store call and restart (converges, readers racing it never
//! miss or duplicate a record), single-active lease with fencing, retention (I6) and GC, journal
//! truncation, and the read path's request count for timestamp look-ups.

use bytes::Bytes;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock::{self, Clock, ManualClock};
use sluice_core::format::record::Record;
use sluice_core::keys;
use sluice_core::log::{Log, LogConfig, ProduceRequest};
use sluice_core::store::{self, DynStore, FaultConfig, Instrumented};
use sluice_tests::checker::{check, History};
use sluice_tests::{compact_fully, read_back, Rng};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn memory() -> DynStore {
    store::open("memory://", &Default::default()).unwrap()
}

fn quick(cfg: CompactorConfig) -> CompactorConfig {
    CompactorConfig {
        interval: Duration::from_millis(10),
        ..cfg
    }
}

/// Produce `flushes` flushes of small requests over two topics on two shards; returns acks.
async fn produce(log: &Log, flushes: usize, seed: u64, writer: u32, history: &mut History) {
    let mut rng = Rng::new(seed);
    for f in 0..flushes {
        let mut reqs = Vec::new();
        for name in ["a", "b"] {
            let topic = log.topics().get(name).await.unwrap();
            let records = (0..1 + rng.below(4))
                .map(|i| {
                    let key = format!("k{}", rng.below(10));
                    (
                        None,
                        Record::new(
                            Some(key.as_bytes()),
                            Bytes::from(format!("{writer}-{seed}-{f}-{name}-{i}")),
                        ),
                    )
                })
                .collect();
            reqs.push(ProduceRequest {
                topic,
                records,
                dedup_key: None,
                producer: None,
            });
        }
        for (req, ack) in reqs.iter().zip(log.flush(reqs.clone()).await) {
            history.record_ack(writer, req, &ack.expect("produce"));
        }
    }
}

async fn setup(store: DynStore, clock: Arc<dyn Clock>) -> Arc<Log> {
    let log = Log::new(store, clock, LogConfig::default());
    log.topics().create("a", 3, None, 0).await.unwrap();
    log.topics().create("b", 2, None, 1).await.unwrap();
    log
}

/// Read everything back through a fresh reader and check I1–I5.
async fn verify(store: DynStore, mut history: History) -> History {
    let reader = Log::new(store, clock::system(), LogConfig::default());
    read_back(&reader, &["a", "b"], &mut history).await;
    let v = check(&history);
    assert!(v.is_empty(), "violations: {v:#?}");
    let read: usize = history.read.values().map(Vec::len).sum();
    assert_eq!(read, history.acked.len());
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_call_then_restart_converges() {
    let cfg = quick(CompactorConfig {
        lease_duration: Duration::from_millis(50),
        truncate_keep_entries: 2,
        truncate_min_age_ms: 0,
        gc_grace_ms: 0,
        ..Default::default()
    });
    crash_at_every_call(cfg, 0).await;
}

/// The same with shared runs that merge (two at a time) and partitions that move to their own
/// objects (past 450 bytes) in the pass that crashes, after three passes that wrote runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_call_while_runs_merge_and_partitions_move_converges() {
    let cfg = quick(CompactorConfig {
        lease_duration: Duration::from_millis(50),
        truncate_keep_entries: 2,
        truncate_min_age_ms: 0,
        gc_grace_ms: 0,
        own_object_bytes: 450,
        merge_fan_in: 2,
        ..Default::default()
    });
    crash_at_every_call(cfg, 3).await;
}

/// Produce `before` flushes and fold them one pass per flush, produce 6 more, then crash a
/// compactor at every store call of its next pass and let a successor finish: every acked
/// record reads back (also for a reader racing both), and every shard converges.
async fn crash_at_every_call(cfg: CompactorConfig, before: usize) {
    let prepare = |store: DynStore, seed: u64, history: &mut History| {
        let cfg = CompactorConfig {
            max_entries_per_pass: 1,
            ..cfg.clone()
        };
        let mut h = std::mem::take(history);
        async move {
            let log = setup(store.clone(), clock::system()).await;
            let mut first = Compactor::new(store.clone(), clock::system(), cfg);
            for f in 0..before {
                produce(&log, 1, seed * 100 + f as u64, 2, &mut h).await;
                compact_fully(&mut first).await;
            }
            first.release_lease().await.unwrap();
            produce(&log, 6, seed, 0, &mut h).await;
            h
        }
    };
    // How many store calls does one full pass make?
    let calls = {
        let store = memory();
        prepare(store.clone(), 1, &mut History::default()).await;
        let counted = Instrumented::new(store, 0);
        let mut c = Compactor::new(counted.clone(), clock::system(), cfg.clone());
        // A released lease is taken on the second look: the first pass only observes it.
        let mut r = c.run_once().await.unwrap();
        if r.waiting {
            r = c.run_once().await.unwrap();
        }
        if before > 0 {
            // The pass the crashes cut does write a run, merge runs and move partitions.
            assert!(
                r.runs_written > 0 && r.runs_merged > 0 && r.index_objects > 0,
                "{r:?}"
            );
        }
        counted.calls()
    };
    assert!(calls > 10, "a pass makes {calls} calls");
    for crash_after in 0..calls + 2 {
        let store = memory();
        let mut history = prepare(store.clone(), crash_after, &mut History::default()).await;
        let faulty = Instrumented::new(store.clone(), crash_after);
        faulty.set_faults(FaultConfig {
            crash_after_calls: Some(crash_after),
            ..Default::default()
        });
        // A reader racing the crashing compactor and its successor.
        let racing = {
            let store = store.clone();
            let expected: HashMap<(String, u32, u64), Vec<u8>> = history
                .acked
                .iter()
                .map(|a| ((a.topic.clone(), a.partition, a.offset), a.value.clone()))
                .collect();
            tokio::spawn(async move {
                let reader = Log::new(store, clock::system(), LogConfig::default());
                let mut checked = 0;
                for round in 0..30 {
                    for name in ["a", "b"] {
                        let t = reader.topics().get(name).await.unwrap();
                        for p in 0..t.partitions {
                            let b = reader
                                .read(&t, p, 0, 10_000, 64 << 20)
                                .await
                                .unwrap_or_else(|e| panic!("round {round} {name}/{p}: {e}"));
                            // Records past the first produce's are the second produce's,
                            // which may start while this reader still runs.
                            let want = expected.keys().filter(|k| k.0 == name && k.1 == p).count();
                            for (i, r) in b.records.iter().enumerate() {
                                assert_eq!(r.offset, i as u64, "dense");
                                if i >= want {
                                    continue;
                                }
                                assert_eq!(
                                    Some(&r.record.value.to_vec()),
                                    expected.get(&(name.to_string(), p, r.offset)),
                                    "{name}/{p}@{}",
                                    r.offset
                                );
                                checked += 1;
                            }
                            assert!(
                                b.records.len() >= want,
                                "{name}/{p}: a racing reader missed records"
                            );
                        }
                    }
                    tokio::task::yield_now().await;
                }
                checked
            })
        };
        let mut crashed = Compactor::new(faulty.clone(), clock::system(), cfg.clone());
        // Dies at call `crash_after + 1` (of its passes: one to observe a released lease).
        for _ in 0..2 {
            match crashed.run_once().await {
                Ok(r) if r.waiting => continue,
                _ => break,
            }
        }
        drop(crashed);
        tokio::time::sleep(Duration::from_millis(60)).await; // its lease expires
        let mut successor = Compactor::new(store.clone(), clock::system(), cfg.clone());
        compact_fully(&mut successor).await;
        // Keep writing after recovery: writers continue from the checkpoint correctly.
        let log2 = Log::new(store.clone(), clock::system(), LogConfig::default());
        produce(&log2, 3, 1000 + crash_after, 1, &mut history).await;
        compact_fully(&mut successor).await;
        assert!(racing.await.expect("racing reader") > 0);
        verify(store.clone(), history).await;
        // Converged: every shard's newest checkpoint is at its journal head.
        for shard in [0, 1] {
            let cps = store::list_names(&*store, &keys::checkpoint_dir(shard), None)
                .await
                .unwrap();
            let head = log2.shard(shard).await.unwrap().head_seq();
            assert_eq!(
                cps.last().and_then(|n| keys::parse_seq(n)),
                Some(head),
                "crash_after {crash_after}, shard {shard}"
            );
        }
    }
}

#[tokio::test]
async fn second_instance_waits_and_stale_one_is_fenced() {
    let store = memory();
    let log = setup(store.clone(), clock::system()).await;
    produce(&log, 2, 7, 0, &mut History::default()).await;
    let cfg = CompactorConfig {
        lease_duration: Duration::from_millis(300),
        ..Default::default()
    };
    let mut a = Compactor::new(store.clone(), clock::system(), cfg.clone());
    let mut b = Compactor::new(store.clone(), clock::system(), cfg.clone());
    assert!(a.run_once().await.unwrap().leader);
    produce(&log, 2, 8, 0, &mut History::default()).await;
    let r = b.run_once().await.unwrap();
    assert!(
        !r.leader && r.entries_folded == 0,
        "B must wait while A holds the lease"
    );
    // A stalls (no renewal) past the lease duration; B takes over.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = b.run_once().await.unwrap();
    assert!(
        r.leader && r.entries_folded > 0,
        "B takes over an expired lease: {r:?}"
    );
    // A wakes up: it is fenced and does nothing.
    produce(&log, 1, 9, 0, &mut History::default()).await;
    let r = a.run_once().await.unwrap();
    assert!(!r.leader, "stale A must be fenced");
    assert!(a.lease().epoch().is_none());
    assert!(b.lease().epoch().is_some());
}

#[tokio::test]
async fn retention_deletes_only_expired_data_and_gc_only_old_garbage() {
    let store = memory();
    let clock = ManualClock::new(1_000_000);
    let mut cfg = LogConfig::default();
    cfg.shard.checkpoint_refresh = Duration::ZERO;
    let log = Log::new(store.clone(), clock.clone(), cfg);
    let topic = log.topics().create("t", 2, Some(10_000), 0).await.unwrap();
    let mut c = Compactor::new(
        store.clone(),
        clock.clone(),
        CompactorConfig {
            retention_interval: Duration::ZERO,
            gc_grace_ms: 600_000,
            truncate_keep_entries: 5,
            truncate_min_age_ms: 10_000,
            // Own objects only: retention of shared runs is `tests/tests/shared_runs.rs`'s.
            own_object_bytes: 0,
            ..Default::default()
        },
    );
    let mut produced: Vec<(u32, u64, i64)> = Vec::new(); // (partition, offset, append_ts)
    let mut deleted_any = false;
    for step in 0..40 {
        let req = ProduceRequest {
            topic: topic.clone(),
            records: vec![(
                Some(step % 2),
                Record::new(None, Bytes::from(format!("r{step}"))),
            )],
            dedup_key: None,
            producer: None,
        };
        let ack = log.flush(vec![req]).await.remove(0).unwrap();
        produced.push((ack.offsets[0].0, ack.offsets[0].1, ack.append_ts));
        clock.advance(1_000);
        let r = c.run_once().await.unwrap();
        deleted_any |= r.retention_deleted > 0;
        // I6: everything inside retention is still readable, at its offset.
        let now = clock.now_ms();
        for &(p, o, ts) in &produced {
            if ts >= now - 10_000 {
                let b = log
                    .read(&topic, p, o, 1, 1 << 20)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("step {step}: {p}@{o} inside retention unreadable: {e}")
                    });
                assert_eq!(b.records[0].offset, o);
            }
        }
    }
    assert!(deleted_any, "retention never deleted anything");
    let info = log.partition_info(&topic, 0).await.unwrap();
    assert!(
        info.earliest_offset > 0,
        "earliest offset moves with retention"
    );
    assert!(matches!(
        log.read(&topic, 0, 0, 1, 1 << 20).await,
        Err(sluice_core::Error::OffsetOutOfRange { .. })
    ));
    // Journal truncated far behind the checkpoint, yet a new writer continues correctly.
    let journal = store::list_names(&*store, &keys::journal_dir(0), None)
        .await
        .unwrap();
    assert!(
        journal.len() < 40,
        "journal was truncated ({} entries left)",
        journal.len()
    );
    let fresh = Log::new(store.clone(), clock.clone(), LogConfig::default());
    let ack = fresh
        .flush(vec![ProduceRequest {
            topic: topic.clone(),
            records: vec![(Some(0), Record::new(None, &b"after"[..]))],
            dedup_key: None,
            producer: None,
        }])
        .await
        .remove(0)
        .unwrap();
    assert_eq!(
        ack.offsets[0].1, 20,
        "offsets continue densely after truncation"
    );

    // GC: an orphan segment (writer died before committing) survives the grace period only.
    let orphan = sluice_core::ids::ObjectId::from_ulid(sluice_core::ids::new_ulid(clock.now_ms()));
    store::put_create(
        &*store,
        &keys::segment(orphan),
        Bytes::from_static(b"orphan"),
    )
    .await
    .unwrap();
    c.run_once().await.unwrap();
    assert!(
        store::get_opt(&*store, &keys::segment(orphan))
            .await
            .unwrap()
            .is_some(),
        "young orphan kept"
    );
    clock.advance(600_001);
    c.run_once().await.unwrap();
    assert!(
        store::get_opt(&*store, &keys::segment(orphan))
            .await
            .unwrap()
            .is_none(),
        "old orphan deleted"
    );
}

/// Issue #10 point 2: a timestamp look-up on a partition of 1,000,000 records costs at most 3
/// object requests (GET or LIST) on a reader that has never seen the topic (given its config),
/// and at most 2 on a warm one, whether the answer is indexed, in the journal tail, or past the
/// end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_lookup_on_a_million_records_is_a_few_requests() {
    // The default layout: the partition's records move to its own objects 4 MiB at a time,
    // the newest stay in shared runs.
    timestamp_lookups_cost(CompactorConfig::default().own_object_bytes).await;
}

/// The same partition never leaves the shared runs (they merge up to 64 MiB): look-ups answer
/// from the checkpoint's slices and one slice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_lookup_on_a_million_records_in_shared_runs_is_a_few_requests() {
    timestamp_lookups_cost(u64::MAX).await;
}

async fn timestamp_lookups_cost(own_object_bytes: u64) {
    let inner = memory();
    let counted = Instrumented::new(inner.clone(), 0);
    let clock = ManualClock::new(10_000_000);
    let log = Log::new(inner.clone(), clock.clone(), LogConfig::default());
    let topic = log.topics().create("big", 1, None, 0).await.unwrap();
    let mut ts_of_flush = Vec::new();
    let flush = |f: u64| {
        let records = (0..1000)
            .map(|i| {
                (
                    None,
                    Record::new(None, Bytes::from(format!("{}", f * 1000 + i))),
                )
            })
            .collect();
        let log = log.clone();
        let topic = topic.clone();
        async move {
            log.flush(vec![ProduceRequest {
                topic,
                records,
                dedup_key: None,
                producer: None,
            }])
            .await
            .remove(0)
            .unwrap()
        }
    };
    for f in 0..1000u64 {
        let ack = flush(f).await;
        assert_eq!(ack.offsets[0].1, f * 1000);
        ts_of_flush.push(ack.append_ts);
        clock.advance(7);
    }
    let mut c = Compactor::new(
        inner.clone(),
        clock.clone(),
        CompactorConfig {
            max_entries_per_pass: 50,
            own_object_bytes,
            ..Default::default()
        },
    );
    compact_fully(&mut c).await;
    let own = store::list_names(
        &*inner,
        &keys::index_dir(topic.topic_id().unwrap(), 0),
        None,
    )
    .await
    .unwrap()
    .len();
    let cp = sluice_core::shard::newest_checkpoint(&*inner, 0, 0, true)
        .await
        .unwrap()
        .unwrap();
    println!(
        "own_object_bytes {own_object_bytes}: {own} own index objects, {} runs, {} slices",
        cp.runs.len(),
        cp.slices.len()
    );
    if own_object_bytes == u64::MAX {
        assert_eq!(own, 0);
        assert!(!cp.slices.is_empty());
    } else {
        assert!(
            own > 0 && !cp.slices.is_empty(),
            "both kinds: {own} own objects"
        );
    }
    // Three flushes more stay in the journal tail (not folded).
    for f in 1000..1003u64 {
        let ack = flush(f).await;
        ts_of_flush.push(ack.append_ts);
        clock.advance(7);
    }
    let requests = |before: sluice_core::store::Counts| {
        let now = counted.counts();
        (now.get - before.get) + (now.list - before.list)
    };
    let mut rng = Rng::new(5);
    let warm = Log::new(counted.clone(), clock.clone(), LogConfig::default());
    let indexed: Vec<(i64, u64)> = (0..20)
        .map(|_| rng.below(1000) as usize)
        .chain([0, 999])
        .map(|f| (ts_of_flush[f], f as u64 * 1000))
        .chain([(0, 0)])
        .collect();
    let tail: Vec<(i64, u64)> = [1000usize, 1002]
        .iter()
        .map(|&f| (ts_of_flush[f], f as u64 * 1000))
        .chain([(i64::MAX, 1_003_000)])
        .collect();
    // `extra`: GETs allowed for journal entries the compactor has not folded yet.
    let check = |cases: Vec<(i64, u64)>, extra: u64| {
        let counted = counted.clone();
        let clock = clock.clone();
        let warm = warm.clone();
        let topic = topic.clone();
        async move {
            let (mut most_cold, mut most_warm) = (0, 0);
            for (i, (ts, want)) in cases.into_iter().enumerate() {
                // Cold: a reader that has never seen the topic.
                let cold = Log::new(counted.clone(), clock.clone(), LogConfig::default());
                let before = counted.counts();
                let offset = cold.offset_for_timestamp(&topic, 0, ts).await.unwrap();
                assert_eq!(offset, want, "first offset at or after {ts}");
                let spent = requests(before);
                assert!(
                    spent <= 3 + extra,
                    "case {i}: a cold look-up made {spent} requests"
                );
                most_cold = most_cold.max(spent);
                // Warm: a reader that has looked up before.
                let before = counted.counts();
                let offset = warm.offset_for_timestamp(&topic, 0, ts).await.unwrap();
                assert_eq!(offset, want);
                let spent = requests(before);
                assert!(
                    spent <= 2,
                    "case {i}: a warm look-up made {spent} requests: {:?} then {:?}",
                    before,
                    counted.counts()
                );
                most_warm = most_warm.max(spent);
                // And the record there reads back.
                if want < 1_003_000 {
                    let b = cold.read(&topic, 0, offset, 1, 1 << 20).await.unwrap();
                    assert_eq!(b.records[0].record.value, Bytes::from(format!("{offset}")));
                }
            }
            (most_cold, most_warm)
        }
    };
    // Warm up: the listing (an indexed answer) and the shard (an answer past the end).
    warm.offset_for_timestamp(&topic, 0, 0).await.unwrap();
    warm.offset_for_timestamp(&topic, 0, i64::MAX)
        .await
        .unwrap();
    // Answers in the index never touch the journal, however long its tail.
    let a = check(indexed.clone(), 0).await;
    // Answers in the tail cost one GET more per unfolded entry (3 here).
    let b = check(tail.clone(), 3).await;
    // Once the compactor has folded the tail: at most 3 requests for every answer.
    compact_fully(&mut c).await;
    let (k, ts) = (1003u64, clock.now_ms());
    let folded = check(
        tail.clone().into_iter().chain([(ts, k * 1000)]).collect(),
        0,
    )
    .await;
    let all = check(indexed.into_iter().chain(tail).collect(), 0).await;
    println!(
        "most requests (cold, warm): indexed {a:?}, in a tail of 3 entries {b:?}, \
         past the end once folded {folded:?}, all once folded {all:?}"
    );
}

/// When nothing is produced, neither writers nor the compactor make PUTs (cost at idle is a
/// few GETs/LISTs per pass).
#[tokio::test]
async fn idle_compactor_makes_no_puts() {
    let store = memory();
    let log = setup(store.clone(), clock::system()).await;
    produce(&log, 3, 11, 0, &mut History::default()).await;
    let counted = Instrumented::new(store.clone(), 0);
    let mut c = Compactor::new(counted.clone(), clock::system(), CompactorConfig::default());
    compact_fully(&mut c).await;
    let before = counted.counts();
    assert!(before.put > 0, "the first passes did write");
    for _ in 0..5 {
        c.run_once().await.unwrap();
    }
    let after = counted.counts();
    assert_eq!(after.put, before.put, "idle passes must not PUT");
    assert_eq!(after.delete, before.delete, "idle passes must not DELETE");
}

/// A corrupt or truncated object in the bucket is reported with its key (never a panic, never
/// silently dropped records); a corrupt checkpoint is skipped for an older state.
#[tokio::test]
async fn corrupt_objects_are_reported_with_their_key() {
    use object_store::{ObjectStoreExt, PutPayload};
    let store = memory();
    let log = setup(store.clone(), clock::system()).await;
    let mut history = History::default();
    produce(&log, 4, 21, 0, &mut history).await;
    // Own data objects (a corrupt shared run: `tests/tests/shared_runs.rs`).
    let own = CompactorConfig {
        own_object_bytes: 0,
        ..Default::default()
    };
    let mut c = Compactor::new(store.clone(), clock::system(), own);
    compact_fully(&mut c).await;
    produce(&log, 2, 22, 0, &mut history).await; // a journal tail after the checkpoint

    let topic = log.topics().get("a").await.unwrap();
    let tid = topic.topic_id().unwrap();
    // 1. A data object (indexed records) with a flipped byte.
    let data_dir = keys::data_dir(tid, 0);
    let name = store::list_names(&*store, &data_dir, None)
        .await
        .unwrap()
        .remove(0);
    let path = data_dir.clone().join(name.as_str());
    let mut bytes = store::get_opt(&*store, &path)
        .await
        .unwrap()
        .unwrap()
        .to_vec();
    let last = bytes.len() - 6;
    bytes[last] ^= 0xFF;
    store.put(&path, PutPayload::from(bytes)).await.unwrap();
    let reader = Log::new(store.clone(), clock::system(), LogConfig::default());
    match reader.read(&topic, 0, 0, 10_000, 64 << 20).await {
        Err(sluice_core::Error::Corrupt { key, .. }) => assert!(key.starts_with("data/"), "{key}"),
        other => panic!("expected a corrupt-object error, got {other:?}"),
    }
    // 2. A truncated journal entry in the tail.
    let head = reader.shard(0).await.unwrap().head_seq();
    let entry = keys::journal_entry(0, head);
    let bytes = store::get_opt(&*store, &entry).await.unwrap().unwrap();
    store
        .put(&entry, PutPayload::from(bytes.slice(..bytes.len() / 2)))
        .await
        .unwrap();
    let fresh = Log::new(store.clone(), clock::system(), LogConfig::default());
    match fresh.read(&topic, 0, 0, 1, 1 << 20).await {
        Err(sluice_core::Error::Corrupt { key, .. }) => assert_eq!(key, entry.to_string()),
        other => panic!("expected a corrupt journal entry error, got {other:?}"),
    }
    // 3. A corrupt newest checkpoint: skipped (logged), the shard opens from the journal.
    let cps = store::list_names(&*store, &keys::checkpoint_dir(1), None)
        .await
        .unwrap();
    let cp = keys::checkpoint(1, keys::parse_seq(cps.last().unwrap()).unwrap());
    store
        .put(&cp, PutPayload::from(vec![1u8, 2, 3]))
        .await
        .unwrap();
    let fresh = Log::new(store.clone(), clock::system(), LogConfig::default());
    let b = fresh.topics().get("b").await.unwrap();
    let info = fresh.partition_info(&b, 0).await.unwrap();
    assert!(info.next_offset > 0);
}

/// The Delta-log rule: a writer idle past `max_head_age` while the compactor truncated the
/// journal behind a checkpoint must not "find" the end of the journal at a deleted key and
/// commit there; it reloads the checkpoint and lands after the true head.
#[tokio::test]
async fn stale_writer_never_lands_on_a_truncated_journal_key() {
    let store = memory();
    let mut cfg = LogConfig::default();
    cfg.shard.max_head_age = Duration::from_millis(100);
    let stale = Log::new(store.clone(), clock::system(), cfg.clone());
    stale.topics().create("a", 1, None, 0).await.unwrap();
    stale.topics().create("b", 1, None, 1).await.unwrap();
    let mut history = History::default();
    produce(&stale, 2, 31, 0, &mut history).await;
    let stale_head = stale.shard(0).await.unwrap().head_seq();
    // Meanwhile another writer moves on and the compactor truncates behind a checkpoint
    // (min age 0 stands for "a long time passed").
    let busy = Log::new(store.clone(), clock::system(), cfg.clone());
    let mut c = Compactor::new(
        store.clone(),
        clock::system(),
        CompactorConfig {
            truncate_keep_entries: 3,
            truncate_min_age_ms: 0,
            ..Default::default()
        },
    );
    for round in 0..3 {
        produce(&busy, 10, 32 + round, 1, &mut history).await;
        compact_fully(&mut c).await;
    }
    let first_left = store::list_names(&*store, &keys::journal_dir(0), None)
        .await
        .unwrap()
        .first()
        .and_then(|n| keys::parse_seq(n))
        .unwrap();
    assert!(
        first_left > stale_head + 1,
        "the entries after the stale head were truncated"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The stale writer commits again: offsets must continue after the busy writer's.
    produce(&stale, 2, 33, 0, &mut history).await;
    let head = stale.shard(0).await.unwrap().head_seq();
    assert!(
        head > busy.shard(0).await.unwrap().head_seq(),
        "landed after the true head"
    );
    verify(store, history).await;
}

/// A backlog is folded in bounded passes (memory), each flagged as backlog until the last.
#[tokio::test]
async fn backlog_is_folded_in_passes_bounded_by_bytes() {
    let store = memory();
    let log = setup(store.clone(), clock::system()).await;
    let mut history = History::default();
    produce(&log, 5, 41, 0, &mut history).await;
    let mut c = Compactor::new(
        store.clone(),
        clock::system(),
        CompactorConfig {
            max_bytes_per_pass: 1, // one journal entry per shard per pass
            ..Default::default()
        },
    );
    let first = c.run_once().await.unwrap();
    assert!(first.backlog, "five entries per shard do not fit one pass");
    assert_eq!(first.entries_folded, 2, "one entry per shard");
    compact_fully(&mut c).await;
    let last = c.run_once().await.unwrap();
    assert!(!last.backlog);
    verify(store, history).await;
}

/// A pass cut by its byte bound fetches the journal entries only as far as it folds (16 ahead
/// at most), so a backlog folded over many passes reads each entry a bounded number of times.
/// Before, every pass fetched every entry after its checkpoint and folded 64 MiB of them: 32
/// journal GETs per entry in the cost model at 400 MiB/s of ingest.
#[tokio::test]
async fn a_pass_cut_by_bytes_fetches_only_what_it_folds() {
    let store = memory();
    let log = setup(store.clone(), clock::system()).await;
    let mut history = History::default();
    produce(&log, 200, 43, 0, &mut history).await;
    let counted = Instrumented::new(store.clone(), 3);
    let mut c = Compactor::new(
        counted.clone(),
        clock::system(),
        CompactorConfig {
            max_bytes_per_pass: 1, // one journal entry per shard per pass
            ..Default::default()
        },
    );
    let mut folded = 0;
    let mut passes = 0;
    loop {
        let r = c.run_once().await.unwrap();
        folded += r.entries_folded;
        passes += 1;
        if r.entries_folded == 0 && !r.backlog {
            break;
        }
    }
    assert_eq!(folded, 400, "200 entries on each of two shards");
    let gets = counted.counts_by_area()["journal"].get;
    // Every pass in a shard: the entry it folds, at most 16 fetched ahead, the probe past the
    // end when it finishes. Fetching everything after the checkpoint made ~40,000.
    assert!(
        gets <= 17 * folded + 2 * passes,
        "{gets} journal GETs for {folded} entries in {passes} passes"
    );
    verify(store, history).await;
}

/// The lag gauges follow the passes: what a pass capped at 2 entries leaves, then 0 once the
/// compactor reached the end of each shard's journal; the journal metrics count the entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_gauges_show_what_each_pass_left() {
    use sluice_core::metrics::ShardLabel;
    let store = memory();
    let log = setup(store.clone(), clock::system()).await;
    let mut history = History::default();
    produce(&log, 5, 11, 0, &mut history).await;
    for shard in [0, 1] {
        let s = ShardLabel { shard };
        assert_eq!(log.metrics().entries.get_or_create(&s).get(), 5);
        assert_eq!(log.metrics().conflicts.get_or_create(&s).get(), 0);
        let text = sluice_core::metrics::render(&[log.metrics().registry()]);
        let want = format!("sluice_journal_commit_duration_seconds_count{{shard=\"{shard}\"}} 5");
        assert!(
            text.contains(&want),
            "one commit observed per entry:\n{text}"
        );
    }
    let mut c = Compactor::new(
        store.clone(),
        clock::system(),
        quick(CompactorConfig {
            max_entries_per_pass: 2,
            ..Default::default()
        }),
    );
    let lag = |c: &Compactor, shard| {
        let s = ShardLabel { shard };
        let m = c.metrics();
        (
            m.lag_entries.get_or_create(&s).get(),
            m.lag_seconds.get_or_create(&s).get(),
        )
    };
    let r = c.run_once().await.unwrap();
    assert!(r.backlog);
    for shard in [0, 1] {
        let (entries, seconds) = lag(&c, shard);
        assert_eq!(entries, 3, "shard {shard}: 5 entries, 2 folded");
        assert!(seconds >= 0.0, "shard {shard}: {seconds}");
    }
    while c.run_once().await.unwrap().backlog {}
    for shard in [0, 1] {
        assert_eq!(lag(&c, shard), (0, 0.0), "shard {shard} caught up");
    }
    verify(store, history).await;
}

/// A create-only PUT of an index object answered "already exists" with nothing written (the
/// 1% conflict fault of `five_percent_store_faults_lose_and_duplicate_nothing` found it: a
/// partition's first records were lost) must not let the checkpoint pass those records: the
/// pass fails, and once the store answers truly every acked record is read back.
#[tokio::test]
async fn a_false_already_exists_on_an_index_put_never_lets_the_checkpoint_pass_its_records() {
    let store = memory();
    let log = setup(store.clone(), clock::system()).await;
    let mut history = History::default();
    produce(&log, 4, 21, 0, &mut history).await;
    let lying = Instrumented::new(store.clone(), 7);
    lying.set_faults(FaultConfig {
        conflict_rate: 1.0,
        only_prefix: Some("index/".into()),
        ..Default::default()
    });
    let own = CompactorConfig {
        own_object_bytes: 0,
        ..Default::default()
    };
    let mut c = Compactor::new(lying.clone(), clock::system(), own);
    for _ in 0..3 {
        assert!(
            c.run_once().await.is_err(),
            "a pass on a lying store must fail"
        );
    }
    let checkpoints = store::list_names(&*store, &"checkpoints".into(), None)
        .await
        .unwrap();
    assert!(
        checkpoints.is_empty(),
        "checkpoint written: {checkpoints:?}"
    );
    lying.set_faults(FaultConfig::default());
    compact_fully(&mut c).await;
    verify(store, history).await;
}

/// A pass that folds records between retention passes uses the topic list of the last
/// retention pass for the Parquet hook instead of listing every topic config (a LIST and a GET
/// per topic), and lists again when it folds a topic that list does not know.
#[tokio::test]
async fn a_folding_pass_does_not_list_every_topic() {
    let store = memory();
    let clock = ManualClock::new(1_000_000_000);
    let log = Log::new(store.clone(), clock.clone(), LogConfig::default());
    let many = 40u64;
    for i in 0..many {
        log.topics()
            .create(&format!("t{i}"), 1, None, 0)
            .await
            .unwrap();
    }
    let send = |topic| {
        let log = log.clone();
        async move {
            let acks = log
                .flush(vec![ProduceRequest {
                    topic,
                    records: vec![(Some(0), Record::new(None, Bytes::from("x")))],
                    dedup_key: None,
                    producer: None,
                }])
                .await;
            acks[0].as_ref().unwrap();
        }
    };
    send(log.topics().get("t0").await.unwrap()).await;
    let counted = Instrumented::new(store.clone(), 0);
    let mut c = Compactor::new(counted.clone(), clock.clone(), CompactorConfig::default());
    compact_fully(&mut c).await; // the first pass is a retention pass: it lists the topics
    clock.advance(1_000);
    send(log.topics().get("t1").await.unwrap()).await;
    let before = counted.counts();
    let r = c.run_once().await.unwrap();
    let after = counted.counts();
    assert_eq!(r.entries_folded, 1, "{r:?}");
    let (lists, gets) = (after.list - before.list, after.get - before.get);
    assert!(
        lists + gets < many,
        "a folding pass must not read every topic config: {lists} LISTs, {gets} GETs"
    );
    // A Parquet topic created after that listing is found by the pass that folds it.
    let on = sluice_core::topic::TopicSettings {
        parquet: true,
        ..Default::default()
    };
    let new = log.topics().create_with("new", 1, on, 0).await.unwrap();
    clock.advance(1_000);
    send(new).await;
    let r = c.run_once().await.unwrap();
    assert_eq!(r.entries_folded, 1, "{r:?}");
    assert!(
        r.table_files >= 1,
        "the new topic's table is written: {r:?}"
    );
}

/// A checkpoint pointer that can be written but never read (a store that cannot serve the key,
/// as LocalStack once did after a kill): a fresh compactor still folds, treats the pointer as
/// missing and rewrites it with its next checkpoint, and readers open the shards from the
/// listing meanwhile. Before 2026-12-07 the pass failed on the pointer's GET every time.
#[tokio::test]
async fn an_unreadable_checkpoint_pointer_is_rewritten_and_read_around() {
    let store = memory();
    let log = setup(store.clone(), clock::system()).await;
    let mut history = History::default();
    produce(&log, 3, 21, 0, &mut history).await;
    // Short leases: the second compactor (a fresh one, no cached pointer) takes over at once.
    let cfg = CompactorConfig {
        lease_duration: Duration::from_millis(100),
        ..Default::default()
    };
    compact_fully(&mut Compactor::new(
        store.clone(),
        clock::system(),
        cfg.clone(),
    ))
    .await;
    let shard = log.topics().get("a").await.unwrap().shard;
    let before = sluice_core::shard::pointed_checkpoint(&*store, shard)
        .await
        .expect("a pointer after the first compaction")
        .seq;

    let faulty = Instrumented::new(store.clone(), 5);
    faulty.set_faults(FaultConfig {
        error_rate: 1.0,
        only_reads: true,
        only_prefix: Some(format!("{}", keys::checkpoint_pointer(shard))),
        ..Default::default()
    });
    let faulty: DynStore = faulty;
    assert!(sluice_core::shard::pointed_checkpoint(&*faulty, shard)
        .await
        .is_none());
    produce(&log, 3, 22, 0, &mut history).await;
    let mut c = Compactor::new(faulty.clone(), clock::system(), cfg);
    let mut folded = 0;
    for _ in 0..100 {
        let r = c
            .run_once()
            .await
            .expect("a pass despite the unreadable pointer");
        if r.leader {
            assert!(r.entries_folded > 0 && r.checkpoints > 0, "{r:?}");
            folded = r.entries_folded;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(folded > 0, "the fresh compactor never led");
    compact_fully(&mut c).await;
    // Readers on the faulty store open the shard from the listing: everything reads back.
    verify(faulty, history).await;
    let after = sluice_core::shard::pointed_checkpoint(&*store, shard)
        .await
        .expect("the pointer, rewritten")
        .seq;
    assert!(after > before, "pointer {before} -> {after}");
}
