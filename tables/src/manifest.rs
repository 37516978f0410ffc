//! The table manifest: `tables/{topic}/_manifest/{version:020}.json`, one create-only object per
//! change. The newest version is the table: the files it lists (each with the offset range of
//! every partition it holds) are exactly the rows of the table, and `next` says, per partition,
//! where the table continues (offsets below it are in a listed file, or were deleted by
//! retention before they were written, or were dropped from the table by retention since).
//!
//! ```json
//! {"format":1,"topic":"orders","topic_id":"01JD…","version":3,
//!  "next":[{"partition":0,"offset":120}],
//!  "files":[{"path":"date=2026-12-02/part-00000000000000000003.parquet",
//!            "staging":"01JD…","added_in":3,"rows":120,"bytes":5120,
//!            "min_ts":1764633600000,"max_ts":1764633900000,
//!            "partitions":[{"partition":0,"start":0,"end":120}]}],
//!  "removed":[],"crc32c":1234567890}
//! ```
//!
//! `crc32c` is the CRC32C of the compact JSON of the same object with `crc32c` set to 0 (the
//! encoder is the only writer, and serde writes fields in declaration order).

use serde::{Deserialize, Serialize};
use sluice_core::codec::{invalid, DecodeResult};

pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Topic name (the table's directory).
    pub topic: String,
    /// Incarnation of the topic the rows come from: a re-created topic starts a new table.
    pub topic_id: String,
    pub version: u64,
    /// Per partition, the next offset the table takes; partitions not listed start at 0.
    pub next: Vec<PartitionNext>,
    pub files: Vec<TableFile>,
    /// Paths dropped by this version (retention, re-created topic); deleted once it is
    /// committed.
    pub removed: Vec<String>,
    pub crc32c: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionNext {
    pub partition: u32,
    pub offset: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableFile {
    /// Relative to `tables/{topic}/`.
    pub path: String,
    /// Name of the staged object under `tables-staging/` it is renamed from.
    pub staging: String,
    /// The manifest version that added it (the one whose roll-forward renames it).
    pub added_in: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Append-time range of its rows (ms since the epoch, UTC).
    pub min_ts: i64,
    pub max_ts: i64,
    pub partitions: Vec<OffsetRange>,
}

/// Offsets `start..end` of one partition: every one of them is a row of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetRange {
    pub partition: u32,
    pub start: u64,
    pub end: u64,
}

impl Manifest {
    pub fn new(topic: &str, topic_id: &str, version: u64) -> Self {
        Self {
            format: MANIFEST_FORMAT,
            topic: topic.to_string(),
            topic_id: topic_id.to_string(),
            version,
            ..Default::default()
        }
    }

    pub fn next_offset(&self, partition: u32) -> u64 {
        self.next
            .iter()
            .find(|n| n.partition == partition)
            .map_or(0, |n| n.offset)
    }

    pub fn set_next(&mut self, partition: u32, offset: u64) {
        match self.next.iter_mut().find(|n| n.partition == partition) {
            Some(n) => n.offset = offset,
            None => {
                self.next.push(PartitionNext { partition, offset });
                self.next.sort_by_key(|n| n.partition);
            }
        }
    }

    /// The next version: same table, nothing removed yet.
    pub fn successor(&self) -> Self {
        Self {
            version: self.version + 1,
            removed: Vec::new(),
            ..self.clone()
        }
    }

    /// Drop the files whose rows are all older than `cutoff` (retention); `true` if any.
    pub fn expire(&mut self, cutoff: i64) -> bool {
        let (old, keep): (Vec<_>, Vec<_>) = self.files.drain(..).partition(|f| f.max_ts < cutoff);
        self.files = keep;
        self.removed.extend(old.into_iter().map(|f| f.path));
        !self.removed.is_empty()
    }

    fn crc(&self) -> u32 {
        let mut unsigned = self.clone();
        unsigned.crc32c = 0;
        crc32c::crc32c(&serde_json::to_vec(&unsigned).unwrap_or_default())
    }

    pub fn encode(&self) -> bytes::Bytes {
        let mut m = self.clone();
        m.crc32c = m.crc();
        bytes::Bytes::from(serde_json::to_vec(&m).unwrap_or_default())
    }

    /// Decode and check: format, CRC, and that the file ranges are valid, do not overlap and
    /// lie below `next`.
    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| invalid("manifest", e.to_string()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(invalid("manifest.format", format!("unknown {}", m.format)));
        }
        if m.crc() != m.crc32c {
            return Err(invalid("manifest.crc32c", "mismatch"));
        }
        let mut ranges: Vec<OffsetRange> = Vec::new();
        for f in &m.files {
            if f.rows == 0
                || f.min_ts > f.max_ts
                || f.added_in > m.version
                || f.partitions.is_empty()
            {
                return Err(invalid(
                    "manifest.files",
                    format!("invalid file {}", f.path),
                ));
            }
            let rows: u64 = f
                .partitions
                .iter()
                .map(|r| r.end.saturating_sub(r.start))
                .sum();
            if rows != f.rows {
                return Err(invalid(
                    "manifest.files",
                    "rows differ from the offset ranges",
                ));
            }
            for r in &f.partitions {
                if r.start >= r.end || r.end > m.next_offset(r.partition) {
                    return Err(invalid("manifest.files", "invalid offset range"));
                }
            }
            ranges.extend(&f.partitions);
        }
        ranges.sort_by_key(|r| (r.partition, r.start));
        if ranges
            .windows(2)
            .any(|w| w[0].partition == w[1].partition && w[1].start < w[0].end)
        {
            return Err(invalid("manifest.files", "overlapping offset ranges"));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut m = Manifest::new("orders", "01JDC0000000000000000000AA", 2);
        m.set_next(1, 7);
        m.set_next(0, 5);
        m.files.push(TableFile {
            path: "date=2026-12-02/part-00000000000000000002.parquet".into(),
            staging: "01JDC0000000000000000000AB".into(),
            added_in: 2,
            rows: 12,
            bytes: 100,
            min_ts: 10,
            max_ts: 20,
            partitions: vec![
                OffsetRange {
                    partition: 0,
                    start: 0,
                    end: 5,
                },
                OffsetRange {
                    partition: 1,
                    start: 0,
                    end: 7,
                },
            ],
        });
        m
    }

    #[test]
    fn round_trip_and_crc() {
        let m = sample();
        assert_eq!(m.next[0].partition, 0, "next is kept sorted");
        let bytes = m.encode();
        let back = Manifest::decode(&bytes).unwrap();
        assert_eq!(back.files, m.files);
        assert_eq!(back.next_offset(1), 7);
        assert_eq!(back.next_offset(9), 0);
        let flipped = String::from_utf8(bytes.to_vec())
            .unwrap()
            .replace("\"rows\":12", "\"rows\":13");
        assert!(
            Manifest::decode(flipped.as_bytes()).is_err(),
            "CRC catches edits"
        );
        assert!(Manifest::decode(b"{}").is_err());
        assert!(Manifest::decode(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn rejects_overlaps_and_ranges_past_next() {
        let mut m = sample();
        let mut dup = m.files[0].clone();
        dup.path = "other".into();
        m.files.push(dup);
        assert!(Manifest::decode(&m.encode()).is_err(), "overlap");
        let mut m = sample();
        m.set_next(0, 4);
        assert!(Manifest::decode(&m.encode()).is_err(), "range past next");
    }

    #[test]
    fn expire_drops_only_wholly_old_files() {
        let mut m = sample();
        assert!(!m.successor().expire(20), "max_ts 20 is not older than 20");
        let mut s = m.successor();
        assert!(s.expire(21));
        assert!(s.files.is_empty());
        assert_eq!(s.removed, vec![m.files[0].path.clone()]);
        assert_eq!(s.next_offset(0), 5, "next survives retention");
        m.files.clear();
        assert!(!m.expire(i64::MAX));
    }
}
