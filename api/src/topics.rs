//! Topics: create, patch, describe, list (`rest-api.md`, "Topics").

use serde::{Deserialize, Deserializer, Serialize};
use sluice_core::log::PartitionInfo as CorePartitionInfo;
use sluice_core::topic::TopicConfig;
use utoipa::ToSchema;

/// `POST /v1/topics`
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// `[A-Za-z0-9._-]{1,249}`, not `.` or `..`.
    #[schema(
        example = "orders",
        pattern = "^[A-Za-z0-9._-]{1,249}$",
        min_length = 1,
        max_length = 249
    )]
    pub name: String,
    /// 1 to 10 000.
    #[schema(example = 3, minimum = 1, maximum = 10000)]
    pub partitions: u32,
    /// Records older than this are deleted; absent or null keeps them forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub retention_ms: Option<i64>,
    /// Also write the topic's records as Parquet files under `tables/{name}/` in the bucket
    /// (for DuckDB, Spark, ...); default false.
    #[serde(default)]
    pub parquet: bool,
}

/// `PATCH /v1/topics/{topic}`: only the fields given change; at least one must be given.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
// (Not `min_properties = 1`: utoipa-gen 5.5 writes it as `maxProperties`.)
#[schema(example = json!({"retention_ms": 604800000}))]
pub struct PatchTopic {
    /// New partition count (at most 10 000); partitions can only grow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10000)]
    pub partitions: Option<u32>,
    /// New retention; `null` keeps records forever.
    #[serde(
        default,
        deserialize_with = "some_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub retention_ms: Option<Option<i64>>,
    /// Turn the Parquet table on (records inside retention are written too) or off (the
    /// files written so far stay).
    #[serde(default)]
    pub parquet: Option<bool>,
}

/// Distinguishes an absent field (`None`, via `default`) from an explicit null (`Some(None)`).
fn some_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A topic's configuration.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    /// The incarnation: a re-created topic gets a new id and starts empty.
    pub id: String,
    /// Config version, incremented on every change.
    pub version: u64,
    pub partitions: u32,
    pub retention_ms: Option<i64>,
    /// Journal shard the topic commits to.
    pub shard: u32,
    pub created_ms: i64,
    /// Whether the compactor writes the topic as Parquet files under `tables/{name}/`.
    pub parquet: bool,
}

impl From<&TopicConfig> for Topic {
    fn from(c: &TopicConfig) -> Self {
        Self {
            name: c.name.clone(),
            id: c.id.clone(),
            version: c.version,
            partitions: c.partitions,
            retention_ms: c.retention_ms,
            shard: c.shard,
            created_ms: c.created_ms,
            parquet: c.parquet,
        }
    }
}

/// Offsets of one partition.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    /// The first offset still readable.
    pub earliest_offset: u64,
    /// The offset the next record will get (the high watermark).
    pub next_offset: u64,
    /// Append time of the newest record, if any.
    pub last_append_ms: Option<i64>,
}

impl From<CorePartitionInfo> for PartitionInfo {
    fn from(p: CorePartitionInfo) -> Self {
        Self {
            partition: p.partition,
            earliest_offset: p.earliest_offset,
            next_offset: p.next_offset,
            last_append_ms: p.last_append_ms,
        }
    }
}

/// `GET /v1/topics/{topic}`: the config plus every partition's offsets.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TopicDetail {
    #[serde(flatten)]
    pub topic: Topic,
    pub partition_info: Vec<PartitionInfo>,
}

/// `GET /v1/topics`
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TopicList {
    pub topics: Vec<Topic>,
}
