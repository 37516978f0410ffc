//! Object keys. Every key family is built and parsed here and nowhere else. Numbers are
//! zero-padded so lexical order is numeric order and `LIST start-after` finds what is new.

use crate::ids::{ObjectId, ProducerId, TopicId};
use object_store::path::Path;

pub const TOPICS: &str = "topics";
pub const SEGMENTS: &str = "segments";
pub const JOURNAL: &str = "journal";
pub const CHECKPOINTS: &str = "checkpoints";
pub const INDEX: &str = "index";
pub const DATA: &str = "data";
/// Shared runs: the records of many small partitions, one object per compactor pass or merge.
pub const RUNS: &str = "runs";
pub const LEASES: &str = "leases";
pub const PRODUCERS: &str = "producers";
/// Parquet tables, by topic *name* (what users glob): `tables/{topic}/...`.
pub const TABLES: &str = "tables";
/// Parquet files written but not yet committed by a table manifest. Outside `tables/`, so no
/// glob over a table (`tables/{topic}/**/*.parquet`) can see them.
pub const TABLE_STAGING: &str = "tables-staging";

pub fn topic_dir(name: &str) -> Path {
    Path::from(format!("{TOPICS}/{name}"))
}
pub fn topic_version(name: &str, version: u64) -> Path {
    Path::from(format!("{TOPICS}/{name}/{version:020}"))
}

pub fn segment(id: ObjectId) -> Path {
    Path::from(format!("{SEGMENTS}/{id}"))
}

pub fn journal_dir(shard: u32) -> Path {
    Path::from(format!("{JOURNAL}/{shard:05}"))
}
pub fn journal_entry(shard: u32, seq: u64) -> Path {
    Path::from(format!("{JOURNAL}/{shard:05}/{seq:020}"))
}

pub fn checkpoint_dir(shard: u32) -> Path {
    Path::from(format!("{CHECKPOINTS}/{shard:05}"))
}
pub fn checkpoint(shard: u32, seq: u64) -> Path {
    Path::from(format!("{CHECKPOINTS}/{shard:05}/{seq:020}"))
}
/// `checkpoints/latest/{shard:05}`: a copy of the shard's newest checkpoint at a fixed name,
/// overwritten by the compactor after each checkpoint it writes, so one GET finds the newest
/// checkpoint (no LIST). Only a hint: readers fall back to listing `checkpoints/{shard}/` when
/// it is missing or unreadable. (Not under `checkpoints/{shard}/`, whose listing holds only
/// numbered checkpoints.)
pub fn checkpoint_pointer(shard: u32) -> Path {
    Path::from(format!("{CHECKPOINTS}/latest/{shard:05}"))
}

pub fn run_dir(shard: u32) -> Path {
    Path::from(format!("{RUNS}/{shard:05}"))
}
/// A shared run of `shard` (create-only, immutable; named in the shard's checkpoints).
pub fn run(shard: u32, id: ObjectId) -> Path {
    Path::from(format!("{RUNS}/{shard:05}/{id}"))
}

pub fn index_dir(topic: TopicId, partition: u32) -> Path {
    Path::from(format!("{INDEX}/{topic}/{partition:05}"))
}

/// The data object holding the batches of offsets `base..end` of a partition.
pub fn data_object(topic: TopicId, partition: u32, base: u64, end: u64) -> Path {
    Path::from(format!(
        "{DATA}/{topic}/{partition:05}/{base:020}-{end:020}"
    ))
}

pub fn data_dir(topic: TopicId, partition: u32) -> Path {
    Path::from(format!("{DATA}/{topic}/{partition:05}"))
}

/// One epoch of an idempotent producer: `producers/{id}/{epoch:020}` (create-only).
pub fn producer_epoch(id: ProducerId, epoch: u32) -> Path {
    Path::from(format!("{PRODUCERS}/{id}/{epoch:020}"))
}
pub fn producer_dir(id: ProducerId) -> Path {
    Path::from(format!("{PRODUCERS}/{id}"))
}

pub fn lease(name: &str, epoch: u64) -> Path {
    Path::from(format!("{LEASES}/{name}/{epoch:020}"))
}
pub fn lease_dir(name: &str) -> Path {
    Path::from(format!("{LEASES}/{name}"))
}

/// State logs ([`crate::statelog`]) live under a prefix owned by their user, e.g.
/// `queues/{queue}/state/{id}`.
pub fn state_log_dir(prefix: &str) -> Path {
    Path::from(format!("{prefix}/log"))
}
pub fn state_entry(prefix: &str, seq: u64) -> Path {
    Path::from(format!("{prefix}/log/{seq:020}"))
}
pub fn state_snapshot_dir(prefix: &str) -> Path {
    Path::from(format!("{prefix}/snap"))
}
pub fn state_snapshot(prefix: &str, seq: u64) -> Path {
    Path::from(format!("{prefix}/snap/{seq:020}"))
}
pub fn table_manifest_dir(topic: &str) -> Path {
    Path::from(format!("{TABLES}/{topic}/_manifest"))
}
/// Version `version` of a topic's table manifest (JSON).
pub fn table_manifest(topic: &str, version: u64) -> Path {
    Path::from(format!("{TABLES}/{topic}/_manifest/{version:020}.json"))
}
/// Parse a manifest file name (`{version:020}.json`).
pub fn parse_table_manifest(filename: &str) -> Option<u64> {
    parse_seq(filename.strip_suffix(".json")?)
}
/// The committed Parquet file added by manifest `version`, under the UTC date of its rows,
/// relative to the table's directory (as the manifest lists it).
pub fn table_file_name(date: &str, version: u64) -> String {
    format!("date={date}/part-{version:020}.parquet")
}
/// An object of a topic's table, from its path relative to `tables/{topic}/`.
pub fn table_object(topic: &str, relative: &str) -> Path {
    Path::from(format!("{TABLES}/{topic}/{relative}"))
}
pub fn table_staging_dir() -> Path {
    Path::from(TABLE_STAGING)
}
/// A Parquet file being written (`id` is a ULID: unique per attempt, ordered by time).
pub fn table_staging(id: ObjectId) -> Path {
    Path::from(format!("{TABLE_STAGING}/{id}"))
}

/// Transactions: `txns/{id}/…` holds a transaction's state log (`log/`, `snap/`) and its staged
/// records (`staged/{object}`); `txn-open/{id}` marks one not finished yet and
/// `txn-done/{finished_ms:020}-{id}` one finished (reaped after a retention).
pub const TXNS: &str = "txns";
pub const TXN_OPEN: &str = "txn-open";
pub const TXN_DONE: &str = "txn-done";

/// The state-log prefix (and whole folder) of transaction `id`.
pub fn txn_prefix(id: ObjectId) -> String {
    format!("{TXNS}/{id}")
}
pub fn txn_dir(id: ObjectId) -> Path {
    Path::from(txn_prefix(id))
}
pub fn txn_staged(id: ObjectId, object: ObjectId) -> Path {
    Path::from(format!("{TXNS}/{id}/staged/{object}"))
}
pub fn txn_open_dir() -> Path {
    Path::from(TXN_OPEN)
}
pub fn txn_open(id: ObjectId) -> Path {
    Path::from(format!("{TXN_OPEN}/{id}"))
}
pub fn txn_done_dir() -> Path {
    Path::from(TXN_DONE)
}
pub fn txn_done(finished_ms: i64, id: ObjectId) -> Path {
    Path::from(format!("{TXN_DONE}/{:020}-{id}", finished_ms.max(0)))
}
/// Parse a `txn-done/` name into (finished_ms, id).
pub fn parse_txn_done(filename: &str) -> Option<(i64, ObjectId)> {
    let (ms, id) = filename.split_once('-')?;
    Some((parse_seq(ms)? as i64, ObjectId::parse(id)?))
}

/// What an index key says about its object, without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexKey {
    pub base: u64,
    pub end: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

impl IndexKey {
    pub fn data_path(&self, topic: TopicId, partition: u32) -> Path {
        data_object(topic, partition, self.base, self.end)
    }

    pub fn path(&self, topic: TopicId, partition: u32) -> Path {
        Path::from(format!(
            "{INDEX}/{topic}/{partition:05}/{:020}-{:020}-{:020}-{:020}",
            self.base,
            self.end,
            self.min_ts.max(0),
            self.max_ts.max(0)
        ))
    }

    /// Parse the last segment of an index key; `None` for anything that is not one.
    pub fn parse(filename: &str) -> Option<Self> {
        let mut it = filename.split('-');
        let mut next = || -> Option<u64> {
            let s = it.next()?;
            (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let k = IndexKey {
            base: next()?,
            end: next()?,
            min_ts: i64::try_from(next()?).ok()?,
            max_ts: i64::try_from(next()?).ok()?,
        };
        (it.next().is_none() && k.base < k.end && k.min_ts <= k.max_ts).then_some(k)
    }
}

/// Parse a zero-padded sequence number (the last segment of journal, checkpoint, topic and
/// lease keys).
pub fn parse_seq(filename: &str) -> Option<u64> {
    (filename.len() == 20 && filename.bytes().all(|b| b.is_ascii_digit()))
        .then(|| filename.parse().ok())
        .flatten()
}

/// Last segment of a path.
pub fn filename(p: &Path) -> &str {
    p.filename().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_key_round_trip_and_order() {
        let t = TopicId([3; 16]);
        let a = IndexKey {
            base: 5,
            end: 9,
            min_ts: 100,
            max_ts: 200,
        };
        let p = a.path(t, 1);
        assert_eq!(IndexKey::parse(filename(&p)), Some(a));
        let b = IndexKey { base: 10, ..a };
        assert!(filename(&a.path(t, 1)) < filename(&IndexKey { end: 11, ..b }.path(t, 1)));
        assert_eq!(IndexKey::parse("garbage"), None);
        assert_eq!(IndexKey::parse("00000000000000000009-00000000000000000005-00000000000000000000-00000000000000000000"), None);
    }

    #[test]
    fn table_keys() {
        let m = table_manifest("orders", 7);
        assert_eq!(
            m.as_ref(),
            "tables/orders/_manifest/00000000000000000007.json"
        );
        assert_eq!(parse_table_manifest(filename(&m)), Some(7));
        assert_eq!(parse_table_manifest("00000000000000000007"), None);
        assert_eq!(
            table_object("orders", &table_file_name("2026-12-02", 7)).as_ref(),
            "tables/orders/date=2026-12-02/part-00000000000000000007.parquet"
        );
    }

    #[test]
    fn txn_keys() {
        let id = ObjectId([7; 16]);
        let done = txn_done(1234, id);
        assert_eq!(parse_txn_done(filename(&done)), Some((1234, id)));
        assert_eq!(parse_txn_done("garbage"), None);
        assert!(txn_staged(id, id)
            .as_ref()
            .starts_with(txn_dir(id).as_ref()));
    }

    #[test]
    fn seq_parse() {
        assert_eq!(parse_seq(filename(&journal_entry(0, 42))), Some(42));
        assert_eq!(parse_seq("42"), None);
    }
}
