//! Idempotent producers: register one, or bump its epoch (fencing the old one).

use super::AppState;
use crate::error::{ApiResult, Problem};
use crate::extract::{optional_json, Body};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sluice_api::{CreateProducer, Producer};
use sluice_core::ids::ProducerId;

/// A `Producer-Id` or `producer_id`: a ULID, else not found (it cannot exist).
pub fn producer_id(s: &str) -> ApiResult<ProducerId> {
    ProducerId::parse(s)
        .ok_or_else(|| sluice_core::Error::ProducerNotFound(format!("{s:?}")).into())
}

/// Register an idempotent producer, or bump the epoch of an existing one.
#[utoipa::path(post, path = "/v1/producers", tag = "records", operation_id = "create_producer",
    request_body(content = Option<CreateProducer>, description = "Empty (or `{}`) for a new producer; `{\"producer_id\"}` to bump an existing producer's epoch"),
    responses(
        (status = 201, description = "The producer id and its new epoch", body = Producer),
        (status = 400, description = "Malformed body (`invalid_json`, `invalid_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such producer (`producer_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Bumped concurrently; retry (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large (`request_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let req: CreateProducer = optional_json(&headers, &body)?;
    let producers = st.log.producers();
    let (id, epoch) = match req.producer_id {
        None => producers.create().await?,
        Some(id) => {
            let id = producer_id(&id)?;
            (id, producers.bump(id).await?)
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(Producer {
            producer_id: id.to_string(),
            epoch,
        }),
    )
        .into_response())
}
