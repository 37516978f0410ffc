//! Stateless reads: by offset or time, long-polling, or as a Server-Sent Events stream.

use super::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sluice_api::{OffsetAnswer, OffsetQuery, ReadAnswer, ReadQuery, RecordOut};
use sluice_core::filter::Filter;
pub use sluice_core::log::Start;
use sluice_core::log::{ReadBatch, ReadRecord, ScanBudget};
use sluice_core::topic::TopicConfig;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 10_000;
/// Roughly the most record bytes one answer carries.
pub const MAX_READ_BYTES: usize = 4 << 20;
/// How long an event stream waits per round before looking again.
const STREAM_WAIT: Duration = Duration::from_secs(30);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where a read starts: `Last-Event-ID` + 1 for a resuming event stream, else `timestamp_ms`,
/// else `offset` (a number, `earliest` or `latest`; default `earliest`).
pub fn start_of(q: &ReadQuery, last_event_id: Option<u64>) -> ApiResult<Start> {
    if let Some(id) = last_event_id {
        return id
            .checked_add(1)
            .map(Start::Offset)
            .ok_or_else(|| ApiError::Invalid("Last-Event-ID is out of range".into()));
    }
    match (q.offset.as_deref(), q.timestamp_ms) {
        (Some(_), Some(_)) => Err(ApiError::Invalid(
            "give offset or timestamp_ms, not both".into(),
        )),
        (None, Some(ts)) => Ok(Start::Timestamp(ts)),
        (None | Some("earliest"), None) => Ok(Start::Earliest),
        (Some("latest"), None) => Ok(Start::Latest),
        (Some(o), None) => o.parse::<u64>().map(Start::Offset).map_err(|_| {
            ApiError::InvalidOffset(format!(
                "offset {o:?} is not a number, \"earliest\" or \"latest\""
            ))
        }),
    }
}

/// The offset a read starts at.
async fn start_offset(
    st: &AppState,
    topic: &TopicConfig,
    partition: u32,
    q: &ReadQuery,
    last_event_id: Option<u64>,
) -> ApiResult<u64> {
    let start = start_of(q, last_event_id)?;
    Ok(st.log.start_offset(topic, partition, start).await?)
}

/// The `filter` parameter, parsed (400 `invalid_filter` with the position when malformed).
pub fn filter_of(q: &ReadQuery) -> ApiResult<Option<Arc<Filter>>> {
    Ok(match &q.filter {
        None => None,
        Some(f) => Some(Arc::new(Filter::parse(f)?)),
    })
}

/// One read: all records, or with a filter those that pass it (scanning a bounded amount;
/// `next_offset` then passes the records dropped).
pub(crate) async fn read_some(
    st: &AppState,
    topic: &TopicConfig,
    partition: u32,
    offset: u64,
    limit: usize,
    filter: Option<&Filter>,
) -> ApiResult<ReadBatch> {
    let started = std::time::Instant::now();
    let batch = match filter {
        None => {
            st.log
                .read(topic, partition, offset, limit, MAX_READ_BYTES)
                .await?
        }
        Some(f) => {
            st.log
                .read_filtered(
                    topic,
                    partition,
                    offset,
                    limit,
                    MAX_READ_BYTES,
                    f,
                    ScanBudget::default(),
                )
                .await?
        }
    };
    st.metrics
        .read_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(batch)
}

/// Count records returned to a reader: `sluice_read_records_total` and `_bytes_total`.
pub(crate) fn count_read(st: &AppState, records: &[ReadRecord]) {
    Metrics::add(&st.metrics.read_records, records.len() as u64);
    Metrics::add(
        &st.metrics.read_bytes,
        records.iter().map(|r| r.record.encoded_len() as u64).sum(),
    );
}

fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::Invalid("Last-Event-ID must be an offset".into())),
    }
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// Read records from a partition; with `Accept: text/event-stream` a never-ending stream.
#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/records", tag = "records",
    params(
        ("topic" = String, Path, description = "Topic name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "orders"),
        ("partition" = u32, Path, description = "Partition number", example = 0),
        ("Last-Event-ID" = Option<String>, Header, description = "Event streams: resume after this offset"),
        ReadQuery,
    ),
    responses(
        (status = 200, description = "Records from the start offset on; an event stream (one event per record, `id:` = offset, data = the record) with `Accept: text/event-stream`",
            content(
                (ReadAnswer = "application/json"),
                (RecordOut = "text/event-stream"),
            )),
        (status = 400, description = "Bad offset, limit, filter or parameters (`invalid_offset`, `invalid_filter` with `position`, `invalid_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic or partition (`topic_not_found`, `partition_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The offset was deleted by retention or is beyond the end (`offset_out_of_range`, with `earliest_offset` and `next_offset`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Event streams: too many readers are waiting on this gateway (`overloaded`, with `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn read(
    State(st): State<AppState>,
    ApiPath((topic, partition)): ApiPath<(String, u32)>,
    ApiQuery(q): ApiQuery<ReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let stream = wants_event_stream(&headers);
    let resume = if stream {
        last_event_id(&headers)?
    } else {
        None
    };
    let limit = match q.limit {
        Some(0) => return Err(ApiError::Invalid("limit must be at least 1".into())),
        Some(n) => n.min(MAX_LIMIT),
        None => DEFAULT_LIMIT,
    } as usize;
    let filter = filter_of(&q)?;
    let cfg = st.log.topics().get(&topic).await?;
    cfg.check_partition(partition)?;
    let offset = start_offset(&st, &cfg, partition, &q, resume).await?;
    Metrics::inc(&st.metrics.read_requests);
    let mut batch = read_some(&st, &cfg, partition, offset, limit, filter.as_deref()).await?;
    if stream {
        let slot = st.waiting.clone().try_acquire_owned().map_err(|_| {
            ApiError::Overloaded(format!(
                "{} readers are waiting on this gateway already; retry after `Retry-After`",
                st.cfg.max_waiting_readers
            ))
        })?;
        return Ok(event_stream(st, topic, cfg, partition, filter, batch, slot).into_response());
    }
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0).min(st.cfg.max_wait_ms));
    // Nothing to answer yet, and the read reached the end of the log (a filtered read that ran
    // out of scan budget answers at once, with `next_offset` advanced).
    let at_end = |b: &ReadBatch| {
        b.records.is_empty() && (filter.is_none() || b.next_offset >= b.high_watermark)
    };
    // Past `max_waiting_readers` a long-poll degrades to a short poll instead of piling up.
    let slot = (at_end(&batch) && !wait.is_zero())
        .then(|| st.waiting.clone().try_acquire_owned().ok())
        .flatten();
    if let Some(_slot) = slot {
        let deadline = tokio::time::Instant::now() + wait;
        // With a filter, new records may all be dropped: wait again, until the deadline.
        while at_end(&batch) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let from = batch.next_offset;
            tokio::select! {
                r = st.log.wait_for(&cfg, partition, from, left) => r?,
                _ = st.shutting_down() => break,
            }
            batch = read_some(&st, &cfg, partition, from, limit, filter.as_deref()).await?;
            if filter.is_none() {
                break;
            }
        }
    }
    count_read(&st, &batch.records);
    Ok(Json(ReadAnswer {
        records: batch.records.iter().map(RecordOut::from).collect(),
        next_offset: batch.next_offset,
        high_watermark: batch.high_watermark,
    })
    .into_response())
}

struct Tail {
    /// Counts this stream against `max_waiting_readers` while it lives.
    _slot: tokio::sync::OwnedSemaphorePermit,
    st: AppState,
    name: String,
    topic: Arc<TopicConfig>,
    partition: u32,
    filter: Option<Arc<Filter>>,
    next: u64,
    buffered: VecDeque<ReadRecord>,
    done: bool,
}

fn record_event(r: &ReadRecord) -> Event {
    let data = serde_json::to_string(&RecordOut::from(r)).unwrap_or_else(|_| "{}".into());
    Event::default().id(r.offset.to_string()).data(data)
}

fn error_event(e: ApiError) -> Event {
    let data = serde_json::to_string(&e.problem()).unwrap_or_else(|_| "{}".into());
    Event::default().event("error").data(data)
}

impl Tail {
    /// The next event: a buffered record, or wait for more. `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(r) = self.buffered.pop_front() {
                count_read(&self.st, std::slice::from_ref(&r));
                return Some(record_event(&r));
            }
            if self.done {
                return None;
            }
            match self.fetch().await {
                Ok(()) => {}
                Err(e) => {
                    self.done = true;
                    return Some(error_event(e));
                }
            }
            if self.done {
                return None;
            }
        }
    }

    /// Read what is there, or wait for it (ending at shutdown).
    async fn fetch(&mut self) -> ApiResult<()> {
        // Re-check the topic (cached briefly) so a deleted topic ends the stream.
        self.topic = self.st.log.topics().get(&self.name).await?;
        let batch = read_some(
            &self.st,
            &self.topic,
            self.partition,
            self.next,
            1000,
            self.filter.as_deref(),
        )
        .await?;
        // A filtered read may drop everything it scanned: go on from there.
        if !batch.records.is_empty() || batch.next_offset > self.next {
            self.next = batch.next_offset;
            self.buffered.extend(batch.records);
            return Ok(());
        }
        tokio::select! {
            r = self.st.log.wait_for(&self.topic, self.partition, self.next, STREAM_WAIT) => r?,
            _ = self.st.shutting_down() => self.done = true,
        }
        Ok(())
    }
}

fn event_stream(
    st: AppState,
    name: String,
    topic: Arc<TopicConfig>,
    partition: u32,
    filter: Option<Arc<Filter>>,
    first: ReadBatch,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    Metrics::inc(&st.metrics.sse_streams);
    let next = first.next_offset;
    let tail = Tail {
        _slot: slot,
        st,
        name,
        topic,
        partition,
        filter,
        next,
        buffered: first.records.into(),
        done: false,
    };
    let events = futures::stream::unfold(tail, |mut tail| async move {
        let event = tail.next_event().await?;
        Some((Ok(event), tail))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The first offset appended at or after a time.
#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/offsets", tag = "records",
    params(
        ("topic" = String, Path, description = "Topic name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "orders"),
        ("partition" = u32, Path, description = "Partition number", example = 0),
        OffsetQuery,
    ),
    responses(
        (status = 200, description = "The offset", body = OffsetAnswer),
        (status = 400, description = "Missing or bad `timestamp_ms` (`invalid_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic or partition (`topic_not_found`, `partition_not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn offset_for_timestamp(
    State(st): State<AppState>,
    ApiPath((topic, partition)): ApiPath<(String, u32)>,
    ApiQuery(q): ApiQuery<OffsetQuery>,
) -> ApiResult<Json<OffsetAnswer>> {
    let cfg = st.log.topics().get(&topic).await?;
    let offset = st
        .log
        .offset_for_timestamp(&cfg, partition, q.timestamp_ms)
        .await?;
    Ok(Json(OffsetAnswer { offset }))
}
