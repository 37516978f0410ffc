//! A record as producers send it and consumers receive it, and its encoding inside a batch
//! payload.
//!
//! ```text
//! record := flags u8 | [key: u32 len + bytes] | value: u32 len + bytes
//!           | [producer_ts i64] | header_count u16 | header*
//! header := name: u16 len + bytes | value: u32 len + bytes
//! flags:  bit 0 = key present, bit 1 = producer timestamp present, other bits must be 0
//! ```

use crate::codec::{invalid, put_bytes16, put_bytes32, Cursor, DecodeResult};
use bytes::{BufMut, Bytes, BytesMut};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Bytes,
    /// Producer-supplied timestamp, kept as given. Replay by time uses the append timestamp.
    pub producer_ts: Option<i64>,
    pub headers: Vec<(String, Bytes)>,
}

const FLAG_KEY: u8 = 1;
const FLAG_TS: u8 = 2;

/// The fewest bytes an encoded record takes: flags (1), value length (4) and header count (2) —
/// no key, an empty value, no timestamp, no header. Decoders bound counts of records with it.
pub const MIN_RECORD_BYTES: usize = 7;

impl Record {
    pub fn new(key: Option<&[u8]>, value: impl Into<Bytes>) -> Self {
        Self {
            key: key.map(Bytes::copy_from_slice),
            value: value.into(),
            producer_ts: None,
            headers: Vec::new(),
        }
    }

    /// Whether the record fits the format's fields (lengths, header count).
    pub fn validate(&self) -> Result<(), String> {
        let too_big = |n: usize| n > u32::MAX as usize;
        if self.key.as_ref().is_some_and(|k| too_big(k.len())) || too_big(self.value.len()) {
            return Err("key or value longer than 4 GiB".into());
        }
        if self.headers.len() > u16::MAX as usize {
            return Err(format!(
                "{} headers, at most {} allowed",
                self.headers.len(),
                u16::MAX
            ));
        }
        for (name, value) in &self.headers {
            if name.len() > u16::MAX as usize || too_big(value.len()) {
                return Err(format!(
                    "header {:?}… is too long",
                    &name[..name.len().min(32)]
                ));
            }
        }
        Ok(())
    }

    /// Bytes this record takes when encoded.
    pub fn encoded_len(&self) -> usize {
        1 + self.key.as_ref().map_or(0, |k| 4 + k.len())
            + 4
            + self.value.len()
            + self.producer_ts.map_or(0, |_| 8)
            + 2
            + self
                .headers
                .iter()
                .map(|(n, v)| 2 + n.len() + 4 + v.len())
                .sum::<usize>()
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let mut flags = 0;
        if self.key.is_some() {
            flags |= FLAG_KEY;
        }
        if self.producer_ts.is_some() {
            flags |= FLAG_TS;
        }
        out.put_u8(flags);
        if let Some(k) = &self.key {
            put_bytes32(out, k);
        }
        put_bytes32(out, &self.value);
        if let Some(ts) = self.producer_ts {
            out.put_i64_le(ts);
        }
        out.put_u16_le(self.headers.len() as u16);
        for (name, value) in &self.headers {
            put_bytes16(out, name.as_bytes());
            put_bytes32(out, value);
        }
    }

    /// Decode one record; `src` is the payload the cursor reads so values can share its memory.
    pub fn decode(c: &mut Cursor<'_>, src: &Bytes) -> DecodeResult<Self> {
        let slice = |s: &[u8]| src.slice_ref(s);
        let flags = c.u8()?;
        if flags & !(FLAG_KEY | FLAG_TS) != 0 {
            return Err(invalid(
                "record.flags",
                format!("unknown bits {flags:#04x}"),
            ));
        }
        let key = if flags & FLAG_KEY != 0 {
            Some(slice(c.bytes32()?))
        } else {
            None
        };
        let value = slice(c.bytes32()?);
        let producer_ts = if flags & FLAG_TS != 0 {
            Some(c.i64()?)
        } else {
            None
        };
        let n = c.u16()? as usize;
        let mut headers = Vec::with_capacity(n.min(c.remaining() / 6));
        for _ in 0..n {
            let name = std::str::from_utf8(c.bytes16()?)
                .map_err(|_| invalid("record.header.name", "not UTF-8"))?
                .to_string();
            headers.push((name, slice(c.bytes32()?)));
        }
        Ok(Self {
            key,
            value,
            producer_ts,
            headers,
        })
    }
}
