//! The compactor: folds journal entries into per-partition index and data objects, writes
//! checkpoints, truncates the journal far behind them, deletes garbage segments and applies
//! retention. One instance is active at a time (see [`lease`]); every step is idempotent, so a
//! compactor that crashes anywhere and restarts converges to the same state.
//!
//! One pass over a shard:
//! 1. load the newest checkpoint `C` and read journal entries `C+1 ..` until the first missing;
//! 2. per partition, copy the new batches' frames (CRC-checked) from their flush segments into
//!    one data object `data/{topic}/{p}/{base}-{end}` and write its index object (both
//!    create-only; an existing one from an earlier attempt is kept);
//! 3. write checkpoint `checkpoints/{shard}/{last seq}`;
//! 4. delete journal entries that are both `truncate_keep_entries` behind the checkpoint and
//!    older than `truncate_min_age_ms`.
//!
//! After a pass that folded every shard to its end, flush segments older than `gc_grace_ms` are
//! unreferenced (writers never commit a segment older than the commit deadline) and deleted.
//!
//! Topics with `parquet: true` are then appended to their Parquet tables by `sluice-tables`
//! (after a pass that folded something, while a table has a backlog, and with retention).

pub use sluice_core::lease;

pub mod metrics;

use metrics::{CompactorMetrics, OutcomeLabel};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use lease::Lease;
use object_store::PutPayload;
use sluice_core::clock::Clock;
use sluice_core::error::{Error, Result};
use sluice_core::format::checkpoint::{Checkpoint, RunRef, Slice};
use sluice_core::format::index::{IndexObject, Summary};
use sluice_core::format::journal::{BatchRef, JournalEntry};
use sluice_core::format::run::{decode_slice, index_entries, slice_of_run, RunBuilder, SliceBatch};
use sluice_core::format::segment::{decode_frame, segment_header, SEGMENT_HEADER_LEN};
use sluice_core::head::HeadState;
use sluice_core::ids::{new_ulid, ObjectId, PartitionId, TopicId};
use sluice_core::keys::{self, IndexKey};
use sluice_core::store::{self, DynStore};
use sluice_core::topic::{TopicConfig, Topics};
use sluice_tables::{Tables, TablesConfig};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct CompactorConfig {
    pub lease_duration: Duration,
    /// Pause between passes.
    pub interval: Duration,
    /// Most journal entries folded per shard per pass.
    pub max_entries_per_pass: usize,
    /// Most record bytes folded per shard per pass (the compactor holds them in memory while it
    /// writes the data objects); a backlog is folded over several passes.
    pub max_bytes_per_pass: u64,
    /// Dedup window written into checkpoints (must match the gateways').
    pub dedup_window_ms: i64,
    /// Unreferenced segments younger than this are never deleted. Must exceed the writers'
    /// commit deadline by a wide margin.
    pub gc_grace_ms: i64,
    /// Journal entries kept behind the newest checkpoint, whatever their age.
    pub truncate_keep_entries: u64,
    /// Journal entries younger than this are never deleted. Must exceed the writers'
    /// `max_head_age` by a wide margin.
    pub truncate_min_age_ms: i64,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// Parquet tables of the topics that ask for them.
    pub tables: TablesConfig,
    /// A partition gets its own data and index objects once it has at least this many bytes
    /// not yet in them (in the shard's shared runs plus this pass); below that its records go
    /// into the pass's shared run, so the objects a pass writes do not grow with the number of
    /// partitions it touches. 0: every partition always gets its own objects.
    pub own_object_bytes: u64,
    /// This many consecutive shared runs of one level are merged into one of the next level.
    pub merge_fan_in: usize,
    /// Runs are merged only while the merged run stays at most this long.
    pub max_run_bytes: u64,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(30),
            interval: Duration::from_millis(1000),
            max_entries_per_pass: 10_000,
            max_bytes_per_pass: 64 << 20,
            dedup_window_ms: 10 * 60_000,
            gc_grace_ms: 10 * 60_000,
            truncate_keep_entries: 1000,
            truncate_min_age_ms: 15 * 60_000,
            retention_interval: Duration::from_secs(60),
            tables: TablesConfig::default(),
            own_object_bytes: 4 << 20,
            merge_fan_in: 8,
            max_run_bytes: 64 << 20,
        }
    }
}

/// What one pass did (for logs, metrics and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub leader: bool,
    /// There was work, but another instance holds the lease.
    pub waiting: bool,
    /// Some shard has more to fold than one pass takes.
    pub backlog: bool,
    pub entries_folded: u64,
    pub index_objects: u64,
    pub checkpoints: u64,
    pub journal_deleted: u64,
    pub segments_deleted: u64,
    pub retention_deleted: u64,
    pub table_files: u64,
    pub table_rows: u64,
    /// Shared runs written by folds.
    pub runs_written: u64,
    /// Merged runs written (each replaces `merge_fan_in` runs).
    pub runs_merged: u64,
    /// Shared runs deleted (no checkpoint names them any more).
    pub runs_deleted: u64,
    /// Slices of shared runs dropped from the directory as past their topic's retention.
    pub slices_expired: u64,
}

/// The compactor's view of the bucket, kept between passes.
#[derive(Default)]
struct Cache {
    /// The journal shards (re-listed on every retention pass).
    shards: Option<Vec<u32>>,
    /// Per shard: the newest checkpoint (`None`: there is none yet).
    checkpoint: HashMap<u32, Option<Checkpoint>>,
    /// Per shard: the seq of the checkpoint the pointer holds (0: no pointer).
    pointer: HashMap<u32, u64>,
    /// Per shard: (checkpoint seq, its last append ts), oldest first, for truncation.
    checkpoints: HashMap<u32, VecDeque<(u64, i64)>>,
    /// Index objects per partition, sorted (from one LIST, then kept up to date).
    dirs: HashMap<PartitionId, Vec<IndexKey>>,
    /// The lease epoch under which all of the above was known to be current.
    epoch: Option<u64>,
    /// Since when (clock ms) this instance has held the lease without interruption.
    leader_since_ms: Option<i64>,
    /// Shards whose `runs/` listing holds nothing the newest checkpoint does not name (old
    /// enough to delete): the run GC skips them until a pass drops a run.
    runs_clean: HashSet<u32>,
}

/// A shard with something to do this pass.
struct ShardWork {
    shard: u32,
    checkpoint: Option<Checkpoint>,
    /// Journal entry names after the checkpoint (one LIST).
    listed: Vec<String>,
    /// The entry after the checkpoint exists: there is something to fold (else only the
    /// pointer is behind).
    folds: bool,
}

pub struct Compactor {
    store: DynStore,
    clock: Arc<dyn Clock>,
    cfg: CompactorConfig,
    lease: Lease,
    topics: Topics,
    /// What this instance knows of the bucket, so that a pass with nothing to do costs one
    /// LIST per shard. Valid while it holds the lease without interruption (see `caches_valid`).
    cache: Cache,
    /// Clock time (ms) of the last retention pass.
    last_retention_ms: Option<i64>,
    tables: Tables,
    /// The last table pass stopped with more to write.
    tables_backlog: bool,
    /// The live topics as of the last listing (every retention pass), for the Parquet hook,
    /// so a pass that folded something does not list every topic config.
    topic_list: Option<Vec<Arc<TopicConfig>>>,
    /// The ids of `topic_list`.
    known_topics: HashSet<TopicId>,
    /// The topics whose records this pass folded (to see whether `topic_list` knows them).
    folded_topics: HashSet<TopicId>,
    /// Retention (ms) per topic, as of the last listing: slices of shared runs older than it
    /// are dropped by the next pass that folds their shard.
    retention_ms: HashMap<TopicId, i64>,
    metrics: CompactorMetrics,
    /// Writer id of the entries this compactor commits (retention entries).
    writer: [u8; 16],
}

impl Compactor {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, cfg: CompactorConfig) -> Self {
        let id = new_ulid(clock.now_ms());
        let holder = id.to_string();
        Self {
            writer: id.to_bytes(),
            lease: Lease::new(store.clone(), "compactor", holder, cfg.lease_duration),
            topics: Topics::new(store.clone(), clock.clone(), Duration::ZERO),
            tables: Tables::new(store.clone(), clock.clone(), cfg.tables.clone()),
            tables_backlog: false,
            topic_list: None,
            known_topics: HashSet::new(),
            folded_topics: HashSet::new(),
            retention_ms: HashMap::new(),
            store,
            clock,
            cfg,
            cache: Cache::default(),
            last_retention_ms: None,
            metrics: CompactorMetrics::new(),
        }
    }

    /// The topic list of the last listing, listed again only when this pass folded a topic
    /// it does not know (created or re-created since). A change of an existing topic's
    /// `parquet` flag is seen by the next retention pass (within `retention_interval`).
    async fn cached_topics(&mut self) -> Result<Vec<Arc<TopicConfig>>> {
        match &self.topic_list {
            Some(list) if self.folded_topics.is_subset(&self.known_topics) => Ok(list.clone()),
            _ => self.list_topics().await,
        }
    }

    /// List every live topic and remember the list.
    async fn list_topics(&mut self) -> Result<Vec<Arc<TopicConfig>>> {
        let list = self.topics.list().await?;
        self.known_topics = list.iter().filter_map(|t| t.topic_id().ok()).collect();
        self.retention_ms = list
            .iter()
            .filter_map(|t| Some((t.topic_id().ok()?, t.retention_ms?)))
            .collect();
        self.topic_list = Some(list.clone());
        Ok(list)
    }

    /// This compactor's metrics (lag per shard, passes), in their own registry.
    pub fn metrics(&self) -> &CompactorMetrics {
        &self.metrics
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Hand the lease on at once (what a graceful stop does), so another instance can lead
    /// without waiting for it to expire.
    pub async fn release_lease(&mut self) -> Result<()> {
        self.lease.release().await
    }

    /// Run passes until `shutdown` resolves. Errors are logged and the pass retried later.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let mut backlog = false;
            let started = Instant::now();
            let pass = self.run_once().await;
            self.metrics
                .pass_seconds
                .observe(started.elapsed().as_secs_f64());
            self.metrics
                .passes
                .get_or_create(&OutcomeLabel {
                    outcome: if pass.is_ok() { "ok" } else { "error" },
                })
                .inc();
            self.metrics
                .last_pass_timestamp
                .set(self.clock.now_ms() as f64 / 1000.0);
            match pass {
                Ok(r) => {
                    self.metrics.leader.set(u64::from(r.leader));
                    self.metrics.entries_folded.inc_by(r.entries_folded);
                    self.metrics.segments_deleted.inc_by(r.segments_deleted);
                    self.metrics.journal_deleted.inc_by(r.journal_deleted);
                    self.metrics.retention_deleted.inc_by(r.retention_deleted);
                    backlog = r.backlog;
                    if r.entries_folded > 0 || r.segments_deleted > 0 || r.retention_deleted > 0 {
                        tracing::debug!(?r, "compaction pass");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "compaction pass failed; will retry"),
            }
            // A backlog (a pass stopped at its byte or entry limit) is folded without pausing.
            let pause = if backlog {
                Duration::ZERO
            } else {
                self.cfg.interval
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        // A graceful stop hands the lease on at once (a crash leaves it to expire).
        if let Err(e) = self.release_lease().await {
            tracing::warn!(error = %e, "could not release the compactor lease");
        }
    }

    /// Fail unless the lease is held with margin: every write and delete checks this first,
    /// so a compactor that lost its lease (paused, partitioned) stops touching the bucket. A
    /// long pass renews the lease here (a PUT only once a third of its duration has passed).
    async fn fence(&mut self) -> Result<()> {
        sluice_tables::Fence::check(&mut self.lease).await
    }

    /// One pass over every shard, then GC and (when due) retention.
    ///
    /// With nothing to do a pass costs one LIST per shard (the journal after the checkpoint
    /// this instance knows) and writes nothing; a retention pass (every `retention_interval`)
    /// adds the listing of the shards and the topics, and takes the lease only if something
    /// expired.
    pub async fn run_once(&mut self) -> Result<PassReport> {
        let mut report = PassReport::default();
        let now = self.clock.now_ms();
        let retention_due = self
            .last_retention_ms
            .is_none_or(|t| now - t >= self.cfg.retention_interval.as_millis() as i64);
        let had_cache = !self.cache.checkpoint.is_empty() || !self.cache.dirs.is_empty();
        let shards = self.shards(retention_due).await?;
        let mut work = self.plan(&shards).await?;
        self.folded_topics.clear();
        let topics = if retention_due {
            self.list_topics().await?
        } else {
            Vec::new()
        };
        let mut expired = if retention_due {
            self.expired(&topics).await?
        } else {
            Vec::new()
        };
        let mut expired_idle = if retention_due {
            self.idle_shards_with_expired_slices(&shards, &work)
        } else {
            Vec::new()
        };
        // Shared runs no checkpoint names may be left to delete (after a merge, a move to own
        // objects, expiry, or a pass that did not finish).
        let runs_gc_due =
            retention_due && shards.iter().any(|s| !self.cache.runs_clean.contains(s));
        // Only take the lease when there is something to write, so an idle deployment makes
        // no PUTs.
        if !work.is_empty() || !expired.is_empty() || !expired_idle.is_empty() || runs_gc_due {
            if !self.lease.acquire().await? {
                self.cache = Cache::default(); // another instance writes: forget what we knew
                report.waiting = true;
                return Ok(report);
            }
            report.leader = true;
            if !self.caches_valid(had_cache) {
                // Someone else held the lease since we last looked: look again.
                self.cache = Cache::default();
                let shards = self.shards(true).await?;
                work = self.plan(&shards).await?;
                expired = self.expired(&topics).await?;
                expired_idle = self.idle_shards_with_expired_slices(&shards, &work);
            }
            self.cache.epoch = self.lease.last_epoch();
            self.cache.leader_since_ms.get_or_insert(now);
            // A shard nobody writes to still drops what is past retention from its runs: an
            // entry with no appends gives its next checkpoint a number.
            if !expired_idle.is_empty() {
                for &shard in &expired_idle {
                    self.write_retention_entry(shard).await?;
                }
                work = self.plan(&shards).await?;
            }
        } else if !retention_due && !self.tables_backlog {
            return Ok(report);
        }
        let mut complete = true;
        for w in work {
            let done = self.fold_shard(w, &mut report).await?;
            complete &= done;
            report.backlog |= !done;
        }
        if report.leader {
            for &shard in &shards {
                self.truncate(shard, &mut report).await?;
            }
            // Every pointer current: a reader that starts from one finds every segment it
            // names (GC deletes segments the newest checkpoint folded).
            let pointers_current = shards.iter().all(|s| {
                self.cache.checkpoint.get(s).is_some_and(|cp| {
                    cp.as_ref().map_or(0, |c| c.seq)
                        == self.cache.pointer.get(s).copied().unwrap_or(0)
                })
            });
            if complete && pointers_current {
                self.gc_segments(&mut report).await?;
            }
            self.retention(&expired, &mut report).await?;
            if retention_due {
                self.gc_runs(&shards, &mut report).await?;
            }
        }
        if retention_due {
            self.last_retention_ms = Some(now);
        }
        let tables_due = report.entries_folded > 0 || self.tables_backlog || retention_due;
        if tables_due {
            let topics = if retention_due {
                topics
            } else {
                self.cached_topics().await?
            };
            // The hook: the tables crate writes, the compactor only schedules. It takes the
            // lease through the fence when it has something to write.
            let t = match self
                .tables
                .pass(&topics, retention_due, &mut self.lease)
                .await
            {
                Err(Error::Conflict(_)) if !report.leader => {
                    report.waiting = true;
                    return Ok(report);
                }
                r => r?,
            };
            self.tables_backlog = t.backlog;
            report.backlog |= t.backlog;
            report.table_files += t.files_written;
            report.table_rows += t.rows_written;
            if let Some(e) = self.lease.last_epoch() {
                if self.cache.epoch.is_some_and(|c| e > c + 1) {
                    self.cache = Cache::default();
                }
            }
        }
        Ok(report)
    }

    /// Whether what we cached is still current now that we hold the lease: it was all loaded
    /// in this pass, or under the epoch we held before (epochs are dense: the one after ours
    /// is our own renewal).
    fn caches_valid(&self, had_cache: bool) -> bool {
        if !had_cache {
            return true;
        }
        match (self.cache.epoch, self.lease.last_epoch()) {
            (Some(c), Some(e)) => e == c || e == c + 1,
            _ => false,
        }
    }

    /// The journal shards: listed on the first pass and on retention passes.
    async fn shards(&mut self, relist: bool) -> Result<Vec<u32>> {
        // An empty listing (a new deployment) is looked at again every pass; shards that
        // appear later are found by the next retention pass (`retention_interval`).
        if relist || self.cache.shards.as_ref().is_none_or(|s| s.is_empty()) {
            let shards: Vec<u32> =
                store::list_dirs(&*self.store, &object_store::path::Path::from(keys::JOURNAL))
                    .await?
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect();
            self.cache.shards = Some(shards);
        }
        Ok(self.cache.shards.clone().unwrap_or_default())
    }

    /// Records of `topic` appended before this are past its retention (as of the last topic
    /// listing; `None`: kept for ever).
    fn retention_cutoff(&self, topic: TopicId, now: i64) -> Option<i64> {
        self.retention_ms.get(&topic).map(|r| now - r)
    }

    /// Shards with nothing to fold whose newest checkpoint has slices past their topic's
    /// retention (from the cached checkpoints and the last topic listing: no request).
    fn idle_shards_with_expired_slices(&self, shards: &[u32], work: &[ShardWork]) -> Vec<u32> {
        let now = self.clock.now_ms();
        shards
            .iter()
            .copied()
            .filter(|&shard| !work.iter().any(|w| w.shard == shard && w.folds))
            .filter(|shard| {
                let cp = self.cache.checkpoint.get(shard).and_then(Option::as_ref);
                cp.is_some_and(|cp| {
                    cp.slices.iter().any(|s| {
                        self.retention_cutoff(s.partition.topic, now)
                            .is_some_and(|c| s.max_ts < c)
                    })
                })
            })
            .collect()
    }

    /// Commit an entry with no appends after the shard's checkpoint (create-only, like any
    /// writer; a writer that got there first makes it unnecessary), so that the pass can fold
    /// it and write a checkpoint without the expired slices.
    async fn write_retention_entry(&mut self, shard: u32) -> Result<()> {
        let Some(Some(cp)) = self.cache.checkpoint.get(&shard).cloned() else {
            return Ok(());
        };
        let entry = JournalEntry {
            shard,
            seq: cp.seq + 1,
            append_ts: cp.last_append_ts.max(self.clock.now_ms()),
            writer: self.writer,
            appends: Vec::new(),
        };
        self.fence().await?;
        store::put_create(
            &*self.store,
            &keys::journal_entry(shard, entry.seq),
            entry.encode(),
        )
        .await?;
        Ok(())
    }

    /// The shards with entries to fold (one LIST each) or a pointer behind their checkpoint.
    async fn plan(&mut self, shards: &[u32]) -> Result<Vec<ShardWork>> {
        let mut work = Vec::new();
        for &shard in shards {
            let cp = self.checkpoint(shard).await?;
            let seq = cp.as_ref().map_or(0, |c| c.seq);
            let after = keys::filename(&keys::journal_entry(shard, seq)).to_string();
            let listed =
                store::list_names(&*self.store, &keys::journal_dir(shard), Some(&after)).await?;
            let next = listed.first().and_then(|n| keys::parse_seq(n)) == Some(seq + 1);
            let pointer_behind = self.cache.pointer.get(&shard).copied().unwrap_or(0) != seq;
            if !next {
                // Nothing to fold: no lag (a shard with work gets its lag after its fold).
                self.metrics.set_lag(shard, Some(0.0), Some(0));
            }
            if next || pointer_behind {
                work.push(ShardWork {
                    shard,
                    checkpoint: cp,
                    listed,
                    folds: next,
                });
            }
        }
        Ok(work)
    }

    /// The newest checkpoint of `shard`: from the listing (authoritative) the first time, then
    /// the one this instance wrote last. Also learns which checkpoint the pointer holds.
    async fn checkpoint(&mut self, shard: u32) -> Result<Option<Checkpoint>> {
        if let Some(cp) = self.cache.checkpoint.get(&shard) {
            return Ok(cp.clone());
        }
        let cp = sluice_core::shard::newest_checkpoint(&*self.store, shard, 0, true).await?;
        // A pointer that is missing or unusable counts as 0: the next checkpoint overwrites it
        // (a pass that failed here instead would never replace one that cannot be read).
        let pointer = sluice_core::shard::pointed_checkpoint(&*self.store, shard)
            .await
            .map_or(0, |c| c.seq);
        self.cache.pointer.insert(shard, pointer);
        if let Some(cp) = &cp {
            let q = self.cache.checkpoints.entry(shard).or_default();
            if q.back().is_none_or(|(s, _)| *s < cp.seq) {
                q.push_back((cp.seq, cp.last_append_ts));
            }
        }
        self.cache.checkpoint.insert(shard, cp.clone());
        Ok(cp)
    }

    /// The index objects of a partition (one LIST the first time).
    async fn dir(&mut self, p: &PartitionId) -> Result<&mut Vec<IndexKey>> {
        if !self.cache.dirs.contains_key(p) {
            let names =
                store::list_names(&*self.store, &keys::index_dir(p.topic, p.partition), None)
                    .await?;
            let mut dir: Vec<IndexKey> = names.iter().filter_map(|n| IndexKey::parse(n)).collect();
            dir.sort();
            self.cache.dirs.insert(*p, dir);
        }
        Ok(self.cache.dirs.entry(*p).or_default())
    }

    async fn index_end(&mut self, p: &PartitionId) -> Result<u64> {
        Ok(self.dir(p).await?.iter().map(|k| k.end).max().unwrap_or(0))
    }

    /// Fold one shard from checkpoint `cp`. Returns whether it reached the end of the journal.
    async fn fold_shard(&mut self, work: ShardWork, report: &mut PassReport) -> Result<bool> {
        let ShardWork {
            shard,
            checkpoint: cp,
            listed,
            ..
        } = work;
        let mut head = match &cp {
            Some(cp) => HeadState::from_checkpoint(cp, self.cfg.dedup_window_ms),
            None => HeadState::new(shard, self.cfg.dedup_window_ms),
        };
        // 1. Read the entries after the checkpoint (listed by the plan), GET them
        //    concurrently; the end is reached when the seq after the last one read is missing.
        let wanted: Vec<u64> = listed
            .iter()
            .filter_map(|n| keys::parse_seq(n))
            .zip(head.seq + 1..)
            .take_while(|(got, want)| got == want)
            .map(|(seq, _)| seq)
            .collect();
        let unfolded = wanted.len() as u64;
        let wanted: Vec<u64> = wanted
            .into_iter()
            .take(self.cfg.max_entries_per_pass)
            .collect();
        // Fetched in order, 16 at a time, and only as far as this pass folds: a pass cut by
        // its byte bound stops fetching there (at most 16 GETs ahead are wasted), so a backlog
        // folded over several passes fetches each entry about once, not once per pass.
        let store = self.store.clone();
        let mut fetched = futures::stream::iter(wanted)
            .map(|seq| {
                let store = store.clone();
                async move {
                    let bytes = store::get_opt(&*store, &keys::journal_entry(shard, seq)).await?;
                    Ok::<_, Error>((seq, bytes))
                }
            })
            .buffered(16);
        let mut entries = Vec::new();
        let mut pass_bytes = 0u64;
        let mut cut = false;
        // The append time of the first entry this pass leaves unfolded, when known.
        let mut left_ts = None;
        while let Some(next) = fetched.next().await {
            let (seq, bytes) = next?;
            let key = keys::journal_entry(shard, seq);
            let Some(bytes) = bytes else { break };
            let entry = JournalEntry::decode(&bytes).map_err(|e| Error::corrupt(&key, e))?;
            if entry.seq != seq || entry.shard != shard {
                return Err(Error::corrupt(
                    &key,
                    sluice_core::codec::invalid("journal.seq", "does not match its key"),
                ));
            }
            // Bound the record bytes one pass holds in memory (at least one entry per pass).
            let bytes: u64 = entry.batches().map(|(_, b)| b.len as u64).sum();
            if !entries.is_empty() && pass_bytes + bytes > self.cfg.max_bytes_per_pass {
                cut = true;
                left_ts = Some(entry.append_ts);
                break;
            }
            pass_bytes += bytes;
            head.apply(&entry)
                .map_err(|source| Error::Inconsistent { shard, source })?;
            entries.push(entry);
        }
        drop(fetched);
        let complete = !cut
            && entries.len() < self.cfg.max_entries_per_pass
            && store::get_opt(&*self.store, &keys::journal_entry(shard, head.seq + 1))
                .await?
                .is_none();
        let left = unfolded.saturating_sub(entries.len() as u64);
        // What this pass leaves behind, once it has written its checkpoint.
        let lag_after = |this: &Self| {
            if complete {
                this.metrics.set_lag(shard, Some(0.0), Some(0));
            } else {
                let age = left_ts.map(|ts| (this.clock.now_ms() - ts) as f64 / 1000.0);
                // Entries past the LIST may have arrived meanwhile: at least one is left.
                this.metrics.set_lag(shard, age, Some(left.max(1)));
            }
        };
        if entries.is_empty() {
            lag_after(self);
            if let Some(cp) = &cp {
                // Nothing new, but the pointer is behind (a compactor stopped between a
                // checkpoint and its pointer): bring it up to date.
                self.write_pointer(cp).await?;
            }
            return Ok(complete);
        }
        // 2. Group batches per partition, in offset order.
        let mut by_partition: BTreeMap<PartitionId, Vec<(BatchRef, i64)>> = BTreeMap::new();
        for e in &entries {
            for (p, b) in e.batches() {
                by_partition.entry(p).or_default().push((*b, e.append_ts));
            }
        }
        let through = head.seq;
        let now = self.clock.now_ms();
        // The shard's shared runs as of the checkpoint, less what is past retention.
        let mut dir = Directory::of(cp.as_ref());
        report.slices_expired += dir.expire(|t| self.retention_cutoff(t, now));
        let mut plan = Vec::new();
        for (p, batches) in by_partition {
            self.folded_topics.insert(p.topic);
            let own_end = self.index_end(&p).await?;
            // Slices a pass that did not finish already copied into own objects.
            dir.drop_copied(&p, own_end)
                .map_err(|expected| Error::Inconsistent {
                    shard,
                    source: sluice_core::head::ApplyError::OffsetGap {
                        seq: through,
                        partition: p,
                        got: own_end,
                        expected,
                    },
                })?;
            let end = dir.end(&p).map_or(own_end, |e| e.max(own_end));
            let todo: Vec<(BatchRef, i64)> = batches
                .into_iter()
                .filter(|(b, _)| b.base_offset >= end)
                .collect();
            if let Some((b, _)) = todo.first() {
                if b.base_offset != end {
                    return Err(Error::Inconsistent {
                        shard,
                        source: sluice_core::head::ApplyError::OffsetGap {
                            seq: through,
                            partition: p,
                            got: b.base_offset,
                            expected: end,
                        },
                    });
                }
                plan.push((p, todo));
            }
        }
        let frames = self.fetch_frames(&plan).await?;
        // Small partitions into one shared run; those with enough bytes (with what they
        // have in runs already) into their own objects.
        let mut run = RunBuilder::new(ObjectId::from_ulid(new_ulid(now)));
        let mut promote = Vec::new();
        for ((p, todo), frames) in plan.into_iter().zip(frames) {
            let batches: Vec<SliceBatch> = todo
                .iter()
                .zip(frames)
                .map(|((b, ts), frame)| SliceBatch {
                    base_offset: b.base_offset,
                    record_count: b.record_count,
                    append_ts: *ts,
                    frame,
                })
                .collect();
            let pending = dir.bytes(&p) + batches.iter().map(|b| b.frame.len() as u64).sum::<u64>();
            if pending >= self.cfg.own_object_bytes {
                promote.push((p, batches));
            } else {
                let summary = summary_of(&p, &batches);
                run.push(p, batches, summary, through);
            }
        }
        for (p, batches) in promote {
            let mut all = self.fetch_slices(shard, dir.slices(&p)).await?;
            all.extend(batches);
            self.write_index(&p, &all, through).await?;
            dir.remove(&p);
            report.index_objects += 1;
        }
        if !run.is_empty() {
            let (written, slices) = self.write_run(shard, run, 0).await?;
            dir.add_run(written, slices);
            report.runs_written += 1;
        }
        self.merge_runs(shard, &mut dir, through, report).await?;
        if dir.dropped_runs() {
            self.cache.runs_clean.remove(&shard);
        }
        // 3. Checkpoint.
        self.fence().await?;
        let mut cp = head.to_checkpoint();
        dir.into_checkpoint(&mut cp);
        store::put_create_output(&*self.store, &keys::checkpoint(shard, cp.seq), cp.encode())
            .await?;
        self.cache
            .checkpoints
            .entry(shard)
            .or_default()
            .push_back((cp.seq, cp.last_append_ts));
        self.cache.checkpoint.insert(shard, Some(cp.clone()));
        self.write_pointer(&cp).await?;
        report.checkpoints += 1;
        report.entries_folded += entries.len() as u64;
        lag_after(self);
        Ok(complete)
    }

    /// Overwrite the shard's checkpoint pointer with `cp` (a copy of the numbered checkpoint,
    /// written after it).
    async fn write_pointer(&mut self, cp: &Checkpoint) -> Result<()> {
        self.fence().await?;
        let key = keys::checkpoint_pointer(cp.shard);
        store::put_overwrite(&*self.store, &key, cp.encode()).await?;
        self.cache.pointer.insert(cp.shard, cp.seq);
        Ok(())
    }

    /// Fetch the frames of every batch a pass folds: one `get_ranges` per flush segment for
    /// all the partitions it holds (a flush segment holds every partition's frames of that
    /// flush), several segments at once. `frames[i][j]` is the frame of `plan[i].1[j]`. The
    /// pass's record bytes are bounded by `max_bytes_per_pass`.
    async fn fetch_frames(
        &self,
        plan: &[(PartitionId, Vec<(BatchRef, i64)>)],
    ) -> Result<Vec<Vec<Bytes>>> {
        // Segments in the order the plan first names them, so a pass's calls are the same
        // from run to run.
        let wanted = plan
            .iter()
            .enumerate()
            .flat_map(|(i, (_, batches))| {
                batches.iter().enumerate().map(move |(j, (b, _))| {
                    (
                        keys::segment(b.segment),
                        (i, j),
                        b.pos..b.pos + b.len as u64,
                    )
                })
            })
            .collect();
        let fetched = store::get_ranges_tagged(&self.store, wanted, 8).await?;
        let mut frames: Vec<Vec<Bytes>> = plan
            .iter()
            .map(|(_, b)| vec![Bytes::new(); b.len()])
            .collect();
        for ((i, j), frame) in fetched {
            frames[i][j] = frame;
        }
        Ok(frames)
    }

    /// Copy `batches` (dense, starting at the partition's index end) into one data object
    /// and write its index object.
    async fn write_index(
        &mut self,
        p: &PartitionId,
        batches: &[SliceBatch],
        through: u64,
    ) -> Result<()> {
        let summary = summary_of(p, batches);
        // The data object is the header plus the frames as they are: no copy of the records.
        let entries = index_entries(batches, SEGMENT_HEADER_LEN as u64);
        let data: PutPayload = std::iter::once(Bytes::copy_from_slice(&segment_header()))
            .chain(batches.iter().map(|b| b.frame.clone()))
            .collect();
        let index = IndexObject {
            topic: p.topic,
            partition: p.partition,
            through_seq: through,
            entries,
            summary,
        };
        let key = IndexKey {
            base: index.base_offset(),
            end: index.end_offset(),
            min_ts: index.min_ts(),
            max_ts: index.max_ts(),
        };
        self.fence().await?;
        store::put_create_output(&*self.store, &key.data_path(p.topic, p.partition), data).await?;
        store::put_create_output(
            &*self.store,
            &key.path(p.topic, p.partition),
            index.encode(),
        )
        .await?;
        let dir = self.dir(p).await?;
        if dir.last().is_none_or(|k| k.end <= key.base) {
            dir.push(key);
        }
        Ok(())
    }

    /// Write `run` as a shared run of `shard` (create-only, a fresh name): what the
    /// directory then names, the run and its slices.
    async fn write_run(
        &mut self,
        shard: u32,
        run: RunBuilder,
        level: u8,
    ) -> Result<(RunRef, Vec<Slice>)> {
        let (id, len) = (run.id(), run.len());
        let (parts, slices) = run.finish();
        self.fence().await?;
        let payload: PutPayload = parts.into_iter().collect();
        store::put_create_output(&*self.store, &keys::run(shard, id), payload).await?;
        Ok((RunRef { id, level, len }, slices))
    }

    /// The batches of `slices` (of one partition, in order), fetched from their runs: one
    /// `get_ranges` per run.
    async fn fetch_slices(&self, shard: u32, slices: &[Slice]) -> Result<Vec<SliceBatch>> {
        let wanted = slices
            .iter()
            .enumerate()
            .map(|(i, s)| (keys::run(shard, s.run), i, s.pos..s.pos + s.len as u64))
            .collect();
        let fetched = store::get_ranges_tagged(&self.store, wanted, 8).await?;
        let mut bytes = vec![Bytes::new(); slices.len()];
        for (i, b) in fetched {
            bytes[i] = b;
        }
        let mut out = Vec::new();
        for (s, b) in slices.iter().zip(bytes) {
            out.extend(slice_batches(shard, s, &b)?);
        }
        Ok(out)
    }

    /// Merge runs of the shard while `merge_fan_in` consecutive ones of one level fit in
    /// `max_run_bytes`: each partition's slices in them become one slice of a run of the next
    /// level (one PUT per merge, however many partitions).
    async fn merge_runs(
        &mut self,
        shard: u32,
        dir: &mut Directory,
        through: u64,
        report: &mut PassReport,
    ) -> Result<()> {
        while let Some(window) = dir.merge_window(self.cfg.merge_fan_in, self.cfg.max_run_bytes) {
            let runs: Vec<RunRef> = dir.runs[window.clone()].to_vec();
            let level = runs[0].level.saturating_add(1);
            let store = self.store.clone();
            let ids: Vec<ObjectId> = runs.iter().map(|r| r.id).collect();
            let fetched: Vec<(ObjectId, Bytes)> = futures::stream::iter(ids)
                .map(move |id| {
                    let store = store.clone();
                    async move {
                        let key = keys::run(shard, id);
                        let bytes = store::get_opt(&*store, &key).await?.ok_or_else(|| {
                            Error::corrupt(
                                &key,
                                sluice_core::codec::invalid(
                                    "run",
                                    "named by the checkpoint, missing",
                                ),
                            )
                        })?;
                        Ok::<_, Error>((id, bytes))
                    }
                })
                .buffered(4)
                .try_collect()
                .await?;
            let bytes: HashMap<ObjectId, Bytes> = fetched.into_iter().collect();
            let mut merged = RunBuilder::new(ObjectId::from_ulid(new_ulid(self.clock.now_ms())));
            for (p, slices) in &dir.slices {
                let mut batches = Vec::new();
                for s in slices.iter().filter(|s| bytes.contains_key(&s.run)) {
                    let key = keys::run(shard, s.run);
                    let b = slice_of_run(&bytes[&s.run], s).map_err(|e| Error::corrupt(&key, e))?;
                    batches.extend(slice_batches(shard, s, &b)?);
                }
                if !batches.is_empty() {
                    let summary = summary_of(p, &batches);
                    merged.push(*p, batches, summary, through);
                }
            }
            let merged = if merged.is_empty() {
                None
            } else {
                Some(self.write_run(shard, merged, level).await?)
            };
            dir.replace_runs(window, merged);
            report.runs_merged += 1;
        }
        Ok(())
    }

    /// Delete shared runs no checkpoint names any more (merged, promoted, expired, or left by
    /// a pass that did not finish) once older than `gc_grace_ms`: one LIST per shard whose
    /// directory dropped a run since its last clean listing.
    async fn gc_runs(&mut self, shards: &[u32], report: &mut PassReport) -> Result<()> {
        let horizon = self.clock.now_ms() - self.cfg.gc_grace_ms;
        for &shard in shards {
            if self.cache.runs_clean.contains(&shard) {
                continue;
            }
            let Some(cp) = self.cache.checkpoint.get(&shard).cloned() else {
                continue; // not loaded this pass: next time
            };
            let named: HashSet<ObjectId> = cp
                .iter()
                .flat_map(|c| c.runs.iter().map(|r| r.id))
                .collect();
            let names = store::list_names(&*self.store, &keys::run_dir(shard), None).await?;
            let mut clean = true;
            for name in names {
                let Some(id) = ObjectId::parse(&name) else {
                    tracing::warn!(%name, "unexpected object under runs/; left alone");
                    continue;
                };
                if named.contains(&id) {
                    continue;
                }
                if id.created_ms() >= horizon {
                    clean = false; // young: maybe a pass under way (ours or a predecessor's)
                    continue;
                }
                self.fence().await?;
                store::delete(&*self.store, &keys::run(shard, id)).await?;
                report.runs_deleted += 1;
            }
            if clean {
                self.cache.runs_clean.insert(shard);
            }
        }
        Ok(())
    }

    /// Delete journal entries far behind the newest checkpoint and checkpoints older than the
    /// truncation point (keeping the newest).
    async fn truncate(&mut self, shard: u32, report: &mut PassReport) -> Result<()> {
        let now = self.clock.now_ms();
        // A compactor that held the lease before us may still have a pointer PUT in flight
        // (older than ours): entries after any pointer must stay until such a PUT has
        // landed or timed out, so truncate only once we have led for that long, and never
        // past the pointer we wrote.
        let guard = self
            .cfg
            .truncate_min_age_ms
            .min(self.cfg.lease_duration.as_millis() as i64 + 30_000);
        if self.cache.leader_since_ms.is_none_or(|t| now - t < guard) {
            return Ok(());
        }
        let pointer = self.cache.pointer.get(&shard).copied().unwrap_or(0);
        let Some(q) = self.cache.checkpoints.get(&shard) else {
            return Ok(());
        };
        let Some(&(newest, _)) = q.back() else {
            return Ok(());
        };
        let horizon = now - self.cfg.truncate_min_age_ms;
        let limit = newest
            .saturating_sub(self.cfg.truncate_keep_entries)
            .min(pointer);
        let Some(upto) = q
            .iter()
            .filter(|(s, ts)| *ts < horizon && *s <= limit)
            .map(|(s, _)| *s)
            .max()
        else {
            return Ok(());
        };
        let names = store::list_names(&*self.store, &keys::journal_dir(shard), None).await?;
        for seq in names
            .iter()
            .filter_map(|n| keys::parse_seq(n))
            .filter(|s| *s <= upto)
        {
            self.fence().await?;
            store::delete(&*self.store, &keys::journal_entry(shard, seq)).await?;
            report.journal_deleted += 1;
        }
        let cps = store::list_names(&*self.store, &keys::checkpoint_dir(shard), None).await?;
        for seq in cps
            .iter()
            .filter_map(|n| keys::parse_seq(n))
            .filter(|s| *s < upto)
        {
            self.fence().await?;
            store::delete(&*self.store, &keys::checkpoint(shard, seq)).await?;
        }
        if let Some(q) = self.cache.checkpoints.get_mut(&shard) {
            q.retain(|(s, _)| *s >= upto);
        }
        Ok(())
    }

    /// Delete flush segments older than the grace period. Called only after every shard was
    /// folded to its end: any entry that references an old segment was committed before the
    /// deadline and is folded now, so what remains old is folded or orphaned.
    async fn gc_segments(&mut self, report: &mut PassReport) -> Result<()> {
        let horizon = self.clock.now_ms() - self.cfg.gc_grace_ms;
        let names = store::list_names(
            &*self.store,
            &object_store::path::Path::from(keys::SEGMENTS),
            None,
        )
        .await?;
        for name in names {
            let Some(id) = ObjectId::parse(&name) else {
                tracing::warn!(%name, "unexpected object under segments/; left alone");
                continue;
            };
            if id.created_ms() >= horizon {
                break; // ULIDs sort by time: the rest are younger
            }
            self.fence().await?;
            store::delete(&*self.store, &keys::segment(id)).await?;
            report.segments_deleted += 1;
        }
        Ok(())
    }

    /// The index objects wholly older than their topic's retention (from the directories this
    /// instance keeps: a LIST per partition the first time only).
    async fn expired(
        &mut self,
        topics: &[Arc<TopicConfig>],
    ) -> Result<Vec<(PartitionId, IndexKey)>> {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for topic in topics {
            let Some(retention) = topic.retention_ms else {
                continue;
            };
            let tid = topic.topic_id()?;
            let cutoff = now - retention;
            for partition in 0..topic.partitions {
                let p = PartitionId {
                    topic: tid,
                    partition,
                };
                let dir = self.dir(&p).await?;
                out.extend(dir.iter().filter(|k| k.max_ts < cutoff).map(|k| (p, *k)));
            }
        }
        Ok(out)
    }

    /// Delete the expired index and data objects.
    async fn retention(
        &mut self,
        expired: &[(PartitionId, IndexKey)],
        report: &mut PassReport,
    ) -> Result<()> {
        for (p, k) in expired {
            self.fence().await?;
            // Index first: a listing never points at a missing data object for long.
            store::delete(&*self.store, &k.path(p.topic, p.partition)).await?;
            store::delete(&*self.store, &k.data_path(p.topic, p.partition)).await?;
            if let Some(dir) = self.cache.dirs.get_mut(p) {
                dir.retain(|d| d != k);
            }
            report.retention_deleted += 1;
        }
        Ok(())
    }
}

/// The records of `batches` summarized for filtered reads (none when a batch does not decode
/// or its record count differs from the journal's: such batches are copied as they are and
/// readers report them).
fn summary_of(p: &PartitionId, batches: &[SliceBatch]) -> Option<Summary> {
    let mut decoded = Vec::with_capacity(batches.len());
    let mut all = true;
    for b in batches {
        match decode_frame(&b.frame) {
            Ok(records) if records.len() == b.record_count as usize => decoded.push(records),
            Ok(records) => {
                all = false;
                tracing::error!(topic = %p.topic, partition = p.partition, base = b.base_offset,
                    expected = b.record_count, found = records.len(),
                    "batch record count differs from the journal; copied as is, readers will report it");
            }
            Err(e) => {
                all = false;
                tracing::error!(topic = %p.topic, partition = p.partition, base = b.base_offset,
                    error = %e, "corrupt batch; copied as is, readers will report it");
            }
        }
    }
    all.then(|| Summary::of(decoded.iter().flatten())).flatten()
}

/// The batches of one slice of a run (its bytes fetched), checked against the checkpoint.
fn slice_batches(shard: u32, s: &Slice, bytes: &Bytes) -> Result<Vec<SliceBatch>> {
    let key = keys::run(shard, s.run);
    let (index, frames) = decode_slice(bytes, s).map_err(|e| Error::corrupt(&key, e))?;
    Ok(index
        .entries
        .iter()
        .zip(frames)
        .map(|(e, frame)| SliceBatch {
            base_offset: e.base_offset,
            record_count: e.record_count,
            append_ts: e.append_ts,
            frame,
        })
        .collect())
}

/// A shard's shared runs and what each partition has in them, as a pass changes them: read
/// from the checkpoint, written into the next one. Pure bookkeeping; the compactor does the IO.
#[derive(Debug, Default)]
struct Directory {
    /// Oldest first; a merged run takes the place of the runs it replaces, so along every
    /// partition the runs of its slices are in this order too.
    runs: Vec<RunRef>,
    slices: BTreeMap<PartitionId, Vec<Slice>>,
    /// Some run of the checkpoint is no longer named.
    dropped: bool,
}

impl Directory {
    fn of(cp: Option<&Checkpoint>) -> Self {
        let mut d = Self::default();
        if let Some(cp) = cp {
            d.runs = cp.runs.clone();
            for s in &cp.slices {
                d.slices.entry(s.partition).or_default().push(*s);
            }
        }
        d
    }

    fn slices(&self, p: &PartitionId) -> &[Slice] {
        self.slices.get(p).map_or(&[], Vec::as_slice)
    }

    /// The end of the partition's slices.
    fn end(&self, p: &PartitionId) -> Option<u64> {
        self.slices(p).last().map(|s| s.end)
    }

    /// Frame bytes the partition has in runs.
    fn bytes(&self, p: &PartitionId) -> u64 {
        self.slices(p)
            .iter()
            .map(|s| (s.len - s.index_len) as u64)
            .sum()
    }

    /// Forget the partition's slices below `own_end` (its own objects hold them: a pass that
    /// promoted them stopped before its checkpoint). A slice that straddles `own_end` is an
    /// inconsistency: `Err(its base)`.
    fn drop_copied(&mut self, p: &PartitionId, own_end: u64) -> std::result::Result<(), u64> {
        let Some(v) = self.slices.get_mut(p) else {
            return Ok(());
        };
        if let Some(s) = v.iter().find(|s| s.base < own_end && own_end < s.end) {
            return Err(s.base);
        }
        v.retain(|s| s.base >= own_end);
        if v.is_empty() {
            self.slices.remove(p);
        }
        Ok(())
    }

    fn remove(&mut self, p: &PartitionId) {
        self.slices.remove(p);
    }

    /// Drop slices whose records are all older than their topic's cutoff (`None`: kept).
    /// Append times never decrease along a partition, so these are a prefix of its slices.
    /// Returns how many were dropped.
    fn expire(&mut self, cutoff: impl Fn(TopicId) -> Option<i64>) -> u64 {
        let mut dropped = 0;
        for (p, v) in self.slices.iter_mut() {
            if let Some(c) = cutoff(p.topic) {
                let before = v.len();
                v.retain(|s| s.max_ts >= c);
                dropped += (before - v.len()) as u64;
            }
        }
        self.slices.retain(|_, v| !v.is_empty());
        dropped
    }

    /// Add a run at the end (the newest).
    fn add_run(&mut self, run: RunRef, slices: Vec<Slice>) {
        self.insert_run(self.runs.len(), run, slices);
    }

    fn insert_run(&mut self, at: usize, run: RunRef, slices: Vec<Slice>) {
        self.runs.insert(at, run);
        for s in slices {
            let v = self.slices.entry(s.partition).or_default();
            v.push(s);
            v.sort_by_key(|s| s.base);
        }
    }

    /// The first `fan_in` consecutive runs of one level (the lowest level first) whose total
    /// length is at most `max_bytes`, ignoring runs no slice names any more.
    fn merge_window(&mut self, fan_in: usize, max_bytes: u64) -> Option<std::ops::Range<usize>> {
        self.prune();
        if fan_in < 2 {
            return None;
        }
        let mut levels: Vec<u8> = self.runs.iter().map(|r| r.level).collect();
        levels.sort_unstable();
        levels.dedup();
        for level in levels {
            for start in 0..self.runs.len().saturating_sub(fan_in - 1) {
                let w = &self.runs[start..start + fan_in];
                if w.iter().all(|r| r.level == level)
                    && w.iter().map(|r| r.len).sum::<u64>() <= max_bytes
                {
                    return Some(start..start + fan_in);
                }
            }
        }
        None
    }

    /// Replace the runs at `window` and their slices by `merged` (the run written from them,
    /// none when nothing in them was left), in their place.
    fn replace_runs(
        &mut self,
        window: std::ops::Range<usize>,
        merged: Option<(RunRef, Vec<Slice>)>,
    ) {
        let at = window.start;
        let gone: HashSet<ObjectId> = self.runs.drain(window).map(|r| r.id).collect();
        for v in self.slices.values_mut() {
            v.retain(|s| !gone.contains(&s.run));
        }
        self.slices.retain(|_, v| !v.is_empty());
        self.dropped = true;
        if let Some((run, slices)) = merged {
            self.insert_run(at, run, slices);
        }
    }

    /// Forget runs no slice names.
    fn prune(&mut self) {
        let named: HashSet<ObjectId> = self.slices.values().flatten().map(|s| s.run).collect();
        let before = self.runs.len();
        self.runs.retain(|r| named.contains(&r.id));
        self.dropped |= self.runs.len() != before;
    }

    /// Whether some run is no longer named (so the run GC has something to delete).
    fn dropped_runs(&mut self) -> bool {
        self.prune();
        self.dropped
    }

    fn into_checkpoint(mut self, cp: &mut Checkpoint) {
        self.prune();
        cp.runs = self.runs;
        cp.slices = self.slices.into_values().flatten().collect();
    }
}

#[cfg(test)]
mod directory_tests {
    use super::*;

    fn p(n: u32) -> PartitionId {
        PartitionId {
            topic: TopicId([n as u8; 16]),
            partition: 0,
        }
    }

    fn slice(part: u32, run: u8, base: u64, end: u64, ts: i64) -> Slice {
        Slice {
            partition: p(part),
            run: ObjectId([run; 16]),
            base,
            end,
            min_ts: ts,
            max_ts: ts,
            pos: 8,
            index_len: 10,
            len: 110,
        }
    }

    fn run(id: u8, level: u8) -> RunRef {
        RunRef {
            id: ObjectId([id; 16]),
            level,
            len: 1000,
        }
    }

    /// Runs 1..=n of `level`, each with a slice of partitions 1 and 2 (offsets per run).
    fn dir_of(levels: &[u8]) -> Directory {
        let mut d = Directory::default();
        for (i, &level) in levels.iter().enumerate() {
            let id = i as u8 + 1;
            let (b, e) = (i as u64 * 10, i as u64 * 10 + 10);
            d.add_run(
                run(id, level),
                vec![slice(1, id, b, e, b as i64), slice(2, id, b, e, b as i64)],
            );
        }
        d
    }

    #[test]
    fn the_lowest_level_merges_first_and_only_consecutive_runs_of_one_level() {
        let mut d = dir_of(&[1, 0, 0, 1, 0]);
        // Level 0: runs 2 and 3 are consecutive; 5 stands alone.
        assert_eq!(d.merge_window(2, u64::MAX), Some(1..3));
        // Level 1 runs 1 and 4 are not consecutive: no window with fan-in 2 at level 1.
        let mut d2 = dir_of(&[1, 0, 1]);
        assert_eq!(d2.merge_window(2, u64::MAX), None);
        // Too long once merged.
        assert_eq!(d.merge_window(2, 1999), None);
        assert_eq!(
            d.merge_window(1, u64::MAX),
            None,
            "fan-in below 2 never merges"
        );
    }

    #[test]
    fn a_merged_run_takes_the_place_of_the_runs_it_replaces() {
        let mut d = dir_of(&[1, 0, 0, 0]);
        let w = d.merge_window(2, u64::MAX).unwrap();
        let merged = vec![slice(1, 9, 10, 30, 10), slice(2, 9, 10, 30, 10)];
        d.replace_runs(w, Some((run(9, 1), merged)));
        let ids: Vec<u8> = d.runs.iter().map(|r| r.id.0[0]).collect();
        assert_eq!(ids, [1, 9, 4]);
        let bases: Vec<u64> = d.slices(&p(1)).iter().map(|s| s.base).collect();
        assert_eq!(bases, [0, 10, 30], "slices stay in offset order");
        assert!(d.dropped_runs());
        let mut cp = Checkpoint::default();
        d.into_checkpoint(&mut cp);
        assert_eq!(cp.runs.len(), 3);
        assert_eq!(cp.slices.len(), 6);
    }

    #[test]
    fn expiry_drops_a_prefix_and_prunes_runs_no_slice_names() {
        let mut d = dir_of(&[0, 0, 0]);
        // Partition 1's topic keeps records from ts 15 on; partition 2 has no retention.
        let dropped = d.expire(|t| (t == p(1).topic).then_some(15));
        assert_eq!(dropped, 2, "the slices of times 0 and 10");
        assert_eq!(d.slices(&p(1)).first().map(|s| s.base), Some(20));
        assert_eq!(d.slices(&p(2)).len(), 3);
        assert!(
            !d.dropped_runs(),
            "runs 1 and 2 still hold partition 2's slices"
        );
        d.expire(|_| Some(i64::MAX));
        assert!(d.slices.is_empty());
        assert!(d.dropped_runs());
        assert!(d.runs.is_empty());
    }

    #[test]
    fn slices_an_interrupted_pass_copied_are_dropped_and_a_straddling_one_is_refused() {
        let mut d = dir_of(&[0, 0, 0]);
        assert_eq!(d.bytes(&p(1)), 300);
        d.drop_copied(&p(1), 20).unwrap();
        assert_eq!(d.slices(&p(1)).first().map(|s| s.base), Some(20));
        assert_eq!(d.end(&p(1)), Some(30));
        assert_eq!(d.drop_copied(&p(2), 15), Err(10));
        d.drop_copied(&p(2), 30).unwrap();
        assert_eq!(d.end(&p(2)), None);
    }
}
