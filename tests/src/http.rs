//! In-process gateways for HTTP tests: a real `sluice_gateway::serve` on `127.0.0.1:0`.

use sluice_core::clock;
use sluice_core::log::{Log, LogConfig};
use sluice_core::store::DynStore;
use sluice_gateway::GatewayConfig;
use std::fmt::Debug;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running gateway; stops (gracefully) when dropped.
pub struct Gateway {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Gateway {
    /// Serve `store` with `cfg` on a free loopback port.
    pub async fn start(store: DynStore, cfg: GatewayConfig) -> Self {
        Self::start_with(store, |_| cfg).await
    }

    /// Like [`start`](Self::start), with the config made from the gateway's URL (for configs
    /// that advertise it, such as a shard committer's).
    pub async fn start_with(store: DynStore, cfg: impl FnOnce(&str) -> GatewayConfig) -> Self {
        let log = Log::new(store, clock::system(), LogConfig::default());
        Self::serve_with(log, cfg).await
    }

    /// Serve an existing log (its clock, e.g. a manual one, and its store) with `cfg`.
    pub async fn serve(log: Arc<Log>, cfg: GatewayConfig) -> Self {
        Self::serve_with(log, |_| cfg).await
    }

    async fn serve_with(log: Arc<Log>, cfg: impl FnOnce(&str) -> GatewayConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let cfg = cfg(&url);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(sluice_gateway::serve(listener, log, cfg, async move {
            let _ = stopped.await;
        }));
        Self {
            url,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Signal shutdown and wait for `serve` to return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = self.task.take().expect("not shut down yet");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The Prometheus text of a gateway's `GET /metrics`.
pub async fn metrics_text(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// A metric's value from the Prometheus text of `GET /metrics`.
pub fn metric<T: FromStr>(text: &str, name: &str) -> T
where
    T::Err: Debug,
{
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

/// Send a request; its status and JSON body (`Null` when the body is empty or not JSON).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let r = req.send().await.expect("request sent");
    let status = r.status().as_u16();
    let text = r.text().await.expect("answer body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Send a request and assert it is answered with a problem document of this status and code;
/// returns the document.
pub async fn expect_problem(
    req: reqwest::RequestBuilder,
    status: u16,
    code: &str,
) -> serde_json::Value {
    let r = req.send().await.expect("request sent");
    let got = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = r.text().await.expect("answer body");
    assert_eq!(got, status, "status for {code}: {text}");
    assert!(
        ct.starts_with("application/problem+json"),
        "content type {ct:?} for {code}: {text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("problem JSON");
    assert_eq!(v["code"], code, "{v}");
    v
}
