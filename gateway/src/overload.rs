//! Back-pressure for producers. Produce requests accepted but not yet committed (queued in the
//! batcher or in a flush) hold a share of a byte budget, `max_pending_bytes`, through a
//! [`PendingPermit`]; the permit travels with the request into the batcher and is released when
//! the request's commit has finished, whatever its outcome (also for `ack=none`, whose answer is
//! sent before the commit). A request that does not fit in what is left of the budget is answered
//! at once with 429 `overloaded` and `Retry-After: 1`, so memory stays bounded when producers
//! send faster than the store accepts, instead of queueing without limit. A request larger
//! than the whole budget could never fit and is 413 `request_too_large`.
//!
//! The amount charged is the request body's length: the body (or the records decoded from it)
//! is what the gateway holds until the commit. When the request declares a `Content-Length`,
//! [`reserve_early`] charges it *before* the body is read, so the bodies of requests that will
//! be refused never occupy memory: with many more producers than the gateway can flush, memory
//! stays near the budget instead of growing with the number of connections. The refused body
//! is still read and dropped (up to [`DRAIN_MAX`] bytes, never held) before the answer goes out:
//! a server that answers and closes while the client is still sending makes the client's socket
//! fail with a broken pipe or reset, and the client never sees its 429 and `Retry-After`.

use crate::api::AppState;
use crate::error::ApiError;
use crate::metrics::Metrics;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The byte budget of produce requests in progress. Its counters are gauges of [`Metrics`]
/// (`sluice_produce_pending_bytes`, `…_max`, `…_limit`).
#[derive(Clone, Debug)]
pub struct PendingBudget {
    max: u64,
    metrics: Arc<Metrics>,
}

/// A share of the [`PendingBudget`]; given back when dropped.
#[derive(Debug)]
#[must_use = "the budget is given back when the permit is dropped"]
pub struct PendingPermit {
    bytes: u64,
    metrics: Arc<Metrics>,
}

impl Drop for PendingPermit {
    fn drop(&mut self) {
        self.metrics
            .pending_bytes
            .inner()
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl PendingBudget {
    pub fn new(max_bytes: usize, metrics: Arc<Metrics>) -> Self {
        let max = max_bytes as u64;
        metrics.pending_bytes_limit.set(max);
        Self { max, metrics }
    }

    /// Take `bytes` from the budget without waiting: 429 `overloaded` when they do not fit now,
    /// 413 when they never could.
    pub fn try_acquire(&self, bytes: usize) -> Result<PendingPermit, ApiError> {
        let bytes = bytes as u64;
        if bytes > self.max {
            return Err(ApiError::RequestTooLarge {
                max: usize::try_from(self.max).unwrap_or(usize::MAX),
            });
        }
        let pending = self.metrics.pending_bytes.inner();
        let mut now = pending.load(Ordering::Acquire);
        let total = loop {
            let total = now.saturating_add(bytes);
            if total > self.max {
                Metrics::inc(&self.metrics.produce_overloaded);
                return Err(ApiError::Overloaded(format!(
                    "the gateway holds {now} bytes of produce requests not yet committed and \
                     accepts at most {}; retry after `Retry-After`",
                    self.max
                )));
            }
            match pending.compare_exchange_weak(now, total, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break total,
                Err(actual) => now = actual,
            }
        };
        self.metrics
            .pending_bytes_peak
            .inner()
            .fetch_max(total, Ordering::Relaxed);
        Ok(PendingPermit {
            bytes,
            metrics: self.metrics.clone(),
        })
    }
}

/// OpenAPI: the 429 answer of produce.
pub struct OverloadDoc;

impl utoipa::Modify for OverloadDoc {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(op) = doc
            .paths
            .paths
            .get_mut("/v1/topics/{topic}/records")
            .and_then(|item| item.post.as_mut())
        {
            op.responses
                .responses
                .entry("429".into())
                .or_insert_with(|| {
                    crate::api::openapi::problem_response(
                        "Too many bytes of produce requests are waiting for their commit on this \
                     gateway; retry after `Retry-After` (`overloaded`)",
                    )
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_bounded_and_released() {
        let m = Metrics::new();
        let b = PendingBudget::new(100, m.clone());
        let p1 = b.try_acquire(60).unwrap();
        let p2 = b.try_acquire(40).unwrap();
        assert_eq!(b.try_acquire(1).unwrap_err().kind().code, "overloaded");
        assert_eq!(
            b.try_acquire(101).unwrap_err().kind().code,
            "request_too_large"
        );
        drop(p1);
        let p3 = b.try_acquire(50).unwrap();
        assert_eq!(m.pending_bytes.get(), 90);
        drop((p2, p3));
        assert_eq!(m.pending_bytes.get(), 0);
        assert_eq!(m.pending_bytes_peak.get(), 100);
        assert_eq!(m.produce_overloaded.get(), 1);
    }
}

/// A budget share taken by [`reserve_early`], handed to the produce handler through the
/// request's extensions.
#[derive(Clone, Debug, Default)]
pub struct EarlyPermit(Arc<Mutex<Option<PendingPermit>>>);

impl EarlyPermit {
    /// The permit, once (`None` if already taken).
    pub fn take(&self) -> Option<PendingPermit> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Produce middleware: charge the budget by the declared `Content-Length` before the body is
/// read; 429 (or 413) at once when it does not fit. Requests without a length are charged by
/// the handler after reading, as before.
pub async fn reserve_early(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<usize>().ok());
    if let Some(len) = declared {
        match st.pending.try_acquire(len) {
            Ok(permit) => {
                req.extensions_mut()
                    .insert(EarlyPermit(Arc::new(Mutex::new(Some(permit)))));
            }
            Err(e) => {
                if len <= DRAIN_MAX {
                    drain(req.into_body()).await;
                }
                return e.into_response();
            }
        }
    }
    next.run(req).await
}

/// The largest refused body [`reserve_early`] reads to the end before answering; a larger one
/// is answered at once (its sender may then see the connection reset instead of the answer).
pub const DRAIN_MAX: usize = 1 << 20;

/// Read a body to its end (at most [`DRAIN_MAX`] bytes), dropping each chunk as it comes.
async fn drain(body: axum::body::Body) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len();
        if read > DRAIN_MAX {
            break;
        }
    }
}
