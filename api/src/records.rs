//! Produce and stateless reads (`rest-api.md`, "Produce" and "Read by offset or time").

use base64::Engine;
use serde::{Deserialize, Serialize};
use sluice_core::log::{ProduceAck, ReadRecord};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// One record to produce. Exactly one of `value` (UTF-8 text) and `value_b64` (standard base64
/// bytes); at most one of `key` and `key_b64`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    #[schema(example = "user-7")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[schema(format = Byte)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_b64: Option<String>,
    #[schema(example = "hello")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[schema(format = Byte)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
    /// String → string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Overrides the key hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Producer timestamp, stored as given (reads by time use the append timestamp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// Deliver this record `delay_ms` from now (0 to 365 days): it gets its offset only when
    /// due, and no read, group or queue sees it earlier. Not with `deliver_at_ms`.
    #[schema(minimum = 0, maximum = 31_536_000_000_i64, example = 60000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<i64>,
    /// Deliver this record at this time (ms since the epoch; at most 365 days ahead, a time in
    /// the past delivers at once). Not with `delay_ms`.
    #[schema(minimum = 0)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<i64>,
}

/// Adds to the `ProduceRecord` schema what its derive cannot say: exactly one of `value` and
/// `value_b64`, at most one of `key` and `key_b64` (a field that is absent or null is not given).
pub struct ProduceRecordRules;

impl utoipa::Modify for ProduceRecordRules {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AllOf, AnyOf, ObjectBuilder, OneOf, Schema, Type};
        let Some(schemas) = doc.components.as_mut().map(|c| &mut c.schemas) else {
            return;
        };
        let Some(derived) = schemas.remove("ProduceRecord") else {
            return;
        };
        let given = |field: &str, other: &str| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(Type::String))
                .property(other, ObjectBuilder::new().schema_type(Type::Null))
                .required(field)
                .build()
        };
        let null = |field: &str| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(Type::Null))
                .build()
        };
        let mut value = OneOf::new();
        value.items = vec![
            given("value", "value_b64").into(),
            given("value_b64", "value").into(),
        ];
        let mut key = AnyOf::new();
        key.items = vec![null("key").into(), null("key_b64").into()];
        let mut all = AllOf::new();
        all.items = vec![
            derived,
            Schema::OneOf(value).into(),
            Schema::AnyOf(key).into(),
        ];
        schemas.insert("ProduceRecord".into(), Schema::AllOf(all).into());
    }
}

/// `POST /v1/topics/{topic}/records` with `Content-Type: application/json`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    /// 1 to 10 000 records (the gateway's `max_records_per_request`).
    #[serde(deserialize_with = "crate::json::objects")]
    #[schema(min_items = 1)]
    pub records: Vec<ProduceRecord>,
}

/// Where one record landed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RecordOffset {
    pub partition: u32,
    pub offset: u64,
}

/// A delayed record, as the produce answer gives it: it has no offset until it is due.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DelayedRef {
    /// Lists and cancels it: `GET`/`DELETE /v1/topics/{topic}/delayed/{delayed_id}`.
    pub delayed_id: String,
    /// When it is due (as asked; a time in the past delivers at once).
    pub deliver_at_ms: i64,
}

/// Where a produced record went: its offset, or (for a delayed record) its delayed id.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum ProducedRecord {
    Offset(RecordOffset),
    Delayed(DelayedRef),
}

impl ProducedRecord {
    /// `(partition, offset)` of a record that is not delayed.
    pub fn offset(&self) -> Option<(u32, u64)> {
        match self {
            ProducedRecord::Offset(o) => Some((o.partition, o.offset)),
            ProducedRecord::Delayed(_) => None,
        }
    }
}

/// The answer to a durable produce.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ProduceAnswer {
    /// One per record, in request order: `{"partition","offset"}`, or
    /// `{"delayed_id","deliver_at_ms"}` for a delayed record.
    pub offsets: Vec<ProducedRecord>,
    /// The append (commit) timestamp of the records.
    pub append_timestamp_ms: i64,
    /// True when this was a retry answered from the idempotency window; nothing was written.
    pub duplicate: bool,
}

impl From<ProduceAck> for ProduceAnswer {
    fn from(a: ProduceAck) -> Self {
        Self {
            offsets: a
                .offsets
                .into_iter()
                .map(|(partition, offset)| {
                    ProducedRecord::Offset(RecordOffset { partition, offset })
                })
                .collect(),
            append_timestamp_ms: a.append_ts,
            duplicate: a.duplicate,
        }
    }
}

/// The answer to `ack=none`: queued, not yet durable.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Accepted {
    /// Records queued.
    pub accepted: usize,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// Answer after the journal commit (default).
    #[default]
    Durable,
    /// Answer 202 at once; failures are only logged.
    None,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProduceQuery {
    /// `durable` (default) or `none`.
    pub ack: Option<AckMode>,
    /// The record key, for `application/octet-stream` bodies.
    pub key: Option<String>,
    /// The partition, for `application/octet-stream` bodies.
    pub partition: Option<u32>,
    /// Stage the records in this transaction (`POST /v1/transactions`) instead of appending
    /// them: the answer is `{"staged":N}` and they get offsets only when it commits.
    pub transaction: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// A number, `earliest` or `latest` (default `earliest`).
    #[param(pattern = "^(earliest|latest|[0-9]{1,19})$", example = "earliest")]
    pub offset: Option<String>,
    /// Instead of `offset`: start at the first record appended at or after this time.
    pub timestamp_ms: Option<i64>,
    /// Most records to return (default 100; larger values return at most 10 000).
    #[param(minimum = 1)]
    pub limit: Option<u64>,
    /// Long-poll: wait up to this long for records when there are none yet (larger values wait
    /// 30 000).
    pub wait_ms: Option<u64>,
    /// Return only records that pass this filter on headers and key (SQL92-like, see "Filters"
    /// in the contract); the records it drops still advance `next_offset`. A read scans at most
    /// 100 000 records / 32 MiB per request, so an answer may hold no records and an advanced
    /// `next_offset`. Malformed: 400 `invalid_filter` with `position`.
    #[param(example = "type = 'created' AND amount > 100")]
    pub filter: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OffsetQuery {
    /// Find the first record appended at or after this time.
    pub timestamp_ms: i64,
}

/// `GET …/offsets`
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct OffsetAnswer {
    /// The first offset whose append timestamp is at least `timestamp_ms`, or the next offset
    /// if there is none yet.
    pub offset: u64,
}

/// A record as read back. Keys and values that are valid UTF-8 come as `key` / `value`, others
/// as `key_b64` / `value_b64` (with `key` / `value` null).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct RecordOut {
    pub offset: u64,
    /// Append timestamp.
    pub timestamp_ms: i64,
    /// The producer's timestamp, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer_timestamp_ms: Option<i64>,
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_b64: Option<String>,
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Header values that are not valid UTF-8, base64-encoded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_b64: BTreeMap<String, String>,
}

fn text_or_b64(b: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(b) {
        Ok(s) => (Some(s.to_string()), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
    }
}

impl From<&ReadRecord> for RecordOut {
    fn from(r: &ReadRecord) -> Self {
        let (key, key_b64) = match &r.record.key {
            Some(k) => text_or_b64(k),
            None => (None, None),
        };
        let (value, value_b64) = text_or_b64(&r.record.value);
        let mut headers = BTreeMap::new();
        let mut headers_b64 = BTreeMap::new();
        for (name, v) in &r.record.headers {
            match text_or_b64(v) {
                (Some(s), _) => headers.insert(name.clone(), s),
                (None, Some(b)) => headers_b64.insert(name.clone(), b),
                (None, None) => None,
            };
        }
        Self {
            offset: r.offset,
            timestamp_ms: r.append_ts,
            producer_timestamp_ms: r.record.producer_ts,
            key,
            key_b64,
            value,
            value_b64,
            headers,
            headers_b64,
        }
    }
}

/// `GET …/records`
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReadAnswer {
    pub records: Vec<RecordOut>,
    /// The offset to read from next.
    pub next_offset: u64,
    /// The partition's next offset (end of the log) when read.
    pub high_watermark: u64,
}
