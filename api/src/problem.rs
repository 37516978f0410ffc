//! Errors: `application/problem+json` documents (RFC 9457), the answer to every failed request.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Problem {
    /// `https://sluice.dev/problems/{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the problem class.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, and what to do about it.
    pub detail: String,
    /// Stable machine-readable code, e.g. `topic_not_found`, `record_too_large`.
    pub code: String,
    /// With `offset_out_of_range`: the first offset still readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_offset: Option<u64>,
    /// With `offset_out_of_range`: the offset the next record will get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    /// With `invalid_filter`: the 0-based byte offset in the filter of the token where parsing
    /// failed (the filter's length if it ended too early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// The request's id (its `X-Request-Id`, given or generated), also in every log line of
    /// the request: quote it when reporting a problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}
