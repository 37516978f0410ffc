//! [`Producer`]: batches records into produce requests (linger, max bytes, max records),
//! keeps up to `max_in_flight` requests open, retries each with its `Idempotency-Key` so a retry
//! never writes twice, waits out `429` + `Retry-After`, and resolves one future per record with
//! its partition and offset.
//!
//! Backpressure: [`Producer::send`] waits while `queue_records` records are queued; the queue
//! drains only as fast as requests are acked, and a gateway that answers 429 slows the requests.
//!
//! Delayed records ([`Producer::send_delayed`]) travel in batches of their own, retried with
//! their `Idempotency-Key` like any batch: the gateway answers a retry with the first try's
//! delayed ids and times and delivers the records once.
//!
//! Order: with `max_in_flight = 1`, the records of one producer land in each partition in send
//! order, retries included. With more requests in flight a retried batch may land after a
//! later one (as Kafka without idempotent sequences); every record still lands exactly once.

use crate::client::{to_wire, Client};
use crate::error::{Error, Result};
use bytes::Bytes;
use sluice_api::{DelayedRef, ProduceBody, ProducedRecord};
use sluice_core::clock::Clock;
use sluice_core::format::record::Record;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Settings of a [`Producer`].
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// How long a batch waits for more records after its first (default 5 ms; 0 sends what
    /// is queued at once).
    pub linger: Duration,
    /// A batch is sent once its JSON body would pass this many bytes (default 1 MiB; the
    /// gateway accepts 8 MiB).
    pub max_batch_bytes: usize,
    /// A batch is sent once it holds this many records (default 5 000; the gateway accepts 10 000).
    pub max_batch_records: usize,
    /// Produce requests open at once (default 4).
    pub max_in_flight: usize,
    /// Records queued before [`Producer::send`] waits (default 20 000).
    pub queue_records: usize,
    /// First pause before a retry without `Retry-After` (default 50 ms), doubled each time up to
    /// `max_backoff` (default 2 s).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A batch still failing this long after its first attempt fails (default 2 minutes, well
    /// inside the gateway's 10-minute dedup window).
    pub retry_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger: Duration::from_millis(5),
            max_batch_bytes: 1 << 20,
            max_batch_records: 5000,
            max_in_flight: 4,
            queue_records: 20_000,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            retry_timeout: Duration::from_secs(120),
        }
    }
}

/// Where an acked record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAck {
    pub partition: u32,
    pub offset: u64,
    /// The append (commit) timestamp.
    pub timestamp_ms: i64,
}

/// What the gateway answered for one record, with the request's append timestamp.
type Answered = Result<(ProducedRecord, i64)>;

/// Resolves once the record's batch is acked (or has failed for good).
pub struct AckFuture(oneshot::Receiver<Answered>);

impl Future for AckFuture {
    type Output = Result<RecordAck>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(Ok((ProducedRecord::Offset(o), timestamp_ms))) => Ok(RecordAck {
                partition: o.partition,
                offset: o.offset,
                timestamp_ms,
            }),
            Ok(Ok((ProducedRecord::Delayed(_), _))) => Err(Error::Decode(
                "a delayed answer for a record sent without a delay".into(),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Closed),
        })
    }
}

/// Resolves once a delayed record is stored, with its `delayed_id` (it gets an offset only
/// when due), or with the error that failed its batch.
pub struct DelayedAckFuture(oneshot::Receiver<Answered>);

impl Future for DelayedAckFuture {
    type Output = Result<DelayedRef>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(Ok((ProducedRecord::Delayed(d), _))) => Ok(d),
            Ok(Ok((ProducedRecord::Offset(_), _))) => Err(Error::Decode(
                "an offset for a record sent with a delay".into(),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Closed),
        })
    }
}

enum Msg {
    Record {
        wire: sluice_api::ProduceRecord,
        size: usize,
        /// Sent with a delay: batched apart.
        delayed: bool,
        ack: oneshot::Sender<Answered>,
    },
    Flush(oneshot::Sender<()>),
}

/// What the producer's counters say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Produce requests sent, retries included.
    pub requests: u64,
    /// Retries (requests after the first attempt of a batch).
    pub retries: u64,
    /// Answers that were 429 (backpressure).
    pub throttled: u64,
}

#[derive(Default)]
struct Stats {
    requests: std::sync::atomic::AtomicU64,
    retries: std::sync::atomic::AtomicU64,
    throttled: std::sync::atomic::AtomicU64,
}

/// A batching, pipelining, retrying producer for one topic.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sluice_sdk::Error> {
/// # let store = sluice_core::store::open("memory://", &Default::default())?;
/// # let gateway = sluice_tests::http::Gateway::start(store, Default::default()).await;
/// # let url = gateway.url.clone();
/// use sluice_sdk::{Client, Producer, ProducerConfig, Record};
///
/// let client = Client::new(&url)?;
/// client.create_topic("events", 1, None).await?;
/// let producer = Producer::new(client, "events", ProducerConfig::default());
/// let mut acks = Vec::new();
/// for i in 0..100 {
///     acks.push(producer.send(Record::new(None, format!("event {i}"))).await?);
/// }
/// producer.flush().await?;
/// for (i, ack) in acks.into_iter().enumerate() {
///     assert_eq!(ack.await?.offset, i as u64);
/// }
/// # Ok(())
/// # }
/// ```
pub struct Producer {
    tx: mpsc::Sender<Msg>,
    stats: Arc<Stats>,
}

impl Producer {
    /// Start a producer for `topic` (inside a tokio runtime); its background task runs until
    /// the producer is dropped or [`close`](Self::close)d, and sends what is queued first.
    pub fn new(client: Client, topic: impl Into<String>, cfg: ProducerConfig) -> Self {
        Self::with_clock(client, topic, cfg, sluice_core::clock::system())
    }

    /// Like [`new`](Self::new), with the clock that mints the idempotency keys.
    pub fn with_clock(
        client: Client,
        topic: impl Into<String>,
        cfg: ProducerConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue_records.max(1));
        let stats = Arc::new(Stats::default());
        let task = Batcher {
            client,
            topic: topic.into(),
            id: sluice_core::ids::new_ulid(clock.now_ms()).to_string(),
            cfg,
            seq: 0,
            stats: stats.clone(),
        };
        tokio::spawn(task.run(rx));
        Self { tx, stats }
    }

    /// Queue a record (waiting while the queue is full). The returned future resolves with
    /// the record's offset once its batch is acked.
    pub async fn send(&self, record: Record) -> Result<AckFuture> {
        self.send_to(None, record).await
    }

    /// [`send`](Self::send) to a given partition (else the key hash, or anywhere).
    pub async fn send_to(&self, partition: Option<u32>, record: Record) -> Result<AckFuture> {
        let wire = to_wire(&record, partition)?;
        Ok(AckFuture(self.queue(wire, false).await?))
    }

    /// Queue a record to be delivered later ([`Delay`](crate::Delay), up to 365 days ahead;
    /// `partition` as in [`send_to`](Self::send_to)). The future resolves with its
    /// `delayed_id` once it is stored; see the module notes for how it is retried.
    pub async fn send_delayed(
        &self,
        partition: Option<u32>,
        record: Record,
        delay: crate::Delay,
    ) -> Result<DelayedAckFuture> {
        let mut wire = to_wire(&record, partition)?;
        delay.apply(&mut wire);
        Ok(DelayedAckFuture(self.queue(wire, true).await?))
    }

    async fn queue(
        &self,
        wire: sluice_api::ProduceRecord,
        delayed: bool,
    ) -> Result<oneshot::Receiver<Answered>> {
        let size = json_size(&wire);
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Msg::Record {
                wire,
                size,
                delayed,
                ack,
            })
            .await
            .map_err(|_| Error::Closed)?;
        Ok(rx)
    }

    /// Send what is queued now and wait until every request sent so far has an answer.
    pub async fn flush(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(done))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Flush, then stop the background task.
    pub async fn close(self) -> Result<()> {
        self.flush().await
    }

    pub fn stats(&self) -> ProducerStats {
        use std::sync::atomic::Ordering::Relaxed;
        ProducerStats {
            requests: self.stats.requests.load(Relaxed),
            retries: self.stats.retries.load(Relaxed),
            throttled: self.stats.throttled.load(Relaxed),
        }
    }
}

type Acks = Vec<oneshot::Sender<Answered>>;

/// The background task: gathers batches and runs their requests.
struct Batcher {
    client: Client,
    topic: String,
    /// Prefix of this producer's idempotency keys.
    id: String,
    cfg: ProducerConfig,
    seq: u64,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Batch {
    records: Vec<sluice_api::ProduceRecord>,
    acks: Acks,
    bytes: usize,
}

impl Batcher {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        // [records sent now, delayed records]
        let mut batches = [Batch::default(), Batch::default()];
        let mut deadline: Option<Instant> = None;
        let mut requests: JoinSet<()> = JoinSet::new();
        loop {
            while requests.try_join_next().is_some() {}
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = sleep_until(deadline) => {
                    deadline = None;
                    self.dispatch_all(&mut batches, &mut requests).await;
                    continue;
                }
            };
            let mut flush = Vec::new();
            let mut closed = msg.is_none();
            let mut next = msg;
            // Take what is queued already: a batch grows while requests are in flight.
            while let Some(m) = next.take() {
                match m {
                    Msg::Record {
                        wire,
                        size,
                        delayed,
                        ack,
                    } => {
                        let batch = &mut batches[usize::from(delayed)];
                        if !batch.records.is_empty()
                            && batch.bytes + size > self.cfg.max_batch_bytes
                        {
                            self.dispatch(batch, &mut requests).await;
                        }
                        batch.records.push(wire);
                        batch.acks.push(ack);
                        batch.bytes += size;
                        if batch.records.len() >= self.cfg.max_batch_records
                            || batch.bytes >= self.cfg.max_batch_bytes
                        {
                            self.dispatch(batch, &mut requests).await;
                        }
                    }
                    Msg::Flush(done) => flush.push(done),
                }
                if flush.is_empty() {
                    match rx.try_recv() {
                        Ok(m) => next = Some(m),
                        Err(mpsc::error::TryRecvError::Empty) => {}
                        Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
                    }
                }
            }
            if !flush.is_empty() || closed || self.cfg.linger.is_zero() {
                deadline = None;
                self.dispatch_all(&mut batches, &mut requests).await;
            } else if batches.iter().any(|b| !b.records.is_empty()) && deadline.is_none() {
                deadline = Some(Instant::now() + self.cfg.linger);
            }
            if !flush.is_empty() || closed {
                while requests.join_next().await.is_some() {}
                for done in flush {
                    let _ = done.send(());
                }
            }
            if closed {
                return;
            }
        }
    }

    async fn dispatch_all(&mut self, batches: &mut [Batch], requests: &mut JoinSet<()>) {
        for b in batches {
            self.dispatch(b, requests).await;
        }
    }

    /// Send the batch as one request (waiting for a free slot among `max_in_flight`).
    async fn dispatch(&mut self, batch: &mut Batch, requests: &mut JoinSet<()>) {
        if batch.records.is_empty() {
            return;
        }
        let records = std::mem::take(&mut batch.records);
        let acks = std::mem::take(&mut batch.acks);
        batch.bytes = 0;
        while requests.len() >= self.cfg.max_in_flight.max(1) {
            requests.join_next().await;
        }
        let key = format!("{}-{}", self.id, self.seq);
        self.seq += 1;
        let body = match serde_json::to_vec(&ProduceBody { records }) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                let e = Error::Invalid(e.to_string());
                for a in acks {
                    let _ = a.send(Err(e.clone()));
                }
                return;
            }
        };
        let request = Request {
            client: self.client.clone(),
            topic: self.topic.clone(),
            key,
            body,
            cfg: self.cfg.clone(),
            stats: self.stats.clone(),
        };
        requests.spawn(request.run(acks));
    }
}

/// About the bytes a record takes in a JSON body (field names, quotes; escapes not counted).
fn json_size(r: &sluice_api::ProduceRecord) -> usize {
    let len = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 16);
    let headers = r.headers.as_ref().map_or(0, |h| {
        h.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>() + 12
    });
    len(&r.key) + len(&r.key_b64) + len(&r.value) + len(&r.value_b64) + headers + 48
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One batch's request, retried with the same key and body until acked or given up.
struct Request {
    client: Client,
    topic: String,
    key: String,
    body: Bytes,
    cfg: ProducerConfig,
    stats: Arc<Stats>,
}

impl Request {
    async fn run(self, acks: Acks) {
        use std::sync::atomic::Ordering::Relaxed;
        let give_up = Instant::now() + self.cfg.retry_timeout;
        let mut backoff = self.cfg.initial_backoff;
        let mut attempt = 0u64;
        let result = loop {
            self.stats.requests.fetch_add(1, Relaxed);
            if attempt > 0 {
                self.stats.retries.fetch_add(1, Relaxed);
            }
            attempt += 1;
            let r = self
                .client
                .produce_body(&self.topic, self.body.clone(), Some(&self.key))
                .await;
            let e = match r {
                Ok(answer) => break Ok(answer),
                Err(e) => e,
            };
            if e.code() == Some(crate::ErrorCode::Overloaded) {
                self.stats.throttled.fetch_add(1, Relaxed);
            }
            let now = Instant::now();
            if !e.is_retryable() || now >= give_up {
                break Err(e);
            }
            let pause = e.retry_after().unwrap_or(backoff).min(give_up - now);
            tracing::debug!(key = ?self.key, error = %e, ?pause, "produce failed; retrying");
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff);
        };
        match result {
            Ok(a) if a.offsets.len() == acks.len() => {
                for (ack, o) in acks.into_iter().zip(a.offsets) {
                    let _ = ack.send(Ok((o, a.append_timestamp_ms)));
                }
            }
            Ok(a) => {
                let e = Error::Decode(format!(
                    "{} offsets for {} records",
                    a.offsets.len(),
                    acks.len()
                ));
                for ack in acks {
                    let _ = ack.send(Err(e.clone()));
                }
            }
            Err(e) => {
                for ack in acks {
                    let _ = ack.send(Err(e.clone()));
                }
            }
        }
    }
}
