//! Checkpoint: the full head state of a journal shard after entry `seq`, written by the
//! compactor at `checkpoints/{shard:05}/{seq:020}` once every batch up to `seq` is indexed.
//! Writers and readers start from the newest checkpoint instead of replaying the journal.
//!
//! ```text
//! envelope("SLCP", version 3, body)
//! body      := shard u32 | seq u64 | last_append_ts i64
//!              | partition_count u32 | (topic_id [16] | partition u32 | next_offset u64)*
//!              | dedup_count u32 | dedup*
//!              | producer_count u32 | producer*             -- version 2 and later
//!              | run_count u32 | run*                        -- version 3 only
//!              | slice_count u32 | slice*                    -- version 3 only
//! dedup     := topic_id [16] | key (u16 len + bytes, not empty) | seq u64 | append_ts i64
//!              | partition_count u32 | batch_count u32
//!              | (partition u32 | base_offset u64 | record_count u32)*
//! producer  := topic_id [16] | producer_id [16] | epoch u32 | last_append_ts i64
//!              | recent_count u8 | (producer_seq u64 | dedup)*   -- oldest first, 1 to 5
//! run       := run_id [16] | level u8 | len u64
//! slice     := topic_id [16] | partition u32 | run u32 (index into the runs)
//!              | base u64 | end u64 | min_ts i64 | max_ts i64 | pos u64 | index_len u32 | len u32
//! ```
//! Version 1 checkpoints decode with no producers, versions 1 and 2 with no runs.
//!
//! The runs and slices are the directory of the shard's shared runs (`run.rs`): the offsets
//! `base..end` of a partition live in the slice `pos .. pos + len` of run `runs/{shard}/{run}`.
//! Slices are sorted by (topic, partition, base), dense per partition (each starts where the
//! previous one of its partition ended), end at most at the partition's next offset, and lie
//! inside their run; every run is named by a slice. Offsets of a partition below its first
//! slice are in its own index objects.

use crate::codec::{invalid, open, put_bytes16, seal, Cursor, DecodeResult};
use crate::ids::{ObjectId, PartitionId, ProducerId, TopicId};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{HashMap, HashSet};

pub const CHECKPOINT_MAGIC: [u8; 4] = *b"SLCP";
pub const CHECKPOINT_VERSION: u16 = 3;
/// Most recent sequences a producer's state keeps answers for (the contract's "last 5").
pub const PRODUCER_RECENT: usize = 5;

// The fewest bytes one element of each list takes, to bound counts (`Cursor::count`). The same
// in every version.
/// A partition's next offset: topic_id 16 + partition 4 + next_offset 8.
const PARTITION_BYTES: usize = 16 + 4 + 8;
/// A dedup record's batch: partition 4 + base_offset 8 + record_count 4.
const DEDUP_BATCH_BYTES: usize = 4 + 8 + 4;
/// A dedup record: topic_id 16 + key length 2 + a 1-byte key (an empty one is refused)
/// + seq 8 + append_ts 8 + partition_count 4 + batch_count 4, no batch.
const MIN_DEDUP_BYTES: usize = 16 + 2 + 1 + 8 + 8 + 4 + 4;
/// A producer: topic_id 16 + producer_id 16 + epoch 4 + last_append_ts 8 + recent_count 1
/// + the one answer it must have (producer_seq 8 + a dedup record).
const MIN_PRODUCER_BYTES: usize = 16 + 16 + 4 + 8 + 1 + 8 + MIN_DEDUP_BYTES;
/// A run: run_id 16 + level 1 + len 8.
const RUN_BYTES: usize = 16 + 1 + 8;
/// A slice: topic_id 16 + partition 4 + run 4 + base 8 + end 8 + min_ts 8 + max_ts 8 + pos 8
/// + index_len 4 + len 4.
const SLICE_BYTES: usize = 16 + 4 + 4 + 8 + 8 + 8 + 8 + 8 + 4 + 4;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub shard: u32,
    pub seq: u64,
    pub last_append_ts: i64,
    /// Next offset of every partition that has ever been written, sorted.
    pub next_offsets: Vec<(PartitionId, u64)>,
    /// Idempotency records still inside the dedup window, oldest first.
    pub dedup: Vec<DedupRecord>,
    /// Idempotent producers' state per topic of this shard, still inside the producer window.
    pub producers: Vec<ProducerRecord>,
    /// The shard's live shared runs (version 3).
    pub runs: Vec<RunRef>,
    /// Where the offsets held in shared runs are, sorted by (partition, base) (version 3).
    pub slices: Vec<Slice>,
}

/// One shared run of the shard: `runs/{shard:05}/{id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunRef {
    pub id: ObjectId,
    /// 0 for a run one pass wrote; a merge of runs of level L writes one of level L + 1.
    pub level: u8,
    /// The run's length in bytes.
    pub len: u64,
}

/// The records `base..end` of one partition, held in a shared run at `pos .. pos + len`
/// (the slice's index object, `index_len` bytes, then its frames).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    pub partition: PartitionId,
    pub run: ObjectId,
    pub base: u64,
    pub end: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub pos: u64,
    pub index_len: u32,
    pub len: u32,
}

/// One idempotent producer on one topic: its epoch and the answers to its last sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: TopicId,
    pub id: ProducerId,
    pub epoch: u32,
    /// Append timestamp of its last commit (the state expires after a window of silence).
    pub last_append_ts: i64,
    /// (producer sequence, its first answer), oldest first, consecutive, at most 5.
    pub recent: Vec<(u64, DedupRecord)>,
}

fn put_dedup(b: &mut BytesMut, d: &DedupRecord) {
    b.put_slice(&d.topic.0);
    put_bytes16(b, &d.key);
    b.put_u64_le(d.seq);
    b.put_i64_le(d.append_ts);
    b.put_u32_le(d.partition_count);
    b.put_u32_le(d.batches.len() as u32);
    for (p, base, n) in &d.batches {
        b.put_u32_le(*p);
        b.put_u64_le(*base);
        b.put_u32_le(*n);
    }
}

fn dedup(c: &mut Cursor<'_>) -> DecodeResult<DedupRecord> {
    let topic = TopicId(c.array()?);
    let key = c.bytes16()?;
    if key.is_empty() {
        return Err(invalid("checkpoint.dedup.key", "empty"));
    }
    let key = Bytes::copy_from_slice(key);
    let seq = c.u64()?;
    let append_ts = c.i64()?;
    let partition_count = c.u32()?;
    let nb = c.count("checkpoint.dedup.batches", DEDUP_BATCH_BYTES)?;
    let mut batches = Vec::with_capacity(nb);
    for _ in 0..nb {
        batches.push((c.u32()?, c.u64()?, c.u32()?));
    }
    Ok(DedupRecord {
        topic,
        key,
        seq,
        append_ts,
        partition_count,
        batches,
    })
}

/// What a committed idempotent append answered, so a retry can answer the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DedupRecord {
    pub topic: TopicId,
    pub key: Bytes,
    pub seq: u64,
    pub append_ts: i64,
    pub partition_count: u32,
    /// (partition, base_offset, record_count) per batch of the append.
    pub batches: Vec<(u32, u64, u32)>,
}

impl Checkpoint {
    /// The partition's next offset as of this checkpoint (`None`: never written).
    pub fn next_offset(&self, p: &PartitionId) -> Option<u64> {
        self.next_offsets
            .binary_search_by(|(q, _)| q.cmp(p))
            .ok()
            .map(|i| self.next_offsets[i].1)
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u32_le(self.shard);
        b.put_u64_le(self.seq);
        b.put_i64_le(self.last_append_ts);
        b.put_u32_le(self.next_offsets.len() as u32);
        for (p, next) in &self.next_offsets {
            b.put_slice(&p.topic.0);
            b.put_u32_le(p.partition);
            b.put_u64_le(*next);
        }
        b.put_u32_le(self.dedup.len() as u32);
        for d in &self.dedup {
            put_dedup(&mut b, d);
        }
        b.put_u32_le(self.producers.len() as u32);
        for p in &self.producers {
            b.put_slice(&p.topic.0);
            b.put_slice(&p.id.0);
            b.put_u32_le(p.epoch);
            b.put_i64_le(p.last_append_ts);
            b.put_u8(p.recent.len() as u8);
            for (seq, d) in &p.recent {
                b.put_u64_le(*seq);
                put_dedup(&mut b, d);
            }
        }
        b.put_u32_le(self.runs.len() as u32);
        for r in &self.runs {
            b.put_slice(&r.id.0);
            b.put_u8(r.level);
            b.put_u64_le(r.len);
        }
        let run_index: HashMap<ObjectId, u32> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id, i as u32))
            .collect();
        b.put_u32_le(self.slices.len() as u32);
        for s in &self.slices {
            b.put_slice(&s.partition.topic.0);
            b.put_u32_le(s.partition.partition);
            // A slice of an unlisted run is a bug of the writer: encoded as an index the
            // decoder rejects rather than silently pointing at another run.
            b.put_u32_le(run_index.get(&s.run).copied().unwrap_or(u32::MAX));
            b.put_u64_le(s.base);
            b.put_u64_le(s.end);
            b.put_i64_le(s.min_ts);
            b.put_i64_le(s.max_ts);
            b.put_u64_le(s.pos);
            b.put_u32_le(s.index_len);
            b.put_u32_le(s.len);
        }
        seal(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, &b)
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let (version, body) = open(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, bytes)?;
        let mut c = Cursor::new(body);
        let shard = c.u32()?;
        let seq = c.u64()?;
        let last_append_ts = c.i64()?;
        let n = c.count("checkpoint.partitions", PARTITION_BYTES)?;
        let mut next_offsets = Vec::with_capacity(n);
        for _ in 0..n {
            let p = PartitionId {
                topic: TopicId(c.array()?),
                partition: c.u32()?,
            };
            next_offsets.push((p, c.u64()?));
        }
        let n = c.count("checkpoint.dedup", MIN_DEDUP_BYTES)?;
        let mut dedups = Vec::with_capacity(n);
        for _ in 0..n {
            dedups.push(dedup(&mut c)?);
        }
        let mut producers = Vec::new();
        if version >= 2 {
            let n = c.count("checkpoint.producers", MIN_PRODUCER_BYTES)?;
            producers.reserve(n);
            for _ in 0..n {
                let topic = TopicId(c.array()?);
                let id = ProducerId(c.array()?);
                let epoch = c.u32()?;
                let last_append_ts = c.i64()?;
                let nr = c.u8()? as usize;
                if nr == 0 || nr > PRODUCER_RECENT {
                    return Err(invalid("checkpoint.producer.recent", "not 1 to 5 answers"));
                }
                let mut recent: Vec<(u64, DedupRecord)> = Vec::with_capacity(nr);
                for _ in 0..nr {
                    let seq = c.u64()?;
                    if recent
                        .last()
                        .is_some_and(|(prev, _)| prev.checked_add(1) != Some(seq))
                    {
                        return Err(invalid("checkpoint.producer.recent", "not consecutive"));
                    }
                    recent.push((seq, dedup(&mut c)?));
                }
                producers.push(ProducerRecord {
                    topic,
                    id,
                    epoch,
                    last_append_ts,
                    recent,
                });
            }
        }
        let (mut runs, mut slices) = (Vec::new(), Vec::new());
        if version >= 3 {
            let n = c.count("checkpoint.runs", RUN_BYTES)?;
            runs.reserve(n);
            for _ in 0..n {
                runs.push(RunRef {
                    id: ObjectId(c.array()?),
                    level: c.u8()?,
                    len: c.u64()?,
                });
            }
            let n = c.count("checkpoint.slices", SLICE_BYTES)?;
            slices.reserve(n);
            for _ in 0..n {
                let partition = PartitionId {
                    topic: TopicId(c.array()?),
                    partition: c.u32()?,
                };
                let run = c.u32()? as usize;
                let run = runs
                    .get(run)
                    .ok_or_else(|| invalid("checkpoint.slice.run", "no such run"))?;
                let s = Slice {
                    partition,
                    run: run.id,
                    base: c.u64()?,
                    end: c.u64()?,
                    min_ts: c.i64()?,
                    max_ts: c.i64()?,
                    pos: c.u64()?,
                    index_len: c.u32()?,
                    len: c.u32()?,
                };
                let inside = s
                    .pos
                    .checked_add(s.len as u64)
                    .is_some_and(|e| e <= run.len && s.pos >= 8);
                if s.base >= s.end || s.min_ts > s.max_ts || s.index_len >= s.len || !inside {
                    return Err(invalid(
                        "checkpoint.slice",
                        "empty, inverted or outside its run",
                    ));
                }
                if let Some(prev) = slices.last() {
                    let prev: &Slice = prev;
                    if prev.partition > s.partition
                        || (prev.partition == s.partition
                            && (prev.end != s.base || prev.max_ts > s.min_ts))
                    {
                        return Err(invalid("checkpoint.slices", "not sorted and dense"));
                    }
                }
                slices.push(s);
            }
        }
        c.finish()?;
        let dedup = dedups;
        let cp = Self {
            shard,
            seq,
            last_append_ts,
            next_offsets,
            dedup,
            producers,
            runs,
            slices,
        };
        for s in &cp.slices {
            if cp.next_offset(&s.partition).is_none_or(|n| s.end > n) {
                return Err(invalid(
                    "checkpoint.slice.end",
                    "past the partition's next offset",
                ));
            }
        }
        let named: HashSet<ObjectId> = cp.slices.iter().map(|s| s.run).collect();
        if named.len() != cp.runs.len() {
            return Err(invalid(
                "checkpoint.runs",
                "a run no slice names, or named twice",
            ));
        }
        Ok(cp)
    }
}

#[cfg(test)]
pub(crate) fn sample_checkpoint() -> Checkpoint {
    let t = TopicId([1; 16]);
    Checkpoint {
        shard: 2,
        seq: 7,
        last_append_ts: 1_000,
        next_offsets: vec![(
            PartitionId {
                topic: t,
                partition: 3,
            },
            1044,
        )],
        dedup: vec![DedupRecord {
            topic: t,
            key: Bytes::from_static(b"req-1"),
            seq: 7,
            append_ts: 1_000,
            partition_count: 4,
            batches: vec![(3, 1042, 2)],
        }],
        producers: vec![ProducerRecord {
            topic: t,
            id: ProducerId([6; 16]),
            epoch: 2,
            last_append_ts: 1_000,
            recent: vec![(
                41,
                DedupRecord {
                    topic: t,
                    key: Bytes::from_static(b"producer-route"),
                    seq: 7,
                    append_ts: 1_000,
                    partition_count: 4,
                    batches: vec![(1, 10, 1)],
                },
            )],
        }],
        runs: vec![RunRef {
            id: ObjectId([9; 16]),
            level: 0,
            len: 4096,
        }],
        slices: vec![Slice {
            partition: PartitionId {
                topic: t,
                partition: 3,
            },
            run: ObjectId([9; 16]),
            base: 1000,
            end: 1042,
            min_ts: 900,
            max_ts: 990,
            pos: 8,
            index_len: 60,
            len: 400,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = sample_checkpoint();
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }

    /// A version 1 checkpoint as the compactor wrote it before producer state: still decodes.
    const V1: &str = "534c43500100000077000000020000000700000000000000e8030000000000000100000001010101010101010101010101010101030000001404000000000000010000000101010101010101010101010101010105007265712d310700000000000000e80300000000000004000000010000000300000012040000000000000200000073cf50c7";

    #[test]
    fn version_1_bytes_still_decode() {
        let bytes = crate::format::hex::bytes(V1);
        let want = Checkpoint {
            producers: Vec::new(),
            runs: Vec::new(),
            slices: Vec::new(),
            ..sample_checkpoint()
        };
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), want);
    }

    /// A version 2 checkpoint (producers, no shared runs): still decodes.
    const V2: &str = "534c435002000000f8000000020000000700000000000000e8030000000000000100000001010101010101010101010101010101030000001404000000000000010000000101010101010101010101010101010105007265712d310700000000000000e80300000000000004000000010000000300000012040000000000000200000001000000010101010101010101010101010101010606060606060606060606060606060602000000e803000000000000012900000000000000010101010101010101010101010101010e0070726f64756365722d726f7574650700000000000000e8030000000000000400000001000000010000000a00000000000000010000005458f952";

    #[test]
    fn version_2_bytes_still_decode() {
        let want = Checkpoint {
            runs: Vec::new(),
            slices: Vec::new(),
            ..sample_checkpoint()
        };
        let bytes = crate::format::hex::bytes(V2);
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), want);
    }

    #[test]
    fn slices_must_be_sorted_dense_inside_their_run_and_named() {
        let c = sample_checkpoint();
        let mut second = c.slices[0];
        second.base = 1042;
        second.end = 1044;
        second.min_ts = 995;
        second.max_ts = 999;
        second.pos = 408;
        let ok = Checkpoint {
            slices: vec![c.slices[0], second],
            ..c.clone()
        };
        assert_eq!(Checkpoint::decode(&ok.encode()).unwrap(), ok);
        let mut gap = ok.clone();
        gap.slices[1].base = 1043;
        assert!(Checkpoint::decode(&gap.encode()).is_err());
        let mut past_end = ok.clone();
        past_end.slices[1].end = 1045;
        assert!(Checkpoint::decode(&past_end.encode()).is_err());
        let mut outside = ok.clone();
        outside.slices[1].pos = 4000;
        assert!(Checkpoint::decode(&outside.encode()).is_err());
        let mut unnamed = c.clone();
        unnamed.runs.push(RunRef {
            id: ObjectId([8; 16]),
            level: 1,
            len: 10,
        });
        assert!(Checkpoint::decode(&unnamed.encode()).is_err());
        let mut unknown_run = c.clone();
        unknown_run.slices[0].run = ObjectId([7; 16]);
        assert!(Checkpoint::decode(&unknown_run.encode()).is_err());
    }

    #[test]
    fn bytes_are_pinned() {
        assert_eq!(crate::format::hex::of(&sample_checkpoint().encode()),
            "534c43500300000061010000020000000700000000000000e8030000000000000100000001010101010101010101010101010101030000001404000000000000010000000101010101010101010101010101010105007265712d310700000000000000e80300000000000004000000010000000300000012040000000000000200000001000000010101010101010101010101010101010606060606060606060606060606060602000000e803000000000000012900000000000000010101010101010101010101010101010e0070726f64756365722d726f7574650700000000000000e8030000000000000400000001000000010000000a0000000000000001000000010000000909090909090909090909090909090900001000000000000001000000010101010101010101010101010101010300000000000000e80300000000000012040000000000008403000000000000de0300000000000008000000000000003c00000090010000f45f70a7"
        );
    }

    // In the current version the partitions are followed by 4 more counts (16 bytes), the
    // dedup records by 3 (12 bytes), the producers by 2 (8 bytes) and the slices by nothing: each
    // test below has enough of the smallest elements (k elements of m bytes, k * m + tail <
    // k * (m + 1)) that a bound one byte above the true minimum refuses its checkpoint.

    fn smallest_dedup(i: u8) -> DedupRecord {
        DedupRecord {
            topic: TopicId([1; 16]),
            key: Bytes::copy_from_slice(&[i]),
            seq: 0,
            append_ts: 0,
            partition_count: 1,
            batches: Vec::new(),
        }
    }

    fn partition(p: u32) -> PartitionId {
        PartitionId {
            topic: TopicId([1; 16]),
            partition: p,
        }
    }

    #[test]
    fn the_smallest_partitions_decode() {
        // 20 * 28 + 16 = 576 < 20 * 29.
        let c = Checkpoint {
            next_offsets: (0..20).map(|p| (partition(p), 0)).collect(),
            ..Checkpoint::default()
        };
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn the_smallest_dedup_records_decode() {
        // A 1-byte key and no batch: 16 * 43 + 12 = 700 < 16 * 44.
        let c = Checkpoint {
            dedup: (0..16).map(smallest_dedup).collect(),
            ..Checkpoint::default()
        };
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn the_smallest_dedup_batches_decode() {
        // 16 * 16 + 12 = 268 < 16 * 17.
        let c = Checkpoint {
            dedup: vec![DedupRecord {
                batches: (0..16).map(|i| (0, i, 1)).collect(),
                ..smallest_dedup(0)
            }],
            ..Checkpoint::default()
        };
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn the_smallest_producers_decode() {
        // One answer with the smallest dedup record: 10 * 96 + 8 = 968 < 10 * 97.
        let c = Checkpoint {
            producers: (0..10)
                .map(|i| ProducerRecord {
                    topic: TopicId([1; 16]),
                    id: ProducerId([i; 16]),
                    epoch: 0,
                    last_append_ts: 0,
                    recent: vec![(0, smallest_dedup(i))],
                })
                .collect(),
            ..Checkpoint::default()
        };
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }

    /// `runs` runs of `slices_per_run` slices each, all of partition 0, slice `i` holding
    /// offset `i` in one byte.
    fn smallest_slices(runs: u8, slices_per_run: u8) -> Checkpoint {
        let n = runs as u64 * slices_per_run as u64;
        let slices = (0..n)
            .map(|i| Slice {
                partition: partition(0),
                run: ObjectId([(i / slices_per_run as u64) as u8; 16]),
                base: i,
                end: i + 1,
                min_ts: 0,
                max_ts: 0,
                pos: 8 + i % slices_per_run as u64,
                index_len: 0,
                len: 1,
            })
            .collect();
        Checkpoint {
            next_offsets: vec![(partition(0), n)],
            runs: (0..runs)
                .map(|r| RunRef {
                    id: ObjectId([r; 16]),
                    level: 0,
                    len: 8 + slices_per_run as u64,
                })
                .collect(),
            slices,
            ..Checkpoint::default()
        }
    }

    #[test]
    fn the_smallest_runs_decode() {
        // Every run must be named by a slice, and the slices follow the runs, so no decodable
        // checkpoint has runs close to the bound: this only checks the smallest runs decode.
        let c = smallest_slices(3, 1);
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn the_smallest_slices_decode() {
        // Nothing follows the slices: 3 * 72 = 216 < 3 * 73.
        let c = smallest_slices(1, 3);
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn producer_answers_must_be_consecutive() {
        let mut c = sample_checkpoint();
        let second = (43, c.producers[0].recent[0].1.clone());
        c.producers[0].recent.push(second);
        assert!(Checkpoint::decode(&c.encode()).is_err());
        c.producers[0].recent[1].0 = 42;
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }
}
