//! Gateways on Amazon ECS learn the address they advertise to the shard committer election
//! from the task metadata endpoint (`ECS_CONTAINER_METADATA_URI_V4`), played here by a small
//! HTTP server on 127.0.0.1 that answers the container metadata and counts its requests.

mod common;

use common::{free_port, read_partition, Proc};
use serde_json::json;
use sluice_tests::http::{metric, metrics_text};
use sluice_tests::Backend;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A metadata endpoint answering every GET with `status` and `body`; counts the requests.
async fn metadata_endpoint(status: u16, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v4/task-0a1b", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

async fn produce(http: &reqwest::Client, url: &str, n: usize) {
    let r = http
        .post(format!("{url}/v1/topics/hot/records"))
        .json(&json!({"records": [{"value": format!("r{n}"), "partition": 0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
}

const CONTAINER: &str =
    r#"{"Name":"gateway","Networks":[{"NetworkMode":"awsvpc","IPv4Addresses":["127.0.0.1"]}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_on_ecs_advertise_their_task_address_and_elect_a_committer() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Local(dir.path().to_path_buf());
    let (endpoint, hits) = metadata_endpoint(200, CONTAINER).await;
    let env = [("ECS_CONTAINER_METADATA_URI_V4", endpoint.as_str())];
    let gateways: Vec<Proc> = (0..2)
        .map(|_| Proc::gateway_env(&backend, free_port(), &[], &env))
        .collect();
    for g in &gateways {
        g.wait_healthy().await;
    }
    // Each asked the endpoint once at start-up.
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/topics", gateways[0].url()))
        .json(&json!({"name": "hot", "partitions": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // Produce through both until each sees the other: the follower hands its commits to the
    // committer at the address the metadata gave (127.0.0.1 and its own listen port).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        for g in &gateways {
            produce(&http, &g.url(), n).await;
            n += 1;
        }
        let mut seen = Vec::new();
        for g in &gateways {
            let text = metrics_text(&g.url()).await;
            seen.push(metric::<u64>(&text, "sluice_gateways_seen"));
        }
        if seen == [2, 2] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no committer elected: sluice_gateways_seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every acknowledged record is there once, in a dense run of offsets.
    let records = read_partition(&http, &gateways[1].url(), "hot", 0).await;
    let offsets: Vec<u64> = records.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..n as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_advertise_url_given_wins_and_a_failing_endpoint_leaves_direct_commits() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Local(dir.path().to_path_buf());
    // `--advertise-url` given: the endpoint is never asked.
    let (endpoint, hits) = metadata_endpoint(200, CONTAINER).await;
    let port = free_port();
    let own = format!("http://127.0.0.1:{port}");
    let g = Proc::gateway_env(
        &backend,
        port,
        &["--advertise-url", &own],
        &[("ECS_CONTAINER_METADATA_URI_V4", endpoint.as_str())],
    );
    g.wait_healthy().await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    drop(g);

    // An endpoint that fails: three tries, then the gateway serves and commits directly.
    let (endpoint, hits) = metadata_endpoint(500, "{}").await;
    let g = Proc::gateway_env(
        &backend,
        free_port(),
        &[],
        &[("ECS_CONTAINER_METADATA_URI_V4", endpoint.as_str())],
    );
    g.wait_healthy().await;
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/topics", g.url()))
        .json(&json!({"name": "hot", "partitions": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    produce(&http, &g.url(), 0).await;
}
