//! Queue mode under process failures: 3 real `sluice gateway` processes on one bucket, 6
//! receivers spread over them; mid-run two receivers die holding leases and one gateway is
//! SIGKILLed. The queue checker (`sluice_tests::checker::queue`) then proves from what the
//! receivers observed and the final state: every record leased at least once, never to two
//! receivers at once, acked exactly once; poison records in the dead-letter topic after exactly
//! `max_deliveries` deliveries with their reason. Runs on a local folder and (when configured,
//! always in CI) on LocalStack.

mod common;

use common::{free_port, Proc};
use serde_json::{json, Value};
use sluice_tests::checker::queue::{check_queue, DeadLetter, FinalRecord, LeaseObs, QueueHistory};
use sluice_tests::{now_ms, s3_backend, Backend};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const VT_MS: i64 = 1500;
const MAX_DELIVERIES: u32 = 3;
const PARTITIONS: u32 = 3;
const PER_PARTITION: u64 = 500;
/// Simulated work per batch, so that the failures land mid-run with leases held.
const WORK: Duration = Duration::from_millis(30);

/// POST or GET through the first gateway (from `start`, in turn) that answers; `None` body is
/// a GET. Returns the answer and when the successful attempt was sent and answered.
async fn call_any(
    client: &reqwest::Client,
    urls: &[String],
    start: usize,
    path: &str,
    body: Option<&Value>,
) -> (Value, i64, i64) {
    for attempt in 0..200 {
        let url = &urls[(start + attempt) % urls.len()];
        let sent = now_ms();
        let req = match body {
            Some(b) => client.post(format!("{url}{path}")).json(b),
            None => client.get(format!("{url}{path}")),
        };
        match req.timeout(Duration::from_secs(10)).send().await {
            Ok(r) if r.status().is_success() => {
                if let Ok(v) = r.json::<Value>().await {
                    return (v, sent, now_ms());
                }
            }
            Ok(r) if r.status().is_server_error() => {}
            Ok(r) => panic!(
                "{path}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path}: no gateway answered")
}

async fn receiver(
    id: u32,
    urls: Arc<Vec<String>>,
    leases: Arc<Mutex<Vec<LeaseObs>>>,
    done: Arc<AtomicBool>,
    doom: Arc<Doom>,
) {
    let client = reqwest::Client::new();
    let start = id as usize % urls.len();
    while !done.load(Ordering::Relaxed) {
        let (v, sent, answered) = call_any(
            &client,
            &urls,
            start,
            "/v1/queues/chaos/receive",
            Some(&json!({"max": 10, "wait_ms": 200})),
        )
        .await;
        let msgs = v["messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            continue;
        }
        // Observed when the receive answered; given up when the ack / nack is sent, after the
        // work.
        tokio::time::sleep(WORK).await;
        let doomed = doom.doomed.load(Ordering::SeqCst);
        let released = (!doomed).then(now_ms);
        let obs: Vec<LeaseObs> = msgs
            .iter()
            .map(|m| LeaseObs {
                receiver: id,
                pos: (
                    m["partition"].as_u64().unwrap() as u32,
                    m["offset"].as_u64().unwrap(),
                ),
                delivery_count: m["delivery_count"].as_u64().unwrap() as u32,
                sent_ms: sent,
                answered_ms: answered,
                visibility_timeout_ms: VT_MS,
                released_ms: released,
            })
            .collect();
        if doomed {
            // Die holding these leases, before any ack or nack for them is sent: the test
            // aborts this task once `held` is filled.
            *doom.held.lock().unwrap() = obs.iter().map(|l| (l.pos, l.delivery_count)).collect();
            leases.lock().unwrap().extend(obs);
            doom.dead.store(true, Ordering::SeqCst);
            return std::future::pending::<()>().await;
        }
        leases.lock().unwrap().extend(obs);
        let (bad, ok): (Vec<&Value>, Vec<&Value>) = msgs
            .iter()
            .partition(|m| m["value"].as_str().unwrap_or("").starts_with("poison"));
        let ok: Vec<&Value> = ok.iter().map(|m| &m["receipt"]).collect();
        let bad: Vec<&Value> = bad.iter().map(|m| &m["receipt"]).collect();
        call_any(
            &client,
            &urls,
            start,
            "/v1/queues/chaos/ack",
            Some(&json!({"receipts": ok})),
        )
        .await;
        call_any(
            &client,
            &urls,
            start,
            "/v1/queues/chaos/nack",
            Some(&json!({"receipts": bad, "reason": "poison"})),
        )
        .await;
    }
}

/// How the test kills a receiver at a known point: once `doomed` is set, the receiver's next
/// batch is held, recorded in `held` (position, delivery count) and never acked or nacked;
/// `dead` tells the test it may abort the task.
#[derive(Default)]
struct Doom {
    doomed: AtomicBool,
    dead: AtomicBool,
    held: Mutex<Vec<((u32, u64), u32)>>,
}

async fn run(backend: Backend) {
    let mut gateways: Vec<Proc> = (0..3)
        .map(|_| Proc::gateway(&backend, free_port()))
        .collect();
    for g in &gateways {
        g.wait_healthy().await;
    }
    let urls: Arc<Vec<String>> = Arc::new(gateways.iter().map(|g| g.url()).collect());
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/topics", urls[0]))
        .json(&json!({"name": "jobs", "partitions": PARTITIONS}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = client
        .put(format!("{}/v1/queues/chaos", urls[0]))
        .json(&json!({"topic": "jobs", "visibility_timeout_ms": VT_MS, "max_deliveries": MAX_DELIVERIES}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let mut produced = BTreeSet::new();
    let mut poison = BTreeSet::new();
    for p in 0..PARTITIONS {
        let records: Vec<Value> = (0..PER_PARTITION)
            .map(|i| {
                let v = if i % 40 == 13 {
                    format!("poison-{p}-{i}")
                } else {
                    format!("ok-{p}-{i}")
                };
                json!({"value": v, "partition": p})
            })
            .collect();
        let r = client
            .post(format!("{}/v1/topics/jobs/records", urls[0]))
            .json(&json!({"records": records}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        for i in 0..PER_PARTITION {
            produced.insert((p, i));
            if i % 40 == 13 {
                poison.insert((p, i));
            }
        }
    }

    let leases = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let dooms: Vec<Arc<Doom>> = (0..6).map(|_| Arc::default()).collect();
    let receivers: Vec<_> = (0..6u32)
        .map(|id| {
            let d = dooms[id as usize].clone();
            tokio::spawn(receiver(id, urls.clone(), leases.clone(), done.clone(), d))
        })
        .collect();
    // Mid-run: two receivers die holding their leases, and gateway 2 is SIGKILLed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for r in [4, 5] {
        dooms[r].doomed.store(true, Ordering::SeqCst);
    }
    for r in [4, 5] {
        while !dooms[r].dead.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        receivers[r].abort();
    }
    let before_kill = leases.lock().unwrap().len();
    assert!(
        before_kill < (PARTITIONS as u64 * PER_PARTITION) as usize / 2,
        "the failures must land mid-run ({before_kill} leases already)"
    );
    gateways[2].kill();

    // Until the queue is drained: nothing ready, in flight or delayed, every poison dead.
    let live: Vec<String> = urls[..2].to_vec();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (v, _, _) = call_any(&client, &live, 0, "/v1/queues/chaos", None).await;
        let drained = v["ready"] == 0
            && v["in_flight"] == 0
            && v["delayed"] == 0
            && v["dead_lettered"].as_u64() == Some(poison.len() as u64);
        if drained {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "queue not drained: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done.store(true, Ordering::Relaxed);
    for r in receivers {
        let _ = r.await;
    }

    let leases = leases.lock().unwrap().clone();
    // The reason of a poison record is the nack's, or visibility_timeout when the holder of its
    // last delivery died (or its nack's answer was lost with the gateway).
    let mut h = QueueHistory {
        produced,
        poison: poison
            .iter()
            .map(|p| {
                (
                    *p,
                    vec!["poison".to_string(), "visibility_timeout".to_string()],
                )
            })
            .collect(),
        leases,
        max_deliveries: MAX_DELIVERIES,
        ..Default::default()
    };
    let (t, _, _) = call_any(&client, &live, 0, "/v1/topics/chaos.dlq", None).await;
    for p in 0..t["partitions"].as_u64().unwrap() {
        let (v, _, _) = call_any(
            &client,
            &live,
            0,
            &format!("/v1/topics/chaos.dlq/partitions/{p}/records?offset=0&limit=1000"),
            None,
        )
        .await;
        for r in v["records"].as_array().unwrap() {
            let hd = &r["headers"];
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
    }
    let positions: Vec<(u32, u64)> = h.produced.iter().copied().collect();
    let mut finals = BTreeMap::new();
    for (p, o) in positions {
        let (v, _, _) = call_any(
            &client,
            &live,
            1,
            &format!("/v1/queues/chaos/records/{p}/{o}"),
            None,
        )
        .await;
        let acked = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "acked")
            .count();
        finals.insert(
            (p, o),
            FinalRecord {
                state: v["state"].as_str().unwrap().to_string(),
                acked_events: acked,
            },
        );
    }
    h.finals = finals;
    let violations = check_queue(&h);
    assert!(violations.is_empty(), "{}: {violations:#?}", backend.name());
    let redelivered = h.leases.iter().filter(|l| l.delivery_count > 1).count();
    // Every lease the dead receivers held expired: the record was delivered again with a higher
    // count, or (its last delivery used up) dead-lettered.
    for d in [&dooms[4], &dooms[5]] {
        let held = d.held.lock().unwrap().clone();
        assert!(!held.is_empty(), "a doomed receiver died holding nothing");
        for (pos, count) in held {
            let again = h
                .leases
                .iter()
                .any(|l| l.pos == pos && l.delivery_count > count);
            let dead = h.dead_letters.iter().any(|dl| dl.pos == pos);
            assert!(
                again || dead,
                "{pos:?} (delivery {count}) held by a killed receiver was neither redelivered nor dead-lettered"
            );
        }
    }
    eprintln!(
        "{}: {} leases observed, {redelivered} redeliveries, {} dead letters",
        backend.name(),
        h.leases.len(),
        h.dead_letters.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_survives_killed_gateway_and_receivers_on_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    run(Backend::Local(dir.path().join("bucket"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_survives_killed_gateway_and_receivers_on_s3() {
    if let Some(b) = s3_backend("queue-chaos") {
        run(b).await;
    }
}
