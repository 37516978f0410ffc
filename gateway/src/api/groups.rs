//! Consumer groups: join / heartbeat / leave, polls from the group's positions, commits,
//! describe, list, delete and reset. The group's state is a `core::group::GroupState` in its own
//! state log; this module turns requests into group ops and states into answers. Any gateway
//! serves any member: nothing here is kept between requests but caches.

use super::read::read_some;
use super::AppState;
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sluice_api::{
    Assignment, CommitAnswer, CommitOffsets, Committed, GroupDetail, GroupList, GroupRecord,
    GroupStart, GroupSummary, JoinGroup, MemberInfo, Membership, PartitionLag, PollAnswer,
    PollQuery, RecordOut, ResetOffsets, TopicPartition,
};
use sluice_core::filter::Filter;
use sluice_core::group::{
    Advance, CommitOffset, GroupError, GroupOp, GroupState, Member, StartFrom, TopicInfo,
};
use sluice_core::ids::new_ulid;
use sluice_core::log::ReadBatch;
use sluice_core::topic::{validate_name, TopicConfig};
use sluice_core::Error as CoreError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 30_000;
pub const MIN_SESSION_TIMEOUT_MS: u64 = 1_000;
pub const MAX_SESSION_TIMEOUT_MS: u64 = 3_600_000;
pub const DEFAULT_POLL_LIMIT: u64 = 100;
pub const MAX_POLL_LIMIT: u64 = 1_000;
pub const MAX_POLL_WAIT_MS: u64 = 30_000;
pub const MAX_TOPICS_PER_MEMBER: usize = 100;
/// Answers that no write depends on may use a state this old.
const READ_STALENESS: Duration = Duration::from_millis(100);
/// A poll's positions are checked again when its op is committed, so a slightly stale state
/// costs at most a retry.
const POLL_STALENESS: Duration = Duration::from_millis(20);
/// A long-poll looks at the group's state again at least this often (rebalances).
const POLL_WAIT_SLICE: Duration = Duration::from_secs(1);
/// Polls whose positions moved under them are read again this many times, then answered empty.
const POLL_RETRIES: usize = 5;

type MaybeCaller = Option<Extension<Caller>>;

fn group_name(group: &str) -> ApiResult<()> {
    validate_name(group).map_err(|_| GroupError::GroupNotFound.into())
}

fn require<'a>(
    caller: &MaybeCaller,
    scope: Scope,
    topics: impl IntoIterator<Item = &'a String>,
) -> ApiResult<()> {
    match caller {
        Some(Extension(c)) => c.require(scope, topics.into_iter().map(String::as_str)),
        None => Ok(()),
    }
}

/// The group's state (404 `group_not_found` when there is none). A state up to `staleness` old
/// will do, but "not found" is only ever answered from a state confirmed current: the group may
/// have been created through another gateway a moment ago.
async fn existing(st: &AppState, group: &str, staleness: Duration) -> ApiResult<GroupState> {
    group_name(group)?;
    let mut view = st.groups.state(group, staleness).await?;
    if !view.state.exists && !staleness.is_zero() {
        view = st.groups.state(group, Duration::ZERO).await?;
    }
    if !view.state.exists {
        return Err(GroupError::GroupNotFound.into());
    }
    Ok(view.state)
}

async fn topic_info(st: &AppState, topic: &str) -> ApiResult<(Arc<TopicConfig>, TopicInfo)> {
    let cfg = st.log.topics().get(topic).await?;
    let info = TopicInfo {
        id: cfg.id.clone(),
        partitions: cfg.partitions,
    };
    Ok((cfg, info))
}

/// The `Topics` op that brings the group up to date with its topics' configs (a topic grew or
/// was re-created), if one is needed.
async fn topics_refresh(st: &AppState, s: &GroupState) -> ApiResult<Option<GroupOp>> {
    let read: BTreeSet<&String> = s.members.values().flat_map(|m| &m.topics).collect();
    let mut changed = BTreeMap::new();
    for topic in read {
        let info = match topic_info(st, topic).await {
            Ok((_, info)) => info,
            Err(ApiError::Core(CoreError::TopicNotFound(_))) => continue,
            Err(e) => return Err(e),
        };
        let known = s.topics.get(topic);
        if known.is_none_or(|k| k.id != info.id || (k.partitions.len() as u32) < info.partitions) {
            changed.insert(topic.clone(), info);
        }
    }
    Ok((!changed.is_empty()).then_some(GroupOp::Topics { topics: changed }))
}

fn membership(s: &GroupState, member_id: &str) -> ApiResult<Membership> {
    let m = s
        .members
        .get(member_id)
        .ok_or_else(|| GroupError::MemberNotFound(member_id.to_string()))?;
    Ok(Membership {
        member_id: member_id.to_string(),
        generation: s.generation,
        assignments: s
            .assigned(member_id)
            .into_iter()
            .map(|(topic, partition)| Assignment {
                committed_offset: s.partition(&topic, partition).and_then(|p| p.committed),
                topic,
                partition,
            })
            .collect(),
        session_timeout_ms: m.session_timeout_ms,
    })
}

/// Whether a member's liveness is worth a write now: its last recorded sign of life is older
/// than a tenth of its session (so a member heartbeating often costs few writes, and expires
/// at most 10% early).
fn liveness_due(m: &Member, now: i64) -> bool {
    now.saturating_sub(m.last_seen_ms) >= (m.session_timeout_ms / 10) as i64
}

/// The live member `member_id` of `s` at `now`, or why not.
fn live_member<'a>(s: &'a GroupState, member_id: &str, now: i64) -> Result<&'a Member, GroupError> {
    if !s.exists {
        return Err(GroupError::GroupNotFound);
    }
    s.members
        .get(member_id)
        .filter(|m| m.expires_ms() > now)
        .ok_or_else(|| GroupError::MemberNotFound(member_id.to_string()))
}

/// Join a group as a new member.
#[utoipa::path(post, path = "/v1/groups/{group}/members", tag = "groups",
    params(("group" = String, Path, description = "Group name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "billing")),
    request_body = JoinGroup,
    responses(
        (status = 201, description = "Joined: the member id, the generation and the member's partitions", body = Membership),
        (status = 400, description = "Bad group name, topics or session timeout (`invalid_request`, `invalid_json`), or a malformed filter (`invalid_filter` with `position`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A topic does not exist (`topic_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large (`request_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn join(
    State(st): State<AppState>,
    ApiPath(group): ApiPath<String>,
    caller: MaybeCaller,
    ApiJson(body): ApiJson<JoinGroup>,
) -> ApiResult<Response> {
    validate_name(&group).map_err(|_| {
        ApiError::Invalid(format!(
            "group name {group:?}: 1 to 249 of A-Z a-z 0-9 . _ - (not . or ..)"
        ))
    })?;
    let topics: BTreeSet<String> = body.topics.iter().cloned().collect();
    if topics.is_empty() || topics.len() > MAX_TOPICS_PER_MEMBER {
        return Err(ApiError::Invalid(format!(
            "topics: give 1 to {MAX_TOPICS_PER_MEMBER} topics"
        )));
    }
    let timeout = body
        .session_timeout_ms
        .unwrap_or(DEFAULT_SESSION_TIMEOUT_MS);
    if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&timeout) {
        return Err(ApiError::Invalid(format!(
            "session_timeout_ms must be {MIN_SESSION_TIMEOUT_MS} to {MAX_SESSION_TIMEOUT_MS}"
        )));
    }
    // Kept in its canonical text; 400 `invalid_filter` with the position when malformed.
    let filter = match &body.filter {
        Some(f) => Some(Filter::parse(f)?.to_string()),
        None => None,
    };
    require(&caller, Scope::Consume, &topics)?;
    let mut infos = BTreeMap::new();
    for t in &topics {
        infos.insert(t.clone(), topic_info(&st, t).await?.1);
    }
    let now = st.groups.clock().now_ms();
    let member_id = format!("m-{}", new_ulid(now).to_string().to_ascii_lowercase());
    let op = GroupOp::Join {
        member_id: member_id.clone(),
        topics: infos,
        session_timeout_ms: timeout,
        start: match body.start.unwrap_or_default() {
            GroupStart::Earliest => StartFrom::Earliest,
            GroupStart::Latest => StartFrom::Latest,
        },
        filter,
    };
    let s = st
        .groups
        .propose(&group, move |_, _| Ok(Some(op.clone())))
        .await??;
    let location = format!("/v1/groups/{group}/members/{member_id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(membership(&s, &member_id)?),
    )
        .into_response())
}

/// Keep a member alive and learn its current assignment.
#[utoipa::path(post, path = "/v1/groups/{group}/members/{member}/heartbeat", tag = "groups",
    params(
        ("group" = String, Path, description = "Group name", example = "billing"),
        ("member" = String, Path, description = "Member id from the join"),
    ),
    responses(
        (status = 200, description = "The member's generation and partitions (they change on rebalance)", body = Membership),
        (status = 404, description = "No such group, or the member left or expired: join again (`group_not_found`, `member_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn heartbeat(
    State(st): State<AppState>,
    ApiPath((group, member)): ApiPath<(String, String)>,
    caller: MaybeCaller,
) -> ApiResult<Json<Membership>> {
    let s = existing(&st, &group, READ_STALENESS).await?;
    require(&caller, Scope::Consume, s.topics.keys())?;
    if let Some(op) = topics_refresh(&st, &s).await? {
        // A refresh that no longer applies (say the group was deleted) is simply not written.
        let _ = st
            .groups
            .propose(&group, move |_, _| Ok(Some(op.clone())))
            .await?;
    }
    let id = member.clone();
    let s = st
        .groups
        .propose(&group, move |s, now| {
            let m = live_member(s, &id, now)?;
            let due = liveness_due(m, now) || s.expiry_due(now);
            Ok(due.then(|| GroupOp::Heartbeat {
                member_id: id.clone(),
            }))
        })
        .await??;
    Ok(Json(membership(&s, &member)?))
}

/// Leave the group: the member's partitions go to the others at once.
#[utoipa::path(delete, path = "/v1/groups/{group}/members/{member}", tag = "groups",
    params(
        ("group" = String, Path, description = "Group name", example = "billing"),
        ("member" = String, Path, description = "Member id from the join"),
    ),
    responses(
        (status = 204, description = "Left"),
        (status = 404, description = "No such group or member (`group_not_found`, `member_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn leave(
    State(st): State<AppState>,
    ApiPath((group, member)): ApiPath<(String, String)>,
    caller: MaybeCaller,
) -> ApiResult<StatusCode> {
    let s = existing(&st, &group, READ_STALENESS).await?;
    require(&caller, Scope::Consume, s.topics.keys())?;
    st.groups
        .propose(&group, move |s, now| {
            live_member(s, &member, now)?;
            Ok(Some(GroupOp::Leave {
                member_id: member.clone(),
            }))
        })
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// What one poll read from the member's partitions.
#[derive(Default)]
struct Polled {
    records: Vec<GroupRecord>,
    advances: Vec<Advance>,
    /// Per partition read: (topic, partition, offset read up to, high watermark).
    ends: Vec<(Arc<TopicConfig>, u32, u64, u64)>,
}

/// Read up to `limit` records from the member's partitions, each from its position.
async fn read_partitions(
    st: &AppState,
    s: &GroupState,
    member: &Member,
    parts: &[(String, u32)],
    limit: usize,
    rotate: usize,
) -> ApiResult<Polled> {
    let parsed = match &member.filter {
        // Stored in canonical form by the join: it parses, or the state is corrupt.
        Some(f) => Some(Filter::parse(f).map_err(|e| {
            CoreError::Internal(format!("stored group filter {f:?} does not parse: {e}"))
        })?),
        None => None,
    };
    let filter = parsed.as_ref();
    let mut out = Polled::default();
    let n = parts.len();
    for i in 0..n {
        let (topic, partition) = &parts[(i + rotate) % n];
        let cfg = match st.log.topics().get(topic).await {
            Ok(c) => c,
            Err(CoreError::TopicNotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        if s.topics.get(topic).is_none_or(|t| t.id != cfg.id) || *partition >= cfg.partitions {
            continue; // re-created or shrunk under us: the next heartbeat refreshes the group
        }
        let room = limit.saturating_sub(out.records.len());
        let stored = s.read_from(topic, *partition);
        let mut from = match stored {
            Some(o) => o,
            None => {
                let info = st.log.partition_info(&cfg, *partition).await?;
                match member.start {
                    StartFrom::Earliest => info.earliest_offset,
                    StartFrom::Latest => info.next_offset,
                }
            }
        };
        let batch: ReadBatch = if room == 0 {
            // Nothing more fits; only a start still to pin down is worth an advance.
            if stored.is_some() {
                continue;
            }
            let info = st.log.partition_info(&cfg, *partition).await?;
            ReadBatch {
                records: Vec::new(),
                next_offset: from,
                high_watermark: info.next_offset,
            }
        } else {
            match read_some(st, &cfg, *partition, from, room, filter).await {
                Ok(b) => b,
                Err(ApiError::Core(CoreError::OffsetOutOfRange { earliest, next, .. })) => {
                    // Deleted by retention (or beyond a re-created end): go on from what exists.
                    from = if from < earliest { earliest } else { next };
                    read_some(st, &cfg, *partition, from, room, filter).await?
                }
                Err(e) => return Err(e),
            }
        };
        out.records
            .extend(batch.records.iter().map(|r| GroupRecord {
                topic: topic.clone(),
                partition: *partition,
                record: RecordOut::from(r),
            }));
        if stored != Some(batch.next_offset) {
            out.advances.push(Advance {
                topic: topic.clone(),
                partition: *partition,
                from: stored.unwrap_or(from),
                to: batch.next_offset,
            });
        }
        out.ends
            .push((cfg, *partition, batch.next_offset, batch.high_watermark));
    }
    Ok(out)
}

/// Wait until one of the partitions read has a record past where the poll stopped, `wait`
/// elapses or the server shuts down.
async fn wait_any(st: &AppState, ends: &[(Arc<TopicConfig>, u32, u64, u64)], wait: Duration) {
    if ends.is_empty() {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = st.shutting_down() => {}
        }
        return;
    }
    let waits = ends.iter().map(|(cfg, p, at, _)| {
        Box::pin(async move {
            let _ = st.log.wait_for(cfg, *p, *at, wait).await;
        })
    });
    tokio::select! {
        _ = futures::future::select_all(waits) => {}
        _ = st.shutting_down() => {}
    }
}

/// Poll records from the member's partitions.
#[utoipa::path(get, path = "/v1/groups/{group}/records", tag = "groups",
    params(("group" = String, Path, description = "Group name", example = "billing"), PollQuery),
    responses(
        (status = 200, description = "Records from the member's positions (the committed offset, then advancing within the member's session)", body = PollAnswer),
        (status = 400, description = "Bad `limit` (1 to 1000) or `wait_ms` (at most 30 000) (`invalid_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group, or the member left or expired (`group_not_found`, `member_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn poll(
    State(st): State<AppState>,
    ApiPath(group): ApiPath<String>,
    caller: MaybeCaller,
    ApiQuery(q): ApiQuery<PollQuery>,
) -> ApiResult<Json<PollAnswer>> {
    let limit = q.limit.unwrap_or(DEFAULT_POLL_LIMIT);
    if !(1..=MAX_POLL_LIMIT).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit must be 1 to {MAX_POLL_LIMIT}"
        )));
    }
    let wait_ms = q.wait_ms.unwrap_or(0);
    if wait_ms > MAX_POLL_WAIT_MS {
        return Err(ApiError::Invalid(format!(
            "wait_ms must be at most {MAX_POLL_WAIT_MS}"
        )));
    }
    let deadline = Instant::now() + Duration::from_millis(wait_ms.min(st.cfg.max_wait_ms));
    let auto_commit = q.auto_commit.unwrap_or(false);
    let member_id = q.member_id;
    let mut authorized = false;
    let mut conflicts = 0;
    // Past `max_waiting_readers` a long-poll degrades to a short poll.
    let mut slot = None;
    loop {
        let s = existing(&st, &group, POLL_STALENESS).await?;
        if !authorized {
            require(&caller, Scope::Consume, s.topics.keys())?;
            authorized = true;
        }
        let now = st.groups.clock().now_ms();
        let view = s.at(now);
        let member = match live_member(&view, &member_id, now) {
            Ok(m) => m.clone(),
            Err(_) => {
                // Ask a state confirmed current (the member may have joined through another
                // gateway a moment ago); an expiry found due is committed on the way.
                let id = member_id.clone();
                let current = st
                    .groups
                    .propose(&group, move |s, now| live_member(s, &id, now).map(|_| None))
                    .await??;
                conflicts += 1;
                if conflicts > POLL_RETRIES {
                    return Ok(Json(PollAnswer {
                        generation: current.generation,
                        records: Vec::new(),
                    }));
                }
                continue;
            }
        };
        if view.generation != s.generation {
            // Expiries are due: commit them first so the assignment read from is current.
            st.groups.propose(&group, |_, _| Ok(None)).await??;
            continue;
        }
        let parts = view.assigned(&member_id);
        let rotate = usize::try_from(now).unwrap_or(0) % parts.len().max(1);
        let polled = read_partitions(&st, &view, &member, &parts, limit as usize, rotate).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let may_wait = polled.records.is_empty() && !left.is_zero() && !*st.shutdown.borrow() && {
            if slot.is_none() {
                slot = st.waiting.clone().try_acquire_owned().ok();
            }
            slot.is_some()
        };
        // Positions moved (records read or dropped by the filter, or a start pinned down), or
        // this is the answer: commit them first.
        if !polled.advances.is_empty() || !may_wait {
            let id = member_id.clone();
            let advances = polled.advances.clone();
            let proposed = st
                .groups
                .propose(&group, move |s, now| {
                    let m = live_member(s, &id, now)?;
                    let worth = !advances.is_empty() || liveness_due(m, now);
                    Ok(worth.then(|| GroupOp::Poll {
                        member_id: id.clone(),
                        advances: advances.clone(),
                        commit: auto_commit,
                    }))
                })
                .await?;
            match proposed {
                Ok(after) => {
                    for (cfg, p, _, hw) in &polled.ends {
                        if let Some(ps) = after.partition(&cfg.name, *p) {
                            let lag = hw.saturating_sub(ps.committed.unwrap_or(0));
                            st.metrics.group_lag(&group, &cfg.name, *p, lag);
                        }
                    }
                    if !may_wait {
                        return Ok(Json(PollAnswer {
                            generation: after.generation,
                            records: polled.records,
                        }));
                    }
                }
                Err(GroupError::PositionMoved { .. } | GroupError::NotAssigned { .. })
                    if conflicts < POLL_RETRIES =>
                {
                    conflicts += 1;
                    continue;
                }
                Err(GroupError::PositionMoved { .. } | GroupError::NotAssigned { .. }) => {
                    return Ok(Json(PollAnswer {
                        generation: view.generation,
                        records: Vec::new(),
                    }));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Nothing yet: wait for a record (or a rebalance, looked at every slice) and read again;
        // once the deadline has passed, the next round answers whatever it reads.
        wait_any(&st, &polled.ends, left.min(POLL_WAIT_SLICE)).await;
    }
}

/// Commit offsets (the next offset to read) of the member's partitions.
#[utoipa::path(post, path = "/v1/groups/{group}/offsets", tag = "groups", operation_id = "commit_offsets",
    params(("group" = String, Path, description = "Group name", example = "billing")),
    request_body = CommitOffsets,
    responses(
        (status = 200, description = "Committed; the committed offsets now (a commit never moves one back)", body = CommitAnswer),
        (status = 400, description = "No offsets, or an offset beyond the end of its partition (`invalid_request`, `invalid_offset`, `invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group or member (`group_not_found`, `member_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The generation is not the current one (`stale_generation`), or a partition is not the member's (`not_assigned`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large (`request_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn commit(
    State(st): State<AppState>,
    ApiPath(group): ApiPath<String>,
    caller: MaybeCaller,
    ApiJson(body): ApiJson<CommitOffsets>,
) -> ApiResult<Json<CommitAnswer>> {
    if body.offsets.is_empty() {
        return Err(ApiError::Invalid("offsets: give at least one".into()));
    }
    let s = existing(&st, &group, READ_STALENESS).await?;
    require(&caller, Scope::Consume, s.topics.keys())?;
    let mut offsets = Vec::with_capacity(body.offsets.len());
    for o in &body.offsets {
        // An offset past the end would skip records nobody has read yet.
        if let Ok(cfg) = st.log.topics().get(&o.topic).await {
            if o.partition < cfg.partitions {
                let next = st.log.partition_info(&cfg, o.partition).await?.next_offset;
                if o.offset > next {
                    return Err(ApiError::InvalidOffset(format!(
                        "offset {} of {}/{} is beyond its end {next}",
                        o.offset, o.topic, o.partition
                    )));
                }
            }
        }
        offsets.push(CommitOffset {
            topic: o.topic.clone(),
            partition: o.partition,
            offset: o.offset,
        });
    }
    let op = GroupOp::Commit {
        member_id: body.member_id,
        generation: body.generation,
        offsets,
    };
    let after = st
        .groups
        .propose(&group, move |_, _| Ok(Some(op.clone())))
        .await??;
    Ok(Json(CommitAnswer {
        generation: after.generation,
        offsets: body
            .offsets
            .iter()
            .map(|o| Committed {
                topic: o.topic.clone(),
                partition: o.partition,
                committed_offset: after
                    .partition(&o.topic, o.partition)
                    .and_then(|p| p.committed),
            })
            .collect(),
    }))
}

/// Members, assignments and per partition the committed offset, high watermark and lag.
async fn detail(st: &AppState, group: &str, s: &GroupState) -> ApiResult<GroupDetail> {
    let mut partitions = Vec::new();
    for (topic, ts) in &s.topics {
        let cfg = match st.log.topics().get(topic).await {
            Ok(c) if c.id == ts.id => Some(c),
            Ok(_) | Err(CoreError::TopicNotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        for (i, p) in ts.partitions.iter().enumerate() {
            let partition = i as u32;
            let (earliest, hw) = match &cfg {
                Some(cfg) if partition < cfg.partitions => {
                    let info = st.log.partition_info(cfg, partition).await?;
                    (info.earliest_offset, info.next_offset)
                }
                _ => (0, p.committed.unwrap_or(0)),
            };
            let lag = hw.saturating_sub(p.committed.unwrap_or(earliest));
            st.metrics.group_lag(group, topic, partition, lag);
            partitions.push(PartitionLag {
                topic: topic.clone(),
                partition,
                committed_offset: p.committed,
                high_watermark: hw,
                lag,
                member_id: p.owner.clone(),
            });
        }
    }
    Ok(GroupDetail {
        group: group.to_string(),
        generation: s.generation,
        members: s
            .members
            .iter()
            .map(|(id, m)| MemberInfo {
                member_id: id.clone(),
                topics: m.topics.iter().cloned().collect(),
                assignments: s
                    .assigned(id)
                    .into_iter()
                    .map(|(topic, partition)| TopicPartition { topic, partition })
                    .collect(),
                session_timeout_ms: m.session_timeout_ms,
                last_seen_ms: m.last_seen_ms,
            })
            .collect(),
        partitions,
    })
}

/// A group's members, assignments, committed offsets and lag.
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups", operation_id = "describe_group",
    params(("group" = String, Path, description = "Group name", example = "billing")),
    responses(
        (status = 200, description = "The group", body = GroupDetail),
        (status = 404, description = "No such group (`group_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn describe(
    State(st): State<AppState>,
    ApiPath(group): ApiPath<String>,
    caller: MaybeCaller,
) -> ApiResult<Json<GroupDetail>> {
    let mut s = existing(&st, &group, READ_STALENESS).await?;
    require(&caller, Scope::Consume, s.topics.keys())?;
    if s.expiry_due(st.groups.clock().now_ms()) {
        // Commit the expiries first: a generation shown is always one that exists.
        s = st
            .groups
            .propose(&group, |s, _| {
                if s.exists {
                    Ok(None)
                } else {
                    Err(GroupError::GroupNotFound)
                }
            })
            .await??;
    }
    Ok(Json(detail(&st, &group, &s).await?))
}

/// Every group (with auth: those whose topics the token may all consume).
#[utoipa::path(get, path = "/v1/groups", tag = "groups", operation_id = "list_groups",
    responses((status = 200, description = "Groups, sorted by name, with their live members and total lag", body = GroupList)))]
pub async fn list(State(st): State<AppState>, caller: MaybeCaller) -> ApiResult<Json<GroupList>> {
    let mut groups = Vec::new();
    let now = st.groups.clock().now_ms();
    for name in st.groups.names().await? {
        if validate_name(&name).is_err() {
            continue;
        }
        let s = st.groups.state(&name, READ_STALENESS).await?.state;
        if !s.exists || require(&caller, Scope::Consume, s.topics.keys()).is_err() {
            continue;
        }
        let d = detail(&st, &name, &s.at(now)).await?;
        groups.push(GroupSummary {
            group: name,
            members: d.members.len(),
            lag: d.partitions.iter().map(|p| p.lag).sum(),
        });
    }
    Ok(Json(GroupList { groups }))
}

/// Delete a group: its members, assignments and committed offsets.
#[utoipa::path(delete, path = "/v1/groups/{group}", tag = "groups", operation_id = "delete_group",
    params(("group" = String, Path, description = "Group name", example = "billing")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such group (`group_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(st): State<AppState>,
    ApiPath(group): ApiPath<String>,
    caller: MaybeCaller,
) -> ApiResult<StatusCode> {
    let s = existing(&st, &group, READ_STALENESS).await?;
    require(&caller, Scope::Admin, s.topics.keys())?;
    st.groups
        .propose(&group, |s, _| {
            if !s.exists {
                return Err(GroupError::GroupNotFound);
            }
            Ok(Some(GroupOp::Delete))
        })
        .await??;
    st.metrics.forget_group(&group);
    Ok(StatusCode::NO_CONTENT)
}

/// Set a topic's committed offsets (administrators): to the earliest or latest offset, a given
/// offset, or the first offset at or after a time. Members restart there.
#[utoipa::path(post, path = "/v1/groups/{group}/reset", tag = "groups",
    params(("group" = String, Path, description = "Group name", example = "billing")),
    request_body = ResetOffsets,
    responses(
        (status = 200, description = "The committed offsets now", body = CommitAnswer),
        (status = 400, description = "Neither or both of `to` and `timestamp_ms`, or an offset beyond the end (`invalid_request`, `invalid_offset`, `invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group, topic or partition (`group_not_found`, `topic_not_found`, `partition_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is too large (`request_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reset(
    State(st): State<AppState>,
    ApiPath(group): ApiPath<String>,
    caller: MaybeCaller,
    ApiJson(body): ApiJson<ResetOffsets>,
) -> ApiResult<Json<CommitAnswer>> {
    let s = existing(&st, &group, READ_STALENESS).await?;
    require(
        &caller,
        Scope::Admin,
        s.topics.keys().chain(std::iter::once(&body.topic)),
    )?;
    let (cfg, info) = topic_info(&st, &body.topic).await?;
    let parts: Vec<u32> = match body.partition {
        Some(p) => {
            cfg.check_partition(p)?;
            vec![p]
        }
        None => (0..cfg.partitions).collect(),
    };
    let mut offsets = BTreeMap::new();
    for p in parts {
        let o = match (body.to.as_deref(), body.timestamp_ms) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ApiError::Invalid(
                    "give exactly one of `to` and `timestamp_ms`".into(),
                ))
            }
            (None, Some(ts)) => st.log.offset_for_timestamp(&cfg, p, ts).await?,
            (Some("earliest"), None) => st.log.partition_info(&cfg, p).await?.earliest_offset,
            (Some("latest"), None) => st.log.partition_info(&cfg, p).await?.next_offset,
            (Some(o), None) => {
                let o: u64 = o.parse().map_err(|_| {
                    ApiError::InvalidOffset(format!(
                        "to {o:?} is not a number, \"earliest\" or \"latest\""
                    ))
                })?;
                let next = st.log.partition_info(&cfg, p).await?.next_offset;
                if o > next {
                    return Err(ApiError::InvalidOffset(format!(
                        "offset {o} of {}/{p} is beyond its end {next}",
                        body.topic
                    )));
                }
                o
            }
        };
        offsets.insert(p, o);
    }
    let op = GroupOp::Reset {
        topic: body.topic.clone(),
        info,
        offsets: offsets.clone(),
    };
    let after = st
        .groups
        .propose(&group, move |s, _| {
            if !s.exists {
                return Err(GroupError::GroupNotFound);
            }
            Ok(Some(op.clone()))
        })
        .await??;
    Ok(Json(CommitAnswer {
        generation: after.generation,
        offsets: offsets
            .keys()
            .map(|p| Committed {
                topic: body.topic.clone(),
                partition: *p,
                committed_offset: after.partition(&body.topic, *p).and_then(|x| x.committed),
            })
            .collect(),
    }))
}
