//! The mover: appends due delayed records to their topics. Single active instance under the
//! lease `leases/delayed-mover/` (taken only when there is something to move, so an idle
//! deployment writes nothing).
//!
//! One tick (every 250 ms):
//! 1. LIST the current second's prefix (and once a second the two before it, which catches a
//!    PUT that started in one second and landed in the next; every 10 s the last minute, every
//!    60 s the last 10 minutes, and at start everything since the state's cursor). Objects whose `due_ms` has passed
//!    are due; the objects taken and not done in the state (a crashed mover's round) too.
//!    A round takes at most `max_objects_per_round` objects, the soonest due; when more are due,
//!    the next tick lists again every second from the first one left, and the state's cursor
//!    (where a restarted mover starts listing) never passes it.
//! 2. `Take` the due objects in one state-log entry: from here no cancel of their records is
//!    accepted, and the cancels accepted before are left out of the delivery.
//! 3. Append each taken object's records as one produce request with the Idempotency-Key
//!    `sluice-delayed/{ulid}`, all in one flush: a redo (this mover or the next one after a
//!    crash) is answered from the dedup window and appends nothing twice.
//! 4. Delete the objects, then `Done` them in one state-log entry.
//!
//! A crash between any two steps is repaired by the next tick of whoever holds the lease: a
//! taken object is delivered again (deduplicated), a deleted one is marked done.

use super::state::{plan_take, DelayedOp};
use super::{bucket_prefix, Delayed, ObjectKey, BUCKETS};
use crate::error::{Error, Result};
use crate::ids::new_ulid;
use crate::lease::Lease;
use crate::log::{Log, ProduceRequest};
use crate::store;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct MoverConfig {
    pub tick: Duration,
    pub lease_duration: Duration,
    /// Seconds before the current one listed again once a second.
    pub late_seconds: i64,
    /// How often (and how far back) the mover looks again at past seconds.
    pub sweep_every: Duration,
    pub sweep_seconds: i64,
    /// A shorter look back, more often (a PUT slower than `late_seconds`).
    pub recent_every: Duration,
    pub recent_seconds: i64,
    /// Most objects taken per round.
    pub max_objects_per_round: usize,
    /// Most record bytes appended per flush.
    pub max_flush_bytes: usize,
    /// How often the idempotency markers past their window are deleted (one LIST of
    /// `delayed/k/`; no lease needed, deleting an old marker is harmless from anywhere).
    pub marker_gc_every: Duration,
}

impl Default for MoverConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(250),
            lease_duration: Duration::from_secs(10),
            late_seconds: 2,
            sweep_every: Duration::from_secs(60),
            sweep_seconds: 900,
            recent_every: Duration::from_secs(10),
            recent_seconds: 60,
            max_objects_per_round: 2000,
            max_flush_bytes: 8 << 20,
            marker_gc_every: Duration::from_secs(300),
        }
    }
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// LIST requests made.
    pub lists: u64,
    /// Due objects seen (including redone ones).
    pub due: u64,
    /// Another instance holds the lease.
    pub waiting: bool,
    pub records_delivered: u64,
    pub objects_done: u64,
    /// Idempotency markers past their window deleted.
    pub markers_deleted: u64,
}

pub struct Mover {
    log: Arc<Log>,
    delayed: Arc<Delayed>,
    cfg: MoverConfig,
    lease: Lease,
    started: bool,
    last_second: Option<i64>,
    /// The second of the first due object the last round left for later (it was over
    /// `max_objects_per_round`): the next tick lists every second from there.
    backlog_from: Option<i64>,
    last_sweep: Instant,
    last_recent: Instant,
    last_marker_gc: Instant,
}

impl Mover {
    pub fn new(log: Arc<Log>, delayed: Arc<Delayed>, cfg: MoverConfig) -> Self {
        let holder = new_ulid(log.clock().now_ms()).to_string();
        Self {
            lease: Lease::new(
                log.store().clone(),
                "delayed-mover",
                holder,
                cfg.lease_duration,
            ),
            log,
            delayed,
            cfg,
            started: false,
            last_second: None,
            backlog_from: None,
            last_sweep: Instant::now(),
            last_recent: Instant::now(),
            last_marker_gc: Instant::now(),
        }
    }

    /// Tick until `shutdown` resolves; errors are logged and retried next tick.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.tick().await {
                Ok(r) if r.records_delivered > 0 || r.objects_done > 0 => {
                    tracing::debug!(?r, "delayed records moved")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "delayed mover tick failed; will retry"),
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.cfg.tick) => {}
            }
        }
    }

    /// The seconds in `lo..=hi` that have objects (or had: a local folder keeps empty
    /// directories), found by listing hour and second prefixes.
    async fn seconds_between(&self, lo: i64, hi: i64, report: &mut TickReport) -> Result<Vec<i64>> {
        let store = self.delayed.store();
        let root = Path::from(BUCKETS);
        report.lists += 1;
        let mut out = Vec::new();
        for hour in store::list_dirs(&**store, &root).await? {
            let Ok(h) = hour.parse::<i64>() else { continue };
            if h < lo.div_euclid(3600) || h > hi.div_euclid(3600) {
                continue;
            }
            report.lists += 1;
            for second in store::list_dirs(&**store, &root.clone().join(hour.as_str())).await? {
                if let Ok(s) = second.parse::<i64>() {
                    if (lo..=hi).contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
        Ok(out)
    }

    /// One tick: list, take, append, delete, done. A tick that fails, or finds the lease held
    /// by another instance, makes the next one look again at every second since the cursor
    /// (what it listed may be due by the time it can act).
    pub async fn tick(&mut self) -> Result<TickReport> {
        let r = self.tick_once().await;
        if r.as_ref().map_or(true, |r| r.waiting) {
            self.started = false;
        }
        r
    }

    async fn tick_once(&mut self) -> Result<TickReport> {
        let mut report = TickReport::default();
        if self.last_marker_gc.elapsed() >= self.cfg.marker_gc_every {
            self.last_marker_gc = Instant::now();
            report.lists += 1;
            report.markers_deleted = self.delayed.collect_markers().await?;
        }
        let now = self.log.clock().now_ms();
        let second = now.div_euclid(1000);
        let state = self.delayed.state().await?.clone();
        let mut seconds = BTreeSet::new();
        if !self.started {
            let cursor = state.view().state.cursor;
            let from = if cursor > 0 { cursor } else { 0 };
            seconds.extend(self.seconds_between(from, second, &mut report).await?);
            self.started = true;
            self.last_sweep = Instant::now();
        } else if self.last_sweep.elapsed() >= self.cfg.sweep_every {
            let from = second - self.cfg.sweep_seconds;
            seconds.extend(self.seconds_between(from, second, &mut report).await?);
            self.last_sweep = Instant::now();
        } else if self.last_recent.elapsed() >= self.cfg.recent_every {
            let from = second - self.cfg.recent_seconds;
            seconds.extend(self.seconds_between(from, second, &mut report).await?);
            self.last_recent = Instant::now();
        } else if self.last_second != Some(second) {
            let last = self.last_second.unwrap_or(second);
            if last < second - self.cfg.late_seconds {
                // Fell behind (a long round): look at every second since.
                seconds.extend(self.seconds_between(last, second, &mut report).await?);
            }
            seconds.extend(second - self.cfg.late_seconds..=second);
        }
        if let Some(from) = self.backlog_from {
            // The last round left due objects behind (it took at most its cap).
            seconds.extend(self.seconds_between(from, second, &mut report).await?);
        }
        seconds.insert(second);
        self.last_second = Some(second);

        let store = self.delayed.store().clone();
        let mut due: Vec<ObjectKey> = Vec::new();
        for s in seconds {
            report.lists += 1;
            let prefix = Path::from(bucket_prefix(s));
            let metas: Vec<_> = store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| Error::store("list", &prefix, e))?;
            due.extend(
                metas
                    .iter()
                    .filter_map(|m| ObjectKey::parse(&m.location))
                    .filter(|k| k.due_ms <= now),
            );
        }
        due.sort();
        // More due than one round takes: the rest must be listed again next tick, wherever the
        // per-second window has moved on to, and the cursor must not pass them.
        let leftover = due
            .get(self.cfg.max_objects_per_round)
            .map(ObjectKey::second);
        due.truncate(self.cfg.max_objects_per_round);
        self.backlog_from = leftover;
        let redo = !state.view().state.taken.is_empty();
        report.due = due.len() as u64;
        if due.is_empty() && !redo {
            return Ok(report);
        }
        if !self.lease.acquire().await? {
            report.waiting = true;
            return Ok(report);
        }
        // Newly leader: another mover may have taken objects and died.
        let view = state.read(Duration::from_secs(1)).await?;
        let names: Vec<String> = due.iter().map(|k| k.path().to_string()).collect();
        // Objects done already whose delete was lost: delete them again.
        for n in names.iter().filter(|n| view.state.done.contains_key(*n)) {
            store::delete(&*store, &Path::from(n.as_str())).await?;
        }
        let cursor = leftover.map_or(second - self.cfg.late_seconds, |s| {
            s.min(second - self.cfg.late_seconds)
        });
        state
            .propose(move |s, _| (plan_take(s, &names, cursor), ()))
            .await?;
        let taken: Vec<(String, Vec<u32>)> = state
            .view()
            .state
            .taken
            .iter()
            .take(self.cfg.max_objects_per_round)
            .map(|(k, t)| (k.clone(), t.cancelled.clone()))
            .collect();
        self.deliver(taken, &mut report).await?;
        Ok(report)
    }

    /// Append the taken objects' records, delete the objects, mark them done.
    async fn deliver(
        &mut self,
        taken: Vec<(String, Vec<u32>)>,
        report: &mut TickReport,
    ) -> Result<()> {
        let delayed = self.delayed.clone();
        let fetched: Vec<_> = futures::stream::iter(taken)
            .map(|(name, cancelled)| {
                let delayed = delayed.clone();
                async move {
                    let key = ObjectKey::parse(&Path::from(name.as_str()));
                    let object = match &key {
                        Some(k) => delayed.read_object(k, None).await,
                        None => Ok(None),
                    };
                    (name, key, cancelled, object)
                }
            })
            .buffered(32)
            .collect()
            .await;
        let mut done: Vec<String> = Vec::new();
        // (object name, request) to append.
        let mut batch: Vec<(String, ProduceRequest)> = Vec::new();
        for (name, key, cancelled, object) in fetched {
            let (key, object) = match (key, object) {
                (Some(k), Ok(Some(o))) => (k, o),
                // Deleted already (delivered; the Done was lost), or not ours to parse.
                (_, Ok(None)) | (None, _) => {
                    done.push(name);
                    continue;
                }
                (_, Err(e)) => {
                    tracing::error!(object = %name, error = %e, "delayed object unreadable; left in place");
                    continue;
                }
            };
            let topic = match self.log.topics().get(&key.topic).await {
                Ok(t)
                    if crate::ids::TopicId::parse(&t.id).map(|i| i.0) == Some(object.topic_id) =>
                {
                    t
                }
                Ok(_) | Err(Error::TopicNotFound(_)) => {
                    tracing::info!(object = %name, "topic deleted before its delayed records were due; dropped");
                    done.push(name);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let records: Vec<_> = object
                .items
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !cancelled.contains(&(*i as u32)))
                .map(|(_, it)| (it.partition, it.record))
                .collect();
            if records.is_empty() {
                done.push(name);
                continue;
            }
            let request = ProduceRequest {
                topic,
                records,
                dedup_key: Some(Bytes::from(format!("sluice-delayed/{}", key.ulid))),
                producer: None,
            };
            batch.push((name, request));
        }
        // Flushes of bounded size, in due order.
        while !batch.is_empty() {
            let mut bytes = 0;
            let n = batch
                .iter()
                .position(|(_, r)| {
                    bytes += r.encoded_len();
                    bytes > self.cfg.max_flush_bytes
                })
                .unwrap_or(batch.len())
                .max(1);
            let chunk: Vec<_> = batch.drain(..n).collect();
            let (names, requests): (Vec<_>, Vec<_>) = chunk.into_iter().unzip();
            let counts: Vec<usize> = requests.iter().map(|r| r.records.len()).collect();
            for ((name, result), count) in names
                .into_iter()
                .zip(self.log.flush(requests).await)
                .zip(counts)
            {
                match result {
                    Ok(ack) => {
                        if !ack.duplicate {
                            report.records_delivered += count as u64;
                        }
                        done.push(name);
                    }
                    Err(e) => {
                        tracing::warn!(object = %name, error = %e, "delayed append failed; will retry")
                    }
                }
            }
        }
        if done.is_empty() {
            return Ok(());
        }
        let store = self.delayed.store().clone();
        futures::stream::iter(done.iter().cloned())
            .map(|n| {
                let store = store.clone();
                async move { store::delete(&*store, &Path::from(n.as_str())).await }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<()>>()
            .await?;
        report.objects_done += done.len() as u64;
        let state = self.delayed.state().await?.clone();
        state
            .propose(move |_, _| {
                (
                    vec![DelayedOp::Done {
                        objects: done.clone(),
                    }],
                    (),
                )
            })
            .await?;
        Ok(())
    }
}
