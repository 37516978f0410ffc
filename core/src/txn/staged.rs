//! The staged-batch object (`SLTB`, version 1): the records of one staging request of a
//! transaction, at `txns/{txn}/staged/{object}`, create-only and immutable.
//!
//! ```text
//! staged := envelope("SLTB", 1, body)
//! body   := txn [16] | object [16] | topic_id [16] | topic: u16 len + UTF-8
//!           | record_count u32 | (partition u32 | record)*
//! ```
//! `record` is the record encoding of segments (`core/src/format/record.rs`). Every record has
//! its partition fixed when staged (explicit, by key, or one partition per request by a hash of
//! `object`), so the commit appends them exactly where they were routed, whatever happens to the
//! topic's partition count meanwhile. `txn` and `object` repeat the key, so a misplaced object
//! is detected.

use crate::codec::{invalid, open, put_bytes16, seal, Cursor, DecodeResult};
use crate::format::record::{Record, MIN_RECORD_BYTES};
use crate::ids::ObjectId;
use bytes::{BufMut, Bytes, BytesMut};

pub const STAGED_MAGIC: [u8; 4] = *b"SLTB";
pub const STAGED_VERSION: u16 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedBatch {
    pub txn: ObjectId,
    pub object: ObjectId,
    pub topic_id: [u8; 16],
    pub topic: String,
    pub records: Vec<(u32, Record)>,
}

impl StagedBatch {
    pub fn encode(&self) -> Bytes {
        let size: usize = self.records.iter().map(|(_, r)| 4 + r.encoded_len()).sum();
        let mut b = BytesMut::with_capacity(56 + self.topic.len() + size);
        b.put_slice(&self.txn.0);
        b.put_slice(&self.object.0);
        b.put_slice(&self.topic_id);
        put_bytes16(&mut b, self.topic.as_bytes());
        b.put_u32_le(self.records.len() as u32);
        for (p, r) in &self.records {
            b.put_u32_le(*p);
            r.encode(&mut b);
        }
        seal(STAGED_MAGIC, STAGED_VERSION, &b)
    }

    /// Decode defensively: every length is checked, the CRC first, no panic on any input.
    pub fn decode(bytes: &Bytes) -> DecodeResult<Self> {
        let (_, body) = open(STAGED_MAGIC, STAGED_VERSION, bytes)?;
        let body = bytes.slice_ref(body);
        let mut c = Cursor::new(&body);
        let txn = ObjectId(c.array()?);
        let object = ObjectId(c.array()?);
        let topic_id: [u8; 16] = c.array()?;
        let topic = std::str::from_utf8(c.bytes16()?)
            .map_err(|_| invalid("staged.topic", "not UTF-8"))?
            .to_string();
        // A record takes at least 4 bytes (partition) + 7 (flags 1, value length 4, header
        // count 2: no key, an empty value, no timestamp, no header).
        let n = c.count("staged.records", 4 + MIN_RECORD_BYTES)?;
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            let p = c.u32()?;
            records.push((p, Record::decode(&mut c, &body)?));
        }
        c.finish()?;
        Ok(Self {
            txn,
            object,
            topic_id,
            topic,
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StagedBatch {
        StagedBatch {
            txn: ObjectId([1; 16]),
            object: ObjectId([2; 16]),
            topic_id: [3; 16],
            topic: "orders".into(),
            records: vec![
                (0, Record::new(Some(b"k"), Bytes::from_static(b"v1"))),
                (
                    2,
                    Record {
                        key: None,
                        value: Bytes::from_static(b"v2"),
                        producer_ts: Some(7),
                        headers: vec![("h".into(), Bytes::from_static(b"x"))],
                    },
                ),
            ],
        }
    }

    #[test]
    fn the_smallest_records_decode() {
        // Regression: the count check once assumed 15 bytes a record, so two records with
        // values of two bytes (13 bytes each) were refused as corrupt and their commit never
        // finished.
        for value in [&b""[..], b"v", b"v0"] {
            let mut batch = sample();
            batch.records = (0..3)
                .map(|p| (p, Record::new(None, Bytes::copy_from_slice(value))))
                .collect();
            let b = batch.encode();
            assert_eq!(StagedBatch::decode(&b).unwrap(), batch, "value {value:?}");
        }
    }

    #[test]
    fn round_trip_and_every_truncation_fails() {
        let b = sample().encode();
        assert_eq!(StagedBatch::decode(&b).unwrap(), sample());
        crate::format::assert_every_cut_and_flip_refused(&b, |b| StagedBatch::decode(&b).is_ok());
    }

    #[test]
    fn bytes_are_pinned() {
        let b = sample().encode();
        assert_eq!(&b[..8], b"SLTB\x01\x00\x00\x00");
        assert_eq!(
            crate::format::hex::of(&b),
            "534c5442010000006b00000001010101010101010101010101010101020202020202020202020202020202020303030303030303030303030303030306\
             006f7264657273020000000000000001010000006b02000000763100000200000002020000007632070000000000000001000100680100000078396444a3"
        );
    }
}
