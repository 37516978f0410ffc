//! Parquet tables: a compactor crashing at every store call and a successor never leave a row
//! missing or twice in what a glob over the table sees (also while they work), the manifest's
//! offset ranges are exactly the table's rows, retention drops only files whose rows are all
//! past retention, and turning the table on later writes the records already there.

use bytes::Bytes;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock::{self, Clock, ManualClock};
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig, ProduceRequest};
use sluice_core::store::{self, DynStore, FaultConfig, Instrumented};
use sluice_core::topic::{TopicPatch, TopicSettings};
use sluice_tests::checker::{check, History};
use sluice_tests::tables::{manifest, read_glob, Row};
use sluice_tests::{compact_fully, Rng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const TOPICS: [&str; 2] = ["a", "b"];

fn memory() -> DynStore {
    store::open("memory://", &Default::default()).unwrap()
}

async fn setup(store: DynStore, clock: Arc<dyn Clock>) -> Arc<Log> {
    let log = Log::new(store, clock, LogConfig::default());
    let on = || TopicSettings {
        parquet: true,
        ..Default::default()
    };
    log.topics().create_with("a", 3, on(), 0).await.unwrap();
    log.topics().create_with("b", 2, on(), 1).await.unwrap();
    log
}

/// Produce `flushes` flushes over both topics (keys, headers, binary values); record the acks.
async fn produce(log: &Log, flushes: usize, seed: u64, history: &mut History) {
    let mut rng = Rng::new(seed);
    for f in 0..flushes {
        let mut reqs = Vec::new();
        for name in TOPICS {
            let topic = log.topics().get(name).await.unwrap();
            let records = (0..1 + rng.below(4))
                .map(|i| {
                    let key = (i % 2 == 0).then(|| format!("k{}", rng.below(10)));
                    let mut value = format!("{seed}-{f}-{name}-{i}").into_bytes();
                    value.push(0xff); // not UTF-8
                    let mut r = Record::new(key.as_deref().map(str::as_bytes), value);
                    r.headers = vec![("h".into(), Bytes::from(format!("{f}")))];
                    (None, r)
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
            history.record_ack(0, req, &ack.expect("produce"));
        }
    }
}

/// What a glob over every table sees: no (topic, partition, offset) twice, every value the one
/// acked there. Returns the rows by key.
fn check_glob_rows(
    rows: &[(String, Row)],
    acked: &HashMap<(String, u32, u64), Vec<u8>>,
) -> BTreeMap<(String, u32, u64), Row> {
    let mut seen = BTreeMap::new();
    for (topic, row) in rows {
        let k = (topic.clone(), row.partition, row.offset);
        assert_eq!(
            acked.get(&k),
            Some(&row.value),
            "{k:?}: a table row that was never acked there"
        );
        assert!(
            seen.insert(k.clone(), row.clone()).is_none(),
            "{k:?} seen twice by the glob"
        );
    }
    seen
}

async fn glob_all(store: &DynStore) -> Vec<(String, Row)> {
    let mut out = Vec::new();
    for name in TOPICS {
        for (_, row) in read_glob(store, name).await {
            out.push((name.to_string(), row));
        }
    }
    out
}

/// After convergence: the glob holds every acked record exactly once (checked with the history
/// checker), and the newest manifest's files and offset ranges are exactly what the glob sees.
async fn verify_tables(store: &DynStore, log: &Log, history: &History) {
    let acked: HashMap<_, _> = history
        .acked
        .iter()
        .map(|a| ((a.topic.clone(), a.partition, a.offset), a.value.clone()))
        .collect();
    let rows = check_glob_rows(&glob_all(store).await, &acked);
    let mut from_table = History {
        acked: history.acked.clone(),
        ..Default::default()
    };
    for ((topic, p, o), row) in &rows {
        from_table
            .read
            .entry((topic.clone(), *p))
            .or_default()
            .push((*o, row.value.clone()));
    }
    let v = check(&from_table);
    assert!(v.is_empty(), "table violations: {v:#?}");
    assert_eq!(
        rows.len(),
        history.acked.len(),
        "every acked record is a row"
    );
    for name in TOPICS {
        let m = manifest(store, name).await.expect("a manifest");
        let topic = log.topics().get(name).await.unwrap();
        assert_eq!(m.topic_id, topic.id);
        let globbed: HashSet<String> = read_glob(store, name)
            .await
            .into_iter()
            .map(|(p, _)| {
                p.as_ref()
                    .trim_start_matches(&format!("tables/{name}/"))
                    .to_string()
            })
            .collect();
        let listed: HashSet<String> = m.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            globbed, listed,
            "{name}: the glob sees exactly the manifest's files"
        );
        for p in 0..topic.partitions {
            let info = log.partition_info(&topic, p).await.unwrap();
            assert_eq!(m.next_offset(p), info.next_offset, "{name}/{p} is complete");
            let mut in_ranges: Vec<u64> = m
                .files
                .iter()
                .flat_map(|f| f.partitions.iter())
                .filter(|r| r.partition == p)
                .flat_map(|r| r.start..r.end)
                .collect();
            in_ranges.sort();
            let in_rows: Vec<u64> = rows
                .keys()
                .filter(|k| k.0 == name && k.1 == p)
                .map(|k| k.2)
                .collect();
            assert_eq!(
                in_ranges, in_rows,
                "{name}/{p}: manifest ranges = table rows"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_store_call_never_duplicates_or_loses_rows() {
    let cfg = CompactorConfig {
        interval: Duration::from_millis(10),
        lease_duration: Duration::from_millis(50),
        truncate_keep_entries: 2,
        truncate_min_age_ms: 0,
        gc_grace_ms: 0,
        ..Default::default()
    };
    // How many store calls do the passes that write the tables make?
    let calls = {
        let store = memory();
        let log = setup(store.clone(), clock::system()).await;
        produce(&log, 6, 1, &mut History::default()).await;
        let counted = Instrumented::new(store, 0);
        let mut c = Compactor::new(counted.clone(), clock::system(), cfg.clone());
        let r = c.run_once().await.unwrap();
        assert!(
            r.table_files >= 2,
            "the first pass writes both tables: {r:?}"
        );
        counted.calls()
    };
    for crash_after in 0..calls + 2 {
        let store = memory();
        let log = setup(store.clone(), clock::system()).await;
        let mut history = History::default();
        produce(&log, 6, crash_after, &mut history).await;
        let acked: HashMap<_, _> = history
            .acked
            .iter()
            .map(|a| ((a.topic.clone(), a.partition, a.offset), a.value.clone()))
            .collect();
        let faulty = Instrumented::new(store.clone(), crash_after);
        faulty.set_faults(FaultConfig {
            crash_after_calls: Some(crash_after),
            ..Default::default()
        });
        // A glob reader racing the crashing compactor and its successor.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racing = {
            let (store, stop, acked) = (store.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut rounds = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds == 0 {
                    check_glob_rows(&glob_all(&store).await, &acked);
                    rounds += 1;
                    tokio::task::yield_now().await;
                }
                rounds
            })
        };
        let mut crashed = Compactor::new(faulty.clone(), clock::system(), cfg.clone());
        let _ = crashed.run_once().await; // dies at call `crash_after + 1`
        drop(crashed);
        tokio::time::sleep(Duration::from_millis(60)).await; // its lease expires
        let mut successor = Compactor::new(store.clone(), clock::system(), cfg.clone());
        compact_fully(&mut successor).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(racing.await.expect("racing glob reader") > 0);
        // Keep writing after recovery: the table continues from the manifest's offsets.
        let log2 = Log::new(store.clone(), clock::system(), LogConfig::default());
        produce(&log2, 3, 1000 + crash_after, &mut history).await;
        compact_fully(&mut successor).await;
        verify_tables(&store, &log2, &history).await;
        let _ = log;
    }
}

/// Retention drops a table file only once all its rows are past retention; a table turned on
/// later takes the records already in the log (inside retention); a re-created topic starts an
/// empty table.
#[tokio::test]
async fn retention_opt_in_later_and_recreated_topic() {
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
            ..Default::default()
        },
    );
    let mut produced: Vec<(u32, u64, i64, Vec<u8>)> = Vec::new();
    let mut expired_any = false;
    let mut ever_listed: HashSet<String> = HashSet::new();
    for step in 0..30 {
        if step == 8 {
            // Opt in with records already in the log (the oldest will be past retention).
            log.topics()
                .update(
                    "t",
                    TopicPatch {
                        parquet: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
        let topic = log.topics().get("t").await.unwrap();
        let value = format!("r{step}").into_bytes();
        let ack = log
            .flush(vec![ProduceRequest {
                topic,
                records: vec![(Some(step % 2), Record::new(None, value.clone()))],
                dedup_key: None,
                producer: None,
            }])
            .await
            .remove(0)
            .unwrap();
        produced.push((ack.offsets[0].0, ack.offsets[0].1, ack.append_ts, value));
        clock.advance(1_000);
        compact_fully(&mut c).await;
        if step < 8 {
            assert!(
                manifest(&store, "t").await.is_none(),
                "no table before opt-in"
            );
            continue;
        }
        let now = clock.now_ms();
        let rows: HashMap<(u32, u64), Row> = read_glob(&store, "t")
            .await
            .into_iter()
            .map(|(_, r)| ((r.partition, r.offset), r))
            .collect();
        let m = manifest(&store, "t").await.unwrap();
        let now_listed: HashSet<String> = m.files.iter().map(|f| f.path.clone()).collect();
        expired_any |= ever_listed.iter().any(|p| !now_listed.contains(p));
        ever_listed.extend(now_listed);
        for (p, o, ts, value) in &produced {
            if *ts >= now - 10_000 {
                let row = rows.get(&(*p, *o)).unwrap_or_else(|| {
                    panic!("step {step}: {p}@{o} inside retention not in the table")
                });
                assert_eq!((&row.value, row.timestamp_ms), (value, *ts));
            }
        }
        for f in &m.files {
            assert!(
                f.max_ts >= now - 10_000,
                "a file whose rows are all past retention is kept"
            );
        }
    }
    assert!(expired_any, "retention never dropped a table file");

    // Delete and re-create: the new incarnation's table has only its own rows.
    log.topics().delete("t").await.unwrap();
    let t2 = log
        .topics()
        .create_with(
            "t",
            1,
            TopicSettings {
                parquet: true,
                ..Default::default()
            },
            0,
        )
        .await
        .unwrap();
    assert_ne!(t2.id, topic.id);
    log.flush(vec![ProduceRequest {
        topic: t2.clone(),
        records: vec![(Some(0), Record::new(None, &b"new"[..]))],
        dedup_key: None,
        producer: None,
    }])
    .await
    .remove(0)
    .unwrap();
    compact_fully(&mut c).await;
    let rows = read_glob(&store, "t").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1.value, b"new");
    assert_eq!(manifest(&store, "t").await.unwrap().topic_id, t2.id);
}
