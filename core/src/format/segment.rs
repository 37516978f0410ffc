//! Segments hold record batches. A flush segment (`segments/{ulid}`) carries the batches of one
//! gateway flush for many partitions; a data object (`data/…`) carries one partition's batches
//! copied by the compactor. Both are a header followed by batch frames, and a frame is read on
//! its own with one ranged GET (the journal and the index give its position and length).
//!
//! ```text
//! segment := "SLSG" | version u16 = 1 | reserved u16 = 0 | frame*
//! frame   := frame_len u32 | frame_version u8 = 1 | codec u8 | record_count u32
//!            | raw_len u32 | payload (frame_len - 14 bytes) | crc32c u32
//! ```
//! `frame_len` counts every byte after itself. The CRC32C covers `frame_version` through the
//! end of the payload. `codec` 0 = none, 1 = zstd; `raw_len` is the payload length once
//! decompressed (at most [`MAX_BATCH_RAW`]) and the decoded payload is exactly `record_count`
//! records (see [`super::record`]).

use super::record::Record;
use crate::codec::{invalid, Cursor, DecodeError, DecodeResult};
use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Borrow;

pub const SEGMENT_MAGIC: [u8; 4] = *b"SLSG";
pub const SEGMENT_VERSION: u16 = 1;
pub const SEGMENT_HEADER_LEN: usize = 8;
pub const FRAME_VERSION: u8 = 1;
/// Bytes of a frame that are not payload: length, version, codec, count, raw_len, crc.
pub const FRAME_OVERHEAD: usize = 4 + 1 + 1 + 4 + 4 + 4;
/// The largest decompressed payload a frame may declare (guards against decompression bombs).
pub const MAX_BATCH_RAW: usize = 64 << 20;

/// Compression of a batch payload. Persisted: keep the numbers stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Codec {
    #[default]
    None = 0,
    Zstd = 1,
}

impl Codec {
    fn from_u8(b: u8) -> DecodeResult<Self> {
        match b {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Zstd),
            other => Err(invalid("frame.codec", format!("unknown codec {other}"))),
        }
    }
}

pub fn segment_header() -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..6].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h
}

pub fn check_segment_header(bytes: &[u8]) -> DecodeResult<()> {
    let mut c = Cursor::new(bytes);
    let magic: [u8; 4] = c.array()?;
    if magic != SEGMENT_MAGIC {
        return Err(DecodeError::BadMagic {
            expected: SEGMENT_MAGIC,
            found: magic,
        });
    }
    let version = c.u16()?;
    if version != SEGMENT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: SEGMENT_VERSION,
        });
    }
    match c.u16()? {
        0 => Ok(()),
        other => Err(invalid(
            "segment.reserved",
            format!("{other:#06x}, expected 0"),
        )),
    }
}

/// Encode records as one frame, appended to `out`. Returns the frame's length in bytes.
/// Records are encoded straight into `out` (one copy of each value).
pub fn encode_frame<R: Borrow<Record>>(records: &[R], codec: Codec, out: &mut BytesMut) -> usize {
    let raw_len: usize = records.iter().map(|r| r.borrow().encoded_len()).sum();
    let start = out.len();
    out.reserve(FRAME_OVERHEAD + raw_len);
    out.put_u32_le(0); // frame_len, set below
    out.put_u8(FRAME_VERSION);
    out.put_u8(Codec::None as u8);
    out.put_u32_le(records.len() as u32);
    out.put_u32_le(raw_len as u32);
    let payload = out.len();
    for r in records {
        r.borrow().encode(out);
    }
    if codec == Codec::Zstd {
        if let Ok(z) = zstd::bulk::compress(&out[payload..], 1) {
            if z.len() < raw_len {
                out.truncate(payload);
                out.put_slice(&z);
                out[start + 5] = Codec::Zstd as u8;
            }
        }
    }
    let frame_len = (out.len() - start - 4 + 4) as u32;
    out[start..start + 4].copy_from_slice(&frame_len.to_le_bytes());
    let crc = crc32c::crc32c(&out[start + 4..]);
    out.put_u32_le(crc);
    out.len() - start
}

/// Check a frame's length, version and CRC without decompressing it. Returns the record count.
/// The compactor uses this to verify batches it copies byte for byte.
pub fn verify_frame(frame: &[u8]) -> DecodeResult<u32> {
    Ok(parse_frame(frame)?.1)
}

fn parse_frame(frame: &[u8]) -> DecodeResult<(Codec, u32, usize, &[u8])> {
    let mut c = Cursor::new(frame);
    let frame_len = c.u32()? as usize;
    if frame_len < FRAME_OVERHEAD - 4 {
        return Err(invalid("frame.len", format!("{frame_len} is too short")));
    }
    let body = c.take(frame_len - 4)?;
    let stored = c.u32()?;
    c.finish()?;
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    let mut b = Cursor::new(body);
    let version = b.u8()?;
    if version != FRAME_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version as u16,
            supported: FRAME_VERSION as u16,
        });
    }
    let codec = Codec::from_u8(b.u8()?)?;
    let count = b.u32()?;
    let raw_len = b.u32()? as usize;
    if raw_len > MAX_BATCH_RAW {
        return Err(invalid("frame.raw_len", format!("{raw_len} exceeds limit")));
    }
    let payload = b.take(b.remaining())?;
    Ok((codec, count, raw_len, payload))
}

/// Decode one whole frame (exactly the bytes of the frame) into its records.
pub fn decode_frame(frame: &Bytes) -> DecodeResult<Vec<Record>> {
    let (codec, count, raw_len, payload) = parse_frame(frame)?;
    let raw = match codec {
        Codec::None => frame.slice_ref(payload),
        Codec::Zstd => {
            let out = zstd::bulk::decompress(payload, raw_len)
                .map_err(|e| invalid("frame.payload", format!("zstd: {e}")))?;
            Bytes::from(out)
        }
    };
    if raw.len() != raw_len {
        return Err(invalid(
            "frame.raw_len",
            format!("declared {raw_len}, payload has {}", raw.len()),
        ));
    }
    // Every record takes at least 7 bytes: reject counts the payload cannot hold.
    if (count as usize).saturating_mul(7) > raw.len() {
        return Err(invalid(
            "frame.record_count",
            format!("{count} records cannot fit"),
        ));
    }
    let mut c = Cursor::new(&raw);
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        records.push(Record::decode(&mut c, &raw)?);
    }
    c.finish()?;
    Ok(records)
}

/// Split a run of consecutive frames (e.g. one ranged GET covering several batches) into frames.
pub fn split_frames(bytes: &Bytes) -> DecodeResult<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let mut c = Cursor::new(&bytes[pos..]);
        let len = c.u32()? as usize;
        let end = pos
            .checked_add(4 + len)
            .filter(|&e| e <= bytes.len())
            .ok_or(DecodeError::Truncated {
                at: pos,
                needed: (pos + 4 + len).saturating_sub(bytes.len()),
            })?;
        out.push(bytes.slice(pos..end));
        pos = end;
    }
    Ok(out)
}

/// Decode a whole segment object (header + frames). Used by tools and fuzzing; the read path
/// decodes single frames.
pub fn decode_segment(bytes: &Bytes) -> DecodeResult<Vec<Vec<Record>>> {
    check_segment_header(bytes)?;
    split_frames(&bytes.slice(SEGMENT_HEADER_LEN..))?
        .iter()
        .map(decode_frame)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::new(Some(b"k1"), &b"hello"[..]),
            Record {
                key: None,
                value: Bytes::from_static(b"world"),
                producer_ts: Some(1_700_000_000_000),
                headers: vec![("type".into(), Bytes::from_static(b"created"))],
            },
        ]
    }

    #[test]
    fn frame_round_trip_both_codecs() {
        for codec in [Codec::None, Codec::Zstd] {
            let mut out = BytesMut::new();
            let big: Vec<Record> = (0..50)
                .map(|i| Record::new(None, vec![b'x'; 100 + i]))
                .collect();
            encode_frame(&big, codec, &mut out);
            let frame = out.freeze();
            assert_eq!(decode_frame(&frame).unwrap(), big);
            assert_eq!(verify_frame(&frame).unwrap(), 50);
        }
    }

    /// Pins the version-1 bytes: changing the encoding must bump a version.
    #[test]
    fn frame_bytes_are_pinned() {
        let mut out = BytesMut::new();
        encode_frame(&sample(), Codec::None, &mut out);
        assert_eq!(
            crate::format::hex::of(&out),
            "450000000100020000003700000001020000006b310500000068656c6c6f00000205000000776f726c640068e5cf8b01000001000400747970650700000063726561746564181a4e01"
        );
        assert_eq!(decode_frame(&out.freeze()).unwrap(), sample());
    }

    #[test]
    fn corrupt_frames_are_errors() {
        let mut out = BytesMut::new();
        encode_frame(&sample(), Codec::None, &mut out);
        let frame = out.freeze();
        for i in 0..frame.len() {
            let mut bad = frame.to_vec();
            bad[i] ^= 0x01;
            assert!(decode_frame(&Bytes::from(bad)).is_err(), "flip at {i}");
        }
        for n in 0..frame.len() {
            assert!(decode_frame(&frame.slice(..n)).is_err());
        }
    }
}
