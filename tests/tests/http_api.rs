//! REST API v1 end to end, in process: real `sluice_gateway::serve` instances on `127.0.0.1:0`
//! over the in-memory store (and one on a local folder), driven with an HTTP client.

use serde_json::{json, Value};
use sluice_core::store::{self, DynStore, StoreOptions};
use sluice_gateway::GatewayConfig;
use sluice_tests::http::{metric, metrics_text, Gateway};
use std::time::{Duration, Instant};

fn memory() -> DynStore {
    store::open("memory://", &StoreOptions::default()).unwrap()
}

async fn gateway() -> Gateway {
    Gateway::start(memory(), GatewayConfig::default()).await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn create_topic(url: &str, name: &str, partitions: u32) -> Value {
    let r = client()
        .post(format!("{url}/v1/topics"))
        .json(&json!({"name": name, "partitions": partitions}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "create {name}");
    r.json().await.unwrap()
}

async fn produce(url: &str, topic: &str, body: Value) -> Value {
    let r = client()
        .post(format!("{url}/v1/topics/{topic}/records"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "produce: {v}");
    v
}

async fn get_json(url: String) -> (u16, Value) {
    let r = client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn read(url: &str, topic: &str, p: u32, query: &str) -> Value {
    let (status, v) = get_json(format!(
        "{url}/v1/topics/{topic}/partitions/{p}/records?{query}"
    ))
    .await;
    assert_eq!(status, 200, "read {topic}/{p}?{query}: {v}");
    v
}

/// Asserts a problem document with this status and code, and returns it.
async fn problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    let got = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "status for {code}: {text}");
    assert!(
        ct.starts_with("application/problem+json"),
        "content type {ct:?} for {code}: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], status, "{v}");
    assert!(
        v["type"].is_string() && v["title"].is_string() && v["detail"].is_string(),
        "{v}"
    );
    v
}

fn values(read: &Value) -> Vec<String> {
    read["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap_or("<binary>").to_string())
        .collect()
}

/// A metric's value from the Prometheus text.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_crud() {
    let gw = gateway().await;
    let url = &gw.url;
    let c = client();
    let t = create_topic(url, "orders", 3).await;
    assert_eq!(
        (t["name"].as_str(), t["partitions"].as_u64()),
        (Some("orders"), Some(3))
    );
    assert!(t["id"].is_string());
    let r = c
        .post(format!("{url}/v1/topics"))
        .json(&json!({"name": "orders", "partitions": 1}))
        .send()
        .await
        .unwrap();
    problem(r, 409, "topic_exists").await;
    let r = c
        .post(format!("{url}/v1/topics"))
        .json(&json!({"name": "bad/name", "partitions": 1}))
        .send()
        .await
        .unwrap();
    problem(r, 400, "invalid_request").await;
    let r = c
        .post(format!("{url}/v1/topics"))
        .json(&json!({"name": "zero", "partitions": 0}))
        .send()
        .await
        .unwrap();
    problem(r, 400, "invalid_request").await;
    create_topic(url, "audit", 1).await;

    let (s, list) = get_json(format!("{url}/v1/topics")).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "orders"]);

    let (s, detail) = get_json(format!("{url}/v1/topics/orders")).await;
    assert_eq!(s, 200);
    let parts = detail["partition_info"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts[2],
        json!({"partition": 2, "earliest_offset": 0, "next_offset": 0, "last_append_ms": null})
    );

    let r = c
        .patch(format!("{url}/v1/topics/orders"))
        .json(&json!({"partitions": 5, "retention_ms": 60000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        (t["partitions"].as_u64(), t["retention_ms"].as_i64()),
        (Some(5), Some(60000))
    );
    let r = c
        .patch(format!("{url}/v1/topics/orders"))
        .json(&json!({"retention_ms": null}))
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        (t["partitions"].as_u64(), &t["retention_ms"]),
        (Some(5), &Value::Null)
    );
    assert_eq!(t["parquet"], json!(false));
    let r = c
        .patch(format!("{url}/v1/topics/orders"))
        .json(&json!({"parquet": true}))
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        (&t["parquet"], t["partitions"].as_u64()),
        (&json!(true), Some(5)),
        "parquet alone is a valid change"
    );
    let r = c
        .patch(format!("{url}/v1/topics/orders"))
        .json(&json!({"parquet": "yes"}))
        .send()
        .await
        .unwrap();
    problem(r, 400, "invalid_request").await;
    let r = c
        .patch(format!("{url}/v1/topics/orders"))
        .json(&json!({"partitions": 2}))
        .send()
        .await
        .unwrap();
    problem(r, 400, "invalid_request").await;
    let r = c
        .patch(format!("{url}/v1/topics/orders"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(r, 400, "invalid_request").await;
    let r = c
        .patch(format!("{url}/v1/topics/nope"))
        .json(&json!({"partitions": 2}))
        .send()
        .await
        .unwrap();
    problem(r, 404, "topic_not_found").await;

    let r = c
        .delete(format!("{url}/v1/topics/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = c
        .get(format!("{url}/v1/topics/orders"))
        .send()
        .await
        .unwrap();
    problem(r, 404, "topic_not_found").await;
    let r = c
        .delete(format!("{url}/v1/topics/orders"))
        .send()
        .await
        .unwrap();
    problem(r, 404, "topic_not_found").await;
    // Re-created: a new, empty incarnation.
    let again = create_topic(url, "orders", 1).await;
    assert_ne!(again["id"], t["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_formats_and_read_back() {
    let gw = gateway().await;
    let url = &gw.url;
    let c = client();
    create_topic(url, "events", 1).await;

    // JSON: text, binary, key, headers, producer timestamp.
    let a = produce(
        url,
        "events",
        json!({"records": [
            {"key": "k1", "value": "one", "headers": {"type": "created"}, "timestamp_ms": 1234},
            {"key_b64": "AP8=", "value_b64": "/wAB"},
            {"value": "three", "partition": 0},
        ]}),
    )
    .await;
    assert_eq!(
        a["offsets"],
        json!([{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}, {"partition": 0, "offset": 2}])
    );
    assert_eq!(a["duplicate"], false);
    let first_ts = a["append_timestamp_ms"].as_i64().unwrap();
    assert!(first_ts > 0);

    tokio::time::sleep(Duration::from_millis(20)).await;
    // NDJSON, one record a line (blank lines are fine).
    let r = c
        .post(format!("{url}/v1/topics/events/records"))
        .header("content-type", "application/x-ndjson")
        .body("{\"value\":\"four\"}\n\n{\"value\":\"five\",\"key\":\"k5\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["offsets"][1]["offset"], 4);
    let second_ts = b["append_timestamp_ms"].as_i64().unwrap();
    assert!(second_ts > first_ts);

    // A raw value.
    let r = c
        .post(format!("{url}/v1/topics/events/records?key=raw-key"))
        .header("content-type", "application/octet-stream")
        .body(&b"six"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let raw: Value = r.json().await.unwrap();
    assert_eq!(raw["offsets"][0]["offset"], 5);

    let all = read(url, "events", 0, "offset=0").await;
    assert_eq!(
        values(&all),
        ["one", "<binary>", "three", "four", "five", "six"]
    );
    assert_eq!(
        (all["next_offset"].as_u64(), all["high_watermark"].as_u64()),
        (Some(6), Some(6))
    );
    let recs = all["records"].as_array().unwrap();
    assert_eq!(recs[0]["key"], "k1");
    assert_eq!(recs[0]["headers"], json!({"type": "created"}));
    assert_eq!(recs[0]["producer_timestamp_ms"], 1234);
    assert_eq!(recs[0]["timestamp_ms"].as_i64(), Some(first_ts));
    assert_eq!(recs[1]["value_b64"], "/wAB");
    assert_eq!(recs[1]["key_b64"], "AP8=");
    assert!(recs[1]["value"].is_null());
    assert_eq!(recs[5]["key"], "raw-key");
    assert_eq!(recs[5]["offset"], 5);

    assert_eq!(
        values(&read(url, "events", 0, "offset=earliest&limit=2").await),
        ["one", "<binary>"]
    );
    let page = read(url, "events", 0, "offset=2&limit=2").await;
    assert_eq!(values(&page), ["three", "four"]);
    assert_eq!(page["next_offset"], 4);
    let latest = read(url, "events", 0, "offset=latest").await;
    assert_eq!(latest["records"], json!([]));
    assert_eq!(latest["next_offset"], 6);
    let by_time = read(url, "events", 0, &format!("timestamp_ms={second_ts}")).await;
    assert_eq!(values(&by_time), ["four", "five", "six"]);
    let (s, o) = get_json(format!(
        "{url}/v1/topics/events/partitions/0/offsets?timestamp_ms={second_ts}"
    ))
    .await;
    assert_eq!((s, &o), (200, &json!({"offset": 3})));
    let (_, o) = get_json(format!(
        "{url}/v1/topics/events/partitions/0/offsets?timestamp_ms=0"
    ))
    .await;
    assert_eq!(o["offset"], 0);

    let (_, detail) = get_json(format!("{url}/v1/topics/events")).await;
    let p0 = &detail["partition_info"][0];
    assert_eq!(
        (p0["earliest_offset"].as_u64(), p0["next_offset"].as_u64()),
        (Some(0), Some(6))
    );
    assert!(p0["last_append_ms"].as_i64().unwrap() >= second_ts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_same_partition() {
    let gw = gateway().await;
    let url = &gw.url;
    create_topic(url, "users", 8).await;
    let mut user7 = Vec::new();
    let mut partitions_seen = std::collections::BTreeSet::new();
    for i in 0..10 {
        let a = produce(
            url,
            "users",
            json!({"records": [
                {"key": "user-7", "value": format!("a{i}")},
                {"key": format!("other-{i}"), "value": "x"},
                {"value": "explicit", "partition": 6},
            ]}),
        )
        .await;
        user7.push(a["offsets"][0]["partition"].as_u64().unwrap());
        partitions_seen.insert(a["offsets"][1]["partition"].as_u64().unwrap());
        assert_eq!(a["offsets"][2]["partition"], 6);
    }
    assert!(user7.iter().all(|&p| p == user7[0]), "{user7:?}");
    assert!(
        partitions_seen.len() > 1,
        "different keys spread: {partitions_seen:?}"
    );
    // In order within the partition.
    let got = read(url, "users", user7[0] as u32, "offset=0&limit=1000").await;
    let mine: Vec<String> = values(&got)
        .into_iter()
        .filter(|v| v.starts_with('a'))
        .collect();
    assert_eq!(mine, (0..10).map(|i| format!("a{i}")).collect::<Vec<_>>());
}

async fn produce_idempotent(url: &str, key: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(format!("{url}/v1/topics/pay/records"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

async fn high_watermarks(url: &str, topic: &str, partitions: u32) -> Vec<u64> {
    let mut v = Vec::new();
    for p in 0..partitions {
        v.push(
            read(url, topic, p, "offset=latest").await["high_watermark"]
                .as_u64()
                .unwrap(),
        );
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_retries_on_one_and_two_gateways() {
    let store = memory();
    let a = Gateway::start(store.clone(), GatewayConfig::default()).await;
    let b = Gateway::start(store.clone(), GatewayConfig::default()).await;
    create_topic(&a.url, "pay", 4).await;
    let body = json!({"records": [{"value": "p1"}, {"key": "k", "value": "p2"}, {"value": "p3"}]});

    let (s, first) = produce_idempotent(&a.url, "req-1", &body).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["duplicate"], false);
    let before = high_watermarks(&a.url, "pay", 4).await;

    let (s, again) = produce_idempotent(&a.url, "req-1", &body).await;
    assert_eq!(s, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["offsets"], first["offsets"]);
    assert_eq!(again["append_timestamp_ms"], first["append_timestamp_ms"]);

    // The retry reaches the other gateway (its own Log on the same bucket).
    let (s, via_b) = produce_idempotent(&b.url, "req-1", &body).await;
    assert_eq!(s, 200, "{via_b}");
    assert_eq!(via_b["duplicate"], true);
    assert_eq!(via_b["offsets"], first["offsets"]);
    assert_eq!(
        high_watermarks(&a.url, "pay", 4).await,
        before,
        "nothing new was written"
    );
    assert_eq!(high_watermarks(&b.url, "pay", 4).await, before);

    // The same key for a different request.
    let (s, other) =
        produce_idempotent(&b.url, "req-1", &json!({"records": [{"value": "z"}]})).await;
    assert_eq!(s, 422, "{other}");
    assert_eq!(other["code"], "idempotency_key_reused");

    // A fresh key writes.
    let (_, fresh) = produce_idempotent(&b.url, "req-2", &body).await;
    assert_eq!(fresh["duplicate"], false);
    let r = client()
        .post(format!("{}/v1/topics/pay/records", a.url))
        .header("idempotency-key", "x".repeat(257))
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(r, 400, "invalid_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_are_batched() {
    let cfg = GatewayConfig {
        linger: Duration::from_millis(20),
        ..Default::default()
    };
    let gw = Gateway::start(memory(), cfg).await;
    let url = gw.url.clone();
    create_topic(&url, "batch", 2).await;
    let c = client();
    let sends = (0..50).map(|i| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let r = c
                .post(format!("{url}/v1/topics/batch/records"))
                .json(&json!({"records": [{"key": format!("k{i}"), "value": format!("v{i}")}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let v: Value = r.json().await.unwrap();
            v["offsets"][0].clone()
        }
    });
    let offsets = futures::future::join_all(sends).await;
    let mut unique: Vec<String> = offsets.iter().map(|o| o.to_string()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 50, "every record got its own offset");
    let text = metrics_text(&url).await;
    let requests = metric::<f64>(&text, "sluice_produce_requests_total");
    let flushes = metric::<f64>(&text, "sluice_flushes_total");
    assert_eq!(requests, 50.0);
    assert!(
        flushes >= 1.0 && flushes < requests,
        "flushes {flushes} for {requests} requests"
    );
    assert_eq!(metric::<f64>(&text, "sluice_produced_records_total"), 50.0);
    assert_eq!(
        metric::<f64>(&text, "sluice_flush_duration_seconds_count"),
        flushes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_none_answers_at_once_and_commits_later() {
    let gw = gateway().await;
    let url = &gw.url;
    create_topic(url, "fire", 1).await;
    let r = client()
        .post(format!("{url}/v1/topics/fire/records?ack=none"))
        .json(&json!({"records": [{"value": "forget"}, {"value": "me"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["accepted"], 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = read(url, "fire", 0, "offset=0").await;
        if values(&got) == ["forget", "me"] {
            break;
        }
        assert!(Instant::now() < deadline, "ack=none records never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = client()
        .post(format!("{url}/v1/topics/fire/records?ack=maybe"))
        .json(&json!({"records": [{"value": "x"}]}))
        .send()
        .await
        .unwrap();
    problem(r, 400, "invalid_request").await;
}

/// Starts a long-poll read on `reader` from the end of `topic`/0, then produces `value` through
/// `writer`; returns what the reader got and how long it took.
async fn long_poll(reader: &str, writer: &str, topic: &str, value: &str) -> (Value, Duration) {
    let next = read(reader, topic, 0, "offset=latest").await["next_offset"]
        .as_u64()
        .unwrap();
    let url = format!("{reader}/v1/topics/{topic}/partitions/0/records?offset={next}&wait_ms=5000");
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        let r = client().get(url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        (v, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !poll.is_finished(),
        "the reader waits while there is nothing"
    );
    produce(writer, topic, json!({"records": [{"value": value}]})).await;
    poll.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_is_woken_by_local_and_remote_produces() {
    let store = memory();
    let a = Gateway::start(store.clone(), GatewayConfig::default()).await;
    let b = Gateway::start(store.clone(), GatewayConfig::default()).await;
    create_topic(&a.url, "lp", 1).await;

    let (got, took) = long_poll(&a.url, &a.url, "lp", "local").await;
    assert_eq!(values(&got), ["local"]);
    assert!(
        took < Duration::from_secs(1),
        "woken by a local produce after {took:?}"
    );

    let (got, took) = long_poll(&a.url, &b.url, "lp", "remote").await;
    assert_eq!(values(&got), ["remote"]);
    assert!(
        took < Duration::from_secs(1),
        "woken by another gateway's produce after {took:?}"
    );

    // Nothing arrives: the wait ends with an empty answer.
    let started = Instant::now();
    let empty = read(&a.url, "lp", 0, "offset=2&wait_ms=300").await;
    assert_eq!(empty["records"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(250));
}

/// Parsed server-sent events: (id, data).
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn open(url: &str, last_event_id: Option<u64>) -> Self {
        let mut req = client().get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Self {
            resp,
            buf: String::new(),
        }
    }

    async fn next(&mut self) -> (u64, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                match id {
                    Some(id) => return (id, serde_json::from_str(&data).unwrap()),
                    None => continue, // a keep-alive comment
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.resp.chunk())
                .await
                .expect("an event within 5 s")
                .unwrap()
                .expect("stream still open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_resume_from_last_event_id() {
    let gw = gateway().await;
    let url = gw.url.clone();
    create_topic(&url, "sse", 1).await;
    let records: Vec<Value> = (0..5).map(|i| json!({"value": format!("e{i}")})).collect();
    produce(&url, "sse", json!({ "records": records })).await;
    let stream_url = format!("{url}/v1/topics/sse/partitions/0/records?offset=0");

    let mut events = Events::open(&stream_url, None).await;
    for want in 0..3u64 {
        let (id, data) = events.next().await;
        assert_eq!(id, want);
        assert_eq!(data["offset"], want);
        assert_eq!(data["value"], format!("e{want}"));
    }
    drop(events);

    let mut events = Events::open(&stream_url, Some(2)).await;
    for want in 3..5u64 {
        let (id, data) = events.next().await;
        assert_eq!(
            (id, data["value"].as_str()),
            (want, Some(format!("e{want}").as_str()))
        );
    }
    // The stream stays open and delivers new records as they are committed.
    produce(&url, "sse", json!({"records": [{"value": "live"}]})).await;
    let (id, data) = events.next().await;
    assert_eq!((id, data["value"].as_str()), (5, Some("live")));

    // Shutdown ends open streams instead of waiting for them.
    gw.shutdown().await.unwrap();
}

fn offsets(read: &Value) -> Vec<u64> {
    read["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect()
}

fn records_url(url: &str, topic: &str, query: &[(&str, &str)]) -> url::Url {
    url::Url::parse_with_params(
        &format!("{url}/v1/topics/{topic}/partitions/0/records"),
        query,
    )
    .unwrap()
}

async fn read_filtered(url: &str, topic: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .get(records_url(url, topic, query))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_reads_long_polls_and_event_streams() {
    let gw = gateway().await;
    let url = gw.url.clone();
    create_topic(&url, "flt", 1).await;
    // Offsets 0..10: type alternates created / paid, amount = 10 × offset, key user-{offset};
    // offset 9 has no `type` header.
    let records: Vec<Value> = (0..10)
        .map(|i| {
            let mut headers = json!({"amount": (i * 10).to_string()});
            if i < 9 {
                headers["type"] = json!(if i % 2 == 0 { "created" } else { "paid" });
            }
            json!({"key": format!("user-{i}"), "value": format!("v{i}"), "headers": headers})
        })
        .collect();
    produce(&url, "flt", json!({ "records": records })).await;

    let cases: &[(&str, &[u64])] = &[
        ("type = 'paid' AND amount > 20", &[3, 5, 7]),
        // Numeric comparison: as strings "100" < "9".
        ("amount >= 70", &[7, 8, 9]),
        ("type IS NULL", &[9]),
        ("NOT type = 'paid'", &[0, 2, 4, 6, 8, 9]),
        ("type <> 'paid'", &[0, 2, 4, 6, 8]),
        ("key IN ('user-1', 'user-4') OR key LIKE '%8'", &[1, 4, 8]),
        ("type = 'refunded'", &[]),
    ];
    for (filter, want) in cases {
        let (status, v) = read_filtered(&url, "flt", &[("offset", "0"), ("filter", filter)]).await;
        assert_eq!(status, 200, "{filter}: {v}");
        assert_eq!(offsets(&v), *want, "{filter}");
        // What the filter dropped still advances next_offset: the whole partition was scanned.
        assert_eq!(
            (v["next_offset"].as_u64(), v["high_watermark"].as_u64()),
            (Some(10), Some(10))
        );
    }
    // The limit counts returned records; next_offset follows the last one returned.
    let (_, v) = read_filtered(
        &url,
        "flt",
        &[("offset", "2"), ("limit", "2"), ("filter", "type = 'paid'")],
    )
    .await;
    assert_eq!(
        (offsets(&v), v["next_offset"].as_u64()),
        (vec![3, 5], Some(6))
    );
    assert_eq!(v["records"][0]["headers"]["type"], "paid");

    // Malformed filters: 400 invalid_filter with the byte position.
    for (filter, position) in [("a = 1 AND", 9), ("type == 'x'", 6), ("", 0), ("a @ 1", 2)] {
        let r = client()
            .get(records_url(&url, "flt", &[("filter", filter)]))
            .send()
            .await
            .unwrap();
        let v = problem(r, 400, "invalid_filter").await;
        assert_eq!(v["position"], position, "{filter}: {v}");
    }

    // A long-poll with a filter waits past records the filter drops.
    let reader = {
        let url = url.clone();
        tokio::spawn(async move {
            read_filtered(
                &url,
                "flt",
                &[
                    ("offset", "10"),
                    ("wait_ms", "20000"),
                    ("filter", "type = 'late'"),
                ],
            )
            .await
        })
    };
    for t in ["early", "late"] {
        produce(
            &url,
            "flt",
            json!({"records": [{"value": t, "headers": {"type": t}}]}),
        )
        .await;
    }
    let (status, v) = reader.await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (values(&v), v["next_offset"].as_u64()),
        (vec!["late".to_string()], Some(12))
    );

    // An event stream carries only the records that pass.
    let stream_url = records_url(&url, "flt", &[("offset", "0"), ("filter", "amount < 30")]);
    let mut events = Events::open(stream_url.as_str(), None).await;
    for want in 0..3u64 {
        let (id, data) = events.next().await;
        assert_eq!((id, data["offset"].as_u64()), (want, Some(want)));
    }
    produce(
        &url,
        "flt",
        json!({"records": [{"value": "no", "headers": {"amount": "99"}}, {"value": "yes", "headers": {"amount": "1"}}]}),
    )
    .await;
    let (id, data) = events.next().await;
    assert_eq!((id, data["value"].as_str()), (13, Some("yes")));
}

/// POST a produce request with producer headers (`None` values are left out).
async fn produce_as(
    url: &str,
    topic: &str,
    headers: &[(&str, Option<&str>)],
    body: &Value,
) -> (u16, Value) {
    let mut req = client().post(format!("{url}/v1/topics/{topic}/records"));
    for (name, value) in headers {
        if let Some(v) = value {
            req = req.header(*name, *v);
        }
    }
    let r = req.json(body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn new_producer(url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = client().post(format!("{url}/v1/producers"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producers_across_gateways() {
    let store = memory();
    let a = Gateway::start(store.clone(), GatewayConfig::default()).await;
    let b = Gateway::start(store.clone(), GatewayConfig::default()).await;
    create_topic(&a.url, "idem", 4).await;
    let (status, p) = new_producer(&a.url, None).await;
    assert_eq!((status, p["epoch"].as_u64()), (201, Some(0)), "{p}");
    let id = p["producer_id"].as_str().unwrap().to_string();
    // Keyless records spread over partitions: a repeat must still answer the same offsets.
    let body = |s: u64| json!({"records": (0..6).map(|i| json!({"value": format!("s{s}-{i}")})).collect::<Vec<_>>()});
    let send = |url: String, epoch: u32, seq: u64| {
        let id = id.clone();
        async move {
            let (e, q) = (epoch.to_string(), seq.to_string());
            let headers = [
                ("Producer-Id", Some(id.as_str())),
                ("Producer-Epoch", Some(e.as_str())),
                ("Producer-Seq", Some(q.as_str())),
            ];
            produce_as(&url, "idem", &headers, &body(seq)).await
        }
    };
    let mut answers = Vec::new();
    for seq in 0..7u64 {
        let url = if seq % 2 == 0 { &a.url } else { &b.url };
        let (status, v) = send(url.clone(), 0, seq).await;
        assert_eq!(status, 200, "seq {seq}: {v}");
        assert_eq!(v["duplicate"], false);
        answers.push(v);
    }
    let written = high_watermarks(&a.url, "idem", 4).await;
    assert_eq!(written.iter().sum::<u64>(), 42);
    // A repeat of one of the last 5 (2..=6), through either gateway, answers its first answer.
    for seq in 2..7u64 {
        for url in [&a.url, &b.url] {
            let (status, v) = send(url.clone(), 0, seq).await;
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["duplicate"], true);
            assert_eq!(v["offsets"], answers[seq as usize]["offsets"], "seq {seq}");
        }
    }
    // Older than those 5, or a gap: 409 out_of_order_sequence; nothing written.
    for seq in [0, 1, 8, 100] {
        let (status, v) = send(b.url.clone(), 0, seq).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (409, Some("out_of_order_sequence")),
            "{v}"
        );
    }
    assert_eq!(high_watermarks(&b.url, "idem", 4).await, written);

    // Bumping the epoch fences the old one; sequences start again at 0.
    let (status, p) = new_producer(&a.url, Some(json!({"producer_id": id}))).await;
    assert_eq!((status, p["epoch"].as_u64()), (201, Some(1)), "{p}");
    let (status, v) = send(a.url.clone(), 0, 7).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("producer_fenced")),
        "{v}"
    );
    let (status, v) = send(a.url.clone(), 1, 1).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("out_of_order_sequence")),
        "{v}"
    );
    let (status, v) = send(b.url.clone(), 1, 0).await;
    assert_eq!(
        (status, v["duplicate"].as_bool()),
        (200, Some(false)),
        "{v}"
    );
    // Once the new epoch committed on the topic, the journal fences the old one on every
    // gateway, whatever its cache says.
    for url in [&a.url, &b.url] {
        let (status, v) = send(url.clone(), 0, 7).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (409, Some("producer_fenced")),
            "{v}"
        );
    }
    // The state lives in the bucket: a gateway started now knows it.
    let c = Gateway::start(store, GatewayConfig::default()).await;
    let (status, v) = send(c.url.clone(), 1, 0).await;
    assert_eq!((status, v["duplicate"].as_bool()), (200, Some(true)), "{v}");

    // Bad input.
    let unknown = "01JDC0000000000000000000AA";
    type Headers<'a> = [(&'a str, Option<&'a str>); 3];
    let cases: Vec<(Headers, u16, &str)> = vec![
        (
            [
                ("Producer-Id", Some(unknown)),
                ("Producer-Epoch", Some("0")),
                ("Producer-Seq", Some("0")),
            ],
            404,
            "producer_not_found",
        ),
        (
            [
                ("Producer-Id", Some("nope")),
                ("Producer-Epoch", Some("0")),
                ("Producer-Seq", Some("0")),
            ],
            404,
            "producer_not_found",
        ),
        (
            [
                ("Producer-Id", Some(&id)),
                ("Producer-Epoch", Some("9")),
                ("Producer-Seq", Some("0")),
            ],
            404,
            "producer_not_found",
        ),
        (
            [
                ("Producer-Id", Some(&id)),
                ("Producer-Epoch", Some("1")),
                ("Producer-Seq", Some("x")),
            ],
            400,
            "invalid_request",
        ),
        (
            [
                ("Producer-Id", Some(&id)),
                ("Producer-Epoch", Some("-1")),
                ("Producer-Seq", Some("0")),
            ],
            400,
            "invalid_request",
        ),
        (
            [
                ("Producer-Id", Some(&id)),
                ("Producer-Epoch", Some("4294967296")),
                ("Producer-Seq", Some("0")),
            ],
            400,
            "invalid_request",
        ),
        (
            [
                ("Producer-Id", Some(&id)),
                ("Producer-Epoch", None),
                ("Producer-Seq", Some("0")),
            ],
            400,
            "invalid_request",
        ),
    ];
    for (headers, status, code) in cases {
        let (got, v) = produce_as(&a.url, "idem", &headers, &body(0)).await;
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "{headers:?}: {v}"
        );
    }
    let (status, v) = new_producer(&a.url, Some(json!({"producer_id": unknown}))).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("producer_not_found")),
        "{v}"
    );
    let (status, v) = new_producer(&a.url, Some(json!({"producer": 1}))).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    assert_eq!(
        high_watermarks(&a.url, "idem", 4).await.iter().sum::<u64>(),
        48
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_problem_documents() {
    let gw = gateway().await;
    let url = &gw.url;
    let c = client();
    create_topic(url, "err", 2).await;
    produce(
        url,
        "err",
        json!({"records": [{"value": "a", "partition": 0}]}),
    )
    .await;
    let records = format!("{url}/v1/topics/err/records");
    let post_json = |body: String| {
        c.post(&records)
            .header("content-type", "application/json")
            .body(body)
    };

    problem(
        post_json("{\"records\": [".into()).send().await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    problem(
        post_json("{\"recs\": []}".into()).send().await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        post_json("{\"records\": []}".into()).send().await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        post_json(json!({"records": [{"value": "a", "value_b64": "YQ=="}]}).to_string())
            .send()
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        post_json(json!({"records": [{"value_b64": "not base64!"}]}).to_string())
            .send()
            .await
            .unwrap(),
        400,
        "invalid_base64",
    )
    .await;
    let big = "x".repeat((1 << 20) + 1);
    problem(
        post_json(json!({"records": [{"value": big}]}).to_string())
            .send()
            .await
            .unwrap(),
        413,
        "record_too_large",
    )
    .await;
    let r = c
        .post(&records)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; (8 << 20) + 1])
        .send()
        .await
        .unwrap();
    problem(r, 413, "request_too_large").await;
    let r = c
        .post(&records)
        .header("content-type", "application/x-ndjson")
        .body("{\"value\": \"ok\"}\n{\"value\": \n")
        .send()
        .await
        .unwrap();
    let p = problem(r, 400, "invalid_json").await;
    assert!(p["detail"].as_str().unwrap().contains("line 2"), "{p}");
    let r = c
        .post(&records)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    problem(r, 415, "unsupported_media_type").await;
    let r = c
        .post(format!("{url}/v1/topics"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=x")
        .send()
        .await
        .unwrap();
    problem(r, 415, "unsupported_media_type").await;
    problem(
        post_json(json!({"records": [{"value": "a", "partition": 2}]}).to_string())
            .send()
            .await
            .unwrap(),
        404,
        "partition_not_found",
    )
    .await;
    let r = c
        .post(format!("{url}/v1/topics/nope/records"))
        .json(&json!({"records": [{"value": "a"}]}))
        .send()
        .await
        .unwrap();
    problem(r, 404, "topic_not_found").await;

    let get = |path: String| c.get(format!("{url}{path}")).send();
    problem(
        get("/v1/topics/nope/partitions/0/records".into())
            .await
            .unwrap(),
        404,
        "topic_not_found",
    )
    .await;
    problem(
        get("/v1/topics/err/partitions/7/records".into())
            .await
            .unwrap(),
        404,
        "partition_not_found",
    )
    .await;
    problem(
        get("/v1/topics/err/partitions/x/records".into())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        get("/v1/topics/err/partitions/-1/records".into())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    let p = problem(
        get("/v1/topics/err/partitions/0/records?offset=5".into())
            .await
            .unwrap(),
        416,
        "offset_out_of_range",
    )
    .await;
    assert_eq!(
        (p["earliest_offset"].as_u64(), p["next_offset"].as_u64()),
        (Some(0), Some(1))
    );
    problem(
        get("/v1/topics/err/partitions/0/records?offset=soon".into())
            .await
            .unwrap(),
        400,
        "invalid_offset",
    )
    .await;
    problem(
        get("/v1/topics/err/partitions/0/records?limit=lots".into())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        get("/v1/topics/err/partitions/0/records?offset=0&timestamp_ms=5".into())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        get("/v1/topics/err/partitions/0/offsets".into())
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        get("/v1/nothing/here".into()).await.unwrap(),
        404,
        "not_found",
    )
    .await;
    problem(
        get("/v1/topics/err/records".into()).await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    let r = c.put(format!("{url}/v1/topics")).send().await.unwrap();
    assert!(r.headers().contains_key("allow"));
    problem(r, 405, "method_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_metrics_health() {
    let gw = gateway().await;
    let url = &gw.url;
    let c = client();
    let (s, doc) = get_json(format!("{url}/v1/openapi.json")).await;
    assert_eq!(s, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/topics", "post"),
        ("/v1/topics", "get"),
        ("/v1/topics/{topic}", "get"),
        ("/v1/topics/{topic}", "patch"),
        ("/v1/topics/{topic}", "delete"),
        ("/v1/topics/{topic}/records", "post"),
        ("/v1/topics/{topic}/partitions/{partition}/records", "get"),
        ("/v1/topics/{topic}/partitions/{partition}/offsets", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} missing");
        if path.starts_with("/v1/topics") {
            let problem = &op["responses"]["503"]["content"]["application/problem+json"];
            assert!(problem.is_object(), "{method} {path} documents 503");
        }
    }
    assert!(paths["/v1/topics/{topic}/records"]["post"]["responses"]["413"].is_object());
    assert!(
        paths["/v1/topics/{topic}/partitions/{partition}/records"]["get"]["responses"]["416"]
            .is_object()
    );
    // Every $ref points at a component that exists.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(s)) => out.push(s.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {r}"
        );
    }

    let r = c.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "ok".to_string())
    );
    let r = c.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c.get(format!("{url}/")).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("/v1/openapi.json"));
    let text = metrics_text(url).await;
    assert!(
        text.contains("# TYPE sluice_http_requests counter"),
        "{text}"
    );
    assert!(
        text.contains(
            "sluice_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"2xx\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("route=\"/v1/openapi.json\""), "{text}");
    metric::<f64>(&text, "sluice_flushes_total");
    metric::<f64>(&text, "sluice_read_records_total");
}

/// The web console: its page and files, with content types, revalidation and a strict CSP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_console_is_served_from_the_binary() {
    let gw = gateway().await;
    let url = &gw.url;
    let c = client();
    let r = c.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let h = r.headers().clone();
    let header = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("content-type").starts_with("text/html"), "{h:?}");
    assert_eq!(header("cache-control"), "no-cache");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(
        header("content-security-policy").contains("script-src 'self'"),
        "{h:?}"
    );
    let etag = header("etag");
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
    let page = r.text().await.unwrap();
    assert!(page.contains("src=\"/console/app.js\""), "{page}");
    assert!(page.contains("/v1/openapi.json"), "{page}");

    // A cached copy is revalidated: 304 with no body; a stale tag gets the page again.
    let r = c
        .get(format!("{url}/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = c
        .get(format!("{url}/"))
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    for (file, kind, needle) in [
        ("app.js", "text/javascript", "import"),
        ("app.css", "text/css", "--accent"),
        ("favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = c.get(format!("{url}/console/{file}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{file}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(kind), "{file}: {ct}");
        assert!(r.text().await.unwrap().contains(needle), "{file}");
    }
    // No file outside the embedded set, and no way out of it.
    for path in [
        "/console/nothing.js",
        "/console/..%2FCargo.toml",
        "/console/",
    ] {
        let r = c.get(format!("{url}{path}")).send().await.unwrap();
        problem(r, 404, "not_found").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_folder_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || store::open(dir.path().to_str().unwrap(), &StoreOptions::default()).unwrap();
    let gw = Gateway::start(open(), GatewayConfig::default()).await;
    create_topic(&gw.url, "disk", 2).await;
    let a = produce(
        &gw.url,
        "disk",
        json!({"records": [{"key": "k", "value": "on disk"}]}),
    )
    .await;
    let p = a["offsets"][0]["partition"].as_u64().unwrap() as u32;
    gw.shutdown().await.unwrap();

    let gw = Gateway::start(open(), GatewayConfig::default()).await;
    let got = read(&gw.url, "disk", p, "offset=earliest").await;
    assert_eq!(values(&got), ["on disk"]);
    let b = produce(
        &gw.url,
        "disk",
        json!({"records": [{"key": "k", "value": "again"}]}),
    )
    .await;
    assert_eq!(b["offsets"][0], json!({"partition": p, "offset": 1}));
    let (_, topics) = get_json(format!("{}/v1/topics", gw.url)).await;
    assert_eq!(topics["topics"][0]["name"], "disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_503_with_retry_after() {
    let faulty = store::Instrumented::new(memory(), 1);
    let gw = Gateway::start(faulty.clone(), GatewayConfig::default()).await;
    let url = &gw.url;
    create_topic(url, "down", 1).await;
    faulty.set_faults(store::FaultConfig {
        error_rate: 1.0,
        ..Default::default()
    });
    let c = client();
    let r = c.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    problem(r, 503, "unavailable").await;
    let r = c
        .post(format!("{url}/v1/topics/down/records"))
        .json(&json!({"records": [{"value": "lost"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    problem(r, 503, "unavailable").await;
    let r = c
        .get(format!("{url}/v1/topics/down/partitions/0/records"))
        .send()
        .await
        .unwrap();
    problem(r, 503, "unavailable").await;

    faulty.set_faults(store::FaultConfig::default());
    assert_eq!(
        c.get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let a = produce(url, "down", json!({"records": [{"value": "back"}]})).await;
    assert_eq!(
        a["offsets"][0]["offset"], 0,
        "the failed request wrote nothing"
    );
}
