//! Topic administration: create, list, describe, change, delete.

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::{StreamExt, TryStreamExt};
use sluice_api::{CreateTopic, PartitionInfo, PatchTopic, Topic, TopicDetail, TopicList};
use sluice_core::partition;
use sluice_core::topic::{validate_name, TopicPatch, TopicSettings};

/// A name that cannot exist is simply not found (and never reaches the store as a key).
fn known_name(name: &str) -> ApiResult<()> {
    validate_name(name).map_err(|_| sluice_core::Error::TopicNotFound(name.to_string()).into())
}

/// Create a topic.
#[utoipa::path(post, path = "/v1/topics", tag = "topics", operation_id = "create_topic",
    request_body = CreateTopic,
    responses(
        (status = 201, description = "Created", body = Topic),
        (status = 400, description = "Invalid name, partitions or retention (`invalid_request`, `invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The topic exists (`topic_exists`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large (`request_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<CreateTopic>,
) -> ApiResult<Response> {
    let shard = partition::for_key(body.name.as_bytes(), st.cfg.shards);
    let cfg = st
        .log
        .topics()
        .create_with(
            &body.name,
            body.partitions,
            TopicSettings {
                retention_ms: body.retention_ms,
                parquet: body.parquet,
            },
            shard,
        )
        .await?;
    let location = format!("/v1/topics/{}", cfg.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Topic::from(&*cfg)),
    )
        .into_response())
}

/// List all topics (with auth: those the token has some scope on).
#[utoipa::path(get, path = "/v1/topics", tag = "topics", operation_id = "list_topics",
    responses((status = 200, description = "Every live topic, sorted by name; with auth, only those the token has a scope on", body = TopicList)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<Json<TopicList>> {
    let topics = st.log.topics().list().await?;
    let visible = |name: &str| caller.as_ref().is_none_or(|c| c.may_see(name));
    Ok(Json(TopicList {
        topics: topics
            .iter()
            .filter(|t| visible(&t.name))
            .map(|t| Topic::from(&**t))
            .collect(),
    }))
}

/// A topic's config and each partition's offsets.
#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics", operation_id = "get_topic",
    params(("topic" = String, Path, description = "Topic name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "orders")),
    responses(
        (status = 200, description = "Config and per-partition offsets", body = TopicDetail),
        (status = 404, description = "No such topic (`topic_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(topic): ApiPath<String>,
) -> ApiResult<Json<TopicDetail>> {
    let cfg = st.log.topics().get(&topic).await?;
    let log = &st.log;
    let cfg_ref = &*cfg;
    let partition_info: Vec<PartitionInfo> = futures::stream::iter(0..cfg.partitions)
        .map(|p| async move {
            log.partition_info(cfg_ref, p)
                .await
                .map(PartitionInfo::from)
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(Json(TopicDetail {
        topic: Topic::from(&*cfg),
        partition_info,
    }))
}

/// Change the partition count (grow only), the retention or the Parquet table opt-in.
#[utoipa::path(patch, path = "/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "Topic name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "orders")),
    request_body = PatchTopic,
    responses(
        (status = 200, description = "The new config", body = Topic),
        (status = 400, description = "Nothing to change, shrinking partitions, bad values (`invalid_request`, `invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic (`topic_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently; retry (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large (`request_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(st): State<AppState>,
    ApiPath(topic): ApiPath<String>,
    ApiJson(body): ApiJson<PatchTopic>,
) -> ApiResult<Json<Topic>> {
    if body.partitions.is_none() && body.retention_ms.is_none() && body.parquet.is_none() {
        return Err(ApiError::Invalid(
            "nothing to change: give partitions, retention_ms and/or parquet".into(),
        ));
    }
    known_name(&topic)?;
    let cfg = st
        .log
        .topics()
        .update(
            &topic,
            TopicPatch {
                partitions: body.partitions,
                retention_ms: body.retention_ms,
                parquet: body.parquet,
            },
        )
        .await?;
    Ok(Json(Topic::from(&*cfg)))
}

/// Delete a topic and (eventually) its records.
#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics", operation_id = "delete_topic",
    params(("topic" = String, Path, description = "Topic name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "scratch")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such topic (`topic_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently; retry (`conflict`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(st): State<AppState>,
    ApiPath(topic): ApiPath<String>,
) -> ApiResult<StatusCode> {
    known_name(&topic)?;
    st.log.topics().delete(&topic).await?;
    Ok(StatusCode::NO_CONTENT)
}
