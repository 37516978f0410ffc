//! The IO of transactions: begin, stage, commit (decide, then apply), rollback, describe, and
//! the resolver's pass (check-back of expired transactions, completion of interrupted commits,
//! reaping of finished ones). Every step is a create-only write or a state-log entry, so any
//! gateway can take over from any other at any point.

use super::staged::StagedBatch;
use super::*;
use crate::error::{Error, Result};
use crate::ids::{new_ulid, ObjectId};
use crate::keys;
use crate::log::{Log, ProduceRequest};
use crate::partition::{self, Route};
use crate::statelog::{StateLog, StateLogConfig};
use crate::store::{self, Created, DynStore};
use crate::topic::TopicConfig;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// Backoff after the first check-back answered unknown; doubles per check up to `max`.
    pub check_backoff_initial: Duration,
    pub check_backoff_max: Duration,
    /// A finished transaction's state (for `GET` and idempotent commit/rollback) is kept this
    /// long, then deleted (default 24 h).
    pub finished_retention: Duration,
    /// A `txn-open/` marker with no transaction behind it this long after its id was minted is
    /// voided (its begin died half way).
    pub orphan_grace: Duration,
    /// Staged bytes appended per flush when a commit is applied.
    pub max_flush_bytes: u64,
    /// How often the resolver's pass looks for finished transactions to reap.
    pub reap_every: Duration,
    /// Retries of a failed append while applying a commit before the call gives up (the
    /// resolver finishes it later).
    pub apply_retries: u32,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            check_backoff_initial: Duration::from_secs(1),
            check_backoff_max: Duration::from_secs(60),
            finished_retention: Duration::from_secs(24 * 3600),
            orphan_grace: Duration::from_secs(60),
            max_flush_bytes: 8 << 20,
            reap_every: Duration::from_secs(60),
            apply_retries: 30,
        }
    }
}

/// What a check-back POSTs to `check_url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRequest {
    pub transaction_id: String,
    pub topics: Vec<String>,
    pub staged: u64,
}

/// The HTTP side of check-back (the gateway implements it; tests fake it). Unreachable, an
/// error status or a body that is not a status all answer [`CheckStatus::Unknown`].
#[async_trait]
pub trait CheckBack: Send + Sync {
    async fn check(&self, url: &str, req: &CheckRequest) -> CheckStatus;
}

/// A new transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Began {
    pub id: String,
    pub expires_at_ms: i64,
}

/// What one resolver pass did (for logs and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    /// `txn-open/` markers found (0: nothing to resolve, the resolver may go idle).
    pub markers: usize,
    pub open: usize,
    pub checks: usize,
    pub applied: usize,
    pub rolled_back: usize,
    pub reaped: usize,
}

type TxnLog = StateLog<TxnState>;

/// Transactions of one process.
pub struct Transactions {
    log: Arc<Log>,
    store: DynStore,
    cfg: TxnConfig,
    logs: Mutex<HashMap<ObjectId, Arc<TxnLog>>>,
    /// When the resolver last synced each open transaction that was not due.
    looked: Mutex<HashMap<ObjectId, Instant>>,
    last_reap: Mutex<Option<Instant>>,
    /// Signalled by every local `begin`: wakes an idle resolver.
    begun: tokio::sync::Notify,
}

/// An open transaction that is not due yet is re-read by the resolver at most this often (to
/// find a commit another gateway decided and could not finish).
const NOT_DUE_SYNC: Duration = Duration::from_secs(5);

/// Cached state logs kept at most (beyond it, those of finished transactions are dropped).
const MAX_CACHED: usize = 4096;

/// The idempotency key a staged request is appended with: the same on every redo.
pub fn dedup_key(txn: ObjectId, object: &str) -> Bytes {
    Bytes::from(format!("sluice-txn/{txn}/{object}"))
}

fn parse_id(id: &str) -> Result<ObjectId, TxnError> {
    ObjectId::parse(id).ok_or_else(|| TxnError::NotFound(id.to_string()))
}

impl Transactions {
    pub fn new(log: Arc<Log>, cfg: TxnConfig) -> Arc<Self> {
        Arc::new(Self {
            store: log.store().clone(),
            log,
            cfg,
            logs: Mutex::new(HashMap::new()),
            looked: Mutex::new(HashMap::new()),
            last_reap: Mutex::new(None),
            begun: tokio::sync::Notify::new(),
        })
    }

    /// Resolves when a transaction was begun in this process since the last call (a permit is
    /// kept if nobody waits): an idle resolver wakes on it.
    pub async fn begun(&self) {
        self.begun.notified().await
    }

    /// Whether any `txn-open/` marker exists (one LIST): an idle resolver's periodic look for
    /// transactions begun by processes that are gone.
    pub async fn any_open(&self) -> Result<bool> {
        Ok(!self.marked_open().await?.is_empty())
    }

    /// The ids of the `txn-open/` markers (one LIST), oldest first: ids are ULIDs.
    async fn marked_open(&self) -> Result<Vec<ObjectId>> {
        let names = store::list_names(&*self.store, &keys::txn_open_dir(), None).await?;
        Ok(names.iter().filter_map(|n| ObjectId::parse(n)).collect())
    }

    fn now_ms(&self) -> i64 {
        self.log.clock().now_ms()
    }

    fn cached(&self, id: ObjectId) -> Option<Arc<TxnLog>> {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    fn forget(&self, id: ObjectId) {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.looked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// The transaction's state log, opened (and cached if the transaction exists) on first use.
    async fn open_log(&self, id: ObjectId) -> Result<Arc<TxnLog>> {
        if let Some(l) = self.cached(id) {
            return Ok(l);
        }
        let log: Arc<TxnLog> = StateLog::open(
            self.store.clone(),
            keys::txn_prefix(id),
            self.log.clock().clone(),
            StateLogConfig::default(),
            self.log.writer(),
        )
        .await?;
        if log.view().state.exists {
            self.remember(id, &log);
        }
        Ok(log)
    }

    fn remember(&self, id: ObjectId, log: &Arc<TxnLog>) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if logs.len() >= MAX_CACHED {
            logs.retain(|_, l| l.view().state.is_open());
            if logs.len() >= MAX_CACHED {
                logs.clear();
            }
        }
        logs.entry(id).or_insert_with(|| log.clone());
    }

    /// The log of an existing transaction (synced once if the cached state says it does not
    /// exist), else `NotFound`.
    async fn existing(&self, id: &str) -> Result<(ObjectId, Arc<TxnLog>), TxnError> {
        let tid = parse_id(id)?;
        let log = self.open_log(tid).await?;
        if !log.view().state.exists {
            log.sync().await?;
            if !log.view().state.exists {
                return Err(TxnError::NotFound(id.to_string()));
            }
            self.remember(tid, &log);
        }
        Ok((tid, log))
    }

    /// Begin a transaction: its `txn-open/` marker, then its `Begin` entry.
    pub async fn begin(
        &self,
        timeout_ms: Option<u64>,
        check_url: Option<String>,
    ) -> Result<Began, TxnError> {
        let timeout = validate_timeout(timeout_ms)?;
        if let Some(u) = &check_url {
            validate_check_url(u)?;
        }
        let now = self.now_ms();
        let id = ObjectId::from_ulid(new_ulid(now));
        let marker = serde_json::json!({"format": 1, "created_ms": now}).to_string();
        store::put_create(&*self.store, &keys::txn_open(id), Bytes::from(marker)).await?;
        self.begun.notify_one();
        let log = self.open_log(id).await?;
        let url = check_url.clone();
        let c = log
            .propose(move |s: &TxnState, t| {
                if s.exists || s.void {
                    (vec![], None)
                } else {
                    let op = TxnOp::Begin {
                        timeout_ms: timeout,
                        check_url: url.clone(),
                    };
                    (vec![op], Some(t.saturating_add(timeout as i64)))
                }
            })
            .await?;
        match c.answer {
            Some(expires_at_ms) => {
                self.remember(id, &log);
                Ok(Began {
                    id: id.to_string(),
                    expires_at_ms,
                })
            }
            None => Err(TxnError::Core(Error::Stale(
                "the transaction was abandoned while it began; begin again".into(),
            ))),
        }
    }

    /// Stage a produce request's records: PUT them create-only under the transaction, then
    /// register them with a `Stage` entry (the staged set is what the log says). Answers the
    /// records staged; a retry with the same `Idempotency-Key` answers the first request's.
    pub async fn stage(
        &self,
        id: &str,
        topic: &TopicConfig,
        records: Vec<(Option<u32>, crate::format::record::Record)>,
        idempotency_key: Option<String>,
    ) -> Result<u32, TxnError> {
        let (tid, log) = self.existing(id).await?;
        if records.is_empty() {
            return Err(TxnError::Invalid("no records to stage".into()));
        }
        let probe = Staged {
            object: String::new(),
            topic: topic.name.clone(),
            topic_id: topic.id.clone(),
            records: records.len() as u32,
            bytes: 0,
            idempotency_key: idempotency_key.clone(),
        };
        // Early answers from the cached state: a closed transaction stays closed, and a repeat
        // is answered without writing. Anything else is decided by the entry below.
        let (ops, n) = plan_stage(id, &log.view().state, self.now_ms(), &probe)?;
        if ops.is_empty() {
            return Ok(n);
        }
        for (_, r) in &records {
            r.validate().map_err(TxnError::Invalid)?;
        }
        let object = ObjectId::from_ulid(new_ulid(self.now_ms()));
        let routes: Vec<Route<'_>> = records
            .iter()
            .map(|(p, r)| match (p, &r.key) {
                (Some(p), _) => Route::Explicit(*p),
                (None, Some(k)) => Route::Key(k),
                (None, None) => Route::Any,
            })
            .collect();
        let assignment =
            partition::assign(&routes, topic.partitions, Some(&object.0), 0).map_err(|p| {
                TxnError::Core(Error::PartitionNotFound {
                    topic: topic.name.clone(),
                    partition: p,
                })
            })?;
        let topic_id = topic.topic_id()?;
        let batch = StagedBatch {
            txn: tid,
            object,
            topic_id: topic_id.0,
            topic: topic.name.clone(),
            records: assignment
                .into_iter()
                .zip(records)
                .map(|(p, (_, r))| (p, r))
                .collect(),
        };
        let bytes = batch.encode();
        let key = keys::txn_staged(tid, object);
        let size = bytes.len() as u64;
        match store::put_create(&*self.store, &key, bytes).await? {
            Created::Yes => {}
            Created::AlreadyExists => return Err(Error::Conflict(format!("{key} exists")).into()),
        }
        let staged = Staged {
            object: object.to_string(),
            bytes: size,
            ..probe
        };
        let ids = id.to_string();
        let c = log
            .propose(
                move |s: &TxnState, t| match plan_stage(&ids, s, t, &staged) {
                    Ok((ops, n)) => {
                        let ours = !ops.is_empty();
                        (ops, Ok((n, ours)))
                    }
                    Err(e) => (vec![], Err(e)),
                },
            )
            .await;
        let outcome = match c {
            Ok(c) => c.answer,
            // Unknown outcome: the object stays (an entry may name it); a retry with the same
            // Idempotency-Key is answered once.
            Err(e) => return Err(e.into()),
        };
        match outcome {
            Ok((n, true)) => Ok(n),
            Ok((n, false)) => {
                let _ = store::delete(&*self.store, &key).await;
                Ok(n)
            }
            Err(e) => {
                let _ = store::delete(&*self.store, &key).await;
                Err(e)
            }
        }
    }

    /// Commit: decide (one entry), then apply every staged request; answers every staged
    /// record's `(topic, partition, offset)` in staging order once all are readable.
    pub async fn commit(&self, id: &str) -> Result<Vec<(String, u32, u64)>, TxnError> {
        let (tid, log) = self.existing(id).await?;
        let ids = id.to_string();
        let c = log
            .propose(move |s: &TxnState, _| match plan_commit(&ids, s) {
                Ok(ops) => (ops, Ok(())),
                Err(e) => (vec![], Err(e)),
            })
            .await?;
        c.answer?;
        self.apply(tid, &log).await
    }

    /// Roll back: decide (one entry); the staged records are never appended.
    pub async fn rollback(&self, id: &str) -> Result<(), TxnError> {
        let (tid, log) = self.existing(id).await?;
        let ids = id.to_string();
        let c = log
            .propose(move |s: &TxnState, _| match plan_rollback(&ids, s) {
                Ok(ops) => (ops, Ok(())),
                Err(e) => (vec![], Err(e)),
            })
            .await?;
        c.answer?;
        let st = log.view().state;
        if let Err(e) = self.finish(tid, &st).await {
            tracing::warn!(txn = %tid, error = %e, "rolled back; its clean-up is left to the resolver");
        }
        Ok(())
    }

    /// The transactions whose `txn-open/` marker is still there (open, or decided and not
    /// cleaned up yet), oldest first (ids are ULIDs), at most `limit`: one LIST, then each
    /// one's state as [`describe`](Self::describe) gives it. One that finished meanwhile is left
    /// out.
    pub async fn list_unfinished(&self, limit: usize) -> Result<Vec<(String, TxnState)>, TxnError> {
        let mut ids = self.marked_open().await?;
        ids.truncate(limit);
        let found: Vec<(String, Result<TxnState, TxnError>)> = futures::stream::iter(ids)
            .map(|id| async move {
                let id = id.to_string();
                let s = self.describe(&id).await;
                (id, s)
            })
            .buffered(16)
            .collect()
            .await;
        let mut out = Vec::with_capacity(found.len());
        for (id, s) in found {
            match s {
                Ok(s) => out.push((id, s)),
                Err(TxnError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The transaction's state, confirmed current.
    pub async fn describe(&self, id: &str) -> Result<TxnState, TxnError> {
        let (_, log) = self.existing(id).await?;
        Ok(log.read(Duration::ZERO).await?.state)
    }

    /// Apply a decided commit until every staged request is appended (any gateway may run this
    /// at the same time: the appends carry the same idempotency keys, `Applied` is planned once).
    async fn apply(
        &self,
        id: ObjectId,
        log: &Arc<TxnLog>,
    ) -> Result<Vec<(String, u32, u64)>, TxnError> {
        let mut failures = 0u32;
        loop {
            let st = log.view().state;
            match st.phase {
                Phase::Committed => {
                    if let Err(e) = self.finish(id, &st).await {
                        tracing::warn!(txn = %id, error = %e, "committed; clean-up left to the resolver");
                    }
                    return Ok(st.offsets());
                }
                Phase::RolledBack => return Err(closed(&id.to_string(), &st)),
                Phase::Open => {
                    return Err(Error::Internal(format!("transaction {id} is not decided")).into())
                }
                Phase::Committing => {}
            }
            let from = st.applied.len();
            let mut end = from;
            let mut bytes = 0u64;
            while end < st.staged.len()
                && (end == from || bytes + st.staged[end].bytes <= self.cfg.max_flush_bytes)
            {
                bytes += st.staged[end].bytes;
                end += 1;
            }
            match self.apply_chunk(id, &st, from, end).await {
                Ok(offsets) => {
                    log.propose(move |s: &TxnState, _| {
                        (plan_applied(s, from as u32, offsets.clone()), ())
                    })
                    .await?;
                    failures = 0;
                }
                Err(e) if e.is_retryable() && failures < self.cfg.apply_retries => {
                    failures += 1;
                    tracing::debug!(txn = %id, error = %e, "applying a commit; retrying");
                    tokio::time::sleep(Duration::from_millis(20 * failures as u64)).await;
                    log.sync().await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Append staged requests `from..end` (one flush), answering each one's offsets.
    async fn apply_chunk(
        &self,
        id: ObjectId,
        st: &TxnState,
        from: usize,
        end: usize,
    ) -> Result<Vec<Vec<(u32, u64)>>> {
        let store = &self.store;
        let batches: Vec<StagedBatch> = futures::stream::iter(from..end)
            .map(|i| {
                let s = &st.staged[i];
                async move {
                    let object = ObjectId::parse(&s.object).ok_or_else(|| {
                        Error::Internal(format!("staged object id {:?}", s.object))
                    })?;
                    let key = keys::txn_staged(id, object);
                    let bytes = store::get_opt(&**store, &key).await?.ok_or_else(|| {
                        Error::Internal(format!("staged object {key} is missing"))
                    })?;
                    let b = StagedBatch::decode(&bytes).map_err(|e| Error::corrupt(&key, e))?;
                    if b.txn != id || b.object != object {
                        return Err(Error::corrupt(
                            &key,
                            crate::codec::invalid("staged", "does not match its key"),
                        ));
                    }
                    Ok(b)
                }
            })
            .buffered(8)
            .try_collect()
            .await?;
        let mut requests = Vec::new();
        let mut slot = Vec::new();
        for (i, b) in batches.into_iter().enumerate() {
            let s = &st.staged[from + i];
            let topic = match self.log.topics().get(&s.topic).await {
                Ok(t) if t.id == s.topic_id => t,
                Ok(_) | Err(Error::TopicNotFound(_)) => {
                    tracing::warn!(txn = %id, topic = %s.topic, "the topic was deleted since staging: its staged records are dropped");
                    slot.push(None);
                    continue;
                }
                Err(e) => return Err(e),
            };
            slot.push(Some(requests.len()));
            requests.push(ProduceRequest {
                topic,
                records: b.records.into_iter().map(|(p, r)| (Some(p), r)).collect(),
                dedup_key: Some(dedup_key(id, &s.object)),
                producer: None,
            });
        }
        let mut results: Vec<Option<Result<crate::log::ProduceAck>>> = if requests.is_empty() {
            Vec::new()
        } else {
            self.log
                .flush(requests)
                .await
                .into_iter()
                .map(Some)
                .collect()
        };
        let mut out = Vec::with_capacity(slot.len());
        for s in slot {
            match s.and_then(|i| results[i].take()) {
                None => out.push(Vec::new()),
                Some(Ok(ack)) => out.push(ack.offsets),
                Some(Err(Error::TopicNotFound(t))) => {
                    tracing::warn!(txn = %id, topic = %t, "the topic was deleted since staging: its staged records are dropped");
                    out.push(Vec::new());
                }
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A finished transaction: its `txn-done/` marker, its staged objects deleted, its
    /// `txn-open/` marker deleted (in that order, so a crash leaves it findable).
    async fn finish(&self, id: ObjectId, st: &TxnState) -> Result<()> {
        let at = st.decided_ms.unwrap_or(st.created_ms);
        store::put_create(&*self.store, &keys::txn_done(at, id), Bytes::new()).await?;
        let staged_dir = object_store::path::Path::from(format!("{}/staged", keys::txn_prefix(id)));
        for n in store::list_names(&*self.store, &staged_dir, None).await? {
            store::delete(&*self.store, &staged_dir.clone().join(n.as_str())).await?;
        }
        store::delete(&*self.store, &keys::txn_open(id)).await?;
        Ok(())
    }

    /// One resolver pass: every transaction with a `txn-open/` marker is looked at (expired
    /// ones checked back or rolled back, decided commits applied, finished ones cleaned up);
    /// finished transactions past their retention are deleted.
    pub async fn resolve_pass(&self, checker: &dyn CheckBack) -> Result<PassStats> {
        let ids = self.marked_open().await?;
        let outcomes: Vec<(ObjectId, Result<Resolved, TxnError>)> = futures::stream::iter(ids)
            .map(|id| async move { (id, self.resolve_one(id, checker).await) })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut stats = PassStats {
            markers: outcomes.len(),
            ..Default::default()
        };
        for (id, r) in outcomes {
            match r {
                Ok(Resolved::Waiting) => stats.open += 1,
                Ok(Resolved::Checked) => stats.checks += 1,
                Ok(Resolved::Applied) => stats.applied += 1,
                Ok(Resolved::RolledBack) => stats.rolled_back += 1,
                Ok(Resolved::Cleaned) => {}
                Err(e) => tracing::warn!(txn = %id, error = %e, "transaction resolver"),
            }
        }
        let due = {
            let mut last = self.last_reap.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= self.cfg.reap_every);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            stats.reaped = self.reap().await?;
        }
        Ok(stats)
    }

    async fn resolve_one(
        &self,
        id: ObjectId,
        checker: &dyn CheckBack,
    ) -> Result<Resolved, TxnError> {
        let log = self.open_log(id).await?;
        let now = self.now_ms();
        {
            // Not due by the cached state and synced lately: nothing to do, no IO.
            let cached = log.view().state;
            let mut looked = self.looked.lock().unwrap_or_else(|e| e.into_inner());
            let recent = looked.get(&id).is_some_and(|t| t.elapsed() < NOT_DUE_SYNC);
            if cached.is_open() && now < cached.due_ms() {
                if recent {
                    return Ok(Resolved::Waiting);
                }
                looked.insert(id, Instant::now());
            } else {
                looked.remove(&id);
            }
        }
        let st = log.read(Duration::ZERO).await?.state;
        if !st.exists {
            if !st.void {
                if now - id.created_ms() < self.cfg.orphan_grace.as_millis() as i64 {
                    return Ok(Resolved::Waiting);
                }
                log.propose(|s: &TxnState, _| {
                    let ops = if s.exists || s.void {
                        vec![]
                    } else {
                        vec![TxnOp::Void]
                    };
                    (ops, ())
                })
                .await?;
            }
            let st = log.view().state;
            if st.void {
                let at = id.created_ms();
                store::put_create(&*self.store, &keys::txn_done(at, id), Bytes::new()).await?;
                store::delete(&*self.store, &keys::txn_open(id)).await?;
                return Ok(Resolved::Cleaned);
            }
            return Ok(Resolved::Waiting); // it began meanwhile
        }
        let st = match st.phase {
            Phase::Open if now < st.due_ms() => return Ok(Resolved::Waiting),
            Phase::Open => {
                let checked = st.check_url.is_some();
                match &st.check_url {
                    None => {
                        log.propose(|s: &TxnState, t| (plan_timeout(s, t), ()))
                            .await?;
                    }
                    Some(url) => {
                        let n = st.checks + 1;
                        let req = CheckRequest {
                            transaction_id: id.to_string(),
                            topics: st.topics(),
                            staged: st.staged_records(),
                        };
                        let status = checker.check(url, &req).await;
                        tracing::info!(txn = %id, check = n, ?status, "check-back");
                        let backoff = (
                            self.cfg.check_backoff_initial.as_millis() as u64,
                            self.cfg.check_backoff_max.as_millis() as u64,
                        );
                        log.propose(move |s: &TxnState, t| {
                            (plan_checked(s, n, status, t, backoff), ())
                        })
                        .await?;
                    }
                }
                let st = log.view().state;
                if st.phase == Phase::Open {
                    return Ok(if checked {
                        Resolved::Checked
                    } else {
                        Resolved::Waiting
                    });
                }
                st
            }
            _ => st,
        };
        match st.phase {
            Phase::Committing | Phase::Committed => {
                self.apply(id, &log).await?;
                self.forget(id);
                Ok(Resolved::Applied)
            }
            Phase::RolledBack => {
                self.finish(id, &st).await?;
                self.forget(id);
                Ok(Resolved::RolledBack)
            }
            Phase::Open => Ok(Resolved::Waiting),
        }
    }

    /// Delete finished transactions older than the retention: their whole `txns/{id}/` folder,
    /// then their `txn-done/` marker.
    async fn reap(&self) -> Result<usize> {
        let cutoff = self.now_ms() - self.cfg.finished_retention.as_millis() as i64;
        let names = store::list_names(&*self.store, &keys::txn_done_dir(), None).await?;
        let mut reaped = 0;
        for n in names {
            let Some((at, id)) = keys::parse_txn_done(&n) else {
                continue;
            };
            if at >= cutoff {
                break; // sorted by time
            }
            let dir = keys::txn_dir(id);
            let objects: Vec<_> = self
                .store
                .list(Some(&dir))
                .map_ok(|m| m.location)
                .try_collect()
                .await
                .map_err(|e| Error::store("list", &dir, e))?;
            for o in objects {
                store::delete(&*self.store, &o).await?;
            }
            store::delete(&*self.store, &keys::txn_done_dir().join(n.as_str())).await?;
            self.forget(id);
            reaped += 1;
        }
        Ok(reaped)
    }
}

enum Resolved {
    Waiting,
    Checked,
    Applied,
    RolledBack,
    Cleaned,
}

impl TxnError {
    /// Whether the same call may succeed if simply tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TxnError::Core(e) if e.is_retryable())
    }
}
