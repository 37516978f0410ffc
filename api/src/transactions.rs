//! Transactions: half messages with check-back (`rest-api.md`, "Transactions").

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/transactions`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginTransaction {
    /// After this long an open transaction stops accepting records and is checked back (or
    /// rolled back without `check_url`). 1 to 86 400 000 (24 h); default 60 000.
    #[schema(minimum = 1, maximum = 86_400_000, example = 60000)]
    pub timeout_ms: Option<u64>,
    /// Absolute `http`/`https` URL the gateway POSTs a [`CheckBackRequest`] to once the
    /// transaction is past its timeout; it answers a [`CheckBackAnswer`].
    #[schema(
        max_length = 2048,
        example = "http://orders.internal:8000/sluice/check"
    )]
    pub check_url: Option<String>,
}

/// A new transaction: stage records with `?transaction={transaction_id}`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Transaction {
    #[schema(example = "01JDC0000000000000000000AA")]
    pub transaction_id: String,
    /// When it stops accepting records (ms since the epoch).
    pub expires_at_ms: i64,
}

/// The answer to a produce request with `?transaction=`: its records are staged, invisible
/// until the transaction commits.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StagedAnswer {
    /// Records staged by this request.
    pub staged: u64,
}

/// One committed record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct TransactionOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// `POST /v1/transactions/{id}/commit`: every staged record, in staging order, readable.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct TransactionCommitted {
    pub offsets: Vec<TransactionOffset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionState {
    Open,
    Committed,
    RolledBack,
}

/// `GET /v1/transactions/{id}`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct TransactionInfo {
    #[schema(example = "01JDC0000000000000000000AA")]
    pub transaction_id: String,
    /// `committed` from the moment the commit is decided.
    pub state: TransactionState,
    /// Records staged, in all.
    pub staged: u64,
    /// Check-backs made that answered `unknown` or failed.
    pub checks: u32,
    pub expires_at_ms: i64,
    /// For `committed`: whether every staged record is readable yet (a commit interrupted by a
    /// crash is finished by any gateway).
    pub visible: bool,
    /// Who decided: `client`, `check_back`, `timeout`, `checks` (15 check-backs without an
    /// answer); absent while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}

/// `GET /v1/transactions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TransactionListQuery {
    /// Most transactions to list (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// `GET /v1/transactions`: the transactions not finished yet — open ones, and decided ones
/// whose clean-up has not run — oldest first (by begin time, to the millisecond).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct TransactionList {
    pub transactions: Vec<TransactionInfo>,
}

/// What the gateway POSTs to `check_url`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CheckBackRequest {
    pub transaction_id: String,
    /// Topics with staged records.
    pub topics: Vec<String>,
    /// Records staged, in all.
    pub staged: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckBackStatus {
    Commit,
    Rollback,
    Unknown,
}

/// What `check_url` answers (200, JSON). Anything else counts as `unknown`: the check is made
/// again with backoff, and after 15 checks the transaction is rolled back.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CheckBackAnswer {
    pub status: CheckBackStatus,
}

/// The 200 answer of `POST /v1/topics/{topic}/records`: appended, or (with `?transaction=`)
/// staged.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ProduceOutcome {
    Appended(crate::ProduceAnswer),
    Staged(StagedAnswer),
}
