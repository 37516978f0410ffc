//! Byte-level helpers shared by every binary format: a bounds-checked reader, little-endian
//! writers and the common object envelope.
//!
//! Envelope (journal entry, index, checkpoint):
//!
//! ```text
//! +-------+---------+-------+----------+------------+-----------+
//! | magic | version | flags | body_len |    body    |  crc32c   |
//! | 4 B   | u16 LE  | u16   | u32 LE   | body_len B | u32 LE    |
//! +-------+---------+-------+----------+------------+-----------+
//! ```
//! The CRC32C covers every byte before it. Decoding checks magic, version, length and CRC before
//! the body is looked at, so a torn or flipped object is always an error, never a panic.

use bytes::{BufMut, Bytes, BytesMut};

/// Why bytes could not be decoded. Carries no key: callers add the object key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated: needed {needed} more bytes at byte {at}")]
    Truncated { at: usize, needed: usize },
    #[error("bad magic {found:?}, expected {expected:?}")]
    BadMagic { expected: [u8; 4], found: [u8; 4] },
    #[error("unsupported version {found} (this build reads up to {supported})")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("invalid field {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0} trailing bytes after the end of the object")]
    Trailing(usize),
}

pub type DecodeResult<T> = Result<T, DecodeError>;

pub fn invalid(field: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A cursor over a byte slice whose every read is bounds-checked.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                at: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> DecodeResult<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> DecodeResult<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> DecodeResult<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> DecodeResult<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A count of items that each take at least `min_item_bytes`: rejects counts that cannot fit
    /// in what is left, so a flipped length never triggers a huge allocation.
    pub fn count(&mut self, field: &'static str, min_item_bytes: usize) -> DecodeResult<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item_bytes.max(1)) > self.remaining() {
            return Err(invalid(
                field,
                format!("count {n} cannot fit in {} bytes", self.remaining()),
            ));
        }
        Ok(n)
    }

    /// Bytes prefixed by a u16 length.
    pub fn bytes16(&mut self) -> DecodeResult<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    /// Bytes prefixed by a u32 length.
    pub fn bytes32(&mut self) -> DecodeResult<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn finish(self) -> DecodeResult<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

pub fn put_bytes16(out: &mut BytesMut, b: &[u8]) {
    debug_assert!(b.len() <= u16::MAX as usize);
    out.put_u16_le(b.len() as u16);
    out.put_slice(b);
}

pub fn put_bytes32(out: &mut BytesMut, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.put_slice(b);
}

const ENVELOPE_HEADER: usize = 12;

/// Wrap `body` in the envelope with the given magic and version.
pub fn seal(magic: [u8; 4], version: u16, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(ENVELOPE_HEADER + body.len() + 4);
    out.put_slice(&magic);
    out.put_u16_le(version);
    out.put_u16_le(0);
    out.put_u32_le(body.len() as u32);
    out.put_slice(body);
    let crc = crc32c::crc32c(&out);
    out.put_u32_le(crc);
    out.freeze()
}

/// Check the envelope and return `(version, body)`. `max_version` is the newest version this
/// build understands.
pub fn open(magic: [u8; 4], max_version: u16, bytes: &[u8]) -> DecodeResult<(u16, &[u8])> {
    let mut c = Cursor::new(bytes);
    let found: [u8; 4] = c.array()?;
    if found != magic {
        return Err(DecodeError::BadMagic {
            expected: magic,
            found,
        });
    }
    let version = c.u16()?;
    let _flags = c.u16()?;
    let body_len = c.u32()? as usize;
    let body = c.take(body_len)?;
    let crc_at = c.position();
    let stored = c.u32()?;
    c.finish()?;
    let computed = crc32c::crc32c(&bytes[..crc_at]);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    if version == 0 || version > max_version {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: max_version,
        });
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_rejections() {
        let sealed = seal(*b"TEST", 1, b"hello");
        assert_eq!(open(*b"TEST", 1, &sealed).unwrap(), (1, &b"hello"[..]));
        assert!(matches!(
            open(*b"NOPE", 1, &sealed),
            Err(DecodeError::BadMagic { .. })
        ));
        let mut flipped = sealed.to_vec();
        flipped[13] ^= 0x40;
        assert!(matches!(
            open(*b"TEST", 1, &flipped),
            Err(DecodeError::Checksum { .. })
        ));
        assert!(matches!(
            open(*b"TEST", 1, &sealed[..sealed.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
        let future = seal(*b"TEST", 9, b"x");
        assert!(matches!(
            open(*b"TEST", 1, &future),
            Err(DecodeError::UnsupportedVersion { found: 9, .. })
        ));
    }

    #[test]
    fn count_rejects_impossible_lengths() {
        let bytes = u32::MAX.to_le_bytes();
        let mut c = Cursor::new(&bytes);
        assert!(c.count("items", 8).is_err());
    }
}
