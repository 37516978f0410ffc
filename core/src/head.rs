//! The head state of one journal shard and the pure logic of a commit: which appends are
//! duplicates (same `Idempotency-Key` within the dedup window, or a repeat of one of an
//! idempotent producer's last sequences), which are refused (a producer's sequence gap or old
//! epoch), which offsets the rest get, and how a committed entry moves the head.
//!
//! Idempotent producers: state per (topic, producer id), kept in the head (so in journal
//! entries and checkpoints, not in any gateway) until [`PRODUCER_WINDOW_MS`] of silence on the
//! shard's append clock. A producer's first request on a topic, and its first after an epoch
//! bump, has sequence 0; each next one the last plus one; a repeat of one of the last
//! [`PRODUCER_RECENT`] answers its first answer.

use crate::format::checkpoint::{Checkpoint, DedupRecord, ProducerRecord, PRODUCER_RECENT};
use crate::format::journal::{Append, BatchRef, JournalEntry, ProducerStamp};
use crate::ids::{PartitionId, ProducerId, TopicId};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeSet, HashMap, VecDeque};

/// How long a producer's state lasts without a commit (the contract: at least 7 days).
pub const PRODUCER_WINDOW_MS: i64 = 8 * 24 * 3600 * 1000;

/// Head of a shard after entry `seq` (0 = nothing committed yet; the first entry is seq 1).
#[derive(Clone, Debug)]
pub struct HeadState {
    pub shard: u32,
    pub seq: u64,
    pub last_append_ts: i64,
    next: HashMap<PartitionId, u64>,
    dedup: HashMap<(TopicId, Bytes), DedupRecord>,
    /// Dedup keys by age, oldest first, for expiry.
    dedup_order: VecDeque<(i64, TopicId, Bytes)>,
    dedup_window_ms: i64,
    producers: HashMap<(TopicId, ProducerId), ProducerRecord>,
    /// Producers by last commit, for expiry.
    producer_order: BTreeSet<(i64, TopicId, ProducerId)>,
    producer_window_ms: i64,
}

/// Why a producer's request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeqError {
    /// Its epoch is older than the producer's newest on this topic.
    Fenced { epoch: u32, current: u32 },
    /// A gap, or a sequence older than the last ones remembered.
    OutOfOrder { got: u64, expected: u64 },
}

/// The key a request's keyless records are routed by, so that a retry lands them on the same
/// partitions: its `Idempotency-Key`, else its producer, epoch and sequence.
pub fn route_key(dedup_key: Option<&Bytes>, producer: Option<&ProducerStamp>) -> Option<Bytes> {
    match (dedup_key, producer) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(p)) => {
            let mut b = BytesMut::with_capacity(29);
            b.put_u8(b'p');
            b.put_slice(&p.id.0);
            b.put_u32_le(p.epoch);
            b.put_u64_le(p.seq);
            Some(b.freeze())
        }
        (None, None) => None,
    }
}

fn dedup_record(
    topic: TopicId,
    key: Bytes,
    seq: u64,
    append_ts: i64,
    partition_count: u32,
    batches: &[BatchRef],
) -> DedupRecord {
    DedupRecord {
        topic,
        key,
        seq,
        append_ts,
        partition_count,
        batches: batches
            .iter()
            .map(|b| (b.partition, b.base_offset, b.record_count))
            .collect(),
    }
}

/// What a producer's state says about a request.
enum SeqCheck {
    New,
    Duplicate(DedupRecord),
    Refused(SeqError),
}

fn check_seq(cur: Option<&ProducerRecord>, st: &ProducerStamp) -> SeqCheck {
    let from_zero = |st: &ProducerStamp| {
        if st.seq == 0 {
            SeqCheck::New
        } else {
            SeqCheck::Refused(SeqError::OutOfOrder {
                got: st.seq,
                expected: 0,
            })
        }
    };
    let Some(r) = cur else {
        return from_zero(st);
    };
    if st.epoch < r.epoch {
        return SeqCheck::Refused(SeqError::Fenced {
            epoch: st.epoch,
            current: r.epoch,
        });
    }
    if st.epoch > r.epoch {
        return from_zero(st);
    }
    let last = r.recent.last().map_or(0, |(s, _)| *s);
    if Some(st.seq) == last.checked_add(1) {
        return SeqCheck::New;
    }
    match r.recent.iter().find(|(s, _)| *s == st.seq) {
        Some((_, d)) => SeqCheck::Duplicate(d.clone()),
        None => SeqCheck::Refused(SeqError::OutOfOrder {
            got: st.seq,
            expected: last.saturating_add(1),
        }),
    }
}

/// The producer's state after committing `st` with answer `d`.
fn advanced(
    cur: Option<&ProducerRecord>,
    topic: TopicId,
    st: &ProducerStamp,
    d: DedupRecord,
    append_ts: i64,
) -> ProducerRecord {
    let mut recent = match cur {
        Some(r) if r.epoch == st.epoch => r.recent.clone(),
        _ => Vec::new(),
    };
    recent.push((st.seq, d));
    if recent.len() > PRODUCER_RECENT {
        recent.drain(..recent.len() - PRODUCER_RECENT);
    }
    ProducerRecord {
        topic,
        id: st.id,
        epoch: st.epoch,
        last_append_ts: append_ts,
        recent,
    }
}

/// A journal entry that does not continue the head it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("entry seq {got} does not follow head seq {head}")]
    OutOfOrder { head: u64, got: u64 },
    #[error(
        "entry seq {seq} gives partition {partition:?} base offset {got}, expected {expected}"
    )]
    OffsetGap {
        seq: u64,
        partition: PartitionId,
        got: u64,
        expected: u64,
    },
}

/// An append waiting to be committed: one produce request whose records are already written to
/// a segment. `batches` hold (partition, record_count, segment, pos, len) with base offsets unset.
#[derive(Clone, Debug)]
pub struct PendingAppend {
    pub topic: TopicId,
    pub partition_count: u32,
    pub dedup_key: Option<Bytes>,
    pub batches: Vec<BatchRef>,
    /// An idempotent producer's request: its id, epoch and sequence number.
    pub producer: Option<ProducerStamp>,
}

/// What the commit decided for one pending append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed now: the batches with their base offsets.
    Committed { batches: Vec<BatchRef> },
    /// Already committed earlier (same dedup key, or a producer's repeated sequence): the
    /// earlier answer.
    Duplicate(DedupRecord),
    /// A producer's request out of sequence or from a fenced epoch: nothing written.
    Refused(SeqError),
}

impl HeadState {
    pub fn new(shard: u32, dedup_window_ms: i64) -> Self {
        Self {
            shard,
            seq: 0,
            last_append_ts: 0,
            next: HashMap::new(),
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            dedup_window_ms,
            producers: HashMap::new(),
            producer_order: BTreeSet::new(),
            producer_window_ms: PRODUCER_WINDOW_MS,
        }
    }

    /// The same, forgetting producers after `ms` of silence instead of [`PRODUCER_WINDOW_MS`].
    pub fn with_producer_window(mut self, ms: i64) -> Self {
        self.producer_window_ms = ms;
        self
    }

    pub fn from_checkpoint(cp: &Checkpoint, dedup_window_ms: i64) -> Self {
        let mut s = Self::new(cp.shard, dedup_window_ms);
        s.seq = cp.seq;
        s.last_append_ts = cp.last_append_ts;
        s.next = cp.next_offsets.iter().copied().collect();
        for d in &cp.dedup {
            s.remember(d.clone());
        }
        for p in &cp.producers {
            s.set_producer(p.clone());
        }
        s.expire();
        s
    }

    pub fn to_checkpoint(&self) -> Checkpoint {
        let mut next_offsets: Vec<_> = self.next.iter().map(|(p, n)| (*p, *n)).collect();
        next_offsets.sort();
        let dedup = self
            .dedup_order
            .iter()
            .filter_map(|(_, t, k)| self.dedup.get(&(*t, k.clone())).cloned())
            .collect();
        let producers = self
            .producer_order
            .iter()
            .filter_map(|(_, t, id)| self.producers.get(&(*t, *id)).cloned())
            .collect();
        Checkpoint {
            shard: self.shard,
            seq: self.seq,
            last_append_ts: self.last_append_ts,
            next_offsets,
            dedup,
            producers,
            runs: Vec::new(),
            slices: Vec::new(),
        }
    }

    /// Record a producer's state (replacing what it had).
    fn set_producer(&mut self, r: ProducerRecord) {
        let k = (r.topic, r.id);
        if let Some(old) = self.producers.get(&k) {
            self.producer_order
                .remove(&(old.last_append_ts, old.topic, old.id));
        }
        self.producer_order
            .insert((r.last_append_ts, r.topic, r.id));
        self.producers.insert(k, r);
    }

    /// A producer's state on a topic, while it lasts.
    pub fn producer(&self, topic: TopicId, id: ProducerId) -> Option<&ProducerRecord> {
        self.producers.get(&(topic, id))
    }

    pub fn next_offset(&self, p: &PartitionId) -> u64 {
        self.next.get(p).copied().unwrap_or(0)
    }

    /// Move the head past `entry`, checking that it continues this head exactly.
    pub fn apply(&mut self, entry: &JournalEntry) -> Result<(), ApplyError> {
        if entry.seq != self.seq + 1 {
            return Err(ApplyError::OutOfOrder {
                head: self.seq,
                got: entry.seq,
            });
        }
        let mut next = HashMap::new();
        for (p, b) in entry.batches() {
            let expected = *next.get(&p).unwrap_or(&self.next_offset(&p));
            if b.base_offset != expected {
                return Err(ApplyError::OffsetGap {
                    seq: entry.seq,
                    partition: p,
                    got: b.base_offset,
                    expected,
                });
            }
            next.insert(p, b.end_offset());
        }
        self.next.extend(next);
        self.seq = entry.seq;
        self.last_append_ts = self.last_append_ts.max(entry.append_ts);
        for a in &entry.appends {
            let record = |key: Bytes| {
                dedup_record(
                    a.topic,
                    key,
                    entry.seq,
                    entry.append_ts,
                    a.partition_count,
                    &a.batches,
                )
            };
            if let Some(key) = &a.dedup_key {
                self.remember(record(key.clone()));
            }
            if let Some(st) = &a.producer {
                let key = route_key(a.dedup_key.as_ref(), Some(st)).unwrap_or_default();
                let r = advanced(
                    self.producers.get(&(a.topic, st.id)),
                    a.topic,
                    st,
                    record(key),
                    entry.append_ts,
                );
                self.set_producer(r);
            }
        }
        self.expire();
        Ok(())
    }

    fn remember(&mut self, d: DedupRecord) {
        let k = (d.topic, d.key.clone());
        if !self.dedup.contains_key(&k) {
            self.dedup_order
                .push_back((d.append_ts, d.topic, d.key.clone()));
            self.dedup.insert(k, d);
        }
    }

    /// Forget dedup keys older than the window, measured against the head's own append clock so
    /// every replica of this state forgets the same keys.
    fn expire(&mut self) {
        let horizon = self.last_append_ts - self.dedup_window_ms;
        while let Some((ts, t, k)) = self.dedup_order.front() {
            if *ts >= horizon {
                break;
            }
            self.dedup.remove(&(*t, k.clone()));
            self.dedup_order.pop_front();
        }
        let horizon = self.last_append_ts.saturating_sub(self.producer_window_ms);
        while let Some(&(ts, t, id)) = self.producer_order.first() {
            if ts >= horizon {
                break;
            }
            self.producers.remove(&(t, id));
            self.producer_order.pop_first();
        }
    }

    pub fn dedup(&self, topic: TopicId, key: &Bytes) -> Option<&DedupRecord> {
        self.dedup.get(&(topic, key.clone()))
    }

    /// Plan the commit of `pending` at `seq + 1`: duplicates answer from the dedup window (or
    /// from an earlier append of the same plan), the rest get offsets after the head. Returns
    /// the entry to write (`None` when everything was a duplicate) and one outcome per append.
    pub fn plan(
        &self,
        pending: &[PendingAppend],
        now_ms: i64,
        writer: [u8; 16],
    ) -> (Option<JournalEntry>, Vec<Outcome>) {
        let append_ts = self.last_append_ts.max(now_ms);
        let seq = self.seq + 1;
        let mut next: HashMap<PartitionId, u64> = HashMap::new();
        let mut in_plan: HashMap<(TopicId, Bytes), DedupRecord> = HashMap::new();
        let mut producers_in_plan: HashMap<(TopicId, ProducerId), ProducerRecord> = HashMap::new();
        let mut appends = Vec::new();
        let mut outcomes = Vec::with_capacity(pending.len());
        for p in pending {
            if let Some(key) = &p.dedup_key {
                let k = (p.topic, key.clone());
                if let Some(d) = self.dedup.get(&k).or_else(|| in_plan.get(&k)) {
                    outcomes.push(Outcome::Duplicate(d.clone()));
                    continue;
                }
            }
            if let Some(st) = &p.producer {
                let k = (p.topic, st.id);
                let cur = producers_in_plan.get(&k).or_else(|| self.producers.get(&k));
                match check_seq(cur, st) {
                    SeqCheck::New => {}
                    SeqCheck::Duplicate(d) => {
                        outcomes.push(Outcome::Duplicate(d));
                        continue;
                    }
                    SeqCheck::Refused(e) => {
                        outcomes.push(Outcome::Refused(e));
                        continue;
                    }
                }
            }
            let mut batches = p.batches.clone();
            for b in &mut batches {
                let pid = PartitionId {
                    topic: p.topic,
                    partition: b.partition,
                };
                let n = next.entry(pid).or_insert_with(|| self.next_offset(&pid));
                b.base_offset = *n;
                *n += b.record_count as u64;
            }
            let record = |key: Bytes| {
                dedup_record(p.topic, key, seq, append_ts, p.partition_count, &batches)
            };
            if let Some(key) = &p.dedup_key {
                in_plan.insert((p.topic, key.clone()), record(key.clone()));
            }
            if let Some(st) = &p.producer {
                let k = (p.topic, st.id);
                let key = route_key(p.dedup_key.as_ref(), Some(st)).unwrap_or_default();
                let cur = producers_in_plan.get(&k).or_else(|| self.producers.get(&k));
                let r = advanced(cur, p.topic, st, record(key), append_ts);
                producers_in_plan.insert(k, r);
            }
            appends.push(Append {
                topic: p.topic,
                partition_count: p.partition_count,
                dedup_key: p.dedup_key.clone(),
                batches: batches.clone(),
                producer: p.producer,
            });
            outcomes.push(Outcome::Committed { batches });
        }
        let entry = (!appends.is_empty()).then(|| JournalEntry {
            shard: self.shard,
            seq,
            append_ts,
            writer,
            appends,
        });
        (entry, outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ObjectId;

    fn pending(topic: TopicId, key: Option<&'static str>, parts: &[(u32, u32)]) -> PendingAppend {
        PendingAppend {
            topic,
            partition_count: 4,
            producer: None,
            dedup_key: key.map(|k| Bytes::from_static(k.as_bytes())),
            batches: parts
                .iter()
                .map(|&(partition, n)| BatchRef {
                    partition,
                    base_offset: 0,
                    record_count: n,
                    segment: ObjectId([0; 16]),
                    pos: 8,
                    len: 10,
                })
                .collect(),
        }
    }

    #[test]
    fn offsets_are_dense_and_dedup_answers_the_first_commit() {
        let t = TopicId([1; 16]);
        let mut h = HeadState::new(0, 600_000);
        let (e, out) = h.plan(
            &[
                pending(t, Some("a"), &[(0, 3), (1, 1)]),
                pending(t, None, &[(0, 2)]),
                pending(t, Some("a"), &[(0, 3), (1, 1)]),
            ],
            1_000,
            [0; 16],
        );
        let e = e.unwrap();
        assert_eq!(e.seq, 1);
        assert!(
            matches!(&out[2], Outcome::Duplicate(d) if d.batches == vec![(0, 0, 3), (1, 0, 1)])
        );
        match &out[1] {
            Outcome::Committed { batches } => assert_eq!(batches[0].base_offset, 3),
            o => panic!("{o:?}"),
        }
        h.apply(&e).unwrap();
        let p0 = PartitionId {
            topic: t,
            partition: 0,
        };
        assert_eq!(h.next_offset(&p0), 5);
        // A retry in a later flush is a duplicate too; time never goes backwards.
        let (e2, out2) = h.plan(&[pending(t, Some("a"), &[(0, 3)])], 500, [0; 16]);
        assert!(e2.is_none());
        assert!(matches!(out2[0], Outcome::Duplicate(_)));
        let (e3, _) = h.plan(&[pending(t, None, &[(0, 1)])], 500, [0; 16]);
        assert_eq!(e3.unwrap().append_ts, 1_000);
    }

    #[test]
    fn apply_rejects_gaps_and_reordering() {
        let t = TopicId([1; 16]);
        let mut h = HeadState::new(0, 1000);
        let (e, _) = h.plan(&[pending(t, None, &[(0, 2)])], 1, [0; 16]);
        let mut e = e.unwrap();
        let mut wrong = e.clone();
        wrong.seq = 2;
        assert!(matches!(
            h.apply(&wrong),
            Err(ApplyError::OutOfOrder { .. })
        ));
        e.appends[0].batches[0].base_offset = 1;
        assert!(matches!(h.apply(&e), Err(ApplyError::OffsetGap { .. })));
    }

    #[test]
    fn dedup_expires_by_append_clock_and_survives_checkpoints() {
        let t = TopicId([1; 16]);
        let mut h = HeadState::new(0, 1000);
        let (e, _) = h.plan(&[pending(t, Some("k"), &[(0, 1)])], 10_000, [0; 16]);
        h.apply(&e.unwrap()).unwrap();
        let cp = h.to_checkpoint();
        let restored = HeadState::from_checkpoint(&cp, 1000);
        assert!(restored.dedup(t, &Bytes::from_static(b"k")).is_some());
        assert_eq!(restored.to_checkpoint(), cp);
        let (e, _) = h.plan(&[pending(t, None, &[(0, 1)])], 11_001, [0; 16]);
        h.apply(&e.unwrap()).unwrap();
        assert!(h.dedup(t, &Bytes::from_static(b"k")).is_none());
    }

    fn produced(topic: TopicId, id: u8, epoch: u32, seq: u64) -> PendingAppend {
        PendingAppend {
            producer: Some(ProducerStamp {
                id: ProducerId([id; 16]),
                epoch,
                seq,
            }),
            ..pending(topic, None, &[(0, 1)])
        }
    }

    /// Plan and apply `pending` at `now`; the outcomes.
    fn commit(h: &mut HeadState, pending: &[PendingAppend], now: i64) -> Vec<Outcome> {
        let (e, out) = h.plan(pending, now, [0; 16]);
        if let Some(e) = e {
            h.apply(&e).unwrap();
        }
        out
    }

    fn offset(o: &Outcome) -> u64 {
        match o {
            Outcome::Committed { batches } => batches[0].base_offset,
            Outcome::Duplicate(d) => d.batches[0].1,
            Outcome::Refused(e) => panic!("refused: {e:?}"),
        }
    }

    #[test]
    fn producer_sequences_commit_once_in_order() {
        let t = TopicId([1; 16]);
        let mut h = HeadState::new(0, 600_000);
        // 0, 1 in one plan; 1 again in the same plan is a duplicate of the planned answer.
        let out = commit(
            &mut h,
            &[
                produced(t, 7, 0, 0),
                produced(t, 7, 0, 1),
                produced(t, 7, 0, 1),
            ],
            1_000,
        );
        assert!(matches!(out[0], Outcome::Committed { .. }));
        assert!(matches!(out[2], Outcome::Duplicate(_)));
        assert_eq!((offset(&out[1]), offset(&out[2])), (1, 1));
        for seq in 2..8 {
            let out = commit(&mut h, &[produced(t, 7, 0, seq)], 2_000);
            assert_eq!(offset(&out[0]), seq);
        }
        // The last 5 (3..=7) answer their first answer and write nothing.
        for seq in 3..8 {
            let (e, out) = h.plan(&[produced(t, 7, 0, seq)], 3_000, [0; 16]);
            assert!(e.is_none());
            assert!(matches!(&out[0], Outcome::Duplicate(d) if d.batches[0].1 == seq));
        }
        let refused = |seq| {
            let (e, out) = h.plan(&[produced(t, 7, 0, seq)], 3_000, [0; 16]);
            assert!(e.is_none());
            out[0].clone()
        };
        // Older than those 5, or a gap: out of order, expecting 8.
        for seq in [2, 0, 9, u64::MAX] {
            assert_eq!(
                refused(seq),
                Outcome::Refused(SeqError::OutOfOrder {
                    got: seq,
                    expected: 8
                })
            );
        }
        // Another producer, or the same on another topic, starts at 0.
        let out = commit(
            &mut h,
            &[produced(t, 8, 0, 0), produced(TopicId([2; 16]), 7, 0, 0)],
            4_000,
        );
        assert!(out.iter().all(|o| matches!(o, Outcome::Committed { .. })));
        assert!(matches!(
            h.plan(&[produced(t, 9, 0, 1)], 4_000, [0; 16]).1[0],
            Outcome::Refused(SeqError::OutOfOrder { expected: 0, .. })
        ));
    }

    #[test]
    fn a_new_epoch_restarts_at_zero_and_fences_the_old_one() {
        let t = TopicId([1; 16]);
        let mut h = HeadState::new(0, 600_000);
        commit(&mut h, &[produced(t, 7, 0, 0), produced(t, 7, 0, 1)], 1_000);
        assert!(matches!(
            h.plan(&[produced(t, 7, 1, 2)], 1_000, [0; 16]).1[0],
            Outcome::Refused(SeqError::OutOfOrder { expected: 0, .. })
        ));
        let out = commit(&mut h, &[produced(t, 7, 1, 0)], 2_000);
        assert_eq!(offset(&out[0]), 2);
        for seq in [0, 1, 2] {
            assert_eq!(
                h.plan(&[produced(t, 7, 0, seq)], 2_000, [0; 16]).1[0],
                Outcome::Refused(SeqError::Fenced {
                    epoch: 0,
                    current: 1
                })
            );
        }
        // The new epoch's own retry is still a duplicate.
        assert!(matches!(
            h.plan(&[produced(t, 7, 1, 0)], 2_000, [0; 16]).1[0],
            Outcome::Duplicate(_)
        ));
    }

    #[test]
    fn producer_state_survives_checkpoints_and_expires_after_its_window() {
        let t = TopicId([1; 16]);
        let day = 24 * 3600 * 1000;
        let mut h = HeadState::new(0, 600_000);
        commit(&mut h, &[produced(t, 7, 0, 0)], day);
        // Seven days of silence (other commits move the clock) keep it, restored or not.
        commit(&mut h, &[pending(t, None, &[(1, 1)])], 8 * day);
        let restored = HeadState::from_checkpoint(&h.to_checkpoint(), 600_000);
        assert_eq!(restored.to_checkpoint(), h.to_checkpoint());
        for state in [&h, &restored] {
            assert!(state.producer(t, ProducerId([7; 16])).is_some());
            assert!(matches!(
                state.plan(&[produced(t, 7, 0, 0)], 8 * day, [0; 16]).1[0],
                Outcome::Duplicate(_)
            ));
        }
        // Past the window it is forgotten (the idempotency keys went after 10 minutes).
        commit(&mut h, &[pending(t, None, &[(1, 1)])], 10 * day);
        assert!(h.producer(t, ProducerId([7; 16])).is_none());
        let short = HeadState::new(0, 600_000).with_producer_window(1_000);
        let mut short = short;
        commit(&mut short, &[produced(t, 7, 0, 0)], 1_000);
        commit(&mut short, &[pending(t, None, &[(1, 1)])], 2_001);
        assert!(short.producer(t, ProducerId([7; 16])).is_none());
    }

    #[test]
    fn keyless_records_of_a_producer_route_by_its_sequence() {
        let st = |seq| ProducerStamp {
            id: ProducerId([7; 16]),
            epoch: 1,
            seq,
        };
        assert_eq!(route_key(None, Some(&st(3))), route_key(None, Some(&st(3))));
        assert_ne!(route_key(None, Some(&st(3))), route_key(None, Some(&st(4))));
        let k = Bytes::from_static(b"idem");
        assert_eq!(route_key(Some(&k), Some(&st(3))), Some(k));
        assert_eq!(route_key(None, None), None);
    }
}
