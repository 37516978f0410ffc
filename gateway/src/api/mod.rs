//! Routes, shared state and the operational endpoints.

pub mod delayed;
pub mod groups;
pub mod openapi;
pub mod produce;
pub mod producers;
pub mod queues;
pub mod read;
pub mod topics;
pub mod transactions;

use crate::auth::{self, AuthState};
use crate::batcher::{Batcher, BatcherConfig};
use crate::committer::CommitRouter;
use crate::error::{ensure_problem, ApiError, ApiResult};
use crate::extract::BodyLimit;
use crate::metrics::{self, Metrics};
use crate::overload::PendingBudget;
use crate::GatewayConfig;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sluice_core::log::Log;
use sluice_core::store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub log: Arc<Log>,
    pub cfg: GatewayConfig,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    /// Consumer groups: one state log per group, opened on first use.
    pub groups: sluice_core::group::service::Groups,
    /// Queue mode: the queues this gateway serves.
    pub queues: Arc<crate::queues::QueueRuntimes>,
    /// Bounds the produce bytes waiting for their commit.
    pub pending: PendingBudget,
    /// Bounds the long-polls and event streams waiting at once.
    pub waiting: Arc<tokio::sync::Semaphore>,
    /// Becomes true (or closed) when the server shuts down: long-polls and streams end.
    pub shutdown: watch::Receiver<bool>,
    /// Transactions (their state lives in the bucket; this is the process's cache and IO).
    pub txns: Arc<sluice_core::txn::service::Transactions>,
    /// The shard committer election, when this gateway takes part in it.
    pub committer: Option<Arc<CommitRouter>>,
    /// Delayed records: written by produce, listed and cancelled here, moved by the mover.
    pub delayed: Arc<sluice_core::delayed::Delayed>,
    /// Held so `shutdown` never closes for a bare [`crate::router`].
    _keep: Option<watch::Sender<bool>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl BodyLimit for AppState {
    fn max_request_bytes(&self) -> usize {
        self.cfg.max_request_bytes
    }
}

impl AppState {
    /// Completes when the server begins shutting down.
    pub async fn shutting_down(&self) {
        let mut rx = self.shutdown.clone();
        // An error means the sender is gone: the server has stopped.
        let _ = rx.wait_for(|down| *down).await;
    }
}

/// The router with its state and middleware.
pub(crate) fn build(
    log: Arc<Log>,
    cfg: GatewayConfig,
    shutdown: watch::Receiver<bool>,
    keep: Option<watch::Sender<bool>>,
) -> Router {
    let metrics = Metrics::new();
    metrics.also_serve(log.metrics().registry_arc());
    for r in &cfg.metrics_also {
        metrics.also_serve(r.clone());
    }
    let batcher = Batcher::spawn(
        log.clone(),
        BatcherConfig {
            linger: cfg.linger,
            max_flush_bytes: cfg.max_flush_bytes,
            max_flushes_in_flight: cfg.max_flushes_in_flight,
        },
        metrics.clone(),
    );
    let body_limit = cfg.max_request_bytes;
    let pending = PendingBudget::new(cfg.max_pending_bytes, metrics.clone());
    let auth = cfg.auth.clone().map(|config| AuthState {
        config,
        max_request_bytes: cfg.max_request_bytes,
    });
    let waiting = Arc::new(tokio::sync::Semaphore::new(cfg.max_waiting_readers.max(1)));
    let groups = sluice_core::group::service::Groups::new(
        log.store().clone(),
        log.clock().clone(),
        log.writer(),
    );
    let queues =
        crate::queues::QueueRuntimes::new(log.clone(), log.clock().clone(), metrics.clone());
    let committer =
        cfg.committer
            .clone()
            .and_then(|c| match CommitRouter::new(log.store().clone(), c) {
                Ok(router) => {
                    log.set_forwarder(router.clone());
                    Some(router)
                }
                Err(e) => {
                    tracing::error!(error = %e, "committer election is off");
                    None
                }
            });
    let txns = sluice_core::txn::service::Transactions::new(log.clone(), cfg.txn.core.clone());
    if cfg.txn.resolver {
        crate::txn::spawn_resolver(
            txns.clone(),
            log.store().clone(),
            cfg.txn.clone(),
            sluice_core::ids::ObjectId(log.writer()).to_string(),
            shutdown.clone(),
        );
    }
    let delayed =
        sluice_core::delayed::Delayed::new(log.store().clone(), log.clock().clone(), log.writer());
    let state = AppState(Arc::new(Inner {
        txns,
        delayed,
        groups,
        queues,
        log,
        committer,
        waiting,
        cfg,
        batcher,
        metrics: metrics.clone(),
        pending,
        shutdown,
        _keep: keep,
    }));
    let routes = Router::new()
        .route("/", get(crate::console::index))
        .route("/console/{file}", get(crate::console::file))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/v1/topics", post(topics::create).get(topics::list))
        .route("/v1/producers", post(producers::create))
        .route(
            "/v1/transactions",
            post(transactions::begin).get(transactions::list),
        )
        .route("/v1/transactions/{id}", get(transactions::describe))
        .route("/v1/transactions/{id}/commit", post(transactions::commit))
        .route(
            "/v1/transactions/{id}/rollback",
            post(transactions::rollback),
        )
        .route(
            "/v1/topics/{topic}",
            get(topics::get)
                .patch(topics::update)
                .delete(topics::delete),
        )
        .route(
            "/v1/topics/{topic}/records",
            post(produce::produce).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::overload::reserve_early,
            )),
        )
        .route("/v1/topics/{topic}/delayed", get(delayed::list))
        .route(
            "/v1/topics/{topic}/delayed/{delayed_id}",
            axum::routing::delete(delayed::cancel),
        )
        .route(
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(read::read),
        )
        .route(
            "/v1/topics/{topic}/partitions/{partition}/offsets",
            get(read::offset_for_timestamp),
        )
        .route("/v1/groups", get(groups::list))
        .route(
            "/v1/groups/{group}",
            get(groups::describe).delete(groups::delete),
        )
        .route("/v1/groups/{group}/members", post(groups::join))
        .route(
            "/v1/groups/{group}/members/{member}",
            axum::routing::delete(groups::leave),
        )
        .route(
            "/v1/groups/{group}/members/{member}/heartbeat",
            post(groups::heartbeat),
        )
        .route("/v1/groups/{group}/records", get(groups::poll))
        .route("/v1/groups/{group}/offsets", post(groups::commit))
        .route("/v1/groups/{group}/reset", post(groups::reset))
        .route("/v1/queues", get(queues::list))
        .route(
            "/v1/queues/{queue}",
            get(queues::get).put(queues::put).delete(queues::delete),
        )
        .route("/v1/queues/{queue}/receive", post(queues::receive))
        .route("/v1/queues/{queue}/ack", post(queues::ack))
        .route("/v1/queues/{queue}/nack", post(queues::nack))
        .route("/v1/queues/{queue}/extend", post(queues::extend))
        .route("/v1/queues/{queue}/redrive", post(queues::redrive))
        .route(
            "/v1/queues/{queue}/records/{partition}/{offset}",
            get(queues::history),
        )
        // Gateway to gateway, not in the public API; with auth on it needs `admin` on `*`.
        .route("/internal/v1/commit", post(crate::committer::commit));
    // Only routed requests with an allowed method are checked; 404 and 405 stay as they are.
    let routes = match auth {
        Some(a) => routes.route_layer(axum::middleware::from_fn_with_state(a, auth::require)),
        None => routes,
    };
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(ensure_problem))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(crate::request_id::layer))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The object store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The object store answers", body = String, content_type = "text/plain"),
        (status = 503, description = "The object store does not answer", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(st): State<AppState>) -> ApiResult<&'static str> {
    // A GET of a key that never exists: cheap, and needs the store to answer.
    let probe = object_store::path::Path::from("_sluice/readyz-probe");
    match tokio::time::timeout(
        Duration::from_secs(3),
        store::get_opt(&**st.log.store(), &probe),
    )
    .await
    {
        Ok(Ok(_)) => Ok("ready"),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!("object store: {e}"))),
        Err(_) => Err(ApiError::Unavailable(
            "object store did not answer within 3 s".into(),
        )),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in the OpenMetrics text format (Prometheus scrapes it): the gateway's, its journal's, and in `sluice dev` the compactor's and the object store's", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics_text(State(st): State<AppState>) -> Response {
    let seen = st
        .committer
        .as_ref()
        .map_or(1, |c| c.gateways_seen(Duration::from_secs(60)));
    st.metrics.gateways_seen.set(seen as u64);
    (
        [(header::CONTENT_TYPE, sluice_core::metrics::CONTENT_TYPE)],
        st.metrics.render(),
    )
        .into_response()
}
