//! A replicated state machine in the bucket: one small, reusable module that queues and
//! consumer groups keep their state in, using nothing but create-only numbered objects (no
//! If-Match, so the local-folder store runs the same code as S3).
//!
//! # Objects (under a prefix owned by the user, e.g. `queues/{queue}/state/{id}`)
//! - `{prefix}/log/{seq:020}`: entry `seq` ([`StateEntry`]): the operations of one commit round,
//!   a JSON array, all applied with the entry's `time_ms`;
//! - `{prefix}/snap/{seq:020}`: the state after entry `seq` ([`StateSnapshot`]).
//!
//! The state is `S::default()` followed by every entry in order. Entry `seq` can only be created
//! once, and a writer only creates `seq` after applying every entry up to `seq - 1`, so every
//! process that reads the log computes the same state (apply is deterministic).
//!
//! # API
//! - [`StateMachine`]: the user's state: `apply(op, time_ms)` (deterministic, infallible: ops are
//!   validated when planned) plus `snapshot`/`restore`. Cloning it should be cheap (persistent
//!   maps such as `imbl`): planning works on a clone.
//! - [`StateLog::open`] loads the newest snapshot and reads forward.
//! - [`StateLog::propose`]`(plan)`: `plan(&state, time_ms) -> (ops, answer)` is run against the
//!   current state when the round is planned; its ops are applied to the working state before the
//!   next proposal of the same round is planned, so proposals of one round see each other. If the
//!   round loses the race for its key, the log is read forward and **every proposal is planned
//!   again** (so `plan` must be a pure function of the state it is given; it may run more than
//!   once). Returns the answer of the plan that was committed, with the entry's seq and time.
//!   A round whose proposals all planned nothing writes nothing; its answers are still based on a
//!   state confirmed current after the proposals were queued (a GET of `seq+1` that found
//!   nothing), so a rejection is never based on a stale state.
//! - [`StateLog::read`]`(max_staleness)`: the state, re-synced first if it was last confirmed
//!   current longer ago than `max_staleness` (concurrent readers share one round trip).
//! - [`StateLog::view`]: the cached state, no IO. [`StateLog::subscribe`]: woken on every change
//!   applied in this process.
//!
//! # Group commit
//! Concurrent proposals of one process queue up; one committer task at a time drains the queue
//! and writes ONE entry for all of them, so writes grow with time (one PUT per round trip), not
//! with the number of proposals. The committer is a spawned task: a caller that gives up
//! waiting never cancels a round half way.
//!
//! # Snapshots and truncation
//! Whoever commits writes a snapshot every `snapshot_every_entries` entries or `snapshot_every`
//! (in a background task, from an O(1) clone of the state). After a snapshot at `P`, entries are
//! deleted only when they are at least `truncate_keep_entries` behind `P` **and** older than
//! `truncate_min_age_ms`; snapshots except the newest two likewise. A process whose state was
//! not confirmed current for `max_head_age` looks for a newer snapshot before reading forward
//! (and again after), so it can never take a deleted key for the free head — the journal's rule
//! (see `core/src/shard.rs` and docs/ARCHITECTURE.md).

use crate::clock::Clock;
use crate::codec::{invalid, DecodeResult};
use crate::error::{Error, Result};
use crate::format::state::{StateEntry, StateSnapshot};
use crate::keys;
use crate::store::{self, DynStore};
use bytes::Bytes;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// A deterministic state machine kept in a [`StateLog`].
pub trait StateMachine: Clone + Default + Send + Sync + 'static {
    type Op: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Apply one committed operation. Must be deterministic (same state, op and time → same
    /// result on every process) and must not fail: invalid ops are kept out when planning, and
    /// an op that no longer makes sense (a bug, or a corrupt log) should be ignored.
    fn apply(&mut self, op: &Self::Op, time_ms: i64);
    /// Encode the whole state (see [`snapshot_json`] for the simple case).
    fn snapshot(&self) -> Result<Vec<u8>>;
    /// Decode what [`snapshot`](Self::snapshot) produced, defensively.
    fn restore(bytes: &[u8]) -> DecodeResult<Self>;
}

/// `snapshot` for states that are plain serde values.
pub fn snapshot_json<T: Serialize>(state: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(state).map_err(|e| Error::Internal(format!("state snapshot: {e}")))
}

/// `restore` for states that are plain serde values.
pub fn restore_json<T: DeserializeOwned>(bytes: &[u8]) -> DecodeResult<T> {
    serde_json::from_slice(bytes).map_err(|e| invalid("state", e.to_string()))
}

#[derive(Clone, Debug)]
pub struct StateLogConfig {
    /// A process whose state was not confirmed current for this long looks for a newer snapshot
    /// before reading forward or committing.
    pub max_head_age: Duration,
    /// Give up a round after this many lost races or failed PUTs in a row.
    pub max_attempts: u32,
    /// At most this many proposals per entry (the rest go in the next round).
    pub max_proposals_per_entry: usize,
    pub snapshot_every_entries: u64,
    pub snapshot_every: Duration,
    pub truncate_keep_entries: u64,
    pub truncate_min_age_ms: i64,
    /// How long a round waits for more proposals before it is planned (default zero: at once).
    /// With a linger `L`, one log writes at most one entry per `L` + PUT time, however many
    /// proposals arrive: writes grow with time even where a PUT takes no time (a local disk).
    pub linger: Duration,
}

impl Default for StateLogConfig {
    fn default() -> Self {
        Self {
            max_head_age: Duration::from_secs(30),
            max_attempts: 64,
            max_proposals_per_entry: 4096,
            snapshot_every_entries: 1000,
            snapshot_every: Duration::from_secs(60),
            truncate_keep_entries: 1000,
            truncate_min_age_ms: 15 * 60_000,
            linger: Duration::ZERO,
        }
    }
}

/// What [`StateLog::propose`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed<R> {
    /// The entry the proposal's ops are in (the current seq if it planned none).
    pub seq: u64,
    /// The time its ops were applied with.
    pub time_ms: i64,
    pub answer: R,
}

/// A consistent copy of the state.
#[derive(Clone, Debug)]
pub struct View<S> {
    pub state: S,
    pub seq: u64,
    /// Time of entry `seq`.
    pub time_ms: i64,
}

type PlanFn<S> = Box<dyn FnMut(&S, i64) -> Vec<<S as StateMachine>::Op> + Send>;

struct Pending<S: StateMachine> {
    plan: PlanFn<S>,
    done: oneshot::Sender<Result<(u64, i64)>>,
}

struct Inner<S> {
    state: S,
    seq: u64,
    time_ms: i64,
    /// The state is known current as of this instant.
    last_sync: Instant,
    /// Newest snapshot known to exist.
    snap_seq: u64,
    snap_at: Instant,
    snapshotting: bool,
}

pub struct StateLog<S: StateMachine> {
    store: DynStore,
    prefix: String,
    clock: Arc<dyn Clock>,
    cfg: StateLogConfig,
    writer: [u8; 16],
    inner: RwLock<Inner<S>>,
    queue: Mutex<VecDeque<Pending<S>>>,
    committing: AtomicBool,
    sync_lock: tokio::sync::Mutex<()>,
    head_tx: watch::Sender<u64>,
}

impl<S: StateMachine> StateLog<S> {
    /// Load the newest snapshot under `prefix` and read the entries after it. `writer`
    /// identifies this process in the entries it writes (e.g. a ULID minted at start); its last
    /// 8 bytes are replaced by a nonce of this instance, so two instances of one process on one
    /// log never take each other's entry for their own (which would answer both proposals).
    pub async fn open(
        store: DynStore,
        prefix: impl Into<String>,
        clock: Arc<dyn Clock>,
        cfg: StateLogConfig,
        mut writer: [u8; 16],
    ) -> Result<Arc<Self>> {
        let nonce = crate::ids::new_ulid(clock.now_ms()).to_bytes();
        writer[8..].copy_from_slice(&nonce[8..]);
        let this = Arc::new(Self {
            store,
            prefix: prefix.into(),
            clock,
            cfg,
            writer,
            inner: RwLock::new(Inner {
                state: S::default(),
                seq: 0,
                time_ms: 0,
                last_sync: Instant::now(),
                snap_seq: 0,
                snap_at: Instant::now(),
                snapshotting: false,
            }),
            queue: Mutex::new(VecDeque::new()),
            committing: AtomicBool::new(false),
            sync_lock: tokio::sync::Mutex::new(()),
            head_tx: watch::channel(0).0,
        });
        this.refresh_snapshot().await?;
        this.sync().await?;
        Ok(this)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn rd(&self) -> std::sync::RwLockReadGuard<'_, Inner<S>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
    fn wr(&self) -> std::sync::RwLockWriteGuard<'_, Inner<S>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached state (no IO; may be behind other processes).
    pub fn view(&self) -> View<S> {
        let g = self.rd();
        View {
            state: g.state.clone(),
            seq: g.seq,
            time_ms: g.time_ms,
        }
    }

    pub fn seq(&self) -> u64 {
        self.rd().seq
    }

    /// Notified with the seq whenever this process applies an entry or adopts a snapshot.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }

    /// The state, confirmed current within `max_staleness` (re-synced if older).
    pub async fn read(&self, max_staleness: Duration) -> Result<View<S>> {
        let now = Instant::now();
        if now.duration_since(self.rd().last_sync) > max_staleness {
            self.sync_since(Some(now.checked_sub(max_staleness).unwrap_or(now)))
                .await?;
        }
        Ok(self.view())
    }

    /// Read entries after the cached seq until one is missing.
    pub async fn sync(&self) -> Result<()> {
        self.sync_since(None).await
    }

    /// Like [`sync`](Self::sync), but skipped when the state was confirmed current at or after
    /// `since` (concurrent readers share one round trip). A state not confirmed for
    /// `max_head_age` first looks for a newer snapshot, and again after reading forward: entries
    /// behind a snapshot may have been deleted, and a 404 there must not be taken for the head.
    pub async fn sync_since(&self, since: Option<Instant>) -> Result<()> {
        let _g = self.sync_lock.lock().await;
        if since.is_some_and(|s| self.rd().last_sync >= s) {
            return Ok(());
        }
        let stale = self.rd().last_sync.elapsed() > self.cfg.max_head_age;
        if stale {
            self.refresh_snapshot().await?;
        }
        loop {
            let confirmed = self.read_forward().await?;
            if stale {
                let reached = self.seq();
                self.refresh_snapshot().await?;
                if self.seq() > reached {
                    continue;
                }
            }
            let mut g = self.wr();
            g.last_sync = g.last_sync.max(confirmed);
            return Ok(());
        }
    }

    /// GET and apply entries after the cached seq until one is missing; returns when the GET
    /// that found nothing was sent.
    async fn read_forward(&self) -> Result<Instant> {
        loop {
            let (mut state, seq) = {
                let g = self.rd();
                (g.state.clone(), g.seq)
            };
            let next = seq + 1;
            let key = keys::state_entry(&self.prefix, next);
            let asked = Instant::now();
            let Some(bytes) = store::get_opt(&*self.store, &key).await? else {
                return Ok(asked);
            };
            let entry = StateEntry::decode(&bytes).map_err(|e| Error::corrupt(&key, e))?;
            if entry.seq != next {
                return Err(Error::corrupt(
                    &key,
                    invalid("state_entry.seq", "does not match its key"),
                ));
            }
            let ops: Vec<S::Op> = serde_json::from_slice(&entry.ops)
                .map_err(|e| Error::corrupt(&key, invalid("state_entry.ops", e.to_string())))?;
            for op in &ops {
                state.apply(op, entry.time_ms);
            }
            let mut g = self.wr();
            if g.seq == seq {
                g.state = state;
                g.seq = next;
                g.time_ms = g.time_ms.max(entry.time_ms);
                self.head_tx.send_replace(next);
            }
        }
    }

    /// Adopt the newest decodable snapshot if it is ahead of the cached state.
    async fn refresh_snapshot(&self) -> Result<()> {
        let dir = keys::state_snapshot_dir(&self.prefix);
        let names = store::list_names(&*self.store, &dir, None).await?;
        for seq in names.iter().rev().filter_map(|n| keys::parse_seq(n)) {
            {
                let mut g = self.wr();
                g.snap_seq = g.snap_seq.max(seq);
                if seq <= g.seq {
                    return Ok(());
                }
            }
            let key = keys::state_snapshot(&self.prefix, seq);
            let Some(bytes) = store::get_opt(&*self.store, &key).await? else {
                continue; // deleted under us: an older one will do
            };
            let restored = StateSnapshot::decode(&bytes)
                .and_then(|s| {
                    if s.seq != seq {
                        return Err(invalid("state_snapshot.seq", "does not match its key"));
                    }
                    S::restore(&s.state).map(|st| (s, st))
                })
                .map_err(|e| Error::corrupt(&key, e));
            let (snap, state) = match restored {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "unreadable state snapshot; trying an older one");
                    continue;
                }
            };
            let mut g = self.wr();
            if snap.seq > g.seq {
                g.state = state;
                g.seq = snap.seq;
                g.time_ms = snap.time_ms;
                self.head_tx.send_replace(snap.seq);
            }
            return Ok(());
        }
        Ok(())
    }

    /// Propose: `plan(&state, time_ms)` returns the ops to commit and the caller's answer. It is
    /// run against the state the round is planned on (and again after a lost race), so it must
    /// depend on nothing but its arguments and what it captured. Resolves once the ops are in
    /// an entry (or nothing was planned against a state confirmed current).
    pub async fn propose<R, F>(self: &Arc<Self>, mut plan: F) -> Result<Committed<R>>
    where
        F: FnMut(&S, i64) -> (Vec<S::Op>, R) + Send + 'static,
        R: Send + 'static,
    {
        let slot: Arc<Mutex<Option<R>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            plan: Box::new(move |s: &S, t: i64| {
                let (ops, answer) = plan(s, t);
                *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
                ops
            }),
            done: tx,
        };
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(pending);
        self.kick();
        let (seq, time_ms) = rx
            .await
            .map_err(|_| Error::Internal("state log committer stopped".into()))??;
        let answer = slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::Internal("proposal answered without a plan".into()))?;
        Ok(Committed {
            seq,
            time_ms,
            answer,
        })
    }

    fn kick(self: &Arc<Self>) {
        if self.committing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move { this.commit_loop().await });
    }

    async fn commit_loop(self: Arc<Self>) {
        loop {
            if !self.cfg.linger.is_zero() {
                tokio::time::sleep(self.cfg.linger).await;
            }
            let batch: Vec<Pending<S>> = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let n = q.len().min(self.cfg.max_proposals_per_entry.max(1));
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                self.committing.store(false, Ordering::Release);
                let more = !self
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_empty();
                if more && !self.committing.swap(true, Ordering::AcqRel) {
                    continue;
                }
                return;
            }
            let mut batch = batch;
            let res = self.commit_round(&mut batch).await;
            if res.is_ok() {
                self.maybe_snapshot();
            }
            for p in batch {
                let _ = p.done.send(match &res {
                    Ok(x) => Ok(*x),
                    Err(e) => Err(share(e)),
                });
            }
        }
    }

    /// Plan every proposal of the round on one working copy, PUT the entry create-only, and on a
    /// lost race read forward and plan again. Returns the entry's seq and time.
    async fn commit_round(&self, batch: &mut [Pending<S>]) -> Result<(u64, i64)> {
        let queued = Instant::now();
        let mut failures = 0u32;
        loop {
            if self.rd().last_sync.elapsed() > self.cfg.max_head_age {
                self.sync().await?;
            }
            let (mut work, seq, prev_time, confirmed) = {
                let g = self.rd();
                (g.state.clone(), g.seq, g.time_ms, g.last_sync)
            };
            let time_ms = prev_time.max(self.clock.now_ms());
            let mut ops = Vec::new();
            for p in batch.iter_mut() {
                let planned = (p.plan)(&work, time_ms);
                for op in &planned {
                    work.apply(op, time_ms);
                }
                ops.extend(planned);
            }
            if ops.is_empty() {
                if confirmed >= queued {
                    return Ok((seq, prev_time));
                }
                self.sync_since(Some(queued)).await?;
                continue;
            }
            let ops_json = serde_json::to_vec(&ops)
                .map_err(|e| Error::Internal(format!("state ops do not serialise: {e}")))?;
            let entry = StateEntry {
                seq: seq + 1,
                time_ms,
                writer: self.writer,
                ops: Bytes::from(ops_json),
            };
            let key = keys::state_entry(&self.prefix, entry.seq);
            let asked = Instant::now();
            let error = match store::put_create_claim(&*self.store, &key, entry.encode()).await? {
                store::Claim::Ours { error } => {
                    let mut g = self.wr();
                    if g.seq == seq {
                        g.state = work;
                        g.seq = entry.seq;
                        g.time_ms = time_ms;
                        self.head_tx.send_replace(entry.seq);
                    }
                    g.last_sync = g.last_sync.max(asked);
                    drop(g);
                    // Ours, but its PUT answered an error: on a local folder that may be the
                    // directory fsync after the link (visible, maybe not durable). The entry
                    // stays applied; its proposals are answered retryable (unknown outcome).
                    return match error {
                        None => Ok((entry.seq, time_ms)),
                        Some(e) => Err(e),
                    };
                }
                store::Claim::Lost { error } => error,
            };
            failures += 1;
            if failures >= self.cfg.max_attempts {
                return Err(error.unwrap_or_else(|| {
                    Error::Conflict(format!(
                        "state log {} lost {failures} commit races in a row",
                        self.prefix
                    ))
                }));
            }
            if error.is_some() {
                tokio::time::sleep(Duration::from_millis(5 * failures as u64)).await;
            }
            self.sync().await?;
        }
    }

    fn maybe_snapshot(self: &Arc<Self>) {
        let (state, seq, time_ms) = {
            let mut g = self.wr();
            let due = g.seq >= g.snap_seq + self.cfg.snapshot_every_entries.max(1)
                || (g.seq > g.snap_seq && g.snap_at.elapsed() >= self.cfg.snapshot_every);
            if g.snapshotting || !due {
                return;
            }
            g.snapshotting = true;
            (g.state.clone(), g.seq, g.time_ms)
        };
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.write_snapshot(state, seq, time_ms).await {
                tracing::warn!(prefix = %this.prefix, error = %e, "state snapshot failed");
            }
            this.wr().snapshotting = false;
        });
    }

    async fn write_snapshot(&self, state: S, seq: u64, time_ms: i64) -> Result<()> {
        let encoded = tokio::task::spawn_blocking(move || state.snapshot())
            .await
            .map_err(|e| Error::Internal(format!("snapshot task: {e}")))??;
        let snap = StateSnapshot {
            seq,
            time_ms,
            state: Bytes::from(encoded),
        };
        let key = keys::state_snapshot(&self.prefix, seq);
        store::put_create(&*self.store, &key, snap.encode()).await?;
        {
            let mut g = self.wr();
            g.snap_seq = g.snap_seq.max(seq);
            g.snap_at = Instant::now();
        }
        self.truncate(seq).await
    }

    /// Delete entries at least `truncate_keep_entries` behind the snapshot at `snap_seq` and
    /// older than `truncate_min_age_ms`, and the snapshots (but the newest two) among them.
    async fn truncate(&self, snap_seq: u64) -> Result<()> {
        let limit = snap_seq.saturating_sub(self.cfg.truncate_keep_entries);
        if limit == 0 {
            return Ok(());
        }
        let cutoff = self.clock.now_ms() - self.cfg.truncate_min_age_ms;
        let names =
            store::list_names(&*self.store, &keys::state_log_dir(&self.prefix), None).await?;
        let seqs: Vec<u64> = names
            .iter()
            .filter_map(|n| keys::parse_seq(n))
            .filter(|s| *s <= limit)
            .collect();
        // Entry times never decrease along the log: binary search for the old-enough prefix.
        let (mut lo, mut hi) = (0usize, seqs.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let key = keys::state_entry(&self.prefix, seqs[mid]);
            let old = match store::get_opt(&*self.store, &key).await? {
                Some(b) => {
                    StateEntry::decode(&b)
                        .map_err(|e| Error::corrupt(&key, e))?
                        .time_ms
                        < cutoff
                }
                None => true, // deleted by a concurrent truncation
            };
            if old {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let Some(&upto) = seqs[..lo].last() else {
            return Ok(());
        };
        let snaps =
            store::list_names(&*self.store, &keys::state_snapshot_dir(&self.prefix), None).await?;
        let snap_seqs: Vec<u64> = snaps.iter().filter_map(|n| keys::parse_seq(n)).collect();
        let keep_from = snap_seqs.len().saturating_sub(2);
        let mut doomed: Vec<_> = seqs[..lo]
            .iter()
            .map(|s| keys::state_entry(&self.prefix, *s))
            .collect();
        doomed.extend(
            snap_seqs[..keep_from]
                .iter()
                .filter(|s| **s <= upto)
                .map(|s| keys::state_snapshot(&self.prefix, *s)),
        );
        let results: Vec<Result<()>> = futures::stream::iter(doomed)
            .map(|k| async move { store::delete(&*self.store, &k).await })
            .buffer_unordered(8)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Delete every object of the state log under `prefix` (the caller has made sure nobody
    /// uses it any more, e.g. a deleted queue whose incarnation is gone).
    pub async fn destroy(store: &DynStore, prefix: &str) -> Result<()> {
        for dir in [
            keys::state_log_dir(prefix),
            keys::state_snapshot_dir(prefix),
        ] {
            for n in store::list_names(&**store, &dir, None).await? {
                store::delete(&**store, &dir.clone().join(n.as_str())).await?;
            }
        }
        Ok(())
    }
}

/// One round's error for each of its proposals (errors are not `Clone`); keeps whether it is
/// worth retrying.
fn share(e: &Error) -> Error {
    match e {
        Error::Store { .. } | Error::Stale(_) => Error::Stale(e.to_string()),
        Error::Conflict(m) => Error::Conflict(m.clone()),
        Error::Invalid(m) => Error::Invalid(m.clone()),
        _ => Error::Internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{FaultConfig, Instrumented};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    /// How many times each id was added, and the order of additions.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Tally {
        count: BTreeMap<u64, u32>,
        order: Vec<u64>,
        last_time: i64,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    enum TallyOp {
        Add(u64),
    }

    impl StateMachine for Tally {
        type Op = TallyOp;
        fn apply(&mut self, op: &TallyOp, time_ms: i64) {
            let TallyOp::Add(id) = op;
            *self.count.entry(*id).or_default() += 1;
            self.order.push(*id);
            self.last_time = time_ms;
        }
        fn snapshot(&self) -> Result<Vec<u8>> {
            snapshot_json(self)
        }
        fn restore(bytes: &[u8]) -> DecodeResult<Self> {
            restore_json(bytes)
        }
    }

    /// Add `id` unless present: answers whether this proposal added it.
    async fn add_once(log: &Arc<StateLog<Tally>>, id: u64) -> Result<bool> {
        let c = log
            .propose(move |s: &Tally, _| {
                if s.count.contains_key(&id) {
                    (vec![], false)
                } else {
                    (vec![TallyOp::Add(id)], true)
                }
            })
            .await?;
        Ok(c.answer)
    }

    fn writer(n: u8) -> [u8; 16] {
        [n; 16]
    }

    async fn open(store: &DynStore, cfg: StateLogConfig, n: u8) -> Arc<StateLog<Tally>> {
        StateLog::open(
            store.clone(),
            "t/state",
            crate::clock::system(),
            cfg,
            writer(n),
        )
        .await
        .unwrap()
    }

    /// With a linger, proposals that arrive one after another within it share one entry (they
    /// arrive within 45 ms; the linger is 1 s, a margin no scheduler delay comes near).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_linger_gathers_sequential_proposals_into_one_entry() {
        let mem: DynStore = Arc::new(object_store::memory::InMemory::new());
        let cfg = StateLogConfig {
            linger: Duration::from_secs(1),
            ..Default::default()
        };
        let log = open(&mem, cfg, 1).await;
        let tasks: Vec<_> = (0..10u64)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(5 * i)).await;
                    add_once(&log, i).await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap());
        }
        assert_eq!(log.seq(), 1, "ten proposals within the linger: one entry");
        assert_eq!(log.view().state.count.len(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_committers_never_lose_or_repeat_an_op() {
        let mem: DynStore = Arc::new(object_store::memory::InMemory::new());
        let inst = Instrumented::new(mem, 7);
        let faults = FaultConfig {
            lost_reply_rate: 0.1,
            error_rate: 0.02,
            latency: Some((Duration::from_micros(100), Duration::from_millis(2))),
            ..Default::default()
        };
        let store: DynStore = inst.clone();
        let cfg = StateLogConfig {
            snapshot_every_entries: 7,
            ..Default::default()
        };
        let logs = [
            open(&store, cfg.clone(), 1).await,
            open(&store, cfg.clone(), 2).await,
            open(&store, cfg.clone(), 3).await,
        ];
        inst.set_faults(faults);
        // Every id is proposed once by each of the three logs, concurrently: exactly one
        // proposal may add it.
        let mut tasks = Vec::new();
        for (i, log) in logs.iter().enumerate() {
            for id in 0..150u64 {
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        match add_once(&log, id).await {
                            Ok(added) => return (i, id, added),
                            Err(e) if e.is_retryable() => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }));
            }
        }
        let mut added = BTreeMap::<u64, u32>::new();
        for t in tasks {
            let (_, id, a) = t.await.unwrap();
            *added.entry(id).or_default() += a as u32;
        }
        inst.set_faults(FaultConfig::default());
        // A round that failed after its PUT landed answers an error (unknown outcome) and its
        // retry finds the id present, so an id may have been "added" by nobody, never twice.
        assert!(added.values().all(|n| *n <= 1), "{added:?}");
        assert!(added.values().filter(|n| **n == 1).count() > 100);
        let mut states = Vec::new();
        for log in &logs {
            log.sync().await.unwrap();
            states.push(log.view().state);
        }
        for s in &states {
            assert_eq!(s, &states[0]);
            assert_eq!(s.count.len(), 150);
            assert!(s.count.values().all(|n| *n == 1));
        }
        // A fresh process from snapshot + entries computes the same state.
        let fresh = open(&store, cfg, 9).await;
        assert_eq!(fresh.view().state, states[0]);
    }

    #[tokio::test]
    async fn concurrent_proposals_share_one_put_per_round() {
        let mem: DynStore = Arc::new(object_store::memory::InMemory::new());
        let inst = Instrumented::new(mem, 1);
        inst.set_faults(FaultConfig {
            latency: Some((Duration::from_millis(1), Duration::from_millis(2))),
            ..Default::default()
        });
        let store: DynStore = inst.clone();
        let cfg = StateLogConfig {
            snapshot_every_entries: u64::MAX / 2,
            snapshot_every: Duration::from_secs(3600),
            ..Default::default()
        };
        let log = open(&store, cfg, 1).await;
        let before = inst.counts();
        let answers = futures::future::join_all((0..500u64).map(|id| add_once(&log, id))).await;
        assert!(answers.into_iter().all(|a| a.unwrap()));
        let puts = inst.counts().put - before.put;
        let seq = log.seq();
        // Every PUT made an entry, and 500 proposals took a handful of rounds.
        assert_eq!(puts, seq);
        assert!(seq <= 3, "{seq} entries for 500 concurrent proposals");
        assert_eq!(log.view().state.count.len(), 500);
        // Rejections alone write nothing.
        let again = futures::future::join_all((0..50u64).map(|id| add_once(&log, id))).await;
        assert!(again.into_iter().all(|a| !a.unwrap()));
        assert_eq!(inst.counts().put - before.put, seq);
    }

    #[tokio::test]
    async fn two_instances_with_one_writer_id_never_both_win() {
        let store: DynStore = Arc::new(object_store::memory::InMemory::new());
        let clock = ManualClock::new(5);
        let open1 = || {
            StateLog::<Tally>::open(
                store.clone(),
                "t/state",
                clock.clone(),
                StateLogConfig::default(),
                writer(1),
            )
        };
        let (a, b) = (open1().await.unwrap(), open1().await.unwrap());
        // Same state, same time, same op: without a per-instance nonce the entries would be
        // byte-identical and the loser would take the winner's entry for its own.
        let add = |log: Arc<StateLog<Tally>>| async move {
            log.propose(|s: &Tally, _| {
                let id = s.order.len() as u64;
                (vec![TallyOp::Add(id)], id)
            })
            .await
            .unwrap()
            .answer
        };
        let (x, y) = tokio::join!(add(a.clone()), add(b.clone()));
        assert_ne!(x, y, "each proposal got its own op");
        a.sync().await.unwrap();
        assert_eq!(a.view().state.order, vec![0, 1]);
    }

    #[tokio::test]
    async fn stale_rejection_is_replanned_after_sync() {
        let store: DynStore = Arc::new(object_store::memory::InMemory::new());
        let a = open(&store, StateLogConfig::default(), 1).await;
        let b = open(&store, StateLogConfig::default(), 2).await;
        assert!(add_once(&a, 1).await.unwrap());
        // b has not seen it, but a proposal is planned on a state confirmed after it was queued.
        assert!(!add_once(&b, 1).await.unwrap());
        assert!(add_once(&b, 2).await.unwrap());
        let v = a.read(Duration::ZERO).await.unwrap();
        assert_eq!(v.state.order, vec![1, 2]);
        assert_eq!(v.seq, 2);
    }

    #[tokio::test]
    async fn snapshots_and_truncation_keep_the_state() {
        let store: DynStore = Arc::new(object_store::memory::InMemory::new());
        let clock = ManualClock::new(1_000_000);
        let cfg = StateLogConfig {
            snapshot_every_entries: 5,
            truncate_keep_entries: 3,
            truncate_min_age_ms: 10_000,
            ..Default::default()
        };
        let log: Arc<StateLog<Tally>> =
            StateLog::open(store.clone(), "q/s", clock.clone(), cfg.clone(), writer(1))
                .await
                .unwrap();
        for id in 0..40u64 {
            clock.advance(1_000);
            assert!(add_once(&log, id).await.unwrap());
            // Let the background snapshot of this round finish before the next one.
            while log.rd().snapshotting {
                tokio::task::yield_now().await;
            }
        }
        let entries = store::list_names(&*store, &keys::state_log_dir("q/s"), None)
            .await
            .unwrap();
        let first = keys::parse_seq(&entries[0]).unwrap();
        assert!(first > 1, "old entries were truncated: {entries:?}");
        // Entries kept: at least the last `keep` behind the newest snapshot and the last 10 s.
        assert!(first <= 40 - 10, "{entries:?}");
        let snaps = store::list_names(&*store, &keys::state_snapshot_dir("q/s"), None)
            .await
            .unwrap();
        assert!(snaps.len() >= 2 && snaps.len() < 8, "{snaps:?}");
        let fresh: Arc<StateLog<Tally>> =
            StateLog::open(store.clone(), "q/s", clock.clone(), cfg, writer(2))
                .await
                .unwrap();
        assert_eq!(fresh.view().state, log.view().state);
        assert_eq!(fresh.view().state.order, (0..40).collect::<Vec<_>>());
        assert_eq!(fresh.view().state.last_time, log.view().time_ms);
        StateLog::<Tally>::destroy(&store, "q/s").await.unwrap();
        assert!(
            store::list_names(&*store, &keys::state_log_dir("q/s"), None)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn corrupt_entry_is_an_error_not_skipped() {
        let store: DynStore = Arc::new(object_store::memory::InMemory::new());
        let log = open(&store, StateLogConfig::default(), 1).await;
        store::put_create(
            &*store,
            &keys::state_entry("t/state", 1),
            Bytes::from_static(b"garbage"),
        )
        .await
        .unwrap();
        assert!(matches!(log.sync().await, Err(Error::Corrupt { .. })));
    }
}
