//! The core's error type. Every variant says what the caller can do; the gateway maps each to
//! one HTTP status and stable code in a single place.

use crate::codec::DecodeError;
use crate::head::ApplyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object store failed; usually transient.
    #[error("object store {op} {key}: {source}")]
    Store {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// An object in the bucket failed to decode. Never silently skipped.
    #[error("corrupt object {key}: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: DecodeError,
    },
    /// The journal contradicts itself (e.g. an offset gap): a bug or a misbehaving store.
    #[error("journal inconsistency in shard {shard}: {source}")]
    Inconsistent {
        shard: u32,
        #[source]
        source: ApplyError,
    },
    #[error("topic {0:?} not found")]
    TopicNotFound(String),
    /// A delayed record that was delivered, cancelled, or never existed.
    #[error("delayed record {0:?} not found (delivered, cancelled or unknown)")]
    DelayedNotFound(String),
    #[error("queue {0:?} not found")]
    QueueNotFound(String),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("partition {partition} not found in topic {topic:?}")]
    PartitionNotFound { topic: String, partition: u32 },
    #[error("offset {offset} is out of range: earliest {earliest}, next {next}")]
    OffsetOutOfRange {
        offset: u64,
        earliest: u64,
        next: u64,
    },
    #[error("idempotency key was already used for a different request")]
    IdempotencyConflict,
    #[error("producer {0} not found")]
    ProducerNotFound(String),
    /// An idempotent producer's request from an epoch older than its newest.
    #[error("producer epoch {epoch} is fenced: epoch {current} has taken over")]
    ProducerFenced { epoch: u32, current: u32 },
    /// An idempotent producer's sequence with a gap, or older than the last 5.
    #[error("producer sequence {got} is out of order: expected {expected} (or a repeat of one of the last 5)")]
    OutOfOrderSequence { got: u64, expected: u64 },
    /// Refused to commit because a freshness bound was exceeded; retry the request.
    #[error("commit refused: {0}")]
    Stale(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A bug or an impossible state inside Sluice (not the caller's fault, not retryable).
    #[error("internal error: {0}")]
    Internal(String),
    /// The conditional update lost a race (e.g. a config changed concurrently); retry.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl Error {
    pub fn store(op: &'static str, key: impl ToString, source: object_store::Error) -> Self {
        Error::Store {
            op,
            key: key.to_string(),
            source,
        }
    }

    pub fn corrupt(key: impl ToString, source: DecodeError) -> Self {
        Error::Corrupt {
            key: key.to_string(),
            source,
        }
    }

    /// This error for `n` callers that share one failed operation: the first gets it as is, the
    /// others its message, as retryable (`Stale`) or not (`Internal`) as the original.
    pub fn spread(self, n: usize) -> Vec<Error> {
        let msg = self.to_string();
        let retryable = self.is_retryable();
        let mut first = Some(self);
        (0..n)
            .map(|_| match first.take() {
                Some(e) => e,
                None if retryable => Error::Stale(msg.clone()),
                None => Error::Internal(msg.clone()),
            })
            .collect()
    }

    /// Whether the same call may succeed if simply tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Store { .. } | Error::Stale(_) | Error::Conflict(_)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
