//! One load for every peer of `sluice-bench peers`, in two phases (as `sluice-bench http`):
//! 1. **throughput**: `producers` producers, each sending a batch of `batch` values (made by
//!    [`push_value`], the same bytes as Sluice's) and waiting until the peer acknowledged every
//!    one of them before sending the next, for a fixed time, with nobody reading; only
//!    acknowledged values count;
//! 2. **end to end**: the same producers paced to one offered rate (the same for every system),
//!    on a fresh stream or queue, with one consumer reading while they produce; its end-to-end
//!    latency is send time (inside the value) to receipt.
//!
//! A consumer beside saturated producers measures neither: it takes CPU from the producers of a
//! system that keeps up with it (on 2 cores, about half of Sluice's) and little from one it falls
//! behind, and its latency is then the backlog's age.
//!
//! Clients: async-nats (JetStream publish acks), redis (pipelined `XADD`, `XREAD BLOCK`),
//! lapin (publisher confirms on a quorum queue, `basic.consume` with automatic ack).

use crate::http_bench::{push_value, value_stamp, Pacer, Phase, Tally};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shape of the load.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub batch: usize,
    pub record_bytes: usize,
    pub seconds: f64,
    /// Offered bytes/s of record values over all producers in the end-to-end phase.
    pub rate: f64,
    /// How long the consumer may take, after the producers stop, to read every acked value.
    pub drain: Duration,
}

/// A producer's connection: sends values and returns once all are acknowledged.
pub trait Sender: Send + 'static {
    fn send(&mut self, values: Vec<Vec<u8>>) -> impl Future<Output = Result<(), String>> + Send;
}

/// The consumer: batches of values as they arrive.
pub type Values = BoxStream<'static, Result<Vec<Vec<u8>>, String>>;

/// What the end-to-end phase measured.
pub struct E2e {
    pub produce: Phase,
    pub e2e: Tally,
    /// Acked values the consumer had not read when the drain time ran out.
    pub unread: u64,
}

/// One producer until `deadline`: back to back, or paced at one batch per `pace.0` starting
/// `pace.1` from now (a producer more than one interval behind skips ahead, never bursts).
async fn produce<S: Sender>(
    mut s: S,
    load: Load,
    start: Instant,
    deadline: Instant,
    pace: Option<(Duration, Duration)>,
    seed: u64,
) -> Tally {
    let mut t = Tally::default();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut pacer = Pacer::new(pace);
    loop {
        pacer.wait().await;
        if Instant::now() >= deadline {
            break;
        }
        let sent = start.elapsed().as_nanos();
        let values: Vec<Vec<u8>> = (0..load.batch)
            .map(|_| {
                let mut v = String::with_capacity(load.record_bytes);
                push_value(&mut v, sent, load.record_bytes, &mut rng);
                v.into_bytes()
            })
            .collect();
        let t0 = Instant::now();
        t.requests += 1;
        match s.send(values).await {
            Ok(()) => {
                t.acks.push(t0.elapsed());
                t.records += load.batch as u64;
                t.bytes += (load.batch * load.record_bytes) as u64;
            }
            Err(e) => {
                t.error(e);
                if pace.is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    t
}

/// Reads until `done` is set and `target()` values were read, or `hard_deadline`.
async fn consume(
    mut values: Values,
    start: Instant,
    done: Arc<AtomicBool>,
    target: Arc<std::sync::atomic::AtomicU64>,
    hard_deadline: Instant,
) -> Tally {
    let mut t = Tally::default();
    loop {
        if done.load(Ordering::Acquire) && t.records >= target.load(Ordering::Acquire) {
            break;
        }
        if Instant::now() >= hard_deadline {
            break;
        }
        let next = tokio::time::timeout(Duration::from_millis(250), values.next()).await;
        let batch = match next {
            Err(_) => continue,
            Ok(None) => {
                t.error("the consumer's stream ended".into());
                break;
            }
            Ok(Some(Err(e))) => {
                t.error(e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Ok(Some(Ok(b))) => b,
        };
        let received = start.elapsed().as_nanos();
        t.requests += 1;
        for v in batch {
            t.records += 1;
            t.bytes += v.len() as u64;
            match value_stamp(&v) {
                Some(s) if s <= received => t.acks.push(Duration::from_nanos(
                    (received - s).min(u64::MAX as u128) as u64,
                )),
                _ => t.error("a value without a send timestamp".into()),
            }
        }
    }
    t
}

/// The producers, all at once, for `load.seconds`: back to back (`paced` false) or at
/// `load.rate` over all of them, their sends spread over one interval.
async fn run_senders<S: Sender>(senders: Vec<S>, load: Load, start: Instant, paced: bool) -> Phase {
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(load.seconds);
    let n = senders.len();
    let batch_bytes = (load.batch * load.record_bytes) as f64;
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let pace = paced.then(|| Pacer::pace(i, n, batch_bytes, load.rate));
            tokio::spawn(produce(s, load, start, deadline, pace, i as u64 + 1))
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        match t.await {
            Ok(p) => tally.merge(p),
            Err(e) => tally.error(format!("producer task: {e}")),
        }
    }
    Phase {
        tally,
        elapsed: began.elapsed(),
    }
}

/// The throughput phase: the producers back to back for `load.seconds`, nobody reading.
pub async fn throughput<S: Sender>(senders: Vec<S>, load: Load) -> Phase {
    run_senders(senders, load, Instant::now(), false).await
}

/// The end-to-end phase: the producers at `load.rate` for `load.seconds`, the consumer from
/// the start until it has read every acknowledged value (or `load.drain` after the producers
/// stop). `values` must start at the end of what was sent before (a fresh stream or queue).
pub async fn end_to_end<S: Sender>(senders: Vec<S>, values: Values, load: Load) -> E2e {
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let target = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = start + Duration::from_secs_f64(load.seconds);
    let consumer = tokio::spawn(consume(
        values,
        start,
        done.clone(),
        target.clone(),
        deadline + load.drain,
    ));
    let produce = run_senders(senders, load, start, true).await;
    target.store(produce.tally.records, Ordering::Release);
    done.store(true, Ordering::Release);
    let e2e = match consumer.await {
        Ok(t) => t,
        Err(e) => {
            let mut t = Tally::default();
            t.error(format!("consumer task: {e}"));
            t
        }
    };
    E2e {
        unread: produce.tally.records.saturating_sub(e2e.records),
        produce,
        e2e,
    }
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream

use async_nats::jetstream;

pub struct NatsSender {
    js: jetstream::Context,
    subject: String,
}

impl Sender for NatsSender {
    async fn send(&mut self, values: Vec<Vec<u8>>) -> Result<(), String> {
        let mut acks = Vec::with_capacity(values.len());
        for v in values {
            let ack = self
                .js
                .publish(self.subject.clone(), v.into())
                .await
                .map_err(|e| format!("publish: {e}"))?;
            acks.push(ack);
        }
        for a in acks {
            a.await.map_err(|e| format!("publish ack: {e}"))?;
        }
        Ok(())
    }
}

async fn nats_js(port: u16) -> Result<jetstream::Context, String> {
    let url = format!("nats://127.0.0.1:{port}");
    let client = async_nats::connect(&url)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    Ok(jetstream::new(client))
}

/// The file-storage stream `name` on subject `name` (created if missing).
async fn nats_stream(
    js: &jetstream::Context,
    name: &str,
) -> Result<jetstream::stream::Stream, String> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: name.into(),
        subjects: vec![name.into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("create stream: {e}"))
}

/// Publishers to stream `name` (created here), one connection each.
pub async fn nats_senders(
    port: u16,
    producers: usize,
    name: &str,
) -> Result<Vec<NatsSender>, String> {
    nats_stream(&nats_js(port).await?, name).await?;
    let mut senders = Vec::with_capacity(producers);
    for _ in 0..producers {
        senders.push(NatsSender {
            js: nats_js(port).await?,
            subject: name.to_string(),
        });
    }
    Ok(senders)
}

/// An ephemeral pull consumer without acks of stream `name` (created here), from its start.
pub async fn nats_consumer(port: u16, name: &str) -> Result<Values, String> {
    let stream = nats_stream(&nats_js(port).await?, name).await?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create consumer: {e}"))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| format!("consume: {e}"))?;
    Ok(messages
        .ready_chunks(1000)
        .map(|chunk| {
            chunk
                .into_iter()
                .map(|m| m.map(|m| m.payload.to_vec()).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .boxed())
}

// ---------------------------------------------------------------------------------------------
// Redis Streams

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};

pub struct RedisSender {
    con: MultiplexedConnection,
    stream: String,
}

impl Sender for RedisSender {
    async fn send(&mut self, values: Vec<Vec<u8>>) -> Result<(), String> {
        let mut pipe = redis::pipe();
        for v in values {
            pipe.cmd("XADD").arg(&self.stream).arg("*").arg("v").arg(v);
        }
        let _: Vec<String> = pipe
            .query_async(&mut self.con)
            .await
            .map_err(|e| format!("XADD: {e}"))?;
        Ok(())
    }
}

async fn redis_connection(client: &redis::Client) -> Result<MultiplexedConnection, String> {
    let cfg =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| format!("connect: {e}"))
}

fn redis_client(port: u16) -> Result<redis::Client, String> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .map_err(|e| format!("redis client: {e}"))
}

/// Producers to stream `stream`: pipelined `XADD`s per batch, one connection each.
pub async fn redis_senders(
    port: u16,
    producers: usize,
    stream: &str,
) -> Result<Vec<RedisSender>, String> {
    let client = redis_client(port)?;
    let mut senders = Vec::with_capacity(producers);
    for _ in 0..producers {
        senders.push(RedisSender {
            con: redis_connection(&client).await?,
            stream: stream.to_string(),
        });
    }
    Ok(senders)
}

/// A consumer of stream `stream` from its start: `XREAD COUNT 1000 BLOCK 200`.
pub async fn redis_consumer(port: u16, stream: &str) -> Result<Values, String> {
    let reader = redis_connection(&redis_client(port)?).await?;
    Ok(futures::stream::unfold(
        (reader, "0-0".to_string(), stream.to_string()),
        |(mut con, last, name)| async move {
            let opts = StreamReadOptions::default().count(1000).block(200);
            let r: redis::RedisResult<Option<StreamReadReply>> =
                redis::AsyncCommands::xread_options(
                    &mut con,
                    &[name.as_str()],
                    &[last.as_str()],
                    &opts,
                )
                .await;
            let mut next = last.clone();
            let out = match r {
                Err(e) => Err(format!("XREAD: {e}")),
                Ok(reply) => {
                    let mut vals = Vec::new();
                    for key in reply.map(|r| r.keys).unwrap_or_default() {
                        for id in key.ids {
                            if let Some(v) = id.get::<Vec<u8>>("v") {
                                vals.push(v);
                            }
                            next = id.id;
                        }
                    }
                    Ok(vals)
                }
            };
            Some((out, (con, next, name)))
        },
    )
    .boxed())
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

pub struct RabbitSender {
    _conn: Connection,
    ch: Channel,
    queue: String,
}

impl Sender for RabbitSender {
    async fn send(&mut self, values: Vec<Vec<u8>>) -> Result<(), String> {
        let mut confirms = Vec::with_capacity(values.len());
        for v in values {
            let c = self
                .ch
                .basic_publish(
                    "".into(),
                    self.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &v,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .map_err(|e| format!("publish: {e}"))?;
            confirms.push(c);
        }
        for c in confirms {
            let c = c.await.map_err(|e| format!("confirm: {e}"))?;
            if !c.is_ack() {
                return Err("the broker refused (nack) a publish".into());
            }
        }
        Ok(())
    }
}

async fn rabbit_connection(port: u16) -> Result<Connection, String> {
    Connection::connect(
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    .map_err(|e| format!("connect: {e}"))
}

/// Connects and closes: the broker serves AMQP.
pub async fn rabbit_ping(port: u16) -> Result<(), String> {
    let conn = rabbit_connection(port).await?;
    conn.close(200, "".into())
        .await
        .map_err(|e| format!("close: {e}"))
}

/// Declares the durable quorum queue `name`.
pub async fn rabbit_quorum_queue(ch: &Channel, name: &str) -> Result<(), String> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .map_err(|e| format!("queue.declare: {e}"))?;
    Ok(())
}

/// A consumer of quorum queue `queue` (declared here): `basic.consume` with automatic ack
/// (prefetch 2000).
pub async fn rabbit_consumer(port: u16, queue: &str) -> Result<Values, String> {
    let conn = rabbit_connection(port).await?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| format!("channel: {e}"))?;
    rabbit_quorum_queue(&ch, queue).await?;
    ch.basic_qos(2000, BasicQosOptions::default())
        .await
        .map_err(|e| format!("basic.qos: {e}"))?;
    let consumer = ch
        .basic_consume(
            queue.into(),
            "bench-consumer".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("basic.consume: {e}"))?;
    // The consumer's connection and channel live as long as its stream.
    let keep = (conn, ch);
    Ok(consumer
        .ready_chunks(1000)
        .map(move |chunk| {
            let _ = &keep;
            chunk
                .into_iter()
                .map(|d| d.map(|d| d.data).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .boxed())
}

/// `producers` publishers with confirms, a connection and channel each, to quorum queue
/// `queue` (declared here).
pub async fn rabbit_senders(
    port: u16,
    producers: usize,
    queue: &str,
) -> Result<Vec<RabbitSender>, String> {
    let mut senders = Vec::with_capacity(producers);
    for _ in 0..producers {
        let conn = rabbit_connection(port).await?;
        let ch = conn
            .create_channel()
            .await
            .map_err(|e| format!("channel: {e}"))?;
        rabbit_quorum_queue(&ch, queue).await?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("confirm.select: {e}"))?;
        senders.push(RabbitSender {
            _conn: conn,
            ch,
            queue: queue.to_string(),
        });
    }
    Ok(senders)
}

/// Waits until `connect` succeeds (a server that listens may not serve yet).
pub async fn ready<F, Fut>(limit: Duration, mut connect: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match connect().await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > limit => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
