//! State-log objects (see [`crate::statelog`]): an entry at `{prefix}/log/{seq:020}` holds the
//! operations of one commit round; a snapshot at `{prefix}/snap/{seq:020}` holds the whole state
//! after entry `seq`. Both are create-only and immutable.
//!
//! ```text
//! entry    := envelope("SLSE", version 1, seq u64 | time_ms i64 | writer [16] | ops u32 len + bytes)
//! snapshot := envelope("SLSS", version 1, seq u64 | time_ms i64 | state u32 len + bytes)
//! ```
//! `ops` is a JSON array of the state machine's operations; `state` is whatever the state
//! machine's `snapshot` produced (opaque here). `time_ms` is the entry's time: every operation
//! of the entry is applied with it, and it never decreases along a log.

use crate::codec::{open, put_bytes32, seal, Cursor, DecodeResult};
use bytes::{BufMut, Bytes, BytesMut};

pub const STATE_ENTRY_MAGIC: [u8; 4] = *b"SLSE";
pub const STATE_SNAPSHOT_MAGIC: [u8; 4] = *b"SLSS";
pub const STATE_VERSION: u16 = 1;

/// One committed round of a state log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateEntry {
    pub seq: u64,
    pub time_ms: i64,
    /// The committing process (recognises our own write whose answer was lost).
    pub writer: [u8; 16],
    /// JSON array of operations.
    pub ops: Bytes,
}

impl StateEntry {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(36 + self.ops.len());
        b.put_u64_le(self.seq);
        b.put_i64_le(self.time_ms);
        b.put_slice(&self.writer);
        put_bytes32(&mut b, &self.ops);
        seal(STATE_ENTRY_MAGIC, STATE_VERSION, &b)
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let (_, body) = open(STATE_ENTRY_MAGIC, STATE_VERSION, bytes)?;
        let mut c = Cursor::new(body);
        let seq = c.u64()?;
        let time_ms = c.i64()?;
        let writer = c.array()?;
        let ops = Bytes::copy_from_slice(c.bytes32()?);
        c.finish()?;
        Ok(Self {
            seq,
            time_ms,
            writer,
            ops,
        })
    }
}

/// The whole state after entry `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSnapshot {
    pub seq: u64,
    /// Time of entry `seq` (the next entry's time is at least this).
    pub time_ms: i64,
    pub state: Bytes,
}

impl StateSnapshot {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(20 + self.state.len());
        b.put_u64_le(self.seq);
        b.put_i64_le(self.time_ms);
        put_bytes32(&mut b, &self.state);
        seal(STATE_SNAPSHOT_MAGIC, STATE_VERSION, &b)
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let (_, body) = open(STATE_SNAPSHOT_MAGIC, STATE_VERSION, bytes)?;
        let mut c = Cursor::new(body);
        let seq = c.u64()?;
        let time_ms = c.i64()?;
        let state = Bytes::copy_from_slice(c.bytes32()?);
        c.finish()?;
        Ok(Self {
            seq,
            time_ms,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_pinned() {
        let e = StateEntry {
            seq: 2,
            time_ms: 3,
            writer: [4; 16],
            ops: Bytes::from_static(b"[1]"),
        };
        let b = e.encode();
        assert_eq!(&b[..4], b"SLSE");
        assert_eq!(b.len(), 12 + 8 + 8 + 16 + 4 + 3 + 4);
        assert_eq!(&b[12..20], &2u64.to_le_bytes());
        assert_eq!(&b[44..48], &3u32.to_le_bytes());
        assert_eq!(StateEntry::decode(&b).unwrap(), e);
        let s = StateSnapshot {
            seq: 7,
            time_ms: 8,
            state: Bytes::from_static(b"xy"),
        };
        let b = s.encode();
        assert_eq!(&b[..4], b"SLSS");
        assert_eq!(b.len(), 12 + 8 + 8 + 4 + 2 + 4);
        assert_eq!(StateSnapshot::decode(&b).unwrap(), s);
        assert!(StateEntry::decode(&b).is_err());
        for n in 0..b.len() {
            assert!(StateSnapshot::decode(&b[..n]).is_err());
        }
    }
}
