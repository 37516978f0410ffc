//! Topics as Parquet tables. The compactor calls [`Tables::pass`] after folding; for every topic
//! with `parquet: true` it appends the records not yet in the table as one Parquet file (one UTC
//! date per file), and it applies retention to table files.
//!
//! Layout (see docs/FORMAT.md, "Parquet tables"):
//! - `tables/{topic}/date=YYYY-MM-DD/part-{version:020}.parquet`: committed files;
//! - `tables/{topic}/_manifest/{version:020}.json`: the manifest, one create-only version per
//!   change ([`manifest`]);
//! - `tables-staging/{ulid}`: files being written, outside `tables/`, so no glob over a table
//!   sees them.
//!
//! Exactly once, whatever crashes: a file is written to staging, then manifest `v+1` listing it
//! is created (create-only: one writer wins), and only then is it renamed to its final path.
//! A final path therefore only ever holds the one file manifest `v+1` committed for its rows,
//! and a restarted compactor first rolls the newest manifest forward (rename what it added,
//! delete what it removed) before writing anything else. Staged files no manifest took are
//! deleted after `staging_grace_ms`.

pub mod columns;
pub mod manifest;

use futures::Future;
use manifest::{Manifest, OffsetRange, TableFile};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_core::clock::Clock;
use sluice_core::error::{Error, Result};
use sluice_core::ids::{new_ulid, ObjectId};
use sluice_core::keys;
use sluice_core::log::{Log, LogConfig};
use sluice_core::store::{self, Created, DynStore};
use sluice_core::topic::TopicConfig;
use std::collections::HashMap;
use std::sync::Arc;

/// Manifest versions kept behind the newest (readers that listed an older one can still GET
/// it for a while).
const KEEP_MANIFESTS: u64 = 10;

/// Checked before every write and delete: the caller's single-active lease.
pub trait Fence {
    fn check(&mut self) -> impl Future<Output = Result<()>> + Send;
}

/// Fail unless the lease is held with margin: every compactor write and delete checks this
/// first, so a compactor that lost its lease (paused, partitioned) stops touching the bucket. A
/// long pass renews the lease here (a PUT only once a third of its duration has passed).
impl Fence for sluice_core::lease::Lease {
    async fn check(&mut self) -> Result<()> {
        if self.acquire().await? && self.epoch().is_some() {
            return Ok(());
        }
        Err(Error::Conflict("compactor lease lost; fenced".into()))
    }
}

#[derive(Clone, Debug)]
pub struct TablesConfig {
    /// Row groups are closed at this estimated encoded size (parquet's `max_row_group_bytes`).
    pub row_group_bytes: usize,
    /// Most record bytes one file takes (one file per topic per pass); the rest waits for the
    /// next pass, which follows without a pause.
    pub max_file_bytes: usize,
    /// Record bytes read (and converted to one Arrow batch) at a time.
    pub read_chunk_bytes: usize,
    /// zstd level of the Parquet pages.
    pub zstd_level: i32,
    /// Staged files no manifest took are deleted once older than this.
    pub staging_grace_ms: i64,
}

impl Default for TablesConfig {
    fn default() -> Self {
        Self {
            row_group_bytes: 64 << 20,
            max_file_bytes: 512 << 20,
            read_chunk_bytes: 4 << 20,
            zstd_level: 3,
            staging_grace_ms: 10 * 60_000,
        }
    }
}

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablesReport {
    pub files_written: u64,
    pub rows_written: u64,
    /// Record bytes (keys, values, headers) written into files.
    pub record_bytes: u64,
    pub files_expired: u64,
    /// A topic has more to write than one pass takes.
    pub backlog: bool,
}

/// A topic's table as this process last saw it: the newest manifest, rolled forward.
struct Known {
    manifest: Option<Manifest>,
}

pub struct Tables {
    store: DynStore,
    clock: Arc<dyn Clock>,
    cfg: TablesConfig,
    log: Arc<Log>,
    known: HashMap<String, Known>,
}

impl Tables {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, cfg: TablesConfig) -> Self {
        let mut log_cfg = LogConfig::default();
        // The compactor moves batches from the journal tail to index objects: see its
        // checkpoints at once.
        log_cfg.shard.checkpoint_refresh = std::time::Duration::ZERO;
        Self {
            log: Log::new(store.clone(), clock.clone(), log_cfg),
            store,
            clock,
            cfg,
            known: HashMap::new(),
        }
    }

    /// One pass over `topics` (the live ones): write what is new for those with `parquet`, and
    /// when `retention` is set, drop table files wholly past their topic's retention and
    /// delete abandoned staged files.
    pub async fn pass(
        &mut self,
        topics: &[Arc<TopicConfig>],
        retention: bool,
        fence: &mut impl Fence,
    ) -> Result<TablesReport> {
        let mut report = TablesReport::default();
        for t in topics {
            let relevant = t.parquet || (retention && t.retention_ms.is_some());
            if !relevant {
                continue;
            }
            self.load(&t.name, fence).await?;
            if self.manifest(&t.name).is_none() && !t.parquet {
                continue;
            }
            self.new_incarnation(t, fence).await?;
            if retention {
                self.expire(t, fence, &mut report).await?;
            }
            if t.parquet {
                self.append(t, fence, &mut report).await?;
            }
        }
        if retention {
            self.clean_staging(fence).await?;
        }
        Ok(report)
    }

    fn manifest(&self, topic: &str) -> Option<&Manifest> {
        self.known.get(topic).and_then(|k| k.manifest.as_ref())
    }

    /// Load the newest manifest (once; later passes use the one this process committed) and
    /// roll it forward.
    async fn load(&mut self, topic: &str, fence: &mut impl Fence) -> Result<()> {
        if self.known.contains_key(topic) {
            return Ok(());
        }
        let dir = keys::table_manifest_dir(topic);
        let names = store::list_names(&*self.store, &dir, None).await?;
        let versions: Vec<u64> = names
            .iter()
            .filter_map(|n| keys::parse_table_manifest(n))
            .collect();
        let mut manifest = None;
        for &v in versions.iter().rev() {
            let key = keys::table_manifest(topic, v);
            let Some(bytes) = store::get_opt(&*self.store, &key).await? else {
                continue;
            };
            let m = Manifest::decode(&bytes).map_err(|e| Error::corrupt(&key, e))?;
            if m.version != v || m.topic != topic {
                return Err(Error::corrupt(
                    &key,
                    sluice_core::codec::invalid("manifest.version", "does not match its key"),
                ));
            }
            manifest = Some(m);
            break;
        }
        if let Some(m) = &manifest {
            self.roll_forward(m, fence).await?;
            for &old in versions.iter().filter(|&&v| v + KEEP_MANIFESTS < m.version) {
                fence.check().await?;
                store::delete(&*self.store, &keys::table_manifest(topic, old)).await?;
            }
        }
        self.known.insert(topic.to_string(), Known { manifest });
        Ok(())
    }

    /// Finish what committing `m` started: rename the files it added from staging to their
    /// final paths, delete the ones it removed. Idempotent.
    async fn roll_forward(&self, m: &Manifest, fence: &mut impl Fence) -> Result<()> {
        for f in m.files.iter().filter(|f| f.added_in == m.version) {
            let to = keys::table_object(&m.topic, &f.path);
            let from = staging_path(&f.staging)?;
            fence.check().await?;
            match self.store.rename(&from, &to).await {
                Ok(()) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    // Renamed before (by us, or a predecessor that crashed afterwards).
                    self.store
                        .head(&to)
                        .await
                        .map_err(|e| Error::store("head", &to, e))?;
                }
                Err(e) => return Err(Error::store("rename", &from, e)),
            }
        }
        for path in &m.removed {
            fence.check().await?;
            store::delete(&*self.store, &keys::table_object(&m.topic, path)).await?;
        }
        Ok(())
    }

    /// Create `next` (create-only), then roll it forward. On a lost race the cached state is
    /// dropped so the next pass reloads.
    async fn commit(&mut self, next: Manifest, fence: &mut impl Fence) -> Result<()> {
        let key = keys::table_manifest(&next.topic, next.version);
        fence.check().await?;
        match store::put_create(&*self.store, &key, next.encode()).await {
            Ok(Created::Yes) => {}
            Ok(Created::AlreadyExists) => {
                self.known.remove(&next.topic);
                return Err(Error::Conflict(format!(
                    "table manifest {key} was written by another compactor"
                )));
            }
            Err(e) => {
                // Unknown outcome: reload (and roll forward whatever landed) next pass.
                self.known.remove(&next.topic);
                return Err(e);
            }
        }
        self.roll_forward(&next, fence).await?;
        if next.version > KEEP_MANIFESTS {
            store::delete(
                &*self.store,
                &keys::table_manifest(&next.topic, next.version - KEEP_MANIFESTS - 1),
            )
            .await?;
        }
        self.known.insert(
            next.topic.clone(),
            Known {
                manifest: Some(next),
            },
        );
        Ok(())
    }

    /// A topic deleted and created again is a new incarnation with offsets from 0: its table
    /// starts empty, and the old files are removed before any new one appears.
    async fn new_incarnation(&mut self, t: &TopicConfig, fence: &mut impl Fence) -> Result<()> {
        let Some(m) = self.manifest(&t.name) else {
            return Ok(());
        };
        if m.topic_id == t.id {
            return Ok(());
        }
        let mut next = Manifest::new(&t.name, &t.id, m.version + 1);
        next.removed = m.files.iter().map(|f| f.path.clone()).collect();
        self.commit(next, fence).await
    }

    async fn expire(
        &mut self,
        t: &TopicConfig,
        fence: &mut impl Fence,
        report: &mut TablesReport,
    ) -> Result<()> {
        let (Some(retention), Some(m)) = (t.retention_ms, self.manifest(&t.name)) else {
            return Ok(());
        };
        let mut next = m.successor();
        if !next.expire(self.clock.now_ms() - retention) {
            return Ok(());
        }
        report.files_expired += next.removed.len() as u64;
        self.commit(next, fence).await
    }

    /// Append the records after the manifest's `next` offsets as one file: the records of the
    /// oldest UTC date any partition has pending, up to `max_file_bytes`.
    async fn append(
        &mut self,
        t: &TopicConfig,
        fence: &mut impl Fence,
        report: &mut TablesReport,
    ) -> Result<()> {
        let base = self
            .manifest(&t.name)
            .cloned()
            .unwrap_or_else(|| Manifest::new(&t.name, &t.id, 0));
        // Where each partition continues, and the append time there.
        let mut pending: Vec<(u32, u64, i64)> = Vec::new();
        for p in 0..t.partitions {
            if let Some((offset, ts)) = self.peek(t, p, base.next_offset(p)).await? {
                pending.push((p, offset, ts));
            }
        }
        let Some(date) = pending
            .iter()
            .map(|(_, _, ts)| columns::utc_date(*ts))
            .min()
        else {
            return Ok(());
        };
        let mut next = base.successor();
        let staging = ObjectId::from_ulid(new_ulid(self.clock.now_ms()));
        let staging_key = keys::table_staging(staging);
        let schema = columns::schema();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(self.cfg.zstd_level)
                    .map_err(|e| Error::Invalid(e.to_string()))?,
            ))
            .set_max_row_group_row_count(None)
            .set_max_row_group_bytes(Some(self.cfg.row_group_bytes))
            .build();
        fence.check().await?;
        let mut writer = AsyncArrowWriter::try_new(
            BufWriter::new(self.store.clone(), staging_key.clone()),
            schema.clone(),
            Some(props),
        )
        .map_err(|e| parquet_error(&staging_key, e))?;
        let mut file = TableFile {
            path: String::new(),
            staging: staging.to_string(),
            added_in: next.version,
            rows: 0,
            bytes: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            partitions: Vec::new(),
        };
        let mut record_bytes = 0usize;
        for &(p, start, ts) in &pending {
            if columns::utc_date(ts) != date {
                report.backlog = true;
                continue;
            }
            let mut at = start;
            loop {
                if record_bytes >= self.cfg.max_file_bytes {
                    report.backlog = true;
                    break;
                }
                let got = self
                    .log
                    .read(t, p, at, 100_000, self.cfg.read_chunk_bytes)
                    .await?
                    .records;
                let same_day = got
                    .iter()
                    .take_while(|r| columns::utc_date(r.append_ts) == date)
                    .count();
                let chunk = &got[..same_day];
                if let (Some(first), Some(last)) = (chunk.first(), chunk.last()) {
                    if first.offset != at {
                        return Err(Error::Invalid(format!(
                            "table {}: partition {p} read from {at} started at {}",
                            t.name, first.offset
                        )));
                    }
                    file.min_ts = file.min_ts.min(first.append_ts);
                    file.max_ts = file.max_ts.max(last.append_ts);
                    record_bytes += chunk.iter().map(|r| r.record.encoded_len()).sum::<usize>();
                    let batch = columns::to_batch(&schema, p, chunk)
                        .map_err(|e| Error::Invalid(format!("table {}: {e}", t.name)))?;
                    fence.check().await?;
                    writer
                        .write(&batch)
                        .await
                        .map_err(|e| parquet_error(&staging_key, e))?;
                    at = last.offset + 1;
                }
                if same_day < got.len() {
                    report.backlog = true; // a later date waits for its own file
                    break;
                }
                if got.is_empty() {
                    break;
                }
            }
            if at > start {
                file.partitions.push(OffsetRange {
                    partition: p,
                    start,
                    end: at,
                });
                file.rows += at - start;
            }
            next.set_next(p, at.max(next.next_offset(p)));
        }
        fence.check().await?;
        writer
            .close()
            .await
            .map_err(|e| parquet_error(&staging_key, e))?;
        if file.rows == 0 {
            // Nothing after all (records vanished between peek and read): drop the staged file.
            store::delete(&*self.store, &staging_key).await?;
            return Ok(());
        }
        file.bytes = self
            .store
            .head(&staging_key)
            .await
            .map_err(|e| Error::store("head", &staging_key, e))?
            .size;
        file.path = keys::table_file_name(&date, next.version);
        report.files_written += 1;
        report.rows_written += file.rows;
        report.record_bytes += record_bytes as u64;
        next.files.push(file);
        self.commit(next, fence).await
    }

    /// The first offset at or after `from` still in the log, and its append time; `None` when
    /// the table has everything.
    async fn peek(&self, t: &TopicConfig, p: u32, from: u64) -> Result<Option<(u64, i64)>> {
        let read = match self.log.read(t, p, from, 1, 1).await {
            Err(Error::OffsetOutOfRange { earliest, .. }) if earliest > from => {
                // Deleted by retention before the table took them: continue at the earliest.
                self.log.read(t, p, earliest, 1, 1).await
            }
            r => r,
        };
        match read {
            Ok(b) => Ok(b.records.first().map(|r| (r.offset, r.append_ts))),
            Err(Error::OffsetOutOfRange { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Delete staged files that no manifest took (a compactor died between writing one and
    /// committing it) once they are older than the grace period.
    async fn clean_staging(&self, fence: &mut impl Fence) -> Result<()> {
        let horizon = self.clock.now_ms() - self.cfg.staging_grace_ms;
        let names = store::list_names(&*self.store, &keys::table_staging_dir(), None).await?;
        for name in names {
            let Some(id) = ObjectId::parse(&name) else {
                continue;
            };
            if id.created_ms() >= horizon {
                break;
            }
            fence.check().await?;
            store::delete(&*self.store, &keys::table_staging(id)).await?;
        }
        Ok(())
    }
}

fn staging_path(name: &str) -> Result<Path> {
    ObjectId::parse(name)
        .map(keys::table_staging)
        .ok_or_else(|| Error::Invalid(format!("manifest names staged file {name:?}")))
}

fn parquet_error(key: &Path, e: parquet::errors::ParquetError) -> Error {
    Error::store(
        "put",
        key,
        object_store::Error::Generic {
            store: "parquet",
            source: Box::new(e),
        },
    )
}
