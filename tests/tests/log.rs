//! The commit protocol under concurrency, on every backend: independent writers (separate store
//! clients on one bucket) commit thousands of batches while a compactor folds behind them; the
//! history checker then asserts I1–I5 over everything read back.

use bytes::Bytes;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig, ProduceAck, ProduceRequest};
use sluice_tests::checker::{check, Acked, History};
use sluice_tests::{backends, read_back, s3_backend, Backend, Rng};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOPICS: [(&str, u32, u32); 3] = [("orders", 4, 0), ("events", 3, 0), ("audit", 2, 1)];

/// Writers re-confirm their head from the newest checkpoint after 1 s without a sync.
fn writer_config() -> LogConfig {
    let mut cfg = LogConfig::default();
    cfg.shard.max_head_age = Duration::from_secs(1);
    cfg
}

async fn create_topics(backend: &Backend) {
    let admin = Log::new(backend.client(), clock::system(), LogConfig::default());
    for (name, partitions, shard) in TOPICS {
        admin
            .topics()
            .create(name, partitions, None, shard)
            .await
            .expect("create topic");
    }
}

/// A compactor that folds and truncates busily behind the writers.
fn compactor_config() -> CompactorConfig {
    CompactorConfig {
        interval: Duration::from_millis(20),
        truncate_keep_entries: 50,
        // Respect the protocol's margin: entries are deleted only when much older than the
        // writers' max head age (1 s here) plus the longest PUT (SeaweedFS can take seconds
        // to answer a lost race).
        truncate_min_age_ms: 10_000,
        ..Default::default()
    }
}

struct Shared {
    history: Mutex<History>,
    /// Idempotent requests already acked, for cross-writer retries: (request, first answer).
    sent: Mutex<Vec<(ProduceRequest, ProduceAck)>>,
}

async fn writer(backend: Backend, w: u32, flushes: usize, shared: Arc<Shared>) {
    let log = Log::new(backend.client(), clock::system(), writer_config());
    let mut rng = Rng::new(0xC0FFEE + w as u64);
    let mut send_seq = 0u64;
    for f in 0..flushes {
        let mut requests = Vec::new();
        let mut retry_of = None;
        if f % 7 == 3 {
            // Resend a request some writer (maybe another one) already got acked.
            let sent = shared.sent.lock().unwrap();
            if !sent.is_empty() {
                let i = rng.below(sent.len() as u64) as usize;
                retry_of = Some(sent[i].1.clone());
                requests.push(sent[i].0.clone());
            }
        }
        let fresh_from = requests.len();
        for r in 0..1 + rng.below(3) {
            let (name, _, _) = TOPICS[rng.below(TOPICS.len() as u64) as usize];
            let topic = log.topics().get(name).await.expect("topic");
            let records = (0..1 + rng.below(5))
                .map(|_| {
                    let value = format!("w{w}-{send_seq}");
                    send_seq += 1;
                    let route = rng.below(3);
                    let key = format!("k{}", rng.below(20));
                    let partition = (route == 0).then(|| rng.below(topic.partitions as u64) as u32);
                    (
                        partition,
                        Record::new((route == 1).then_some(key.as_bytes()), Bytes::from(value)),
                    )
                })
                .collect();
            let dedup_key = (rng.below(2) == 0).then(|| Bytes::from(format!("w{w}-f{f}-r{r}")));
            requests.push(ProduceRequest {
                topic,
                records,
                dedup_key,
                producer: None,
            });
        }
        let results = log.flush(requests.clone()).await;
        for (i, (req, res)) in requests.iter().zip(results).enumerate() {
            let ack = res.unwrap_or_else(|e| panic!("writer {w} flush {f}: {e}"));
            if i < fresh_from {
                let first = retry_of.clone().expect("retry");
                let mut h = shared.history.lock().unwrap();
                if ack.offsets != first.offsets || !ack.duplicate {
                    h.retry_mismatches
                        .push(format!("{:?} vs first {:?}", ack, first));
                }
                continue;
            }
            let mut h = shared.history.lock().unwrap();
            for ((_, record), (partition, offset)) in req.records.iter().zip(&ack.offsets) {
                let value = record.value.to_vec();
                let seq: u64 = String::from_utf8_lossy(&value)
                    .rsplit('-')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                h.acked.push(Acked {
                    writer: w,
                    send_seq: seq,
                    topic: req.topic.name.clone(),
                    partition: *partition,
                    offset: *offset,
                    value,
                });
            }
            if req.dedup_key.is_some() {
                shared.sent.lock().unwrap().push((req.clone(), ack));
            }
        }
    }
}

async fn concurrent_writers(backend: Backend, writers: u32, flushes: usize) {
    create_topics(&backend).await;
    let compactor = Compactor::new(backend.client(), clock::system(), compactor_config());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let compacting = tokio::spawn(compactor.run(async move {
        let _ = stop_rx.await;
    }));
    let shared = Arc::new(Shared {
        history: Mutex::new(History::default()),
        sent: Mutex::new(Vec::new()),
    });
    let tasks: Vec<_> = (0..writers)
        .map(|w| tokio::spawn(writer(backend.clone(), w, flushes, shared.clone())))
        .collect();
    for t in tasks {
        t.await.expect("writer panicked");
    }
    let _ = stop_tx.send(());
    compacting.await.expect("compactor panicked");

    let reader = Log::new(backend.client(), clock::system(), LogConfig::default());
    let mut history = std::mem::take(&mut *shared.history.lock().unwrap());
    let names: Vec<&str> = TOPICS.iter().map(|t| t.0).collect();
    read_back(&reader, &names, &mut history).await;
    let violations = check(&history);
    let batches: usize = history.acked.len();
    println!(
        "{}: {writers} writers, {} acked records, {} read back, {} retries checked, violations: {}",
        backend.name(),
        batches,
        history.read.values().map(Vec::len).sum::<usize>(),
        shared.sent.lock().unwrap().len(),
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "{} violations, first: {:#?}",
        violations.len(),
        &violations[..violations.len().min(10)]
    );
    assert!(
        history.acked.len() > 1000,
        "the workload must be large enough to mean something"
    );
    let total_read: usize = history.read.values().map(Vec::len).sum();
    assert_eq!(
        total_read,
        history.acked.len(),
        "every record read back exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_memory_and_local_disk() {
    let (backends, _dir) = backends("unused");
    for b in backends
        .into_iter()
        .filter(|b| !matches!(b, Backend::S3 { .. }))
    {
        concurrent_writers(b, 4, 300).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_s3() {
    if let Some(b) = s3_backend("concurrent-writers") {
        concurrent_writers(b, 4, 200).await;
    }
}

/// Issue #5 point 1: every store call of writers and compactor fails 5% of the time (errors,
/// time-outs, 503 SlowDown, conflict storms, and PUTs that succeed but whose answer is lost).
/// Idempotent producers retry what failed; nothing acked is lost or stored twice, and every
/// failure reaches the producer as a retryable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_percent_store_faults_lose_and_duplicate_nothing() {
    use sluice_core::store::{FaultConfig, Instrumented};
    let faults = |seed: u64, inner: sluice_core::store::DynStore| {
        let s = Instrumented::new(inner, seed);
        s.set_faults(FaultConfig {
            error_rate: 0.015,
            lost_reply_rate: 0.01,
            slow_down_rate: 0.01,
            conflict_rate: 0.01,
            timeout: Some((0.005, Duration::from_millis(20))),
            ..Default::default()
        });
        s
    };
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Local(dir.path().join("bucket"));
    create_topics(&backend).await;
    let compactor = Compactor::new(
        faults(99, backend.client()),
        clock::system(),
        CompactorConfig {
            lease_duration: Duration::from_millis(200),
            ..compactor_config()
        },
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let compacting = tokio::spawn(compactor.run(async move {
        let _ = stop_rx.await;
    }));
    let injected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let store = faults(w as u64, backend.client());
            let injected = injected.clone();
            tokio::spawn(async move {
                let log = Log::new(store.clone(), clock::system(), writer_config());
                let mut rng = Rng::new(w as u64 + 100);
                let mut acked = Vec::new();
                let mut send_seq = 0u64;
                for f in 0..150 {
                    let (name, _, _) = TOPICS[rng.below(3) as usize];
                    let topic = loop {
                        match log.topics().get(name).await {
                            Ok(t) => break t,
                            Err(e) => assert!(e.is_retryable(), "{e}"),
                        }
                    };
                    let values: Vec<String> = (0..1 + rng.below(4))
                        .map(|i| format!("w{w}-{}", send_seq + i))
                        .collect();
                    send_seq += values.len() as u64;
                    let req = ProduceRequest {
                        topic,
                        records: values
                            .iter()
                            .map(|v| {
                                (
                                    None,
                                    Record::new(Some(v.as_bytes()), Bytes::from(v.clone())),
                                )
                            })
                            .collect(),
                        dedup_key: Some(Bytes::from(format!("w{w}-f{f}"))),
                        producer: None,
                    };
                    let ack = loop {
                        match log.flush(vec![req.clone()]).await.remove(0) {
                            Ok(ack) => break ack,
                            Err(e) => {
                                assert!(
                                    e.is_retryable(),
                                    "a store fault surfaced as a non-retryable error: {e}"
                                );
                                injected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    };
                    for (v, (p, o)) in values.iter().zip(ack.offsets) {
                        let seq: u64 = v.rsplit('-').next().unwrap().parse().unwrap();
                        acked.push(Acked {
                            writer: w,
                            send_seq: seq,
                            topic: name.into(),
                            partition: p,
                            offset: o,
                            value: v.clone().into_bytes(),
                        });
                    }
                }
                (acked, store.counts())
            })
        })
        .collect();
    let mut history = History::default();
    let mut calls = 0;
    for w in writers {
        let (acked, counts) = w.await.expect("writer");
        history.acked.extend(acked);
        calls += counts.total();
    }
    let _ = stop_tx.send(());
    compacting.await.unwrap();
    let reader = Log::new(backend.client(), clock::system(), LogConfig::default());
    let names: Vec<&str> = TOPICS.iter().map(|t| t.0).collect();
    read_back(&reader, &names, &mut history).await;
    let violations = check(&history);
    let failures = injected.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "faults: {calls} store calls by writers, {failures} produce attempts failed (all retryable), {} acked records, violations: {}",
        history.acked.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(
        failures > 0,
        "the fault rate must actually hit produce calls"
    );
    assert_eq!(
        history.read.values().map(Vec::len).sum::<usize>(),
        history.acked.len()
    );
}
