//! Metrics on `prometheus-client`: typed families in a [`Registry`] per component instance (a
//! gateway, its log, a compactor, a store wrapper), so several gateways in one test process
//! never share counters. A process serves the concatenation of its registries with [`render`].
//!
//! Naming follows the Prometheus conventions: base units in the name (`_seconds`, `_bytes`),
//! counters end in `_total` (the OpenMetrics encoder appends it: register counters without
//! it), histograms are `_seconds` with `_bucket` / `_sum` / `_count` series.
//!
//! Adding a metric is one field and one `register` line in the component's metrics struct;
//! [`Registry`] and the families are re-exported here so every crate uses one version.

pub use prometheus_client;
pub use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

use prometheus_client::metrics::histogram::exponential_buckets;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// A gauge of whole numbers (records, bytes, entries).
pub type GaugeU64 = Gauge<u64, AtomicU64>;
/// A gauge of fractional values (seconds).
pub type GaugeF64 = Gauge<f64, AtomicU64>;
/// A family of latency histograms, one per label set.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Bucket bounds of every latency histogram: 0.5 ms doubling to 16.4 s (16 buckets + `+Inf`),
/// wide enough for a local-disk fsync and a throttled S3 call alike.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 16)
}

/// A latency histogram with [`latency_buckets`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// A family of latency histograms with [`latency_buckets`].
pub fn latency_family<L>() -> HistogramFamily<L>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(latency_histogram as fn() -> Histogram)
}

/// Observe a duration in seconds.
pub fn observe(h: &Histogram, d: Duration) {
    h.observe(d.as_secs_f64());
}

/// The OpenMetrics text exposition of `registries`, in order, ending with `# EOF`. Metric
/// names must be unique across them (each component owns its prefix).
pub fn render(registries: &[&Registry]) -> String {
    let mut out = String::new();
    for r in registries {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, r);
    }
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the journal metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    pub shard: u32,
}

/// The journal's metrics, kept by each [`crate::log::Log`] in its own registry.
#[derive(Clone, Debug)]
pub struct JournalMetrics {
    /// `ShardLog::commit` from its first plan to the entry's creation (races and retries in).
    pub commit_seconds: HistogramFamily<ShardLabel>,
    /// Entries created by this process.
    pub entries: Family<ShardLabel, Counter>,
    /// Create-only PUTs of `head+1` that found another writer's entry there.
    pub conflicts: Family<ShardLabel, Counter>,
    /// Commits that failed (store errors, too many lost races, stale segments).
    pub commit_failures: Family<ShardLabel, Counter>,
    registry: Arc<Registry>,
}

impl Default for JournalMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl JournalMetrics {
    pub fn new() -> Self {
        let commit_seconds = latency_family();
        let entries = Family::<ShardLabel, Counter>::default();
        let conflicts = Family::<ShardLabel, Counter>::default();
        let commit_failures = Family::<ShardLabel, Counter>::default();
        let mut r = Registry::default();
        r.register(
            "sluice_journal_commit_duration_seconds",
            "Journal commits: from planning entry head+1 to its creation, lost races included",
            commit_seconds.clone(),
        );
        r.register(
            "sluice_journal_entries",
            "Journal entries created by this process",
            entries.clone(),
        );
        r.register(
            "sluice_journal_conflicts",
            "Journal commit races lost: entry head+1 had been created by another writer",
            conflicts.clone(),
        );
        r.register(
            "sluice_journal_commit_failures",
            "Journal commits that failed (store errors, races lost too often, stale segments)",
            commit_failures.clone(),
        );
        Self {
            commit_seconds,
            entries,
            conflicts,
            commit_failures,
            registry: Arc::new(r),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry, shared (to serve it with other registries).
    pub fn registry_arc(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gain_total_and_histograms_buckets_and_the_text_ends_with_eof() {
        let m = JournalMetrics::new();
        let s = ShardLabel { shard: 2 };
        m.conflicts.get_or_create(&s).inc();
        observe(
            &m.commit_seconds.get_or_create(&s),
            Duration::from_millis(3),
        );
        let text = render(&[m.registry()]);
        assert!(
            text.contains("sluice_journal_conflicts_total{shard=\"2\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sluice_journal_commit_duration_seconds_count{shard=\"2\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "sluice_journal_commit_duration_seconds_bucket{le=\"0.004\",shard=\"2\"} 1"
            ) || text.contains(
                "sluice_journal_commit_duration_seconds_bucket{shard=\"2\",le=\"0.004\"} 1"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn render_joins_registries_with_one_eof() {
        let a = JournalMetrics::new();
        let mut b = Registry::default();
        let g = GaugeU64::default();
        g.set(7);
        b.register("sluice_test_gauge", "A gauge.", g);
        let text = render(&[a.registry(), &b]);
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.contains("sluice_test_gauge 7"), "{text}");
    }
}
