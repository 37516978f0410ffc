//! Shared run: the records of many small partitions folded by one compactor pass over one
//! shard (or merged from earlier runs), written once at `runs/{shard:05}/{ulid}` and never
//! rewritten. Where each partition's part (a *slice*) lies is kept in the shard's checkpoint
//! ([`Slice`]), so writing a run costs one PUT however many partitions it holds.
//!
//! ```text
//! run   := "SLRN" | version u16 = 1 | reserved u16 = 0 | slice*
//! slice := index (an SLIX envelope, see `index.rs`) | frame*
//! ```
//! A slice's index object names its partition; its entries' `pos` count from the start of
//! the slice (the first frame starts right after the index, each next one where the previous
//! ended, the last one ends the slice), so one ranged GET of `pos .. pos + len` (from the
//! checkpoint) yields both the index and the frames.

use crate::codec::{invalid, DecodeResult};
use crate::format::checkpoint::Slice;
use crate::format::index::{IndexEntry, IndexObject, Summary};
use crate::ids::{ObjectId, PartitionId};
use bytes::Bytes;

pub const RUN_MAGIC: [u8; 4] = *b"SLRN";
pub const RUN_VERSION: u16 = 1;
pub const RUN_HEADER_LEN: usize = 8;

pub fn run_header() -> [u8; RUN_HEADER_LEN] {
    let mut h = [0u8; RUN_HEADER_LEN];
    h[..4].copy_from_slice(&RUN_MAGIC);
    h[4..6].copy_from_slice(&RUN_VERSION.to_le_bytes());
    h
}

/// One batch going into a slice: its offsets and time (from the journal), its frame bytes.
#[derive(Clone, Debug)]
pub struct SliceBatch {
    pub base_offset: u64,
    pub record_count: u32,
    pub append_ts: i64,
    pub frame: Bytes,
}

/// The index entries of `batches` laid out one after another from `first_pos`.
pub fn index_entries(batches: &[SliceBatch], first_pos: u64) -> Vec<IndexEntry> {
    let mut pos = first_pos;
    batches
        .iter()
        .map(|b| {
            let e = IndexEntry {
                base_offset: b.base_offset,
                record_count: b.record_count,
                append_ts: b.append_ts,
                pos,
                len: b.frame.len() as u32,
            };
            pos += b.frame.len() as u64;
            e
        })
        .collect()
}

/// Builds the bytes of one run, slice by slice.
pub struct RunBuilder {
    id: ObjectId,
    parts: Vec<Bytes>,
    len: u64,
    slices: Vec<Slice>,
}

impl RunBuilder {
    pub fn new(id: ObjectId) -> Self {
        Self {
            id,
            parts: vec![Bytes::copy_from_slice(&run_header())],
            len: RUN_HEADER_LEN as u64,
            slices: Vec::new(),
        }
    }

    /// Append the slice of `p` holding `batches` (dense, in offset order, non-empty).
    pub fn push(
        &mut self,
        p: PartitionId,
        batches: Vec<SliceBatch>,
        summary: Option<Summary>,
        through_seq: u64,
    ) {
        // Fixed-width fields: the index's length does not depend on the positions in it.
        let mut index = IndexObject {
            topic: p.topic,
            partition: p.partition,
            through_seq,
            entries: index_entries(&batches, 0),
            summary,
        };
        let index_len = index.encode().len() as u64;
        index.entries = index_entries(&batches, index_len);
        let encoded = index.encode();
        let len = index
            .entries
            .last()
            .map_or(index_len, |e| e.pos + e.len as u64);
        self.slices.push(Slice {
            partition: p,
            run: self.id,
            base: index.base_offset(),
            end: index.end_offset(),
            min_ts: index.min_ts(),
            max_ts: index.max_ts(),
            pos: self.len,
            index_len: index_len as u32,
            len: len as u32,
        });
        self.parts.push(encoded);
        self.parts.extend(batches.into_iter().map(|b| b.frame));
        self.len += len;
    }

    pub fn id(&self) -> ObjectId {
        self.id
    }

    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// The run's bytes (as parts, for one PUT) and its slices.
    pub fn finish(self) -> (Vec<Bytes>, Vec<Slice>) {
        (self.parts, self.slices)
    }
}

/// Decode one slice fetched with a ranged GET of `slice.pos .. slice.pos + slice.len`:
/// its index (checked against what the checkpoint says of it) and its frames (not decoded;
/// each is CRC-checked when it is).
pub fn decode_slice(bytes: &Bytes, slice: &Slice) -> DecodeResult<(IndexObject, Vec<Bytes>)> {
    if bytes.len() != slice.len as usize || slice.index_len > slice.len {
        return Err(invalid("run.slice", "length differs from the checkpoint"));
    }
    let index = IndexObject::decode(&bytes[..slice.index_len as usize])?;
    if index.topic != slice.partition.topic
        || index.partition != slice.partition.partition
        || index.base_offset() != slice.base
        || index.end_offset() != slice.end
        || index.min_ts() != slice.min_ts
        || index.max_ts() != slice.max_ts
    {
        return Err(invalid("run.slice.index", "differs from the checkpoint"));
    }
    let mut at = slice.index_len as u64;
    let mut frames = Vec::with_capacity(index.entries.len());
    for e in &index.entries {
        let end = e.pos.checked_add(e.len as u64);
        if e.pos != at || end.is_none_or(|end| end > bytes.len() as u64) {
            return Err(invalid(
                "run.slice.frames",
                "not contiguous within the slice",
            ));
        }
        let end = end.unwrap_or_default();
        frames.push(bytes.slice(at as usize..end as usize));
        at = end;
    }
    if at != bytes.len() as u64 {
        return Err(invalid("run.slice.frames", "do not end the slice"));
    }
    Ok((index, frames))
}

/// The bytes of a whole run cut into the slices the checkpoint names (for a merge).
pub fn slice_of_run(run: &Bytes, slice: &Slice) -> DecodeResult<Bytes> {
    let end = slice.pos.checked_add(slice.len as u64);
    if slice.pos < RUN_HEADER_LEN as u64 || end.is_none_or(|e| e > run.len() as u64) {
        return Err(invalid("run.slice", "outside the run"));
    }
    // Version 1 only: magic, version and the reserved bytes exactly.
    if run[..RUN_HEADER_LEN] != run_header() {
        return Err(invalid("run.header", "not a version 1 run"));
    }
    Ok(run.slice(slice.pos as usize..end.unwrap_or_default() as usize))
}

#[cfg(test)]
pub(crate) fn sample_run() -> (Bytes, Vec<Slice>) {
    use crate::format::record::Record;
    use crate::format::segment::{encode_frame, Codec};
    use crate::ids::TopicId;
    use bytes::BytesMut;
    let frame = |v: &[u8]| {
        let mut b = BytesMut::new();
        encode_frame(&[Record::new(None, v.to_vec())], Codec::None, &mut b);
        b.freeze()
    };
    let mut run = RunBuilder::new(ObjectId([9; 16]));
    for (partition, base) in [(0u32, 10u64), (3, 0)] {
        let p = PartitionId {
            topic: TopicId([1; 16]),
            partition,
        };
        let batches = vec![
            SliceBatch {
                base_offset: base,
                record_count: 1,
                append_ts: 100,
                frame: frame(b"a"),
            },
            SliceBatch {
                base_offset: base + 1,
                record_count: 1,
                append_ts: 101,
                frame: frame(b"bc"),
            },
        ];
        run.push(p, batches, None, 7);
    }
    let (parts, slices) = run.finish();
    (Bytes::from(parts.concat()), slices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::segment::decode_frame;

    #[test]
    fn slices_decode_from_their_ranges() {
        let (run, slices) = sample_run();
        assert_eq!(slices.len(), 2);
        for s in &slices {
            let bytes = slice_of_run(&run, s).unwrap();
            let (index, frames) = decode_slice(&bytes, s).unwrap();
            assert_eq!(index.base_offset(), s.base);
            assert_eq!(frames.len(), 2);
            assert_eq!(decode_frame(&frames[1]).unwrap()[0].value.as_ref(), b"bc");
        }
        assert_eq!(slices[1].pos, slices[0].pos + slices[0].len as u64);
        assert_eq!(
            slices[1].pos + slices[1].len as u64,
            run.len() as u64,
            "slices tile the run"
        );
    }

    #[test]
    fn a_slice_that_differs_from_the_checkpoint_is_rejected() {
        let (run, slices) = sample_run();
        let bytes = slice_of_run(&run, &slices[0]).unwrap();
        let mut wrong = slices[0];
        wrong.end += 1;
        assert!(decode_slice(&bytes, &wrong).is_err());
        let mut wrong = slices[0];
        wrong.partition.partition = 3;
        assert!(decode_slice(&bytes, &wrong).is_err());
        // The other slice's bytes under this slice's description.
        let other = slice_of_run(&run, &slices[1]).unwrap();
        assert!(decode_slice(&other, &slices[0]).is_err());
        assert!(decode_slice(&bytes.slice(1..), &slices[0]).is_err());
    }

    #[test]
    fn bytes_are_pinned() {
        let (run, _) = sample_run();
        assert_eq!(
            crate::format::hex::of(&run[..RUN_HEADER_LEN]),
            "534c524e01000000"
        );
        assert_eq!(run.len(), 340);
    }
}
