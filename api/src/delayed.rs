//! Delayed records (`rest-api.md`, "Delayed records"): listing and cancelling pending ones.
//! Producing one is a produce with `delay_ms` / `deliver_at_ms` ([`crate::ProduceRecord`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DelayedQuery {
    /// Most records to list (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// One pending delayed record.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DelayedOut {
    pub delayed_id: String,
    pub deliver_at_ms: i64,
    /// The key as text (null if absent or not UTF-8; then `key_b64`).
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_b64: Option<String>,
    /// Header values that are UTF-8 text.
    pub headers: BTreeMap<String, String>,
    /// The explicit partition it was produced with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
}

/// `GET /v1/topics/{topic}/delayed`: pending records, soonest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DelayedList {
    pub delayed: Vec<DelayedOut>,
}
