//! Several real `sluice gateway` processes and a `sluice compactor` process on one bucket:
//! concurrent producers through every gateway, idempotent retries sent to a different gateway,
//! everything read back through yet another gateway; the history checker asserts I1, I2, I3, I5.
//! Runs on a local folder and (when configured, always in CI) on LocalStack.

mod common;

use common::{free_port, read_partition, Proc};
use serde_json::{json, Value};
use sluice_tests::checker::{check, Acked, History};
use sluice_tests::{s3_backend, Backend, Rng};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn produce(client: &reqwest::Client, gw: &str, body: &Value, key: &str) -> Value {
    for attempt in 0..20 {
        let r = client
            .post(format!("{gw}/v1/topics/orders/records"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => return r.json().await.expect("json answer"),
            Ok(r) if r.status().as_u16() == 503 => {}
            Ok(r) => panic!(
                "produce failed: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(e) if attempt < 19 => eprintln!("retrying after {e}"),
            Err(e) => panic!("produce failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("produce kept failing")
}

async fn run(backend: Backend) {
    let gateways: Vec<Proc> = (0..3)
        .map(|_| Proc::gateway(&backend, free_port()))
        .collect();
    for g in &gateways {
        g.wait_healthy().await;
    }
    let _compactor = Proc::compactor(&backend);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/topics", gateways[0].url()))
        .json(&json!({"name": "orders", "partitions": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        201,
        "{}",
        r.text().await.unwrap_or_default()
    );

    let urls: Vec<String> = gateways.iter().map(Proc::url).collect();
    let history = Arc::new(Mutex::new(History::default()));
    let producers: Vec<_> = (0..6u32)
        .map(|p| {
            let urls = urls.clone();
            let history = history.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let mut rng = Rng::new(p as u64 + 1);
                let mut seq = 0u64;
                for j in 0..40 {
                    let gw = &urls[(p as usize + j) % urls.len()];
                    let n = 1 + rng.below(5);
                    let values: Vec<String> = (0..n).map(|i| format!("p{p}-{}", seq + i)).collect();
                    let records: Vec<Value> = values
                        .iter()
                        .map(|v| json!({"key": format!("k{}", rng.below(16)), "value": v}))
                        .collect();
                    let body = json!({"records": records});
                    let key = format!("p{p}-r{j}");
                    let ack = produce(&client, gw, &body, &key).await;
                    let offsets = ack["offsets"].as_array().expect("offsets").clone();
                    assert_eq!(offsets.len(), values.len());
                    {
                        let mut h = history.lock().unwrap();
                        for (i, (v, o)) in values.iter().zip(&offsets).enumerate() {
                            h.acked.push(Acked {
                                writer: p,
                                send_seq: seq + i as u64,
                                topic: "orders".into(),
                                partition: o["partition"].as_u64().unwrap() as u32,
                                offset: o["offset"].as_u64().unwrap(),
                                value: v.clone().into_bytes(),
                            });
                        }
                    }
                    seq += n;
                    if rng.below(4) == 0 {
                        // The client lost the answer and retries on another gateway.
                        let other = &urls[(p as usize + j + 1) % urls.len()];
                        let again = produce(&client, other, &body, &key).await;
                        if again["offsets"] != ack["offsets"] || again["duplicate"] != json!(true) {
                            history
                                .lock()
                                .unwrap()
                                .retry_mismatches
                                .push(format!("{key}: {ack} then {again}"));
                        }
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.await.expect("producer panicked");
    }
    // Read everything back through a gateway that took no produce traffic.
    let reader = Proc::gateway(&backend, free_port());
    reader.wait_healthy().await;
    let mut h = std::mem::take(&mut *history.lock().unwrap());
    for p in 0..4u32 {
        let got = read_partition(&client, &reader.url(), "orders", p).await;
        h.read.insert(("orders".into(), p), got);
    }
    let violations = check(&h);
    println!(
        "{}: 3 gateways + compactor processes, {} acked records, {} read back, violations: {}",
        backend.name(),
        h.acked.len(),
        h.read.values().map(Vec::len).sum::<usize>(),
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(h.read.values().map(Vec::len).sum::<usize>(), h.acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    run(Backend::Local(dir.path().join("bucket"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_on_s3() {
    if let Some(b) = s3_backend("multi-gateway") {
        run(b).await;
    }
}
