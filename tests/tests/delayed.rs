//! Delayed records, in process and on a manual clock (no sleeps decide anything): a real gateway
//! on `127.0.0.1:0` and a mover driven tick by tick over one store. Never delivered early,
//! delivered once due, listed, cancelled (204, then 404), bad input 400 with nothing written,
//! groups and queues blind to them until due; and a mover crashed at every store call of a
//! round, then replaced, checked by `checker::delayed` (no loss, no duplicate, never early,
//! cancels win) and `checker::check` (dense, unique offsets).

use serde_json::{json, Value};
use sluice_core::clock::{Clock, ManualClock};
use sluice_core::delayed::mover::{Mover, MoverConfig};
use sluice_core::delayed::Delayed;
use sluice_core::format::delayed::DelayedItem;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig};
use sluice_core::store::{self, DynStore, StoreOptions};
use sluice_core::store::{FaultConfig, Instrumented};
use sluice_gateway::GatewayConfig;
use sluice_tests::checker::delayed::{check_delayed, DelayedAck};
use sluice_tests::checker::{check, History};
use sluice_tests::http::Gateway;
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_800_000_000_000;

fn memory() -> DynStore {
    store::open("memory://", &StoreOptions::default()).unwrap()
}

fn mover(log: &Arc<Log>) -> Mover {
    let delayed = Delayed::new(log.store().clone(), log.clock().clone(), log.writer());
    let cfg = MoverConfig {
        lease_duration: Duration::from_millis(50),
        ..Default::default()
    };
    Mover::new(log.clone(), delayed, cfg)
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(method, url);
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
async fn get(url: &str, path: &str) -> (u16, Value) {
    call(reqwest::Method::GET, format!("{url}{path}"), None).await
}
/// Receive from queue `q` until `n` messages came (each receive long-polls up to 2 s): a queue
/// sees records appended by another writer (the mover) within its state staleness, not at once.
async fn receive_n(url: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..10 {
        let (s, q) = post(
            url,
            "/v1/queues/q/receive",
            json!({"max": 100, "wait_ms": 2000}),
        )
        .await;
        assert_eq!(s, 200, "{q}");
        got.extend(q["messages"].as_array().unwrap().iter().cloned());
        if got.len() >= n {
            break;
        }
    }
    got
}
async fn delete(url: &str, path: &str) -> (u16, Value) {
    call(reqwest::Method::DELETE, format!("{url}{path}"), None).await
}

/// Every record of the topic through REST: (value, append timestamp).
async fn topic_records(url: &str, topic: &str, partitions: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let (s, v) = get(
            url,
            &format!("/v1/topics/{topic}/partitions/{p}/records?offset=earliest&limit=1000"),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        for r in v["records"].as_array().unwrap() {
            out.push((
                r["value"].as_str().unwrap().to_string(),
                r["timestamp_ms"].as_i64().unwrap(),
            ));
        }
    }
    out.sort();
    out
}

fn values(records: &[(String, i64)]) -> Vec<&str> {
    let mut v: Vec<&str> = records.iter().map(|(v, _)| v.as_str()).collect();
    v.sort();
    v
}

async fn delayed_objects(store: &DynStore) -> usize {
    use futures::TryStreamExt;
    let p = object_store::path::Path::from("delayed/b");
    let all: Vec<_> = store.list(Some(&p)).try_collect().await.unwrap();
    all.len()
}

#[tokio::test]
async fn delayed_records_over_http() {
    let store = memory();
    let clock = ManualClock::new(T0);
    let log = Log::new(store.clone(), clock.clone(), LogConfig::default());
    let gateway = Gateway::serve(log.clone(), GatewayConfig::default()).await;
    let url = gateway.url.clone();
    let mut mover = mover(&log);
    let (s, v) = post(&url, "/v1/topics", json!({"name": "t", "partitions": 2})).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call(
        reqwest::Method::PUT,
        format!("{url}/v1/queues/q"),
        Some(json!({"topic": "t"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, member) = post(
        &url,
        "/v1/groups/g/members",
        json!({"topics": ["t"], "session_timeout_ms": 3_600_000}),
    )
    .await;
    assert_eq!(s, 201, "{member}");
    let member = member["member_id"].as_str().unwrap().to_string();

    // Bad input: 400, and nothing of the request is written (the valid record neither).
    for bad in [
        json!({"value": "x", "delay_ms": -1}),
        json!({"value": "x", "delay_ms": 365i64 * 86_400_000 + 1}),
        json!({"value": "x", "deliver_at_ms": T0 + 365 * 86_400_000 + 1}),
        json!({"value": "x", "deliver_at_ms": -5}),
        json!({"value": "x", "delay_ms": 5, "deliver_at_ms": T0}),
    ] {
        let (s, v) = post(
            &url,
            "/v1/topics/t/records",
            json!({"records": [{"value": "valid"}, {"value": "valid-later", "delay_ms": 10}, bad]}),
        )
        .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["code"], "invalid_request", "{v}");
    }
    assert!(topic_records(&url, "t", 2).await.is_empty());
    assert_eq!(delayed_objects(&store).await, 0);

    // One request mixing a record for now, two delayed ones and one in the past.
    let (s, a) = post(
        &url,
        "/v1/topics/t/records",
        json!({"records": [
            {"value": "now", "partition": 0},
            {"value": "d60", "key": "k", "headers": {"h": "v"}, "delay_ms": 60_000},
            {"value": "d30", "deliver_at_ms": T0 + 30_000, "partition": 1},
            {"value": "past", "deliver_at_ms": T0 - 5_000},
        ]}),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    let o = a["offsets"].as_array().unwrap();
    assert_eq!(o.len(), 4);
    assert_eq!(o[0]["partition"], 0);
    assert_eq!(o[0]["offset"], 0);
    assert_eq!(o[1]["deliver_at_ms"], T0 + 60_000);
    assert_eq!(o[2]["deliver_at_ms"], T0 + 30_000);
    assert_eq!(o[3]["deliver_at_ms"], T0 - 5_000);
    assert!(o[1].get("offset").is_none());
    let id = |i: usize| o[i]["delayed_id"].as_str().unwrap().to_string();
    let (d60, d30, past) = (id(1), id(2), id(3));

    // Listed, soonest first, with key and headers.
    let (s, l) = get(&url, "/v1/topics/t/delayed?limit=10").await;
    assert_eq!(s, 200, "{l}");
    let l = l["delayed"].as_array().unwrap().clone();
    let ids: Vec<&str> = l
        .iter()
        .map(|d| d["delayed_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![past.as_str(), d30.as_str(), d60.as_str()]);
    assert_eq!(l[2]["key"], "k");
    assert_eq!(l[2]["headers"]["h"], "v");
    let (s, l) = get(&url, "/v1/topics/t/delayed?limit=1").await;
    assert_eq!((s, l["delayed"].as_array().unwrap().len()), (200, 1));
    for bad in ["limit=0", "limit=1001", "limit=x", "other=1"] {
        let (s, v) = get(&url, &format!("/v1/topics/t/delayed?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, v) = get(&url, "/v1/topics/nope/delayed").await;
    assert_eq!((s, v["code"].as_str()), (404, Some("topic_not_found")));

    // Before anything is due, only "now" is visible: reads, queue, group.
    assert_eq!(values(&topic_records(&url, "t", 2).await), vec!["now"]);
    // The first tick delivers the past one at once, nothing else.
    let r = mover.tick().await.unwrap();
    assert_eq!(r.records_delivered, 1, "{r:?}");
    assert_eq!(
        values(&topic_records(&url, "t", 2).await),
        vec!["now", "past"]
    );
    let q = receive_n(&url, 2).await;
    let receipts: Vec<Value> = q.iter().map(|m| m["receipt"].clone()).collect();
    let (s, a) = post(&url, "/v1/queues/q/ack", json!({ "receipts": receipts })).await;
    assert_eq!((s, a["acked"].as_u64()), (200, Some(2)), "{a}");
    let mut got: Vec<&str> = q.iter().map(|m| m["value"].as_str().unwrap()).collect();
    got.sort();
    assert_eq!(got, vec!["now", "past"]);
    let (s, g) = get(
        &url,
        &format!("/v1/groups/g/records?member_id={member}&limit=100"),
    )
    .await;
    assert_eq!(s, 200, "{g}");
    assert_eq!(g["records"].as_array().unwrap().len(), 2, "{g}");

    // One millisecond early: not delivered.
    clock.set(T0 + 29_999);
    mover.tick().await.unwrap();
    assert_eq!(
        values(&topic_records(&url, "t", 2).await),
        vec!["now", "past"]
    );

    // Cancel d60: 204, then 404; unknown and malformed ids 404 too.
    let (s, v) = delete(&url, &format!("/v1/topics/t/delayed/{d60}")).await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = delete(&url, &format!("/v1/topics/t/delayed/{d60}")).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("delayed_not_found")));
    let unknown = format!("{}-01ARZ3NDEKTSV4RRFFQ69G5FAV-0", T0 + 60_000);
    for bad in [unknown.as_str(), "garbage", "1-2-3"] {
        let (s, v) = delete(&url, &format!("/v1/topics/t/delayed/{bad}")).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (404, Some("delayed_not_found")),
            "{bad}"
        );
    }
    // An id of topic t under another topic is unknown there.
    post(&url, "/v1/topics", json!({"name": "u", "partitions": 1})).await;
    let (s, _) = delete(&url, &format!("/v1/topics/u/delayed/{d30}")).await;
    assert_eq!(s, 404);

    // Due: delivered, appended at or after its time, to the partition it asked for.
    clock.set(T0 + 30_000);
    let r = mover.tick().await.unwrap();
    assert_eq!(r.records_delivered, 1, "{r:?}");
    let (s, v) = get(&url, "/v1/topics/t/partitions/1/records?offset=earliest").await;
    assert_eq!(s, 200);
    let d = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["value"] == "d30")
        .cloned();
    let d = d.expect("d30 in partition 1");
    assert!(d["timestamp_ms"].as_i64().unwrap() >= T0 + 30_000, "{d}");
    let q = receive_n(&url, 1).await;
    let got: Vec<&str> = q.iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(got, vec!["d30"]);
    // Delivered: no longer cancellable.
    let (s, v) = delete(&url, &format!("/v1/topics/t/delayed/{d30}")).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("delayed_not_found")));

    // The cancelled one never comes; the list is empty and the objects are gone.
    clock.set(T0 + 120_000);
    mover.tick().await.unwrap();
    assert_eq!(
        values(&topic_records(&url, "t", 2).await),
        vec!["d30", "now", "past"]
    );
    let (s, l) = get(&url, "/v1/topics/t/delayed").await;
    assert_eq!((s, l["delayed"].as_array().unwrap().len()), (200, 0));
    assert_eq!(delayed_objects(&store).await, 0);

    // NDJSON works too; ack=none answers 202 after the delayed object is written.
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/topics/t/records?ack=none"))
        .header("content-type", "application/x-ndjson")
        .body("{\"value\":\"nd\",\"delay_ms\":1000}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(delayed_objects(&store).await, 1);
}

/// POST `body` to topic t with `Idempotency-Key: key`.
async fn post_keyed(url: &str, key: &str, body: &Value) -> (u16, Value) {
    sluice_tests::http::send(
        reqwest::Client::new()
            .post(format!("{url}/v1/topics/t/records"))
            .header("Idempotency-Key", key)
            .json(body),
    )
    .await
}

async fn markers(store: &DynStore) -> usize {
    use futures::TryStreamExt;
    let p = object_store::path::Path::from(sluice_core::delayed::MARKERS);
    let all: Vec<_> = store.list(Some(&p)).try_collect().await.unwrap();
    all.len()
}

/// Delayed records with an `Idempotency-Key`: a retry (later, with `delay_ms` counted again, on
/// another gateway, after the first try's object PUTs failed, after delivery) gets the first
/// answer and nothing is delivered twice; other records under the key are 422; past the window
/// the key is new; old markers are collected.
#[tokio::test]
async fn idempotent_delayed_records_over_http() {
    let inner = memory();
    let faulty = Instrumented::new(inner.clone(), 7);
    let store: DynStore = faulty.clone();
    let clock = ManualClock::new(T0);
    let log = Log::new(store.clone(), clock.clone(), LogConfig::default());
    let gateway = Gateway::serve(log.clone(), GatewayConfig::default()).await;
    let url = gateway.url.clone();
    // A second gateway on the same bucket: a retry may reach any.
    let log2 = Log::new(store.clone(), clock.clone(), LogConfig::default());
    let gateway2 = Gateway::serve(log2, GatewayConfig::default()).await;
    let mut mover = mover(&log);
    let (s, v) = post(&url, "/v1/topics", json!({"name": "t", "partitions": 2})).await;
    assert_eq!(s, 201, "{v}");
    let body = json!({"records": [
        {"value": "now", "partition": 0},
        {"value": "a", "delay_ms": 60_000},
        {"value": "b", "delay_ms": 30_000, "partition": 1},
    ]});

    // The first try's delayed-object PUTs fail (after its marker was written): 503, retryable.
    faulty.set_faults(FaultConfig {
        error_rate: 1.0,
        only_prefix: Some("delayed/b/".into()),
        ..Default::default()
    });
    let (s, v) = post_keyed(&url, "k1", &body).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(markers(&store).await, 1);
    assert_eq!(delayed_objects(&store).await, 0);
    faulty.set_faults(FaultConfig::default());

    // The retry, 5 s later: its objects are written under the marker's names and times.
    clock.set(T0 + 5_000);
    let (s, first) = post_keyed(&url, "k1", &body).await;
    assert_eq!(s, 200, "{first}");
    let o = first["offsets"].as_array().unwrap();
    assert_eq!(o[0]["offset"], 0);
    assert_eq!(o[1]["deliver_at_ms"], T0 + 60_000, "the first try's time");
    assert_eq!(o[2]["deliver_at_ms"], T0 + 30_000);
    assert_eq!(delayed_objects(&store).await, 2);

    // Retries on either gateway: the same answer, flagged duplicate, nothing written.
    for u in [&url, &gateway2.url] {
        clock.set(clock.now_ms() + 1_000);
        let (s, again) = post_keyed(u, "k1", &body).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["offsets"], first["offsets"], "{again}");
        assert_eq!(again["duplicate"], true, "{again}");
    }
    assert_eq!(delayed_objects(&store).await, 2);
    assert_eq!(markers(&store).await, 1);
    // Other records under the key: 422, nothing written.
    for other in [
        json!({"records": [{"value": "now", "partition": 0}, {"value": "a", "delay_ms": 60_001}, {"value": "b", "delay_ms": 30_000, "partition": 1}]}),
        json!({"records": [{"value": "now", "partition": 0}, {"value": "A", "delay_ms": 60_000}, {"value": "b", "delay_ms": 30_000, "partition": 1}]}),
        json!({"records": [{"value": "a", "delay_ms": 60_000}]}),
    ] {
        let (s, v) = post_keyed(&url, "k1", &other).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (422, Some("idempotency_key_reused")),
            "{v}"
        );
    }
    assert_eq!(delayed_objects(&store).await, 2);
    assert_eq!(values(&topic_records(&url, "t", 2).await), vec!["now"]);

    // Delivered once due.
    clock.set(T0 + 60_000);
    let r = mover.tick().await.unwrap();
    assert_eq!(r.records_delivered, 2, "{r:?}");
    assert_eq!(delayed_objects(&store).await, 0);
    // A retry after delivery: the same answer, and the delivered objects (the mover's done
    // set has them) are not written again.
    clock.set(T0 + 9 * 60_000);
    let (s, again) = post_keyed(&url, "k1", &body).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["offsets"], first["offsets"]);
    assert_eq!(delayed_objects(&store).await, 0);
    let r = mover.tick().await.unwrap();
    assert_eq!(r.records_delivered, 0, "{r:?}");
    assert_eq!(delayed_objects(&store).await, 0);
    assert_eq!(
        values(&topic_records(&url, "t", 2).await),
        vec!["a", "b", "now"]
    );

    // Past the window the key names a new request.
    clock.set(T0 + 5_000 + 11 * 60_000);
    let later = json!({"records": [{"value": "a", "delay_ms": 60_000}]});
    let (s, new) = post_keyed(&url, "k1", &later).await;
    assert_eq!(s, 200, "{new}");
    assert_eq!(new["duplicate"], false);
    assert_ne!(
        new["offsets"][0]["delayed_id"],
        first["offsets"][1]["delayed_id"]
    );
    assert_eq!(new["offsets"][0]["deliver_at_ms"], T0 + 5_000 + 12 * 60_000);
    assert_eq!(markers(&store).await, 1);
    assert_eq!(delayed_objects(&store).await, 1);

    // A Producer-Id with delayed records stays refused (400, nothing written).
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/topics/t/records"))
        .header("Producer-Id", "1")
        .header("Producer-Epoch", "0")
        .header("Producer-Seq", "0")
        .json(&json!({"records": [{"value": "x", "delay_ms": 10}]}))
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 400 | 404), "{}", r.status());
}

/// Markers past the window (and its 5-minute margin) are deleted, younger ones kept: the
/// store's own modification times, read with a clock at the real time.
#[tokio::test]
async fn old_idempotency_markers_are_collected() {
    let store = memory();
    let now = sluice_core::clock::system().now_ms();
    let clock = ManualClock::new(now);
    let log = Log::new(store.clone(), clock.clone(), LogConfig::default());
    log.topics().create("t", 1, None, 0).await.unwrap();
    let topic = log.topics().get("t").await.unwrap();
    let delayed = Delayed::new(store.clone(), clock.clone(), log.writer());
    let item = DelayedItem {
        deliver_at_ms: now + 60_000,
        partition: None,
        record: Record::new(None, "x"),
    };
    let idem = sluice_core::delayed::Idempotent {
        key: b"k",
        fingerprint: [1; 32],
    };
    delayed.write(&topic, vec![item], Some(idem)).await.unwrap();
    assert_eq!(markers(&store).await, 1);
    clock.set(now + 14 * 60_000);
    assert_eq!(delayed.collect_markers().await.unwrap(), 0);
    assert_eq!(markers(&store).await, 1);
    clock.set(now + 15 * 60_000 + 1_000);
    assert_eq!(delayed.collect_markers().await.unwrap(), 1);
    assert_eq!(markers(&store).await, 0);
}

/// A mover crashed at every store call of its round, then replaced by another (new process:
/// new log, new state-log instance): every record is delivered once, never early, cancels win.
#[tokio::test]
async fn mover_crashing_at_every_store_call_never_loses_or_duplicates() {
    const N: usize = 12;
    let setup = |store: DynStore, clock: Arc<ManualClock>| async move {
        let log = Log::new(store.clone(), clock.clone(), LogConfig::default());
        log.topics().create("t", 3, None, 0).await.unwrap();
        let delayed = Delayed::new(store, clock.clone(), log.writer());
        let topic = log.topics().get("t").await.unwrap();
        let mut acked = Vec::new();
        // Three requests, each spread over several slots; some keyed, some with a partition.
        for req in 0..3 {
            let items: Vec<DelayedItem> = (0..N / 3)
                .map(|i| DelayedItem {
                    deliver_at_ms: T0 + 1_000 + (i as i64 % 3) * 150 + req * 10,
                    partition: (i % 2 == 0).then_some((i % 3) as u32),
                    record: Record::new(
                        (i % 3 == 0).then_some(b"key".as_slice()),
                        format!("r{req}-{i}"),
                    ),
                })
                .collect();
            let times: Vec<i64> = items.iter().map(|i| i.deliver_at_ms).collect();
            let values: Vec<Vec<u8>> = items.iter().map(|i| i.record.value.to_vec()).collect();
            let ids = delayed.write(&topic, items, None).await.unwrap().ids;
            for ((id, t), v) in ids.into_iter().zip(times).zip(values) {
                acked.push((
                    id,
                    DelayedAck {
                        value: v,
                        deliver_at_ms: t,
                        cancelled: false,
                    },
                ));
            }
        }
        // Cancel two before anything is due.
        for a in acked.iter_mut().take(5).skip(3) {
            delayed.cancel(&topic, &a.0).await.unwrap();
            a.1.cancelled = true;
        }
        (log, acked)
    };
    // How many store calls one mover round makes.
    let calls = {
        let store = memory();
        let clock = ManualClock::new(T0);
        let (_, _) = setup(store.clone(), clock.clone()).await;
        clock.set(T0 + 2_000);
        let counted = Instrumented::new(store, 0);
        let log = Log::new(counted.clone(), clock.clone(), LogConfig::default());
        let r = mover(&log).tick().await.unwrap();
        assert_eq!(r.records_delivered as usize, N - 2, "{r:?}");
        counted.calls()
    };
    assert!(calls > 10, "a round makes {calls} calls");
    for crash_after in 0..calls + 2 {
        let store = memory();
        let clock = ManualClock::new(T0);
        let (_, acked) = setup(store.clone(), clock.clone()).await;
        // Early: a tick before anything is due delivers nothing.
        let log = Log::new(store.clone(), clock.clone(), LogConfig::default());
        clock.set(T0 + 999);
        assert_eq!(mover(&log).tick().await.unwrap().records_delivered, 0);
        clock.set(T0 + 2_000);
        let faulty = Instrumented::new(store.clone(), crash_after);
        faulty.set_faults(FaultConfig {
            crash_after_calls: Some(crash_after),
            ..Default::default()
        });
        let crashing = Log::new(faulty.clone(), clock.clone(), LogConfig::default());
        let _ = mover(&crashing).tick().await;
        // The successor: ticks until nothing is left (bounded), taking over the lease.
        let next_log = Log::new(store.clone(), clock.clone(), LogConfig::default());
        let mut next = mover(&next_log);
        let delayed = Delayed::new(store.clone(), clock.clone(), next_log.writer());
        for round in 0.. {
            let r = next.tick().await;
            assert!(
                round < 400,
                "crash after {crash_after}: the successor never finished: {r:?}"
            );
            let state = delayed.state().await.unwrap();
            state.sync().await.unwrap();
            if delayed_objects(&store).await == 0 && state.view().state.taken.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Read everything back.
        let topic = next_log.topics().get("t").await.unwrap();
        let mut history = History::default();
        let mut delivered = Vec::new();
        for p in 0..topic.partitions {
            let b = next_log.read(&topic, p, 0, 10_000, 64 << 20).await.unwrap();
            let read = history.read.entry(("t".into(), p)).or_default();
            for r in b.records {
                read.push((r.offset, r.record.value.to_vec()));
                delivered.push((r.record.value.to_vec(), r.append_ts));
            }
        }
        let acks: Vec<DelayedAck> = acked.into_iter().map(|(_, a)| a).collect();
        let mut v = check(&history);
        v.extend(check_delayed(&acks, &delivered));
        assert!(v.is_empty(), "crash after {crash_after} calls: {v:#?}");
        assert_eq!(delivered.len(), N - 2);
    }
}

/// More objects due than one round takes (`max_objects_per_round`), spread over more seconds
/// than the per-second window looks back: every one is delivered by ticks alone (no sweep runs
/// here), also by a mover restarted mid-way, which starts listing at the state's cursor.
/// (Before the fix, the objects a capped round left behind in seconds the window had moved
/// past waited for the next sweep, 2,000 per 10 s, and the cursor passed them: after a restart
/// and past the sweeps' 10 minutes they were never delivered.)
#[tokio::test]
async fn a_backlog_over_the_round_cap_is_drained_by_ticks_and_across_a_restart() {
    const SECONDS: i64 = 8;
    const PER_SECOND: i64 = 5;
    let store = memory();
    let clock = ManualClock::new(T0);
    let log = Log::new(store.clone(), clock.clone(), LogConfig::default());
    log.topics().create("t", 1, None, 0).await.unwrap();
    let delayed = Delayed::new(store.clone(), clock.clone(), log.writer());
    let topic = log.topics().get("t").await.unwrap();
    let mut acked = Vec::new();
    for s in 0..SECONDS {
        // One request per second, one object per 100 ms slot.
        let items: Vec<DelayedItem> = (0..PER_SECOND)
            .map(|j| DelayedItem {
                deliver_at_ms: T0 + 1_000 + s * 1_000 + j * 100,
                partition: None,
                record: Record::new(None, format!("s{s}-{j}")),
            })
            .collect();
        for it in &items {
            acked.push(DelayedAck {
                value: it.record.value.to_vec(),
                deliver_at_ms: it.deliver_at_ms,
                cancelled: false,
            });
        }
        delayed.write(&topic, items, None).await.unwrap();
    }
    assert_eq!(
        delayed_objects(&store).await,
        (SECONDS * PER_SECOND) as usize
    );
    let capped = |log: &Arc<Log>| {
        let delayed = Delayed::new(log.store().clone(), log.clock().clone(), log.writer());
        let cfg = MoverConfig {
            lease_duration: Duration::from_millis(50),
            max_objects_per_round: 3,
            // No sweep in this test: the ticks alone must find everything.
            sweep_every: Duration::from_secs(3600),
            recent_every: Duration::from_secs(3600),
            ..Default::default()
        };
        Mover::new(log.clone(), delayed, cfg)
    };
    let mut now = T0 + 1_000 + SECONDS * 1_000 + 5_000;
    let mut m = capped(&log);
    let mut ticks = 0;
    while delayed_objects(&store).await > 0 {
        ticks += 1;
        assert!(ticks < 60, "objects left after {ticks} ticks");
        if ticks == 4 {
            // Restart: a new mover (its lease taken over) starts at the state's cursor.
            now += 1_000;
            clock.set(now);
            tokio::time::sleep(Duration::from_millis(60)).await;
            m = capped(&log);
        }
        // Each tick in a new second: the per-second window moves past the backlog.
        now += 1_000;
        clock.set(now);
        let r = m.tick().await.unwrap();
        if r.waiting {
            // The restarted mover waits out the lease (50 ms, on the real clock).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let b = log.read(&topic, 0, 0, 10_000, 64 << 20).await.unwrap();
    let mut history = History::default();
    let read = history.read.entry(("t".into(), 0)).or_default();
    let mut delivered = Vec::new();
    for r in b.records {
        read.push((r.offset, r.record.value.to_vec()));
        delivered.push((r.record.value.to_vec(), r.append_ts));
    }
    let mut v = check(&history);
    v.extend(check_delayed(&acked, &delivered));
    assert!(v.is_empty(), "{v:#?}");
    assert_eq!(delivered.len(), (SECONDS * PER_SECOND) as usize);
}
