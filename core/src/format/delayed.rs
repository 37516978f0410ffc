//! A delayed-records object: the records of one produce request that fall due in one 100 ms
//! slot, kept until the mover appends them to their topic (see [`crate::delayed`]). Create-only
//! and immutable; deleted once delivered.
//!
//! ```text
//! object := envelope("SDLY", version 1, body)
//! body   := topic_id [16] | created_ms i64 | count u32 | item*
//! item   := deliver_at_ms i64 | flags u8 | [partition u32] | record
//! flags:  bit 0 = explicit partition present, other bits must be 0
//! record := the record encoding of `format::record`
//! ```
//! `topic_id` is the topic's incarnation: records of a topic deleted (or deleted and created
//! again) before they are due are dropped, never delivered into the new topic.

use crate::codec::{invalid, open, seal, Cursor, DecodeResult};
use crate::format::record::{Record, MIN_RECORD_BYTES};
use bytes::{BufMut, Bytes, BytesMut};

pub const DELAYED_MAGIC: [u8; 4] = *b"SDLY";
pub const DELAYED_VERSION: u16 = 1;

const FLAG_PARTITION: u8 = 1;

/// One delayed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayedItem {
    /// When it is due (ms since the epoch), as the producer asked.
    pub deliver_at_ms: i64,
    /// The explicit partition, if the producer gave one.
    pub partition: Option<u32>,
    pub record: Record,
}

/// The decoded object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayedObject {
    pub topic_id: [u8; 16],
    pub created_ms: i64,
    pub items: Vec<DelayedItem>,
}

impl DelayedObject {
    pub fn encode(&self) -> Bytes {
        let len: usize = self.items.iter().map(|i| 13 + i.record.encoded_len()).sum();
        let mut b = BytesMut::with_capacity(28 + len);
        b.put_slice(&self.topic_id);
        b.put_i64_le(self.created_ms);
        b.put_u32_le(self.items.len() as u32);
        for item in &self.items {
            b.put_i64_le(item.deliver_at_ms);
            match item.partition {
                Some(p) => {
                    b.put_u8(FLAG_PARTITION);
                    b.put_u32_le(p);
                }
                None => b.put_u8(0),
            }
            item.record.encode(&mut b);
        }
        seal(DELAYED_MAGIC, DELAYED_VERSION, &b)
    }

    /// Decode defensively: any malformed input is an error, never a panic.
    pub fn decode(bytes: &Bytes) -> DecodeResult<Self> {
        let (_version, body) = open(DELAYED_MAGIC, DELAYED_VERSION, bytes)?;
        let src = bytes.slice_ref(body);
        let mut c = Cursor::new(body);
        let topic_id = c.array::<16>()?;
        let created_ms = c.i64()?;
        // The smallest item: deliver_at 8 + flags 1 (no partition) + the smallest record.
        let n = c.count("delayed.items", 8 + 1 + MIN_RECORD_BYTES)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let deliver_at_ms = c.i64()?;
            let flags = c.u8()?;
            if flags & !FLAG_PARTITION != 0 {
                return Err(invalid(
                    "delayed.item.flags",
                    format!("unknown bits {flags:#04x}"),
                ));
            }
            let partition = if flags & FLAG_PARTITION != 0 {
                Some(c.u32()?)
            } else {
                None
            };
            let record = Record::decode(&mut c, &src)?;
            items.push(DelayedItem {
                deliver_at_ms,
                partition,
                record,
            });
        }
        c.finish()?;
        Ok(Self {
            topic_id,
            created_ms,
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::hex;

    fn sample() -> DelayedObject {
        DelayedObject {
            topic_id: [7; 16],
            created_ms: 1_700_000_000_000,
            items: vec![
                DelayedItem {
                    deliver_at_ms: 1_700_000_060_000,
                    partition: None,
                    record: Record {
                        key: Some(Bytes::from_static(b"k")),
                        value: Bytes::from_static(b"v"),
                        producer_ts: None,
                        headers: vec![("h".into(), Bytes::from_static(b"x"))],
                    },
                },
                DelayedItem {
                    deliver_at_ms: 1_700_000_060_050,
                    partition: Some(3),
                    record: Record::new(None, Bytes::from_static(b"")),
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let o = sample();
        assert_eq!(DelayedObject::decode(&o.encode()).unwrap(), o);
    }

    /// Version 1's bytes, pinned: a change to the encoding must bump the version.
    #[test]
    fn version_1_bytes_are_pinned() {
        let bytes = sample().encode();
        let pinned = "53444c59010000004e000000070707070707070707070707070707070068e5cf8b010000020000006052e6cf8b0100000001010000006b0100000076010001006801000000789252e6cf8b0100000103000000000000000000000907346e";
        assert_eq!(hex::of(&bytes), pinned);
        let decoded = DelayedObject::decode(&Bytes::from(hex::bytes(pinned))).unwrap();
        assert_eq!(decoded, sample());
    }

    #[test]
    fn the_smallest_items_decode() {
        // No partition, no key, an empty value, no timestamp, no header: 16 bytes an item, and
        // nothing follows the items, so 3 of them (48 bytes) are refused by a bound of 17.
        let o = DelayedObject {
            items: (0..3)
                .map(|i| DelayedItem {
                    deliver_at_ms: i,
                    partition: None,
                    record: Record::new(None, Bytes::new()),
                })
                .collect(),
            ..sample()
        };
        assert_eq!(DelayedObject::decode(&o.encode()).unwrap(), o);
    }

    #[test]
    fn every_truncation_and_flip_is_an_error() {
        crate::format::assert_every_cut_and_flip_refused(&sample().encode(), |b| {
            DelayedObject::decode(&b).is_ok()
        });
    }
}
