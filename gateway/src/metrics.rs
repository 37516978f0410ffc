//! The gateway's metrics on `prometheus-client` (see `sluice_core::metrics`): one registry per
//! gateway instance, so in-process tests with several gateways never share a counter.
//! `GET /metrics` serves this registry, the log's (journal commits) and any the process adds
//! ([`crate::GatewayConfig::metrics_also`]: `sluice dev`'s compactor and store wrapper), as
//! OpenMetrics text.
//!
//! Adding a metric: a field here and one `register` line in [`Metrics::new`].

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use sluice_core::metrics::{
    latency_family, latency_histogram, render, Counter, EncodeLabelSet, Family, GaugeU64,
    Histogram, HistogramFamily, Registry,
};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AckLabel {
    /// `durable` or `none`.
    pub ack: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
    pub topic: String,
    pub partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Registries served after this one (the log's, and what the process adds).
    also: Mutex<Vec<Arc<Registry>>>,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RouteLabels>,
    pub produce_requests: Counter,
    /// Produce requests from arrival to answer, by `ack` mode.
    pub produce_request_seconds: HistogramFamily<AckLabel>,
    /// From handing a request to the batcher to its commit's outcome (the durable ack).
    pub produce_ack_seconds: Histogram,
    pub produced_records: Counter,
    pub produced_bytes: Counter,
    pub produce_duplicates: Counter,
    pub produce_failures: Counter,
    pub flushes: Counter,
    pub flush_requests: Counter,
    pub flush_seconds: Histogram,
    pub flushes_in_flight: GaugeU64,
    pub read_requests: Counter,
    /// Reading records from the log (topic look-up, index and segment GETs), without the
    /// long-poll wait.
    pub read_seconds: Histogram,
    pub read_records: Counter,
    /// Bytes of the records returned (key + value + headers, as stored).
    pub read_bytes: Counter,
    pub sse_streams: Counter,
    /// Produce requests answered 429 `overloaded`.
    pub produce_overloaded: Counter,
    /// Bytes of produce requests accepted but not yet committed (see [`crate::overload`]).
    pub pending_bytes: GaugeU64,
    /// The most `pending_bytes` has ever been.
    pub pending_bytes_peak: GaugeU64,
    /// `max_pending_bytes`.
    pub pending_bytes_limit: GaugeU64,
    group_lag: Family<GroupLabels, GaugeU64>,
    /// The label sets of `group_lag`, to drop a deleted group's.
    group_keys: Mutex<BTreeSet<GroupLabels>>,
    queue_ready: Family<QueueLabel, GaugeU64>,
    queue_in_flight: Family<QueueLabel, GaugeU64>,
    queue_dead_lettered: Family<QueueLabel, GaugeU64>,
    /// Set when `/metrics` is rendered (see [`crate::committer::CommitRouter::gateways_seen`]).
    pub gateways_seen: GaugeU64,
}

impl PartialOrd for GroupLabels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for GroupLabels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.group, &self.topic, self.partition).cmp(&(
            &other.group,
            &other.topic,
            other.partition,
        ))
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut r = Registry::default();
        macro_rules! reg {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                r.register($name, $help, m.clone());
                m
            }};
        }
        let requests = reg!(
            "sluice_http_requests",
            "HTTP requests by method, route and status class",
            Family::<RequestLabels, Counter>::default()
        );
        let request_seconds = reg!(
            "sluice_http_request_duration_seconds",
            "HTTP requests from arrival to the answer's headers (long-polls include their wait), \
             by method and route",
            latency_family::<RouteLabels>()
        );
        let produce_requests = reg!(
            "sluice_produce_requests",
            "Produce requests accepted for writing",
            Counter::default()
        );
        let produce_request_seconds = reg!(
            "sluice_produce_request_duration_seconds",
            "Produce requests accepted for writing, from arrival to answer, by ack mode",
            latency_family::<AckLabel>()
        );
        let produce_ack_seconds = reg!(
            "sluice_produce_ack_duration_seconds",
            "From a produce request's hand-over to the batcher to its commit (the durable ack): \
             linger, segment PUT and journal commit",
            latency_histogram()
        );
        let produced_records = reg!(
            "sluice_produced_records",
            "Records committed (duplicates not counted)",
            Counter::default()
        );
        let produced_bytes = reg!(
            "sluice_produced_bytes",
            "Encoded record bytes committed",
            Counter::default()
        );
        let produce_duplicates = reg!(
            "sluice_produce_duplicates",
            "Produce requests answered from the idempotency window",
            Counter::default()
        );
        let produce_failures = reg!(
            "sluice_produce_failures",
            "Produce requests that failed in the flush",
            Counter::default()
        );
        let flushes = reg!(
            "sluice_flushes",
            "Flushes (segment write + commit)",
            Counter::default()
        );
        let flush_requests = reg!(
            "sluice_flush_requests",
            "Produce requests carried by flushes",
            Counter::default()
        );
        let flush_seconds = reg!(
            "sluice_flush_duration_seconds",
            "Time from segment write start to commit",
            latency_histogram()
        );
        let flushes_in_flight = reg!(
            "sluice_flushes_in_flight",
            "Flushes writing or committing now",
            GaugeU64::default()
        );
        let read_requests = reg!(
            "sluice_read_requests",
            "Record reads (JSON and event streams)",
            Counter::default()
        );
        let read_seconds = reg!(
            "sluice_read_duration_seconds",
            "Reading records from the log for a read, event stream or group poll (not the long-poll wait)",
            latency_histogram()
        );
        let read_records = reg!(
            "sluice_read_records",
            "Records returned to readers",
            Counter::default()
        );
        let read_bytes = reg!(
            "sluice_read_bytes",
            "Bytes of the records returned to readers (key, value and headers as stored)",
            Counter::default()
        );
        let sse_streams = reg!(
            "sluice_sse_streams",
            "Server-sent event streams opened",
            Counter::default()
        );
        let produce_overloaded = reg!(
            "sluice_produce_overloaded",
            "Produce requests refused with 429 because max_pending_bytes was reached",
            Counter::default()
        );
        let pending_bytes = reg!(
            "sluice_produce_pending_bytes",
            "Bytes of produce requests accepted but not yet committed",
            GaugeU64::default()
        );
        let pending_bytes_peak = reg!(
            "sluice_produce_pending_bytes_max",
            "The most sluice_produce_pending_bytes has been since start",
            GaugeU64::default()
        );
        let pending_bytes_limit = reg!(
            "sluice_produce_pending_bytes_limit",
            "max_pending_bytes: beyond it produce requests are refused with 429",
            GaugeU64::default()
        );
        let group_lag = reg!(
            "sluice_group_lag",
            "Records between a consumer group's committed offset and the end of the partition, \
             as last seen by this gateway (describe, list, poll)",
            Family::<GroupLabels, GaugeU64>::default()
        );
        let queue_ready = reg!(
            "sluice_queue_ready",
            "Records a queue can lease now",
            Family::<QueueLabel, GaugeU64>::default()
        );
        let queue_in_flight = reg!(
            "sluice_queue_in_flight",
            "Records under a valid lease",
            Family::<QueueLabel, GaugeU64>::default()
        );
        let queue_dead_lettered = reg!(
            "sluice_queue_dead_lettered",
            "Records in the queue's dead-letter topic",
            Family::<QueueLabel, GaugeU64>::default()
        );
        let gateways_seen = reg!(
            "sluice_gateways_seen",
            "Gateways this one saw in the last minute, itself included: the shard committers it \
             hands commits to and the gateways that handed it theirs (1 without election)",
            GaugeU64::default()
        );
        Arc::new(Self {
            gateways_seen,
            registry: r,
            also: Mutex::new(Vec::new()),
            requests,
            request_seconds,
            produce_requests,
            produce_request_seconds,
            produce_ack_seconds,
            produced_records,
            produced_bytes,
            produce_duplicates,
            produce_failures,
            flushes,
            flush_requests,
            flush_seconds,
            flushes_in_flight,
            read_requests,
            read_seconds,
            read_records,
            read_bytes,
            sse_streams,
            produce_overloaded,
            pending_bytes,
            pending_bytes_peak,
            pending_bytes_limit,
            group_lag,
            group_keys: Mutex::new(BTreeSet::new()),
            queue_ready,
            queue_in_flight,
            queue_dead_lettered,
        })
    }

    pub fn inc(c: &Counter) {
        c.inc();
    }

    pub fn add(c: &Counter, n: u64) {
        c.inc_by(n);
    }

    /// Serve `registry` at `/metrics` too, after this gateway's own metrics.
    pub fn also_serve(&self, registry: Arc<Registry>) {
        self.also
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(registry);
    }

    /// A queue's backlog: [ready, in_flight, dead_lettered].
    pub fn set_queue(&self, name: &str, v: [u64; 3]) {
        let l = QueueLabel {
            queue: name.to_string(),
        };
        self.queue_ready.get_or_create(&l).set(v[0]);
        self.queue_in_flight.get_or_create(&l).set(v[1]);
        self.queue_dead_lettered.get_or_create(&l).set(v[2]);
    }

    pub fn forget_queue(&self, name: &str) {
        let l = QueueLabel {
            queue: name.to_string(),
        };
        self.queue_ready.remove(&l);
        self.queue_in_flight.remove(&l);
        self.queue_dead_lettered.remove(&l);
    }

    /// One flush of `requests` produce requests done in `took`.
    pub fn flush_done(&self, requests: usize, took: Duration) {
        self.flushes.inc();
        self.flush_requests.inc_by(requests as u64);
        self.flush_seconds.observe(took.as_secs_f64());
    }

    /// Set the lag gauge of a group's partition.
    pub fn group_lag(&self, group: &str, topic: &str, partition: u32, lag: u64) {
        let l = GroupLabels {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        };
        self.group_lag.get_or_create(&l).set(lag);
        self.group_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(l);
    }

    /// Drop the lag gauges of a deleted group.
    pub fn forget_group(&self, group: &str) {
        let mut keys = self.group_keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.retain(|l| {
            let keep = l.group != group;
            if !keep {
                self.group_lag.remove(l);
            }
            keep
        });
    }

    /// The OpenMetrics text exposition of this gateway and the registries it also serves.
    pub fn render(&self) -> String {
        let also = self.also.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut all: Vec<&Registry> = vec![&self.registry];
        all.extend(also.iter().map(|r| &**r));
        render(&all)
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Middleware: count and time every request by method, route template and status class.
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    // Only well-known methods become labels, so clients cannot grow the label set.
    let method = match *req.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => req.method().as_str().to_string(),
        _ => "OTHER".to_string(),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    m.request_seconds
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: status_class(resp.status().as_u16()),
        })
        .inc();
    resp
}

/// Serve `registries` at `GET /metrics` (and `GET /healthz`) on `listener` until `shutdown`
/// completes: the compactor's `--metrics-listen`.
pub async fn serve_registries(
    listener: tokio::net::TcpListener,
    registries: Vec<Arc<Registry>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let text = move || {
        let registries = registries.clone();
        async move {
            let all: Vec<&Registry> = registries.iter().map(|r| &**r).collect();
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    sluice_core::metrics::CONTENT_TYPE,
                )],
                render(&all),
            )
        }
    };
    let app = axum::Router::new()
        .route("/metrics", get(text))
        .route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
