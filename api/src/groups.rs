//! Consumer groups (`rest-api.md`, "Consumer groups"), plus `POST /v1/groups/{group}/reset`
//! (an addition: an administrator sets committed offsets).

use crate::records::RecordOut;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Where a member starts reading a partition nothing was committed for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupStart {
    #[default]
    Earliest,
    Latest,
}

/// `POST /v1/groups/{group}/members`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinGroup {
    /// The topics this member reads (1 to 100 existing topics).
    #[schema(min_items = 1, max_items = 100, example = json!(["orders"]))]
    pub topics: Vec<String>,
    /// The member loses its partitions after this long without a heartbeat, poll or commit
    /// (default 30 000; 1 000 to 3 600 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1000, maximum = 3600000)]
    pub session_timeout_ms: Option<u64>,
    /// Where to start where nothing is committed (default `earliest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<GroupStart>,
    /// Only records matching this filter are returned (see "Filters"); the others still
    /// advance positions and committed offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// One partition assigned to a member.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    pub topic: String,
    pub partition: u32,
    /// The group's committed offset (the next to read); null when nothing was committed.
    pub committed_offset: Option<u64>,
}

/// The answer to join and heartbeat: the member's id, the generation and its partitions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Membership {
    pub member_id: String,
    /// Commits must carry the current generation; it changes on every rebalance.
    pub generation: u64,
    pub assignments: Vec<Assignment>,
    /// The member's session timeout: heartbeat well within it.
    pub session_timeout_ms: u64,
}

/// `GET /v1/groups/{group}/records`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    /// The polling member.
    pub member_id: String,
    /// Most records to return (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// Long-poll: wait up to this long when there are no records (at most 30 000).
    #[param(maximum = 30000)]
    pub wait_ms: Option<u64>,
    /// Commit the new positions before answering (at-most-once). Default false (at-least-once:
    /// commit with `POST …/offsets` after processing).
    pub auto_commit: Option<bool>,
}

/// A record of a group poll.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupRecord {
    pub topic: String,
    pub partition: u32,
    #[serde(flatten)]
    pub record: RecordOut,
}

/// The answer to a poll.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PollAnswer {
    /// The generation the records were read in: commit them with it.
    pub generation: u64,
    pub records: Vec<GroupRecord>,
}

/// An offset to commit: the next offset to read.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// `POST /v1/groups/{group}/offsets`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitOffsets {
    pub member_id: String,
    pub generation: u64,
    #[schema(min_items = 1)]
    pub offsets: Vec<OffsetCommit>,
}

/// A partition's committed offset.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Committed {
    pub topic: String,
    pub partition: u32,
    /// Null when nothing was committed.
    pub committed_offset: Option<u64>,
}

/// The answer to a commit or a reset: the committed offsets now (a commit never moves one back).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommitAnswer {
    pub generation: u64,
    pub offsets: Vec<Committed>,
}

/// A partition of a topic.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

/// A live member.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberInfo {
    pub member_id: String,
    pub topics: Vec<String>,
    pub assignments: Vec<TopicPartition>,
    pub session_timeout_ms: u64,
    /// Time of its last heartbeat, poll or commit.
    pub last_seen_ms: i64,
}

/// One partition of a group: committed offset, end of the log and the lag between them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: u32,
    pub committed_offset: Option<u64>,
    pub high_watermark: u64,
    /// `high_watermark` minus the committed offset (minus the earliest offset when nothing is
    /// committed).
    pub lag: u64,
    /// The member owning the partition, if any.
    pub member_id: Option<String>,
}

/// `GET /v1/groups/{group}`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupDetail {
    pub group: String,
    pub generation: u64,
    pub members: Vec<MemberInfo>,
    pub partitions: Vec<PartitionLag>,
}

/// One group of `GET /v1/groups`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupSummary {
    pub group: String,
    /// Live members.
    pub members: usize,
    /// Sum of the partitions' lag.
    pub lag: u64,
}

/// `GET /v1/groups`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
}

/// `POST /v1/groups/{group}/reset`: set the committed offsets of a topic's partitions (all, or
/// one with `partition`) to `to` (`earliest`, `latest` or an offset) or to the first offset
/// appended at or after `timestamp_ms`. Members restart there; their older commits are refused
/// (`stale_generation`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetOffsets {
    pub topic: String,
    /// Only this partition (default: every partition of the topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// `earliest`, `latest` or an offset; give this or `timestamp_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(earliest|latest|[0-9]{1,19})$", example = "earliest")]
    pub to: Option<String>,
    /// The first offset appended at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
}
