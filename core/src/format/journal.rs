//! Journal entry: one commit to one journal shard, at key `journal/{shard:05}/{seq:020}`.
//! Written create-only; the writer that creates `seq` owns the offsets it assigns.
//!
//! ```text
//! envelope("SLJE", version 2, body)          (see crate::codec)
//! body   := shard u32 | seq u64 | append_ts i64 | writer [16]
//!           | append_count u32 | append*
//! append := topic_id [16] | partition_count u32 | dedup_key (u16 len + bytes)
//!           | batch_count u32 | batch* | producer          -- producer: version 2 only
//! batch  := partition u32 | base_offset u64 | record_count u32
//!           | segment [16] | pos u64 | len u32
//! producer := 0 u8 | 1 u8 | producer_id [16] | epoch u32 | producer_seq u64
//! ```
//! One append is one produce request: its batches (one per partition it touched) commit
//! together, and its dedup key (empty = none) makes a retry answer with the same offsets. An
//! idempotent producer's request carries its id, epoch and sequence number (version 1 entries
//! decode with none).

use crate::codec::{invalid, open, put_bytes16, seal, Cursor, DecodeResult};
use crate::ids::{ObjectId, PartitionId, ProducerId, TopicId};
use bytes::{BufMut, Bytes, BytesMut};

pub const JOURNAL_MAGIC: [u8; 4] = *b"SLJE";
pub const JOURNAL_VERSION: u16 = 2;

/// The fewest bytes an append takes, in version 1: topic_id 16 + partition_count 4 + an empty
/// dedup key (its u16 length) 2 + batch_count 4, no batch (version 2 adds a producer flag byte).
const MIN_APPEND_BYTES: usize = 16 + 4 + 2 + 4;
/// Bytes of one batch (all fixed width): partition 4 + base_offset 8 + record_count 4
/// + segment 16 + pos 8 + len 4.
const BATCH_BYTES: usize = 4 + 8 + 4 + 16 + 8 + 4;

/// An idempotent producer's request: who, which epoch, which sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProducerStamp {
    pub id: ProducerId,
    pub epoch: u32,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub shard: u32,
    pub seq: u64,
    /// Append timestamp of every record in this entry; non-decreasing along a shard.
    pub append_ts: i64,
    /// Which writer instance committed it (diagnostics, and recognising our own lost write).
    pub writer: [u8; 16],
    pub appends: Vec<Append>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    pub topic: TopicId,
    /// Partition count the producer's records were assigned with (to recompute a retry's answer).
    pub partition_count: u32,
    pub dedup_key: Option<Bytes>,
    pub batches: Vec<BatchRef>,
    pub producer: Option<ProducerStamp>,
}

/// Where one batch of records lives and which offsets it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchRef {
    pub partition: u32,
    pub base_offset: u64,
    pub record_count: u32,
    pub segment: ObjectId,
    pub pos: u64,
    pub len: u32,
}

impl BatchRef {
    pub fn end_offset(&self) -> u64 {
        self.base_offset + self.record_count as u64
    }
}

impl JournalEntry {
    /// Every batch with its partition id, in commit order.
    pub fn batches(&self) -> impl Iterator<Item = (PartitionId, &BatchRef)> {
        self.appends.iter().flat_map(|a| {
            a.batches.iter().map(move |b| {
                (
                    PartitionId {
                        topic: a.topic,
                        partition: b.partition,
                    },
                    b,
                )
            })
        })
    }

    pub fn encode(&self) -> Bytes {
        self.encode_as(JOURNAL_VERSION)
    }

    /// Encode as `version`: 1 has no producer stamps (tests pin that older layout with it).
    fn encode_as(&self, version: u16) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u32_le(self.shard);
        b.put_u64_le(self.seq);
        b.put_i64_le(self.append_ts);
        b.put_slice(&self.writer);
        b.put_u32_le(self.appends.len() as u32);
        for a in &self.appends {
            b.put_slice(&a.topic.0);
            b.put_u32_le(a.partition_count);
            put_bytes16(&mut b, a.dedup_key.as_deref().unwrap_or_default());
            b.put_u32_le(a.batches.len() as u32);
            for x in &a.batches {
                b.put_u32_le(x.partition);
                b.put_u64_le(x.base_offset);
                b.put_u32_le(x.record_count);
                b.put_slice(&x.segment.0);
                b.put_u64_le(x.pos);
                b.put_u32_le(x.len);
            }
            match &a.producer {
                _ if version < 2 => {}
                None => b.put_u8(0),
                Some(p) => {
                    b.put_u8(1);
                    b.put_slice(&p.id.0);
                    b.put_u32_le(p.epoch);
                    b.put_u64_le(p.seq);
                }
            }
        }
        seal(JOURNAL_MAGIC, version, &b)
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let (version, body) = open(JOURNAL_MAGIC, JOURNAL_VERSION, bytes)?;
        let mut c = Cursor::new(body);
        let shard = c.u32()?;
        let seq = c.u64()?;
        let append_ts = c.i64()?;
        let writer = c.array()?;
        let n = c.count("journal.appends", MIN_APPEND_BYTES)?;
        let mut appends = Vec::with_capacity(n);
        for _ in 0..n {
            let topic = TopicId(c.array()?);
            let partition_count = c.u32()?;
            if partition_count == 0 {
                return Err(invalid("journal.partition_count", "zero"));
            }
            let key = c.bytes16()?;
            let dedup_key = (!key.is_empty()).then(|| Bytes::copy_from_slice(key));
            let nb = c.count("journal.batches", BATCH_BYTES)?;
            let mut batches = Vec::with_capacity(nb);
            for _ in 0..nb {
                let b = BatchRef {
                    partition: c.u32()?,
                    base_offset: c.u64()?,
                    record_count: c.u32()?,
                    segment: ObjectId(c.array()?),
                    pos: c.u64()?,
                    len: c.u32()?,
                };
                if b.partition >= partition_count {
                    return Err(invalid("journal.batch.partition", "beyond partition_count"));
                }
                if b.record_count == 0 || b.base_offset.checked_add(b.record_count as u64).is_none()
                {
                    return Err(invalid(
                        "journal.batch.record_count",
                        "empty or overflowing",
                    ));
                }
                batches.push(b);
            }
            let producer = match version {
                1 => None,
                _ => match c.u8()? {
                    0 => None,
                    1 => Some(ProducerStamp {
                        id: ProducerId(c.array()?),
                        epoch: c.u32()?,
                        seq: c.u64()?,
                    }),
                    _ => return Err(invalid("journal.producer", "unknown flag")),
                },
            };
            appends.push(Append {
                topic,
                partition_count,
                dedup_key,
                batches,
                producer,
            });
        }
        c.finish()?;
        Ok(Self {
            shard,
            seq,
            append_ts,
            writer,
            appends,
        })
    }
}

#[cfg(test)]
pub(crate) fn sample_entry() -> JournalEntry {
    JournalEntry {
        shard: 2,
        seq: 7,
        append_ts: 1_732_400_000_000,
        writer: [9; 16],
        appends: vec![Append {
            topic: TopicId([1; 16]),
            partition_count: 4,
            dedup_key: Some(Bytes::from_static(b"req-1")),
            batches: vec![BatchRef {
                partition: 3,
                base_offset: 1042,
                record_count: 2,
                segment: ObjectId([5; 16]),
                pos: 8,
                len: 100,
            }],
            producer: Some(ProducerStamp {
                id: ProducerId([6; 16]),
                epoch: 2,
                seq: 41,
            }),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = sample_entry();
        assert_eq!(JournalEntry::decode(&e.encode()).unwrap(), e);
    }

    /// A version 1 entry as writers wrote it before producer stamps: still decodes.
    const V1: &str = "534c4a450100000073000000020000000700000000000000002c165b930100000909090909090909090909090909090901000000010101010101010101010101010101010400000005007265712d3101000000030000001204000000000000020000000505050505050505050505050505050508000000000000006400000073a386a2";

    #[test]
    fn version_1_bytes_still_decode() {
        let bytes = crate::format::hex::bytes(V1);
        let mut want = sample_entry();
        want.appends[0].producer = None;
        assert_eq!(JournalEntry::decode(&bytes).unwrap(), want);
    }

    /// `e` encoded as version 1 (no producer stamps; `e` must have none).
    fn encode_v1(e: &JournalEntry) -> Bytes {
        assert!(e.appends.iter().all(|a| a.producer.is_none()));
        e.encode_as(1)
    }

    #[test]
    fn encode_v1_writes_version_1_bytes() {
        let mut e = sample_entry();
        e.appends[0].producer = None;
        assert_eq!(crate::format::hex::of(&encode_v1(&e)), V1);
    }

    fn smallest_append() -> Append {
        Append {
            topic: TopicId([1; 16]),
            partition_count: 1,
            dedup_key: None,
            batches: Vec::new(),
            producer: None,
        }
    }

    #[test]
    fn the_smallest_appends_decode() {
        // In version 1 an append with no dedup key and no batch takes 26 bytes and nothing
        // follows the appends: 3 of them leave 78 bytes after the count, which a bound of 27
        // bytes an append would refuse. Version 2 adds the producer flag (27 bytes each).
        let e = JournalEntry {
            appends: vec![smallest_append(); 3],
            ..sample_entry()
        };
        assert_eq!(JournalEntry::decode(&encode_v1(&e)).unwrap(), e);
        assert_eq!(JournalEntry::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn the_smallest_batches_decode() {
        // Batches are fixed width (44 bytes); in version 2 only the producer flag (1 byte)
        // follows them, so 3 batches leave 133 bytes after the count: a bound of 45 refuses it.
        let e = JournalEntry {
            appends: vec![Append {
                batches: (0..3)
                    .map(|i| BatchRef {
                        partition: 0,
                        base_offset: i,
                        record_count: 1,
                        segment: ObjectId([5; 16]),
                        pos: 0,
                        len: 0,
                    })
                    .collect(),
                ..smallest_append()
            }],
            ..sample_entry()
        };
        assert_eq!(JournalEntry::decode(&e.encode()).unwrap(), e);
        assert_eq!(JournalEntry::decode(&encode_v1(&e)).unwrap(), e);
    }

    #[test]
    fn bytes_are_pinned() {
        assert_eq!(crate::format::hex::of(&sample_entry().encode()),
            "534c4a450200000090000000020000000700000000000000002c165b930100000909090909090909090909090909090901000000010101010101010101010101010101010400000005007265712d310100000003000000120400000000000002000000050505050505050505050505050505050800000000000000640000000106060606060606060606060606060606020000002900000000000000bfa1a44e"
        );
        let mut none = sample_entry();
        none.appends[0].producer = None;
        assert_eq!(JournalEntry::decode(&none.encode()).unwrap(), none);
    }
}
