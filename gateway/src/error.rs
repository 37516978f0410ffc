//! The one place where errors become HTTP answers. Every error the gateway returns is an
//! `application/problem+json` document (RFC 9457) with a stable machine `code`; [`ApiError::kind`]
//! is the exhaustive table from error to status and code. Handlers return `ApiError` and never
//! choose a status themselves.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sluice_core::group::GroupError;
use sluice_core::txn::TxnError;
use sluice_core::Error as CoreError;

pub use sluice_api::problem::{Problem, PROBLEM_JSON};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Core(#[from] CoreError),
    /// A consumer-group operation the group's state refused.
    #[error("{0}")]
    Group(#[from] GroupError),
    /// A transaction call refused (never holds `TxnError::Core`: see the `From` impl).
    #[error("{0}")]
    Txn(TxnError),
    /// The body is not well-formed JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// A `*_b64` field is not standard base64.
    #[error("{0}")]
    InvalidBase64(String),
    /// `offset` is not a number, `earliest` or `latest`.
    #[error("{0}")]
    InvalidOffset(String),
    /// A `filter` that does not parse.
    #[error("{0}")]
    InvalidFilter(#[from] sluice_core::filter::FilterError),
    /// Any other malformed or out-of-bounds input.
    #[error("{0}")]
    Invalid(String),
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    #[error("request body exceeds the limit of {max} bytes")]
    RequestTooLarge { max: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No route for this path.
    #[error("no such resource: {0}")]
    NotFound(String),
    /// A queue's record history asked past the partition's end.
    #[error("{0}")]
    RecordNotFound(String),
    #[error("method {0} is not allowed on this resource")]
    MethodNotAllowed(String),
    /// The gateway cannot serve now (shutting down, store unreachable); retry.
    #[error("{0}")]
    Unavailable(String),
    /// No bearer token, or one the gateway does not know. The detail never holds the token.
    #[error("{detail}")]
    Unauthorized {
        detail: String,
        /// A token was presented but is not valid (vs. no token at all).
        invalid_token: bool,
    },
    /// The token is valid but lacks the scope this request needs on its topic.
    #[error("{0}")]
    Forbidden(String),
    /// `POST /internal/v1/commit` reached a gateway that is not the shard's committer (the
    /// caller commits itself; nothing was taken).
    #[error("{0}")]
    NotCommitter(String),
    /// Too many produce bytes are waiting for their commit; retry after `Retry-After`.
    #[error("{0}")]
    Overloaded(String),
    /// An error response produced outside our handlers (e.g. by the router), by status.
    #[error("{1}")]
    Status(StatusCode, String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<TxnError> for ApiError {
    fn from(e: TxnError) -> Self {
        match e {
            TxnError::Core(c) => ApiError::Core(c),
            other => ApiError::Txn(other),
        }
    }
}

/// Status, stable code and title of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
}

const fn k(status: StatusCode, code: &'static str, title: &'static str) -> Kind {
    Kind {
        status,
        code,
        title,
    }
}

impl ApiError {
    /// The table: error → status and stable code.
    pub fn kind(&self) -> Kind {
        use StatusCode as S;
        match self {
            ApiError::Core(e) => match e {
                CoreError::TopicNotFound(_) => {
                    k(S::NOT_FOUND, "topic_not_found", "Topic not found")
                }
                CoreError::QueueNotFound(_) => {
                    k(S::NOT_FOUND, "queue_not_found", "Queue not found")
                }
                CoreError::DelayedNotFound(_) => k(
                    S::NOT_FOUND,
                    "delayed_not_found",
                    "Delayed record not found",
                ),
                CoreError::PartitionNotFound { .. } => {
                    k(S::NOT_FOUND, "partition_not_found", "Partition not found")
                }
                CoreError::TopicExists(_) => k(S::CONFLICT, "topic_exists", "Topic exists"),
                CoreError::OffsetOutOfRange { .. } => k(
                    S::RANGE_NOT_SATISFIABLE,
                    "offset_out_of_range",
                    "Offset out of range",
                ),
                CoreError::IdempotencyConflict => k(
                    S::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "Idempotency key reused for a different request",
                ),
                CoreError::ProducerNotFound(_) => {
                    k(S::NOT_FOUND, "producer_not_found", "Producer not found")
                }
                CoreError::ProducerFenced { .. } => {
                    k(S::CONFLICT, "producer_fenced", "Producer fenced")
                }
                CoreError::OutOfOrderSequence { .. } => k(
                    S::CONFLICT,
                    "out_of_order_sequence",
                    "Out-of-order producer sequence",
                ),
                CoreError::Invalid(_) => k(S::BAD_REQUEST, "invalid_request", "Invalid request"),
                CoreError::Conflict(_) => k(S::CONFLICT, "conflict", "Conflicting change"),
                CoreError::Stale(_) | CoreError::Store { .. } => {
                    k(S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
                }
                CoreError::Corrupt { .. } => {
                    k(S::INTERNAL_SERVER_ERROR, "corrupt_data", "Corrupt data")
                }
                CoreError::Inconsistent { .. } | CoreError::Internal(_) => {
                    k(S::INTERNAL_SERVER_ERROR, "internal", "Internal error")
                }
            },
            ApiError::Group(e) => match e {
                GroupError::GroupNotFound => k(S::NOT_FOUND, "group_not_found", "Group not found"),
                GroupError::MemberNotFound(_) => {
                    k(S::NOT_FOUND, "member_not_found", "Member not found")
                }
                GroupError::StaleGeneration { .. } => {
                    k(S::CONFLICT, "stale_generation", "Stale generation")
                }
                GroupError::NotAssigned { .. } => k(
                    S::CONFLICT,
                    "not_assigned",
                    "Partition not assigned to this member",
                ),
                GroupError::PositionMoved { .. } => {
                    k(S::CONFLICT, "conflict", "Conflicting change")
                }
                GroupError::Invalid(_) => k(S::BAD_REQUEST, "invalid_request", "Invalid request"),
            },
            ApiError::Txn(e) => match e {
                TxnError::NotFound(_) => k(
                    S::NOT_FOUND,
                    "transaction_not_found",
                    "Transaction not found",
                ),
                TxnError::Closed { .. } => {
                    k(S::CONFLICT, "transaction_closed", "Transaction closed")
                }
                TxnError::InvalidCheckUrl(_) => {
                    k(S::BAD_REQUEST, "invalid_check_url", "Invalid check_url")
                }
                TxnError::Invalid(_) => k(S::BAD_REQUEST, "invalid_request", "Invalid request"),
                TxnError::Core(_) => k(S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            },
            ApiError::InvalidJson(_) => k(S::BAD_REQUEST, "invalid_json", "Invalid JSON"),
            ApiError::InvalidBase64(_) => k(S::BAD_REQUEST, "invalid_base64", "Invalid base64"),
            ApiError::InvalidOffset(_) => k(S::BAD_REQUEST, "invalid_offset", "Invalid offset"),
            ApiError::InvalidFilter(_) => k(S::BAD_REQUEST, "invalid_filter", "Invalid filter"),
            ApiError::Invalid(_) => k(S::BAD_REQUEST, "invalid_request", "Invalid request"),
            ApiError::RecordTooLarge { .. } => {
                k(S::PAYLOAD_TOO_LARGE, "record_too_large", "Record too large")
            }
            ApiError::RequestTooLarge { .. } => k(
                S::PAYLOAD_TOO_LARGE,
                "request_too_large",
                "Request too large",
            ),
            ApiError::UnsupportedMediaType(_) => k(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            ApiError::NotFound(_) => k(S::NOT_FOUND, "not_found", "Not found"),
            ApiError::RecordNotFound(_) => k(S::NOT_FOUND, "record_not_found", "Record not found"),
            ApiError::MethodNotAllowed(_) => k(
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            ApiError::Unavailable(_) => {
                k(S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
            }
            ApiError::Unauthorized { .. } => {
                k(S::UNAUTHORIZED, "unauthorized", "Authentication required")
            }
            ApiError::Forbidden(_) => k(S::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::Overloaded(_) => k(S::TOO_MANY_REQUESTS, "overloaded", "Overloaded"),
            ApiError::NotCommitter(_) => k(
                S::MISDIRECTED_REQUEST,
                "not_committer",
                "Not the shard's committer",
            ),
            ApiError::Status(status, _) => match *status {
                S::NOT_FOUND => k(S::NOT_FOUND, "not_found", "Not found"),
                S::METHOD_NOT_ALLOWED => k(
                    S::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "Method not allowed",
                ),
                S::PAYLOAD_TOO_LARGE => k(
                    S::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    "Request too large",
                ),
                S::UNSUPPORTED_MEDIA_TYPE => k(
                    S::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Unsupported media type",
                ),
                S::SERVICE_UNAVAILABLE => {
                    k(S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
                }
                S::UNAUTHORIZED => k(S::UNAUTHORIZED, "unauthorized", "Authentication required"),
                S::FORBIDDEN => k(S::FORBIDDEN, "forbidden", "Forbidden"),
                S::TOO_MANY_REQUESTS => k(S::TOO_MANY_REQUESTS, "overloaded", "Overloaded"),
                s if s.is_server_error() => k(s, "internal", "Internal error"),
                s if s.is_client_error() => k(s, "invalid_request", "Invalid request"),
                _ => k(S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            },
        }
    }

    /// Text for the client. Internal details of server-side failures go to the log instead.
    fn detail(&self) -> String {
        match self {
            ApiError::Core(CoreError::Store { .. }) => {
                "the object store did not answer; retry the request".into()
            }
            ApiError::Core(CoreError::Stale(_)) => {
                "the write could not be committed in time; retry the request".into()
            }
            ApiError::Core(CoreError::Corrupt { .. }) => {
                "stored data failed its integrity check; an operator has been alerted".into()
            }
            ApiError::Core(CoreError::Inconsistent { .. }) => {
                "the journal is inconsistent; an operator has been alerted".into()
            }
            ApiError::Core(CoreError::Internal(_)) => {
                "an internal error occurred; an operator has been alerted".into()
            }
            ApiError::Core(CoreError::Invalid(m)) => m.clone(),
            ApiError::Core(CoreError::Conflict(m)) => m.clone(),
            other => other.to_string(),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let kind = self.kind();
        let (earliest_offset, next_offset) = match self {
            ApiError::Core(CoreError::OffsetOutOfRange { earliest, next, .. }) => {
                (Some(*earliest), Some(*next))
            }
            _ => (None, None),
        };
        let position = match self {
            ApiError::InvalidFilter(e) => Some(e.position),
            _ => None,
        };
        Problem {
            kind: format!("https://sluice.dev/problems/{}", kind.code),
            title: kind.title.to_string(),
            status: kind.status.as_u16(),
            detail: self.detail(),
            code: kind.code.to_string(),
            earliest_offset,
            next_offset,
            position,
            request_id: crate::request_id::current(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let status = self.kind().status;
        // RFC 6750 §3: how to authenticate, and why the token was refused.
        let challenge = match &self {
            ApiError::Unauthorized {
                invalid_token: false,
                ..
            } => Some("Bearer realm=\"sluice\""),
            ApiError::Unauthorized {
                invalid_token: true,
                ..
            } => Some("Bearer realm=\"sluice\", error=\"invalid_token\""),
            ApiError::Forbidden(_) => Some("Bearer realm=\"sluice\", error=\"insufficient_scope\""),
            _ => None,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, code = problem.code, "request failed");
        } else {
            tracing::debug!(error = %self, code = problem.code, "request rejected");
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(c) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        resp
    }
}

/// True when a response already carries a problem document.
pub fn is_problem(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

/// Middleware: turn any error answer that is not a problem document (the router's own 404/405,
/// a rejection we did not wrap) into one, keeping headers such as `Allow`.
pub async fn ensure_problem(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&resp) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let mut fresh = ApiError::Status(status, text).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_core_errors() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (
                CoreError::TopicNotFound("t".into()).into(),
                404,
                "topic_not_found",
            ),
            (
                CoreError::QueueNotFound("q".into()).into(),
                404,
                "queue_not_found",
            ),
            (
                CoreError::DelayedNotFound("d".into()).into(),
                404,
                "delayed_not_found",
            ),
            (
                ApiError::RecordNotFound("r".into()),
                404,
                "record_not_found",
            ),
            (
                CoreError::PartitionNotFound {
                    topic: "t".into(),
                    partition: 9,
                }
                .into(),
                404,
                "partition_not_found",
            ),
            (
                CoreError::TopicExists("t".into()).into(),
                409,
                "topic_exists",
            ),
            (
                CoreError::OffsetOutOfRange {
                    offset: 9,
                    earliest: 1,
                    next: 5,
                }
                .into(),
                416,
                "offset_out_of_range",
            ),
            (
                CoreError::IdempotencyConflict.into(),
                422,
                "idempotency_key_reused",
            ),
            (
                CoreError::Invalid("x".into()).into(),
                400,
                "invalid_request",
            ),
            (CoreError::Conflict("x".into()).into(), 409, "conflict"),
            (
                CoreError::ProducerNotFound("p".into()).into(),
                404,
                "producer_not_found",
            ),
            (
                CoreError::ProducerFenced {
                    epoch: 1,
                    current: 2,
                }
                .into(),
                409,
                "producer_fenced",
            ),
            (
                CoreError::OutOfOrderSequence {
                    got: 9,
                    expected: 3,
                }
                .into(),
                409,
                "out_of_order_sequence",
            ),
            (CoreError::Stale("x".into()).into(), 503, "unavailable"),
            (
                ApiError::Status(StatusCode::NOT_FOUND, "x".into()),
                404,
                "not_found",
            ),
            (
                ApiError::Status(StatusCode::METHOD_NOT_ALLOWED, "x".into()),
                405,
                "method_not_allowed",
            ),
            (
                ApiError::Unauthorized {
                    detail: "x".into(),
                    invalid_token: false,
                },
                401,
                "unauthorized",
            ),
            (ApiError::Forbidden("x".into()), 403, "forbidden"),
            (GroupError::GroupNotFound.into(), 404, "group_not_found"),
            (
                GroupError::MemberNotFound("m".into()).into(),
                404,
                "member_not_found",
            ),
            (
                GroupError::StaleGeneration {
                    given: 1,
                    current: 2,
                }
                .into(),
                409,
                "stale_generation",
            ),
            (
                GroupError::NotAssigned {
                    topic: "t".into(),
                    partition: 0,
                }
                .into(),
                409,
                "not_assigned",
            ),
            (ApiError::Overloaded("x".into()), 429, "overloaded"),
            (
                ApiError::Status(StatusCode::TOO_MANY_REQUESTS, "x".into()),
                429,
                "overloaded",
            ),
        ];
        for (e, status, code) in cases {
            let p = e.problem();
            assert_eq!((p.status, p.code.as_str()), (status, code), "{e:?}");
        }
        let p = ApiError::from(CoreError::OffsetOutOfRange {
            offset: 9,
            earliest: 1,
            next: 5,
        })
        .problem();
        assert_eq!((p.earliest_offset, p.next_offset), (Some(1), Some(5)));
        let e = sluice_core::filter::Filter::parse("a = 1 AND").unwrap_err();
        let p = ApiError::from(e).problem();
        assert_eq!((p.status, p.code.as_str()), (400, "invalid_filter"));
        assert_eq!(p.position, Some(9));
        assert!(p.detail.contains("byte 9"), "{}", p.detail);
    }
}
