//! Transactions: the REST contract and bad input, invisibility of rolled-back and expired
//! records to reads, groups and queues, check-back decided by another gateway, and a commit
//! crashed at every store call of its decide-and-apply (finished once by another process).
//! Every outcome is checked with `check_txns` over the final read-back.

use serde_json::{json, Value};
use sluice_core::clock;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig};
use sluice_core::store::{DynStore, FaultConfig, Instrumented};
use sluice_core::txn::service::{CheckBack, CheckRequest, Transactions, TxnConfig};
use sluice_core::txn::CheckStatus;
use sluice_gateway::GatewayConfig;
use sluice_tests::checker::{check_txns, PartitionRead, TxnSeen};
use sluice_tests::http::{expect_problem, send, Gateway};
use sluice_tests::txn::{check_server, CheckServer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn mem() -> DynStore {
    Arc::new(object_store::memory::InMemory::new())
}

fn fast_cfg(resolver: bool) -> GatewayConfig {
    let mut cfg = GatewayConfig::default();
    cfg.txn.resolver = resolver;
    cfg.txn.tick = Duration::from_millis(20);
    cfg.txn.lease_duration = Duration::from_millis(500);
    cfg.txn.discovery_every = Duration::from_millis(50);
    cfg.txn.core.check_backoff_initial = Duration::from_millis(5);
    cfg.txn.core.check_backoff_max = Duration::from_millis(20);
    cfg
}

async fn create_topic(http: &reqwest::Client, url: &str, name: &str, partitions: u32) {
    let (s, v) = send(
        http.post(format!("{url}/v1/topics"))
            .json(&json!({"name": name, "partitions": partitions})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

async fn begin(http: &reqwest::Client, url: &str, body: Value) -> String {
    let (s, v) = send(http.post(format!("{url}/v1/transactions")).json(&body)).await;
    assert_eq!(s, 201, "{v}");
    assert!(v["expires_at_ms"].as_i64().unwrap() > 0);
    v["transaction_id"].as_str().unwrap().to_string()
}

/// Stage `values` (one record each, keyed by value) in `txn`; records them in `seen`.
async fn stage(
    http: &reqwest::Client,
    url: &str,
    txn: &str,
    topic: &str,
    values: &[String],
    seen: &mut TxnSeen,
) {
    let records: Vec<Value> = values
        .iter()
        .map(|v| json!({"key": v, "value": v}))
        .collect();
    let (s, v) = send(
        http.post(format!("{url}/v1/topics/{topic}/records?transaction={txn}"))
            .json(&json!({ "records": records })),
    )
    .await;
    assert_eq!(
        (s, v["staged"].as_u64()),
        (200, Some(values.len() as u64)),
        "{v}"
    );
    seen.staged.extend(
        values
            .iter()
            .map(|v| (topic.to_string(), v.clone().into_bytes())),
    );
}

async fn read_all(
    http: &reqwest::Client,
    url: &str,
    topics: &[(&str, u32)],
) -> BTreeMap<(String, u32), PartitionRead> {
    let mut out = BTreeMap::new();
    for (t, n) in topics {
        for p in 0..*n {
            let (s, v) = send(http.get(format!(
                "{url}/v1/topics/{t}/partitions/{p}/records?offset=0&limit=10000"
            )))
            .await;
            assert_eq!(s, 200, "{v}");
            let recs = v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["offset"].as_u64().unwrap(),
                        r["value"].as_str().unwrap().as_bytes().to_vec(),
                    )
                })
                .collect();
            out.insert((t.to_string(), p), recs);
        }
    }
    out
}

async fn state(http: &reqwest::Client, url: &str, txn: &str) -> Value {
    let (s, v) = send(http.get(format!("{url}/v1/transactions/{txn}"))).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Wait (bounded) until the transaction is no longer open; its final description.
async fn resolved(http: &reqwest::Client, url: &str, txn: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = state(http, url, txn).await;
        if v["state"] != "open" && v["visible"] != false || v["state"] == "rolled_back" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "transaction {txn} not resolved: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn offsets_of(v: &Value) -> Vec<(String, u32, u64)> {
    v["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["topic"].as_str().unwrap().to_string(),
                o["partition"].as_u64().unwrap() as u32,
                o["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn vals(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rollback_idempotence_and_bad_input_over_http() {
    let gw = Gateway::start(mem(), fast_cfg(true)).await;
    let (url, http) = (gw.url.as_str(), reqwest::Client::new());
    create_topic(&http, url, "a", 3).await;
    create_topic(&http, url, "b", 2).await;

    // Bad input: 4xx problems, nothing begun.
    let tx = |b: Value| http.post(format!("{url}/v1/transactions")).json(&b);
    expect_problem(tx(json!({"timeout_ms": 0})), 400, "invalid_request").await;
    expect_problem(
        tx(json!({"timeout_ms": 86_400_001u64})),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        tx(json!({"check_url": "ftp://x/y"})),
        400,
        "invalid_check_url",
    )
    .await;
    expect_problem(
        tx(json!({"check_url": "not a url"})),
        400,
        "invalid_check_url",
    )
    .await;
    expect_problem(tx(json!({"nope": 1})), 400, "invalid_request").await;
    expect_problem(
        http.post(format!("{url}/v1/transactions"))
            .header("content-type", "application/json")
            .body("{"),
        400,
        "invalid_json",
    )
    .await;
    let unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for id in [unknown, "not-an-id"] {
        expect_problem(
            http.post(format!("{url}/v1/topics/a/records?transaction={id}"))
                .json(&json!({"records": [{"value": "x"}]})),
            404,
            "transaction_not_found",
        )
        .await;
        for op in ["commit", "rollback"] {
            expect_problem(
                http.post(format!("{url}/v1/transactions/{id}/{op}")),
                404,
                "transaction_not_found",
            )
            .await;
        }
        expect_problem(
            http.get(format!("{url}/v1/transactions/{id}")),
            404,
            "transaction_not_found",
        )
        .await;
    }

    // Commit: staged records are invisible until it answers, then all readable, once.
    let (s, v) = send(http.post(format!("{url}/v1/transactions"))).await;
    assert_eq!(s, 201, "an empty body takes the defaults: {v}");
    let c = v["transaction_id"].as_str().unwrap().to_string();
    let mut seen_c = TxnSeen {
        id: c.clone(),
        ..Default::default()
    };
    stage(&http, url, &c, "a", &vals("c-a", 4), &mut seen_c).await;
    stage(&http, url, &c, "b", &vals("c-b", 3), &mut seen_c).await;
    stage(&http, url, &c, "a", &vals("c-a2", 2), &mut seen_c).await;
    expect_problem(
        http.post(format!(
            "{url}/v1/topics/a/records?transaction={c}&ack=none"
        ))
        .json(&json!({"records": [{"value": "x"}]})),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        http.post(format!("{url}/v1/topics/a/records?transaction={c}"))
            .json(&json!({"records": [{"value": "x", "partition": 9}]})),
        404,
        "partition_not_found",
    )
    .await;
    let before = read_all(&http, url, &[("a", 3), ("b", 2)]).await;
    assert!(
        before.values().all(Vec::is_empty),
        "staged records are invisible"
    );
    let v = state(&http, url, &c).await;
    assert_eq!(
        (v["state"].as_str(), v["staged"].as_u64()),
        (Some("open"), Some(9))
    );
    let (s, first) = send(http.post(format!("{url}/v1/transactions/{c}/commit"))).await;
    assert_eq!(s, 200, "{first}");
    seen_c.commit_answer = Some(offsets_of(&first));
    seen_c.decided = Some(true);
    let (s, again) = send(http.post(format!("{url}/v1/transactions/{c}/commit"))).await;
    assert_eq!((s, &again), (200, &first), "commit is idempotent");
    expect_problem(
        http.post(format!("{url}/v1/transactions/{c}/rollback")),
        409,
        "transaction_closed",
    )
    .await;
    expect_problem(
        http.post(format!("{url}/v1/topics/a/records?transaction={c}"))
            .json(&json!({"records": [{"value": "late"}]})),
        409,
        "transaction_closed",
    )
    .await;
    let v = state(&http, url, &c).await;
    assert_eq!(
        (v["state"].as_str(), v["visible"].as_bool()),
        (Some("committed"), Some(true))
    );
    seen_c.final_state = "committed".into();

    // Rollback: never visible; idempotent; commit after it is 409.
    let r = begin(&http, url, json!({"timeout_ms": 60000})).await;
    let mut seen_r = TxnSeen {
        id: r.clone(),
        decided: Some(false),
        ..Default::default()
    };
    stage(&http, url, &r, "a", &vals("r-a", 3), &mut seen_r).await;
    stage(&http, url, &r, "b", &vals("r-b", 3), &mut seen_r).await;
    for _ in 0..2 {
        let (s, _) = send(http.post(format!("{url}/v1/transactions/{r}/rollback"))).await;
        assert_eq!(s, 204);
    }
    expect_problem(
        http.post(format!("{url}/v1/transactions/{r}/commit")),
        409,
        "transaction_closed",
    )
    .await;
    seen_r.final_state = state(&http, url, &r).await["state"]
        .as_str()
        .unwrap()
        .into();

    // A retried staging request (same Idempotency-Key) stages once.
    let k = begin(&http, url, json!({})).await;
    let mut seen_k = TxnSeen {
        id: k.clone(),
        decided: Some(true),
        ..Default::default()
    };
    for _ in 0..3 {
        let (s, v) = send(
            http.post(format!("{url}/v1/topics/b/records?transaction={k}"))
                .header("Idempotency-Key", "once")
                .json(&json!({"records": [{"value": "k-once"}]})),
        )
        .await;
        assert_eq!((s, v["staged"].as_u64()), (200, Some(1)), "{v}");
    }
    seen_k.staged.push(("b".into(), b"k-once".to_vec()));
    let (s, v) = send(http.post(format!("{url}/v1/transactions/{k}/commit"))).await;
    assert_eq!(s, 200, "{v}");
    seen_k.commit_answer = Some(offsets_of(&v));
    seen_k.final_state = "committed".into();

    let read = read_all(&http, url, &[("a", 3), ("b", 2)]).await;
    let v = check_txns(&read, &[seen_c, seen_r, seen_k]);
    assert!(v.is_empty(), "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_and_expired_records_never_reach_reads_groups_or_queues() {
    let gw = Gateway::start(mem(), fast_cfg(true)).await;
    let (url, http) = (gw.url.as_str(), reqwest::Client::new());
    create_topic(&http, url, "t", 2).await;
    let (s, v) = send(
        http.put(format!("{url}/v1/queues/q"))
            .json(&json!({"topic": "t"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = send(
        http.post(format!("{url}/v1/groups/g/members"))
            .json(&json!({"topics": ["t"]})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let member = v["member_id"].as_str().unwrap().to_string();

    let mut seen = Vec::new();
    let r = begin(&http, url, json!({})).await;
    let mut sr = TxnSeen {
        id: r.clone(),
        decided: Some(false),
        ..Default::default()
    };
    stage(&http, url, &r, "t", &vals("rolled-back", 5), &mut sr).await;
    let (s, _) = send(http.post(format!("{url}/v1/transactions/{r}/rollback"))).await;
    assert_eq!(s, 204);
    // Expires without check_url: rolled back by the resolver.
    let e = begin(&http, url, json!({"timeout_ms": 200})).await;
    let mut se = TxnSeen {
        id: e.clone(),
        decided: Some(false),
        ..Default::default()
    };
    stage(&http, url, &e, "t", &vals("expired", 5), &mut se).await;
    let c = begin(&http, url, json!({})).await;
    let mut sc = TxnSeen {
        id: c.clone(),
        decided: Some(true),
        ..Default::default()
    };
    stage(&http, url, &c, "t", &vals("committed", 5), &mut sc).await;
    let ve = resolved(&http, url, &e).await;
    assert_eq!(
        (ve["state"].as_str(), ve["decided_by"].as_str()),
        (Some("rolled_back"), Some("timeout")),
        "{ve}"
    );
    expect_problem(
        http.post(format!("{url}/v1/topics/t/records?transaction={e}"))
            .json(&json!({"records": [{"value": "late"}]})),
        409,
        "transaction_closed",
    )
    .await;
    let (s, v) = send(http.post(format!("{url}/v1/transactions/{c}/commit"))).await;
    assert_eq!(s, 200, "{v}");
    sc.commit_answer = Some(offsets_of(&v));
    for (t, st) in [
        (&mut sr, "rolled_back"),
        (&mut se, "rolled_back"),
        (&mut sc, "committed"),
    ] {
        t.final_state = st.into();
        seen.push(t.clone());
    }

    // The queue and the group deliver exactly the committed records.
    let mut from_queue = Vec::new();
    loop {
        let (s, v) = send(
            http.post(format!("{url}/v1/queues/q/receive"))
                .json(&json!({"max": 100, "wait_ms": 200})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let msgs = v["messages"].as_array().unwrap().clone();
        if msgs.is_empty() {
            break;
        }
        let receipts: Vec<Value> = msgs.iter().map(|m| m["receipt"].clone()).collect();
        from_queue.extend(
            msgs.iter()
                .map(|m| m["value"].as_str().unwrap().to_string()),
        );
        let (s, _) = send(
            http.post(format!("{url}/v1/queues/q/ack"))
                .json(&json!({"receipts": receipts})),
        )
        .await;
        assert_eq!(s, 200);
    }
    let (s, v) = send(http.get(format!(
        "{url}/v1/groups/g/records?member_id={member}&limit=1000&wait_ms=200"
    )))
    .await;
    assert_eq!(s, 200, "{v}");
    let mut from_group: Vec<String> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    from_queue.sort();
    from_group.sort();
    let mut want = vals("committed", 5);
    want.sort();
    assert_eq!(from_queue, want);
    assert_eq!(from_group, want);
    let read = read_all(&http, url, &[("t", 2)]).await;
    let v = check_txns(&read, &seen);
    assert!(v.is_empty(), "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_gateway_resolves_abandoned_transactions_by_check_back() {
    let (backends, _dir) = sluice_tests::backends("txn_check_back");
    for backend in backends {
        let store = backend.client();
        // The producer's gateway takes no part in resolving; the other one does.
        let a = Gateway::start(store.clone(), fast_cfg(false)).await;
        let b = Gateway::start(store.clone(), fast_cfg(true)).await;
        let http = reqwest::Client::new();
        let topic = format!("cb-{}", sluice_tests::now_ms());
        create_topic(&http, &a.url, &topic, 3).await;
        let checks = CheckServer::default();
        let (check_url, server) = check_server(checks.clone()).await;
        let mut seen = Vec::new();
        for (name, answer, decided) in [
            ("commit", "commit", Some(true)),
            ("rollback", "rollback", Some(false)),
            ("error", "error", Some(false)),
            ("unknown", "unknown", Some(false)),
        ] {
            let id = begin(
                &http,
                &a.url,
                json!({"timeout_ms": 300, "check_url": check_url}),
            )
            .await;
            checks.answer(&id, answer);
            let mut s = TxnSeen {
                id: id.clone(),
                decided,
                ..Default::default()
            };
            stage(
                &http,
                &a.url,
                &id,
                &topic,
                &vals(&format!("{}-{name}", backend.name()), 4),
                &mut s,
            )
            .await;
            seen.push(s);
        }
        drop(a); // the producer's gateway goes away before deciding anything
        for s in &mut seen {
            let v = resolved(&http, &b.url, &s.id).await;
            s.final_state = v["state"].as_str().unwrap().to_string();
            let calls = checks.calls(&s.id);
            match checks.answers.lock().unwrap()[&s.id] {
                "commit" | "rollback" => {
                    assert_eq!((v["checks"].as_u64(), calls), (Some(0), 1), "{v}");
                    assert_eq!(v["decided_by"], "check_back", "{v}");
                }
                _ => {
                    assert_eq!((v["checks"].as_u64(), calls), (Some(15), 15), "{v}");
                    assert_eq!(v["decided_by"], "checks", "{v}");
                }
            }
        }
        let read = read_all(&http, &b.url, &[(topic.as_str(), 3)]).await;
        let v = check_txns(&read, &seen);
        assert!(v.is_empty(), "{}: {v:#?}", backend.name());
        server.abort();
    }
}

struct Never;

#[async_trait::async_trait]
impl CheckBack for Never {
    async fn check(&self, _: &str, _: &CheckRequest) -> CheckStatus {
        CheckStatus::Unknown
    }
}

/// A commit crashed at its N-th store call, for every N: whatever the crash left, another
/// process (the client retrying commit, or the resolver) finishes it, and every staged record
/// is readable exactly once, at the offsets the finished commit answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_crashed_at_every_store_call_appears_once() {
    let cfg = TxnConfig {
        apply_retries: 0,
        ..Default::default()
    };
    let mut n = 1;
    loop {
        let raw = mem();
        let setup = Log::new(raw.clone(), clock::system(), LogConfig::default());
        let ta = setup.topics().create("a", 2, None, 0).await.unwrap();
        let tb = setup.topics().create("b", 2, None, 1).await.unwrap();
        let txns = Transactions::new(setup.clone(), cfg.clone());
        let t = txns.begin(None, None).await.unwrap();
        let mut seen = TxnSeen {
            id: t.id.clone(),
            decided: Some(true),
            ..Default::default()
        };
        for (i, topic) in [&ta, &tb, &ta].into_iter().enumerate() {
            let records: Vec<(Option<u32>, Record)> = (0..3)
                .map(|j| {
                    let v = format!("r{i}-{j}");
                    seen.staged
                        .push((topic.name.clone(), v.clone().into_bytes()));
                    (
                        None,
                        Record::new(Some(v.as_bytes()), bytes::Bytes::from(v.clone())),
                    )
                })
                .collect();
            txns.stage(&t.id, topic, records, None).await.unwrap();
        }
        // The crashing process: every store call after its N-th fails.
        let inst = Instrumented::new(raw.clone(), n);
        let crashing_store: DynStore = inst.clone();
        inst.set_faults(FaultConfig {
            crash_after_calls: Some(inst.calls() + n),
            ..Default::default()
        });
        let crashing = Transactions::new(
            Log::new(crashing_store, clock::system(), LogConfig::default()),
            cfg.clone(),
        );
        let crashed = crashing.commit(&t.id).await;
        // Another process takes over.
        let log = Log::new(raw.clone(), clock::system(), LogConfig::default());
        let other = Transactions::new(log.clone(), TxnConfig::default());
        let st = other.describe(&t.id).await.unwrap();
        let answer = if st.is_open() {
            other.commit(&t.id).await.unwrap() // the client's retry
        } else {
            other.resolve_pass(&Never).await.unwrap(); // the resolver finishes it
            other.commit(&t.id).await.unwrap() // and a retry answers the offsets
        };
        seen.commit_answer = Some(answer.clone());
        seen.final_state = "committed".into();
        assert!(!other.describe(&t.id).await.unwrap().is_open());
        let mut read = BTreeMap::new();
        for topic in [&ta, &tb] {
            for p in 0..2 {
                let b = log.read(topic, p, 0, 1000, usize::MAX).await.unwrap();
                read.insert(
                    (topic.name.clone(), p),
                    b.records
                        .iter()
                        .map(|r| (r.offset, r.record.value.to_vec()))
                        .collect(),
                );
            }
        }
        let v = check_txns(&read, &[seen]);
        assert!(v.is_empty(), "crash after call {n}: {v:#?}");
        if let Ok(first) = crashed {
            assert_eq!(
                first, answer,
                "the uncrashed commit answers the same offsets"
            );
            break;
        }
        n += 1;
        assert!(n < 500, "the commit never finished within 500 store calls");
    }
    eprintln!("the commit was crashed at each of its first {n} store calls in turn");
    assert!(
        n > 5,
        "the commit took only {n} store calls: nothing was crashed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_holds_the_unfinished_transactions_oldest_first() {
    // No resolver: nothing decides a transaction behind the test's back.
    let gw = Gateway::start(mem(), fast_cfg(false)).await;
    let (url, http) = (gw.url.as_str(), reqwest::Client::new());
    create_topic(&http, url, "a", 2).await;
    let list = |q: &'static str| {
        let http = http.clone();
        async move { send(http.get(format!("{url}/v1/transactions{q}"))).await }
    };
    let (s, v) = list("").await;
    assert_eq!((s, v), (200, json!({"transactions": []})));

    let mut seen = TxnSeen::default();
    // Ids are ULIDs: ordered by begin time to the millisecond.
    let mut ids = Vec::new();
    for body in [json!({}), json!({"timeout_ms": 600000}), json!({})] {
        ids.push(begin(&http, url, body).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let [first, second, third] = <[String; 3]>::try_from(ids).unwrap();
    stage(&http, url, &second, "a", &vals("s", 3), &mut seen).await;
    let (s, v) = list("").await;
    assert_eq!(s, 200, "{v}");
    let listed: Vec<(&str, &str, u64)> = v["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["transaction_id"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
                t["staged"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (first.as_str(), "open", 0),
            (second.as_str(), "open", 3),
            (third.as_str(), "open", 0)
        ]
    );
    assert_eq!(
        v["transactions"][1],
        state(&http, url, &second).await,
        "each entry is what GET /v1/transactions/{{id}} answers"
    );

    // Committed and rolled back ones are cleaned up and leave the list.
    let (s, v) = send(http.post(format!("{url}/v1/transactions/{second}/commit"))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = send(http.post(format!("{url}/v1/transactions/{first}/rollback"))).await;
    assert_eq!(s, 204, "{v}");
    let (_, v) = list("?limit=5").await;
    assert_eq!(v["transactions"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["transactions"][0]["transaction_id"], third.as_str());
    let (_, v) = list("?limit=1").await;
    assert_eq!(v["transactions"].as_array().unwrap().len(), 1, "{v}");

    // Bad input is a problem, not a clamp.
    for q in ["?limit=0", "?limit=1001", "?limit=x", "?state=open"] {
        let (s, v) = list(q).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert_eq!(v["code"], "invalid_request", "{q}: {v}");
    }
}
