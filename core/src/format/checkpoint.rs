//! Checkpoint: the full head state of a journal shard after entry `seq`, written by the
//! compactor at `checkpoints/{shard:05}/{seq:020}` once every batch up to `seq` is indexed.
//! Writers and readers start from the newest checkpoint instead of replaying the journal.
//!
//! ```text
//! envelope("SLCP", version 2, body)
//! body      := shard u32 | seq u64 | last_append_ts i64
//!              | partition_count u32 | (topic_id [16] | partition u32 | next_offset u64)*
//!              | dedup_count u32 | dedup*
//!              | producer_count u32 | producer*             -- version 2 only
//! dedup     := topic_id [16] | key (u16 len + bytes) | seq u64 | append_ts i64
//!              | partition_count u32 | batch_count u32
//!              | (partition u32 | base_offset u64 | record_count u32)*
//! producer  := topic_id [16] | producer_id [16] | epoch u32 | last_append_ts i64
//!              | recent_count u8 | (producer_seq u64 | dedup)*   -- oldest first, at most 5
//! ```
//! Version 1 checkpoints decode with no producers.

use crate::codec::{invalid, open, put_bytes16, seal, Cursor, DecodeResult};
use crate::ids::{PartitionId, ProducerId, TopicId};
use bytes::{BufMut, Bytes, BytesMut};

pub const CHECKPOINT_MAGIC: [u8; 4] = *b"SLCP";
pub const CHECKPOINT_VERSION: u16 = 2;
/// Most recent sequences a producer's state keeps answers for (the contract's "last 5").
pub const PRODUCER_RECENT: usize = 5;

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
    let nb = c.count("checkpoint.dedup.batches", 16)?;
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
        seal(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, &b)
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let (version, body) = open(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, bytes)?;
        let mut c = Cursor::new(body);
        let shard = c.u32()?;
        let seq = c.u64()?;
        let last_append_ts = c.i64()?;
        let n = c.count("checkpoint.partitions", 28)?;
        let mut next_offsets = Vec::with_capacity(n);
        for _ in 0..n {
            let p = PartitionId {
                topic: TopicId(c.array()?),
                partition: c.u32()?,
            };
            next_offsets.push((p, c.u64()?));
        }
        let n = c.count("checkpoint.dedup", 46)?;
        let mut dedups = Vec::with_capacity(n);
        for _ in 0..n {
            dedups.push(dedup(&mut c)?);
        }
        let mut producers = Vec::new();
        if version >= 2 {
            let n = c.count("checkpoint.producers", 49)?;
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
        c.finish()?;
        let dedup = dedups;
        Ok(Self {
            shard,
            seq,
            last_append_ts,
            next_offsets,
            dedup,
            producers,
        })
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
            ..sample_checkpoint()
        };
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), want);
    }

    #[test]
    fn bytes_are_pinned() {
        assert_eq!(crate::format::hex::of(&sample_checkpoint().encode()),
            "534c435002000000f8000000020000000700000000000000e8030000000000000100000001010101010101010101010101010101030000001404000000000000010000000101010101010101010101010101010105007265712d310700000000000000e80300000000000004000000010000000300000012040000000000000200000001000000010101010101010101010101010101010606060606060606060606060606060602000000e803000000000000012900000000000000010101010101010101010101010101010e0070726f64756365722d726f7574650700000000000000e8030000000000000400000001000000010000000a00000000000000010000005458f952"
        );
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
