//! An idempotency marker of delayed records: what a produce request with an `Idempotency-Key`
//! planned for its delayed records, written create-only **before** their objects, so that a
//! retry of the request (any gateway) writes the same objects under the same names and answers
//! the same ids (see [`crate::delayed`]).
//!
//! ```text
//! marker := envelope("SDIK", version 1, body)
//! body   := topic_id [16] | created_ms i64 | fingerprint [32]
//!         | count u32 | deliver_at_ms i64 * count
//!         | objects u32 | object*
//! object := due_ms i64 | ulid [16] | members u32 | member u32 * members
//! ```
//! `fingerprint` is the SHA-256 of the request's delayed records as given
//! ([`crate::delayed::Fingerprint`]); `deliver_at_ms` is each delayed record's due time, in
//! request order; each object lists the indexes (into that order) of its records, in the order
//! they are stored in it. Every index is in exactly one object, and no object is empty.

use crate::codec::{invalid, open, seal, Cursor, DecodeResult};
use bytes::{BufMut, Bytes, BytesMut};

pub const MARKER_MAGIC: [u8; 4] = *b"SDIK";
pub const MARKER_VERSION: u16 = 1;

/// One planned object: its name's parts and which records it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedObject {
    pub due_ms: i64,
    pub ulid: [u8; 16],
    pub members: Vec<u32>,
}

/// The decoded marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayedMarker {
    pub topic_id: [u8; 16],
    pub created_ms: i64,
    pub fingerprint: [u8; 32],
    pub deliver_at_ms: Vec<i64>,
    pub objects: Vec<PlannedObject>,
}

impl DelayedMarker {
    pub fn encode(&self) -> Bytes {
        let members: usize = self.objects.iter().map(|o| 28 + 4 * o.members.len()).sum();
        let mut b = BytesMut::with_capacity(64 + 8 * self.deliver_at_ms.len() + members);
        b.put_slice(&self.topic_id);
        b.put_i64_le(self.created_ms);
        b.put_slice(&self.fingerprint);
        b.put_u32_le(self.deliver_at_ms.len() as u32);
        for t in &self.deliver_at_ms {
            b.put_i64_le(*t);
        }
        b.put_u32_le(self.objects.len() as u32);
        for o in &self.objects {
            b.put_i64_le(o.due_ms);
            b.put_slice(&o.ulid);
            b.put_u32_le(o.members.len() as u32);
            for m in &o.members {
                b.put_u32_le(*m);
            }
        }
        seal(MARKER_MAGIC, MARKER_VERSION, &b)
    }

    /// Decode defensively: any malformed input is an error, never a panic. Also refuses a plan
    /// that does not put every record in exactly one object.
    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let (_version, body) = open(MARKER_MAGIC, MARKER_VERSION, bytes)?;
        let mut c = Cursor::new(body);
        let topic_id = c.array::<16>()?;
        let created_ms = c.i64()?;
        let fingerprint = c.array::<32>()?;
        let n = c.count("marker.deliver_at", 8)?;
        let mut deliver_at_ms = Vec::with_capacity(n);
        for _ in 0..n {
            deliver_at_ms.push(c.i64()?);
        }
        // The smallest object: due 8 + ulid 16 + members 4 + one member 4.
        let objects_n = c.count("marker.objects", 32)?;
        let mut seen = vec![false; n];
        let mut objects = Vec::with_capacity(objects_n);
        for _ in 0..objects_n {
            let due_ms = c.i64()?;
            let ulid = c.array::<16>()?;
            let m = c.count("marker.object.members", 4)?;
            if m == 0 {
                return Err(invalid("marker.object.members", "an empty object"));
            }
            let mut members = Vec::with_capacity(m);
            for _ in 0..m {
                let i = c.u32()?;
                match seen.get_mut(i as usize) {
                    Some(s) if !*s => *s = true,
                    Some(_) => return Err(invalid("marker.object.member", format!("{i} twice"))),
                    None => {
                        return Err(invalid(
                            "marker.object.member",
                            format!("{i} is not below the count {n}"),
                        ))
                    }
                }
                members.push(i);
            }
            objects.push(PlannedObject {
                due_ms,
                ulid,
                members,
            });
        }
        c.finish()?;
        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(invalid(
                "marker.objects",
                format!("record {i} is in no object"),
            ));
        }
        Ok(Self {
            topic_id,
            created_ms,
            fingerprint,
            deliver_at_ms,
            objects,
        })
    }
}

/// A valid marker, for the property and fuzz tests.
pub fn sample_marker() -> DelayedMarker {
    DelayedMarker {
        topic_id: [7; 16],
        created_ms: 1_700_000_000_000,
        fingerprint: [9; 32],
        deliver_at_ms: vec![1_700_000_060_000, 1_700_000_000_000, 1_700_000_060_050],
        objects: vec![
            PlannedObject {
                due_ms: 1_700_000_000_000,
                ulid: [1; 16],
                members: vec![1],
            },
            PlannedObject {
                due_ms: 1_700_000_060_050,
                ulid: [2; 16],
                members: vec![0, 2],
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::hex;

    #[test]
    fn round_trip() {
        let m = sample_marker();
        assert_eq!(DelayedMarker::decode(&m.encode()).unwrap(), m);
    }

    /// Version 1's bytes, pinned: a change to the encoding must bump the version.
    #[test]
    fn version_1_bytes_are_pinned() {
        let bytes = sample_marker().encode();
        let pinned = hex::of(&bytes);
        assert_eq!(
            pinned,
            "5344494b010000009c000000070707070707070707070707070707070068e5cf8b010000\
09090909090909090909090909090909090909090909090909090909090909090300000060\
52e6cf8b0100000068e5cf8b0100009252e6cf8b01000002000000\
0068e5cf8b010000010101010101010101010101010101010100000001000000\
9252e6cf8b0100000202020202020202020202020202020202000000000000000200000\
05f7bcf57"
        );
        assert_eq!(
            DelayedMarker::decode(&hex::bytes(&pinned)).unwrap(),
            sample_marker()
        );
    }

    #[test]
    fn plans_that_miss_or_repeat_a_record_are_refused() {
        let mut twice = sample_marker();
        twice.objects[1].members = vec![0, 1, 2];
        assert!(DelayedMarker::decode(&twice.encode()).is_err());
        let mut missing = sample_marker();
        missing.objects[1].members = vec![0];
        assert!(DelayedMarker::decode(&missing.encode()).is_err());
        let mut beyond = sample_marker();
        beyond.objects[1].members = vec![0, 3, 2];
        assert!(DelayedMarker::decode(&beyond.encode()).is_err());
        let mut empty = sample_marker();
        empty.objects.push(PlannedObject {
            due_ms: 1,
            ulid: [3; 16],
            members: vec![],
        });
        assert!(DelayedMarker::decode(&empty.encode()).is_err());
    }

    /// The count bounds are the true minimum: the smallest objects (one member each) decode,
    /// and one byte less of room is refused.
    #[test]
    fn the_smallest_objects_decode() {
        let m = DelayedMarker {
            deliver_at_ms: vec![5, 6, 7],
            objects: (0..3)
                .map(|i| PlannedObject {
                    due_ms: i,
                    ulid: [i as u8; 16],
                    members: vec![i as u32],
                })
                .collect(),
            ..sample_marker()
        };
        assert_eq!(DelayedMarker::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn every_truncation_and_flip_is_an_error() {
        crate::format::assert_every_cut_and_flip_refused(&sample_marker().encode(), |b| {
            DelayedMarker::decode(&b).is_ok()
        });
    }
}
