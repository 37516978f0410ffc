//! One load for every peer of `sluice-bench peers`: `producers` producers, each sending a batch
//! of `batch` values (made by [`push_value`], the same bytes as Sluice's) and waiting until the
//! peer acknowledged every one of them before sending the next, for a fixed time; only
//! acknowledged values count. One consumer reads while they produce; its end-to-end latency is
//! send time (inside the value) to receipt.
//!
//! Clients: async-nats (JetStream publish acks), redis (pipelined `XADD`, `XREAD BLOCK`),
//! lapin (publisher confirms on a quorum queue, `basic.consume` with automatic ack).

use crate::http_bench::{push_value, value_stamp, Phase, Tally};
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
    /// How long the consumer may take, after the producers stop, to read every acked value.
    pub drain: Duration,
}

/// A producer's connection: sends values and returns once all are acknowledged.
pub trait Sender: Send + 'static {
    fn send(&mut self, values: Vec<Vec<u8>>) -> impl Future<Output = Result<(), String>> + Send;
}

/// The consumer: batches of values as they arrive.
pub type Values = BoxStream<'static, Result<Vec<Vec<u8>>, String>>;

/// What one run measured.
pub struct Outcome {
    pub produce: Phase,
    pub e2e: Tally,
    /// Acked values the consumer had not read when the drain time ran out.
    pub unread: u64,
}

async fn produce<S: Sender>(
    mut s: S,
    load: Load,
    start: Instant,
    deadline: Instant,
    seed: u64,
) -> Tally {
    let mut t = Tally::default();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while Instant::now() < deadline {
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
                tokio::time::sleep(Duration::from_millis(10)).await;
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

/// Runs the load: the producers for `load.seconds`, the consumer from the start until it has
/// read every acknowledged value (or `load.drain` after the producers stop).
pub async fn drive<S: Sender>(senders: Vec<S>, values: Values, load: Load) -> Outcome {
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
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, s)| tokio::spawn(produce(s, load, start, deadline, i as u64 + 1)))
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        match t.await {
            Ok(p) => tally.merge(p),
            Err(e) => tally.error(format!("producer task: {e}")),
        }
    }
    let elapsed = start.elapsed();
    target.store(tally.records, Ordering::Release);
    done.store(true, Ordering::Release);
    let e2e = match consumer.await {
        Ok(t) => t,
        Err(e) => {
            let mut t = Tally::default();
            t.error(format!("consumer task: {e}"));
            t
        }
    };
    Outcome {
        unread: tally.records.saturating_sub(e2e.records),
        produce: Phase { tally, elapsed },
        e2e,
    }
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream

use async_nats::jetstream;

pub struct NatsSender {
    js: jetstream::Context,
}

impl Sender for NatsSender {
    async fn send(&mut self, values: Vec<Vec<u8>>) -> Result<(), String> {
        let mut acks = Vec::with_capacity(values.len());
        for v in values {
            let ack = self
                .js
                .publish("bench", v.into())
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

/// A file-storage stream `bench` on subject `bench`, one connection per producer and an
/// ephemeral pull consumer without acks.
pub async fn nats(port: u16, producers: usize) -> Result<(Vec<NatsSender>, Values), String> {
    let url = format!("nats://127.0.0.1:{port}");
    let connect = || async {
        async_nats::connect(&url)
            .await
            .map_err(|e| format!("connect {url}: {e}"))
    };
    let js = jetstream::new(connect().await?);
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "bench".into(),
            subjects: vec!["bench".into()],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create stream: {e}"))?;
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
    let values = messages
        .ready_chunks(1000)
        .map(|chunk| {
            chunk
                .into_iter()
                .map(|m| m.map(|m| m.payload.to_vec()).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .boxed();
    let mut senders = Vec::with_capacity(producers);
    for _ in 0..producers {
        senders.push(NatsSender {
            js: jetstream::new(connect().await?),
        });
    }
    Ok((senders, values))
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

/// Stream `bench`: pipelined `XADD`s per batch on one connection per producer; the consumer
/// follows with `XREAD COUNT 1000 BLOCK 200`.
pub async fn redis(port: u16, producers: usize) -> Result<(Vec<RedisSender>, Values), String> {
    redis_stream(port, producers, "bench").await
}

/// [`redis`] on stream `stream`.
pub async fn redis_stream(
    port: u16,
    producers: usize,
    stream: &str,
) -> Result<(Vec<RedisSender>, Values), String> {
    let name = stream.to_string();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .map_err(|e| format!("redis client: {e}"))?;
    let reader = redis_connection(&client).await?;
    let values = futures::stream::unfold(
        (reader, "0-0".to_string(), name),
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
    .boxed();
    let mut senders = Vec::with_capacity(producers);
    for _ in 0..producers {
        senders.push(RedisSender {
            con: redis_connection(&client).await?,
            stream: stream.to_string(),
        });
    }
    Ok((senders, values))
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

/// Quorum queue `bench`: persistent publishes with publisher confirms, one connection and
/// channel per producer; the consumer uses `basic.consume` with automatic ack (prefetch 2000).
pub async fn rabbitmq(port: u16, producers: usize) -> Result<(Vec<RabbitSender>, Values), String> {
    let conn = rabbit_connection(port).await?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| format!("channel: {e}"))?;
    rabbit_quorum_queue(&ch, "bench").await?;
    ch.basic_qos(2000, BasicQosOptions::default())
        .await
        .map_err(|e| format!("basic.qos: {e}"))?;
    let consumer = ch
        .basic_consume(
            "bench".into(),
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
    let values = consumer
        .ready_chunks(1000)
        .map(move |chunk| {
            let _ = &keep;
            chunk
                .into_iter()
                .map(|d| d.map(|d| d.data).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .boxed();
    Ok((rabbit_senders(port, producers, "bench").await?, values))
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
