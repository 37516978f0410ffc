//! Shard committers: gateways on one bucket elect one committer per journal shard and hand it
//! their segment references; it commits them in shared journal entries. The history checker
//! asserts I1–I5 over everything acked through every gateway, and the journal shows that one
//! writer committed (nearly) everything, which direct commits by three racing gateways would
//! not (each would write about a third of the entries).

use bytes::Bytes;
use serde_json::{json, Value};
use sluice_core::clock;
use sluice_core::format::journal::JournalEntry;
use sluice_core::keys;
use sluice_core::log::{Log, LogConfig};
use sluice_core::store::{self, DynStore, FaultConfig, Instrumented};
use sluice_gateway::{CommitterConfig, GatewayConfig};
use sluice_tests::checker::{check, Acked, History};
use sluice_tests::http::{metric, metrics_text, Gateway};
use std::collections::HashMap;
use std::time::Duration;

const PARTITIONS: u32 = 4;
const WRITERS: u32 = 6;
const REQUESTS: u64 = 30;

/// A separate client of the shared bucket, with a little PUT latency so rounds overlap.
fn client_of(bucket: &DynStore, seed: u64) -> DynStore {
    let s = Instrumented::new(bucket.clone(), seed);
    s.set_faults(FaultConfig {
        latency: Some((Duration::from_millis(2), Duration::from_millis(12))),
        ..Default::default()
    });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateways_hand_their_commits_to_one_elected_committer() {
    let bucket: DynStore = store::open("memory://", &Default::default()).unwrap();
    let mut gateways = Vec::new();
    for g in 0..3 {
        let gw = Gateway::start_with(client_of(&bucket, g + 1), |url| GatewayConfig {
            committer: Some(CommitterConfig {
                lease_duration: Duration::from_millis(900),
                ..CommitterConfig::new(url.to_string())
            }),
            ..Default::default()
        })
        .await;
        gateways.push(gw);
    }
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/topics", gateways[0].url))
        .json(&json!({"name": "hot", "partitions": PARTITIONS}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // Writers spread over the gateways, each sending one request at a time.
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let url = gateways[w as usize % gateways.len()].url.clone();
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..REQUESTS {
                let values: Vec<String> = (0..3).map(|k| format!("w{w}-{n}-{k}")).collect();
                let body = json!({"records": values.iter().map(|v| json!({"value": v, "partition": (w + k_of(v)) % PARTITIONS})).collect::<Vec<_>>()});
                let r = http
                    .post(format!("{url}/v1/topics/hot/records"))
                    .header("Idempotency-Key", format!("w{w}-{n}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
                let v: Value = r.json().await.unwrap();
                for (i, o) in v["offsets"].as_array().unwrap().iter().enumerate() {
                    acked.push(Acked {
                        writer: w,
                        send_seq: n * 3 + i as u64,
                        topic: "hot".into(),
                        partition: o["partition"].as_u64().unwrap() as u32,
                        offset: o["offset"].as_u64().unwrap(),
                        value: values[i].clone().into_bytes(),
                    });
                }
            }
            acked
        }));
    }
    let mut h = History::default();
    for t in tasks {
        h.acked.extend(t.await.unwrap());
    }

    // Read everything back through a fresh log.
    let reader = Log::new(bucket.clone(), clock::system(), LogConfig::default());
    let topic = reader.topics().get("hot").await.unwrap();
    for p in 0..PARTITIONS {
        let batch = reader.read(&topic, p, 0, 100_000, 64 << 20).await.unwrap();
        h.read.insert(
            ("hot".into(), p),
            batch
                .records
                .into_iter()
                .map(|r| (r.offset, r.record.value.to_vec()))
                .collect(),
        );
    }
    let violations = check(&h);
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(h.acked.len() as u64, WRITERS as u64 * REQUESTS * 3);

    // Who wrote the journal entries.
    let dir = keys::journal_dir(topic.shard);
    let names = store::list_names(&*bucket, &dir, None).await.unwrap();
    let mut by_writer: HashMap<[u8; 16], usize> = HashMap::new();
    let mut multi_segment = 0;
    for n in &names {
        let seq = keys::parse_seq(n).unwrap();
        let bytes: Bytes = store::get_opt(&*bucket, &keys::journal_entry(topic.shard, seq))
            .await
            .unwrap()
            .unwrap();
        let entry = JournalEntry::decode(&bytes).unwrap();
        *by_writer.entry(entry.writer).or_default() += 1;
        let mut segments: Vec<_> = entry.batches().map(|(_, b)| b.segment).collect();
        segments.sort_by_key(|s| s.to_string());
        segments.dedup();
        multi_segment += (segments.len() > 1) as usize;
    }
    let top = by_writer.values().copied().max().unwrap_or(0);
    println!(
        "{} entries for {} requests; by writer {:?}; {multi_segment} entries hold several segments",
        names.len(),
        WRITERS as u64 * REQUESTS,
        by_writer.values().collect::<Vec<_>>()
    );
    assert!(
        top * 10 >= names.len() * 8,
        "one committer should write nearly every entry: {by_writer:?}"
    );
    // Whether one entry merged several gateways' flushes depends on their arrival times: a
    // throughput property, measured by `sluice-bench hot`, not an invariant to assert here (it
    // failed under CI load with every record acked and checked).
    if multi_segment == 0 {
        println!("note: no entry merged several gateways' flushes in this run");
    }
    // Each gateway saw another: the committer those that handed it commits, a follower the
    // committer it handed them to (the health page's "gateways seen").
    for gw in &gateways {
        let seen = metric::<u64>(&metrics_text(&gw.url).await, "sluice_gateways_seen");
        assert!((2..=3).contains(&seen), "{} saw {seen} gateways", gw.url);
    }
    // A hand-over whose order header does not parse is refused by the committer with a 400
    // (a non-committer answers 421 first); nothing is committed.
    let mut refused = 0;
    for gw in &gateways {
        let r = http
            .post(format!(
                "{}/internal/v1/commit?shard={}",
                gw.url, topic.shard
            ))
            .header("x-sluice-hand-over", "not/a/number")
            .body("ignored")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(status == 400 || status == 421, "{status}");
        if status == 400 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["code"], "invalid_request", "{v}");
            refused += 1;
        }
    }
    assert_eq!(refused, 1, "exactly one gateway is the committer");
    let after = store::list_names(&*bucket, &dir, None).await.unwrap();
    assert_eq!(after.len(), names.len());
    for gw in gateways {
        gw.shutdown().await.unwrap();
    }
}

/// The record's index within its request (the last digit of its value).
fn k_of(v: &str) -> u32 {
    v.rsplit('-')
        .next()
        .and_then(|k| k.parse().ok())
        .unwrap_or(0)
}
