//! kill -9 of real gateway processes in the middle of transactions. Two gateways on one bucket
//! (a local folder, then LocalStack when `SLUICE_TEST_S3_ENDPOINT` is set) and a check server in
//! the test. Each round begins transactions through gateway A with a `check_url`, stages records
//! across two topics, then:
//! - one transaction's commit is sent to A and A is SIGKILLed a few milliseconds later (the
//!   process dies before, during or after the decision, or after answering);
//! - the others are never committed: A dies between staging and commit, so the other gateway
//!   (the resolver, after the lease hand-over if A held it) checks them back; the check server
//!   answers what the producer's local transaction decided (commit or rollback).
//!
//! In odd rounds gateway B (usually the resolver) is SIGKILLed too, so the restarted A takes
//! the resolver lease over. At the end every transaction must be resolved as decided, and
//! `check_txns` checks the final read-back: committed records exactly once at the offsets any
//! commit answer gave, rolled-back ones nowhere, offsets dense.

mod common;

use common::{free_port, read_partition, Proc};
use serde_json::{json, Value};
use sluice_tests::checker::{check_txns, TxnSeen};
use sluice_tests::txn::{check_server, CheckServer};
use sluice_tests::{s3_backend, Backend, Rng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TOPICS: [(&str, u32); 2] = [("orders", 3), ("payments", 2)];
const ROUNDS: usize = 6;
const PER_ROUND: usize = 3;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

const FLAGS: [&str; 8] = [
    "--txn-tick-ms",
    "50",
    "--txn-check-backoff-ms",
    "20",
    "--txn-resolver-lease-ms",
    "1000",
    "--txn-discovery-ms",
    "200",
];

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    match http.post(url).json(&body).send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn state(http: &reqwest::Client, urls: &[String], id: &str) -> Option<Value> {
    for u in urls {
        if let Ok(r) = http.get(format!("{u}/v1/transactions/{id}")).send().await {
            if r.status().is_success() {
                return r.json().await.ok();
            }
        }
    }
    None
}

async fn run(backend: Backend) {
    let http = client();
    let (pa, pb) = (free_port(), free_port());
    let mut a = Proc::gateway_with(&backend, pa, &FLAGS);
    let mut b = Proc::gateway_with(&backend, pb, &FLAGS);
    a.wait_healthy().await;
    b.wait_healthy().await;
    let urls = [a.url(), b.url()];
    for (t, n) in TOPICS {
        let (s, v) = post(
            &http,
            format!("{}/v1/topics", urls[1]),
            json!({"name": t, "partitions": n}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let checks = CheckServer::default();
    let (check_url, server) = check_server(checks.clone()).await;
    let mut rng = Rng::new(sluice_tests::now_ms() as u64);
    let mut seen: Vec<TxnSeen> = Vec::new();
    for round in 0..ROUNDS {
        let mut ids = Vec::new();
        for i in 0..PER_ROUND {
            let (s, v) = post(
                &http,
                format!("{}/v1/transactions", urls[0]),
                json!({"timeout_ms": 3000, "check_url": check_url}),
            )
            .await;
            assert_eq!(s, 201, "{v}");
            let id = v["transaction_id"].as_str().unwrap().to_string();
            // What the producer's local transaction decided (the one committed by the client
            // is a commit; the check server answers the same).
            let commit = i == 0 || (round + i) % 2 == 0;
            checks.answer(&id, if commit { "commit" } else { "rollback" });
            let mut t = TxnSeen {
                id: id.clone(),
                decided: Some(commit),
                ..Default::default()
            };
            for (r, (topic, _)) in [TOPICS[0], TOPICS[1], TOPICS[0]].into_iter().enumerate() {
                let values: Vec<String> = (0..4)
                    .map(|j| format!("{}-{round}-{i}-{r}-{j}", backend.name()))
                    .collect();
                let records: Vec<Value> = values
                    .iter()
                    .map(|v| json!({"key": v, "value": v}))
                    .collect();
                let (s, v) = post(
                    &http,
                    format!("{}/v1/topics/{topic}/records?transaction={id}", urls[0]),
                    json!({ "records": records }),
                )
                .await;
                assert_eq!((s, v["staged"].as_u64()), (200, Some(4)), "{v}");
                t.staged.extend(
                    values
                        .into_iter()
                        .map(|v| (topic.to_string(), v.into_bytes())),
                );
            }
            ids.push(id);
            seen.push(t);
        }
        // Commit the first through A, and SIGKILL A while that commit is in flight.
        let commit = {
            let http = http.clone();
            let url = format!("{}/v1/transactions/{}/commit", urls[0], ids[0]);
            tokio::spawn(async move { post(&http, url, json!({})).await })
        };
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
        a.kill();
        let (s, v) = commit.await.expect("commit task");
        let idx = seen.len() - PER_ROUND;
        if s == 200 {
            seen[idx].commit_answer = Some(
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
                    .collect(),
            );
        }
        if round % 2 == 1 {
            b.kill(); // the resolver too: the restarted A takes its lease over
            a.start();
            a.wait_healthy().await;
            tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
            b.start();
            b.wait_healthy().await;
        } else {
            a.start();
            a.wait_healthy().await;
        }
    }
    // Every transaction resolves: the client's commit finished, or check-back decided.
    let deadline = Instant::now() + Duration::from_secs(120);
    for t in &mut seen {
        loop {
            let v = state(&http, &urls, &t.id).await.unwrap_or(Value::Null);
            let done =
                v["state"] == "rolled_back" || v["state"] == "committed" && v["visible"] == true;
            if done {
                t.final_state = v["state"].as_str().unwrap().to_string();
                break;
            }
            assert!(Instant::now() < deadline, "{} not resolved: {v}", t.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut read = BTreeMap::new();
    for (t, n) in TOPICS {
        for p in 0..n {
            read.insert(
                (t.to_string(), p),
                read_partition(&http, &urls[1], t, p).await,
            );
        }
    }
    let violations = check_txns(&read, &seen);
    let committed = seen.iter().filter(|t| t.final_state == "committed").count();
    let answered = seen.iter().filter(|t| t.commit_answer.is_some()).count();
    eprintln!(
        "{}: {} transactions, {committed} committed ({answered} commits answered before the kill), \
         {} rolled back; {} check-backs",
        backend.name(),
        seen.len(),
        seen.len() - committed,
        checks.calls.lock().unwrap().values().sum::<u32>()
    );
    assert!(violations.is_empty(), "{}: {violations:#?}", backend.name());
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_killed_mid_transaction_resolve_by_check_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(Backend::Local(dir.path().join("bucket"))).await;
    if let Some(b) = s3_backend("txn-chaos") {
        run(b).await;
    }
}
