//! Errors that say what the caller can do: [`Error::is_retryable`] (the same call may succeed if
//! tried again) and [`Error::has_no_side_effects`] (the call certainly changed nothing, so even a
//! non-idempotent retry is safe). The server's problem `code` is a typed [`ErrorCode`]; nobody
//! parses strings.

use sluice_api::Problem;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// The stable machine `code` of a problem document (`rest-api.md`). Codes this SDK does
        /// not know yet arrive as [`ErrorCode::Other`].
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code newer than this SDK.
            Other(String),
        }

        impl ErrorCode {
            pub fn parse(code: &str) -> Self {
                match code {
                    $($code => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_string()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Other(s) => s,
                }
            }
        }
    };
}

codes! {
    TopicNotFound = "topic_not_found",
    PartitionNotFound = "partition_not_found",
    TopicExists = "topic_exists",
    OffsetOutOfRange = "offset_out_of_range",
    IdempotencyKeyReused = "idempotency_key_reused",
    InvalidRequest = "invalid_request",
    InvalidJson = "invalid_json",
    InvalidBase64 = "invalid_base64",
    InvalidOffset = "invalid_offset",
    InvalidFilter = "invalid_filter",
    RecordTooLarge = "record_too_large",
    RequestTooLarge = "request_too_large",
    UnsupportedMediaType = "unsupported_media_type",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    Unauthorized = "unauthorized",
    Forbidden = "forbidden",
    /// Too much is waiting on the gateway; retry after `Retry-After`.
    Overloaded = "overloaded",
    /// The gateway or its store cannot serve now; retry.
    Unavailable = "unavailable",
    /// A conditional change lost a race; retry.
    Conflict = "conflict",
    CorruptData = "corrupt_data",
    Internal = "internal",
    GroupNotFound = "group_not_found",
    MemberNotFound = "member_not_found",
    StaleGeneration = "stale_generation",
    NotAssigned = "not_assigned",
    QueueNotFound = "queue_not_found",
    ReceiptExpired = "receipt_expired",
    ReceiptInvalid = "receipt_invalid",
    TransactionNotFound = "transaction_not_found",
    TransactionClosed = "transaction_closed",
    DelayedNotFound = "delayed_not_found",
    OutOfOrderSequence = "out_of_order_sequence",
    ProducerFenced = "producer_fenced",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem document the server answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    pub code: ErrorCode,
    /// What went wrong, in the server's words.
    pub detail: String,
    /// `Retry-After` of a 429 or 503.
    pub retry_after: Option<Duration>,
    /// With [`ErrorCode::OffsetOutOfRange`]: the first offset still readable.
    pub earliest_offset: Option<u64>,
    /// With [`ErrorCode::OffsetOutOfRange`]: the offset the next record will get.
    pub next_offset: Option<u64>,
}

impl ApiError {
    pub(crate) fn from_problem(p: Problem, status: u16, retry_after: Option<Duration>) -> Self {
        Self {
            status,
            code: ErrorCode::parse(&p.code),
            detail: p.detail,
            retry_after,
            earliest_offset: p.earliest_offset,
            next_offset: p.next_offset,
        }
    }
}

#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server said no: its problem document.
    #[error("{} ({})", .0.detail, .0.code)]
    Api(ApiError),
    /// The server could not be reached (refused, DNS, TLS): the request was never sent.
    #[error("cannot reach {url}: {message}")]
    Connect { url: String, message: String },
    /// The request was sent but no complete answer came (time-out, connection reset): whether
    /// it took effect is unknown.
    #[error("no answer from {url}: {message}")]
    Transport { url: String, message: String },
    /// The answer is not what the API defines.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// Reading the bucket directly failed.
    #[error("{0}")]
    Store(Arc<sluice_core::Error>),
    /// An argument the SDK refused before sending anything.
    #[error("{0}")]
    Invalid(String),
    /// The producer was closed, or its background task is gone.
    #[error("the producer is closed")]
    Closed,
}

impl From<sluice_core::Error> for Error {
    fn from(e: sluice_core::Error) -> Self {
        Error::Store(Arc::new(e))
    }
}

impl Error {
    /// Whether the same call may succeed if simply tried again (after [`retry_after`](Self::retry_after)
    /// or a backoff). A retry of a call with side effects is safe only when it is idempotent:
    /// the [`Producer`](crate::Producer) sends every batch with an `Idempotency-Key`.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(a) => {
                matches!(a.status, 408 | 429 | 502 | 503 | 504)
                    || matches!(
                        a.code,
                        ErrorCode::Overloaded | ErrorCode::Unavailable | ErrorCode::Conflict
                    )
            }
            Error::Connect { .. } | Error::Transport { .. } => true,
            Error::Store(e) => e.is_retryable(),
            Error::Decode(_) | Error::Invalid(_) | Error::Closed => false,
        }
    }

    /// Whether the call certainly had no effect: it was refused before anything was done (a
    /// 4xx, including 429 backpressure), never sent, or only read.
    pub fn has_no_side_effects(&self) -> bool {
        match self {
            Error::Api(a) => (400..500).contains(&a.status) && a.status != 408,
            Error::Connect { .. } | Error::Store(_) | Error::Invalid(_) => true,
            Error::Transport { .. } | Error::Decode(_) | Error::Closed => false,
        }
    }

    /// The problem code: the server's, or for direct reads the one a gateway would have
    /// answered with.
    pub fn code(&self) -> Option<ErrorCode> {
        use sluice_core::Error as E;
        match self {
            Error::Api(a) => Some(a.code.clone()),
            Error::Store(e) => Some(match &**e {
                E::TopicNotFound(_) => ErrorCode::TopicNotFound,
                E::PartitionNotFound { .. } => ErrorCode::PartitionNotFound,
                E::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
                E::Invalid(_) => ErrorCode::InvalidRequest,
                E::Corrupt { .. } => ErrorCode::CorruptData,
                E::Store { .. } | E::Stale(_) => ErrorCode::Unavailable,
                _ => return None,
            }),
            _ => None,
        }
    }

    /// How long the server asked to wait before a retry (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api(a) => a.retry_after,
            _ => None,
        }
    }

    /// True when the server or the store could not be reached at all (the CLI's exit code 3).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Transport { .. } => true,
            Error::Store(e) => matches!(&**e, sluice_core::Error::Store { .. }),
            _ => false,
        }
    }

    /// The problem document's fields, when the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(a) => Some(a),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> Error {
        Error::Api(ApiError {
            status,
            code: ErrorCode::parse(code),
            detail: "d".into(),
            retry_after: None,
            earliest_offset: None,
            next_offset: None,
        })
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_survive() {
        for c in ["topic_not_found", "overloaded", "stale_generation"] {
            assert_eq!(ErrorCode::parse(c).as_str(), c);
            assert!(!matches!(ErrorCode::parse(c), ErrorCode::Other(_)));
        }
        assert_eq!(
            ErrorCode::parse("brand_new"),
            ErrorCode::Other("brand_new".into())
        );
    }

    #[test]
    fn retry_classification() {
        let overloaded = api(429, "overloaded");
        assert!(overloaded.is_retryable() && overloaded.has_no_side_effects());
        let unavailable = api(503, "unavailable");
        assert!(unavailable.is_retryable() && !unavailable.has_no_side_effects());
        let missing = api(404, "topic_not_found");
        assert!(!missing.is_retryable() && missing.has_no_side_effects());
        assert_eq!(missing.code(), Some(ErrorCode::TopicNotFound));
        let internal = api(500, "internal");
        assert!(!internal.is_retryable() && !internal.has_no_side_effects());
        let refused = Error::Connect {
            url: "u".into(),
            message: "refused".into(),
        };
        assert!(refused.is_retryable() && refused.has_no_side_effects());
        assert!(refused.is_unreachable());
        let reset = Error::Transport {
            url: "u".into(),
            message: "reset".into(),
        };
        assert!(reset.is_retryable() && !reset.has_no_side_effects());
        let gone: Error = sluice_core::Error::TopicNotFound("t".into()).into();
        assert_eq!(gone.code(), Some(ErrorCode::TopicNotFound));
        assert!(!gone.is_retryable() && !gone.is_unreachable());
        assert_eq!(api(400, "x").to_string(), "d (x)");
    }
}
