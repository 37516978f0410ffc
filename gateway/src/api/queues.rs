//! Queue mode handlers (`rest-api.md`, "Queue mode"). The logic is in `sluice_core::queue`
//! (pure planning) and [`crate::queues`] (IO); these functions check the input and shape the
//! answers.

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::queues::{QueueRuntime, STATE_STALENESS};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sluice_api::{
    AckBody, ExtendBody, HistoryEvent, Message, NackBody, PutQueue, Queue, QueueDetail, QueueList,
    ReceiveAnswer, ReceiveBody, RecordHistory, RecordOut, RedriveAnswer, RedriveBody,
    RejectedReceipt, SettleAnswer,
};
use sluice_core::queue::state::{self, EventKind, QueueOp, QueueState, Settle};
use sluice_core::queue::{
    check_visibility, Ordering, QueueSpec, StartAt, MAX_RECEIVE, MAX_WAIT_MS,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const MAX_RECEIPTS: usize = 1000;
const MAX_REASON_BYTES: usize = 1024;
/// How often a long-polling receive looks again when nothing was ready.
const RECEIVE_POLL: Duration = Duration::from_millis(50);

fn known(name: &str) -> ApiResult<()> {
    sluice_core::topic::validate_name(name)
        .map_err(|_| sluice_core::Error::QueueNotFound(name.to_string()).into())
}

/// Create or update a queue.
#[utoipa::path(put, path = "/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "orders-workers")),
    request_body = PutQueue,
    responses(
        (status = 201, description = "Created", body = Queue),
        (status = 200, description = "Updated", body = Queue),
        (status = 400, description = "Invalid name or settings, or another topic than the queue's (`invalid_request`, `invalid_json`, `invalid_filter`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic (`topic_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently; retry (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PutQueue>,
) -> ApiResult<Response> {
    sluice_core::topic::validate_name(&name)?;
    let spec = QueueSpec {
        topic: body.topic,
        visibility_timeout_ms: body.visibility_timeout_ms.unwrap_or(30_000),
        max_deliveries: body.max_deliveries.unwrap_or(5),
        dead_letter_topic: body
            .dead_letter_topic
            .unwrap_or_else(|| format!("{name}.dlq")),
        ordering: body.ordering.map_or(Ordering::None, Into::into),
        start: body.start.map_or(StartAt::Earliest, Into::into),
        filter: body
            .filter
            .as_deref()
            .map(sluice_core::filter::Filter::parse)
            .transpose()?,
    };
    spec.validate()?;
    st.log.topics().get(&spec.topic).await?;
    let (cfg, created) = st.queues.configs.put(&name, &spec).await?;
    st.queues.dead_letter_topic(&cfg).await?;
    st.queues.adopt(cfg.clone()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    // No Location header: Schemathesis infers links from it that do not resolve (it maps the
    // queue's path onto the topic operations); the queue's path is its name, as PUT says.
    Ok((status, Json(Queue::from(&cfg))).into_response())
}

/// A queue's config and backlog.
#[utoipa::path(get, path = "/v1/queues/{queue}", tag = "queues", operation_id = "get_queue",
    params(("queue" = String, Path, description = "Queue name", example = "orders-workers")),
    responses(
        (status = 200, description = "Config and backlog", body = QueueDetail),
        (status = 404, description = "No such queue (`queue_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<QueueDetail>> {
    known(&name)?;
    let rt = st.queues.get(&name).await?;
    let stats = st.queues.stats(&rt).await?;
    Ok(Json(QueueDetail {
        config: Queue::from(&*rt.config()),
        stats,
    }))
}

/// Every queue (with auth: those the token has a scope on).
#[utoipa::path(get, path = "/v1/queues", tag = "queues", operation_id = "list_queues",
    responses((status = 200, description = "Every live queue, sorted by name", body = QueueList)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<Json<QueueList>> {
    let all = st.queues.configs.list().await?;
    let visible = |name: &str| caller.as_ref().is_none_or(|c| c.may_see(name));
    Ok(Json(QueueList {
        queues: all
            .iter()
            .filter(|c| visible(&c.name))
            .map(Queue::from)
            .collect(),
    }))
}

/// Delete a queue and its state (its topic and dead-letter topic stay).
#[utoipa::path(delete, path = "/v1/queues/{queue}", tag = "queues", operation_id = "delete_queue",
    params(("queue" = String, Path, description = "Queue name", example = "scratch")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such queue (`queue_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently; retry (`conflict`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    known(&name)?;
    st.queues.configs.delete(&name).await?;
    st.queues.forget(&name);
    Ok(StatusCode::NO_CONTENT)
}

fn check_receive(b: &ReceiveBody, default_vt: i64) -> ApiResult<(usize, i64, u64)> {
    let max = b.max.unwrap_or(10);
    if !(1..=MAX_RECEIVE as u64).contains(&max) {
        return Err(ApiError::Invalid(format!(
            "max must be between 1 and {MAX_RECEIVE}"
        )));
    }
    let vt = b.visibility_timeout_ms.unwrap_or(default_vt);
    check_visibility("visibility_timeout_ms", vt)?;
    if vt == 0 {
        return Err(ApiError::Invalid(
            "visibility_timeout_ms must be positive".into(),
        ));
    }
    let wait = b.wait_ms.unwrap_or(0);
    if wait > MAX_WAIT_MS {
        return Err(ApiError::Invalid(format!(
            "wait_ms must be at most {MAX_WAIT_MS}"
        )));
    }
    Ok((max as usize, vt, wait))
}

/// Lease up to `max` records.
#[utoipa::path(post, path = "/v1/queues/{queue}/receive", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "orders-workers")),
    request_body = ReceiveBody,
    responses(
        (status = 200, description = "Leased records (none if nothing was ready within `wait_ms`)", body = ReceiveAnswer),
        (status = 400, description = "`max`, `wait_ms` or `visibility_timeout_ms` out of range (`invalid_request`, `invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue or topic (`queue_not_found`, `topic_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn receive(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ReceiveBody>,
) -> ApiResult<Json<ReceiveAnswer>> {
    known(&name)?;
    let rt = st.queues.get(&name).await?;
    let cfg = rt.config();
    let (max, vt, wait_ms) = check_receive(&body, cfg.visibility_timeout_ms)?;
    let topic = st.log.topics().get(&cfg.topic).await?;
    let rules = cfg.rules();
    let gw = st.queues.gateway_id.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let mut changes = rt.state.subscribe();
    loop {
        let view = rt.state.read(STATE_STALENESS).await?;
        let (windows, fetched) = st.queues.windows(&rt, &topic, &view.state, max).await?;
        let now = st.queues.now_ms().max(view.time_ms);
        let (ops, _) = state::plan_receive(&view.state, &rules, &windows, max, now + vt, now, None);
        if !ops.is_empty() {
            let windows = Arc::new(windows);
            let (rules2, gw2) = (rules.clone(), gw.clone());
            let c = rt
                .state
                .propose(move |s: &QueueState, t| {
                    state::plan_receive(s, &rules2, &windows, max, t + vt, t, Some(&gw2))
                })
                .await?;
            if !c.answer.is_empty() {
                let messages = messages(&st, &rt, &topic, &c.answer, fetched).await?;
                if !messages.is_empty() {
                    return Ok(Json(ReceiveAnswer { messages }));
                }
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Json(ReceiveAnswer { messages: vec![] }));
        }
        let tick = (now + RECEIVE_POLL).min(deadline);
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep_until(tick) => {}
            _ = st.shutting_down() => return Ok(Json(ReceiveAnswer { messages: vec![] })),
        }
    }
}

async fn messages(
    st: &AppState,
    rt: &QueueRuntime,
    topic: &sluice_core::topic::TopicConfig,
    grants: &[state::Grant],
    mut fetched: crate::queues::Fetched,
) -> ApiResult<Vec<Message>> {
    // Redelivered records were not read ahead: read them (one read per run of offsets).
    let missing: Vec<(u32, u64)> = grants
        .iter()
        .map(|g| (g.p, g.o))
        .filter(|pos| !fetched.contains_key(pos))
        .collect();
    if !missing.is_empty() {
        fetched.extend(st.queues.read_many(topic, missing).await?);
    }
    let tag = rt.receipt_tag();
    let mut out = Vec::with_capacity(grants.len());
    for g in grants {
        let Some(rec) = fetched.get(&(g.p, g.o)) else {
            tracing::warn!(
                partition = g.p,
                offset = g.o,
                "leased record is gone (retention)"
            );
            continue;
        };
        out.push(Message {
            receipt: crate::queues::receipt(&tag, g.p, g.o, g.lease),
            topic: topic.name.clone(),
            partition: g.p,
            record: RecordOut::from(rec),
            delivery_count: g.deliveries,
        });
    }
    Ok(out)
}

fn check_receipts(receipts: &[String]) -> ApiResult<()> {
    if receipts.len() > MAX_RECEIPTS {
        return Err(ApiError::Invalid(format!(
            "at most {MAX_RECEIPTS} receipts per request"
        )));
    }
    Ok(())
}

async fn settle(
    st: &AppState,
    name: &str,
    receipts: Vec<String>,
    action: Settle,
) -> ApiResult<Json<SettleAnswer>> {
    known(name)?;
    check_receipts(&receipts)?;
    let rt = st.queues.get(name).await?;
    let tag = rt.receipt_tag();
    let refs: Vec<_> = receipts
        .iter()
        .map(|r| crate::queues::parse_receipt(&tag, r))
        .collect();
    let rules = rt.config().rules();
    let c = rt
        .state
        .propose(move |s: &QueueState, t| {
            let (ops, res) = state::plan_settle(s, &rules, &refs, &action, t);
            (ops, res)
        })
        .await?;
    let mut acked = 0;
    let mut rejected = Vec::new();
    for (receipt, r) in receipts.into_iter().zip(c.answer) {
        match r {
            None => acked += 1,
            Some(why) => rejected.push(RejectedReceipt {
                receipt,
                code: why.code().into(),
            }),
        }
    }
    Ok(Json(SettleAnswer { acked, rejected }))
}

/// Ack leased records: they are done.
#[utoipa::path(post, path = "/v1/queues/{queue}/ack", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "orders-workers")),
    request_body = AckBody,
    responses(
        (status = 200, description = "Accepted count and per-receipt rejections (`receipt_expired`, `receipt_invalid`)", body = SettleAnswer),
        (status = 400, description = "Malformed body or more than 1000 receipts (`invalid_request`, `invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue (`queue_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ack(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<AckBody>,
) -> ApiResult<Json<SettleAnswer>> {
    settle(&st, &name, body.receipts, Settle::Ack).await
}

/// Give leased records back: ready again after `delay_ms`, or dead-lettered on their last delivery.
#[utoipa::path(post, path = "/v1/queues/{queue}/nack", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "orders-workers")),
    request_body = NackBody,
    responses(
        (status = 200, description = "Accepted count and per-receipt rejections", body = SettleAnswer),
        (status = 400, description = "Malformed body, delay out of range, reason too long (`invalid_request`, `invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue (`queue_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn nack(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<NackBody>,
) -> ApiResult<Json<SettleAnswer>> {
    let delay_ms = body.delay_ms.unwrap_or(0);
    check_visibility("delay_ms", delay_ms)?;
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.len() > MAX_REASON_BYTES)
    {
        return Err(ApiError::Invalid(format!(
            "reason must be at most {MAX_REASON_BYTES} bytes"
        )));
    }
    let action = Settle::Nack {
        delay_ms,
        reason: body.reason,
    };
    settle(&st, &name, body.receipts, action).await
}

/// Extend leases: each then ends `visibility_timeout_ms` from now.
#[utoipa::path(post, path = "/v1/queues/{queue}/extend", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "orders-workers")),
    request_body = ExtendBody,
    responses(
        (status = 200, description = "Accepted count and per-receipt rejections", body = SettleAnswer),
        (status = 400, description = "Malformed body or timeout out of range (`invalid_request`, `invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue (`queue_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn extend(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ExtendBody>,
) -> ApiResult<Json<SettleAnswer>> {
    check_visibility("visibility_timeout_ms", body.visibility_timeout_ms)?;
    let action = Settle::Extend {
        visibility_timeout_ms: body.visibility_timeout_ms,
    };
    settle(&st, &name, body.receipts, action).await
}

fn event_name(e: EventKind) -> &'static str {
    match e {
        EventKind::Leased => "leased",
        EventKind::Acked => "acked",
        EventKind::Nacked => "nacked",
        EventKind::Expired => "expired",
        EventKind::DeadLettered => "dead_lettered",
        EventKind::Redriven => "redriven",
    }
}

/// One record's state and delivery history in this queue.
#[utoipa::path(get, path = "/v1/queues/{queue}/records/{partition}/{offset}", tag = "queues",
    params(
        ("queue" = String, Path, description = "Queue name", example = "orders-workers"),
        ("partition" = u32, Path, description = "Partition"),
        ("offset" = u64, Path, description = "Offset"),
    ),
    responses(
        (status = 200, description = "State, delivery count and history (the history of finished records is kept for the 10 000 most recent)", body = RecordHistory),
        (status = 400, description = "Partition or offset not a number (`invalid_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue, partition or record (`queue_not_found`, `partition_not_found`, `record_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn history(
    State(st): State<AppState>,
    ApiPath((name, partition, offset)): ApiPath<(String, u32, u64)>,
) -> ApiResult<Json<RecordHistory>> {
    known(&name)?;
    let rt = st.queues.get(&name).await?;
    let topic = st.log.topics().get(&rt.config().topic).await?;
    topic.check_partition(partition)?;
    let view = rt.state.read(STATE_STALENESS).await?;
    let now = st.queues.now_ms();
    let (state, delivery_count, events) =
        match state::record_view(&view.state, (partition, offset), now) {
            Some(v) => v,
            None => {
                let end = st.log.partition_info(&topic, partition).await?.next_offset;
                if offset >= end {
                    return Err(ApiError::RecordNotFound(format!(
                        "partition {partition} has no offset {offset} yet (next is {end})"
                    )));
                }
                ("ready", 0, Vec::new())
            }
        };
    Ok(Json(RecordHistory {
        state: state.into(),
        delivery_count,
        history: events
            .into_iter()
            .map(|e| HistoryEvent {
                at_ms: e.at_ms,
                event: event_name(e.event).into(),
                gateway: e.gateway,
                reason: e.reason,
            })
            .collect(),
    }))
}

/// Make dead-lettered records of this queue ready again in this queue.
#[utoipa::path(post, path = "/v1/queues/{queue}/redrive", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", example = "orders-workers")),
    request_body = RedriveBody,
    responses(
        (status = 200, description = "How many were (or, with `dry_run`, would be) redriven", body = RedriveAnswer),
        (status = 400, description = "Malformed body or filter (`invalid_request`, `invalid_json`, `invalid_filter`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such queue (`queue_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn redrive(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RedriveBody>,
) -> ApiResult<Json<RedriveAnswer>> {
    let filter = body
        .filter
        .as_deref()
        .map(sluice_core::filter::Filter::parse)
        .transpose()?;
    known(&name)?;
    let rt = st.queues.get(&name).await?;
    let max = body
        .max
        .map_or(usize::MAX, |m| m.min(usize::MAX as u64) as usize);
    // With a filter: which dead records pass it (read once, before planning: plans are pure).
    let passing: Option<Arc<HashSet<state::Pos>>> = match &filter {
        None => None,
        Some(f) => Some(Arc::new(st.queues.dead_passing(&rt, f).await?)),
    };
    let keep = move |pos: state::Pos| passing.as_ref().is_none_or(|set| set.contains(&pos));
    if body.dry_run.unwrap_or(false) {
        let view = rt.state.read(Duration::ZERO).await?;
        let n = state::plan_redrive(&view.state, max, |pos, _| keep(pos)).len() as u64;
        return Ok(Json(RedriveAnswer {
            redriven: None,
            would_redrive: Some(n),
        }));
    }
    let c = rt
        .state
        .propose(move |s: &QueueState, _| {
            let picked = state::plan_redrive(s, max, |pos, _| keep(pos));
            let n = picked.len() as u64;
            let ops = if picked.is_empty() {
                vec![]
            } else {
                vec![QueueOp::Redrive { records: picked }]
            };
            (ops, n)
        })
        .await?;
    Ok(Json(RedriveAnswer {
        redriven: Some(c.answer),
        would_redrive: None,
    }))
}
