//! Checkpoint: the full head state of a journal shard after entry `seq`, written by the
//! compactor at `checkpoints/{shard:05}/{seq:020}` once every batch up to `seq` is indexed.
//! Writers and readers start from the newest checkpoint instead of replaying the journal.
//!
//! ```text
//! envelope("SLCP", version 1, body)
//! body      := shard u32 | seq u64 | last_append_ts i64
//!              | partition_count u32 | (topic_id [16] | partition u32 | next_offset u64)*
//!              | dedup_count u32 | dedup*
//! dedup     := topic_id [16] | key (u16 len + bytes) | seq u64 | append_ts i64
//!              | partition_count u32 | batch_count u32
//!              | (partition u32 | base_offset u64 | record_count u32)*
//! ```

use crate::codec::{invalid, open, put_bytes16, seal, Cursor, DecodeResult};
use crate::ids::{PartitionId, TopicId};
use bytes::{BufMut, Bytes, BytesMut};

pub const CHECKPOINT_MAGIC: [u8; 4] = *b"SLCP";
pub const CHECKPOINT_VERSION: u16 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub shard: u32,
    pub seq: u64,
    pub last_append_ts: i64,
    /// Next offset of every partition that has ever been written, sorted.
    pub next_offsets: Vec<(PartitionId, u64)>,
    /// Idempotency records still inside the dedup window, oldest first.
    pub dedup: Vec<DedupRecord>,
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
            b.put_slice(&d.topic.0);
            put_bytes16(&mut b, &d.key);
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
        seal(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, &b)
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let (_v, body) = open(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, bytes)?;
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
        let mut dedup = Vec::with_capacity(n);
        for _ in 0..n {
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
            dedup.push(DedupRecord {
                topic,
                key,
                seq,
                append_ts,
                partition_count,
                batches,
            });
        }
        c.finish()?;
        Ok(Self {
            shard,
            seq,
            last_append_ts,
            next_offsets,
            dedup,
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

    #[test]
    fn bytes_are_pinned() {
        let hex: String = sample_checkpoint()
            .encode()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "534c43500100000077000000020000000700000000000000e8030000000000000100000001010101010101010101010101010101030000001404000000000000010000000101010101010101010101010101010105007265712d310700000000000000e80300000000000004000000010000000300000012040000000000000200000073cf50c7"
        );
    }
}
