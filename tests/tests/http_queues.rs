//! Queue mode over HTTP, in process: real gateways on `127.0.0.1:0` over one store, driven with
//! an HTTP client — every endpoint, every rejection code, and receivers racing over several
//! gateways checked by `sluice_tests::checker::queue`.

use serde_json::{json, Value};
use sluice_core::store::{self, DynStore, StoreOptions};
use sluice_gateway::{AuthConfig, GatewayConfig};
use sluice_tests::checker::queue::{check_queue, DeadLetter, FinalRecord, LeaseObs, QueueHistory};
use sluice_tests::http::{metrics_text, Gateway};
use sluice_tests::now_ms;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn memory() -> DynStore {
    store::open("memory://", &StoreOptions::default()).unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut r = client().request(method, url);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn post(url: &str, path: &str, body: Value) -> (u16, Value) {
    call(reqwest::Method::POST, format!("{url}{path}"), Some(body)).await
}

async fn put(url: &str, path: &str, body: Value) -> (u16, Value) {
    call(reqwest::Method::PUT, format!("{url}{path}"), Some(body)).await
}

async fn get(url: &str, path: &str) -> (u16, Value) {
    call(reqwest::Method::GET, format!("{url}{path}"), None).await
}

async fn topic(url: &str, name: &str, partitions: u32) {
    let (s, v) = post(
        url,
        "/v1/topics",
        json!({"name": name, "partitions": partitions}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

/// Produce `n` records to partition `p` with values `{prefix}{i}` (and keys if given).
async fn produce(url: &str, t: &str, p: u32, values: &[(Option<&str>, String)]) {
    let records: Vec<Value> = values
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v, "partition": p}))
        .collect();
    let (s, v) = post(
        url,
        &format!("/v1/topics/{t}/records"),
        json!({"records": records}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

fn vals(prefix: &str, n: usize) -> Vec<(Option<&'static str>, String)> {
    (0..n).map(|i| (None, format!("{prefix}{i}"))).collect()
}

async fn receive(url: &str, q: &str, body: Value) -> Vec<Value> {
    let (s, v) = post(url, &format!("/v1/queues/{q}/receive"), body).await;
    assert_eq!(s, 200, "{v}");
    v["messages"].as_array().unwrap().clone()
}

fn receipts(m: &[Value]) -> Vec<String> {
    m.iter()
        .map(|m| m["receipt"].as_str().unwrap().to_string())
        .collect()
}

async fn settle(url: &str, q: &str, action: &str, body: Value) -> Value {
    let (s, v) = post(url, &format!("/v1/queues/{q}/{action}"), body).await;
    assert_eq!(s, 200, "{action}: {v}");
    v
}

async fn history(url: &str, q: &str, p: u32, o: u64) -> Value {
    let (s, v) = get(url, &format!("/v1/queues/{q}/records/{p}/{o}")).await;
    assert_eq!(s, 200, "{v}");
    v
}

fn events(h: &Value) -> Vec<String> {
    h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_admin_and_bad_input() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let url = &gw.url;
    topic(url, "orders", 2).await;
    let (s, v) = put(url, "/v1/queues/work", json!({"topic": "orders"})).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["dead_letter_topic"], "work.dlq");
    assert_eq!(
        (
            v["visibility_timeout_ms"].as_i64(),
            v["max_deliveries"].as_u64()
        ),
        (Some(30000), Some(5))
    );
    // The dead-letter topic was created with the source's partitions.
    let (s, dlq) = get(url, "/v1/topics/work.dlq").await;
    assert_eq!((s, dlq["partitions"].as_u64()), (200, Some(2)));
    let (s, v) = put(
        url,
        "/v1/queues/work",
        json!({"topic": "orders", "max_deliveries": 2, "ordering": "key"}),
    )
    .await;
    assert_eq!(
        (s, v["max_deliveries"].as_u64(), v["ordering"].as_str()),
        (200, Some(2), Some("key"))
    );
    let (s, v) = get(url, "/v1/queues/work").await;
    assert_eq!(s, 200);
    for f in [
        "ready",
        "in_flight",
        "delayed",
        "acked",
        "dead_lettered",
        "oldest_ready_age_ms",
    ] {
        assert_eq!(v[f], 0, "{f}: {v}");
    }
    let (s, v) = get(url, "/v1/queues").await;
    assert_eq!((s, v["queues"].as_array().unwrap().len()), (200, 1));

    let bad_puts = [
        json!({"topic": "orders", "visibility_timeout_ms": 43_200_001}),
        json!({"topic": "orders", "visibility_timeout_ms": 0}),
        json!({"topic": "orders", "max_deliveries": 0}),
        json!({"topic": "orders", "max_deliveries": 1001}),
        json!({"topic": "orders", "ordering": "fifo"}),
        json!({"topic": "orders", "start": "middle"}),
        json!({"topic": "orders", "dead_letter_topic": "orders"}),
        json!({"topic": "orders", "dead_letter_topic": "bad/name"}),
        json!({"topic": "orders", "surprise": 1}),
        json!({"topic": "other"}),
        json!(["orders"]),
    ];
    for b in bad_puts {
        let (s, v) = put(url, "/v1/queues/work", b.clone()).await;
        assert!(
            s == 400 || (s == 404 && v["code"] == "topic_not_found"),
            "{b}: {s} {v}"
        );
    }
    let (s, v) = put(url, "/v1/queues/work", json!({"topic": "other"})).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("topic_not_found")));
    topic(url, "other", 1).await;
    let (s, v) = put(url, "/v1/queues/work", json!({"topic": "other"})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("invalid_request")),
        "a queue keeps its topic"
    );
    let (s, _) = put(url, "/v1/queues/bad..name%2F", json!({"topic": "orders"})).await;
    assert_eq!(s, 400);

    let bad_receives = [
        json!({"max": 0}),
        json!({"max": 1001}),
        json!({"wait_ms": 30001}),
        json!({"visibility_timeout_ms": 43_200_001}),
        json!({"visibility_timeout_ms": 0}),
        json!({"max": "ten"}),
        json!({"nope": true}),
    ];
    for b in bad_receives {
        let (s, v) = post(url, "/v1/queues/work/receive", b.clone()).await;
        assert_eq!((s, v["code"].as_str().is_some()), (400, true), "{b}: {v}");
    }
    let many: Vec<String> = (0..1001).map(|i| format!("x-{i}")).collect();
    let (s, _) = post(url, "/v1/queues/work/ack", json!({"receipts": many})).await;
    assert_eq!(s, 400);
    let (s, _) = post(
        url,
        "/v1/queues/work/nack",
        json!({"receipts": [], "delay_ms": -1}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = post(
        url,
        "/v1/queues/work/nack",
        json!({"receipts": [], "reason": "x".repeat(1025)}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = post(url, "/v1/queues/work/extend", json!({"receipts": []})).await;
    assert_eq!(s, 400, "visibility_timeout_ms is required");
    let (s, _) = post(
        url,
        "/v1/queues/work/extend",
        json!({"receipts": [], "visibility_timeout_ms": 43_200_001}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = post(url, "/v1/queues/work/redrive", json!({"max": -1})).await;
    assert_eq!(s, 400);
    let (s, _) = get(url, "/v1/queues/work/records/x/0").await;
    assert_eq!(s, 400);
    let (s, v) = get(url, "/v1/queues/work/records/9/0").await;
    assert_eq!((s, v["code"].as_str()), (404, Some("partition_not_found")));
    let (s, v) = get(url, "/v1/queues/work/records/0/5").await;
    assert_eq!((s, v["code"].as_str()), (404, Some("record_not_found")));

    for (m, path) in [
        (reqwest::Method::GET, "/v1/queues/nope"),
        (reqwest::Method::DELETE, "/v1/queues/nope"),
        (reqwest::Method::POST, "/v1/queues/nope/receive"),
        (reqwest::Method::POST, "/v1/queues/nope/ack"),
        (reqwest::Method::GET, "/v1/queues/nope/records/0/0"),
        (reqwest::Method::POST, "/v1/queues/nope/redrive"),
    ] {
        let body = (m == reqwest::Method::POST).then(|| {
            if path.ends_with("ack") {
                json!({"receipts": []})
            } else {
                json!({})
            }
        });
        let (s, v) = call(m.clone(), format!("{url}{path}"), body).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (404, Some("queue_not_found")),
            "{m} {path}"
        );
    }

    let (s, _) = call(
        reqwest::Method::DELETE,
        format!("{url}/v1/queues/work"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = get(url, "/v1/queues/work").await;
    assert_eq!(s, 404);
    let (s, v) = get(url, "/v1/queues").await;
    assert_eq!((s, v["queues"].as_array().unwrap().len()), (200, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_ack_expire_nack_dead_letter_redrive() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let url = &gw.url;
    topic(url, "jobs", 1).await;
    produce(url, "jobs", 0, &vals("job-", 6)).await;
    let (s, _) = put(
        url,
        "/v1/queues/q",
        json!({"topic": "jobs", "max_deliveries": 2}),
    )
    .await;
    assert_eq!(s, 201);

    let a = receive(url, "q", json!({"max": 3})).await;
    assert_eq!(a.len(), 3);
    assert_eq!(a[0]["value"], "job-0");
    assert_eq!(
        (a[0]["topic"].as_str(), a[0]["partition"].as_u64()),
        (Some("jobs"), Some(0))
    );
    assert!(a.iter().all(|m| m["delivery_count"] == 1));
    let b = receive(url, "q", json!({"max": 10, "visibility_timeout_ms": 300})).await;
    let offsets: Vec<u64> = b.iter().map(|m| m["offset"].as_u64().unwrap()).collect();
    assert_eq!(
        offsets,
        vec![3, 4, 5],
        "never the records leased to the first receive"
    );

    let (_, stats) = get(url, "/v1/queues/q").await;
    assert_eq!(
        (stats["in_flight"].as_u64(), stats["ready"].as_u64()),
        (Some(6), Some(0))
    );

    // Ack: accepted once, a repeat is accepted again, garbage is receipt_invalid.
    let r = receipts(&a);
    let v = settle(
        url,
        "q",
        "ack",
        json!({"receipts": [r[0], r[1], "nonsense", "AAAAAAAA-0-0-99"]}),
    )
    .await;
    assert_eq!(v["acked"], 2);
    let codes: Vec<&str> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["receipt_invalid", "receipt_invalid"]);
    let v = settle(url, "q", "ack", json!({"receipts": [r[0]]})).await;
    assert_eq!(v["acked"], 1);

    // Extend one of the short leases, let the others expire: their receipts are refused.
    let rb = receipts(&b);
    let v = settle(
        url,
        "q",
        "extend",
        json!({"receipts": [rb[0]], "visibility_timeout_ms": 60000}),
    )
    .await;
    assert_eq!(v["acked"], 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let v = settle(url, "q", "ack", json!({"receipts": [rb[1]]})).await;
    assert_eq!(
        (v["acked"].as_u64(), v["rejected"][0]["code"].as_str()),
        (Some(0), Some("receipt_expired"))
    );
    let c = receive(url, "q", json!({"max": 10})).await;
    let got: Vec<(u64, u64)> = c
        .iter()
        .map(|m| {
            (
                m["offset"].as_u64().unwrap(),
                m["delivery_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(4, 2), (5, 2)],
        "expired leases come back with their count"
    );
    let h = history(url, "q", 0, 4).await;
    assert_eq!(
        (h["state"].as_str(), h["delivery_count"].as_u64()),
        (Some("in_flight"), Some(2))
    );
    assert_eq!(events(&h), vec!["leased", "expired", "leased"]);
    assert!(h["history"][0]["gateway"].is_string());

    // Nack with a delay, then the last delivery's nack dead-letters it with the reason.
    let rc = receipts(&c);
    let v = settle(
        url,
        "q",
        "nack",
        json!({"receipts": [rc[1]], "reason": "bad input"}),
    )
    .await;
    assert_eq!(v["acked"], 1);
    let v = settle(
        url,
        "q",
        "nack",
        json!({"receipts": [rc[0]], "delay_ms": 200, "reason": "later"}),
    )
    .await;
    assert_eq!(
        v["acked"], 1,
        "the last delivery's nack is accepted: it dead-letters the record"
    );
    // Record 2 (still leased from `a`) is nacked without delay: ready again at once.
    let v = settle(url, "q", "nack", json!({"receipts": [r[2]], "delay_ms": 0})).await;
    assert_eq!(v["acked"], 1);
    let d = receive(url, "q", json!({"max": 10})).await;
    let got: Vec<(u64, u64)> = d
        .iter()
        .map(|m| {
            (
                m["offset"].as_u64().unwrap(),
                m["delivery_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![(2, 2)]);

    // Dead letters land in the DLQ topic with the sluice.* headers.
    let dlq = wait_dead_letters(url, "q.dlq", 2).await;
    let by_offset: BTreeMap<String, &Value> = dlq
        .iter()
        .map(|r| {
            (
                r["headers"]["sluice.source_offset"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                r,
            )
        })
        .collect();
    let r5 = by_offset["5"];
    assert_eq!(r5["value"], "job-5");
    assert_eq!(r5["headers"]["sluice.queue"], "q");
    assert_eq!(r5["headers"]["sluice.source_topic"], "jobs");
    assert_eq!(r5["headers"]["sluice.source_partition"], "0");
    assert_eq!(r5["headers"]["sluice.delivery_count"], "2");
    assert_eq!(r5["headers"]["sluice.reason"], "bad input");
    assert_eq!(by_offset["4"]["headers"]["sluice.reason"], "later");
    let h = history(url, "q", 0, 5).await;
    assert_eq!(h["state"], "dead_lettered");
    assert_eq!(
        events(&h),
        vec!["leased", "expired", "leased", "nacked", "dead_lettered"]
    );
    let (_, stats) = get(url, "/v1/queues/q").await;
    assert_eq!(stats["dead_lettered"], 2, "{stats}");
    assert_eq!(stats["acked"], 2, "{stats}");

    // Redrive: dry run counts, max limits, and the records come back with a fresh count.
    let (s, v) = post(url, "/v1/queues/q/redrive", json!({"dry_run": true})).await;
    assert_eq!((s, v["would_redrive"].as_u64()), (200, Some(2)));
    let (_, v) = post(url, "/v1/queues/q/redrive", json!({"max": 1})).await;
    assert_eq!(v["redriven"], 1);
    let e = receive(url, "q", json!({"max": 10})).await;
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0]["offset"].as_u64(), e[0]["delivery_count"].as_u64()),
        (Some(4), Some(1))
    );
    assert!(events(&history(url, "q", 0, 4).await).contains(&"redriven".to_string()));
    let v = settle(url, "q", "ack", json!({"receipts": receipts(&e)})).await;
    assert_eq!(v["acked"], 1);
    assert_eq!(history(url, "q", 0, 4).await["state"], "acked");

    // Gauges at /metrics (refreshed by the stats of a GET).
    let (_, stats) = get(url, "/v1/queues/q").await;
    assert_eq!(stats["dead_lettered"], 1, "{stats}");
    let m = metrics_text(url).await;
    assert!(
        m.contains("sluice_queue_dead_lettered{queue=\"q\"} 1"),
        "{m}"
    );
    assert!(m.contains("sluice_queue_in_flight{queue=\"q\"}"), "{m}");
}

async fn wait_dead_letters(url: &str, dlq: &str, n: usize) -> Vec<Value> {
    let (s, t) = get(url, &format!("/v1/topics/{dlq}")).await;
    assert_eq!(s, 200, "{t}");
    let parts = t["partitions"].as_u64().unwrap() as u32;
    for _ in 0..100 {
        let mut all = Vec::new();
        for p in 0..parts {
            let (_, v) = get(
                url,
                &format!("/v1/topics/{dlq}/partitions/{p}/records?offset=0&limit=1000"),
            )
            .await;
            all.extend(v["records"].as_array().cloned().unwrap_or_default());
        }
        if all.len() >= n {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{n} dead letters did not arrive in {dlq}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_start_latest_and_long_poll() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let url = &gw.url;
    topic(url, "ev", 1).await;
    produce(
        url,
        "ev",
        0,
        &[
            (Some("a"), "a1".into()),
            (Some("b"), "b1".into()),
            (Some("a"), "a2".into()),
            (Some("b"), "b2".into()),
        ],
    )
    .await;
    put(
        url,
        "/v1/queues/fifo",
        json!({"topic": "ev", "ordering": "key"}),
    )
    .await;
    put(
        url,
        "/v1/queues/late",
        json!({"topic": "ev", "start": "latest"}),
    )
    .await;
    let m = receive(url, "fifo", json!({"max": 10})).await;
    let values: Vec<&str> = m.iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(
        values,
        vec!["a1", "b1"],
        "a2 and b2 wait for the earlier record of their key"
    );
    assert!(receive(url, "fifo", json!({"max": 10})).await.is_empty());
    settle(url, "fifo", "ack", json!({"receipts": [m[0]["receipt"]]})).await;
    let m2 = receive(url, "fifo", json!({"max": 10})).await;
    let values: Vec<&str> = m2.iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(values, vec!["a2"]);

    // `latest` skips what was there before the queue; a long-poll wakes up for a new record.
    let url2 = url.clone();
    let waiter =
        tokio::spawn(
            async move { receive(&url2, "late", json!({"max": 5, "wait_ms": 10000})).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    produce(url, "ev", 0, &[(None, "new".into())]).await;
    let got = waiter.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["value"], "new");
    // A long-poll with nothing to get answers empty after its wait.
    let t = std::time::Instant::now();
    assert!(receive(url, "late", json!({"wait_ms": 300}))
        .await
        .is_empty());
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_routes_need_their_scopes() {
    let auth =
        AuthConfig::from_compact("c=consume:work;a=admin:*;o=consume:other", "test").unwrap();
    let cfg = GatewayConfig {
        auth: Some(Arc::new(auth)),
        ..Default::default()
    };
    let gw = Gateway::start(memory(), cfg).await;
    let url = &gw.url;
    let send = |token: &'static str, m: reqwest::Method, path: &'static str, body: Value| {
        let url = url.clone();
        async move {
            client()
                .request(m, format!("{url}{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        send(
            "a",
            reqwest::Method::POST,
            "/v1/topics",
            json!({"name": "t", "partitions": 1})
        )
        .await,
        201
    );
    assert_eq!(
        send(
            "c",
            reqwest::Method::PUT,
            "/v1/queues/work",
            json!({"topic": "t"})
        )
        .await,
        403
    );
    assert_eq!(
        send(
            "a",
            reqwest::Method::PUT,
            "/v1/queues/work",
            json!({"topic": "t"})
        )
        .await,
        201
    );
    assert_eq!(
        send(
            "c",
            reqwest::Method::POST,
            "/v1/queues/work/receive",
            json!({})
        )
        .await,
        200
    );
    assert_eq!(
        send(
            "c",
            reqwest::Method::POST,
            "/v1/queues/work/ack",
            json!({"receipts": []})
        )
        .await,
        200
    );
    assert_eq!(
        send("c", reqwest::Method::GET, "/v1/queues/work", json!(null)).await,
        200
    );
    assert_eq!(
        send(
            "c",
            reqwest::Method::POST,
            "/v1/queues/work/redrive",
            json!({})
        )
        .await,
        403
    );
    assert_eq!(
        send("c", reqwest::Method::DELETE, "/v1/queues/work", json!(null)).await,
        403
    );
    assert_eq!(
        send(
            "o",
            reqwest::Method::POST,
            "/v1/queues/work/receive",
            json!({})
        )
        .await,
        403
    );
    assert_eq!(
        send(
            "nobody",
            reqwest::Method::POST,
            "/v1/queues/work/receive",
            json!({})
        )
        .await,
        401
    );
    assert_eq!(
        send(
            "a",
            reqwest::Method::POST,
            "/v1/queues/work/redrive",
            json!({})
        )
        .await,
        200
    );
}

/// Six receivers over three gateways of one store race for 300 records, 12 of them poison
/// (always nacked): the checker proves at-least-once, no double lease, acked exactly once, and
/// poison dead-lettered after exactly `max_deliveries`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_over_three_gateways_pass_the_checker() {
    let store = memory();
    let gws = [
        Gateway::start(store.clone(), GatewayConfig::default()).await,
        Gateway::start(store.clone(), GatewayConfig::default()).await,
        Gateway::start(store.clone(), GatewayConfig::default()).await,
    ];
    let url = gws[0].url.clone();
    topic(&url, "load", 3).await;
    let (s, _) = put(
        &url,
        "/v1/queues/race",
        json!({"topic": "load", "max_deliveries": 3, "visibility_timeout_ms": 2000}),
    )
    .await;
    assert_eq!(s, 201);
    let mut produced = std::collections::BTreeSet::new();
    let mut poison = BTreeMap::new();
    for p in 0..3u32 {
        let values: Vec<(Option<&str>, String)> = (0..100)
            .map(|i| {
                (
                    None,
                    if i % 25 == 7 {
                        format!("poison-{p}-{i}")
                    } else {
                        format!("ok-{p}-{i}")
                    },
                )
            })
            .collect();
        produce(&url, "load", p, &values).await;
        for i in 0..100u64 {
            produced.insert((p, i));
            if i % 25 == 7 {
                poison.insert((p, i), vec!["poison".to_string()]);
            }
        }
    }
    let leases = Arc::new(Mutex::new(Vec::<LeaseObs>::new()));
    let mut tasks = Vec::new();
    for r in 0..6u32 {
        let url = gws[r as usize % 3].url.clone();
        let leases = leases.clone();
        tasks.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < 8 {
                let sent = now_ms();
                let m = receive(&url, "race", json!({"max": 7, "wait_ms": 200})).await;
                let answered = now_ms();
                if m.is_empty() {
                    idle += 1;
                    continue;
                }
                idle = 0;
                let (mut ok, mut bad) = (Vec::new(), Vec::new());
                let mut mine = Vec::new();
                for msg in &m {
                    let pos = (
                        msg["partition"].as_u64().unwrap() as u32,
                        msg["offset"].as_u64().unwrap(),
                    );
                    mine.push(LeaseObs {
                        receiver: r,
                        pos,
                        delivery_count: msg["delivery_count"].as_u64().unwrap() as u32,
                        sent_ms: sent,
                        answered_ms: answered,
                        visibility_timeout_ms: 2000,
                        released_ms: None,
                    });
                    if msg["value"].as_str().unwrap().starts_with("poison") {
                        bad.push(msg["receipt"].clone());
                    } else {
                        ok.push(msg["receipt"].clone());
                    }
                }
                let released = now_ms();
                for l in &mut mine {
                    l.released_ms = Some(released);
                }
                leases.lock().unwrap().extend(mine);
                let v = settle(&url, "race", "ack", json!({"receipts": ok})).await;
                assert!(v["rejected"].as_array().unwrap().is_empty(), "{v}");
                let v = settle(
                    &url,
                    "race",
                    "nack",
                    json!({"receipts": bad, "reason": "poison"}),
                )
                .await;
                assert!(v["rejected"].as_array().unwrap().is_empty(), "{v}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let dead = wait_dead_letters(&url, "race.dlq", poison.len()).await;
    let mut h = QueueHistory {
        produced,
        poison,
        leases: Arc::try_unwrap(leases).unwrap().into_inner().unwrap(),
        max_deliveries: 3,
        ..Default::default()
    };
    for d in &dead {
        let hd = &d["headers"];
        h.dead_letters.push(DeadLetter {
            pos: (
                hd["sluice.source_partition"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
                hd["sluice.source_offset"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
            ),
            delivery_count: hd["sluice.delivery_count"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            reason: hd["sluice.reason"].as_str().unwrap().to_string(),
        });
    }
    for &(p, o) in &h.produced {
        let v = history(&gws[2].url, "race", p, o).await;
        h.finals.insert(
            (p, o),
            FinalRecord {
                state: v["state"].as_str().unwrap().to_string(),
                acked_events: events(&v).iter().filter(|e| *e == "acked").count(),
            },
        );
    }
    let violations = check_queue(&h);
    assert!(violations.is_empty(), "{violations:#?}");
    let (_, stats) = get(&gws[1].url, "/v1/queues/race").await;
    assert_eq!(
        (
            stats["acked"].as_u64(),
            stats["dead_lettered"].as_u64(),
            stats["ready"].as_u64(),
            stats["in_flight"].as_u64()
        ),
        (Some(288), Some(12), Some(0), Some(0)),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_filter_and_filtered_redrive() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let url = &gw.url;
    topic(url, "mix", 1).await;
    let records: Vec<Value> = (0..6)
        .map(|i| json!({"value": format!("v{i}"), "partition": 0, "headers": {"type": if i % 2 == 0 { "even" } else { "odd" }}}))
        .collect();
    let (s, _) = post(url, "/v1/topics/mix/records", json!({"records": records})).await;
    assert_eq!(s, 200);
    let (s, v) = put(
        url,
        "/v1/queues/evens",
        json!({"topic": "mix", "filter": "type = 'even' AND", "max_deliveries": 1}),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("invalid_filter")),
        "{v}"
    );
    assert!(v["position"].is_number(), "{v}");
    let (s, v) = put(
        url,
        "/v1/queues/evens",
        json!({"topic": "mix", "filter": "type = 'even'", "max_deliveries": 1}),
    )
    .await;
    assert_eq!(
        (s, v["filter"].as_str()),
        (201, Some("type = 'even'")),
        "{v}"
    );
    let m = receive(url, "evens", json!({"max": 10})).await;
    let values: Vec<&str> = m.iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(values, vec!["v0", "v2", "v4"], "odd records are skipped");
    assert_eq!(
        history(url, "evens", 0, 1).await["state"],
        "acked",
        "a skipped record is done"
    );
    // Dead-letter two with different reasons, then redrive only one reason.
    let r = receipts(&m);
    settle(
        url,
        "evens",
        "nack",
        json!({"receipts": [r[0]], "reason": "timeout"}),
    )
    .await;
    settle(
        url,
        "evens",
        "nack",
        json!({"receipts": [r[1]], "reason": "bad"}),
    )
    .await;
    wait_dead_letters(url, "evens.dlq", 2).await;
    let (s, v) = post(
        url,
        "/v1/queues/evens/redrive",
        json!({"filter": "\"sluice.reason\" = 'timeout'", "dry_run": true}),
    )
    .await;
    assert_eq!((s, v["would_redrive"].as_u64()), (200, Some(1)), "{v}");
    let (s, v) = post(url, "/v1/queues/evens/redrive", json!({"filter": "nope ="})).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_filter")));
    let (_, v) = post(
        url,
        "/v1/queues/evens/redrive",
        json!({"filter": "\"sluice.reason\" = 'timeout'"}),
    )
    .await;
    assert_eq!(v["redriven"], 1);
    let again = receive(url, "evens", json!({"max": 10})).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["value"], "v0");
}
