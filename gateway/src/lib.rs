//! Sluice gateway: the stateless HTTP front of the log, REST API v1 (the contract is the design
//! note `rest-api.md`; the machine-readable spec is served at `GET /v1/openapi.json`). Every
//! gateway can serve every request: all state is in the object store.
//!
//! Map of the crate:
//! - [`batcher`]: groups concurrent produce requests into one segment write per flush, pipelines
//!   segment PUTs and keeps commits in flush order
//! - [`error`]: the one place errors become HTTP statuses and `application/problem+json` bodies
//! - [`extract`]: request extractors whose rejections are problem documents too
//! - [`api`]: the route handlers and the generated OpenAPI document (wire types: `sluice-api`)
//! - [`metrics`]: the gateway's metrics (prometheus-client), the request counter middleware
//! - [`console`]: the web console's embedded files, served at `/`
//! - [`auth`]: bearer tokens with per-topic scopes (when configured)
//! - [`queues`]: queue mode's IO (state logs, read-ahead, dead letters) around `sluice_core::queue`
//! - [`overload`]: the byte budget that bounds produce requests waiting for their commit
//! - [`committer`]: per-shard committer election and the gateway-to-gateway commit hand-over
//! - [`request_id`]: `X-Request-Id` per request, its log span, its place in problem documents
//! - [`txn`]: the transaction resolver (check-back over HTTP, finishing interrupted commits)

pub mod api;
pub mod auth;
pub mod batcher;
pub mod committer;
pub mod console;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod overload;
pub mod queues;
pub mod request_id;
pub mod txn;

use sluice_core::log::Log;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use api::openapi::ApiDoc;
pub use auth::AuthConfig;
pub use committer::CommitterConfig;
pub use error::ApiError;

/// Gateway settings. Durations and sizes have the defaults the CLI documents.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// How long a flush waits for more produce requests after the first one (default 5 ms).
    pub linger: Duration,
    /// A flush is started early once it holds this many record bytes (default 8 MiB).
    pub max_flush_bytes: usize,
    /// Segment PUTs that may overlap (default 4); their commits stay in flush order.
    pub max_flushes_in_flight: usize,
    /// Largest encoded record (key + value + headers), default 1 MiB; larger is 413.
    pub max_record_bytes: usize,
    /// Largest request body, default 8 MiB; larger is 413.
    pub max_request_bytes: usize,
    /// Most records in one produce request (default 10 000); more is 400.
    pub max_records_per_request: usize,
    /// Journal shards new topics are spread over by a stable hash of the name (default 4).
    pub shards: u32,
    /// Upper bound for `wait_ms` of long-polling reads (default 30 000).
    pub max_wait_ms: u64,
    /// Bytes of produce requests (their bodies) accepted but not yet committed, at most
    /// (default 64 MiB). Beyond it produce answers 429 `overloaded` with `Retry-After: 1`.
    pub max_pending_bytes: usize,
    /// Bearer tokens and their grants; `None` (the default) serves everyone.
    pub auth: Option<Arc<AuthConfig>>,
    /// Long-polls and event streams waiting at once, at most (default 4096). Beyond it a
    /// long-poll answers at once (a short poll) and a new event stream gets 429 `overloaded`.
    pub max_waiting_readers: usize,
    /// Take part in electing each shard's committer, and hand commits to it (`None`, the
    /// default: commit directly, as a lone process does).
    pub committer: Option<CommitterConfig>,
    /// Metrics registries `GET /metrics` serves after the gateway's own and its log's (`sluice
    /// dev`: the compactor's and the store wrapper's). Metric names must not repeat.
    pub metrics_also: Vec<Arc<sluice_core::metrics::Registry>>,
    /// Transactions: the resolver election and check-back settings.
    pub txn: txn::TxnSettings,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            linger: Duration::from_millis(5),
            max_flush_bytes: 8 << 20,
            max_flushes_in_flight: 4,
            max_record_bytes: 1 << 20,
            max_request_bytes: 8 << 20,
            max_records_per_request: 10_000,
            shards: 4,
            max_wait_ms: 30_000,
            max_pending_bytes: 64 << 20,
            auth: None,
            max_waiting_readers: 4096,
            committer: None,
            metrics_also: Vec::new(),
            txn: txn::TxnSettings::default(),
        }
    }
}

/// The gateway's routes over `log`. Spawns the produce batcher, so it must be called inside a
/// tokio runtime. Long-polls and event streams of this router end only when their client leaves;
/// use [`serve`] to have them end on shutdown.
pub fn router(log: Arc<Log>, cfg: GatewayConfig) -> axum::Router {
    let (tx, rx) = tokio::sync::watch::channel(false);
    api::build(log, cfg, rx, Some(tx))
}

/// Serve the gateway on `listener` until `shutdown` completes; then stop accepting, end
/// long-polls and event streams, and wait for the requests in progress.
pub async fn serve(
    listener: tokio::net::TcpListener,
    log: Arc<Log>,
    cfg: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let app = api::build(log, cfg, rx, None);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "gateway listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("gateway shutting down");
            let _ = tx.send(true);
        })
        .await
}
