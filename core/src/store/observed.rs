//! A wrapper store that observes every call: a latency histogram per operation and outcome,
//! and the bytes written and read, in its own metrics registry. `sluice dev`, `sluice gateway`
//! and `sluice compactor` wrap the store they open in it; it changes nothing about the calls.
//!
//! | operation | calls |
//! |---|---|
//! | `put` | `put_opts` (create-only or not), `put_multipart_opts` (the start of an upload) |
//! | `get` | `get_opts` (time to the answer's headers, not to the end of its body), `get_ranges` |
//! | `head` | `get_opts` with `head: true` |
//! | `list` | `list`, `list_with_offset` (time to the end of the listing), `list_with_delimiter` |
//! | `delete` | every path of `delete_stream` |
//! | `copy`, `rename` | `copy_opts`, `rename_opts` |
//!
//! Outcomes: `ok`, `not_found`, `already_exists` (a create-only PUT that lost), `precondition`
//! (a failed If-Match), `not_modified`, `error` (everything else: the store or network failed).

use crate::metrics::{latency_family, Counter, EncodeLabelSet, Family, HistogramFamily, Registry};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

/// The wrapper's metrics (shared by clones, and by the streams the store hands out).
#[derive(Clone, Debug)]
struct StoreMetrics {
    calls: HistogramFamily<CallLabels>,
    bytes: Family<DirectionLabel, Counter>,
}

impl StoreMetrics {
    fn observe<T>(&self, operation: &'static str, started: Instant, r: &Result<T>) {
        self.observe_as(operation, outcome(r), started);
    }

    fn observe_as(&self, operation: &'static str, outcome: &'static str, started: Instant) {
        self.calls
            .get_or_create(&CallLabels { operation, outcome })
            .observe(started.elapsed().as_secs_f64());
    }

    fn bytes(&self, direction: &'static str, n: u64) {
        self.bytes
            .get_or_create(&DirectionLabel { direction })
            .inc_by(n);
    }
}

/// The outcome label of a call's result.
pub fn outcome<T>(r: &Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(object_store::Error::NotFound { .. }) => "not_found",
        Err(object_store::Error::AlreadyExists { .. }) => "already_exists",
        Err(object_store::Error::Precondition { .. }) => "precondition",
        Err(object_store::Error::NotModified { .. }) => "not_modified",
        Err(_) => "error",
    }
}

pub struct Observed {
    inner: Arc<dyn ObjectStore>,
    metrics: StoreMetrics,
    registry: Arc<Registry>,
}

impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Observed({})", self.inner)
    }
}
impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Observed({})", self.inner)
    }
}

impl Observed {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        let metrics = StoreMetrics {
            calls: latency_family(),
            bytes: Family::default(),
        };
        let mut r = Registry::default();
        r.register(
            "sluice_object_store_request_duration_seconds",
            "Object-store calls by operation and outcome (a GET until its answer's headers, a \
             LIST until its last page)",
            metrics.calls.clone(),
        );
        r.register(
            "sluice_object_store_transferred_bytes",
            "Object bytes written (PUT bodies) and read (GET bodies, as answered)",
            metrics.bytes.clone(),
        );
        Arc::new(Self {
            inner,
            metrics,
            registry: Arc::new(r),
        })
    }

    /// The registry holding this store's metrics.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    fn observe_list(
        &self,
        operation: &'static str,
        stream: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        /// Records the listing when it ends or is dropped.
        struct Done {
            metrics: StoreMetrics,
            operation: &'static str,
            started: Instant,
            outcome: &'static str,
        }
        impl Drop for Done {
            fn drop(&mut self) {
                self.metrics
                    .observe_as(self.operation, self.outcome, self.started);
            }
        }
        let mut done = Done {
            metrics: self.metrics.clone(),
            operation,
            started: Instant::now(),
            outcome: "ok",
        };
        stream
            .map(move |item| {
                if item.is_err() && done.outcome == "ok" {
                    done.outcome = outcome(&item);
                }
                item
            })
            .boxed()
    }
}

#[async_trait]
impl ObjectStore for Observed {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let len = payload.content_length() as u64;
        let started = Instant::now();
        let r = self.inner.put_opts(location, payload, opts).await;
        self.metrics.observe("put", started, &r);
        if r.is_ok() {
            self.metrics.bytes("written", len);
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let started = Instant::now();
        let r = self.inner.put_multipart_opts(location, opts).await;
        self.metrics.observe("put", started, &r);
        r
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let operation = if options.head { "head" } else { "get" };
        let started = Instant::now();
        let r = self.inner.get_opts(location, options).await;
        self.metrics.observe(operation, started, &r);
        if let (Ok(g), "get") = (&r, operation) {
            self.metrics.bytes("read", g.range.end - g.range.start);
        }
        r
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let started = Instant::now();
        let r = self.inner.get_ranges(location, ranges).await;
        self.metrics.observe("get", started, &r);
        if let Ok(parts) = &r {
            self.metrics
                .bytes("read", parts.iter().map(|b| b.len() as u64).sum());
        }
        r
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Each path's result is observed with the time since the previous one (or the start).
        let metrics = self.metrics.clone();
        let mut last = Instant::now();
        self.inner
            .delete_stream(locations)
            .map(move |r| {
                metrics.observe("delete", last, &r);
                last = Instant::now();
                r
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.observe_list("list", self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.observe_list("list", self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let started = Instant::now();
        let r = self.inner.list_with_delimiter(prefix).await;
        self.metrics.observe("list", started, &r);
        r
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.copy_opts(from, to, options).await;
        self.metrics.observe("copy", started, &r);
        r
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let started = Instant::now();
        let r = self.inner.rename_opts(from, to, options).await;
        self.metrics.observe("rename", started, &r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::render;
    use crate::store::{get_opt, list_names, put_create, Created};
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    fn count(text: &str, operation: &str, outcome: &str) -> u64 {
        let want = format!(
            "sluice_object_store_request_duration_seconds_count{{operation=\"{operation}\",outcome=\"{outcome}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&want))
            .map_or(0, |v| v.trim().parse().expect("a count"))
    }

    #[tokio::test]
    async fn every_call_is_observed_by_operation_and_outcome() {
        let store = Observed::new(Arc::new(InMemory::new()));
        let key = Path::from("a/1");
        assert_eq!(
            put_create(&*store, &key, Bytes::from_static(b"hello"))
                .await
                .unwrap(),
            Created::Yes
        );
        assert_eq!(
            put_create(&*store, &key, Bytes::from_static(b"again"))
                .await
                .unwrap(),
            Created::AlreadyExists
        );
        assert!(get_opt(&*store, &key).await.unwrap().is_some());
        assert!(get_opt(&*store, &Path::from("a/2"))
            .await
            .unwrap()
            .is_none());
        store.head(&key).await.unwrap();
        assert_eq!(
            list_names(&*store, &Path::from("a"), None).await.unwrap(),
            vec!["1".to_string()]
        );
        store.delete(&key).await.unwrap();
        let text = render(&[&store.registry()]);
        assert_eq!(count(&text, "put", "ok"), 1, "{text}");
        assert_eq!(count(&text, "put", "already_exists"), 1, "{text}");
        assert_eq!(count(&text, "get", "ok"), 1, "{text}");
        assert_eq!(count(&text, "get", "not_found"), 1, "{text}");
        assert_eq!(count(&text, "head", "ok"), 1, "{text}");
        assert_eq!(count(&text, "list", "ok"), 1, "{text}");
        assert_eq!(count(&text, "delete", "ok"), 1, "{text}");
        assert!(
            text.contains("sluice_object_store_transferred_bytes_total{direction=\"written\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("sluice_object_store_transferred_bytes_total{direction=\"read\"} 5"),
            "{text}"
        );
    }
}
