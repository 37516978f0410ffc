//! The facade over the log that gateways, the compactor's tests, benchmarks and the SDK use:
//! `flush` (write a segment, commit it per shard), `read`, `offset_for_timestamp`,
//! `partition_info`, `wait_for`.

use crate::clock::Clock;
use crate::committer::{self, CommitForwarder, Committed, GroupCommitter, GroupConfig, HandOver};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::format::checkpoint::Slice;
use crate::format::index::IndexObject;
use crate::format::journal::BatchRef;
use crate::format::journal::ProducerStamp;
use crate::format::record::Record;
use crate::format::run::decode_slice;
use crate::format::segment::{decode_frame, encode_frame, segment_header, split_frames, Codec};
use crate::head::{self, Outcome, PendingAppend, SeqError};
use crate::ids::{new_ulid, ObjectId, PartitionId};
use crate::keys::{self, IndexKey};
use crate::partition::{self, Route};
use crate::producer::Producers;
use crate::shard::{Located, ShardConfig, ShardLog, TailBatch};
use crate::store::{self, Created, DynStore};
use crate::topic::{TopicConfig, Topics};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub shard: ShardConfig,
    pub compression: Codec,
    /// How long a topic config is cached.
    pub topic_cache_ttl: Duration,
    /// How often a waiting reader re-reads the journal head (other gateways' commits).
    pub poll_interval: Duration,
    /// Decoded index objects kept in memory.
    pub index_cache_entries: usize,
    /// A read whose whole page lies below the partition's next offset as this process knows
    /// it skips the journal-head GET if the head was confirmed within this long: a reader
    /// catching up pays one such GET per interval, not one per page. Those records are
    /// committed and never change; only the answer's `high_watermark` may be this much older.
    pub catch_up_sync_interval: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            shard: ShardConfig::default(),
            compression: Codec::None,
            topic_cache_ttl: Duration::from_secs(2),
            poll_interval: Duration::from_millis(100),
            index_cache_entries: 1024,
            catch_up_sync_interval: Duration::from_secs(1),
        }
    }
}

/// One produce request: records of one topic. `partition` per record overrides the key hash.
#[derive(Clone, Debug)]
pub struct ProduceRequest {
    pub topic: Arc<TopicConfig>,
    pub records: Vec<(Option<u32>, Record)>,
    pub dedup_key: Option<Bytes>,
    /// An idempotent producer's request (`Producer-Id` / `-Epoch` / `-Seq`).
    pub producer: Option<ProducerStamp>,
}

impl ProduceRequest {
    /// How each record asks to be routed: explicit partition, else its key, else anywhere.
    fn routes(&self) -> Vec<Route<'_>> {
        self.records
            .iter()
            .map(|(p, r)| match (p, &r.key) {
                (Some(p), _) => Route::Explicit(*p),
                (None, Some(k)) => Route::Key(k),
                (None, None) => Route::Any,
            })
            .collect()
    }

    pub fn encoded_len(&self) -> usize {
        self.records.iter().map(|(_, r)| r.encoded_len()).sum()
    }
}

/// The answer to a produce request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProduceAck {
    /// (partition, offset) per record, in request order.
    pub offsets: Vec<(u32, u64)>,
    pub append_ts: i64,
    /// True when this was a retry answered from the dedup window.
    pub duplicate: bool,
}

/// A record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    pub offset: u64,
    pub append_ts: i64,
    pub record: Record,
}

#[derive(Clone, Debug)]
pub struct ReadBatch {
    pub records: Vec<ReadRecord>,
    pub next_offset: u64,
    pub high_watermark: u64,
}

/// How much a filtered read may scan before it answers with what it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanBudget {
    pub records: usize,
    pub bytes: usize,
}

impl Default for ScanBudget {
    fn default() -> Self {
        Self {
            records: 100_000,
            bytes: 32 << 20,
        }
    }
}

/// Records a filtered read asks the unfiltered read for at a time.
const MAX_SCAN_CHUNK: usize = 10_000;
/// Index objects a filtered read skips (by their summaries) before it answers.
const MAX_SKIPPED_OBJECTS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub earliest_offset: u64,
    pub next_offset: u64,
    pub last_append_ms: Option<i64>,
}

/// Where a read starts, before the log is consulted: the one definition the gateway's reads and
/// the SDK's direct consumer share ([`Log::start_offset`] resolves it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The first offset still readable.
    Earliest,
    /// The partition's next offset: only records appended from now on.
    Latest,
    Offset(u64),
    /// The first record appended at or after this time (ms since the epoch).
    Timestamp(i64),
}

/// A flush whose segment is written and whose commit is pending (see [`Log::write_segment`]).
pub struct PreparedFlush {
    requests: Vec<ProduceRequest>,
    planned: Vec<(usize, Vec<u32>, PendingAppend)>,
    results: Vec<Option<Result<ProduceAck>>>,
}

/// Appends given to a shard's committer.
enum Handed {
    /// Failed before it could be queued.
    Answered(Result<Committed>),
    Queued(oneshot::Receiver<Result<Committed>>),
}

/// Cached LIST of one partition's index objects.
#[derive(Default)]
struct IndexListing {
    keys: Vec<IndexKey>,
}

/// The index object found for an offset (the partition's own, or a shared run's slice), and
/// where its frames are.
struct Found {
    /// The offset after its last record.
    end: u64,
    index: Arc<IndexObject>,
    frames: Frames,
}

enum Frames {
    /// In the partition's own data object (fetched by range when read).
    Own(object_store::path::Path),
    /// In a slice of a shared run, fetched with its index: one frame per index entry.
    Loaded {
        key: object_store::path::Path,
        frames: Arc<[Bytes]>,
    },
}

/// A slice of a shared run, fetched and checked.
struct LoadedSlice {
    index: Arc<IndexObject>,
    frames: Arc<[Bytes]>,
}

/// Most bytes of fetched slices kept (the cache is emptied past this).
const SLICE_CACHE_BYTES: usize = 64 << 20;

/// Slices fetched lately, by (run, position), with their total length.
#[derive(Default)]
struct SliceCache {
    slices: HashMap<(ObjectId, u64), Arc<LoadedSlice>>,
    bytes: usize,
}

pub struct Log {
    store: DynStore,
    clock: Arc<dyn Clock>,
    cfg: LogConfig,
    topics: Topics,
    producers: Producers,
    writer: [u8; 16],
    shards: tokio::sync::Mutex<HashMap<u32, Arc<ShardLog>>>,
    listings: Mutex<HashMap<PartitionId, Arc<IndexListing>>>,
    index_cache: Mutex<HashMap<(PartitionId, IndexKey), Arc<IndexObject>>>,
    slice_cache: Mutex<SliceCache>,
    sticky: AtomicU32,
    committers: Mutex<HashMap<u32, GroupCommitter>>,
    hand_overs: Mutex<HashMap<u32, HandOver>>,
    forwarder: OnceLock<Arc<dyn CommitForwarder>>,
    metrics: crate::metrics::JournalMetrics,
}

impl Log {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, cfg: LogConfig) -> Arc<Self> {
        let topics = Topics::new(store.clone(), clock.clone(), cfg.topic_cache_ttl);
        let producers = Producers::new(store.clone(), clock.clone(), cfg.topic_cache_ttl);
        Arc::new(Self {
            producers,
            writer: new_ulid(clock.now_ms()).to_bytes(),
            store,
            clock,
            cfg,
            topics,
            shards: tokio::sync::Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            index_cache: Mutex::new(HashMap::new()),
            slice_cache: Mutex::new(SliceCache::default()),
            sticky: AtomicU32::new(0),
            committers: Mutex::new(HashMap::new()),
            hand_overs: Mutex::new(HashMap::new()),
            forwarder: OnceLock::new(),
            metrics: crate::metrics::JournalMetrics::new(),
        })
    }

    /// This log's journal metrics (commit latency, conflicts), in their own registry.
    pub fn metrics(&self) -> &crate::metrics::JournalMetrics {
        &self.metrics
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }
    /// This process's writer id (in the objects it writes).
    pub fn writer(&self) -> [u8; 16] {
        self.writer
    }
    pub fn topics(&self) -> &Topics {
        &self.topics
    }
    /// Idempotent producers' ids and epochs (their epoch is cached like topic configs).
    pub fn producers(&self) -> &Producers {
        &self.producers
    }

    /// The live view of a shard, opened (checkpoint + catch-up) on first use.
    pub async fn shard(&self, shard: u32) -> Result<Arc<ShardLog>> {
        // A first sync that finished after this call began is shared, not repeated.
        let since = Instant::now();
        let s = self.shard_at_checkpoint(shard).await?;
        if !s.synced_once() {
            s.sync_since(Some(since)).await?;
        }
        Ok(s)
    }

    /// The view of a shard, opened with its checkpoint only on first use (one GET): enough
    /// for what is in index objects and shared runs; [`Self::shard`] reads the journal too.
    async fn shard_at_checkpoint(&self, shard: u32) -> Result<Arc<ShardLog>> {
        let mut shards = self.shards.lock().await;
        if let Some(s) = shards.get(&shard) {
            return Ok(s.clone());
        }
        let s = ShardLog::open_at_checkpoint(
            self.store.clone(),
            shard,
            self.clock.clone(),
            self.cfg.shard.clone(),
            self.writer,
        )
        .await?;
        s.set_metrics(self.metrics.clone());
        shards.insert(shard, s.clone());
        Ok(s)
    }

    /// The shard for a read of up to `want` records of `p` from `offset`: as
    /// [`Self::shard_for_read`], but without the journal-head GET when the whole page lies
    /// below the next offset this process knows and the head was confirmed within
    /// [`LogConfig::catch_up_sync_interval`] (a reader catching up, or replaying).
    async fn shard_for_page(
        &self,
        shard: u32,
        p: &PartitionId,
        offset: u64,
        want: usize,
    ) -> Result<Arc<ShardLog>> {
        let s = self.shard(shard).await?;
        if offset.saturating_add(want as u64) <= s.next_offset(p)
            && s.synced_within(self.cfg.catch_up_sync_interval)
        {
            s.refresh_checkpoint_if_due().await?;
            return Ok(s);
        }
        self.shard_for_read(shard).await
    }

    /// A shard made current for a read: synced with the journal head (one GET shared by
    /// concurrent readers) and with a checkpoint no older than `checkpoint_refresh`.
    async fn shard_for_read(&self, shard: u32) -> Result<Arc<ShardLog>> {
        // A sync sent after this call began is current enough: the one that opens a shard
        // (or a concurrent reader's) is shared, not repeated.
        let since = Instant::now();
        let s = self.shard(shard).await?;
        s.refresh_checkpoint_if_due().await?;
        s.sync_since(Some(since)).await?;
        Ok(s)
    }

    /// Write all requests as one segment and commit them (one journal entry per shard touched).
    /// Answers in request order; a request fails alone when only it is at fault.
    pub async fn flush(&self, requests: Vec<ProduceRequest>) -> Vec<Result<ProduceAck>> {
        let prepared = self.write_segment(requests).await;
        self.commit(prepared, None).await
    }

    /// Step 1 of a flush: route and encode the requests, PUT the segment. Segments of several
    /// flushes may be written concurrently; their [`commit`](Self::commit)s must then be called
    /// in flush order to keep each producer's records in order.
    pub async fn write_segment(&self, requests: Vec<ProduceRequest>) -> PreparedFlush {
        let mut results: Vec<Option<Result<ProduceAck>>> =
            (0..requests.len()).map(|_| None).collect();
        let segment = ObjectId::from_ulid(new_ulid(self.clock.now_ms()));
        let mut seg = BytesMut::from(&segment_header()[..]);
        let mut planned: Vec<(usize, Vec<u32>, PendingAppend)> = Vec::new();
        let sticky = self.sticky.fetch_add(1, Ordering::Relaxed);
        for (i, req) in requests.iter().enumerate() {
            match self.encode_request(req, sticky, segment, &mut seg) {
                Ok((assignment, pending)) => planned.push((i, assignment, pending)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !planned.is_empty() {
            // A fresh ULID: the key never exists already.
            let key = keys::segment(segment);
            let written = match store::put_create(&*self.store, &key, seg.freeze()).await {
                Ok(Created::Yes) => Ok(()),
                Ok(Created::AlreadyExists) => Err(Error::Conflict(format!("{key} exists"))),
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                let msg = e.to_string();
                for (i, _, _) in planned.drain(..) {
                    results[i] = Some(Err(Error::Stale(format!("segment write failed: {msg}"))));
                }
            }
        }
        PreparedFlush {
            requests,
            planned,
            results,
        }
    }

    /// Step 2 of a flush: commit the written segment to the journal shard(s). `queued` (if
    /// given) is told as soon as the flush's appends are handed over (queued in this process's
    /// group commit, or answered by the shard's committer elsewhere): the next flush may then
    /// be committed, and stays after this one. So flushes committed in order share journal
    /// entries while one is being written.
    pub async fn commit(
        &self,
        prepared: PreparedFlush,
        queued: Option<oneshot::Sender<()>>,
    ) -> Vec<Result<ProduceAck>> {
        let PreparedFlush {
            requests,
            planned,
            mut results,
        } = prepared;
        if !planned.is_empty() {
            self.commit_planned(&requests, planned, &mut results, queued)
                .await;
        } else if let Some(q) = queued {
            let _ = q.send(());
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Internal("request was not processed".into()))))
            .collect()
    }

    fn encode_request(
        &self,
        req: &ProduceRequest,
        sticky: u32,
        segment: ObjectId,
        seg: &mut BytesMut,
    ) -> Result<(Vec<u32>, PendingAppend)> {
        if req.records.is_empty() {
            return Err(Error::Invalid(
                "a produce request needs at least one record".into(),
            ));
        }
        for (_, r) in &req.records {
            r.validate().map_err(Error::Invalid)?;
        }
        let topic = req.topic.topic_id()?;
        let n = req.topic.partitions;
        let route = head::route_key(req.dedup_key.as_ref(), req.producer.as_ref());
        let assignment =
            partition::assign(&req.routes(), n, route.as_deref(), sticky).map_err(|p| {
                Error::PartitionNotFound {
                    topic: req.topic.name.clone(),
                    partition: p,
                }
            })?;
        let mut by_partition: Vec<(u32, Vec<&Record>)> = Vec::new();
        for ((_, r), &p) in req.records.iter().zip(&assignment) {
            match by_partition.iter_mut().find(|(q, _)| *q == p) {
                Some((_, v)) => v.push(r),
                None => by_partition.push((p, vec![r])),
            }
        }
        let mut batches = Vec::with_capacity(by_partition.len());
        for (p, records) in by_partition {
            let pos = seg.len() as u64;
            let len = encode_frame(&records, self.cfg.compression, seg);
            batches.push(BatchRef {
                partition: p,
                base_offset: 0,
                record_count: records.len() as u32,
                segment,
                pos,
                len: len as u32,
            });
        }
        Ok((
            assignment,
            PendingAppend {
                topic,
                partition_count: n,
                dedup_key: req.dedup_key.clone(),
                batches,
                producer: req.producer,
            },
        ))
    }

    /// Commit appends (whose segments are written) to `shard`: through the shard's committer
    /// elsewhere if a [`CommitForwarder`] is installed and one answers, else in this process's
    /// group commit of the shard.
    pub async fn commit_appends(
        &self,
        shard: u32,
        pending: Vec<PendingAppend>,
    ) -> Result<Committed> {
        match self.hand_over(shard, pending).await {
            Handed::Answered(r) => r,
            Handed::Queued(rx) => committer::wait(rx).await,
        }
    }

    /// Give appends to whoever commits `shard`: the elected committer elsewhere (answered when
    /// this returns), or this process's group commit (queued when this returns: appends handed
    /// over one after the other are committed in that order).
    async fn hand_over(&self, shard: u32, pending: Vec<PendingAppend>) -> Handed {
        let local = match self.group_committer(shard).await {
            Ok(c) => c,
            Err(e) => return Handed::Answered(Err(e)),
        };
        let Some(forwarder) = self.forwarder.get().cloned() else {
            return Handed::Queued(local.enqueue(pending));
        };
        let hand_over = self
            .hand_overs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(shard)
            .or_insert_with(|| HandOver::spawn(shard, forwarder, local, GroupConfig::default()))
            .clone();
        Handed::Queued(hand_over.enqueue(pending))
    }

    /// This process's group committer of `shard` (started on first use).
    pub async fn group_committer(&self, shard: u32) -> Result<GroupCommitter> {
        let existing = self
            .committers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&shard)
            .cloned();
        if let Some(c) = existing {
            return Ok(c);
        }
        let s = self.shard(shard).await?;
        Ok(self
            .committers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(shard)
            .or_insert_with(|| GroupCommitter::spawn(s, GroupConfig::default()))
            .clone())
    }

    /// Hand commits to the shards' elected committers (once; later calls are ignored).
    pub fn set_forwarder(&self, forwarder: Arc<dyn CommitForwarder>) {
        let _ = self.forwarder.set(forwarder);
    }

    async fn commit_planned(
        &self,
        requests: &[ProduceRequest],
        planned: Vec<(usize, Vec<u32>, PendingAppend)>,
        results: &mut [Option<Result<ProduceAck>>],
        queued: Option<oneshot::Sender<()>>,
    ) {
        let mut by_shard: HashMap<u32, Vec<(usize, Vec<u32>, PendingAppend)>> = HashMap::new();
        for p in planned {
            by_shard
                .entry(requests[p.0].topic.shard)
                .or_default()
                .push(p);
        }
        let handing = by_shard.into_iter().map(|(shard, group)| async move {
            let pending: Vec<PendingAppend> = group.iter().map(|g| g.2.clone()).collect();
            let handed = self.hand_over(shard, pending).await;
            (group, handed)
        });
        let handed = futures::future::join_all(handing).await;
        if let Some(q) = queued {
            let _ = q.send(());
        }
        for (group, handed) in handed {
            let r = match handed {
                Handed::Answered(r) => r,
                Handed::Queued(rx) => committer::wait(rx).await,
            };
            match r {
                Err(e) => {
                    let errors = e.spread(group.len());
                    for ((i, _, _), e) in group.into_iter().zip(errors) {
                        results[i] = Some(Err(e));
                    }
                }
                Ok((outcomes, append_ts)) => {
                    for ((i, assignment, _), outcome) in group.into_iter().zip(outcomes) {
                        results[i] = Some(answer(&requests[i], &assignment, outcome, append_ts));
                    }
                }
            }
        }
    }

    /// Read up to `limit` records (and roughly at most `max_bytes`) from `offset`.
    pub async fn read(
        &self,
        topic: &TopicConfig,
        partition: u32,
        offset: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch> {
        topic.check_partition(partition)?;
        let p = PartitionId {
            topic: topic.topic_id()?,
            partition,
        };
        let shard = self.shard_for_page(topic.shard, &p, offset, limit).await?;
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut at = offset;
        let mut retried = false;
        let next = loop {
            if records.len() >= limit || bytes >= max_bytes {
                break shard.next_offset(&p);
            }
            let got = match shard.locate(&p, at) {
                Located::Beyond { next } => {
                    if records.is_empty() {
                        return Err(Error::OffsetOutOfRange {
                            offset,
                            earliest: self.earliest(&shard, &p).await?,
                            next,
                        });
                    }
                    break next;
                }
                Located::End { next } => break next,
                Located::Indexed => {
                    self.read_indexed(&shard, &p, at, limit - records.len(), max_bytes - bytes)
                        .await
                }
                Located::Tail { batches, .. } => {
                    self.read_tail(&batches, at, limit - records.len(), max_bytes - bytes)
                        .await
                }
            };
            match got {
                Ok(got) if got.is_empty() => break shard.next_offset(&p),
                Ok(got) => {
                    retried = false;
                    bytes += got.iter().map(|r| r.record.encoded_len()).sum::<usize>();
                    at = got.last().map_or(at, |r| r.offset + 1);
                    records.extend(got);
                }
                // A segment or data object vanished: the compactor moved it (tail → index) or
                // retention deleted it. Refresh what we know once and look again.
                Err(e) if store::is_not_found(&e) && !retried => {
                    retried = true;
                    // From the listing: the pointer may lag a checkpoint whose segments GC
                    // has already deleted.
                    shard.refresh_checkpoint_listed().await?;
                    self.forget_listing(&p);
                }
                Err(Error::OffsetOutOfRange { .. }) if !records.is_empty() => break at,
                Err(Error::OffsetOutOfRange { .. }) => {
                    return Err(Error::OffsetOutOfRange {
                        offset,
                        earliest: self.earliest(&shard, &p).await?,
                        next: shard.next_offset(&p),
                    })
                }
                Err(e) => return Err(e),
            }
        };
        let next_offset = records.last().map_or(offset, |r| r.offset + 1);
        Ok(ReadBatch {
            records,
            next_offset,
            high_watermark: next.max(shard.next_offset(&p)),
        })
    }

    /// Read up to `limit` records that pass `filter` from `offset`, scanning at most
    /// `budget` records / bytes however few match, and skipping index objects whose summary
    /// proves that none of their records passes (no data read for them). `next_offset` is the offset after the last
    /// record scanned (records the filter drops still advance it), so a caller that gets no
    /// records but an advanced `next_offset` goes on from there.
    #[allow(clippy::too_many_arguments)]
    pub async fn read_filtered(
        &self,
        topic: &TopicConfig,
        partition: u32,
        offset: u64,
        limit: usize,
        max_bytes: usize,
        filter: &Filter,
        budget: ScanBudget,
    ) -> Result<ReadBatch> {
        topic.check_partition(partition)?;
        let p = PartitionId {
            topic: topic.topic_id()?,
            partition,
        };
        let shard = self.shard_for_page(topic.shard, &p, offset, limit).await?;
        let mut records = Vec::new();
        let (mut bytes, mut scanned, mut scanned_bytes) = (0usize, 0usize, 0usize);
        let mut skipped_objects = 0usize;
        // Ask for what the limit needs first, then twice as much each round that falls short,
        // so a filter that passes most records does not fetch far past the limit.
        let first_want = limit.clamp(100, MAX_SCAN_CHUNK);
        let mut want = first_want;
        let mut at = offset;
        let mut high_watermark = offset;
        while records.len() < limit
            && bytes < max_bytes
            && scanned < budget.records
            && scanned_bytes < budget.bytes
        {
            let mut chunk = (budget.records - scanned).min(want);
            // In an index object: skip it whole when its summary proves nothing matches, else
            // read only within it (the next one may be skippable).
            if let Located::Indexed = shard.locate(&p, at) {
                if let Ok(found) = self.object_for_offset(&shard, &p, at).await {
                    if found
                        .index
                        .summary
                        .as_ref()
                        .is_some_and(|s| !filter.may_match(s))
                    {
                        at = found.end;
                        high_watermark = high_watermark.max(at);
                        // What matched before says nothing about what follows a skip.
                        want = first_want;
                        skipped_objects += 1;
                        if skipped_objects >= MAX_SKIPPED_OBJECTS {
                            break;
                        }
                        continue;
                    }
                    chunk = chunk.min((found.end - at) as usize);
                }
                // An error here (the object was deleted, …) is the read's to report.
            }
            let batch = match self
                .read(topic, partition, at, chunk, budget.bytes - scanned_bytes)
                .await
            {
                Ok(b) => b,
                // Past the end after the first round: what was scanned is the answer.
                Err(Error::OffsetOutOfRange { .. }) if at != offset => break,
                Err(e) => return Err(e),
            };
            high_watermark = high_watermark.max(batch.high_watermark);
            if batch.records.is_empty() {
                break;
            }
            want = (want * 2).min(MAX_SCAN_CHUNK);
            for r in batch.records {
                scanned += 1;
                scanned_bytes += r.record.encoded_len();
                at = r.offset + 1;
                if filter.matches(&r.record) {
                    bytes += r.record.encoded_len();
                    records.push(r);
                    if records.len() >= limit || bytes >= max_bytes {
                        break;
                    }
                }
            }
        }
        Ok(ReadBatch {
            records,
            next_offset: at,
            high_watermark: high_watermark.max(at),
        })
    }

    /// Read from journal-tail batches: pick the batches the limits allow, fetch them with one
    /// `get_ranges` per flush segment (object_store coalesces nearby ranges), several segments
    /// at once, then decode in offset order.
    async fn read_tail(
        &self,
        batches: &[TailBatch],
        offset: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ReadRecord>> {
        let mut chosen = Vec::new();
        let (mut records, mut bytes) = (0usize, 0usize);
        for b in batches {
            if records >= limit || bytes >= max_bytes {
                break;
            }
            records += (b.end_offset() - offset.max(b.base_offset)) as usize;
            bytes += b.len as usize;
            chosen.push(*b);
        }
        let wanted = chosen
            .iter()
            .enumerate()
            .map(|(i, b)| (keys::segment(b.segment), i, b.pos..b.pos + b.len as u64))
            .collect();
        let mut frames: Vec<Bytes> = vec![Bytes::new(); chosen.len()];
        for (i, frame) in store::get_ranges_tagged(&self.store, wanted, 8).await? {
            frames[i] = frame;
        }
        let mut out = Vec::new();
        for (b, frame) in chosen.iter().zip(frames) {
            let key = keys::segment(b.segment);
            let records = decode_frame(&frame).map_err(|e| Error::corrupt(&key, e))?;
            push_records(
                &mut out,
                records,
                b.base_offset,
                b.record_count,
                b.append_ts,
                offset,
                limit,
                &key,
            )?;
        }
        Ok(out)
    }

    async fn read_indexed(
        &self,
        shard: &ShardLog,
        p: &PartitionId,
        offset: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ReadRecord>> {
        let found = self.object_for_offset(shard, p, offset).await?;
        let index = &found.index;
        let i = index.entries.partition_point(|e| e.end_offset() <= offset);
        let entries = &index.entries[i..];
        // One ranged GET over consecutive frames, bounded by limit and bytes.
        let mut take = 0;
        let mut len = 0u64;
        let mut records = 0u64;
        for e in entries {
            if take > 0 && (records >= limit as u64 || len >= max_bytes as u64) {
                break;
            }
            take += 1;
            len += e.len as u64;
            records += e.end_offset() - offset.max(e.base_offset);
        }
        let Some(first) = entries.first() else {
            return Err(Error::Inconsistent {
                shard: 0,
                source: crate::head::ApplyError::OutOfOrder {
                    head: found.end,
                    got: offset,
                },
            });
        };
        let (data_key, frames) = match &found.frames {
            Frames::Own(data_key) => {
                let run =
                    store::get_range(&*self.store, data_key, first.pos..first.pos + len).await?;
                let frames = split_frames(&run).map_err(|e| Error::corrupt(data_key, e))?;
                if frames.len() != take {
                    return Err(Error::corrupt(
                        data_key,
                        crate::codec::invalid(
                            "data.frames",
                            "frame boundaries differ from the index",
                        ),
                    ));
                }
                (data_key, frames)
            }
            Frames::Loaded { key, frames } => (key, frames[i..i + take].to_vec()),
        };
        let mut out = Vec::new();
        for (e, frame) in entries[..take].iter().zip(frames) {
            let records = decode_frame(&frame).map_err(|err| Error::corrupt(data_key, err))?;
            push_records(
                &mut out,
                records,
                e.base_offset,
                e.record_count,
                e.append_ts,
                offset,
                limit,
                data_key,
            )?;
        }
        Ok(out)
    }

    /// A slice of a shared run of `shard`: one ranged GET (cached afterwards), checked
    /// against the checkpoint's description of it.
    async fn slice(&self, shard: u32, s: &Slice) -> Result<Arc<LoadedSlice>> {
        let k = (s.run, s.pos);
        if let Some(l) = self
            .slice_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slices
            .get(&k)
        {
            return Ok(l.clone());
        }
        let key = keys::run(shard, s.run);
        let bytes = store::get_range(&*self.store, &key, s.pos..s.pos + s.len as u64).await?;
        let (index, frames) = decode_slice(&bytes, s).map_err(|e| Error::corrupt(&key, e))?;
        let loaded = Arc::new(LoadedSlice {
            index: Arc::new(index),
            frames: frames.into(),
        });
        let mut cache = self.slice_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.bytes + s.len as usize > SLICE_CACHE_BYTES {
            *cache = SliceCache::default();
        }
        cache.bytes += s.len as usize;
        cache.slices.insert(k, loaded.clone());
        Ok(loaded)
    }

    /// The cached listing of a partition's index objects; re-listed when it does not reach
    /// `must_cover` (the checkpoint says more is indexed than we have seen).
    async fn listing(&self, p: &PartitionId, must_cover: u64) -> Result<Arc<IndexListing>> {
        let cached = self
            .listings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(p)
            .cloned();
        if let Some(l) = cached {
            if l.keys.last().map_or(0, |k| k.end) >= must_cover {
                return Ok(l);
            }
        }
        let names =
            store::list_names(&*self.store, &keys::index_dir(p.topic, p.partition), None).await?;
        let mut keys: Vec<IndexKey> = names.iter().filter_map(|n| IndexKey::parse(n)).collect();
        keys.sort();
        let l = Arc::new(IndexListing { keys });
        self.listings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*p, l.clone());
        Ok(l)
    }

    fn forget_listing(&self, p: &PartitionId) {
        self.listings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(p);
    }

    async fn index_object(&self, p: &PartitionId, key: IndexKey) -> Result<Arc<IndexObject>> {
        if let Some(i) = self
            .index_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(*p, key))
        {
            return Ok(i.clone());
        }
        let path = key.path(p.topic, p.partition);
        let bytes = store::get_opt(&*self.store, &path).await?.ok_or_else(|| {
            Error::store(
                "get",
                &path,
                object_store::Error::NotFound {
                    path: path.to_string(),
                    source: "index object deleted".into(),
                },
            )
        })?;
        let index = IndexObject::decode(&bytes).map_err(|e| Error::corrupt(&path, e))?;
        if index.base_offset() != key.base
            || index.end_offset() != key.end
            || index.topic != p.topic
            || index.partition != p.partition
        {
            return Err(Error::corrupt(
                &path,
                crate::codec::invalid("index", "contents do not match the key"),
            ));
        }
        let index = Arc::new(index);
        let mut cache = self.index_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.cfg.index_cache_entries {
            cache.clear();
        }
        cache.insert((*p, key), index.clone());
        Ok(index)
    }

    /// The index object holding `offset` (below the shard's coverage of `p`): the slice of
    /// a shared run that holds it (from the checkpoint), else one of the partition's own
    /// objects (from the cached listing).
    async fn object_for_offset(
        &self,
        shard: &ShardLog,
        p: &PartitionId,
        offset: u64,
    ) -> Result<Found> {
        let slices = shard.slices(p);
        if let Some(s) = slices.iter().find(|s| s.base <= offset && offset < s.end) {
            let l = self.slice(shard.shard(), s).await?;
            return Ok(Found {
                end: s.end,
                index: l.index.clone(),
                frames: Frames::Loaded {
                    key: keys::run(shard.shard(), s.run),
                    frames: l.frames.clone(),
                },
            });
        }
        let (own, covered) = (shard.own_covered(p), shard.covered(p));
        let listing = self
            .listing(p, if offset < own { own } else { covered })
            .await?;
        let found = listing
            .keys
            .iter()
            .rev()
            .find(|k| k.base <= offset && offset < k.end)
            .copied();
        match found {
            Some(k) => Ok(Found {
                end: k.end,
                index: self.index_object(p, k).await?,
                frames: Frames::Own(k.data_path(p.topic, p.partition)),
            }),
            None => Err(Error::OffsetOutOfRange {
                offset,
                earliest: listing
                    .keys
                    .first()
                    .map(|k| k.base)
                    .or(slices.first().map(|s| s.base))
                    .unwrap_or(covered),
                next: covered,
            }),
        }
    }

    async fn earliest(&self, shard: &ShardLog, p: &PartitionId) -> Result<u64> {
        let covered = shard.covered(p);
        if covered == 0 {
            return Ok(0);
        }
        let own = shard.own_covered(p);
        let first_slice = shard.slices(p).first().map(|s| s.base);
        if own == 0 {
            return Ok(first_slice.unwrap_or(0));
        }
        let listing = self.listing(p, own).await?;
        Ok(listing
            .keys
            .first()
            .map(|k| k.base.min(covered))
            .or(first_slice)
            .unwrap_or(covered))
    }

    /// The first offset whose append timestamp is at least `ts` (the next offset if none is).
    ///
    /// Append timestamps never decrease along a partition, and its own index objects hold
    /// older offsets than its slices of shared runs, which hold older ones than the journal
    /// tail. So the first place with a record at or after `ts` answers: the own objects'
    /// listing (cached) and one index object (cached); else the shard's checkpoint (one GET of
    /// its pointer when the shard was never opened here) and one slice; only then is the
    /// journal read and the tail searched. A cold look-up costs at most 3 requests (index
    /// LIST + index GET; index LIST + checkpoint GET + slice GET; or index LIST + checkpoint
    /// GET + journal GET) and a warm one at most 2, whatever the partition's size (plus one
    /// GET per journal entry not yet folded by the compactor).
    pub async fn offset_for_timestamp(
        &self,
        topic: &TopicConfig,
        partition: u32,
        ts: i64,
    ) -> Result<u64> {
        topic.check_partition(partition)?;
        let p = PartitionId {
            topic: topic.topic_id()?,
            partition,
        };
        let mut retried = false;
        loop {
            match self.offset_for_timestamp_once(&p, topic.shard, ts).await {
                // An index object or run went (retention, a merge) after we listed it: list
                // again once, and read the checkpoint from the listing.
                Err(e) if store::is_not_found(&e) && !retried => {
                    retried = true;
                    self.forget_listing(&p);
                    self.shard_at_checkpoint(topic.shard)
                        .await?
                        .refresh_checkpoint_listed()
                        .await?;
                }
                r => return r,
            }
        }
    }

    async fn offset_for_timestamp_once(&self, p: &PartitionId, shard: u32, ts: i64) -> Result<u64> {
        if let Some(o) = self.indexed_offset_for_timestamp(p, 0, ts).await? {
            return Ok(o);
        }
        let shard = self.shard_at_checkpoint(shard).await?;
        if let Some(o) = self.slice_offset_for_timestamp(&shard, p, ts).await? {
            return Ok(o);
        }
        let since = Instant::now();
        shard.sync_since(Some(since)).await?;
        // A fold may have indexed more since the listing was made.
        let own = shard.own_covered(p);
        if let Some(o) = self.indexed_offset_for_timestamp(p, own, ts).await? {
            return Ok(o);
        }
        if let Some(o) = self.slice_offset_for_timestamp(&shard, p, ts).await? {
            return Ok(o);
        }
        Ok(shard
            .tail_offset_for_timestamp(p, ts)
            .unwrap_or_else(|| shard.next_offset(p)))
    }

    /// The first indexed offset at or after `ts`, from the listing (re-listed when it does not
    /// reach `must_cover`) and at most one index object.
    async fn indexed_offset_for_timestamp(
        &self,
        p: &PartitionId,
        must_cover: u64,
        ts: i64,
    ) -> Result<Option<u64>> {
        let listing = self.listing(p, must_cover).await?;
        let Some(k) = listing.keys.iter().find(|k| k.max_ts >= ts) else {
            return Ok(None);
        };
        if k.min_ts >= ts {
            return Ok(Some(k.base));
        }
        let index = self.index_object(p, *k).await?;
        let i = index.entries.partition_point(|e| e.append_ts < ts);
        Ok(index.entries.get(i).map(|e| e.base_offset))
    }

    /// The first offset at or after `ts` in the shard's slices of `p` (at most one slice GET).
    async fn slice_offset_for_timestamp(
        &self,
        shard: &ShardLog,
        p: &PartitionId,
        ts: i64,
    ) -> Result<Option<u64>> {
        let slices = shard.slices(p);
        let Some(s) = slices.iter().find(|s| s.max_ts >= ts) else {
            return Ok(None);
        };
        if s.min_ts >= ts {
            return Ok(Some(s.base));
        }
        let l = self.slice(shard.shard(), s).await?;
        let i = l.index.entries.partition_point(|e| e.append_ts < ts);
        Ok(l.index.entries.get(i).map(|e| e.base_offset))
    }

    /// The offset a read from `start` begins at.
    pub async fn start_offset(
        &self,
        topic: &TopicConfig,
        partition: u32,
        start: Start,
    ) -> Result<u64> {
        Ok(match start {
            Start::Offset(o) => o,
            Start::Timestamp(ts) => self.offset_for_timestamp(topic, partition, ts).await?,
            Start::Latest => self.partition_info(topic, partition).await?.next_offset,
            Start::Earliest => self.partition_info(topic, partition).await?.earliest_offset,
        })
    }

    pub async fn partition_info(
        &self,
        topic: &TopicConfig,
        partition: u32,
    ) -> Result<PartitionInfo> {
        topic.check_partition(partition)?;
        let p = PartitionId {
            topic: topic.topic_id()?,
            partition,
        };
        let shard = self.shard_for_read(topic.shard).await?;
        let earliest = self.earliest(&shard, &p).await?;
        let last = match shard.last_append_ts(&p) {
            Some(ts) => Some(ts),
            None => {
                let covered = shard.covered(&p);
                if covered > 0 {
                    self.listing(&p, covered)
                        .await?
                        .keys
                        .last()
                        .map(|k| k.max_ts)
                } else {
                    None
                }
            }
        };
        Ok(PartitionInfo {
            partition,
            earliest_offset: earliest,
            next_offset: shard.next_offset(&p),
            last_append_ms: last,
        })
    }

    /// Wait until the partition's next offset passes `offset` or `timeout` elapses. A commit on
    /// this process wakes the waiter at once; other processes' commits are seen by polling the
    /// journal head every `poll_interval`.
    pub async fn wait_for(
        &self,
        topic: &TopicConfig,
        partition: u32,
        offset: u64,
        timeout: Duration,
    ) -> Result<()> {
        topic.check_partition(partition)?;
        let p = PartitionId {
            topic: topic.topic_id()?,
            partition,
        };
        let shard = self.shard(topic.shard).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = shard.subscribe();
        loop {
            if shard.next_offset(&p) > offset {
                return Ok(());
            }
            let tick = (tokio::time::Instant::now() + self.cfg.poll_interval).min(deadline);
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(tick) => {
                    if tick >= deadline {
                        return Ok(());
                    }
                    // Waiters share polls: one GET per shard per poll interval, however many
                    // readers wait.
                    let since = Instant::now()
                        .checked_sub(self.cfg.poll_interval)
                        .unwrap_or_else(Instant::now);
                    shard.sync_since(Some(since)).await?;
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn push_records(
    out: &mut Vec<ReadRecord>,
    records: Vec<Record>,
    base: u64,
    count: u32,
    append_ts: i64,
    from: u64,
    limit: usize,
    key: &object_store::path::Path,
) -> Result<()> {
    if records.len() != count as usize {
        return Err(Error::corrupt(
            key,
            crate::codec::invalid(
                "batch.record_count",
                format!("{} records, expected {count}", records.len()),
            ),
        ));
    }
    for (i, record) in records.into_iter().enumerate() {
        let offset = base + i as u64;
        if offset < from {
            continue;
        }
        if out.len() >= limit {
            break;
        }
        out.push(ReadRecord {
            offset,
            append_ts,
            record,
        });
    }
    Ok(())
}

/// Turn a commit outcome into the answer for the request, in request order.
fn answer(
    req: &ProduceRequest,
    assignment: &[u32],
    outcome: Outcome,
    append_ts: i64,
) -> Result<ProduceAck> {
    match outcome {
        Outcome::Committed { batches } => {
            let b: Vec<(u32, u64, u32)> = batches
                .iter()
                .map(|b| (b.partition, b.base_offset, b.record_count))
                .collect();
            let offsets = partition::offsets_in_request_order(assignment, &b)
                .ok_or_else(|| Error::Internal("batches do not match the request".into()))?;
            Ok(ProduceAck {
                offsets,
                append_ts,
                duplicate: false,
            })
        }
        Outcome::Refused(SeqError::Fenced { epoch, current }) => {
            Err(Error::ProducerFenced { epoch, current })
        }
        Outcome::Refused(SeqError::OutOfOrder { got, expected }) => {
            Err(Error::OutOfOrderSequence { got, expected })
        }
        Outcome::Duplicate(d) => {
            // Recompute the routing with the partition count the first attempt used.
            let assignment = partition::assign(&req.routes(), d.partition_count, Some(&d.key), 0)
                .map_err(|_| Error::IdempotencyConflict)?;
            let offsets = partition::offsets_in_request_order(&assignment, &d.batches)
                .ok_or(Error::IdempotencyConflict)?;
            Ok(ProduceAck {
                offsets,
                append_ts: d.append_ts,
                duplicate: true,
            })
        }
    }
}
