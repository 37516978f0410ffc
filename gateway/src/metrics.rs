//! Prometheus text-format metrics from plain atomic counters (no metrics crate).

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route template, status class) → count.
    requests: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    pub produce_requests: AtomicU64,
    pub produced_records: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub produce_duplicates: AtomicU64,
    pub produce_failures: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_requests: AtomicU64,
    pub flush_seconds_micros: AtomicU64,
    pub flushes_in_flight: AtomicU64,
    pub read_requests: AtomicU64,
    pub read_records: AtomicU64,
    pub sse_streams: AtomicU64,
    /// Produce requests answered 429 `overloaded`.
    pub produce_overloaded: AtomicU64,
    /// Bytes of produce requests accepted but not yet committed (see [`crate::overload`]).
    pub pending_bytes: AtomicU64,
    /// The most `pending_bytes` has ever been.
    pub pending_bytes_peak: AtomicU64,
    /// `max_pending_bytes`.
    pub pending_bytes_limit: AtomicU64,
    /// Queue backlog as last computed by this gateway: name → [ready, in_flight, dead_lettered].
    queues: Mutex<BTreeMap<String, [u64; 3]>>,
    /// Consumer-group lag as last seen by this gateway: (group, topic, partition) → records.
    group_lag: Mutex<BTreeMap<(String, String, u32), u64>>,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn inc(c: &AtomicU64) {
        add(c, 1);
    }

    pub fn add(c: &AtomicU64, n: u64) {
        add(c, n);
    }

    /// One flush of `requests` produce requests done in `took`.
    pub fn set_queue(&self, name: &str, v: [u64; 3]) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), v);
    }

    pub fn forget_queue(&self, name: &str) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    pub fn flush_done(&self, requests: usize, took: Duration) {
        add(&self.flushes, 1);
        add(&self.flush_requests, requests as u64);
        add(
            &self.flush_seconds_micros,
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        );
    }

    /// Set the lag gauge of a group's partition.
    pub fn group_lag(&self, group: &str, topic: &str, partition: u32, lag: u64) {
        let mut m = self.group_lag.lock().unwrap_or_else(|e| e.into_inner());
        m.insert((group.to_string(), topic.to_string(), partition), lag);
    }

    /// Drop the lag gauges of a deleted group.
    pub fn forget_group(&self, group: &str) {
        let mut m = self.group_lag.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|(g, _, _), _| g != group);
    }

    fn request(&self, method: &str, route: &str, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((method.to_string(), route.to_string(), class))
            .or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str(
            "# HELP sluice_http_requests_total HTTP requests by route and status class.\n",
        );
        out.push_str("# TYPE sluice_http_requests_total counter\n");
        {
            let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            for ((method, route, class), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "sluice_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{class}\"}} {n}",
                    escape(method),
                    escape(route)
                );
            }
        }
        let counters: [(&str, &str, &AtomicU64); 11] = [
            (
                "sluice_produce_requests_total",
                "Produce requests accepted for writing.",
                &self.produce_requests,
            ),
            (
                "sluice_produced_records_total",
                "Records committed (duplicates not counted).",
                &self.produced_records,
            ),
            (
                "sluice_produced_bytes_total",
                "Encoded record bytes committed.",
                &self.produced_bytes,
            ),
            (
                "sluice_produce_duplicates_total",
                "Produce requests answered from the idempotency window.",
                &self.produce_duplicates,
            ),
            (
                "sluice_produce_failures_total",
                "Produce requests that failed in the flush.",
                &self.produce_failures,
            ),
            (
                "sluice_flushes_total",
                "Flushes (segment write + commit).",
                &self.flushes,
            ),
            (
                "sluice_flush_requests_total",
                "Produce requests carried by flushes.",
                &self.flush_requests,
            ),
            (
                "sluice_read_requests_total",
                "Record reads (JSON and event streams).",
                &self.read_requests,
            ),
            (
                "sluice_read_records_total",
                "Records returned to readers.",
                &self.read_records,
            ),
            (
                "sluice_sse_streams_total",
                "Server-sent event streams opened.",
                &self.sse_streams,
            ),
            (
                "sluice_produce_overloaded_total",
                "Produce requests refused with 429 because max_pending_bytes was reached.",
                &self.produce_overloaded,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sluice_flushes_in_flight Flushes writing or committing now.\n\
             # TYPE sluice_flushes_in_flight gauge\nsluice_flushes_in_flight {}",
            get(&self.flushes_in_flight)
        );
        let gauges: [(&str, &str, &AtomicU64); 3] = [
            (
                "sluice_produce_pending_bytes",
                "Bytes of produce requests accepted but not yet committed.",
                &self.pending_bytes,
            ),
            (
                "sluice_produce_pending_bytes_max",
                "The most sluice_produce_pending_bytes has been since start.",
                &self.pending_bytes_peak,
            ),
            (
                "sluice_produce_pending_bytes_limit",
                "max_pending_bytes: beyond it produce requests are refused with 429.",
                &self.pending_bytes_limit,
            ),
        ];
        for (name, help, g) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                get(g)
            );
        }
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (name, help)) in [
            ("sluice_queue_ready", "Records a queue can lease now."),
            ("sluice_queue_in_flight", "Records under a valid lease."),
            (
                "sluice_queue_dead_lettered",
                "Records in the queue's dead-letter topic.",
            ),
        ]
        .iter()
        .enumerate()
        {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (q, v) in queues.iter() {
                let _ = writeln!(out, "{name}{{queue=\"{q}\"}} {}", v[i]);
            }
        }
        drop(queues);
        out.push_str(
            "# HELP sluice_group_lag Records between a consumer group's committed offset and the \
             end of the partition, as last seen by this gateway (describe, list, poll).\n\
             # TYPE sluice_group_lag gauge\n",
        );
        {
            let m = self.group_lag.lock().unwrap_or_else(|e| e.into_inner());
            for ((group, topic, partition), lag) in m.iter() {
                let _ = writeln!(
                    out,
                    "sluice_group_lag{{group=\"{}\",topic=\"{}\",partition=\"{partition}\"}} {lag}",
                    escape(group),
                    escape(topic)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sluice_flush_duration_seconds Time from segment write start to commit.\n\
             # TYPE sluice_flush_duration_seconds summary\n\
             sluice_flush_duration_seconds_sum {}\nsluice_flush_duration_seconds_count {}",
            get(&self.flush_seconds_micros) as f64 / 1e6,
            get(&self.flushes)
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: count every request by method, route template and status class.
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
    let resp = next.run(req).await;
    m.request(&method, &route, resp.status().as_u16());
    resp
}
