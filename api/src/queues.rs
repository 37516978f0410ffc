//! Queue mode (`rest-api.md`, "Queue mode"): per-record leases, acks, dead letters.

use crate::records::RecordOut;
use serde::{Deserialize, Serialize};
use sluice_core::queue::{Ordering, QueueConfig, StartAt};
use utoipa::ToSchema;

/// `PUT /v1/queues/{queue}`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutQueue {
    /// The topic whose records the queue leases; cannot change once created.
    #[schema(example = "orders", pattern = "^[A-Za-z0-9._-]{1,249}$")]
    pub topic: String,
    /// Default lease length, 1 ms to 12 h (43 200 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 43200000, example = 30000)]
    pub visibility_timeout_ms: Option<i64>,
    /// Leases granted before a record is dead-lettered, 1 to 1000 (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000, example = 5)]
    pub max_deliveries: Option<u32>,
    /// Default `{queue}.dlq`; created if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,249}$")]
    pub dead_letter_topic: Option<String>,
    /// `key`: per-key FIFO within a partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "none")]
    pub ordering: Option<OrderingWire>,
    /// Where a new queue starts (ignored on update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "earliest")]
    pub start: Option<StartWire>,
    /// Deliver only records that pass this filter (see "Filters"); the others are skipped.
    /// Malformed: 400 `invalid_filter` with `position`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "type = 'created'")]
    pub filter: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderingWire {
    None,
    Key,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartWire {
    Earliest,
    Latest,
}

impl From<OrderingWire> for Ordering {
    fn from(o: OrderingWire) -> Self {
        match o {
            OrderingWire::None => Ordering::None,
            OrderingWire::Key => Ordering::Key,
        }
    }
}

impl From<StartWire> for StartAt {
    fn from(s: StartWire) -> Self {
        match s {
            StartWire::Earliest => StartAt::Earliest,
            StartWire::Latest => StartAt::Latest,
        }
    }
}

/// A queue's configuration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Queue {
    pub queue: String,
    /// The incarnation: a re-created queue starts afresh.
    pub id: String,
    pub version: u64,
    pub topic: String,
    pub visibility_timeout_ms: i64,
    pub max_deliveries: u32,
    pub dead_letter_topic: String,
    #[schema(example = "none")]
    pub ordering: String,
    #[schema(example = "earliest")]
    pub start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub created_ms: i64,
}

impl From<&QueueConfig> for Queue {
    fn from(c: &QueueConfig) -> Self {
        Self {
            queue: c.name.clone(),
            id: c.id.clone(),
            version: c.version,
            topic: c.topic.clone(),
            visibility_timeout_ms: c.visibility_timeout_ms,
            max_deliveries: c.max_deliveries,
            dead_letter_topic: c.dead_letter_topic.clone(),
            ordering: match c.ordering {
                Ordering::None => "none",
                Ordering::Key => "key",
            }
            .into(),
            start: match c.start {
                StartAt::Earliest => "earliest",
                StartAt::Latest => "latest",
            }
            .into(),
            filter: c.filter.clone(),
            created_ms: c.created_ms,
        }
    }
}

/// Backlog of a queue.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct QueueStats {
    /// Records that can be leased now (never delivered, nacked and due, or lease expired).
    pub ready: u64,
    /// Records under a valid lease.
    pub in_flight: u64,
    /// Nacked records waiting for their delay.
    pub delayed: u64,
    /// Records acked (since the queue was created).
    pub acked: u64,
    /// Records now in the dead-letter topic (redrive takes them out).
    pub dead_lettered: u64,
    /// Age of the oldest ready record; 0 when none is ready.
    pub oldest_ready_age_ms: i64,
}

/// `GET /v1/queues/{queue}`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueDetail {
    #[serde(flatten)]
    pub config: Queue,
    #[serde(flatten)]
    pub stats: QueueStats,
}

/// `GET /v1/queues`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueList {
    pub queues: Vec<Queue>,
}

/// `POST /v1/queues/{queue}/receive`
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBody {
    /// 1 to 1000 (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000, example = 10)]
    pub max: Option<u64>,
    /// This receive's lease length (default: the queue's), 1 ms to 12 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 43200000)]
    pub visibility_timeout_ms: Option<i64>,
    /// Long-poll: wait up to this long (≤ 30 000) for a record when none is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 30000)]
    pub wait_ms: Option<u64>,
}

/// A leased record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// Names this lease: ack, nack and extend take it.
    pub receipt: String,
    pub topic: String,
    pub partition: u32,
    #[serde(flatten)]
    pub record: RecordOut,
    /// Leases granted so far, this one included (1 on the first delivery).
    pub delivery_count: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReceiveAnswer {
    pub messages: Vec<Message>,
}

/// `POST /v1/queues/{queue}/ack`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// At most 1000.
    #[schema(max_items = 1000)]
    pub receipts: Vec<String>,
}

/// `POST /v1/queues/{queue}/nack`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackBody {
    #[schema(max_items = 1000)]
    pub receipts: Vec<String>,
    /// Ready again after this long (0 to 12 h, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 43200000)]
    pub delay_ms: Option<i64>,
    /// Kept in the record's history, and in `sluice.reason` if it is dead-lettered (≤ 1024 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub reason: Option<String>,
}

/// `POST /v1/queues/{queue}/extend`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    #[schema(max_items = 1000)]
    pub receipts: Vec<String>,
    /// The lease then ends this long from now (0 to 12 h).
    #[schema(minimum = 0, maximum = 43200000)]
    pub visibility_timeout_ms: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RejectedReceipt {
    pub receipt: String,
    /// `receipt_expired` or `receipt_invalid`.
    #[schema(example = "receipt_expired")]
    pub code: String,
}

/// Answer of ack, nack and extend.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SettleAnswer {
    /// Receipts accepted (named `acked` for every action, as the contract says).
    pub acked: u64,
    pub rejected: Vec<RejectedReceipt>,
}

/// One event of a record's delivery history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEvent {
    pub at_ms: i64,
    /// `leased`, `acked`, `nacked`, `expired`, `dead_lettered` or `redriven`.
    #[schema(example = "leased")]
    pub event: String,
    /// The gateway that granted a lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /v1/queues/{queue}/records/{partition}/{offset}`
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordHistory {
    /// `ready`, `in_flight`, `delayed`, `acked` or `dead_lettered`.
    #[schema(example = "acked")]
    pub state: String,
    pub delivery_count: u32,
    pub history: Vec<HistoryEvent>,
}

/// `POST /v1/queues/{queue}/redrive`
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveBody {
    /// Only dead-lettered records that pass this filter, evaluated on the dead-letter copy
    /// (with its `sluice.*` headers, e.g. `"sluice.reason" = 'timeout'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// At most this many (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub max: Option<u64>,
    /// Count only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RedriveAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redriven: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_redrive: Option<u64>,
}
