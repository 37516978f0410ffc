//! `POST /v1/topics/{topic}/records`: JSON, NDJSON or a raw octet-stream value.

use super::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{
    is_json, json_error, media_type, parse_json, ApiPath, ApiQuery, Body, JsonObject,
};
use crate::metrics::Metrics;
use crate::overload::EarlyPermit;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use sluice_api::{Accepted, AckMode, ProduceAnswer, ProduceBody, ProduceQuery, ProduceRecord};
use sluice_core::delayed::Idempotent;
use sluice_core::format::journal::ProducerStamp;
use sluice_core::format::record::Record;
use sluice_core::log::ProduceRequest;
use sluice_core::topic::TopicConfig;

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

/// How a produce body is encoded, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"records": [...]}` (`application/json`, or no content type).
    Json,
    /// One record object a line (`application/x-ndjson`, `application/jsonl`).
    NdJson,
    /// The body is one record's value (`application/octet-stream`).
    Raw,
}

fn format_of(headers: &HeaderMap) -> ApiResult<Format> {
    let media = media_type(headers);
    match media.as_deref() {
        m if is_json(m) => Ok(Format::Json),
        Some("application/x-ndjson" | "application/jsonl") => Ok(Format::NdJson),
        Some("application/octet-stream") => Ok(Format::Raw),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "{other} is not accepted; use application/json, application/x-ndjson or \
             application/octet-stream"
        ))),
        None => Ok(Format::Json), // is_json(None) already matched; kept for exhaustiveness
    }
}

fn b64(field: &str, i: usize, s: &str) -> ApiResult<Bytes> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Bytes::from)
        .map_err(|e| ApiError::InvalidBase64(format!("record {i}: {field}: {e}")))
}

/// A wire record as a core record with its explicit partition, checked against the limits.
fn to_record(
    i: usize,
    r: ProduceRecord,
    topic: &TopicConfig,
    max_record_bytes: usize,
) -> ApiResult<WithDelay> {
    let delay = Delay {
        delay_ms: r.delay_ms,
        deliver_at_ms: r.deliver_at_ms,
    };
    let key = match (r.key, r.key_b64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::Invalid(format!(
                "record {i}: give key or key_b64, not both"
            )))
        }
        (Some(k), None) => Some(Bytes::from(k)),
        (None, Some(k)) => Some(b64("key_b64", i, &k)?),
        (None, None) => None,
    };
    let value = match (r.value, r.value_b64) {
        (Some(v), None) => Bytes::from(v),
        (None, Some(v)) => b64("value_b64", i, &v)?,
        _ => {
            return Err(ApiError::Invalid(format!(
                "record {i}: give exactly one of value and value_b64"
            )))
        }
    };
    let headers: Vec<(String, Bytes)> = r
        .headers
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Bytes::from(v)))
        .collect();
    if headers.len() > u16::MAX as usize {
        return Err(ApiError::Invalid(format!(
            "record {i}: at most {} headers",
            u16::MAX
        )));
    }
    if let Some((name, _)) = headers.iter().find(|(n, _)| n.len() > u16::MAX as usize) {
        return Err(ApiError::Invalid(format!(
            "record {i}: header name of {} bytes is too long",
            name.len()
        )));
    }
    let record = Record {
        key,
        value,
        producer_ts: r.timestamp_ms,
        headers,
    };
    Ok((
        checked(r.partition, record, topic, max_record_bytes)?,
        delay,
    ))
}

/// A record's `delay_ms` / `deliver_at_ms`, as given (checked by
/// `sluice_core::delayed::deliver_at`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delay {
    pub delay_ms: Option<i64>,
    pub deliver_at_ms: Option<i64>,
}

/// Checks every record passes, whatever its format: partition in range, size within the limit.
fn checked(
    partition: Option<u32>,
    record: Record,
    topic: &TopicConfig,
    max_record_bytes: usize,
) -> ApiResult<(Option<u32>, Record)> {
    if let Some(p) = partition {
        topic.check_partition(p)?;
    }
    let size = record.encoded_len();
    if size > max_record_bytes {
        return Err(ApiError::RecordTooLarge {
            size,
            max: max_record_bytes,
        });
    }
    Ok((partition, record))
}

/// The body's records as wire records: one object a line for [`Format::NdJson`], else a JSON body.
pub fn parse_records(format: Format, body: &[u8]) -> ApiResult<Vec<ProduceRecord>> {
    match format {
        Format::NdJson => body
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.trim_ascii().is_empty())
            .map(|(n, line)| {
                serde_json::from_slice::<JsonObject<_>>(line)
                    .map(|r| r.0)
                    .map_err(|e| json_error(e, Some(n + 1)))
            })
            .collect(),
        _ => parse_json::<ProduceBody>(body).map(|b| b.records),
    }
}

/// The request's records, decoded and checked, with their explicit partitions: everything the
/// produce handler does with a body before it reaches the log (also run by `sluice-fuzz`).
pub fn records_of(
    format: Format,
    body: Bytes,
    q: &ProduceQuery,
    topic: &TopicConfig,
    max_record_bytes: usize,
    max_records: usize,
) -> ApiResult<Vec<(Option<u32>, Record)>> {
    records_and_delays_of(format, body, q, topic, max_record_bytes, max_records)
        .map(|r| r.into_iter().map(|(r, _)| r).collect())
}

/// A checked record with its explicit partition and its [`Delay`].
pub type WithDelay = ((Option<u32>, Record), Delay);

/// [`records_of`], with each record's [`Delay`].
pub fn records_and_delays_of(
    format: Format,
    body: Bytes,
    q: &ProduceQuery,
    topic: &TopicConfig,
    max_record_bytes: usize,
    max_records: usize,
) -> ApiResult<Vec<WithDelay>> {
    if let Format::Raw = format {
        let record = Record {
            key: q.key.clone().map(Bytes::from),
            value: body,
            producer_ts: None,
            headers: Vec::new(),
        };
        return Ok(vec![(
            checked(q.partition, record, topic, max_record_bytes)?,
            Delay::default(),
        )]);
    }
    if q.key.is_some() || q.partition.is_some() {
        return Err(ApiError::Invalid(
            "the key and partition query parameters apply to application/octet-stream bodies \
             only; put them in the record"
                .into(),
        ));
    }
    let wire = parse_records(format, &body)?;
    if wire.is_empty() {
        return Err(ApiError::Invalid("no records to produce".into()));
    }
    if wire.len() > max_records {
        return Err(ApiError::Invalid(format!(
            "{} records in one request; the limit is {max_records}",
            wire.len()
        )));
    }
    wire.into_iter()
        .enumerate()
        .map(|(i, r)| to_record(i, r, topic, max_record_bytes))
        .collect()
}

/// The `Producer-Id` / `Producer-Epoch` / `Producer-Seq` headers: all three or none; the id a
/// ULID (else 404 `producer_not_found`), epoch and sequence decimal numbers (else 400).
pub fn producer_of(headers: &HeaderMap) -> ApiResult<Option<ProducerStamp>> {
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let (id, epoch, seq) = match (
        get("producer-id"),
        get("producer-epoch"),
        get("producer-seq"),
    ) {
        (None, None, None) => return Ok(None),
        (Some(i), Some(e), Some(s)) => (i, e, s),
        _ => {
            return Err(ApiError::Invalid(
                "give all of Producer-Id, Producer-Epoch and Producer-Seq, or none".into(),
            ))
        }
    };
    fn number<T: std::str::FromStr>(name: &str, v: &str) -> ApiResult<T> {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::Invalid(format!(
                "{name} must be a decimal number"
            )));
        }
        v.parse()
            .map_err(|_| ApiError::Invalid(format!("{name} is out of range")))
    }
    let epoch = number::<u32>("Producer-Epoch", epoch)?;
    let seq = number::<u64>("Producer-Seq", seq)?;
    Ok(Some(ProducerStamp {
        id: super::producers::producer_id(id)?,
        epoch,
        seq,
    }))
}

/// Append records. Records with the same key go to the same partition; `partition` overrides.
/// A record with `delay_ms` or `deliver_at_ms` is delayed: kept out of the topic until due,
/// answered with `{"delayed_id","deliver_at_ms"}` in place of its offset.
#[utoipa::path(post, path = "/v1/topics/{topic}/records", tag = "records",
    params(
        ("topic" = String, Path, description = "Topic name", pattern = "^[A-Za-z0-9._-]{1,249}$", example = "orders"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 256, description = "1 to 256 bytes. A retry with the same key within the dedup window returns the first answer and writes nothing, on any gateway."),
        ("Producer-Id" = Option<String>, Header, description = "An idempotent producer (`POST /v1/producers`); with `Producer-Epoch` and `Producer-Seq`."),
        ("Producer-Epoch" = Option<u32>, Header, description = "The producer's current epoch; an older one is 409 `producer_fenced`."),
        ("Producer-Seq" = Option<u64>, Header, description = "This request's sequence number on this topic: 0, 1, 2, … (0 again after an epoch bump). A repeat of one of the last 5 answers its first answer and writes nothing, on any gateway; a gap or an older one is 409 `out_of_order_sequence`."),
        ProduceQuery,
    ),
    request_body(description = "Records as JSON, as NDJSON (one record object a line), or one raw value",
        content(
            (ProduceBody = "application/json"),
            (ProduceRecord = "application/x-ndjson"),
            ("application/octet-stream"),
        )),
    responses(
        (status = 200, description = "Committed (`ack=durable`); with `?transaction=`, staged (`{\"staged\":N}`: no offsets until the transaction commits)", body = sluice_api::ProduceOutcome),
        (status = 202, description = "Queued, not yet durable (`ack=none`)", body = Accepted),
        (status = 400, description = "Malformed body or parameters (`invalid_json`, `invalid_base64`, `invalid_request`; also a `delay_ms` that is negative or past 365 days, a `deliver_at_ms` more than 365 days ahead, a delayed record with `Producer-Id` or in a transaction: nothing of the request is written)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such topic or partition, producer or transaction (`topic_not_found`, `partition_not_found`, `producer_not_found`, `transaction_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A record or the request is too large (`record_too_large`, `request_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported content type (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An idempotent producer's request out of sequence or from an old epoch (`out_of_order_sequence`, `producer_fenced`); the transaction is closed: decided, or past its timeout (`transaction_closed`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The idempotency key was used for a different request (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn produce(
    State(st): State<AppState>,
    ApiPath(topic): ApiPath<String>,
    ApiQuery(q): ApiQuery<ProduceQuery>,
    headers: HeaderMap,
    early: Option<Extension<EarlyPermit>>,
    Body(body): Body,
) -> ApiResult<Response> {
    let started = std::time::Instant::now();
    // Held until the commit has finished: bounds the bytes waiting for it (429 beyond). Taken
    // from Content-Length before the body was read when the request declared one.
    let permit = match early.and_then(|Extension(e)| e.take()) {
        Some(p) => p,
        None => st.pending.try_acquire(body.len())?,
    };
    let format = format_of(&headers)?;
    let dedup_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) if v.is_empty() || v.len() > MAX_IDEMPOTENCY_KEY => {
            return Err(ApiError::Invalid(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"
            )))
        }
        Some(v) => Some(Bytes::copy_from_slice(v.as_bytes())),
    };
    let producer = producer_of(&headers)?;
    let topic = st.log.topics().get(&topic).await?;
    if let Some(p) = &producer {
        st.log.producers().check(p.id, p.epoch).await?;
    }
    let records = records_and_delays_of(
        format,
        body,
        &q,
        &topic,
        st.cfg.max_record_bytes,
        st.cfg.max_records_per_request,
    )?;
    // Delayed records (any with `delay_ms` / `deliver_at_ms`) go to the bucket; the others on.
    let split = super::delayed::split(records, st.log.clock().now_ms(), dedup_key.is_some())?;
    let (records, delayed) = (split.now, split.delayed);
    if let Some(txn) = &q.transaction {
        if producer.is_some() || q.ack == Some(AckMode::None) || !delayed.is_empty() {
            return Err(ApiError::Invalid(
                "a transaction's records are staged durably: no ack=none, no Producer-* \
                 headers and no delayed records with ?transaction="
                    .into(),
            ));
        }
        return super::transactions::stage(&st, txn, &topic, records, dedup_key).await;
    }
    if !delayed.is_empty() && producer.is_some() {
        return Err(ApiError::Invalid(
            "delayed records cannot be produced with Producer-Id: their offsets are assigned \
             when they are due (use Idempotency-Key for retries)"
                .into(),
        ));
    }
    let idempotent = dedup_key
        .as_deref()
        .zip(split.fingerprint)
        .map(|(key, fingerprint)| Idempotent { key, fingerprint });
    let (delayed, delayed_duplicate) =
        super::delayed::write(&st, &topic, delayed, idempotent).await?;
    if records.is_empty() {
        let answer = super::delayed::answer(
            delayed,
            Vec::new(),
            st.log.clock().now_ms(),
            delayed_duplicate,
        );
        return Ok(match q.ack.unwrap_or_default() {
            AckMode::Durable => Json(answer).into_response(),
            AckMode::None => (
                StatusCode::ACCEPTED,
                Json(Accepted {
                    accepted: answer.offsets.len(),
                }),
            )
                .into_response(),
        });
    }
    let n = records.len() + delayed.len();
    let request = ProduceRequest {
        topic,
        records,
        dedup_key,
        producer,
    };
    Metrics::inc(&st.metrics.produce_requests);
    let stopped = |_| ApiError::Unavailable("the gateway is shutting down; retry".into());
    match q.ack.unwrap_or_default() {
        AckMode::Durable => {
            let ack = st
                .batcher
                .produce(request, Some(permit))
                .await
                .map_err(stopped)??;
            observe_produce(&st, "durable", started);
            let mut answer = ProduceAnswer::from(ack);
            if !delayed.is_empty() {
                // A retry: both parts were answered from what the first try wrote.
                let duplicate = answer.duplicate && delayed_duplicate;
                answer = super::delayed::answer(
                    delayed,
                    answer.offsets,
                    answer.append_timestamp_ms,
                    duplicate,
                );
            }
            Ok(Json(answer).into_response())
        }
        AckMode::None => {
            st.batcher
                .produce_detached(request, Some(permit))
                .await
                .map_err(stopped)?;
            observe_produce(&st, "none", started);
            Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: n })).into_response())
        }
    }
}

/// `sluice_produce_request_duration_seconds{ack}` of a request answered with success.
fn observe_produce(st: &AppState, ack: &'static str, started: std::time::Instant) {
    st.metrics
        .produce_request_seconds
        .get_or_create(&crate::metrics::AckLabel { ack })
        .observe(started.elapsed().as_secs_f64());
}
