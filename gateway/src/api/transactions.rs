//! Transactions (half messages with check-back): begin, commit, rollback, describe. Staging is
//! the produce handler with `?transaction=` ([`stage`]); the state machine and its IO are
//! `sluice_core::txn`; the check-back resolver is [`crate::txn`].

use super::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{optional_json, ApiPath, ApiQuery, Body};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use sluice_api::{
    BeginTransaction, StagedAnswer, Transaction, TransactionCommitted, TransactionInfo,
    TransactionList, TransactionListQuery, TransactionOffset, TransactionState,
};
use sluice_core::format::record::Record;
use sluice_core::topic::TopicConfig;
use sluice_core::txn::Phase;

/// Begin a transaction. Stage records with `POST /v1/topics/{topic}/records?transaction={id}`,
/// then commit or roll back; past `timeout_ms` an open transaction is checked back at
/// `check_url` (or rolled back without one).
#[utoipa::path(post, path = "/v1/transactions", tag = "transactions",
    request_body(content = Option<BeginTransaction>, description = "Empty (or `{}`) for the defaults"),
    responses(
        (status = 201, description = "The transaction", body = Transaction),
        (status = 400, description = "Malformed body, `timeout_ms` out of range, or a malformed `check_url` (`invalid_json`, `invalid_request`, `invalid_check_url`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large (`request_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn begin(
    State(st): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let req: BeginTransaction = optional_json(&headers, &body)?;
    let began = st.txns.begin(req.timeout_ms, req.check_url).await?;
    Ok((
        StatusCode::CREATED,
        Json(Transaction {
            transaction_id: began.id,
            expires_at_ms: began.expires_at_ms,
        }),
    )
        .into_response())
}

/// Commit: every staged record, across topics and partitions, is appended (all or nothing,
/// whichever process dies); answers once all are readable. Idempotent.
#[utoipa::path(post, path = "/v1/transactions/{id}/commit", tag = "transactions", operation_id = "commit_transaction",
    params(("id" = String, Path, description = "The transaction id", example = "01JDC0000000000000000000AA")),
    responses(
        (status = 200, description = "Committed: every staged record's offset, in staging order", body = TransactionCommitted),
        (status = 404, description = "No such transaction (`transaction_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It was rolled back (`transaction_closed`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn commit(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TransactionCommitted>> {
    let offsets = st.txns.commit(&id).await?;
    Ok(Json(TransactionCommitted {
        offsets: offsets
            .into_iter()
            .map(|(topic, partition, offset)| TransactionOffset {
                topic,
                partition,
                offset,
            })
            .collect(),
    }))
}

/// Roll back: the staged records are never visible. Idempotent.
#[utoipa::path(post, path = "/v1/transactions/{id}/rollback", tag = "transactions",
    params(("id" = String, Path, description = "The transaction id", example = "01JDC0000000000000000000AA")),
    responses(
        (status = 204, description = "Rolled back"),
        (status = 404, description = "No such transaction (`transaction_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It was committed (`transaction_closed`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rollback(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    st.txns.rollback(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The transactions not finished yet (open, or decided and not cleaned up), oldest first.
#[utoipa::path(get, path = "/v1/transactions", tag = "transactions", operation_id = "list_transactions",
    params(TransactionListQuery),
    responses(
        (status = 200, description = "The transactions not finished yet, oldest first", body = TransactionList),
        (status = 400, description = "Bad `limit` (`invalid_request`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<TransactionListQuery>,
) -> ApiResult<Json<TransactionList>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Invalid(format!("limit {limit}: give 1 to 1000")));
    }
    let found = st.txns.list_unfinished(limit as usize).await?;
    Ok(Json(TransactionList {
        transactions: found.into_iter().map(|(id, s)| info(id, &s)).collect(),
    }))
}

/// A transaction's state, records staged and check-backs made.
#[utoipa::path(get, path = "/v1/transactions/{id}", tag = "transactions", operation_id = "describe_transaction",
    params(("id" = String, Path, description = "The transaction id", example = "01JDC0000000000000000000AA")),
    responses(
        (status = 200, description = "The transaction", body = TransactionInfo),
        (status = 404, description = "No such transaction, or finished longer ago than the retention (`transaction_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn describe(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TransactionInfo>> {
    let s = st.txns.describe(&id).await?;
    Ok(Json(info(id, &s)))
}

/// The API's view of a transaction's state.
fn info(id: String, s: &sluice_core::txn::TxnState) -> TransactionInfo {
    let state = match s.phase {
        Phase::Open => TransactionState::Open,
        Phase::Committing | Phase::Committed => TransactionState::Committed,
        Phase::RolledBack => TransactionState::RolledBack,
    };
    let decided_by = s.decided_by.and_then(|d| {
        serde_json::to_value(d)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    });
    TransactionInfo {
        transaction_id: id,
        state,
        staged: s.staged_records(),
        checks: s.checks,
        expires_at_ms: s.expires_at_ms,
        visible: s.phase == Phase::Committed,
        decided_by,
    }
}

/// The produce handler's `?transaction=` path: stage the request's records (already decoded
/// and checked like any produce) instead of appending them.
pub async fn stage(
    st: &AppState,
    id: &str,
    topic: &TopicConfig,
    records: Vec<(Option<u32>, Record)>,
    idempotency_key: Option<Bytes>,
) -> ApiResult<Response> {
    let key = idempotency_key
        .map(|k| String::from_utf8(k.to_vec()))
        .transpose()
        .map_err(|_| ApiError::Invalid("Idempotency-Key must be UTF-8".into()))?;
    let staged = st.txns.stage(id, topic, records, key).await?;
    Ok(Json(StagedAnswer {
        staged: staged as u64,
    })
    .into_response())
}
