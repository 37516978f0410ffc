//! Operations against real `sluice` processes: every metric the Grafana dashboard
//! (`ops/grafana/sluice.json`) queries exists in the `/metrics` of a running `sluice dev` after
//! some traffic; the compactor serves its own `/metrics` with `--metrics-listen`; every answer
//! carries `X-Request-Id` and, with `--log-format json`, log lines are JSON carrying it.

mod common;

use common::free_port;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `sluice` child process with its stderr in a file; SIGKILLed when dropped.
struct Server {
    child: Child,
    url: String,
    stderr: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn spawn(args: &[&str], port: u16, env: &[(&str, &str)], logs: &Path) -> Self {
        let stderr = logs.join(format!("stderr-{port}.log"));
        let file = std::fs::File::create(&stderr).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn sluice");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            stderr,
        }
    }

    fn dev(dir: &Path, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let data = dir.join("data");
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "dev",
            "--no-fsync",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
            "--listen",
            &listen,
        ];
        args.extend_from_slice(extra);
        Self::spawn(&args, port, env, dir)
    }

    async fn wait_up(&self, path: &str) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}{path}", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} did not come up; stderr:\n{}",
                self.url,
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method.clone(), &url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request sent");
    let status = r.status();
    let text = r.text().await.expect("answer");
    assert!(status.is_success(), "{method} {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Traffic touching every part the dashboard shows: produce, reads, a group, a queue.
async fn traffic(url: &str) {
    let http = reqwest::Client::new();
    use reqwest::Method as M;
    call(
        &http,
        M::POST,
        format!("{url}/v1/topics"),
        Some(json!({"name": "orders", "partitions": 2})),
    )
    .await;
    for i in 0..5 {
        let records: Vec<Value> = (0..20)
            .map(|j| json!({"key": format!("k{j}"), "value": format!("order {i}-{j}")}))
            .collect();
        call(
            &http,
            M::POST,
            format!("{url}/v1/topics/orders/records"),
            Some(json!({"records": records})),
        )
        .await;
    }
    call(
        &http,
        M::POST,
        format!("{url}/v1/topics/orders/records?ack=none"),
        Some(json!({"records": [{"value": "x"}]})),
    )
    .await;
    for p in 0..2 {
        let v = call(
            &http,
            M::GET,
            format!("{url}/v1/topics/orders/partitions/{p}/records?offset=0&limit=1000"),
            None,
        )
        .await;
        assert!(!v["records"].as_array().expect("records").is_empty(), "{v}");
    }
    // A consumer group: join, poll, commit, describe (the lag gauge).
    let m = call(
        &http,
        M::POST,
        format!("{url}/v1/groups/billing/members"),
        Some(json!({"topics": ["orders"]})),
    )
    .await;
    let member = m["member_id"].as_str().expect("member id").to_string();
    let polled = call(
        &http,
        M::GET,
        format!("{url}/v1/groups/billing/records?member_id={member}&limit=10"),
        None,
    )
    .await;
    let first = &polled["records"][0];
    call(
        &http,
        M::POST,
        format!("{url}/v1/groups/billing/offsets"),
        Some(json!({"member_id": member, "generation": polled["generation"], "offsets": [{"topic": "orders", "partition": first["partition"], "offset": 1}]})),
    )
    .await;
    call(&http, M::GET, format!("{url}/v1/groups/billing"), None).await;
    // A queue: receive, ack, stats (the backlog gauges).
    call(
        &http,
        M::PUT,
        format!("{url}/v1/queues/work"),
        Some(json!({"topic": "orders"})),
    )
    .await;
    let got = call(
        &http,
        M::POST,
        format!("{url}/v1/queues/work/receive"),
        Some(json!({"max": 5, "wait_ms": 2000})),
    )
    .await;
    let receipts: Vec<Value> = got["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["receipt"].clone())
        .collect();
    assert!(!receipts.is_empty(), "{got}");
    call(
        &http,
        M::POST,
        format!("{url}/v1/queues/work/ack"),
        Some(json!({"receipts": receipts})),
    )
    .await;
    call(&http, M::GET, format!("{url}/v1/queues/work"), None).await;
}

/// The names of the samples in an exposition (`name{labels} value` or `name value`).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Every `sluice_…` metric name the dashboard's queries (panel targets and template
/// variables) select.
fn dashboard_metrics(dashboard: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    walk(dashboard, &mut queries);
    let mut names = BTreeSet::new();
    for q in &queries {
        let b = q.as_bytes();
        let mut i = 0;
        while let Some(at) = q[i..].find("sluice_") {
            let start = i + at;
            let boundary =
                start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
            let end = q[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(q.len(), |n| start + n);
            if boundary {
                names.insert(q[start..end].to_string());
            }
            i = end;
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_in_a_running_dev() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dev = Server::dev(dir.path(), port, &[], &[("SLUICE_LOG", "warn")]);
    dev.wait_up("/readyz").await;
    traffic(&dev.url).await;
    // The compactor's per-shard lag appears with its first pass over the new journal (every
    // second): wait for that state, bounded.
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = reqwest::get(format!("{}/metrics", dev.url))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        if text.contains("sluice_compactor_lag_entries{")
            && text.contains("sluice_compactor_folded_entries_total")
        {
            break text;
        }
        assert!(Instant::now() < deadline, "no compactor pass seen:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let have = sample_names(&text);

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/grafana/sluice.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard file"))
            .expect("dashboard is JSON");
    let wanted = dashboard_metrics(&dashboard);
    assert!(wanted.len() >= 30, "the dashboard queries {wanted:?}");
    let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "metrics the dashboard queries but /metrics lacks: {missing:?}\n\n{text}"
    );
    // Panels query a datasource variable, so the dashboard imports into any Grafana.
    for p in dashboard["panels"].as_array().expect("panels") {
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{p}");
            assert!(!p["targets"].as_array().expect("targets").is_empty(), "{p}");
        }
    }
    // Figures, not just names: the traffic above shows in them.
    let value = |sample: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{sample} missing:\n{text}"))
            .trim()
            .parse()
            .expect("a number")
    };
    assert_eq!(value("sluice_produced_records_total"), 101.0);
    assert_eq!(
        value("sluice_produce_request_duration_seconds_count{ack=\"durable\"}"),
        5.0
    );
    assert_eq!(
        value("sluice_produce_request_duration_seconds_count{ack=\"none\"}"),
        1.0
    );
    assert!(value("sluice_produce_ack_duration_seconds_count") >= 6.0);
    assert!(value("sluice_read_records_total") >= 100.0);
    assert!(
        value(
            "sluice_object_store_request_duration_seconds_count{operation=\"put\",outcome=\"ok\"}"
        ) >= 2.0
    );
    assert!(
        text.contains("sluice_group_lag{group=\"billing\",topic=\"orders\""),
        "{text}"
    );
    assert!(
        text.contains("sluice_queue_in_flight{queue=\"work\"} 0"),
        "{text}"
    );
    assert_eq!(value("sluice_compactor_leader"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compactor_serves_its_metrics_with_metrics_listen() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = format!("file://{}", dir.path().join("bucket").display());
    std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let c = Server::spawn(
        &[
            "compactor",
            "--store",
            &store,
            "--interval-ms",
            "100",
            "--metrics-listen",
            &listen,
        ],
        port,
        &[("SLUICE_LOG", "warn")],
        dir.path(),
    );
    c.wait_up("/healthz").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = reqwest::get(format!("{}/metrics", c.url))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text");
        // After the first pass: it counted itself and listed the (empty) journal.
        if text.contains("sluice_compactor_passes_total{outcome=\"ok\"}") {
            break text;
        }
        assert!(Instant::now() < deadline, "no pass counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for name in [
        "sluice_compactor_leader",
        "sluice_compactor_pass_duration_seconds_count",
        "sluice_compactor_last_pass_timestamp_seconds",
        "sluice_object_store_request_duration_seconds_count",
    ] {
        assert!(
            sample_names(&text).contains(name),
            "{name} missing:\n{text}"
        );
    }
    assert!(
        !text.contains("sluice_http_requests_total"),
        "no gateway here:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_answers_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dev = Server::dev(
        dir.path(),
        port,
        &["--log-format", "json"],
        &[("SLUICE_LOG", "info,sluice_gateway=debug")],
    );
    dev.wait_up("/healthz").await;
    let http = reqwest::Client::new();

    // A sane id is taken and echoed; a problem document carries it too.
    let r = http
        .get(format!("{}/v1/topics/nope", dev.url))
        .header("X-Request-Id", "test-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.headers()["x-request-id"], "test-req-42");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "topic_not_found", "{problem}");
    assert_eq!(problem["request_id"], "test-req-42", "{problem}");

    // Without one (or with one that is not sane) the gateway makes one up: a ULID.
    let mut generated = BTreeSet::new();
    for given in [None, Some("has spaces in it")] {
        let mut req = http.get(format!("{}/healthz", dev.url));
        if let Some(g) = given {
            req = req.header("X-Request-Id", g);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 26, "a ULID: {id}");
        generated.insert(id);
    }
    assert_eq!(generated.len(), 2, "a fresh id per request");

    // The request's log line: JSON with the request span's request_id. Written when the
    // answer was sent, so wait for it (bounded) rather than for a time.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = std::fs::read_to_string(&dev.stderr).unwrap_or_default();
        let lines: Vec<Value> = logs
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let ours = lines
            .iter()
            .find(|v| v["span"]["request_id"] == "test-req-42" && v["message"] == "request done");
        if let Some(line) = ours {
            assert_eq!(line["status"], 404, "{line}");
            assert_eq!(line["span"]["method"], "GET", "{line}");
            assert_eq!(line["span"]["route"], "/v1/topics/{topic}", "{line}");
            assert!(
                line["timestamp"].is_string() && line["level"] == "DEBUG",
                "{line}"
            );
            // Lines outside requests are JSON too (the startup line).
            assert!(
                lines.iter().any(|v| v["message"] == "gateway listening"),
                "{logs}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no JSON request line:\n{logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
