//! Delayed records (`rest-api.md`, "Delayed records"): produced with `delay_ms` /
//! `deliver_at_ms` (see `produce.rs`, which hands them here), listed and cancelled while
//! pending. The mechanism is `sluice_core::delayed`.

use super::produce::WithDelay;
use super::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiPath, ApiQuery};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use sluice_api::{
    DelayedList, DelayedOut, DelayedQuery, DelayedRef, ProduceAnswer, ProducedRecord,
};
use sluice_core::delayed::{deliver_at, Fingerprint, Idempotent};
use sluice_core::format::delayed::DelayedItem;
use sluice_core::format::record::Record;
use sluice_core::topic::TopicConfig;
use std::collections::BTreeMap;

/// A request's records split into those appended now and the delayed ones (with their index in
/// the request), and, when asked for (a request with an `Idempotency-Key`), the fingerprint of
/// the delayed ones as given. Every delay is checked first, so a bad one writes nothing.
pub struct Split {
    pub now: Vec<(Option<u32>, Record)>,
    pub delayed: Vec<(usize, DelayedItem)>,
    pub fingerprint: Option<[u8; 32]>,
}

pub fn split(records: Vec<WithDelay>, now_ms: i64, fingerprinted: bool) -> ApiResult<Split> {
    let mut now = Vec::new();
    let mut later = Vec::new();
    let mut fingerprint = fingerprinted.then(Fingerprint::default);
    for (i, ((partition, record), d)) in records.into_iter().enumerate() {
        match deliver_at(d.delay_ms, d.deliver_at_ms, now_ms)
            .map_err(|e| ApiError::Invalid(format!("record {i}: {e}")))?
        {
            None => now.push((partition, record)),
            Some(t) => {
                if let Some(f) = &mut fingerprint {
                    f.add(i, d.delay_ms, d.deliver_at_ms, partition, &record);
                }
                later.push((
                    i,
                    DelayedItem {
                        deliver_at_ms: t,
                        partition,
                        record,
                    },
                ))
            }
        }
    }
    Ok(Split {
        now,
        delayed: later,
        fingerprint: fingerprint.map(Fingerprint::finish),
    })
}

/// Write the delayed records (durably: every PUT answered) and answer their references, and
/// whether they were a retry answered from the request's idempotency marker.
pub async fn write(
    st: &AppState,
    topic: &TopicConfig,
    delayed: Vec<(usize, DelayedItem)>,
    idempotent: Option<Idempotent<'_>>,
) -> ApiResult<(Vec<(usize, DelayedRef)>, bool)> {
    if delayed.is_empty() {
        return Ok((Vec::new(), false));
    }
    let (index, items): (Vec<usize>, Vec<DelayedItem>) = delayed.into_iter().unzip();
    let written = st.delayed.write(topic, items, idempotent).await?;
    let refs = index
        .into_iter()
        .zip(written.ids.into_iter().zip(written.deliver_at_ms))
        .map(|(i, (delayed_id, deliver_at_ms))| {
            (
                i,
                DelayedRef {
                    delayed_id,
                    deliver_at_ms,
                },
            )
        })
        .collect();
    Ok((refs, written.duplicate))
}

/// The produce answer: the delayed references at their places in request order, the offsets
/// of the others around them.
pub fn answer(
    delayed: Vec<(usize, DelayedRef)>,
    offsets: Vec<ProducedRecord>,
    append_timestamp_ms: i64,
    duplicate: bool,
) -> ProduceAnswer {
    let total = delayed.len() + offsets.len();
    let mut delayed = delayed.into_iter().peekable();
    let mut offsets = offsets.into_iter();
    let mut out = Vec::with_capacity(total);
    for i in 0..total {
        match delayed.next_if(|(at, _)| *at == i) {
            Some((_, d)) => out.push(ProducedRecord::Delayed(d)),
            None => out.extend(offsets.next()),
        }
    }
    ProduceAnswer {
        offsets: out,
        append_timestamp_ms,
        duplicate,
    }
}

/// Pending delayed records of a topic, soonest first.
#[utoipa::path(get, path = "/v1/topics/{topic}/delayed", tag = "delayed", operation_id = "list_delayed",
    params(
        ("topic" = String, Path, description = "Topic name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "orders"),
        DelayedQuery,
    ),
    responses(
        (status = 200, description = "Pending records (not yet delivered, not cancelled), soonest first", body = DelayedList),
        (status = 400, description = "Bad `limit` (`invalid_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic (`topic_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(st): State<AppState>,
    ApiPath(topic): ApiPath<String>,
    ApiQuery(q): ApiQuery<DelayedQuery>,
) -> ApiResult<Json<DelayedList>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Invalid(format!("limit {limit}: give 1 to 1000")));
    }
    let topic = st.log.topics().get(&topic).await?;
    let pending = st.delayed.list(&topic, limit as usize).await?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let delayed = pending
        .into_iter()
        .map(|p| {
            let (key, key_b64) = match &p.record.key {
                None => (None, None),
                Some(k) => match std::str::from_utf8(k) {
                    Ok(s) => (Some(s.to_string()), None),
                    Err(_) => (None, Some(b64(k))),
                },
            };
            let headers: BTreeMap<String, String> = p
                .record
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.clone(), std::str::from_utf8(v).ok()?.to_string())))
                .collect();
            DelayedOut {
                delayed_id: p.id,
                deliver_at_ms: p.deliver_at_ms,
                key,
                key_b64,
                headers,
                partition: p.partition,
            }
        })
        .collect();
    Ok(Json(DelayedList { delayed }))
}

/// Cancel a pending delayed record.
#[utoipa::path(delete, path = "/v1/topics/{topic}/delayed/{delayed_id}", tag = "delayed",
    params(
        ("topic" = String, Path, description = "Topic name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "orders"),
        ("delayed_id" = String, Path, description = "The `delayed_id` the produce answer gave", example = "1764690000123-01JDXKQ6S4W7N0M5B1Z8Y3V2TR-0"),
    ),
    responses(
        (status = 204, description = "Cancelled: it will never be delivered"),
        (status = 404, description = "Delivered (or being delivered), cancelled already, or unknown (`delayed_not_found`); or no such topic (`topic_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    State(st): State<AppState>,
    ApiPath((topic, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let topic = st.log.topics().get(&topic).await?;
    st.delayed.cancel(&topic, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
