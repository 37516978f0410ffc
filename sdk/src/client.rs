//! [`Client`]: the REST API v1 (`rest-api.md`) as typed calls. Bodies and answers are the
//! `sluice-api` wire types the gateway itself serves; records come back as the same
//! [`ReadRecord`]s a [`DirectConsumer`](crate::DirectConsumer) returns.

use crate::error::{ApiError, Error, ErrorCode, Result};
use base64::Engine;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use sluice_api::{
    CreateTopic, OffsetAnswer, PatchTopic, Problem, ProduceAnswer, ProduceBody, ProduceRecord,
    ReadAnswer, RecordOut, Topic, TopicDetail, TopicList,
};
use sluice_core::format::record::Record;
use sluice_core::log::{ReadBatch, ReadRecord, Start};
use std::time::Duration;

/// How long a call may take, beyond a long-poll's own wait (default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one Sluice endpoint (any gateway: they are stateless). Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sluice_sdk::Error> {
/// # let store = sluice_core::store::open("memory://", &Default::default())?;
/// # let gateway = sluice_tests::http::Gateway::start(store, Default::default()).await;
/// # let url = gateway.url.clone();
/// use sluice_sdk::{Client, Record, Start};
///
/// let client = Client::new(&url)?;
/// client.create_topic("orders", 3, None).await?;
/// let ack = client
///     .produce("orders", &[Record::new(Some(b"user-7"), "hello")], None)
///     .await?;
/// let (p, _) = ack.offsets[0].offset().unwrap();
/// let batch = client.read("orders", p, Start::Earliest, 100, None).await?;
/// assert_eq!(batch.records[0].record.value, "hello");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
}

/// Settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    url: String,
    token: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// `Authorization: Bearer TOKEN` on every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// How long a call may take (a long-poll: this plus its wait).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn build(self) -> Result<Client> {
        let base = Url::parse(&self.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                Error::Invalid(format!("{:?} is not an http:// or https:// URL", self.url))
            })?;
        let mut headers = HeaderMap::new();
        if let Some(t) = &self.token {
            let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| Error::Invalid("the token is not a valid header value".into()))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            timeout: self.timeout,
        })
    }
}

/// A record for the REST API: key and value as text where they are UTF-8, base64 otherwise.
/// Header values must be UTF-8 (the produce API takes them as text).
pub fn to_wire(record: &Record, partition: Option<u32>) -> Result<ProduceRecord> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (key, key_b64) = match &record.key {
        None => (None, None),
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (None, Some(b64(k))),
        },
    };
    let (value, value_b64) = match std::str::from_utf8(&record.value) {
        Ok(s) => (Some(s.to_string()), None),
        Err(_) => (None, Some(b64(&record.value))),
    };
    let mut headers = std::collections::BTreeMap::new();
    for (k, v) in &record.headers {
        let v = std::str::from_utf8(v).map_err(|_| {
            Error::Invalid(format!(
                "header {k:?}: the produce API takes UTF-8 header values only"
            ))
        })?;
        headers.insert(k.clone(), v.to_string());
    }
    Ok(ProduceRecord {
        key,
        key_b64,
        value,
        value_b64,
        headers: (!headers.is_empty()).then_some(headers),
        partition,
        timestamp_ms: record.producer_ts,
        delay_ms: None,
        deliver_at_ms: None,
    })
}

/// A record as the REST API returned it, decoded. Headers come sorted by name (the API
/// returns them as a map).
pub fn from_wire(r: RecordOut) -> Result<ReadRecord> {
    let unb64 = |field: &str, s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Bytes::from)
            .map_err(|e| Error::Decode(format!("record {}: {field}: {e}", r.offset)))
    };
    let key = match (&r.key, &r.key_b64) {
        (Some(k), _) => Some(Bytes::from(k.clone())),
        (None, Some(k)) => Some(unb64("key_b64", k)?),
        (None, None) => None,
    };
    let value = match (&r.value, &r.value_b64) {
        (Some(v), _) => Bytes::from(v.clone()),
        (None, Some(v)) => unb64("value_b64", v)?,
        (None, None) => return Err(Error::Decode(format!("record {}: no value", r.offset))),
    };
    let mut headers: Vec<(String, Bytes)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
        .collect();
    for (k, v) in &r.headers_b64 {
        headers.push((k.clone(), unb64("headers_b64", v)?));
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ReadRecord {
        offset: r.offset,
        append_ts: r.timestamp_ms,
        record: Record {
            key,
            value,
            producer_ts: r.producer_timestamp_ms,
            headers,
        },
    })
}

/// Options of one produce call.
#[derive(Clone, Debug, Default)]
pub struct ProduceOptions {
    /// `Idempotency-Key`: a retry with the same key and body answers the first answer and
    /// writes nothing.
    pub idempotency_key: Option<String>,
    /// One partition for every record (else the key hash, or anywhere).
    pub partition: Option<u32>,
    /// Deliver every record of the call later ([`Delay`](crate::Delay)): each is answered
    /// with its `delayed_id` instead of an offset. With `idempotency_key`, a retry is answered
    /// with the first try's ids and times.
    pub delay: Option<crate::Delay>,
}

impl Client {
    /// A client of `url` (e.g. `http://127.0.0.1:8080`) with the default settings.
    pub fn new(url: &str) -> Result<Self> {
        Self::builder(url).build()
    }

    pub fn builder(url: &str) -> ClientBuilder {
        ClientBuilder {
            url: url.to_string(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// The endpoint this client talks to.
    pub fn url(&self) -> &Url {
        &self.base
    }

    fn url_of(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut s) = u.path_segments_mut() {
            s.pop_if_empty();
            s.extend(segments);
        }
        u
    }

    pub(crate) fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.request_with(method, segments, &[])
    }

    pub(crate) fn request_with(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> RequestBuilder {
        let mut url = self.url_of(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.http.request(method, url).timeout(self.timeout)
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        let url = e
            .url()
            .map(|u| u.to_string())
            .unwrap_or_else(|| self.base.to_string());
        // The innermost cause says most ("Connection refused", "dns error").
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = s.to_string();
            source = s.source();
        }
        if e.is_connect() {
            Error::Connect { url, message }
        } else if e.is_builder() {
            Error::Invalid(message)
        } else {
            Error::Transport { url, message }
        }
    }

    /// Send; a non-2xx answer becomes [`Error::Api`].
    pub(crate) async fn send(&self, req: RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        let api = match serde_json::from_slice::<Problem>(&body) {
            Ok(p) => ApiError::from_problem(p, status.as_u16(), retry_after),
            // Not a problem document (a proxy in between?): keep what it said.
            Err(_) => ApiError {
                status: status.as_u16(),
                code: ErrorCode::parse(match status.as_u16() {
                    404 => "not_found",
                    429 => "overloaded",
                    503 => "unavailable",
                    s if s >= 500 => "internal",
                    _ => "invalid_request",
                }),
                detail: String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect(),
                retry_after,
                earliest_offset: None,
                next_offset: None,
            },
        };
        Err(Error::Api(api))
    }

    pub(crate) async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let resp = self.send(req).await?;
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
    }

    /// `GET /readyz`: the gateway and its object store answer.
    pub async fn ready(&self) -> Result<()> {
        self.send(self.request(Method::GET, &["readyz"]))
            .await
            .map(drop)
    }

    /// `POST /v1/topics`.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        retention: Option<Duration>,
    ) -> Result<Topic> {
        let body = CreateTopic {
            name: name.to_string(),
            partitions,
            retention_ms: retention.map(|d| d.as_millis().min(i64::MAX as u128) as i64),
            parquet: false,
        };
        self.json(self.request(Method::POST, &["v1", "topics"]).json(&body))
            .await
    }

    /// `GET /v1/topics`.
    pub async fn list_topics(&self) -> Result<Vec<Topic>> {
        let l: TopicList = self
            .json(self.request(Method::GET, &["v1", "topics"]))
            .await?;
        Ok(l.topics)
    }

    /// `GET /v1/topics/{topic}`: the config and every partition's offsets.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDetail> {
        self.json(self.request(Method::GET, &["v1", "topics", name]))
            .await
    }

    /// `PATCH /v1/topics/{topic}`.
    pub async fn update_topic(&self, name: &str, patch: &PatchTopic) -> Result<Topic> {
        self.json(
            self.request(Method::PATCH, &["v1", "topics", name])
                .json(patch),
        )
        .await
    }

    /// `DELETE /v1/topics/{topic}`.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &["v1", "topics", name]))
            .await
            .map(drop)
    }

    /// `POST /v1/topics/{topic}/records` (`ack=durable`). No retry here: use a
    /// [`Producer`](crate::Producer) for batching and safe retries, or give an
    /// [`idempotency_key`](ProduceOptions::idempotency_key) and retry yourself.
    pub async fn produce(
        &self,
        topic: &str,
        records: &[Record],
        opts: Option<&ProduceOptions>,
    ) -> Result<ProduceAnswer> {
        let partition = opts.and_then(|o| o.partition);
        let delay = opts.and_then(|o| o.delay);
        let body = ProduceBody {
            records: records
                .iter()
                .map(|r| {
                    let mut w = to_wire(r, partition)?;
                    if let Some(d) = delay {
                        d.apply(&mut w);
                    }
                    Ok(w)
                })
                .collect::<Result<_>>()?,
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| Error::Invalid(e.to_string()))?;
        self.produce_body(
            topic,
            Bytes::from(bytes),
            opts.and_then(|o| o.idempotency_key.as_deref()),
        )
        .await
    }

    /// Produce an already encoded JSON body (what the [`Producer`](crate::Producer) retries).
    pub(crate) async fn produce_body(
        &self,
        topic: &str,
        body: Bytes,
        idempotency_key: Option<&str>,
    ) -> Result<ProduceAnswer> {
        let mut req = self
            .request(Method::POST, &["v1", "topics", topic, "records"])
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        self.json(req).await
    }

    /// `POST …/records?ack=none`: answered once queued, before it is durable. Returns how
    /// many records were accepted.
    pub async fn produce_no_ack(&self, topic: &str, records: &[Record]) -> Result<usize> {
        let body = ProduceBody {
            records: records
                .iter()
                .map(|r| to_wire(r, None))
                .collect::<Result<_>>()?,
        };
        let a: sluice_api::Accepted = self
            .json(
                self.request_with(
                    Method::POST,
                    &["v1", "topics", topic, "records"],
                    &[("ack", "none".into())],
                )
                .json(&body),
            )
            .await?;
        Ok(a.accepted)
    }

    /// `GET /v1/topics/{topic}/partitions/{p}/records`: up to `limit` records from `from`;
    /// with `wait`, a long-poll that waits that long for records when there are none yet.
    pub async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: Start,
        limit: u64,
        wait: Option<Duration>,
    ) -> Result<ReadBatch> {
        self.read_filtered(topic, partition, from, limit, wait, None)
            .await
    }

    /// [`read`](Self::read) with `filter=F`: only records that pass it (the contract's filter
    /// grammar); `next_offset` also passes the records it dropped.
    pub async fn read_filtered(
        &self,
        topic: &str,
        partition: u32,
        from: Start,
        limit: u64,
        wait: Option<Duration>,
        filter: Option<&str>,
    ) -> Result<ReadBatch> {
        let p = partition.to_string();
        let mut query: Vec<(&str, String)> = vec![("limit", limit.max(1).to_string())];
        match from {
            Start::Earliest => query.push(("offset", "earliest".into())),
            Start::Latest => query.push(("offset", "latest".into())),
            Start::Offset(o) => query.push(("offset", o.to_string())),
            Start::Timestamp(ts) => query.push(("timestamp_ms", ts.to_string())),
        }
        let wait = wait.unwrap_or_default();
        if !wait.is_zero() {
            query.push(("wait_ms", wait.as_millis().to_string()));
        }
        if let Some(f) = filter {
            query.push(("filter", f.to_string()));
        }
        let a: ReadAnswer = self
            .json(
                self.request_with(
                    Method::GET,
                    &["v1", "topics", topic, "partitions", &p, "records"],
                    &query,
                )
                .timeout(self.timeout + wait),
            )
            .await?;
        Ok(ReadBatch {
            records: a
                .records
                .into_iter()
                .map(from_wire)
                .collect::<Result<_>>()?,
            next_offset: a.next_offset,
            high_watermark: a.high_watermark,
        })
    }

    /// `GET …/offsets?timestamp_ms=T`: the first offset appended at or after `ts`.
    pub async fn offset_for_timestamp(&self, topic: &str, partition: u32, ts: i64) -> Result<u64> {
        let p = partition.to_string();
        let a: OffsetAnswer = self
            .json(self.request_with(
                Method::GET,
                &["v1", "topics", topic, "partitions", &p, "offsets"],
                &[("timestamp_ms", ts.to_string())],
            ))
            .await?;
        Ok(a.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_keeps_bytes() {
        let r = Record {
            key: Some(Bytes::from_static(&[0xff, 0x00])),
            value: Bytes::from_static(b"text"),
            producer_ts: Some(7),
            headers: vec![
                ("b".into(), Bytes::from_static(b"2")),
                ("a".into(), "1".into()),
            ],
        };
        let w = to_wire(&r, Some(3)).unwrap();
        assert_eq!(w.key, None);
        assert_eq!(w.key_b64.as_deref(), Some("/wA="));
        assert_eq!(w.value.as_deref(), Some("text"));
        assert_eq!(w.partition, Some(3));
        let out = RecordOut {
            offset: 5,
            timestamp_ms: 9,
            producer_timestamp_ms: w.timestamp_ms,
            key: w.key,
            key_b64: w.key_b64,
            value: w.value,
            value_b64: w.value_b64,
            headers: w.headers.unwrap_or_default(),
            headers_b64: Default::default(),
        };
        let back = from_wire(out).unwrap();
        let mut sorted = r.clone();
        sorted.headers.sort();
        assert_eq!(back.record, sorted);
        assert_eq!((back.offset, back.append_ts), (5, 9));
    }

    #[test]
    fn bad_base64_is_a_decode_error() {
        let out = RecordOut {
            offset: 1,
            timestamp_ms: 0,
            producer_timestamp_ms: None,
            key: None,
            key_b64: None,
            value: None,
            value_b64: Some("***".into()),
            headers: Default::default(),
            headers_b64: Default::default(),
        };
        assert!(matches!(from_wire(out), Err(Error::Decode(_))));
    }

    #[test]
    fn urls_are_built_by_segment() {
        let c = Client::new("http://127.0.0.1:9/base/").unwrap();
        assert_eq!(
            c.url_of(&["v1", "topics", "a/b"]).as_str(),
            "http://127.0.0.1:9/base/v1/topics/a%2Fb"
        );
        assert!(matches!(Client::new("ftp://x"), Err(Error::Invalid(_))));
        assert!(matches!(Client::new("nonsense"), Err(Error::Invalid(_))));
    }
}
