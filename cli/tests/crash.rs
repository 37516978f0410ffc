//! kill -9 chaos over real processes: 3 gateways and a compactor on one bucket (LocalStack in
//! CI, else a local folder), steady producers and consumers through all gateways, and one random
//! process SIGKILLed and restarted every 2 s — every other kill is of the gateway that holds the
//! topic shard's committer lease, whichever that is then. A history checker asserts I1–I5 over everything
//! acked and read back, and that what consumers saw during the chaos agrees with the final log
//! (I2, I4 under crashes); nothing has retention here, so nothing may disappear (I6). Half the
//! producers deduplicate their retries with `Idempotency-Key`, the other half as idempotent
//! producers (`Producer-Id` / `-Epoch` / `-Seq`, no key), which also repeat a quarter of their
//! acked requests through a random gateway: each repeat must answer the first answer, and I5
//! must hold for both kinds.
//!
//! Duration: `SLUICE_CRASH_SECONDS` (CI: 120; default 15). Run it as long as you like:
//! `SLUICE_CRASH_SECONDS=3600 cargo test -p sluice-cli --test crash -- --nocapture`

mod common;

use common::{free_port, read_partition, Proc};
use serde_json::{json, Value};
use sluice_core::keys;
use sluice_core::store::{self, DynStore};
use sluice_tests::checker::{check, Acked, History};
use sluice_tests::{s3_backend, Backend, Rng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 4;

struct Chaos {
    urls: Vec<String>,
    deadline: Instant,
    ops: AtomicU64,
    /// Retries answered as duplicates (`"duplicate": true`), by producer sequence.
    seq_duplicates: AtomicU64,
    history: Mutex<History>,
    /// What consumers saw during the chaos: (partition, offset) -> value.
    seen: Mutex<HashMap<(u32, u64), Vec<u8>>>,
    violations: Mutex<Vec<String>>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// How a producer makes its retries safe.
enum Dedup {
    Key(String),
    /// An idempotent producer's id, epoch and this request's sequence number.
    Producer(String, u32, u64),
}

/// Register an idempotent producer through any gateway (a lost answer just wastes an id).
async fn register(chaos: &Chaos, http: &reqwest::Client, rng: &mut Rng) -> (String, u32) {
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        let url = &chaos.urls[rng.below(chaos.urls.len() as u64) as usize];
        if let Ok(r) = http.post(format!("{url}/v1/producers")).send().await {
            if r.status().as_u16() == 201 {
                if let Ok(v) = r.json::<Value>().await {
                    let id = v["producer_id"].as_str().unwrap_or_default().to_string();
                    return (id, v["epoch"].as_u64().unwrap_or(u64::MAX) as u32);
                }
            }
        }
        assert!(Instant::now() < give_up, "no producer registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Send one idempotent request until some gateway acks it.
async fn produce(
    chaos: &Chaos,
    http: &reqwest::Client,
    rng: &mut Rng,
    body: &Value,
    dedup: &Dedup,
) -> Value {
    let give_up = Instant::now() + Duration::from_secs(120);
    let key = match dedup {
        Dedup::Key(k) => k.clone(),
        Dedup::Producer(id, epoch, seq) => format!("producer {id}/{epoch} seq {seq}"),
    };
    loop {
        let url = &chaos.urls[rng.below(chaos.urls.len() as u64) as usize];
        let req = http.post(format!("{url}/v1/topics/chaos/records"));
        let req = match dedup {
            Dedup::Key(k) => req.header("Idempotency-Key", k),
            Dedup::Producer(id, epoch, seq) => req
                .header("Producer-Id", id)
                .header("Producer-Epoch", epoch.to_string())
                .header("Producer-Seq", seq.to_string()),
        };
        let r = req.json(body).send().await;
        chaos.ops.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(r) if r.status().is_success() => {
                // An unreadable answer means the gateway was killed while answering: retry.
                if let Ok(v) = r.json::<Value>().await {
                    if matches!(dedup, Dedup::Producer(..)) && v["duplicate"] == true {
                        chaos.seq_duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    return v;
                }
            }
            Ok(r) if r.status().as_u16() == 503 || r.status().as_u16() == 429 => {}
            Ok(r) => {
                let msg = format!(
                    "produce {key}: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
                chaos.violations.lock().unwrap().push(msg);
            }
            Err(_) => {} // connection refused / reset: the gateway was killed
        }
        assert!(Instant::now() < give_up, "request {key} never acked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn producer(chaos: Arc<Chaos>, p: u32) {
    let http = client();
    let mut rng = Rng::new(1000 + p as u64);
    // Odd producers use producer sequences, even ones idempotency keys.
    let idempotent = match p % 2 {
        1 => Some(register(&chaos, &http, &mut rng).await),
        _ => None,
    };
    let mut seq = 0u64;
    let mut j = 0u64;
    while Instant::now() < chaos.deadline {
        let n = 1 + rng.below(4);
        let values: Vec<String> = (0..n).map(|i| format!("p{p}-{}", seq + i)).collect();
        let records: Vec<Value> = values
            .iter()
            .map(|v| json!({"key": format!("k{}", rng.below(32)), "value": v}))
            .collect();
        let dedup = match &idempotent {
            Some((id, epoch)) => Dedup::Producer(id.clone(), *epoch, j),
            None => Dedup::Key(format!("p{p}-r{j}")),
        };
        let body = json!({ "records": records });
        let ack = produce(&chaos, &http, &mut rng, &body, &dedup).await;
        // A deliberate repeat through a random gateway answers the first answer.
        if matches!(dedup, Dedup::Producer(..)) && rng.below(4) == 0 {
            let again = produce(&chaos, &http, &mut rng, &body, &dedup).await;
            if again["duplicate"] != true || again["offsets"] != ack["offsets"] {
                chaos
                    .violations
                    .lock()
                    .unwrap()
                    .push(format!("I5 repeat of {ack} answered {again}"));
            }
        }
        let offsets = ack["offsets"].as_array().cloned().unwrap_or_default();
        let mut h = chaos.history.lock().unwrap();
        if offsets.len() != values.len() {
            chaos
                .violations
                .lock()
                .unwrap()
                .push(format!("ack {ack} for {} records", values.len()));
        }
        for (i, (v, o)) in values.iter().zip(&offsets).enumerate() {
            h.acked.push(Acked {
                writer: p,
                send_seq: seq + i as u64,
                topic: "chaos".into(),
                partition: o["partition"].as_u64().unwrap_or(u64::MAX) as u32,
                offset: o["offset"].as_u64().unwrap_or(u64::MAX),
                value: v.clone().into_bytes(),
            });
        }
        seq += n;
        j += 1;
    }
}

async fn consumer(chaos: Arc<Chaos>, c: u32) {
    let http = client();
    let mut rng = Rng::new(2000 + c as u64);
    let mut cursor = [0u64; PARTITIONS as usize];
    while Instant::now() < chaos.deadline {
        let p = rng.below(PARTITIONS as u64) as u32;
        let url = &chaos.urls[rng.below(chaos.urls.len() as u64) as usize];
        let r = http
            .get(format!(
                "{url}/v1/topics/chaos/partitions/{p}/records?offset={}&limit=200&wait_ms=300",
                cursor[p as usize]
            ))
            .send()
            .await;
        chaos.ops.fetch_add(1, Ordering::Relaxed);
        let Ok(r) = r else { continue };
        if r.status().as_u16() == 503 {
            continue;
        }
        if !r.status().is_success() {
            let msg = format!(
                "read {p}@{}: {} {}",
                cursor[p as usize],
                r.status(),
                r.text().await.unwrap_or_default()
            );
            chaos.violations.lock().unwrap().push(msg);
            continue;
        }
        let Ok(body) = r.json::<Value>().await else {
            continue;
        };
        let mut seen = chaos.seen.lock().unwrap();
        for rec in body["records"].as_array().cloned().unwrap_or_default() {
            let offset = rec["offset"].as_u64().unwrap_or(u64::MAX);
            if offset != cursor[p as usize] {
                chaos.violations.lock().unwrap().push(format!(
                    "I2 consumer {c} on {p}: got {offset}, expected {}",
                    cursor[p as usize]
                ));
                break;
            }
            let value = rec["value"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .to_vec();
            if let Some(prev) = seen.insert((p, offset), value.clone()) {
                if prev != value {
                    chaos
                        .violations
                        .lock()
                        .unwrap()
                        .push(format!("I2 {p}@{offset} read as two different values"));
                }
            }
            cursor[p as usize] += 1;
        }
    }
}

/// The address in the newest epoch of any shard committer lease (gateways hand commits to it).
async fn committer_url(store: &DynStore) -> Option<String> {
    let leases = object_store::path::Path::from(keys::LEASES);
    let dirs = store::list_dirs(&**store, &leases).await.ok()?;
    for d in dirs.iter().filter(|d| d.starts_with("committer-")) {
        let names = store::list_names(&**store, &keys::lease_dir(d), None)
            .await
            .ok()?;
        if let Some(epoch) = names.iter().rev().find_map(|n| keys::parse_seq(n)) {
            let bytes = store::get_opt(&**store, &keys::lease(d, epoch))
                .await
                .ok()??;
            let v: Value = serde_json::from_slice(&bytes).ok()?;
            return v["holder"].as_str().map(str::to_string);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_chaos_keeps_every_invariant() {
    let seconds: u64 = std::env::var("SLUICE_CRASH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir().unwrap();
    let backend = s3_backend("crash").unwrap_or_else(|| Backend::Local(dir.path().join("bucket")));
    let mut procs: Vec<Proc> = (0..3)
        .map(|_| Proc::gateway(&backend, free_port()))
        .collect();
    procs.push(Proc::compactor(&backend));
    for p in &procs {
        p.wait_healthy().await;
    }
    let urls: Vec<String> = procs[..3].iter().map(Proc::url).collect();
    let http = client();
    let r = http
        .post(format!("{}/v1/topics", urls[0]))
        .json(&json!({"name": "chaos", "partitions": PARTITIONS}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let chaos = Arc::new(Chaos {
        urls: urls.clone(),
        deadline: Instant::now() + Duration::from_secs(seconds),
        ops: AtomicU64::new(0),
        seq_duplicates: AtomicU64::new(0),
        history: Mutex::new(History::default()),
        seen: Mutex::new(HashMap::new()),
        violations: Mutex::new(Vec::new()),
    });
    let mut tasks: Vec<_> = (0..4)
        .map(|p| tokio::spawn(producer(chaos.clone(), p)))
        .collect();
    tasks.extend((0..2).map(|c| tokio::spawn(consumer(chaos.clone(), c))));

    // The killer: one process every 2 s, SIGKILL then restart; every other time the shard's
    // committer (if one is elected), else a random process.
    let mut rng = Rng::new(42);
    let mut kills = 0;
    let mut committer_kills = 0;
    let bucket = backend.client();
    while Instant::now() + Duration::from_secs(2) < chaos.deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let committer = match kills % 2 {
            1 => committer_url(&bucket)
                .await
                .and_then(|u| urls.iter().position(|x| *x == u)),
            _ => None,
        };
        committer_kills += committer.is_some() as u32;
        let victim = committer.unwrap_or_else(|| rng.below(procs.len() as u64) as usize);
        procs[victim].kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
        procs[victim].start();
    }
    for t in tasks {
        t.await.expect("client task panicked");
    }
    for p in &procs {
        p.wait_healthy().await;
    }

    // Read everything back and check.
    let mut h = std::mem::take(&mut *chaos.history.lock().unwrap());
    for p in 0..PARTITIONS {
        let got = read_partition(&http, &urls[p as usize % 3], "chaos", p).await;
        h.read.insert(("chaos".into(), p), got);
    }
    let mut violations = std::mem::take(&mut *chaos.violations.lock().unwrap());
    violations.extend(check(&h));
    let final_log: HashMap<(u32, u64), &Vec<u8>> = h
        .read
        .iter()
        .flat_map(|((_, p), rs)| rs.iter().map(move |(o, v)| ((*p, *o), v)))
        .collect();
    for ((p, o), v) in chaos.seen.lock().unwrap().iter() {
        if final_log.get(&(*p, *o)) != Some(&v) {
            violations.push(format!(
                "consumer saw {p}@{o} = {:?}, final log differs",
                String::from_utf8_lossy(v)
            ));
        }
    }
    println!(
        "crash test ({} backend, {seconds} s): {} operations, {} acked records, {} consumed, {kills} kills ({committer_kills} of the shard committer), {} producer-sequence retries answered as duplicates, {} violations",
        backend.name(),
        chaos.ops.load(Ordering::Relaxed),
        h.acked.len(),
        chaos.seen.lock().unwrap().len(),
        chaos.seq_duplicates.load(Ordering::Relaxed),
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "{:#?}",
        &violations[..violations.len().min(20)]
    );
    assert!(kills > 0 || seconds < 4, "the killer must kill");
    assert!(
        committer_kills > 0 || seconds < 10,
        "the killer must kill the shard committer"
    );
    assert!(!h.acked.is_empty());
}
