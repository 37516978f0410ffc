//! The head state of one journal shard and the pure logic of a commit: which appends are
//! duplicates, which offsets the rest get, and how a committed entry moves the head.

use crate::format::checkpoint::{Checkpoint, DedupRecord};
use crate::format::journal::{Append, BatchRef, JournalEntry};
use crate::ids::{PartitionId, TopicId};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

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
}

/// What the commit decided for one pending append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed now: the batches with their base offsets.
    Committed { batches: Vec<BatchRef> },
    /// Already committed earlier (same dedup key): the earlier answer.
    Duplicate(DedupRecord),
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
        }
    }

    pub fn from_checkpoint(cp: &Checkpoint, dedup_window_ms: i64) -> Self {
        let mut s = Self::new(cp.shard, dedup_window_ms);
        s.seq = cp.seq;
        s.last_append_ts = cp.last_append_ts;
        s.next = cp.next_offsets.iter().copied().collect();
        for d in &cp.dedup {
            s.remember(d.clone());
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
        Checkpoint {
            shard: self.shard,
            seq: self.seq,
            last_append_ts: self.last_append_ts,
            next_offsets,
            dedup,
        }
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
            if let Some(key) = &a.dedup_key {
                self.remember(DedupRecord {
                    topic: a.topic,
                    key: key.clone(),
                    seq: entry.seq,
                    append_ts: entry.append_ts,
                    partition_count: a.partition_count,
                    batches: a
                        .batches
                        .iter()
                        .map(|b| (b.partition, b.base_offset, b.record_count))
                        .collect(),
                });
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
            if let Some(key) = &p.dedup_key {
                in_plan.insert(
                    (p.topic, key.clone()),
                    DedupRecord {
                        topic: p.topic,
                        key: key.clone(),
                        seq,
                        append_ts,
                        partition_count: p.partition_count,
                        batches: batches
                            .iter()
                            .map(|b| (b.partition, b.base_offset, b.record_count))
                            .collect(),
                    },
                );
            }
            appends.push(Append {
                topic: p.topic,
                partition_count: p.partition_count,
                dedup_key: p.dedup_key.clone(),
                batches: batches.clone(),
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
}
