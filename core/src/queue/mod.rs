//! Queue mode: a named consumer of one topic whose records are leased one by one (see the
//! "Queue mode" section of the REST contract).
//!
//! - Config: JSON at `queues/{name}/config/{version:020}`, one create-only version per change,
//!   like topic configs; a delete is a version with `deleted: true`.
//! - State: a [`StateLog`](crate::statelog::StateLog) of [`state::QueueState`] under
//!   `queues/{name}/state/{id}` (`id` is the incarnation minted at creation, so a queue deleted
//!   and created again starts afresh).
//! - [`state`]: the state machine and the pure planning of receive / ack / nack / extend /
//!   redrive; the gateway does the IO around it (reading records ahead, producing dead letters).

pub mod state;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::format::record::Record;
use crate::ids::{new_ulid, TopicId};
use crate::store::{self, Created, DynStore};
use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const QUEUE_FORMAT: u32 = 1;
pub const QUEUES: &str = "queues";
/// Longest visibility timeout (and nack delay), as SQS: 12 hours.
pub const MAX_VISIBILITY_MS: i64 = 12 * 3_600_000;
pub const MAX_RECEIVE: usize = 1000;
pub const MAX_WAIT_MS: u64 = 30_000;
pub const MAX_DELIVERIES: u32 = 1000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    #[default]
    None,
    Key,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    #[default]
    Earliest,
    Latest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub format: u32,
    pub name: String,
    /// The incarnation: new on every create.
    pub id: String,
    pub version: u64,
    pub topic: String,
    pub visibility_timeout_ms: i64,
    pub max_deliveries: u32,
    pub dead_letter_topic: String,
    pub ordering: Ordering,
    pub start: StartAt,
    /// Only records that pass this filter (canonical text of a [`crate::filter::Filter`]) are
    /// delivered; the others are skipped (they still advance the queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub created_ms: i64,
    #[serde(default)]
    pub deleted: bool,
}

/// What a `PUT /v1/queues/{queue}` asks for (defaults filled in by [`QueueSpec::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    pub topic: String,
    pub visibility_timeout_ms: i64,
    pub max_deliveries: u32,
    pub dead_letter_topic: String,
    pub ordering: Ordering,
    pub start: StartAt,
    pub filter: Option<crate::filter::Filter>,
}

impl QueueConfig {
    /// Prefix of its state log.
    pub fn state_prefix(&self) -> String {
        format!("{QUEUES}/{}/state/{}", self.name, self.id)
    }

    /// The parsed filter (`None`: every record).
    pub fn filter(&self) -> Result<Option<crate::filter::Filter>> {
        self.filter
            .as_deref()
            .map(crate::filter::Filter::parse)
            .transpose()
            .map_err(|e| Error::Internal(format!("queue {} has a bad filter: {e}", self.name)))
    }

    pub fn rules(&self) -> state::Rules {
        state::Rules {
            max_deliveries: self.max_deliveries,
            ordering_key: self.ordering == Ordering::Key,
        }
    }

    fn decode(key: &Path, bytes: &[u8]) -> Result<Self> {
        let cfg: QueueConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(key, crate::codec::invalid("queue", e.to_string())))?;
        if cfg.format != QUEUE_FORMAT || TopicId::parse(&cfg.id).is_none() {
            return Err(Error::corrupt(
                key,
                crate::codec::invalid("queue", "unsupported format or invalid id"),
            ));
        }
        Ok(cfg)
    }
}

pub fn check_visibility(field: &str, ms: i64) -> Result<()> {
    if (0..=MAX_VISIBILITY_MS).contains(&ms) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{field} must be between 0 and {MAX_VISIBILITY_MS} ms (12 h)"
        )))
    }
}

impl QueueSpec {
    pub fn validate(&self) -> Result<()> {
        crate::topic::validate_name(&self.topic)?;
        crate::topic::validate_name(&self.dead_letter_topic)?;
        check_visibility("visibility_timeout_ms", self.visibility_timeout_ms)?;
        if self.visibility_timeout_ms == 0 {
            return Err(Error::Invalid(
                "visibility_timeout_ms must be positive".into(),
            ));
        }
        if !(1..=MAX_DELIVERIES).contains(&self.max_deliveries) {
            return Err(Error::Invalid(format!(
                "max_deliveries must be between 1 and {MAX_DELIVERIES}"
            )));
        }
        if self.dead_letter_topic == self.topic {
            return Err(Error::Invalid(
                "dead_letter_topic must differ from the queue's topic".into(),
            ));
        }
        Ok(())
    }
}

fn dir(name: &str) -> Path {
    Path::from(format!("{QUEUES}/{name}/config"))
}
fn version_key(name: &str, v: u64) -> Path {
    Path::from(format!("{QUEUES}/{name}/config/{v:020}"))
}

/// Reads and writes queue configs.
pub struct Queues {
    store: DynStore,
    clock: Arc<dyn Clock>,
}

impl Queues {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The newest version, deleted or not; `None` if never created.
    async fn load_latest(&self, name: &str) -> Result<Option<QueueConfig>> {
        let names = store::list_names(&*self.store, &dir(name), None).await?;
        let Some(v) = names.iter().rev().find_map(|n| crate::keys::parse_seq(n)) else {
            return Ok(None);
        };
        let key = version_key(name, v);
        match store::get_opt(&*self.store, &key).await? {
            Some(b) => QueueConfig::decode(&key, &b).map(Some),
            None => Err(Error::Conflict(format!(
                "queue {name} changed while reading"
            ))),
        }
    }

    /// The live config.
    pub async fn get(&self, name: &str) -> Result<QueueConfig> {
        crate::topic::validate_name(name).map_err(|_| Error::QueueNotFound(name.into()))?;
        self.load_latest(name)
            .await?
            .filter(|c| !c.deleted)
            .ok_or_else(|| Error::QueueNotFound(name.into()))
    }

    /// Create, or update the settings of, a queue. Returns the config and whether it was
    /// created. Its topic cannot change (that would be another queue).
    pub async fn put(&self, name: &str, spec: &QueueSpec) -> Result<(QueueConfig, bool)> {
        crate::topic::validate_name(name)?;
        spec.validate()?;
        let latest = self.load_latest(name).await?;
        let now = self.clock.now_ms();
        let (cfg, created) = match latest {
            Some(c) if !c.deleted => {
                if c.topic != spec.topic {
                    return Err(Error::Invalid(format!(
                        "queue {name} reads topic {:?}; delete it to read another",
                        c.topic
                    )));
                }
                let cfg = QueueConfig {
                    version: c.version + 1,
                    visibility_timeout_ms: spec.visibility_timeout_ms,
                    max_deliveries: spec.max_deliveries,
                    dead_letter_topic: spec.dead_letter_topic.clone(),
                    ordering: spec.ordering,
                    start: c.start,
                    filter: spec.filter.as_ref().map(ToString::to_string),
                    ..c
                };
                (cfg, false)
            }
            old => (
                QueueConfig {
                    format: QUEUE_FORMAT,
                    name: name.to_string(),
                    id: TopicId::from_ulid(new_ulid(now)).to_string(),
                    version: old.map_or(1, |c| c.version + 1),
                    topic: spec.topic.clone(),
                    visibility_timeout_ms: spec.visibility_timeout_ms,
                    max_deliveries: spec.max_deliveries,
                    dead_letter_topic: spec.dead_letter_topic.clone(),
                    ordering: spec.ordering,
                    start: spec.start,
                    filter: spec.filter.as_ref().map(ToString::to_string),
                    created_ms: now,
                    deleted: false,
                },
                true,
            ),
        };
        self.write(&cfg).await?;
        Ok((cfg, created))
    }

    async fn write(&self, cfg: &QueueConfig) -> Result<()> {
        let key = version_key(&cfg.name, cfg.version);
        let bytes = serde_json::to_vec_pretty(cfg)
            .map_err(|e| Error::Internal(format!("queue config: {e}")))?;
        match store::put_create(&*self.store, &key, Bytes::from(bytes)).await? {
            Created::Yes => Ok(()),
            Created::AlreadyExists => Err(Error::Conflict(format!(
                "queue {} was changed concurrently; retry",
                cfg.name
            ))),
        }
    }

    /// Mark the queue deleted and remove its state log. Returns the deleted config.
    pub async fn delete(&self, name: &str) -> Result<QueueConfig> {
        let mut cfg = self.get(name).await?;
        cfg.version += 1;
        cfg.deleted = true;
        self.write(&cfg).await?;
        crate::statelog::StateLog::<state::QueueState>::destroy(&self.store, &cfg.state_prefix())
            .await?;
        Ok(cfg)
    }

    /// Every live queue, sorted by name.
    pub async fn list(&self) -> Result<Vec<QueueConfig>> {
        let names = store::list_dirs(&*self.store, &Path::from(QUEUES)).await?;
        let loaded = futures::future::join_all(names.iter().map(|n| self.load_latest(n))).await;
        let mut out = Vec::new();
        for (name, r) in names.iter().zip(loaded) {
            match r {
                Ok(Some(c)) if !c.deleted => out.push(c),
                Ok(_) => {}
                Err(e @ Error::Corrupt { .. }) => {
                    tracing::error!(queue = %name, error = %e, "skipping corrupt queue config")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// Hash of a record key for per-key order (FNV-1a: stable across processes and versions).
pub fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The copy of a record written to the dead-letter topic: same key, value and headers, plus
/// the `sluice.*` headers.
pub fn dead_letter_record(
    cfg: &QueueConfig,
    partition: u32,
    offset: u64,
    deliveries: u32,
    reason: &str,
    source: &Record,
) -> Record {
    let mut r = source.clone();
    let extra = [
        ("sluice.queue", cfg.name.clone()),
        ("sluice.source_topic", cfg.topic.clone()),
        ("sluice.source_partition", partition.to_string()),
        ("sluice.source_offset", offset.to_string()),
        ("sluice.delivery_count", deliveries.to_string()),
        ("sluice.reason", reason.to_string()),
    ];
    r.headers.retain(|(k, _)| !k.starts_with("sluice."));
    for (k, v) in extra {
        r.headers.push((k.to_string(), Bytes::from(v)));
    }
    r
}

/// Idempotency key of a dead letter: a gateway that crashed between producing it and
/// committing `Buried` produces it again under the same key, and the copy is written once.
pub fn dead_letter_key(cfg: &QueueConfig, partition: u32, offset: u64, deliveries: u32) -> Bytes {
    Bytes::from(format!(
        "sluice-dlq/{}/{partition}/{offset}/{deliveries}",
        cfg.id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn spec(topic: &str) -> QueueSpec {
        QueueSpec {
            topic: topic.into(),
            visibility_timeout_ms: 30_000,
            max_deliveries: 5,
            dead_letter_topic: "q.dlq".into(),
            ordering: Ordering::None,
            start: StartAt::Earliest,
            filter: None,
        }
    }

    #[tokio::test]
    async fn create_update_delete_recreate() {
        let store = store::open("memory://", &Default::default()).unwrap();
        let q = Queues::new(store, ManualClock::new(5));
        let (a, created) = q.put("q", &spec("orders")).await.unwrap();
        assert!(created);
        let mut s = spec("orders");
        s.max_deliveries = 2;
        let (b, created) = q.put("q", &s).await.unwrap();
        assert!(!created);
        assert_eq!(
            (b.id.clone(), b.max_deliveries, b.version),
            (a.id.clone(), 2, 2)
        );
        assert!(matches!(
            q.put("q", &spec("other")).await,
            Err(Error::Invalid(_))
        ));
        s.visibility_timeout_ms = MAX_VISIBILITY_MS + 1;
        assert!(matches!(q.put("q", &s).await, Err(Error::Invalid(_))));
        assert_eq!(q.list().await.unwrap().len(), 1);
        q.delete("q").await.unwrap();
        assert!(matches!(q.get("q").await, Err(Error::QueueNotFound(_))));
        assert!(matches!(q.delete("q").await, Err(Error::QueueNotFound(_))));
        let (c, created) = q.put("q", &spec("other")).await.unwrap();
        assert!(created && c.id != a.id);
    }

    #[test]
    fn dead_letter_headers() {
        let cfg = QueueConfig {
            format: 1,
            name: "q".into(),
            id: "x".into(),
            version: 1,
            topic: "orders".into(),
            visibility_timeout_ms: 1,
            max_deliveries: 1,
            dead_letter_topic: "q.dlq".into(),
            ordering: Ordering::None,
            start: StartAt::Earliest,
            filter: None,
            created_ms: 0,
            deleted: false,
        };
        let mut src = Record::new(Some(b"k"), &b"v"[..]);
        src.headers.push(("a".into(), Bytes::from("1")));
        let d = dead_letter_record(&cfg, 2, 9, 3, "boom", &src);
        assert_eq!(d.key, src.key);
        assert_eq!(d.value, src.value);
        let h: Vec<_> = d
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), &v[..]))
            .collect();
        assert!(h.contains(&("a", &b"1"[..])));
        assert!(h.contains(&("sluice.source_offset", &b"9"[..])));
        assert!(h.contains(&("sluice.reason", &b"boom"[..])));
        assert_eq!(key_hash(b"abc"), key_hash(b"abc"));
        assert_ne!(key_hash(b"abc"), key_hash(b"abd"));
    }
}
