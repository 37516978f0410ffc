//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! wire types. Served at `GET /v1/openapi.json`.

use super::{delayed, groups, produce, producers, queues, read, topics, transactions};
use crate::auth::AuthDoc;
use crate::error::Problem;
use crate::overload::OverloadDoc;
use axum::Json;
use sluice_api::ProduceRecordRules;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{ContentBuilder, OpenApi as Doc, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice REST API",
        version = "1",
        description = "A message queue whose only storage is S3-compatible object storage. \
            Errors are application/problem+json documents with a stable `code`."
    ),
    paths(
        topics::create,
        topics::list,
        topics::get,
        topics::update,
        topics::delete,
        produce::produce,
        delayed::list,
        delayed::cancel,
        producers::create,
        transactions::begin,
        transactions::commit,
        transactions::rollback,
        transactions::describe,
        transactions::list,
        read::read,
        read::offset_for_timestamp,
        groups::join,
        groups::heartbeat,
        groups::leave,
        groups::poll,
        groups::commit,
        groups::describe,
        groups::list,
        groups::delete,
        groups::reset,
        queues::put,
        queues::get,
        queues::list,
        queues::delete,
        queues::receive,
        queues::ack,
        queues::nack,
        queues::extend,
        queues::history,
        queues::redrive,
        super::healthz,
        super::readyz,
        super::metrics_text,
        openapi_json,
        crate::console::index,
        crate::console::file,
    ),
    components(schemas(
        Problem,
        sluice_api::CreateTopic,
        sluice_api::PatchTopic,
        sluice_api::Topic,
        sluice_api::TopicDetail,
        sluice_api::TopicList,
        sluice_api::PartitionInfo,
        sluice_api::ProduceBody,
        sluice_api::ProduceRecord,
        sluice_api::ProduceAnswer,
        sluice_api::RecordOffset,
        sluice_api::ProducedRecord,
        sluice_api::DelayedRef,
        sluice_api::DelayedList,
        sluice_api::DelayedOut,
        sluice_api::Accepted,
        sluice_api::AckMode,
        sluice_api::ReadAnswer,
        sluice_api::RecordOut,
        sluice_api::OffsetAnswer,
        sluice_api::GroupStart,
        sluice_api::JoinGroup,
        sluice_api::Assignment,
        sluice_api::Membership,
        sluice_api::GroupRecord,
        sluice_api::PollAnswer,
        sluice_api::OffsetCommit,
        sluice_api::CommitOffsets,
        sluice_api::Committed,
        sluice_api::CommitAnswer,
        sluice_api::TopicPartition,
        sluice_api::MemberInfo,
        sluice_api::PartitionLag,
        sluice_api::GroupDetail,
        sluice_api::GroupSummary,
        sluice_api::GroupList,
        sluice_api::ResetOffsets,
        sluice_api::PutQueue,
        sluice_api::Queue,
        sluice_api::QueueStats,
        sluice_api::QueueDetail,
        sluice_api::QueueList,
        sluice_api::ReceiveBody,
        sluice_api::ReceiveAnswer,
        sluice_api::Message,
        sluice_api::AckBody,
        sluice_api::NackBody,
        sluice_api::ExtendBody,
        sluice_api::SettleAnswer,
        sluice_api::RejectedReceipt,
        sluice_api::RecordHistory,
        sluice_api::HistoryEvent,
        sluice_api::RedriveBody,
        sluice_api::RedriveAnswer,
        sluice_api::CreateProducer,
        sluice_api::Producer,
        sluice_api::BeginTransaction,
        sluice_api::Transaction,
        sluice_api::StagedAnswer,
        sluice_api::ProduceOutcome,
        sluice_api::TransactionOffset,
        sluice_api::TransactionCommitted,
        sluice_api::TransactionState,
        sluice_api::TransactionInfo,
        sluice_api::TransactionList,
        sluice_api::CheckBackRequest,
        sluice_api::CheckBackStatus,
        sluice_api::CheckBackAnswer,
    )),
    modifiers(&CommonErrors, &AuthDoc, &OverloadDoc, &ProduceRecordRules),
    tags(
        (name = "topics", description = "Topic administration"),
        (name = "records", description = "Produce and read records"),
        (name = "delayed", description = "Delayed records: pending ones listed and cancelled (produce them with `delay_ms` / `deliver_at_ms`)"),
        (name = "groups", description = "Consumer groups: membership, polls, committed offsets, lag"),
        (name = "queues", description = "Queue mode: per-record leases, acks and dead letters"),
        (name = "transactions", description = "Transactions: records staged until commit (all or nothing across topics), rollback, check-back of expired ones at `check_url` (POST a CheckBackRequest, answered by a CheckBackAnswer)"),
        (name = "operations", description = "Health, readiness, metrics, this document, the web console"),
    )
)]
pub struct ApiDoc;

/// Adds the answers every `/v1` operation can give: 503 `unavailable` (store unreachable; retry
/// after `Retry-After`) and 500 (`corrupt_data`, `internal`).
struct CommonErrors;

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

pub(crate) fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                crate::error::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut Doc) {
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/topics")
                && !path.starts_with("/v1/groups")
                && !path.starts_with("/v1/producers")
            {
                continue;
            }
            for op in operations(item) {
                let r = &mut op.responses.responses;
                r.entry("400".into()).or_insert_with(|| {
                    problem_response("Malformed parameters (`invalid_request`)")
                });
                r.entry("500".into()).or_insert_with(|| {
                    problem_response("Stored data failed its checks (`corrupt_data`, `internal`)")
                });
                r.entry("503".into()).or_insert_with(|| {
                    problem_response(
                        "The object store is unreachable; retry after `Retry-After` (`unavailable`)",
                    )
                });
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi_json() -> Json<Doc> {
    Json(ApiDoc::openapi())
}

pub use openapi_json as serve;

#[cfg(test)]
mod tests {
    use super::ApiDoc;
    use std::collections::BTreeMap;
    use utoipa::OpenApi;

    /// OpenAPI requires unique operationIds, and tools that link operations by them (Schemathesis'
    /// stateful phase, client generators) resolve a shared one to the wrong operation: utoipa's
    /// default is the handler's name, which several modules share (`list`, `get`, …).
    #[test]
    fn every_operation_id_is_unique() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                    seen.entry(id.to_string())
                        .or_default()
                        .push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        let shared: Vec<_> = seen.iter().filter(|(_, ops)| ops.len() > 1).collect();
        assert!(
            shared.is_empty(),
            "operationIds used more than once: {shared:?}"
        );
        assert!(seen.len() >= 40, "{} operations", seen.len());
    }
}
