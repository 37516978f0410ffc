//! Issue #10 point 3, idle costs nothing: with no traffic a compactor makes no PUT or DELETE
//! and one LIST per shard per pass (an idle minute on simulated time, retention pass included),
//! and a gateway makes no request at all once it stopped watching its committer leases — only
//! while readers wait does it poll, one GET per shard per poll interval however many wait; a
//! transaction resolver that had work gives its lease up and goes quiet once none is open.

use bytes::Bytes;
use serde_json::json;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock::ManualClock;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig, ProduceRequest};
use sluice_core::store::{self, Counts, DynStore, Instrumented};
use sluice_gateway::{CommitterConfig, GatewayConfig};
use sluice_tests::compact_fully;
use sluice_tests::http::Gateway;
use std::time::{Duration, Instant};

fn diff(a: Counts, b: Counts) -> Counts {
    Counts {
        put: b.put - a.put,
        get: b.get - a.get,
        list: b.list - a.list,
        delete: b.delete - a.delete,
        put_bytes: b.put_bytes - a.put_bytes,
        get_bytes: b.get_bytes - a.get_bytes,
    }
}

#[tokio::test]
async fn an_idle_compactor_lists_once_per_shard_per_pass_and_writes_nothing() {
    let bucket: DynStore = store::open("memory://", &Default::default()).unwrap();
    let clock = ManualClock::new(1_000_000_000);
    let log = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    let topics = [
        log.topics().create("a", 3, None, 0).await.unwrap(),
        log.topics()
            .create("b", 2, Some(3_600_000), 1)
            .await
            .unwrap(),
        log.topics().create("c", 1, Some(60_000), 2).await.unwrap(),
    ];
    for t in &topics {
        for p in 0..t.partitions {
            let acks = log
                .flush(vec![ProduceRequest {
                    topic: t.clone(),
                    records: vec![(Some(p), Record::new(None, Bytes::from("x")))],
                    dedup_key: None,
                    producer: None,
                }])
                .await;
            acks[0].as_ref().unwrap();
        }
    }
    let counted = Instrumented::new(bucket.clone(), 0);
    let mut c = Compactor::new(counted.clone(), clock.clone(), CompactorConfig::default());
    compact_fully(&mut c).await;
    let shards = 3u64;
    // An idle minute: a pass a second (the default interval), one retention pass in it. Topic
    // `c`'s records are still inside its one-minute retention at the start, so retention has
    // nothing to delete until its minute is over.
    let start = counted.counts();
    let mut retention_passes = 0;
    for second in 0..60 {
        clock.advance(1_000);
        let before = counted.counts();
        let r = c.run_once().await.unwrap();
        let spent = diff(before, counted.counts());
        assert_eq!(r.entries_folded, 0);
        assert_eq!(
            (spent.put, spent.delete),
            (0, 0),
            "second {second}: {spent:?}"
        );
        if spent.list > shards {
            // The retention pass: it lists the shards and the topics (a LIST and a GET per
            // topic) and the Parquet staging folder, and finds nothing expired in the
            // directories it keeps.
            retention_passes += 1;
            assert!(spent.list <= shards + 1 + 1 + 3 + 1, "{spent:?}");
            assert!(spent.get <= 3, "{spent:?}");
        } else {
            assert_eq!(spent.list, shards, "second {second}: one LIST per shard");
            assert_eq!(spent.get, 0, "second {second}: {spent:?}");
        }
    }
    assert_eq!(retention_passes, 1);
    let minute = diff(start, counted.counts());
    println!("idle compactor, one simulated minute, {shards} shards, 3 topics: {minute:?}");
    // After the minute, `c`'s record expires: retention drops it (and only then writes). It
    // is in a shared run with the others' records: its slice leaves the checkpoint (an entry
    // with no appends numbers the new checkpoint of the idle shard); the run stays.
    clock.advance(60_000);
    let r = c.run_once().await.unwrap();
    assert_eq!((r.retention_deleted, r.slices_expired), (0, 1), "{r:?}");
    assert_eq!(r.runs_deleted, 0, "{r:?}");
    let fresh = Log::new(bucket.clone(), clock.clone(), LogConfig::default());
    let expired = fresh.read(&topics[2], 0, 0, 10, 1 << 20).await;
    assert!(
        matches!(expired, Err(sluice_core::Error::OffsetOutOfRange { .. })),
        "{expired:?}"
    );
    let b = &topics[1];
    let read = log.read(b, 0, 0, 10, 1 << 20).await.unwrap();
    assert_eq!(read.records.len(), 1, "inside retention: kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gateway_makes_no_requests_and_polls_only_for_waiting_readers() {
    let bucket: DynStore = store::open("memory://", &Default::default()).unwrap();
    let counted = Instrumented::new(bucket.clone(), 0);
    let gw = Gateway::start_with(counted.clone(), |url| GatewayConfig {
        committer: Some(CommitterConfig {
            lease_duration: Duration::from_millis(200),
            idle_release: Duration::from_millis(500),
            ..CommitterConfig::new(url.to_string())
        }),
        // The transaction resolver runs with its defaults: idle, it holds no lease and looks
        // for open transactions once a minute.
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/topics", gw.url))
        .json(&json!({"name": "t", "partitions": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    for p in 0..2 {
        let r = http
            .post(format!("{}/v1/topics/t/records", gw.url))
            .json(&json!({"records": [{"value": "v", "partition": p}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // The committer lease is renewed while commits come, then released: wait (bounded) until
    // a whole second passes without a request.
    let mut quiet = None;
    for _ in 0..30 {
        let before = counted.counts();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let spent = diff(before, counted.counts());
        if spent.total() == 0 {
            quiet = Some(spent);
            break;
        }
    }
    assert!(
        quiet.is_some(),
        "the idle gateway never stopped making requests"
    );
    // Idle for two seconds more: nothing at all.
    let before = counted.counts();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(diff(before, counted.counts()).total(), 0, "idle gateway");

    // Eight long-polls wait on both partitions of the one shard: one GET per poll interval
    // (100 ms) for all of them, and no PUT.
    let before = counted.counts();
    let started = Instant::now();
    let waits: Vec<_> = (0..8)
        .map(|i| {
            let url = format!(
                "{}/v1/topics/t/partitions/{}/records?offset=1&wait_ms=1500",
                gw.url,
                i % 2
            );
            let http = http.clone();
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for w in waits {
        assert_eq!(w.await.unwrap(), 200);
    }
    let elapsed = started.elapsed();
    let spent = diff(before, counted.counts());
    // Each read request syncs the shard when it starts and when its wait ends (a read sees
    // everything acked before it); in between, the waiters share one GET per poll interval.
    let polls = elapsed.as_millis() as u64 / 100 + 1;
    let bound = polls + 2 * 8 + 1;
    println!("8 waiting read requests for {elapsed:?}: {spent:?} (bound {bound} GETs)");
    assert_eq!(spent.put, 0, "{spent:?}");
    assert!(spent.get <= bound, "{spent:?} > {bound} GETs");
    assert!(spent.list <= 2, "{spent:?}");
}

/// The waiting itself: however many readers wait on a shard, one GET per poll interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_readers_share_one_get_per_shard_per_poll_interval() {
    let bucket: DynStore = store::open("memory://", &Default::default()).unwrap();
    let counted = Instrumented::new(bucket.clone(), 0);
    let writer = Log::new(bucket, sluice_core::clock::system(), LogConfig::default());
    let t = writer.topics().create("t", 4, None, 0).await.unwrap();
    let reader = Log::new(
        counted.clone(),
        sluice_core::clock::system(),
        LogConfig::default(),
    );
    // Open the shard first.
    reader.partition_info(&t, 0).await.unwrap();
    let before = counted.counts();
    let started = Instant::now();
    let waits: Vec<_> = (0..16)
        .map(|i| {
            let reader = reader.clone();
            let t = t.clone();
            tokio::spawn(async move {
                reader
                    .wait_for(&t, i % 4, 0, Duration::from_millis(1500))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for w in waits {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let spent = diff(before, counted.counts());
    let bound = elapsed.as_millis() as u64 / 100 + 1;
    println!("16 waiters for {elapsed:?}: {spent:?} (bound {bound} GETs)");
    assert_eq!(
        (spent.put, spent.list, spent.delete),
        (0, 0, 0),
        "{spent:?}"
    );
    assert!(spent.get <= bound, "{spent:?} > {bound}");
    // With no waiter: nothing.
    let before = counted.counts();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(diff(before, counted.counts()).total(), 0);
}

/// A transaction makes the resolver active (lease, a pass per tick); once no transaction is
/// open it gives the lease up and the gateway is back at no request at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transaction_resolver_goes_quiet_when_no_transaction_is_open() {
    let bucket: DynStore = store::open("memory://", &Default::default()).unwrap();
    let counted = Instrumented::new(bucket.clone(), 0);
    let gw = Gateway::start_with(counted.clone(), |_| {
        let mut cfg = GatewayConfig::default();
        cfg.txn.tick = Duration::from_millis(20);
        cfg.txn.lease_duration = Duration::from_millis(300);
        cfg
    })
    .await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/topics", gw.url))
        .json(&json!({"name": "t", "partitions": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let begun: serde_json::Value = http
        .post(format!("{}/v1/transactions", gw.url))
        .json(&json!({"timeout_ms": 60000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = begun["transaction_id"]
        .as_str()
        .expect("transaction_id")
        .to_string();
    // While it is open the resolver works: it takes the lease (a PUT under `leases/`).
    let deadline = Instant::now() + Duration::from_secs(10);
    while store::list_names(&*bucket, &"leases/txn-resolver".into(), None)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the resolver never took its lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = http
        .post(format!("{}/v1/transactions/{id}/commit", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Committed and finished: the next pass finds no marker, releases, goes idle.
    let mut quiet = false;
    for _ in 0..30 {
        let before = counted.counts();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if diff(before, counted.counts()).total() == 0 {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "the gateway never went quiet after its transaction");
    let before = counted.counts();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(diff(before, counted.counts()).total(), 0, "idle resolver");
}
