//! Gateway-to-gateway wire types, not part of the public contract: the answer of
//! `POST /internal/v1/commit?shard=N`, by which a gateway hands a shard's elected committer the
//! references of segments it has written (the request body is a journal entry with `seq` 0
//! holding the appends, see `docs/FORMAT.md`) and learns their offsets.

use serde::{Deserialize, Serialize};

/// The committer's answer: one outcome per append of the request, in order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommitAnswer {
    /// Append timestamp of the entry that committed the appends.
    pub append_ts: i64,
    pub outcomes: Vec<CommitOutcome>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CommitOutcome {
    /// Committed now: the base offset of each batch of the append, in order.
    Committed { base_offsets: Vec<u64> },
    /// Its idempotency key was committed before: that commit's answer.
    Duplicate {
        seq: u64,
        append_ts: i64,
        partition_count: u32,
        /// (partition, base offset, record count) per batch of the first commit.
        batches: Vec<(u32, u64, u32)>,
    },
    /// An idempotent producer's request from an epoch older than `current`: nothing written.
    Fenced { epoch: u32, current: u32 },
    /// An idempotent producer's sequence out of order (`expected` next): nothing written.
    OutOfOrder { got: u64, expected: u64 },
}
