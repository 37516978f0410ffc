//! Overload: a gateway over a slow store, with a small `max_pending_bytes`, under more
//! concurrent producers than it can flush. It must answer 429 with `Retry-After` at once
//! instead of queueing without limit, never 5xx, lose no acked record, and keep its pending
//! bytes within the budget.

use serde_json::{json, Value};
use sluice_core::store::{self, FaultConfig, Instrumented, StoreOptions};
use sluice_gateway::GatewayConfig;
use sluice_tests::http::{metric, metrics_text, Gateway};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const BUDGET: usize = 256 << 10;
const REQUESTS: usize = 200;
const BODY_BYTES: usize = 8 << 10;
const PARTITIONS: u32 = 4;

/// The value of request `i`: unique, and padded so that the JSON body is `BODY_BYTES` long.
fn value(i: usize) -> String {
    let head = format!("record-{i:04}-");
    let overhead = body_of(i, "").to_string().len();
    format!("{head}{}", "x".repeat(BODY_BYTES - overhead - head.len()))
}

fn body_of(i: usize, value: &str) -> Value {
    json!({"records": [{"key": format!("k{i}"), "value": value}]})
}

struct Answer {
    i: usize,
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn produce(c: &reqwest::Client, url: &str, i: usize) -> Answer {
    let body = body_of(i, &value(i)).to_string();
    assert_eq!(body.len(), BODY_BYTES);
    let r = c
        .post(format!("{url}/v1/topics/load/records"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.json().await.unwrap_or(Value::Null);
    Answer {
        i,
        status,
        retry_after,
        body,
    }
}

/// Fire `which` all at once.
async fn burst(c: &reqwest::Client, url: &str, which: &[usize]) -> Vec<Answer> {
    let tasks: Vec<_> = which
        .iter()
        .map(|&i| {
            let (c, url) = (c.clone(), url.to_string());
            tokio::spawn(async move { produce(&c, &url, i).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_producers_than_the_store_can_take_get_429_not_unbounded_queues() {
    let inner = store::open("memory://", &StoreOptions::default()).unwrap();
    let slow = Instrumented::new(inner, 11);
    slow.set_faults(FaultConfig {
        latency: Some((Duration::from_millis(200), Duration::from_millis(300))),
        only_prefix: Some("segments/".into()),
        ..Default::default()
    });
    let cfg = GatewayConfig {
        max_pending_bytes: BUDGET,
        ..Default::default()
    };
    let gw = Gateway::start(slow.clone(), cfg).await;
    let url = gw.url.clone();
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{url}/v1/topics"))
        .json(&json!({"name": "load", "partitions": PARTITIONS}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // A request larger than the whole budget could never fit: 413, not 429.
    let big = json!({"records": [{"value": "y".repeat(BUDGET)}]});
    let r = c
        .post(format!("{url}/v1/topics/load/records"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    // 200 producers of 8 KiB at once: 1.6 MiB offered to a 256 KiB budget over a store whose
    // segment PUTs take 200-300 ms.
    let all: Vec<usize> = (0..REQUESTS).collect();
    let started = Instant::now();
    let first = burst(&c, &url, &all).await;
    let took = started.elapsed();
    let mut acked: BTreeMap<usize, (u32, u64)> = BTreeMap::new();
    let mut refused = Vec::new();
    for a in &first {
        match a.status {
            200 => {
                let o = &a.body["offsets"][0];
                acked.insert(
                    a.i,
                    (
                        o["partition"].as_u64().unwrap() as u32,
                        o["offset"].as_u64().unwrap(),
                    ),
                );
            }
            429 => {
                assert_eq!(
                    a.retry_after.as_deref(),
                    Some("1"),
                    "429 without Retry-After"
                );
                assert_eq!(a.body["code"], "overloaded", "{}", a.body);
                refused.push(a.i);
            }
            s => panic!("request {}: unexpected {s}: {}", a.i, a.body),
        }
    }
    assert!(!refused.is_empty(), "no request was refused in {took:?}");
    assert!(!acked.is_empty(), "every request was refused");
    eprintln!(
        "first burst: {} acked, {} refused with 429, in {took:?}",
        acked.len(),
        refused.len()
    );

    let metrics = metrics_text(&url).await;
    let peak = metric::<u64>(&metrics, "sluice_produce_pending_bytes_max");
    assert!(
        peak > 0 && peak <= BUDGET as u64,
        "peak pending bytes {peak}"
    );
    assert_eq!(
        metric::<u64>(&metrics, "sluice_produce_pending_bytes_limit"),
        BUDGET as u64
    );
    // Every answer was sent after its permit was given back.
    assert_eq!(metric::<u64>(&metrics, "sluice_produce_pending_bytes"), 0);
    assert_eq!(
        metric::<u64>(&metrics, "sluice_produce_overloaded_total"),
        refused.len() as u64
    );

    // Retrying the refused requests after Retry-After gets them in.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut rounds = 0;
    while !refused.is_empty() {
        assert!(Instant::now() < deadline, "{} still refused", refused.len());
        rounds += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let again = burst(&c, &url, &refused).await;
        refused.clear();
        for a in again {
            match a.status {
                200 => {
                    let o = &a.body["offsets"][0];
                    acked.insert(
                        a.i,
                        (
                            o["partition"].as_u64().unwrap() as u32,
                            o["offset"].as_u64().unwrap(),
                        ),
                    );
                }
                429 => {
                    assert!(a.retry_after.is_some());
                    refused.push(a.i);
                }
                s => panic!("retry of {}: unexpected {s}: {}", a.i, a.body),
            }
        }
    }
    assert_eq!(acked.len(), REQUESTS);
    eprintln!("all in after {rounds} retry rounds");

    let metrics = metrics_text(&url).await;
    let peak = metric::<u64>(&metrics, "sluice_produce_pending_bytes_max");
    assert!(peak <= BUDGET as u64, "peak pending bytes {peak}");
    assert_eq!(metric::<u64>(&metrics, "sluice_produce_pending_bytes"), 0);

    // Every acked record is readable where its ack said, and nothing else was written (a
    // refused request left no record behind).
    slow.set_faults(FaultConfig::default());
    let mut stored: BTreeMap<(u32, u64), String> = BTreeMap::new();
    for p in 0..PARTITIONS {
        let mut offset = 0u64;
        loop {
            let r = c
                .get(format!(
                    "{url}/v1/topics/load/partitions/{p}/records?offset={offset}&limit=1000"
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let v: Value = r.json().await.unwrap();
            let records = v["records"].as_array().unwrap();
            for rec in records {
                stored.insert(
                    (p, rec["offset"].as_u64().unwrap()),
                    rec["value"].as_str().unwrap().to_string(),
                );
            }
            let next = v["next_offset"].as_u64().unwrap();
            if records.is_empty() || next >= v["high_watermark"].as_u64().unwrap() {
                break;
            }
            offset = next;
        }
    }
    assert_eq!(stored.len(), REQUESTS, "records in the log");
    for (i, at) in &acked {
        assert_eq!(
            stored.get(at).map(String::as_str),
            Some(value(*i).as_str()),
            "request {i} acked at {at:?}"
        );
    }
}

/// Waiting readers are bounded too: past `max_waiting_readers` a long-poll answers at once
/// (a short poll) and a new event stream gets 429 with `Retry-After`; a closed stream frees its
/// place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_readers_are_bounded() {
    let cfg = GatewayConfig {
        max_waiting_readers: 2,
        ..Default::default()
    };
    let gw = Gateway::start(
        store::open("memory://", &StoreOptions::default()).unwrap(),
        cfg,
    )
    .await;
    let url = gw.url.clone();
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{url}/v1/topics"))
        .json(&json!({"name": "tail", "partitions": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let records = format!("{url}/v1/topics/tail/partitions/0/records");
    let stream = || c.get(&records).header("accept", "text/event-stream").send();
    let first = stream().await.unwrap();
    let second = stream().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = stream().await.unwrap();
    assert_eq!(third.status().as_u16(), 429);
    assert_eq!(third.headers()["retry-after"], "1");
    let problem: Value = third.json().await.unwrap();
    assert_eq!(problem["code"], "overloaded");
    // A long-poll with no place to wait answers at once instead of queueing.
    let started = Instant::now();
    let r: Value = c
        .get(format!("{records}?offset=0&wait_ms=5000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["records"].as_array().unwrap().is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Closing a stream frees its place.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = stream().await.unwrap();
        if s.status().as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed stream never freed its place"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
}
