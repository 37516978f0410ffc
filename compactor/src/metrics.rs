//! The compactor's metrics (prometheus-client, one registry per compactor instance). `sluice
//! compactor --metrics-listen ADDR` serves them at `/metrics`; `sluice dev` and `sluice
//! gateway --with-compactor` serve them with the gateway's.
//!
//! Lag is measured by the passes: at the start of a pass, per shard, the age of the oldest
//! journal entry not yet folded; after the fold, what the pass left (entries still unfolded,
//! 0 s when it reached the end). Only the instance holding the lease folds, so read the lag
//! of the one whose `sluice_compactor_leader` is 1 (or `max` over instances).

use prometheus_client::encoding::EncodeLabelSet;
use sluice_core::metrics::{
    latency_histogram, Counter, Family, GaugeF64, GaugeU64, Histogram, Registry, ShardLabel,
};
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok` or `error`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug)]
pub struct CompactorMetrics {
    pub lag_seconds: Family<ShardLabel, GaugeF64>,
    pub lag_entries: Family<ShardLabel, GaugeU64>,
    pub passes: Family<OutcomeLabel, Counter>,
    pub pass_seconds: Histogram,
    pub entries_folded: Counter,
    pub segments_deleted: Counter,
    pub journal_deleted: Counter,
    pub retention_deleted: Counter,
    pub leader: GaugeU64,
    pub last_pass_timestamp: GaugeF64,
    registry: Arc<Registry>,
}

impl Default for CompactorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CompactorMetrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        macro_rules! reg {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                r.register($name, $help, m.clone());
                m
            }};
        }
        let lag_seconds = reg!(
            "sluice_compactor_lag_seconds",
            "Per shard: age of the oldest journal entry not yet folded into the index (0 when \
             caught up), as of the last pass",
            Family::<ShardLabel, GaugeF64>::default()
        );
        let lag_entries = reg!(
            "sluice_compactor_lag_entries",
            "Per shard: journal entries not yet folded into the index, as of the last pass",
            Family::<ShardLabel, GaugeU64>::default()
        );
        let passes = reg!(
            "sluice_compactor_passes",
            "Compaction passes by outcome",
            Family::<OutcomeLabel, Counter>::default()
        );
        let pass_seconds = reg!(
            "sluice_compactor_pass_duration_seconds",
            "Compaction passes: fold, truncation, GC, retention and tables",
            latency_histogram()
        );
        let entries_folded = reg!(
            "sluice_compactor_folded_entries",
            "Journal entries folded into index and data objects",
            Counter::default()
        );
        let segments_deleted = reg!(
            "sluice_compactor_deleted_segments",
            "Flush segments deleted after they were folded (or orphaned past the grace period)",
            Counter::default()
        );
        let journal_deleted = reg!(
            "sluice_compactor_deleted_journal_entries",
            "Journal entries deleted far behind the checkpoint",
            Counter::default()
        );
        let retention_deleted = reg!(
            "sluice_compactor_retention_deleted_objects",
            "Index and data objects deleted by retention",
            Counter::default()
        );
        let leader = reg!(
            "sluice_compactor_leader",
            "1 while this compactor holds the lease (the active instance), else 0",
            GaugeU64::default()
        );
        let last_pass_timestamp = reg!(
            "sluice_compactor_last_pass_timestamp_seconds",
            "Unix time the last pass ended (successful or not)",
            GaugeF64::default()
        );
        Self {
            lag_seconds,
            lag_entries,
            passes,
            pass_seconds,
            entries_folded,
            segments_deleted,
            journal_deleted,
            retention_deleted,
            leader,
            last_pass_timestamp,
            registry: Arc::new(r),
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    pub fn set_lag(&self, shard: u32, seconds: Option<f64>, entries: Option<u64>) {
        let l = ShardLabel { shard };
        if let Some(s) = seconds {
            self.lag_seconds.get_or_create(&l).set(s.max(0.0));
        }
        if let Some(e) = entries {
            self.lag_entries.get_or_create(&l).set(e);
        }
    }
}
