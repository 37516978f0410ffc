//! A wrapper store that counts requests and injects faults, deterministically from a seed.
//! Tests use it to count GETs, to fail a given fraction of calls, to lose the answer of a PUT
//! that did succeed, and to "crash" a component at its N-th store call.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to inject. Rates are probabilities per call in `0.0..=1.0`.
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// Fail the call before it reaches the store.
    pub error_rate: f64,
    /// Let a PUT or DELETE reach the store, then report an error anyway (the answer was lost).
    pub lost_reply_rate: f64,
    /// Added latency per call: uniformly between the two bounds.
    pub latency: Option<(Duration, Duration)>,
    /// Added latency per PUT, drawn from a distribution (instead of `latency`), e.g. S3
    /// Standard's conditional PUT: p50 60 ms, p99 150 ms.
    pub put_latency: Option<LatencyDist>,
    /// Added latency per GET, LIST and DELETE, drawn from a distribution (instead of `latency`).
    pub get_latency: Option<LatencyDist>,
    /// Fail like S3's `503 SlowDown` (throttling; retryable).
    pub slow_down_rate: f64,
    /// Answer a create-only PUT with "already exists" (412) without writing: a conflict storm.
    pub conflict_rate: f64,
    /// Hang this long, then fail like a client time-out (the call does not reach the store).
    pub timeout: Option<(f64, Duration)>,
    /// Only calls whose key starts with this are faulted (`None` = all).
    pub only_prefix: Option<String>,
    /// Only reads (GET, HEAD) are faulted: a key that can be written but not read back.
    pub only_reads: bool,
    /// Crash: every call numbered above this (1-based, counting all calls) fails.
    pub crash_after_calls: Option<u64>,
}

/// A latency distribution given by its median and 99th percentile: log-normal, the usual
/// shape of object-store request latencies (capped at 4 × p99).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyDist {
    pub p50: Duration,
    pub p99: Duration,
}

impl LatencyDist {
    /// The latency for a standard-normal draw `z`.
    pub fn at(&self, z: f64) -> Duration {
        let p50 = self.p50.as_secs_f64();
        let p99 = self.p99.as_secs_f64().max(p50);
        // 2.3263 = the standard normal's 99th percentile.
        let sigma = if p50 > 0.0 {
            (p99 / p50).ln() / 2.3263
        } else {
            0.0
        };
        let d = (p50 * (sigma * z).exp()).min(4.0 * p99);
        Duration::from_secs_f64(d.max(0.0))
    }
}

/// Requests seen by the wrapper, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub put: u64,
    pub get: u64,
    pub list: u64,
    pub delete: u64,
    pub put_bytes: u64,
    pub get_bytes: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.put + self.get + self.list + self.delete
    }
}

#[derive(Default)]
struct Counters {
    put: AtomicU64,
    get: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    put_bytes: AtomicU64,
    get_bytes: AtomicU64,
    heads: AtomicU64,
    calls: AtomicU64,
}

pub struct Instrumented {
    inner: Arc<dyn ObjectStore>,
    state: Arc<State>,
}

/// Shared by the store and the streams it hands out.
struct State {
    config: Mutex<FaultConfig>,
    rng: Mutex<u64>,
    counters: Counters,
    /// Requests per area: the key's first path segment (`segments`, `journal`, `data`, …).
    by_area: Mutex<BTreeMap<String, Counts>>,
}

impl fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}
impl fmt::Display for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Put,
    Get,
    List,
    Delete,
}

/// What `before` decided for a call.
enum Fate {
    Run,
    /// Run it, then report an error anyway.
    LoseReply,
    /// Do not run it; answer "already exists".
    Conflict,
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "Instrumented",
        source: format!("injected fault: {what}").into(),
    }
}

impl Instrumented {
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            inner,
            state: Arc::new(State {
                config: Mutex::new(FaultConfig::default()),
                rng: Mutex::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
                counters: Counters::default(),
                by_area: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    pub fn set_faults(&self, config: FaultConfig) {
        *self.state.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub fn counts(&self) -> Counts {
        let c = &self.state.counters;
        Counts {
            put: c.put.load(Ordering::Relaxed),
            get: c.get.load(Ordering::Relaxed),
            list: c.list.load(Ordering::Relaxed),
            delete: c.delete.load(Ordering::Relaxed),
            put_bytes: c.put_bytes.load(Ordering::Relaxed),
            get_bytes: c.get_bytes.load(Ordering::Relaxed),
        }
    }

    /// Requests so far per area of the bucket: the first path segment of the key (of the
    /// prefix for a LIST; "" for the root). Bytes are not split by area.
    pub fn counts_by_area(&self) -> BTreeMap<String, Counts> {
        self.state
            .by_area
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// HEAD requests so far (`get_opts` with `head: true`). Each is counted in
    /// [`Counts::get`] too, as before this counter existed.
    pub fn heads(&self) -> u64 {
        self.state.counters.heads.load(Ordering::Relaxed)
    }

    /// Number of store calls so far (what `crash_after_calls` counts).
    pub fn calls(&self) -> u64 {
        self.state.counters.calls.load(Ordering::SeqCst)
    }
}

impl State {
    fn random(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        // xorshift64*
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard-normal draw (Box-Muller).
    fn normal(&self) -> f64 {
        let u1 = self.random().max(f64::MIN_POSITIVE);
        let u2 = self.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Count the call and decide its fate: `Err` = fail before the store.
    async fn before(&self, kind: Kind, key: &str) -> Result<Fate> {
        let n = self.counters.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let c = &self.counters;
        match kind {
            Kind::Put => &c.put,
            Kind::Get => &c.get,
            Kind::List => &c.list,
            Kind::Delete => &c.delete,
        }
        .fetch_add(1, Ordering::Relaxed);
        {
            let area = key.split('/').next().unwrap_or_default();
            let mut by_area = self.by_area.lock().unwrap_or_else(|e| e.into_inner());
            let counts = match by_area.get_mut(area) {
                Some(c) => c,
                None => by_area.entry(area.to_string()).or_default(),
            };
            match kind {
                Kind::Put => counts.put += 1,
                Kind::Get => counts.get += 1,
                Kind::List => counts.list += 1,
                Kind::Delete => counts.delete += 1,
            }
        }
        let cfg = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if cfg.crash_after_calls.is_some_and(|limit| n > limit) {
            return Err(injected("crashed"));
        }
        if cfg
            .only_prefix
            .as_ref()
            .is_some_and(|p| !key.starts_with(p.as_str()))
        {
            return Ok(Fate::Run);
        }
        if cfg.only_reads && kind != Kind::Get {
            return Ok(Fate::Run);
        }
        let dist = match kind {
            Kind::Put => cfg.put_latency,
            Kind::Get | Kind::List | Kind::Delete => cfg.get_latency,
        };
        if let Some(dist) = dist {
            tokio::time::sleep(dist.at(self.normal())).await;
        } else if let Some((lo, hi)) = cfg.latency {
            let extra = (hi.saturating_sub(lo)).mul_f64(self.random());
            tokio::time::sleep(lo + extra).await;
        }
        if let Some((rate, hang)) = cfg.timeout {
            if self.random() < rate {
                tokio::time::sleep(hang).await;
                return Err(injected("timed out"));
            }
        }
        if cfg.error_rate > 0.0 && self.random() < cfg.error_rate {
            return Err(injected("error"));
        }
        if cfg.slow_down_rate > 0.0 && self.random() < cfg.slow_down_rate {
            return Err(injected("503 SlowDown: please reduce your request rate"));
        }
        let mutating = matches!(kind, Kind::Put | Kind::Delete);
        if mutating && cfg.conflict_rate > 0.0 && self.random() < cfg.conflict_rate {
            return Ok(Fate::Conflict);
        }
        if mutating && cfg.lost_reply_rate > 0.0 && self.random() < cfg.lost_reply_rate {
            return Ok(Fate::LoseReply);
        }
        Ok(Fate::Run)
    }
}

#[async_trait]
impl ObjectStore for Instrumented {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let fate = self.state.before(Kind::Put, location.as_ref()).await?;
        if matches!(fate, Fate::Conflict) && opts.mode == object_store::PutMode::Create {
            return Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "injected conflict".into(),
            });
        }
        self.state
            .counters
            .put_bytes
            .fetch_add(payload.content_length() as u64, Ordering::Relaxed);
        let r = self.inner.put_opts(location, payload, opts).await?;
        if matches!(fate, Fate::LoseReply) {
            return Err(injected("put succeeded, answer lost"));
        }
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.state.before(Kind::Put, location.as_ref()).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let head = options.head;
        if head {
            self.state.counters.heads.fetch_add(1, Ordering::Relaxed);
        }
        self.state.before(Kind::Get, location.as_ref()).await?;
        let r = self.inner.get_opts(location, options).await?;
        // A HEAD answers the object's range but sends no body.
        let len = if head { 0 } else { r.range.end - r.range.start };
        self.state
            .counters
            .get_bytes
            .fetch_add(len, Ordering::Relaxed);
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.state.before(Kind::Get, location.as_ref()).await?;
        let r = self.inner.get_ranges(location, ranges).await?;
        let len: usize = r.iter().map(Bytes::len).sum();
        self.state
            .counters
            .get_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        Ok(r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Route every delete through `before` one by one so each is counted and faulted.
        let state = self.state.clone();
        let inner = self.inner.clone();
        locations
            .then(move |loc| {
                let state = state.clone();
                let inner = inner.clone();
                async move {
                    let loc = loc?;
                    let fate = state.before(Kind::Delete, loc.as_ref()).await?;
                    let mut out = inner.delete_stream(stream::iter([Ok(loc.clone())]).boxed());
                    let r = out.next().await.unwrap_or(Ok(loc))?;
                    if matches!(fate, Fate::LoseReply) {
                        return Err(injected("delete succeeded, answer lost"));
                    }
                    Ok(r)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.list_impl(prefix, None)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.list_impl(prefix, Some(offset.clone()))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        self.state.before(Kind::List, &key).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.state.before(Kind::Put, to.as_ref()).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.state.before(Kind::Put, to.as_ref()).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

impl Instrumented {
    fn list_impl(
        &self,
        prefix: Option<&Path>,
        offset: Option<Path>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        let state = self.state.clone();
        stream::once(async move {
            match state.before(Kind::List, &key).await {
                Err(e) => stream::iter([Err(e)]).boxed(),
                Ok(_) => match offset {
                    Some(o) => inner.list_with_offset(prefix.as_ref(), &o),
                    None => inner.list(prefix.as_ref()),
                },
            }
        })
        .flatten()
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_dist_hits_its_median_and_p99_and_is_capped() {
        let d = LatencyDist {
            p50: Duration::from_millis(60),
            p99: Duration::from_millis(150),
        };
        let ms = |z: f64| d.at(z).as_secs_f64() * 1000.0;
        assert!((ms(0.0) - 60.0).abs() < 0.01);
        assert!((ms(2.3263) - 150.0).abs() < 0.1);
        assert!(ms(-1.0) < 60.0 && ms(1.0) > 60.0);
        assert!((ms(100.0) - 600.0).abs() < 0.01, "capped at 4 x p99");
    }

    #[tokio::test]
    async fn heads_are_counted_apart_and_within_gets() {
        use object_store::ObjectStoreExt;
        let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let s = Instrumented::new(inner, 1);
        let key = Path::from("a/b");
        s.put(&key, PutPayload::from_static(b"hello"))
            .await
            .unwrap();
        s.head(&key).await.unwrap();
        s.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(s.heads(), 1);
        assert_eq!(s.counts().get, 2);
        assert_eq!(s.counts().get_bytes, 5, "a HEAD reads no bytes");
    }

    #[tokio::test]
    async fn requests_are_counted_per_area() {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let s = Instrumented::new(inner, 1);
        for key in ["segments/1", "segments/2", "journal/00000/1"] {
            s.put(&Path::from(key), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        s.get(&Path::from("journal/00000/1")).await.unwrap();
        let listed: Vec<_> = s
            .list(Some(&Path::from("segments")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 2);
        let by = s.counts_by_area();
        assert_eq!((by["segments"].put, by["segments"].list), (2, 1));
        assert_eq!((by["journal"].put, by["journal"].get), (1, 1));
        let total: u64 = by.values().map(Counts::total).sum();
        assert_eq!(total, s.counts().total());
    }
}
