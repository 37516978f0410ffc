//! Index object: where a run of one partition's offsets lives, written by the compactor at
//! `index/{topic_id}/{partition:05}/{base:020}-{end:020}-{min_ts:020}-{max_ts:020}`. The key
//! alone tells offset range and time range, so a cached LIST answers "which object" for both
//! offset and timestamp look-ups, and retention needs no GET.
//!
//! ```text
//! envelope("SLIX", version 1, body)
//! body  := topic_id [16] | partition u32 | through_seq u64
//!          | entry_count u32 | entry*
//! entry := base_offset u64 | record_count u32 | append_ts i64 | pos u64 | len u32
//! ```
//! All entries are frames of the one data object `data/{topic_id}/{partition:05}/{base:020}-{end:020}`
//! (named by the same offset range, so retention deletes both from a LIST alone), sorted by
//! offset, dense (each entry starts where the previous ended).

use crate::codec::{invalid, open, seal, Cursor, DecodeResult};
use crate::ids::TopicId;
use bytes::{BufMut, Bytes, BytesMut};

pub const INDEX_MAGIC: [u8; 4] = *b"SLIX";
pub const INDEX_VERSION: u16 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexObject {
    pub topic: TopicId,
    pub partition: u32,
    /// The journal seq of the shard this fold read up to (diagnostics).
    pub through_seq: u64,
    pub entries: Vec<IndexEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub base_offset: u64,
    pub record_count: u32,
    pub append_ts: i64,
    pub pos: u64,
    pub len: u32,
}

impl IndexEntry {
    pub fn end_offset(&self) -> u64 {
        self.base_offset + self.record_count as u64
    }
}

impl IndexObject {
    pub fn base_offset(&self) -> u64 {
        self.entries.first().map_or(0, |e| e.base_offset)
    }
    pub fn end_offset(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.end_offset())
    }
    pub fn min_ts(&self) -> i64 {
        self.entries.first().map_or(0, |e| e.append_ts)
    }
    pub fn max_ts(&self) -> i64 {
        self.entries.last().map_or(0, |e| e.append_ts)
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(32 + self.entries.len() * 32);
        b.put_slice(&self.topic.0);
        b.put_u32_le(self.partition);
        b.put_u64_le(self.through_seq);
        b.put_u32_le(self.entries.len() as u32);
        for e in &self.entries {
            b.put_u64_le(e.base_offset);
            b.put_u32_le(e.record_count);
            b.put_i64_le(e.append_ts);
            b.put_u64_le(e.pos);
            b.put_u32_le(e.len);
        }
        seal(INDEX_MAGIC, INDEX_VERSION, &b)
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let (_v, body) = open(INDEX_MAGIC, INDEX_VERSION, bytes)?;
        let mut c = Cursor::new(body);
        let topic = TopicId(c.array()?);
        let partition = c.u32()?;
        let through_seq = c.u64()?;
        let n = c.count("index.entries", 32)?;
        if n == 0 {
            return Err(invalid("index.entries", "empty index"));
        }
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(n);
        for _ in 0..n {
            let e = IndexEntry {
                base_offset: c.u64()?,
                record_count: c.u32()?,
                append_ts: c.i64()?,
                pos: c.u64()?,
                len: c.u32()?,
            };
            if e.record_count == 0 || e.base_offset.checked_add(e.record_count as u64).is_none() {
                return Err(invalid("index.entry.record_count", "empty or overflowing"));
            }
            if let Some(prev) = entries.last() {
                if prev.end_offset() != e.base_offset || prev.append_ts > e.append_ts {
                    return Err(invalid("index.entries", "not dense or not time-ordered"));
                }
            }
            entries.push(e);
        }
        c.finish()?;
        Ok(Self {
            topic,
            partition,
            through_seq,
            entries,
        })
    }
}

#[cfg(test)]
pub(crate) fn sample_index() -> IndexObject {
    IndexObject {
        topic: TopicId([1; 16]),
        partition: 3,
        through_seq: 9,
        entries: vec![
            IndexEntry {
                base_offset: 100,
                record_count: 2,
                append_ts: 1_000,
                pos: 8,
                len: 50,
            },
            IndexEntry {
                base_offset: 102,
                record_count: 1,
                append_ts: 1_005,
                pos: 58,
                len: 30,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let i = sample_index();
        assert_eq!(IndexObject::decode(&i.encode()).unwrap(), i);
    }

    #[test]
    fn bytes_are_pinned() {
        let hex: String = sample_index()
            .encode()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "534c495801000000600000000101010101010101010101010101010103000000090000000000000002000000640000000000000002000000e803000000000000080000000000000032000000660000000000000001000000ed030000000000003a000000000000001e000000fbbbe5fa"
        );
    }
}
