//! One journal shard as seen by one process: its head (for commits), its checkpoint (what the
//! index covers) and the tail of entries after that checkpoint (for reads of recent records).
//!
//! The commit protocol lives in [`ShardLog::commit`]:
//! 1. the caller has already PUT the segment (create-only);
//! 2. plan the entry at `head + 1` from the cached head ([`HeadState::plan`]);
//! 3. PUT `journal/{shard}/{head+1}` create-only;
//! 4. on "already exists": if the object is byte-for-byte ours (a retried PUT whose first answer
//!    was lost) we are done; otherwise catch up to the new head and plan again — duplicates
//!    drop out, offsets are re-assigned, the segment is reused;
//! 5. on an unknown outcome (error/timeout): GET the key to learn what happened.
//!
//! Safety bounds: a writer whose head was last confirmed more than `max_head_age` ago reloads the
//! newest checkpoint before committing (the compactor only deletes journal entries far older than
//! that), and a segment older than `commit_deadline_ms` is never committed (GC only deletes
//! unreferenced segments far older than that).

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::format::checkpoint::{Checkpoint, Slice};
use crate::format::journal::JournalEntry;
use crate::head::{HeadState, Outcome, PendingAppend};
use crate::ids::{ObjectId, PartitionId};
use crate::keys;
use crate::store::{self, DynStore};
use futures::StreamExt;
use object_store::ObjectStore;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex};

/// Timing bounds of the commit protocol. See `docs/ARCHITECTURE.md` for how they relate to the
/// compactor's truncation and GC horizons.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    pub dedup_window_ms: i64,
    pub max_head_age: Duration,
    pub commit_deadline_ms: i64,
    /// Give up a commit after this many lost races or unknown outcomes in a row.
    pub max_attempts: u32,
    /// How often readers and writers look for a newer checkpoint (which moves offsets from the
    /// journal tail to index objects and lets the tail kept in memory shrink).
    pub checkpoint_refresh: Duration,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self {
            dedup_window_ms: 10 * 60_000,
            max_head_age: Duration::from_secs(30),
            commit_deadline_ms: 120_000,
            max_attempts: 64,
            checkpoint_refresh: Duration::from_secs(5),
        }
    }
}

/// An applied journal entry older than this means the reader is catching up: it reads the
/// next entries several at once (see `ShardLog::read_forward`).
pub const CATCH_UP_AGE_MS: i64 = 1_000;
/// Most journal entry GETs in flight while catching up.
pub const MAX_CATCH_UP_GETS: u64 = 16;

/// A batch after the newest known checkpoint, readable from its segment.
#[derive(Clone, Copy, Debug)]
pub struct TailBatch {
    pub seq: u64,
    pub base_offset: u64,
    pub record_count: u32,
    pub append_ts: i64,
    pub segment: ObjectId,
    pub pos: u64,
    pub len: u32,
}

impl TailBatch {
    pub fn end_offset(&self) -> u64 {
        self.base_offset + self.record_count as u64
    }
}

struct State {
    head: HeadState,
    checkpoint_seq: u64,
    /// Next offset per partition as of the checkpoint: offsets below are in index objects.
    covered: HashMap<PartitionId, u64>,
    tail: HashMap<PartitionId, VecDeque<TailBatch>>,
    last_append: HashMap<PartitionId, i64>,
    last_sync: Instant,
    /// When the newest checkpoint was last looked for.
    checkpoint_checked: Option<Instant>,
    /// Whether the journal head was ever read (a shard opened for its checkpoint alone, by a
    /// timestamp look-up, has not been).
    synced_once: bool,
    /// Per partition, the checkpoint's slices of shared runs (offsets from the first one's
    /// base up to `covered`), sorted.
    slices: HashMap<PartitionId, Arc<[Slice]>>,
}

/// Where the records at an offset are.
#[derive(Clone, Debug)]
pub enum Located {
    /// Folded: in index objects or slices of shared runs (offset below the checkpoint's
    /// coverage).
    Indexed,
    /// In the journal tail: the batches from the one holding the offset onwards.
    Tail { batches: Vec<TailBatch>, next: u64 },
    /// Exactly at the end: nothing to read yet.
    End { next: u64 },
    /// Beyond the end.
    Beyond { next: u64 },
}

pub struct ShardLog {
    store: DynStore,
    shard: u32,
    clock: Arc<dyn Clock>,
    cfg: ShardConfig,
    writer: [u8; 16],
    state: RwLock<State>,
    commit_lock: Mutex<()>,
    sync_lock: Mutex<()>,
    /// Whether our last commit had to retry (another writer commits to this shard too).
    contended: std::sync::atomic::AtomicBool,
    head_tx: watch::Sender<u64>,
    /// Set once by the owning [`crate::log::Log`]; commits before that are not observed.
    metrics: std::sync::OnceLock<crate::metrics::JournalMetrics>,
}

impl ShardLog {
    /// Load the newest checkpoint and catch up with the journal.
    pub async fn open(
        store: DynStore,
        shard: u32,
        clock: Arc<dyn Clock>,
        cfg: ShardConfig,
        writer: [u8; 16],
    ) -> Result<Arc<Self>> {
        let this = Self::open_at_checkpoint(store, shard, clock, cfg, writer).await?;
        this.sync().await?;
        Ok(this)
    }

    /// Load the newest checkpoint only (one GET of the pointer): enough to find what is in
    /// index objects and shared runs. The journal is read by the first [`sync`](Self::sync).
    pub async fn open_at_checkpoint(
        store: DynStore,
        shard: u32,
        clock: Arc<dyn Clock>,
        cfg: ShardConfig,
        writer: [u8; 16],
    ) -> Result<Arc<Self>> {
        let this = Arc::new(Self {
            state: RwLock::new(State {
                head: HeadState::new(shard, cfg.dedup_window_ms),
                checkpoint_seq: 0,
                covered: HashMap::new(),
                tail: HashMap::new(),
                last_append: HashMap::new(),
                last_sync: Instant::now(),
                checkpoint_checked: None,
                synced_once: false,
                slices: HashMap::new(),
            }),
            store,
            shard,
            clock,
            cfg,
            writer,
            commit_lock: Mutex::new(()),
            sync_lock: Mutex::new(()),
            contended: std::sync::atomic::AtomicBool::new(false),
            head_tx: watch::channel(0).0,
            metrics: std::sync::OnceLock::new(),
        });
        this.refresh_checkpoint().await?;
        Ok(this)
    }

    /// Whether the journal head was read at least once since the shard was opened.
    pub fn synced_once(&self) -> bool {
        self.read_state().synced_once
    }

    /// The slices of shared runs holding offsets of `p` (from the newest checkpoint known),
    /// sorted and dense; empty when none do.
    pub fn slices(&self, p: &PartitionId) -> Arc<[Slice]> {
        self.read_state()
            .slices
            .get(p)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// Offsets of `p` below this are in its own index objects: the first slice's base, or
    /// all of [`covered`](Self::covered) when no slice holds any.
    pub fn own_covered(&self, p: &PartitionId) -> u64 {
        let st = self.read_state();
        match st.slices.get(p).and_then(|s| s.first()) {
            Some(s) => s.base,
            None => st.covered.get(p).copied().unwrap_or(0),
        }
    }

    pub fn shard(&self) -> u32 {
        self.shard
    }

    pub fn config(&self) -> &ShardConfig {
        &self.cfg
    }

    /// The commit clock (what segment ages and append timestamps are measured with).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn head_seq(&self) -> u64 {
        self.read_state().head.seq
    }

    pub fn checkpoint_seq(&self) -> u64 {
        self.read_state().checkpoint_seq
    }

    pub fn next_offset(&self, p: &PartitionId) -> u64 {
        self.read_state().head.next_offset(p)
    }

    /// Whether the head was confirmed current (a sync or a commit of ours) within `d`.
    pub fn synced_within(&self, d: Duration) -> bool {
        let st = self.read_state();
        st.synced_once && st.last_sync.elapsed() < d
    }

    /// Offsets below this are in index objects (per the newest checkpoint this process knows).
    pub fn covered(&self, p: &PartitionId) -> u64 {
        self.read_state().covered.get(p).copied().unwrap_or(0)
    }

    pub fn last_append_ts(&self, p: &PartitionId) -> Option<i64> {
        self.read_state().last_append.get(p).copied()
    }

    /// Notified with the head seq whenever an entry is applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }

    pub fn locate(&self, p: &PartitionId, offset: u64) -> Located {
        let st = self.read_state();
        let next = st.head.next_offset(p);
        let covered = st.covered.get(p).copied().unwrap_or(0);
        if offset > next {
            return Located::Beyond { next };
        }
        if offset == next {
            return Located::End { next };
        }
        if offset < covered {
            return Located::Indexed;
        }
        let batches = st
            .tail
            .get(p)
            .map(|q| {
                let i = q.partition_point(|b| b.end_offset() <= offset);
                q.range(i..).copied().collect()
            })
            .unwrap_or_default();
        Located::Tail { batches, next }
    }

    /// First tail batch whose append timestamp is at least `ts`.
    pub fn tail_offset_for_timestamp(&self, p: &PartitionId, ts: i64) -> Option<u64> {
        let st = self.read_state();
        let q = st.tail.get(p)?;
        let i = q.partition_point(|b| b.append_ts < ts);
        q.get(i).map(|b| b.base_offset)
    }

    fn apply(&self, st: &mut State, entry: &JournalEntry) -> Result<()> {
        if entry.seq <= st.head.seq {
            return Ok(()); // applied already (by a concurrent sync or commit)
        }
        st.head.apply(entry).map_err(|source| Error::Inconsistent {
            shard: self.shard,
            source,
        })?;
        for (p, b) in entry.batches() {
            st.tail.entry(p).or_default().push_back(TailBatch {
                seq: entry.seq,
                base_offset: b.base_offset,
                record_count: b.record_count,
                append_ts: entry.append_ts,
                segment: b.segment,
                pos: b.pos,
                len: b.len,
            });
            st.last_append.insert(p, entry.append_ts);
        }
        self.head_tx.send_replace(entry.seq);
        Ok(())
    }

    /// Read journal entries after the head until the first missing one.
    pub async fn sync(&self) -> Result<()> {
        self.sync_since(None).await
    }

    /// Like [`sync`](Self::sync), but skipped when another sync finished after `since`
    /// (concurrent readers share one round trip).
    ///
    /// A head not confirmed for `max_head_age` may be so old that the compactor has truncated
    /// the entries after it: a GET of `head+1` would then answer 404 for a key that did exist,
    /// and a commit there would rewrite history. So a stale head first looks for a newer
    /// checkpoint (jumping forward to it), and looks again after reading forward; if one
    /// appeared beyond the head it read to, it jumps and reads on.
    pub async fn sync_since(&self, since: Option<Instant>) -> Result<()> {
        let _g = self.sync_lock.lock().await;
        let (synced_once, last_sync, checked) = {
            let st = self.read_state();
            (st.synced_once, st.last_sync, st.checkpoint_checked)
        };
        if synced_once && since.is_some_and(|s| last_sync >= s) {
            return Ok(());
        }
        // Never synced: the head is the checkpoint's, as old as the look for it.
        let stale = if synced_once {
            last_sync.elapsed() > self.cfg.max_head_age
        } else {
            checked.is_none_or(|t| t.elapsed() > self.cfg.max_head_age)
        };
        if stale {
            self.refresh_checkpoint().await?;
        }
        loop {
            let confirmed = self.read_forward().await?;
            if stale {
                let reached = self.head_seq();
                self.refresh_checkpoint().await?;
                if self.head_seq() > reached {
                    continue; // a checkpoint beyond what we read: our view had a hole
                }
            }
            let mut st = self.write_state();
            st.last_sync = if st.synced_once {
                st.last_sync.max(confirmed)
            } else {
                confirmed
            };
            st.synced_once = true;
            return Ok(());
        }
    }

    /// GET and apply entries after the head until one is missing. Returns when the GET that
    /// found nothing was sent: the head is known current as of then.
    ///
    /// A reader that is behind (the last entry it applied is older than [`CATCH_UP_AGE_MS`]:
    /// a cold open, a long pause) GETs the next entries several at once (the keys are
    /// numbered), doubling up to [`MAX_CATCH_UP_GETS`] per round, instead of one round trip
    /// per entry; entries are still applied in order and it still stops at the first missing
    /// one (what lies beyond a missing key is not read). A reader at the head GETs one at a
    /// time, so an idle poll stays one GET.
    async fn read_forward(&self) -> Result<Instant> {
        let mut window = 1u64;
        loop {
            let head = self.head_seq();
            // Sent no earlier than this: a safe "known current as of" for a GET that misses.
            let asked = Instant::now();
            let got: Vec<_> = futures::stream::iter(head + 1..=head + window)
                .map(|seq| {
                    let key = keys::journal_entry(self.shard, seq);
                    async move { (seq, store::get_opt(&*self.store, &key).await, key) }
                })
                .buffered(window as usize)
                .collect()
                .await;
            let mut behind = false;
            for (seq, bytes, key) in got {
                let Some(bytes) = bytes? else {
                    return Ok(asked);
                };
                let entry = JournalEntry::decode(&bytes).map_err(|e| Error::corrupt(&key, e))?;
                if entry.seq != seq || entry.shard != self.shard {
                    return Err(Error::corrupt(
                        &key,
                        crate::codec::invalid("journal.seq", "does not match its key"),
                    ));
                }
                behind = self.clock.now_ms() - entry.append_ts > CATCH_UP_AGE_MS;
                let mut st = self.write_state();
                self.apply(&mut st, &entry)?;
            }
            window = if behind {
                (window * 2).min(MAX_CATCH_UP_GETS)
            } else {
                1
            };
        }
    }

    /// Load the newest checkpoint if it is newer than the one we know: it tells which offsets
    /// moved into index objects, and lets a far-behind head jump forward. One GET of the
    /// checkpoint pointer (a LIST and a GET when there is none).
    pub async fn refresh_checkpoint(&self) -> Result<()> {
        self.refresh_checkpoint_from(false).await
    }

    /// Like [`refresh_checkpoint`](Self::refresh_checkpoint), but from the listing of the
    /// numbered checkpoints, which cannot lag the way the pointer can (a compactor that
    /// crashed between a checkpoint and its pointer): used when an object we were told about
    /// has gone.
    pub async fn refresh_checkpoint_listed(&self) -> Result<()> {
        self.refresh_checkpoint_from(true).await
    }

    async fn refresh_checkpoint_from(&self, listed: bool) -> Result<()> {
        self.write_state().checkpoint_checked = Some(Instant::now());
        let known = self.checkpoint_seq();
        if let Some(cp) = newest_checkpoint(&*self.store, self.shard, known, listed).await? {
            self.adopt_checkpoint(&cp);
        }
        Ok(())
    }

    /// Look for a newer checkpoint if the last look is older than `checkpoint_refresh`.
    pub async fn refresh_checkpoint_if_due(&self) -> Result<()> {
        let every = self.cfg.checkpoint_refresh;
        let due = self
            .read_state()
            .checkpoint_checked
            .is_none_or(|t| t.elapsed() >= every);
        if due {
            self.refresh_checkpoint().await?;
        }
        Ok(())
    }

    fn adopt_checkpoint(&self, cp: &Checkpoint) {
        let mut st = self.write_state();
        if cp.seq <= st.checkpoint_seq {
            return;
        }
        if cp.seq > st.head.seq {
            st.head = HeadState::from_checkpoint(cp, self.cfg.dedup_window_ms);
            st.tail.clear();
            self.head_tx.send_replace(cp.seq);
        }
        st.checkpoint_seq = cp.seq;
        st.covered = cp.next_offsets.iter().copied().collect();
        st.slices = cp
            .slices
            .chunk_by(|a, b| a.partition == b.partition)
            .map(|c| (c[0].partition, Arc::from(c)))
            .collect();
        for q in st.tail.values_mut() {
            while q.front().is_some_and(|b| b.seq <= cp.seq) {
                q.pop_front();
            }
        }
        st.tail.retain(|_, q| !q.is_empty());
    }

    /// Observe this shard's commits in `metrics` (the first call wins).
    pub fn set_metrics(&self, metrics: crate::metrics::JournalMetrics) {
        // Counters of a shard this process writes exist from the start, at 0.
        let shard = crate::metrics::ShardLabel { shard: self.shard };
        drop(metrics.entries.get_or_create(&shard));
        drop(metrics.conflicts.get_or_create(&shard));
        drop(metrics.commit_failures.get_or_create(&shard));
        let _ = self.metrics.set(metrics);
    }

    /// Commit appends whose records are in segment `segment` (already written). Returns one
    /// outcome per append and the append timestamp of the entry.
    pub async fn commit(
        &self,
        pending: &[PendingAppend],
        segment: ObjectId,
    ) -> Result<(Vec<Outcome>, i64)> {
        let _g = self.commit_lock.lock().await;
        let started = Instant::now();
        let r = self.commit_locked(pending, segment).await;
        if let Some(m) = self.metrics.get() {
            let shard = crate::metrics::ShardLabel { shard: self.shard };
            match &r {
                Ok(_) => m
                    .commit_seconds
                    .get_or_create(&shard)
                    .observe(started.elapsed().as_secs_f64()),
                Err(_) => {
                    m.commit_failures.get_or_create(&shard).inc();
                }
            }
        }
        r
    }

    async fn commit_locked(
        &self,
        pending: &[PendingAppend],
        segment: ObjectId,
    ) -> Result<(Vec<Outcome>, i64)> {
        // Keeps the in-memory tail bounded on gateways that only write.
        if let Err(e) = self.refresh_checkpoint_if_due().await {
            tracing::warn!(shard = self.shard, error = %e, "could not look for a newer checkpoint");
        }
        let mut failures = 0;
        // Under contention (our last commit lost a race), read the head first: a GET that finds
        // the other writers' entries is cheaper than a PUT that loses to them.
        let mut others_committed = false;
        let mut synced_for_refusal = false;
        if self.contended.load(std::sync::atomic::Ordering::Relaxed) {
            let before = self.head_seq();
            self.sync().await?;
            others_committed = self.head_seq() > before;
        }
        loop {
            if self.read_state().last_sync.elapsed() > self.cfg.max_head_age {
                self.sync().await?; // reloads the checkpoint first: see sync_since
            }
            let now = self.clock.now_ms();
            if now - segment.created_ms() > self.cfg.commit_deadline_ms {
                return Err(Error::Stale(format!(
                    "segment {segment} is older than the commit deadline"
                )));
            }
            let (entry, outcomes) = self.read_state().head.plan(pending, now, self.writer);
            let Some(entry) = entry else {
                // A refused producer request (sequence gap, old epoch) must be judged on a
                // current head: with nothing to write no PUT proves ours is, so sync once.
                if !synced_for_refusal && outcomes.iter().any(|o| matches!(o, Outcome::Refused(_)))
                {
                    synced_for_refusal = true;
                    self.sync().await?;
                    continue;
                }
                let ts = self.read_state().head.last_append_ts;
                return Ok((outcomes, ts));
            };
            let key = keys::journal_entry(self.shard, entry.seq);
            let asked = Instant::now();
            let claim = store::put_create_claim(&*self.store, &key, entry.encode()).await?;
            let metrics = self.metrics.get();
            let label = crate::metrics::ShardLabel { shard: self.shard };
            let error = match claim {
                store::Claim::Ours { error } => {
                    if let Some(m) = metrics {
                        m.entries.get_or_create(&label).inc();
                    }
                    self.contended.store(
                        others_committed || failures > 0,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    {
                        let mut st = self.write_state();
                        self.apply(&mut st, &entry)?;
                        // Creating head+1 proves the head was current when the PUT was sent
                        // (and no later: others may have committed since, so readers still
                        // sync after this).
                        st.last_sync = st.last_sync.max(asked);
                    }
                    // Our entry is there but its PUT answered an error: on S3 visible means
                    // stored; on a local folder the error may be the directory fsync after the
                    // link, so the entry may not survive a power loss. Never ack what may not
                    // be durable: the entry stays (the head moved on, every reader sees it) and
                    // its appends are answered retryable. A retry with the same idempotency key
                    // is answered from the head with these offsets.
                    return match error {
                        None => Ok((outcomes, entry.append_ts)),
                        Some(e) => Err(e),
                    };
                }
                store::Claim::Lost { error } => error,
            };
            if error.is_none() {
                if let Some(m) = metrics {
                    m.conflicts.get_or_create(&label).inc();
                }
            }
            failures += 1;
            if failures >= self.cfg.max_attempts {
                return Err(error.unwrap_or_else(|| {
                    Error::Conflict(format!(
                        "shard {} lost {failures} commit races in a row",
                        self.shard
                    ))
                }));
            }
            if error.is_some() {
                // Transient store error and nothing landed: back off a little before retrying.
                tokio::time::sleep(Duration::from_millis(5 * failures as u64)).await;
            }
            self.sync().await?;
        }
    }
}

/// The checkpoint the pointer (`checkpoints/latest/{shard}`) holds, one GET; `None` when it is
/// missing, cannot be read, does not decode or names another shard (logged). It is only a
/// hint: the numbered checkpoints are authoritative.
pub async fn pointed_checkpoint(store: &dyn ObjectStore, shard: u32) -> Option<Checkpoint> {
    let key = keys::checkpoint_pointer(shard);
    // One GET with the body every time: no `If-None-Match`, because `LocalFileSystem`'s ETags
    // (inode, mtime, size) can repeat across overwrites of the pointer, so an unchanged ETag
    // proves nothing there (tried; a reader missed a new checkpoint). A pointer that cannot be
    // read counts as missing (seen on LocalStack: after a writer was killed during an
    // overwrite, every GET of the pointer failed mid-body, and a shard that needed the
    // pointer could not open at all).
    let bytes = match store::get_opt(store, &key).await {
        Ok(found) => found?,
        Err(e) => {
            tracing::warn!(%key, error = %e, "cannot read the checkpoint pointer");
            return None;
        }
    };
    match Checkpoint::decode(&bytes) {
        Ok(cp) if cp.shard == shard => Some(cp),
        Ok(_) => {
            tracing::error!(%key, "checkpoint pointer names another shard");
            None
        }
        Err(e) => {
            tracing::error!(%key, error = %e, "corrupt checkpoint pointer");
            None
        }
    }
}

/// The newest checkpoint of `shard` if newer than `known`. From the pointer
/// ([`pointed_checkpoint`], one GET) unless `listed`; from the listing of the numbered
/// checkpoints (a LIST and a GET) when asked, or when the pointer is missing (a bucket written
/// before pointers existed) or unusable. Checkpoints that do not decode or do not match their
/// key are skipped for older ones (logged).
pub async fn newest_checkpoint(
    store: &dyn ObjectStore,
    shard: u32,
    known: u64,
    listed: bool,
) -> Result<Option<Checkpoint>> {
    if !listed {
        if let Some(cp) = pointed_checkpoint(store, shard).await {
            return Ok((cp.seq > known).then_some(cp));
        }
    }
    let names = store::list_names(store, &keys::checkpoint_dir(shard), None).await?;
    for seq in names.iter().rev().filter_map(|n| keys::parse_seq(n)) {
        if seq <= known {
            return Ok(None);
        }
        let key = keys::checkpoint(shard, seq);
        let Some(bytes) = store::get_opt(store, &key).await? else {
            continue; // deleted under us: an older one will do
        };
        match Checkpoint::decode(&bytes) {
            Ok(cp) if cp.seq == seq && cp.shard == shard => return Ok(Some(cp)),
            Ok(_) => tracing::error!(%key, "checkpoint does not match its key; skipped"),
            Err(e) => tracing::error!(%key, error = %e, "corrupt checkpoint; skipped"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Instrumented;
    use bytes::Bytes;

    fn cp(shard: u32, seq: u64) -> Checkpoint {
        let mut cp = HeadState::new(shard, 1000).to_checkpoint();
        cp.seq = seq;
        cp
    }

    #[tokio::test]
    async fn newest_checkpoint_from_the_pointer_else_the_listing() {
        let counted = Instrumented::new(
            crate::store::open("memory://", &Default::default()).unwrap(),
            0,
        );
        let s: &dyn ObjectStore = &*counted;
        // Nothing at all.
        assert!(newest_checkpoint(s, 2, 0, false).await.unwrap().is_none());
        // Numbered checkpoints, no pointer (a bucket from before pointers): the listing.
        for seq in [3, 7] {
            store::put_create(s, &keys::checkpoint(2, seq), cp(2, seq).encode())
                .await
                .unwrap();
        }
        let newest = |listed| async move {
            newest_checkpoint(s, 2, 0, listed)
                .await
                .unwrap()
                .map(|c| c.seq)
        };
        assert_eq!(newest(false).await, Some(7));
        assert!(newest_checkpoint(s, 2, 7, false).await.unwrap().is_none());
        // A pointer: one GET, even when it lags the listing; the listing when asked.
        let pointer = keys::checkpoint_pointer(2);
        store::put_overwrite(s, &pointer, cp(2, 3).encode())
            .await
            .unwrap();
        let before = counted.counts();
        assert_eq!(newest(false).await, Some(3));
        let spent = counted.counts();
        assert_eq!((spent.get - before.get, spent.list - before.list), (1, 0));
        assert_eq!(newest(true).await, Some(7));
        // A corrupt pointer, or one of another shard: the listing.
        store::put_overwrite(s, &pointer, Bytes::from_static(b"garbage"))
            .await
            .unwrap();
        assert_eq!(newest(false).await, Some(7));
        store::put_overwrite(s, &pointer, cp(5, 9).encode())
            .await
            .unwrap();
        assert_eq!(newest(false).await, Some(7));
        // A pointer whose GET fails (every time): the listing, not an error.
        counted.set_faults(crate::store::FaultConfig {
            error_rate: 1.0,
            only_prefix: Some(pointer.to_string()),
            ..Default::default()
        });
        assert_eq!(newest(false).await, Some(7));
    }

    #[tokio::test]
    async fn a_reader_behind_reads_entries_several_at_once_and_stops_at_the_first_missing() {
        use crate::clock::ManualClock;
        use crate::format::record::Record;
        use crate::log::{Log, LogConfig, ProduceRequest};
        let mem = crate::store::open("memory://", &Default::default()).unwrap();
        let clock = ManualClock::new(1_700_000_000_000);
        let log = Log::new(mem.clone(), clock.clone(), LogConfig::default());
        let t = log.topics().create("t", 1, None, 0).await.unwrap();
        let append = |n: usize| {
            let (log, t) = (log.clone(), t.clone());
            async move {
                for i in 0..n {
                    let request = ProduceRequest {
                        topic: t.clone(),
                        records: vec![(None, Record::new(None, Bytes::from(format!("r{i}"))))],
                        dedup_key: None,
                        producer: None,
                    };
                    log.flush(vec![request]).await.pop().unwrap().unwrap();
                }
            }
        };
        append(1).await;
        let counted = Instrumented::new(mem.clone(), 0);
        let cfg = ShardConfig {
            max_head_age: Duration::from_secs(3600),
            ..Default::default()
        };
        let reader = ShardLog::open(counted.clone(), t.shard, clock.clone(), cfg, [0; 16])
            .await
            .unwrap();
        let head = reader.head_seq();
        let gets_of_a_sync = || async {
            let before = counted.counts().get;
            reader.sync().await.unwrap();
            counted.counts().get - before
        };
        // At the head (entries just written): one GET per entry and the one that misses.
        append(5).await;
        assert_eq!(gets_of_a_sync().await, 6);
        assert_eq!(reader.head_seq(), head + 5);
        // Behind (entries a minute old): 1, 2, 4, 8, 16, 16 GETs at once for 40 entries; the
        // round that finds the first missing one ignores what it fetched beyond (here garbage
        // two past the head, never decoded).
        append(40).await;
        let end = head + 45;
        store::put_create(
            &*mem,
            &keys::journal_entry(t.shard, end + 2),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
        clock.advance(60_000);
        assert_eq!(gets_of_a_sync().await, 1 + 2 + 4 + 8 + 16 + 16);
        assert_eq!(reader.head_seq(), end);
        assert_eq!(
            reader.next_offset(&PartitionId {
                topic: t.topic_id().unwrap(),
                partition: 0
            }),
            46
        );
    }

    /// A journal PUT whose answer is an error although the entry landed (on a local folder:
    /// the directory fsync after the link failed) is never acked: the appends are answered
    /// retryable, the entry stays, and the retry is answered from the head, written once.
    #[tokio::test]
    async fn an_entry_that_landed_but_answered_an_error_is_not_acked() {
        use crate::format::record::Record;
        use crate::log::{Log, LogConfig, ProduceRequest};
        use crate::store::FaultConfig;
        let mem = crate::store::open("memory://", &Default::default()).unwrap();
        let faulty = Instrumented::new(mem.clone(), 7);
        let log = Log::new(faulty.clone(), crate::clock::system(), LogConfig::default());
        let t = log.topics().create("t", 1, None, 0).await.unwrap();
        let request = ProduceRequest {
            topic: t.clone(),
            records: vec![(None, Record::new(None, Bytes::from_static(b"once")))],
            dedup_key: Some(Bytes::from_static(b"k1")),
            producer: None,
        };
        faulty.set_faults(FaultConfig {
            lost_reply_rate: 1.0,
            only_prefix: Some(keys::JOURNAL.to_string()),
            ..Default::default()
        });
        let err = log.flush(vec![request.clone()]).await.pop().unwrap();
        let err = err.expect_err("an append whose PUT answered an error was acked");
        assert!(err.is_retryable(), "{err}");
        let p = PartitionId {
            topic: t.topic_id().unwrap(),
            partition: 0,
        };
        let shard = log.shard(t.shard).await.unwrap();
        assert_eq!(
            shard.next_offset(&p),
            1,
            "the entry that landed is in the head"
        );
        faulty.set_faults(FaultConfig::default());
        let ack = log.flush(vec![request]).await.pop().unwrap().unwrap();
        assert_eq!(ack.offsets, vec![(0, 0)]);
        assert_eq!(shard.next_offset(&p), 1, "the retry wrote nothing");
        let names = store::list_names(&*mem, &keys::journal_dir(t.shard), None)
            .await
            .unwrap();
        assert_eq!(names.len(), 1, "one journal entry: {names:?}");
    }

    /// A reader catching up (every page below the next offset it knows) pays one journal-head
    /// GET per `catch_up_sync_interval`, not one per page; a page that reaches the known end
    /// still syncs, so it sees what another writer committed since.
    #[tokio::test]
    async fn a_reader_catching_up_skips_the_head_get_per_page() {
        use crate::format::record::Record;
        use crate::log::{Log, LogConfig, ProduceRequest};
        let mem = crate::store::open("memory://", &Default::default()).unwrap();
        let writer = Log::new(mem.clone(), crate::clock::system(), LogConfig::default());
        let t = writer.topics().create("t", 1, None, 0).await.unwrap();
        let produce = |n: usize| {
            let (writer, t) = (writer.clone(), t.clone());
            async move {
                let request = ProduceRequest {
                    topic: t,
                    records: (0..n)
                        .map(|i| (None, Record::new(None, Bytes::from(format!("r{i}")))))
                        .collect(),
                    dedup_key: None,
                    producer: None,
                };
                writer.flush(vec![request]).await.pop().unwrap().unwrap();
            }
        };
        produce(100).await;
        let counted = Instrumented::new(mem.clone(), 0);
        let reader = Log::new(
            counted.clone(),
            crate::clock::system(),
            LogConfig {
                catch_up_sync_interval: Duration::from_secs(3600),
                ..Default::default()
            },
        );
        let journal_gets = || counted.counts_by_area().get("journal").map_or(0, |c| c.get);
        // Ten pages of 10 from a process that has not seen the shard: the open syncs, the
        // pages below the known end do not; the last page reaches the end and syncs.
        let mut offset = 0;
        let before = journal_gets();
        for _ in 0..10 {
            let page = reader.read(&t, 0, offset, 10, 1 << 20).await.unwrap();
            assert_eq!(page.records.len(), 10);
            assert_eq!(page.records[0].offset, offset);
            offset = page.next_offset;
        }
        let catching_up = journal_gets() - before;
        assert!(catching_up <= 4, "{catching_up} journal GETs for 10 pages");
        // Another writer commits: a read at the known end syncs and sees it.
        produce(5).await;
        let before = journal_gets();
        let page = reader.read(&t, 0, offset, 10, 1 << 20).await.unwrap();
        assert_eq!(page.records.len(), 5, "the new records are found");
        assert!(journal_gets() > before, "a page at the known end syncs");
        // With the head just confirmed, pages behind the known end make no GET.
        let before = journal_gets();
        for o in [0, 10, 20] {
            reader.read(&t, 0, o, 10, 1 << 20).await.unwrap();
        }
        assert_eq!(journal_gets(), before);
    }
}
