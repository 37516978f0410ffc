//! Index object: where a run of one partition's offsets lives, written by the compactor at
//! `index/{topic_id}/{partition:05}/{base:020}-{end:020}-{min_ts:020}-{max_ts:020}`. The key
//! alone tells offset range and time range, so a cached LIST answers "which object" for both
//! offset and timestamp look-ups, and retention needs no GET.
//!
//! ```text
//! envelope("SLIX", version 2, body)
//! body  := topic_id [16] | partition u32 | through_seq u64
//!          | entry_count u32 | entry* | summary?        -- summary: version 2 only
//! entry := base_offset u64 | record_count u32 | append_ts i64 | pos u64 | len u32
//! summary? := 0 u8 (none) | 1 u8 | records u64 | key: field
//!          | header_count u16 | (name: u16 len + UTF-8 | field)*   -- names strictly increasing
//! field := present u64 | 0 u8 (values unknown) | 1 u8 | value_count u16 | (u16 len + bytes)*
//!                                                                  -- values strictly increasing
//! ```
//! Version 1 (no summary) is still decoded, as an object without a summary.
//!
//! The summary says which header names occur in the object's records, how many records have
//! each (and the key), and for low-cardinality ones ([`MAX_SUMMARY_VALUES`] values of at most
//! [`MAX_SUMMARY_VALUE_LEN`] bytes) every value, so a filtered read can skip an object no record
//! of which can match (`Filter::may_match`). Objects with more than [`MAX_SUMMARY_NAMES`]
//! header names, or with a batch that does not decode, have none.
//! All entries are frames of the one data object `data/{topic_id}/{partition:05}/{base:020}-{end:020}`
//! (named by the same offset range, so retention deletes both from a LIST alone), sorted by
//! offset, dense (each entry starts where the previous ended).

use crate::codec::{invalid, open, put_bytes16, seal, Cursor, DecodeResult};
use crate::format::record::Record;
use crate::ids::TopicId;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};

pub const INDEX_MAGIC: [u8; 4] = *b"SLIX";
pub const INDEX_VERSION: u16 = 2;
/// Most distinct header names a summary lists (more: no summary).
pub const MAX_SUMMARY_NAMES: usize = 64;
/// Most distinct values a summary lists per header (more: values unknown).
pub const MAX_SUMMARY_VALUES: usize = 16;
/// Longest value a summary lists (a longer one: values unknown).
pub const MAX_SUMMARY_VALUE_LEN: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexObject {
    pub topic: TopicId,
    pub partition: u32,
    /// The journal seq of the shard this fold read up to (diagnostics).
    pub through_seq: u64,
    pub entries: Vec<IndexEntry>,
    /// What the object's records hold, for filtered reads (none in version 1 objects).
    pub summary: Option<Summary>,
}

/// Which header names and values, and keys, the records of one index object have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records summarized: all of the object's.
    pub records: u64,
    pub key: FieldSummary,
    /// Per header name, sorted by name; a name absent here occurs in no record.
    pub headers: Vec<(String, FieldSummary)>,
}

/// How many records have a field, and which values it takes (when few and short).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSummary {
    pub present: u64,
    /// Every value the field takes, sorted; `None` when unknown (too many or too long).
    pub values: Option<Vec<Bytes>>,
}

/// A field summary being built.
#[derive(Default)]
struct FieldBuilder {
    present: u64,
    values: Option<BTreeSet<Bytes>>,
    overflow: bool,
}

impl FieldBuilder {
    fn add(&mut self, v: &Bytes) {
        self.present += 1;
        if self.overflow {
            return;
        }
        let values = self.values.get_or_insert_with(BTreeSet::new);
        if v.len() > MAX_SUMMARY_VALUE_LEN
            || (values.len() >= MAX_SUMMARY_VALUES && !values.contains(v))
        {
            self.overflow = true;
            self.values = None;
        } else {
            values.insert(v.clone());
        }
    }

    fn finish(self) -> FieldSummary {
        FieldSummary {
            present: self.present,
            values: if self.overflow {
                None
            } else {
                Some(self.values.unwrap_or_default().into_iter().collect())
            },
        }
    }
}

impl Summary {
    /// The summary of `records` (`None` past [`MAX_SUMMARY_NAMES`] header names). With
    /// duplicate header names in a record, the first counts (as filters see it).
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Option<Summary> {
        let mut count = 0u64;
        let mut key = FieldBuilder::default();
        let mut headers: BTreeMap<&'a str, FieldBuilder> = BTreeMap::new();
        for r in records {
            count += 1;
            if let Some(k) = &r.key {
                key.add(k);
            }
            for (i, (name, v)) in r.headers.iter().enumerate() {
                if r.headers[..i].iter().any(|(n, _)| n == name) {
                    continue;
                }
                if !headers.contains_key(name.as_str()) && headers.len() >= MAX_SUMMARY_NAMES {
                    return None;
                }
                headers.entry(name).or_default().add(v);
            }
        }
        Some(Summary {
            records: count,
            key: key.finish(),
            headers: headers
                .into_iter()
                .map(|(n, f)| (n.to_string(), f.finish()))
                .collect(),
        })
    }

    /// The summary of a header (`None`: no record has it).
    pub fn header(&self, name: &str) -> Option<&FieldSummary> {
        self.headers
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| &self.headers[i].1)
    }

    fn encode(&self, b: &mut BytesMut) {
        b.put_u64_le(self.records);
        self.key.encode(b);
        b.put_u16_le(self.headers.len() as u16);
        for (name, f) in &self.headers {
            put_bytes16(b, name.as_bytes());
            f.encode(b);
        }
    }

    fn decode(c: &mut Cursor<'_>) -> DecodeResult<Self> {
        let records = c.u64()?;
        let key = FieldSummary::decode(c, records)?;
        let n = c.u16()? as usize;
        let mut headers: Vec<(String, FieldSummary)> = Vec::with_capacity(n.min(c.remaining()));
        for _ in 0..n {
            let name = std::str::from_utf8(c.bytes16()?)
                .map_err(|_| invalid("index.summary.name", "not UTF-8"))?
                .to_string();
            if headers.last().is_some_and(|(prev, _)| *prev >= name) {
                return Err(invalid("index.summary.name", "not strictly increasing"));
            }
            let f = FieldSummary::decode(c, records)?;
            if f.present == 0 {
                return Err(invalid(
                    "index.summary.present",
                    "a listed header in no record",
                ));
            }
            headers.push((name, f));
        }
        Ok(Self {
            records,
            key,
            headers,
        })
    }
}

impl FieldSummary {
    fn encode(&self, b: &mut BytesMut) {
        b.put_u64_le(self.present);
        match &self.values {
            None => b.put_u8(0),
            Some(values) => {
                b.put_u8(1);
                b.put_u16_le(values.len() as u16);
                for v in values {
                    put_bytes16(b, v);
                }
            }
        }
    }

    fn decode(c: &mut Cursor<'_>, records: u64) -> DecodeResult<Self> {
        let present = c.u64()?;
        if present > records {
            return Err(invalid("index.summary.present", "more than the records"));
        }
        let values = match c.u8()? {
            0 => None,
            1 => {
                let n = c.u16()? as usize;
                let mut values: Vec<Bytes> = Vec::with_capacity(n.min(c.remaining() / 2));
                for _ in 0..n {
                    let v = Bytes::copy_from_slice(c.bytes16()?);
                    if values.last().is_some_and(|prev| *prev >= v) {
                        return Err(invalid("index.summary.values", "not strictly increasing"));
                    }
                    values.push(v);
                }
                if values.is_empty() != (present == 0) {
                    return Err(invalid("index.summary.values", "do not match the count"));
                }
                Some(values)
            }
            _ => return Err(invalid("index.summary.values", "unknown flag")),
        };
        Ok(Self { present, values })
    }
}

/// Bytes of one encoded entry (all fixed width): base_offset 8 + record_count 4 + append_ts 8
/// + pos 8 + len 4.
const ENTRY_BYTES: usize = 8 + 4 + 8 + 8 + 4;

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
        match &self.summary {
            None => b.put_u8(0),
            Some(s) => {
                b.put_u8(1);
                s.encode(&mut b);
            }
        }
        seal(INDEX_MAGIC, INDEX_VERSION, &b)
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let (version, body) = open(INDEX_MAGIC, INDEX_VERSION, bytes)?;
        let mut c = Cursor::new(body);
        let topic = TopicId(c.array()?);
        let partition = c.u32()?;
        let through_seq = c.u64()?;
        let n = c.count("index.entries", ENTRY_BYTES)?;
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
        let summary = match version {
            1 => None,
            _ => match c.u8()? {
                0 => None,
                1 => Some(Summary::decode(&mut c)?),
                _ => return Err(invalid("index.summary", "unknown flag")),
            },
        };
        c.finish()?;
        let index = Self {
            topic,
            partition,
            through_seq,
            entries,
            summary,
        };
        let records = index.end_offset() - index.base_offset();
        if index.summary.as_ref().is_some_and(|s| s.records != records) {
            return Err(invalid("index.summary.records", "differs from the entries"));
        }
        Ok(index)
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
        summary: Some(Summary {
            records: 3,
            key: FieldSummary {
                present: 2,
                values: Some(vec![Bytes::from_static(b"k1"), Bytes::from_static(b"k2")]),
            },
            headers: vec![
                (
                    "id".into(),
                    FieldSummary {
                        present: 3,
                        values: None,
                    },
                ),
                (
                    "type".into(),
                    FieldSummary {
                        present: 1,
                        values: Some(vec![Bytes::from_static(b"paid")]),
                    },
                ),
            ],
        }),
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

    /// A version 1 object as the compactor wrote it before summaries: still decodes.
    const V1: &str = "534c495801000000600000000101010101010101010101010101010103000000090000000000000002000000640000000000000002000000e803000000000000080000000000000032000000660000000000000001000000ed030000000000003a000000000000001e000000fbbbe5fa";

    #[test]
    fn version_1_bytes_still_decode() {
        let bytes = crate::format::hex::bytes(V1);
        let want = IndexObject {
            summary: None,
            ..sample_index()
        };
        assert_eq!(IndexObject::decode(&bytes).unwrap(), want);
    }

    #[test]
    fn the_smallest_entries_decode() {
        // Entries are fixed width (32 bytes) and only the summary flag (1 byte) follows them, so
        // 3 entries leave 97 bytes after the count: a bound of 33 bytes an entry would refuse it.
        let index = IndexObject {
            entries: (0..3)
                .map(|i| IndexEntry {
                    base_offset: i,
                    record_count: 1,
                    append_ts: 0,
                    pos: 0,
                    len: 0,
                })
                .collect(),
            summary: None,
            ..sample_index()
        };
        assert_eq!(IndexObject::decode(&index.encode()).unwrap(), index);
    }

    #[test]
    fn bytes_are_pinned() {
        assert_eq!(
            crate::format::hex::of(&sample_index().encode()),
            "534c495802000000a20000000101010101010101010101010101010103000000090000000000000002000000640000000000000002000000e803000000000000080000000000000032000000660000000000000001000000ed030000000000003a000000000000001e000000010300000000000000020000000000000001020002006b3102006b320200020069640300000000000000000400747970650100000000000000010100040070616964355e2d98"
        );
        let none = IndexObject {
            summary: None,
            ..sample_index()
        };
        assert_eq!(IndexObject::decode(&none.encode()).unwrap(), none);
    }

    fn rec(key: Option<&str>, headers: &[(&str, &str)]) -> Record {
        let mut r = Record::new(key.map(str::as_bytes), Bytes::new());
        for (n, v) in headers {
            r.headers
                .push((n.to_string(), Bytes::copy_from_slice(v.as_bytes())));
        }
        r
    }

    #[test]
    fn summaries_list_names_counts_and_few_short_values() {
        let long = "x".repeat(MAX_SUMMARY_VALUE_LEN + 1);
        let records = vec![
            rec(
                Some("k1"),
                &[("type", "paid"), ("type", "dup"), ("long", &long)],
            ),
            rec(None, &[("type", "created"), ("long", "short")]),
            rec(Some("k1"), &[]),
        ];
        let s = Summary::of(&records).unwrap();
        assert_eq!(s.records, 3);
        assert_eq!(
            s.key,
            FieldSummary {
                present: 2,
                values: Some(vec![Bytes::from_static(b"k1")])
            }
        );
        let t = s.header("type").unwrap();
        assert_eq!(t.present, 2);
        assert_eq!(
            t.values,
            Some(vec![
                Bytes::from_static(b"created"),
                Bytes::from_static(b"paid")
            ])
        );
        assert_eq!(s.header("long").unwrap().values, None);
        assert_eq!(s.header("long").unwrap().present, 2);
        assert!(s.header("missing").is_none());

        let many: Vec<Record> = (0..=MAX_SUMMARY_VALUES)
            .map(|i| rec(None, &[("n", &i.to_string())]))
            .collect();
        let s = Summary::of(&many).unwrap();
        assert_eq!(s.header("n").unwrap().values, None);
        assert_eq!(
            Summary::of(&many[..MAX_SUMMARY_VALUES])
                .unwrap()
                .header("n")
                .unwrap()
                .values
                .as_ref()
                .map(Vec::len),
            Some(MAX_SUMMARY_VALUES)
        );
        let names: Vec<(String, String)> = (0..=MAX_SUMMARY_NAMES)
            .map(|i| (format!("h{i}"), String::new()))
            .collect();
        let wide: Vec<(&str, &str)> = names
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert!(Summary::of(&[rec(None, &wide)]).is_none());
        assert!(Summary::of(&[rec(None, &wide[..MAX_SUMMARY_NAMES])]).is_some());
    }

    #[test]
    fn inconsistent_summaries_are_rejected() {
        let mut bad = sample_index();
        bad.summary.as_mut().unwrap().records = 4;
        assert!(IndexObject::decode(&bad.encode()).is_err());
        let mut bad = sample_index();
        bad.summary.as_mut().unwrap().headers.swap(0, 1);
        assert!(IndexObject::decode(&bad.encode()).is_err());
        let mut bad = sample_index();
        bad.summary.as_mut().unwrap().key.present = 9;
        assert!(IndexObject::decode(&bad.encode()).is_err());
    }
}
