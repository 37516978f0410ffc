//! Topic configs: JSON objects at `topics/{name}/{version:020}`, one per change, written
//! create-only. The newest version is the config; a delete is a version with `deleted: true`.
//! Two admins racing on the same change: one create wins, the other gets `Conflict`.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ids::{new_ulid, TopicId};
use crate::keys;
use crate::store::{self, Created, DynStore};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Format of configs that use no field newer than version 1 (readable by every binary).
pub const TOPIC_FORMAT: u32 = 1;
/// Format 2 adds `parquet`; it is written only by configs that set it, so a topic that does
/// not use Parquet stays readable by binaries that know format 1 only.
pub const TOPIC_FORMAT_PARQUET: u32 = 2;
pub const MAX_PARTITIONS: u32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// Format version of this JSON object.
    pub format: u32,
    pub name: String,
    /// The incarnation: new on every create, so a re-created topic starts empty.
    pub id: String,
    pub version: u64,
    pub partitions: u32,
    /// `None` keeps records forever.
    pub retention_ms: Option<i64>,
    /// Journal shard this topic commits to.
    pub shard: u32,
    pub created_ms: i64,
    #[serde(default)]
    pub deleted: bool,
    /// The compactor writes the topic's records as Parquet files under `tables/{name}/`
    /// (format 2; absent in format 1 = false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub parquet: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl TopicConfig {
    pub fn topic_id(&self) -> Result<TopicId> {
        TopicId::parse(&self.id).ok_or_else(|| {
            Error::corrupt(
                keys::topic_version(&self.name, self.version),
                crate::codec::invalid("topic.id", "not a ULID"),
            )
        })
    }

    pub fn check_partition(&self, partition: u32) -> Result<()> {
        if partition >= self.partitions {
            return Err(Error::PartitionNotFound {
                topic: self.name.clone(),
                partition,
            });
        }
        Ok(())
    }

    fn decode(key: &object_store::path::Path, bytes: &[u8]) -> Result<Self> {
        let cfg: TopicConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(key, crate::codec::invalid("topic", e.to_string())))?;
        let known = match cfg.format {
            TOPIC_FORMAT => !cfg.parquet,
            TOPIC_FORMAT_PARQUET => true,
            _ => false,
        };
        if !known || cfg.partitions == 0 || TopicId::parse(&cfg.id).is_none() {
            return Err(Error::corrupt(
                key,
                crate::codec::invalid("topic", "unsupported format or invalid fields"),
            ));
        }
        Ok(cfg)
    }
}

/// Topic names: `[A-Za-z0-9._-]{1,249}`, and not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=249).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "topic name {name:?} must match [A-Za-z0-9._-]{{1,249}}"
        )))
    }
}

/// What a look-up found (`None`: no live topic of that name), when, and whether a request is
/// re-reading it right now.
struct CachedTopic {
    at: Instant,
    value: Option<Arc<TopicConfig>>,
    refreshing: bool,
}

/// Reads and writes topic configs, with a short-lived cache for the hot path.
pub struct Topics {
    store: DynStore,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    cache: Mutex<HashMap<String, CachedTopic>>,
    /// The newest version read of each topic. A version is written once and never changes, so
    /// a look-up that lists the same newest version again needs no GET: a refresh or a
    /// listing of every topic reads only the configs that changed.
    read: Mutex<HashMap<String, Arc<TopicConfig>>>,
}

/// What to change on a topic.
#[derive(Clone, Debug, Default)]
pub struct TopicPatch {
    pub partitions: Option<u32>,
    pub retention_ms: Option<Option<i64>>,
    pub parquet: Option<bool>,
}

/// Optional settings of a new topic.
#[derive(Clone, Debug, Default)]
pub struct TopicSettings {
    pub retention_ms: Option<i64>,
    pub parquet: bool,
}

impl Topics {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            store,
            clock,
            ttl,
            cache: Mutex::new(HashMap::new()),
            read: Mutex::new(HashMap::new()),
        }
    }

    /// The config at `topics/{name}/{version}`: from the versions already read, else one GET.
    async fn load_version(&self, name: &str, version: u64) -> Result<Arc<TopicConfig>> {
        let known = {
            let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
            read.get(name).filter(|c| c.version == version).cloned()
        };
        if let Some(c) = known {
            return Ok(c);
        }
        let key = keys::topic_version(name, version);
        let cfg = match store::get_opt(&*self.store, &key).await? {
            Some(b) => Arc::new(TopicConfig::decode(&key, &b)?),
            None => {
                return Err(Error::Conflict(format!(
                    "topic {name} changed while reading"
                )))
            }
        };
        self.keep_read(name, &cfg);
        Ok(cfg)
    }

    /// Remember `cfg` (read or written at `topics/{name}/…`) as the newest version known of
    /// the topic, unless a newer one is.
    fn keep_read(&self, name: &str, cfg: &Arc<TopicConfig>) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if read
            .get(name)
            .is_none_or(|known| known.version <= cfg.version)
        {
            read.insert(name.to_string(), cfg.clone());
        }
    }

    /// The newest version of a topic's config, deleted or not; `None` if never created. One
    /// LIST, and a GET only if that version was not read before.
    async fn load_latest(&self, name: &str) -> Result<Option<Arc<TopicConfig>>> {
        let names = store::list_names(&*self.store, &keys::topic_dir(name), None).await?;
        let Some(version) = names.iter().rev().find_map(|n| keys::parse_seq(n)) else {
            return Ok(None);
        };
        self.load_version(name, version).await.map(Some)
    }

    fn remember(&self, name: &str, cfg: Option<Arc<TopicConfig>>) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.insert(
            name.to_string(),
            CachedTopic {
                at: Instant::now(),
                value: cfg,
                refreshing: false,
            },
        );
    }

    /// The live config of a topic, cached for the configured TTL. When the entry expires, one
    /// request re-reads it while concurrent requests keep using the previous value, so a busy
    /// gateway does not send a burst of LISTs every TTL.
    pub async fn get(&self, name: &str) -> Result<Arc<TopicConfig>> {
        validate_name(name).map_err(|_| Error::TopicNotFound(name.to_string()))?;
        let stale = {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match c.get_mut(name) {
                Some(e) if e.at.elapsed() < self.ttl || e.refreshing => {
                    return e
                        .value
                        .clone()
                        .ok_or_else(|| Error::TopicNotFound(name.to_string()));
                }
                Some(e) => {
                    e.refreshing = true;
                    Some(e.value.clone())
                }
                None => None,
            }
        };
        match self.load_latest(name).await {
            Ok(v) => {
                let v = v.filter(|c| !c.deleted);
                self.remember(name, v.clone());
                v.ok_or_else(|| Error::TopicNotFound(name.to_string()))
            }
            Err(e) => {
                let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(entry) = c.get_mut(name) {
                    entry.refreshing = false;
                }
                match stale.flatten() {
                    Some(v) => {
                        tracing::warn!(topic = name, error = %e, "topic refresh failed; using the cached config");
                        Ok(v)
                    }
                    None => Err(e),
                }
            }
        }
    }

    async fn write(&self, mut cfg: TopicConfig) -> Result<Arc<TopicConfig>> {
        cfg.format = if cfg.parquet {
            TOPIC_FORMAT_PARQUET
        } else {
            TOPIC_FORMAT
        };
        let key = keys::topic_version(&cfg.name, cfg.version);
        let bytes = Bytes::from(serde_json::to_vec_pretty(&cfg).unwrap_or_default());
        match store::put_create(&*self.store, &key, bytes).await? {
            Created::Yes => {
                let cfg = Arc::new(cfg);
                self.keep_read(&cfg.name, &cfg);
                self.remember(&cfg.name, (!cfg.deleted).then(|| cfg.clone()));
                Ok(cfg)
            }
            Created::AlreadyExists => Err(Error::Conflict(format!(
                "topic {} was changed concurrently; retry",
                cfg.name
            ))),
        }
    }

    pub async fn create(
        &self,
        name: &str,
        partitions: u32,
        retention_ms: Option<i64>,
        shard: u32,
    ) -> Result<Arc<TopicConfig>> {
        let settings = TopicSettings {
            retention_ms,
            ..Default::default()
        };
        self.create_with(name, partitions, settings, shard).await
    }

    pub async fn create_with(
        &self,
        name: &str,
        partitions: u32,
        settings: TopicSettings,
        shard: u32,
    ) -> Result<Arc<TopicConfig>> {
        let TopicSettings {
            retention_ms,
            parquet,
        } = settings;
        validate_name(name)?;
        check_partitions(partitions)?;
        check_retention(retention_ms)?;
        let latest = self.load_latest(name).await?;
        if latest.as_ref().is_some_and(|c| !c.deleted) {
            return Err(Error::TopicExists(name.to_string()));
        }
        let now = self.clock.now_ms();
        let cfg = TopicConfig {
            format: TOPIC_FORMAT,
            name: name.to_string(),
            id: TopicId::from_ulid(new_ulid(now)).to_string(),
            version: latest.map_or(1, |c| c.version + 1),
            partitions,
            retention_ms,
            shard,
            created_ms: now,
            deleted: false,
            parquet,
        };
        match self.write(cfg).await {
            // Lost a race with another create: report it as the topic existing.
            Err(Error::Conflict(_)) => Err(Error::TopicExists(name.to_string())),
            r => r,
        }
    }

    /// A copy of the live config of `name`, read from the store (to change and write back).
    async fn live_for_change(&self, name: &str) -> Result<TopicConfig> {
        validate_name(name).map_err(|_| Error::TopicNotFound(name.to_string()))?;
        self.load_latest(name)
            .await?
            .filter(|c| !c.deleted)
            .map(|c| TopicConfig::clone(&c))
            .ok_or_else(|| Error::TopicNotFound(name.to_string()))
    }

    pub async fn update(&self, name: &str, patch: TopicPatch) -> Result<Arc<TopicConfig>> {
        let mut cfg = self.live_for_change(name).await?;
        if let Some(p) = patch.partitions {
            check_partitions(p)?;
            if p < cfg.partitions {
                return Err(Error::Invalid(format!(
                    "partitions can only grow (now {}, asked {p})",
                    cfg.partitions
                )));
            }
            cfg.partitions = p;
        }
        if let Some(r) = patch.retention_ms {
            check_retention(r)?;
            cfg.retention_ms = r;
        }
        if let Some(p) = patch.parquet {
            cfg.parquet = p;
        }
        cfg.version += 1;
        self.write(cfg).await
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let mut cfg = self.live_for_change(name).await?;
        cfg.version += 1;
        cfg.deleted = true;
        self.write(cfg).await.map(|_| ())
    }

    /// Every live topic, sorted by name. Reads from the store (not the TTL cache): one
    /// recursive LIST of `topics/` (a page per 1,000 versions on S3), then a GET only for the
    /// topics whose newest version was not read before, at most 16 at once. So the compactor's
    /// listing every retention pass costs LIST pages, not a LIST and a GET per topic.
    pub async fn list(&self) -> Result<Vec<Arc<TopicConfig>>> {
        let root = object_store::path::Path::from(keys::TOPICS);
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|e| Error::store("list", &root, e))?;
        let newest = newest_versions(metas.iter().map(|m| &m.location));
        let loaded: Vec<(String, Result<Arc<TopicConfig>>)> =
            futures::stream::iter(newest.into_iter().map(|(name, version)| async move {
                let r = self.load_version(&name, version).await;
                (name, r)
            }))
            .buffered(16)
            .collect()
            .await;
        let mut out = Vec::new();
        for (name, r) in loaded {
            match r {
                Ok(c) if !c.deleted => out.push(c),
                Ok(_) => {}
                Err(e @ Error::Corrupt { .. }) => {
                    tracing::error!(topic = %name, error = %e, "skipping corrupt topic config")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The newest version of each topic among config keys `topics/{name}/{version:020}`, sorted by
/// name; other keys (foreign objects, a name that is not a valid topic name) are skipped.
fn newest_versions<'a>(
    locations: impl IntoIterator<Item = &'a object_store::path::Path>,
) -> std::collections::BTreeMap<String, u64> {
    let mut newest = std::collections::BTreeMap::new();
    for key in locations {
        let parts: Vec<_> = key.parts().collect();
        let [root, name, version] = parts.as_slice() else {
            continue;
        };
        if root.as_ref() != keys::TOPICS || validate_name(name.as_ref()).is_err() {
            continue;
        }
        let Some(v) = keys::parse_seq(version.as_ref()) else {
            continue;
        };
        let e = newest.entry(name.as_ref().to_string()).or_insert(v);
        *e = (*e).max(v);
    }
    newest
}

fn check_partitions(p: u32) -> Result<()> {
    if (1..=MAX_PARTITIONS).contains(&p) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "partitions must be between 1 and {MAX_PARTITIONS}"
        )))
    }
}

fn check_retention(r: Option<i64>) -> Result<()> {
    match r {
        Some(ms) if ms <= 0 => Err(Error::Invalid("retention_ms must be positive".into())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn partitions(p: u32) -> TopicPatch {
        TopicPatch {
            partitions: Some(p),
            ..Default::default()
        }
    }

    #[test]
    fn newest_versions_per_topic_and_foreign_keys_skipped() {
        use object_store::path::Path;
        let keys: Vec<Path> = [
            "topics/a/00000000000000000001",
            "topics/a/00000000000000000003",
            "topics/a/00000000000000000002",
            "topics/b/00000000000000000001",
            "topics/b/not-a-version",
            "topics/c",
            "topics/d/00000000000000000001/deeper",
            "other/e/00000000000000000001",
        ]
        .iter()
        .map(|k| Path::from(*k))
        .collect();
        let got: Vec<(String, u64)> = newest_versions(&keys).into_iter().collect();
        assert_eq!(got, vec![("a".to_string(), 3), ("b".to_string(), 1)]);
    }

    /// Listing every topic costs one LIST plus a GET per changed topic: a second listing with
    /// nothing changed makes no GET, and one topic changed (by another instance) one GET.
    #[tokio::test]
    async fn listing_reads_only_changed_configs() {
        let mem = store::open("memory://", &Default::default()).unwrap();
        let counted = store::Instrumented::new(mem.clone(), 0);
        let writer = Topics::new(mem, ManualClock::new(1), Duration::ZERO);
        for i in 0..50 {
            writer
                .create(&format!("t{i:02}"), 1, None, 0)
                .await
                .unwrap();
        }
        let t = Topics::new(counted.clone(), ManualClock::new(1), Duration::ZERO);
        assert_eq!(t.list().await.unwrap().len(), 50);
        let first = counted.counts();
        assert_eq!((first.list, first.get), (1, 50));
        assert_eq!(t.list().await.unwrap().len(), 50);
        let second = counted.counts();
        assert_eq!((second.list - first.list, second.get - first.get), (1, 0));
        writer.update("t07", partitions(4)).await.unwrap();
        writer.delete("t08").await.unwrap();
        let listed = t.list().await.unwrap();
        let third = counted.counts();
        assert_eq!((third.list - second.list, third.get - second.get), (1, 2));
        assert_eq!(listed.len(), 49);
        assert_eq!(
            listed.iter().find(|c| c.name == "t07").unwrap().partitions,
            4
        );
        // A look-up whose newest version was read by the listing needs only its LIST.
        assert_eq!(t.get("t07").await.unwrap().partitions, 4);
        let fourth = counted.counts();
        assert_eq!((fourth.list - third.list, fourth.get - third.get), (1, 0));
    }

    #[tokio::test]
    async fn create_update_delete_recreate() {
        let store = store::open("memory://", &Default::default()).unwrap();
        let t = Topics::new(store, ManualClock::new(1), Duration::ZERO);
        let a = t.create("orders", 3, None, 0).await.unwrap();
        assert!(matches!(
            t.create("orders", 3, None, 0).await,
            Err(Error::TopicExists(_))
        ));
        assert!(matches!(
            t.create("bad/name", 3, None, 0).await,
            Err(Error::Invalid(_))
        ));
        let b = t.update("orders", partitions(5)).await.unwrap();
        assert_eq!((b.partitions, b.id.clone()), (5, a.id.clone()));
        assert!(t.update("orders", partitions(2)).await.is_err());
        t.delete("orders").await.unwrap();
        assert!(matches!(
            t.get("orders").await,
            Err(Error::TopicNotFound(_))
        ));
        assert!(t.list().await.unwrap().is_empty());
        let c = t.create("orders", 1, Some(1000), 0).await.unwrap();
        assert_ne!(c.id, a.id, "a re-created topic is a new incarnation");
        assert_eq!(t.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn parquet_flag_is_format_2_and_format_1_still_reads() {
        let store = store::open("memory://", &Default::default()).unwrap();
        let t = Topics::new(store.clone(), ManualClock::new(1), Duration::ZERO);
        let plain = t.create("plain", 1, None, 0).await.unwrap();
        assert_eq!((plain.format, plain.parquet), (TOPIC_FORMAT, false));
        let bytes = store::get_opt(&*store, &keys::topic_version("plain", 1))
            .await
            .unwrap()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("parquet"),
            "a format 1 config is byte-compatible with older binaries"
        );
        let settings = TopicSettings {
            parquet: true,
            ..Default::default()
        };
        let p = t.create_with("tabled", 2, settings, 0).await.unwrap();
        assert_eq!((p.format, p.parquet), (TOPIC_FORMAT_PARQUET, true));
        assert!(t.get("tabled").await.unwrap().parquet);
        let on = t
            .update(
                "plain",
                TopicPatch {
                    parquet: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!((on.format, on.parquet, on.version), (2, true, 2));
        // A format 1 config claiming parquet, or an unknown format, is rejected.
        let key = keys::topic_version("x", 1);
        let v1 = br#"{"format":1,"name":"x","id":"01JD0000000000000000000000","version":1,"partitions":1,"retention_ms":null,"shard":0,"created_ms":1,"parquet":true}"#;
        assert!(TopicConfig::decode(&key, v1).is_err());
        let v3 = br#"{"format":3,"name":"x","id":"01JD0000000000000000000000","version":1,"partitions":1,"retention_ms":null,"shard":0,"created_ms":1}"#;
        assert!(TopicConfig::decode(&key, v3).is_err());
    }
}
