//! Queue mode's IO around the pure logic of `sluice_core::queue`: one [`QueueRuntime`] per queue
//! this gateway serves (its config, its state log, records read ahead of the frontier) and the
//! background work that needs no receiver (dooming expired last deliveries, writing dead
//! letters, refreshing the backlog gauges).

use crate::metrics::Metrics;
use futures::StreamExt;
use sluice_core::clock::Clock;
use sluice_core::error::{Error, Result};
use sluice_core::format::record::Record;
use sluice_core::log::{Log, ProduceRequest, ReadRecord};
use sluice_core::queue::state::{self, Fresh, Pos, QueueOp, QueueState, Window};
use sluice_core::queue::{self as q, QueueConfig, Queues, StartAt};
use sluice_core::statelog::{StateLog, StateLogConfig};
use sluice_core::topic::TopicConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long a queue config is trusted before it is read again.
const CONFIG_TTL: Duration = Duration::from_secs(2);
/// How stale a state may be when planning or answering (a commit re-plans anyway).
pub const STATE_STALENESS: Duration = Duration::from_millis(100);
const MAINTENANCE_EVERY: Duration = Duration::from_millis(500);
/// Records read ahead per partition, at most.
const AHEAD_MAX: usize = 4000;

/// Records of one partition read ahead of the queue's frontier.
struct Ahead {
    from: u64,
    records: Arc<Vec<ReadRecord>>,
    /// The partition's end when read.
    high_watermark: u64,
    at: Instant,
}

pub struct QueueRuntime {
    cfg: Mutex<(Arc<QueueConfig>, Instant)>,
    pub state: Arc<StateLog<QueueState>>,
    ahead: tokio::sync::Mutex<HashMap<u32, Ahead>>,
    rotate: std::sync::atomic::AtomicU32,
}

/// Every queue this gateway has served.
pub struct QueueRuntimes {
    pub configs: Queues,
    log: Arc<Log>,
    clock: Arc<dyn Clock>,
    writer: [u8; 16],
    /// Short id of this gateway, in lease history.
    pub gateway_id: String,
    map: Mutex<HashMap<String, Arc<QueueRuntime>>>,
    metrics: Arc<Metrics>,
}

/// Records to answer with, by position: runs read ahead of the frontier, shared with the
/// read-ahead cache (no copy per record), plus records read one by one (redeliveries).
#[derive(Default)]
pub struct Fetched {
    runs: HashMap<u32, (u64, Arc<Vec<ReadRecord>>)>,
    more: HashMap<Pos, ReadRecord>,
}

impl Fetched {
    pub fn get(&self, pos: &Pos) -> Option<&ReadRecord> {
        let in_run = self.runs.get(&pos.0).and_then(|(from, recs)| {
            let i = usize::try_from(pos.1.checked_sub(*from)?).ok()?;
            recs.get(i).filter(|r| r.offset == pos.1)
        });
        in_run.or_else(|| self.more.get(pos))
    }

    pub fn contains_key(&self, pos: &Pos) -> bool {
        self.get(pos).is_some()
    }

    pub fn insert(&mut self, pos: Pos, rec: ReadRecord) {
        self.more.insert(pos, rec);
    }

    pub fn extend(&mut self, other: Fetched) {
        self.more.extend(other.more);
        for (p, run) in other.runs {
            self.runs.entry(p).or_insert(run);
        }
    }
}

impl QueueRuntimes {
    pub fn new(log: Arc<Log>, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Arc<Self> {
        let id = sluice_core::ids::new_ulid(clock.now_ms());
        let id_str = id.to_string();
        Arc::new(Self {
            configs: Queues::new(log.store().clone(), clock.clone()),
            log,
            clock,
            writer: id.to_bytes(),
            gateway_id: id_str[id_str.len() - 8..].to_string(),
            map: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    fn cached(&self, name: &str) -> Option<Arc<QueueRuntime>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The runtime of a live queue (its config re-read every `CONFIG_TTL`).
    pub async fn get(self: &Arc<Self>, name: &str) -> Result<Arc<QueueRuntime>> {
        if let Some(rt) = self.cached(name) {
            let fresh = rt.lock_cfg().1.elapsed() < CONFIG_TTL;
            if fresh {
                return Ok(rt);
            }
        }
        let cfg = match self.configs.get(name).await {
            Ok(c) => c,
            Err(e @ Error::QueueNotFound(_)) => {
                self.forget(name);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.adopt(cfg).await
    }

    /// Use `cfg` (just read or written) for its queue, opening its state log if new.
    pub async fn adopt(self: &Arc<Self>, cfg: QueueConfig) -> Result<Arc<QueueRuntime>> {
        if let Some(rt) = self.cached(&cfg.name) {
            let mut g = rt.lock_cfg();
            if g.0.id == cfg.id {
                if cfg.version >= g.0.version {
                    *g = (Arc::new(cfg), Instant::now());
                }
                drop(g);
                return Ok(rt);
            }
        }
        let state = StateLog::open(
            self.log.store().clone(),
            cfg.state_prefix(),
            self.clock.clone(),
            StateLogConfig::default(),
            self.writer,
        )
        .await?;
        let name = cfg.name.clone();
        let id = cfg.id.clone();
        let rt = Arc::new(QueueRuntime {
            cfg: Mutex::new((Arc::new(cfg), Instant::now())),
            state,
            ahead: tokio::sync::Mutex::new(HashMap::new()),
            rotate: Default::default(),
        });
        self.start(&rt).await?;
        {
            // Two requests may have opened the same queue at once: keep one runtime.
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(other) = map.get(&name) {
                if other.config().id == id {
                    return Ok(other.clone());
                }
            }
            map.insert(name, rt.clone());
        }
        self.spawn_maintenance(Arc::downgrade(self), Arc::downgrade(&rt));
        Ok(rt)
    }

    pub fn forget(&self, name: &str) {
        let gone = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if gone.is_some() {
            self.metrics.forget_queue(name);
        }
    }

    /// Commit the queue's starting positions once (whoever gets there first).
    async fn start(&self, rt: &Arc<QueueRuntime>) -> Result<()> {
        if rt.state.view().state.started {
            return Ok(());
        }
        let cfg = rt.config();
        let topic = self.log.topics().get(&cfg.topic).await?;
        let mut next = Vec::new();
        if cfg.start == StartAt::Latest {
            for p in 0..topic.partitions {
                next.push((p, self.log.partition_info(&topic, p).await?.next_offset));
            }
        }
        rt.state
            .propose(move |s: &QueueState, _| {
                if s.started {
                    (vec![], ())
                } else {
                    (vec![QueueOp::Start { next: next.clone() }], ())
                }
            })
            .await?;
        Ok(())
    }

    fn spawn_maintenance(&self, me: Weak<Self>, rt: Weak<QueueRuntime>) {
        tokio::spawn(async move {
            let mut tick = 0u64;
            loop {
                tokio::time::sleep(MAINTENANCE_EVERY).await;
                let (Some(me), Some(rt)) = (me.upgrade(), rt.upgrade()) else {
                    return;
                };
                let name = rt.config().name.clone();
                if me.cached(&name).is_none_or(|c| !Arc::ptr_eq(&c, &rt)) {
                    return; // deleted or re-created: a newer runtime does the work
                }
                if let Err(e) = me.maintain(&rt).await {
                    tracing::warn!(queue = %name, error = %e, "queue maintenance failed");
                }
                tick += 1;
                if tick.is_multiple_of(4) {
                    if let Err(e) = me.stats(&rt).await {
                        tracing::debug!(queue = %name, error = %e, "queue stats failed");
                    }
                }
            }
        });
    }

    /// Doom expired last deliveries, and copy dying records to the dead-letter topic (with an
    /// idempotency key, so a crash between the copy and `Buried` never writes it twice).
    pub async fn maintain(&self, rt: &Arc<QueueRuntime>) -> Result<()> {
        let view = rt.state.read(STATE_STALENESS).await?;
        let cfg = rt.config();
        let rules = cfg.rules();
        let now = self.clock.now_ms();
        if !state::plan_expiries(&view.state, &rules, now, 1).is_empty() {
            rt.state
                .propose(move |s: &QueueState, t| (state::plan_expiries(s, &rules, t, 1000), ()))
                .await?;
        }
        let view = rt.state.view();
        let dying: Vec<(Pos, u32, String)> = view
            .state
            .dying
            .iter()
            .take(500)
            .filter_map(|pos| {
                let rec = view.state.recs.get(pos)?;
                match &rec.phase {
                    state::Phase::Dying { reason } => Some((*pos, rec.deliveries, reason.clone())),
                    _ => None,
                }
            })
            .collect();
        if dying.is_empty() {
            return Ok(());
        }
        let topic = self.log.topics().get(&cfg.topic).await?;
        let dlq = self.dead_letter_topic(&cfg).await?;
        let mut requests = Vec::new();
        for ((p, o), deliveries, reason) in &dying {
            let source = match self.read_one(&topic, *p, *o).await? {
                Some(r) => r.record,
                None => {
                    tracing::warn!(queue = %cfg.name, partition = p, offset = o,
                        "dead-lettered record is gone from its topic (retention); copying its headers only");
                    Record::new(None, bytes::Bytes::new())
                }
            };
            let record = q::dead_letter_record(&cfg, *p, *o, *deliveries, reason, &source);
            requests.push(ProduceRequest {
                topic: dlq.clone(),
                records: vec![(None, record)],
                dedup_key: Some(q::dead_letter_key(&cfg, *p, *o, *deliveries)),
                producer: None,
            });
        }
        let results = self.log.flush(requests).await;
        let buried: Vec<Pos> = dying
            .iter()
            .zip(results)
            .filter_map(|((pos, _, _), r)| match r {
                Ok(_) => Some(*pos),
                Err(e) => {
                    tracing::warn!(queue = %cfg.name, error = %e, "dead letter not written; will retry");
                    None
                }
            })
            .collect();
        if !buried.is_empty() {
            rt.state
                .propose(move |s: &QueueState, _| {
                    let ops = buried
                        .iter()
                        .filter(|pos| s.dying.contains(*pos))
                        .map(|&(p, o)| QueueOp::Buried { p, o })
                        .collect();
                    (ops, ())
                })
                .await?;
        }
        Ok(())
    }

    /// The dead-letter topic, created (like the queue's topic) if absent.
    pub async fn dead_letter_topic(&self, cfg: &QueueConfig) -> Result<Arc<TopicConfig>> {
        match self.log.topics().get(&cfg.dead_letter_topic).await {
            Err(Error::TopicNotFound(_)) => {
                let source = self.log.topics().get(&cfg.topic).await?;
                match self
                    .log
                    .topics()
                    .create(
                        &cfg.dead_letter_topic,
                        source.partitions,
                        None,
                        source.shard,
                    )
                    .await
                {
                    Ok(t) => Ok(t),
                    Err(Error::TopicExists(_)) => {
                        self.log.topics().get(&cfg.dead_letter_topic).await
                    }
                    Err(e) => Err(e),
                }
            }
            r => r,
        }
    }

    /// One record, or `None` if retention deleted it.
    pub async fn read_one(
        &self,
        topic: &TopicConfig,
        p: u32,
        o: u64,
    ) -> Result<Option<ReadRecord>> {
        match self.log.read(topic, p, o, 1, 8 << 20).await {
            Ok(b) => Ok(b.records.into_iter().find(|r| r.offset == o)),
            Err(Error::OffsetOutOfRange { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Each partition's next offset, from the topic's shard head synced within
    /// `STATE_STALENESS` (concurrent callers share the GET).
    async fn partition_ends(&self, topic: &TopicConfig) -> Result<Vec<u64>> {
        let shard = self.log.shard(topic.shard).await?;
        let since = Instant::now()
            .checked_sub(STATE_STALENESS)
            .unwrap_or_else(Instant::now);
        shard.sync_since(Some(since)).await?;
        let id = topic.topic_id()?;
        Ok((0..topic.partitions)
            .map(|partition| {
                shard.next_offset(&sluice_core::ids::PartitionId {
                    topic: id,
                    partition,
                })
            })
            .collect())
    }

    /// The records at these positions: each run of consecutive offsets is read with one read
    /// (16 runs at a time); positions retention deleted are left out.
    pub async fn read_many(&self, topic: &TopicConfig, mut positions: Vec<Pos>) -> Result<Fetched> {
        positions.sort_unstable();
        positions.dedup();
        let mut runs: Vec<(u32, u64, u64)> = Vec::new();
        for (p, o) in positions {
            match runs.last_mut() {
                Some(r) if r.0 == p && r.2 == o => r.2 = o + 1,
                _ => runs.push((p, o, o + 1)),
            }
        }
        let results: Vec<Result<Vec<(u32, ReadRecord)>>> = futures::stream::iter(runs)
            .map(|(p, start, end)| async move {
                let mut got = Vec::new();
                let mut at = start;
                while at < end {
                    match self
                        .log
                        .read(topic, p, at, (end - at) as usize, 16 << 20)
                        .await
                    {
                        Ok(b) => {
                            let next = b.next_offset;
                            got.extend(
                                b.records
                                    .into_iter()
                                    .filter(|r| (at..end).contains(&r.offset))
                                    .map(|r| (p, r)),
                            );
                            if next <= at {
                                break;
                            }
                            at = next;
                        }
                        Err(Error::OffsetOutOfRange { earliest, .. }) if earliest > at => {
                            at = earliest
                        }
                        Err(Error::OffsetOutOfRange { .. }) => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(got)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut out = Fetched::default();
        for r in results {
            for (p, rec) in r? {
                out.insert((p, rec.offset), rec);
            }
        }
        Ok(out)
    }

    /// Read fresh records ahead of the frontiers: windows for planning (about `need` records
    /// beyond each frontier, for a few receivers of the same round) and the records by position.
    pub async fn windows(
        &self,
        rt: &QueueRuntime,
        topic: &TopicConfig,
        st: &QueueState,
        need: usize,
    ) -> Result<(Vec<Window>, Fetched)> {
        let want = (need * 4).clamp(64, AHEAD_MAX);
        let n = topic.partitions;
        let first = rt.rotate.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n.max(1);
        let cfg = rt.config();
        let ordering_key = cfg.ordering == q::Ordering::Key;
        let filter = cfg.filter()?;
        // Partition ends from the shard head (one shared GET at most every STATE_STALENESS), so
        // partitions with nothing beyond the frontier cost no read.
        let ends = self.partition_ends(topic).await?;
        let mut ahead = rt.ahead.lock().await;
        let mut windows = Vec::new();
        let mut fetched = Fetched::default();
        let mut total = 0usize;
        for i in 0..n {
            if total >= want {
                break;
            }
            let p = (first + i) % n;
            let next = st.next_of(p);
            if ends[p as usize] <= next {
                continue;
            }
            let usable = ahead.get(&p).is_some_and(|a| {
                let end = a.from + a.records.len() as u64;
                a.from <= next
                    && (end >= next + need as u64
                        || (end >= a.high_watermark && a.at.elapsed() < STATE_STALENESS))
            });
            if !usable {
                let (from, batch) = match self.log.read(topic, p, next, want, 16 << 20).await {
                    Ok(b) => (next, b),
                    Err(Error::OffsetOutOfRange { earliest, .. }) if earliest > next => (
                        earliest,
                        self.log.read(topic, p, earliest, want, 16 << 20).await?,
                    ),
                    Err(e) => return Err(e),
                };
                let mut records = batch.records;
                records.retain(|r| r.offset >= from);
                // Keep only a dense run from `from` (a read never skips, but be defensive).
                let dense = records
                    .iter()
                    .enumerate()
                    .take_while(|(i, r)| r.offset == from + *i as u64)
                    .count();
                records.truncate(dense);
                ahead.insert(
                    p,
                    Ahead {
                        from,
                        records: Arc::new(records),
                        high_watermark: batch.high_watermark,
                        at: Instant::now(),
                    },
                );
            }
            let Some(a) = ahead.get(&p) else { continue };
            let from = a.from.max(next);
            let skip = (from - a.from) as usize;
            let recs = &a.records[skip.min(a.records.len())..];
            if recs.is_empty() && from == next {
                continue;
            }
            total += recs.len();
            windows.push(Window {
                p,
                from,
                records: recs
                    .iter()
                    .map(|r| Fresh {
                        offset: r.offset,
                        key: if ordering_key {
                            r.record.key.as_deref().map(q::key_hash)
                        } else {
                            None
                        },
                        wanted: filter.as_ref().is_none_or(|f| f.matches(&r.record)),
                    })
                    .collect(),
            });
            fetched.runs.insert(p, (a.from, a.records.clone()));
        }
        Ok((windows, fetched))
    }

    /// Dead-lettered records of the queue whose dead-letter copy passes `filter`.
    pub async fn dead_passing(
        &self,
        rt: &QueueRuntime,
        filter: &sluice_core::filter::Filter,
    ) -> Result<std::collections::HashSet<Pos>> {
        let cfg = rt.config();
        let view = rt.state.read(STATE_STALENESS).await?;
        let topic = self.log.topics().get(&cfg.topic).await?;
        let mut out = std::collections::HashSet::new();
        for (pos, f) in view.state.dead.iter() {
            let source = match self.read_one(&topic, pos.0, pos.1).await? {
                Some(r) => r.record,
                None => Record::new(None, bytes::Bytes::new()),
            };
            let reason = f.reason.as_deref().unwrap_or_default();
            let copy = q::dead_letter_record(&cfg, pos.0, pos.1, f.deliveries, reason, &source);
            if filter.matches(&copy) {
                out.insert(*pos);
            }
        }
        Ok(out)
    }

    /// The queue's backlog (reads each partition's end), and updates the gauges.
    pub async fn stats(&self, rt: &QueueRuntime) -> Result<sluice_api::QueueStats> {
        let cfg = rt.config();
        let view = rt.state.read(STATE_STALENESS).await?;
        let topic = self.log.topics().get(&cfg.topic).await?;
        let now = self.clock.now_ms();
        let (redeliver, in_flight, delayed, oldest_due) = state::counts(&view.state, now);
        let mut fresh = 0u64;
        let mut oldest = oldest_due;
        let ends = self.partition_ends(&topic).await?;
        for p in 0..topic.partitions {
            if ends[p as usize] <= view.state.next_of(p) {
                continue; // nothing beyond the frontier: no look-up
            }
            let info = self.log.partition_info(&topic, p).await?;
            let from = view.state.next_of(p).max(info.earliest_offset);
            if info.next_offset > from {
                fresh += info.next_offset - from;
                if let Some(r) = self.read_one(&topic, p, from).await? {
                    oldest = Some(oldest.map_or(r.append_ts, |o| o.min(r.append_ts)));
                }
            }
        }
        let stats = sluice_api::QueueStats {
            ready: redeliver + fresh,
            in_flight,
            delayed,
            acked: view.state.acked,
            dead_lettered: view.state.dead_lettered,
            oldest_ready_age_ms: oldest.map_or(0, |t| (now - t).max(0)),
        };
        self.metrics.set_queue(
            &cfg.name,
            [stats.ready, stats.in_flight, stats.dead_lettered],
        );
        Ok(stats)
    }
}

impl QueueRuntime {
    fn lock_cfg(&self) -> std::sync::MutexGuard<'_, (Arc<QueueConfig>, Instant)> {
        self.cfg.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> Arc<QueueConfig> {
        self.lock_cfg().0.clone()
    }

    /// The tag of this incarnation's receipts (see [`receipt`]).
    pub fn receipt_tag(&self) -> String {
        receipt_tag(&self.config().id).to_string()
    }
}

fn receipt_tag(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

/// `{tag}-{partition}-{offset}-{lease}`; the tag ties it to one queue incarnation.
pub fn receipt(tag: &str, p: u32, o: u64, lease: u64) -> String {
    format!("{tag}-{p}-{o}-{lease}")
}

/// Parse a receipt of the queue whose tag is `tag`; `None` for anything else.
pub fn parse_receipt(tag: &str, s: &str) -> Option<state::ReceiptRef> {
    let mut it = s.split('-');
    if it.next()? != tag {
        return None;
    }
    let p = it.next()?.parse().ok()?;
    let o = it.next()?.parse().ok()?;
    let lease = it.next()?.parse().ok()?;
    it.next()
        .is_none()
        .then_some(state::ReceiptRef { p, o, lease })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_reject_garbage() {
        assert_eq!(receipt("ABCDEFGH", 2, 17, 9), "ABCDEFGH-2-17-9");
        let r = parse_receipt("ABCDEFGH", &receipt("ABCDEFGH", 2, 17, 9)).unwrap();
        assert_eq!((r.p, r.o, r.lease), (2, 17, 9));
        for bad in [
            "",
            "ABCDEFGH-2-17",
            "XBCDEFGH-2-17-9",
            "ABCDEFGH-2-17-9-1",
            "ABCDEFGH--17-9",
        ] {
            assert!(parse_receipt("ABCDEFGH", bad).is_none(), "{bad}");
        }
    }
}
