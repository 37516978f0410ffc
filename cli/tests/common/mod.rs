//! Real `sluice` processes for multi-process tests: spawn, wait until healthy, SIGKILL, restart.

#![allow(dead_code)]

use sluice_tests::Backend;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub enum Role {
    Gateway { port: u16 },
    Compactor,
}

/// A child process, killed (SIGKILL) when dropped.
pub struct Proc {
    pub role: Role,
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn store_args(backend: &Backend) -> Vec<String> {
    match backend {
        Backend::S3 { url, endpoint } => vec![
            "--store".into(),
            url.clone(),
            "--endpoint".into(),
            endpoint.clone(),
        ],
        other => vec!["--store".into(), other.url()],
    }
}

impl Proc {
    pub fn gateway(backend: &Backend, port: u16) -> Self {
        Self::gateway_with(backend, port, &[])
    }

    /// A gateway with extra command-line arguments.
    pub fn gateway_with(backend: &Backend, port: u16, extra: &[&str]) -> Self {
        Self::gateway_env(backend, port, extra, &[])
    }

    /// A gateway with extra command-line arguments and environment variables.
    pub fn gateway_env(backend: &Backend, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec!["gateway".to_string()];
        args.extend(store_args(backend));
        args.extend([
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--linger-ms".into(),
            "5".into(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut p = Proc {
            role: Role::Gateway { port },
            child: None,
            args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        p.start();
        p
    }

    /// `sluice dev` (gateway + compactor) on a local folder, with extra environment variables.
    pub fn dev(dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Self {
        let mut p = Proc {
            role: Role::Gateway { port },
            child: None,
            args: vec![
                "dev".into(),
                "--data-dir".into(),
                dir.display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
            ],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        p.start();
        p
    }

    pub fn compactor(backend: &Backend) -> Self {
        let mut args = vec!["compactor".to_string()];
        args.extend(store_args(backend));
        args.extend([
            "--interval-ms".into(),
            "100".into(),
            "--lease-ms".into(),
            "3000".into(),
        ]);
        let mut p = Proc {
            role: Role::Compactor,
            child: None,
            args,
            env: Vec::new(),
        };
        p.start();
        p
    }

    pub fn url(&self) -> String {
        match self.role {
            Role::Gateway { port } => format!("http://127.0.0.1:{port}"),
            Role::Compactor => String::new(),
        }
    }

    pub fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // `SLUICE_TEST_LOG=debug` shows a child's debug log (stderr) when a test is run by hand.
            .env(
                "SLUICE_LOG",
                std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sluice");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown hook runs, in-flight requests die mid-way.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn wait_healthy(&self) {
        if let Role::Gateway { .. } = self.role {
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(r) = client.get(format!("{}/healthz", self.url())).send().await {
                    if r.status().is_success() {
                        return;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "gateway {} did not come up",
                    self.url()
                );
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    }
}

/// Read a whole partition through a gateway's REST API: (offset, value) in order.
pub async fn read_partition(
    http: &reqwest::Client,
    url: &str,
    topic: &str,
    partition: u32,
) -> Vec<(u64, Vec<u8>)> {
    read_partition_stamped(http, url, topic, partition)
        .await
        .into_iter()
        .map(|(offset, value, _)| (offset, value))
        .collect()
}

/// [`read_partition`] with each record's append timestamp. An answer without records whose
/// `next_offset` moved on would skip records silently: it fails the test.
pub async fn read_partition_stamped(
    http: &reqwest::Client,
    url: &str,
    topic: &str,
    partition: u32,
) -> Vec<(u64, Vec<u8>, i64)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let r: serde_json::Value = http
            .get(format!(
                "{url}/v1/topics/{topic}/partitions/{partition}/records?offset={offset}&limit=1000"
            ))
            .send()
            .await
            .expect("read request")
            .json()
            .await
            .expect("read answer");
        let records = r["records"].as_array().cloned().unwrap_or_default();
        for rec in &records {
            out.push((
                rec["offset"].as_u64().expect("offset"),
                rec["value"].as_str().expect("value").as_bytes().to_vec(),
                rec["timestamp_ms"].as_i64().expect("timestamp_ms"),
            ));
        }
        let next = r["next_offset"].as_u64().expect("next_offset");
        assert!(
            !records.is_empty() || next == offset,
            "{topic}/{partition}: no records at offset {offset}, yet next_offset {next}: {r}"
        );
        offset = next;
        if records.is_empty() || offset >= r["high_watermark"].as_u64().expect("high_watermark") {
            return out;
        }
    }
}
