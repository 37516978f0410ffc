//! The consuming side of the peers (issue 17, point 2), to set beside `sluice-bench queue` and
//! `sluice-bench groups` (same shapes: receivers each receive a batch then acknowledge it):
//!
//! - `rabbitmq-queue`: a quorum queue filled with `records` persistent messages (publisher
//!   confirms), then `receivers` consumers (own connection and channel each, prefetch
//!   `batch`) acknowledge every `batch` deliveries with one `basic.ack multiple`;
//! - `redis-groups`: a stream filled with `records` entries, one consumer group, `members`
//!   members each `XREADGROUP COUNT batch` then `XACK` of what they read.
//!
//! Printed: records received and acknowledged per second over `seconds`, receive and ack
//! latency per batch.

use crate::peer_clients::{self, Sender};
use crate::peer_servers;
use crate::stats::Latencies;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct QueueArgs {
    /// Consuming-side peers to run after the produce table (empty: none).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rabbitmq-queue,redis-groups"
    )]
    pub queue_systems: Vec<String>,
    #[arg(long, default_value_t = 100_000)]
    pub queue_records: usize,
    #[arg(long, default_value_t = 100)]
    pub queue_record_bytes: usize,
    /// Deliveries per receive / ack (`max` of `sluice-bench queue`).
    #[arg(long, default_value_t = 100)]
    pub queue_batch: usize,
    /// RabbitMQ consumers (`sluice-bench queue --receivers`).
    #[arg(long, default_value_t = 16)]
    pub queue_receivers: usize,
    /// Redis group members (`sluice-bench groups --members`).
    #[arg(long, default_value_t = 8)]
    pub group_members: usize,
    #[arg(long, default_value_t = 5.0)]
    pub queue_seconds: f64,
}

#[derive(Default)]
struct Tally {
    records: u64,
    receive: Latencies,
    ack: Latencies,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
    fn merge(&mut self, o: Tally) {
        self.records += o.records;
        self.receive.extend(o.receive);
        self.ack.extend(o.ack);
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

/// Waits for every task and merges their tallies; a task that panicked counts as an error.
async fn join_tallies(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut t = Tally::default();
    for x in tasks {
        match x.await {
            Ok(r) => t.merge(r),
            Err(e) => t.error(e.to_string()),
        }
    }
    t
}

fn line(system: &str, mut t: Tally, secs: f64, note: &str) -> String {
    format!(
        "  {system:<16} {:>9.0} rec/s received+acked   receive p50 {:>7.2} ms p99 {:>7.2} ms   ack p50 {:>7.2} ms p99 {:>7.2} ms   [{} errors{}] {note}",
        t.records as f64 / secs.max(1e-9),
        t.receive.quantile_ms(0.5),
        t.receive.quantile_ms(0.99),
        t.ack.quantile_ms(0.5),
        t.ack.quantile_ms(0.99),
        t.errors,
        t.first_error
            .as_deref()
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default()
    )
}

async fn fill<S: Sender>(
    senders: Vec<S>,
    records: usize,
    batch: usize,
    bytes: usize,
) -> Result<(), String> {
    let per = records.div_ceil(senders.len().max(1));
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut left = per;
                while left > 0 {
                    let n = left.min(batch.max(1) * 10);
                    s.send(vec![vec![b'q'; bytes]; n]).await?;
                    left -= n;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn rabbit_receiver(port: u16, batch: usize, until: Instant) -> Tally {
    let mut t = Tally::default();
    let conn = match lapin::Connection::connect(
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        lapin::ConnectionProperties::default(),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            t.error(format!("connect: {e}"));
            return t;
        }
    };
    let setup = async {
        let ch = conn.create_channel().await.map_err(|e| e.to_string())?;
        ch.basic_qos(batch as u16, BasicQosOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let c = ch
            .basic_consume(
                "qbench".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((ch, c))
    };
    let (_ch, mut consumer) = match setup.await {
        Ok(x) => x,
        Err(e) => {
            t.error(e);
            return t;
        }
    };
    while Instant::now() < until {
        let t0 = Instant::now();
        let mut last = None;
        let mut n = 0;
        while n < batch {
            let wait = if n == 0 { 1000 } else { 20 };
            match tokio::time::timeout(Duration::from_millis(wait), consumer.next()).await {
                Ok(Some(Ok(d))) => {
                    n += 1;
                    last = Some(d);
                }
                Ok(Some(Err(e))) => {
                    t.error(e.to_string());
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        let Some(d) = last else { continue };
        t.receive.push(t0.elapsed());
        let t1 = Instant::now();
        match d.ack(BasicAckOptions { multiple: true }).await {
            Ok(_) => {
                t.ack.push(t1.elapsed());
                t.records += n as u64;
            }
            Err(e) => t.error(format!("ack: {e}")),
        }
    }
    t
}

async fn rabbitmq_queue(a: &QueueArgs, dir: &Path) -> Result<String, String> {
    let mut s = peer_servers::rabbitmq(dir)?;
    peer_servers::wait_port(&mut s, Duration::from_secs(90)).await?;
    let port = s.port;
    peer_clients::ready(Duration::from_secs(60), || peer_clients::rabbit_ping(port)).await?;
    let senders = peer_clients::rabbit_senders(port, 4, "qbench").await?;
    let t0 = Instant::now();
    fill(
        senders,
        a.queue_records,
        a.queue_batch,
        a.queue_record_bytes,
    )
    .await?;
    let filled = t0.elapsed();
    let until = Instant::now() + Duration::from_secs_f64(a.queue_seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..a.queue_receivers)
        .map(|_| tokio::spawn(rabbit_receiver(port, a.queue_batch, until)))
        .collect();
    let t = join_tallies(tasks).await;
    let secs = start.elapsed().as_secs_f64();
    Ok(line(
        "rabbitmq-queue",
        t,
        secs,
        &format!(
            "({} consumers, quorum queue of {} x {} B filled in {} ms, basic.ack multiple per {}; {})",
            a.queue_receivers,
            a.queue_records,
            a.queue_record_bytes,
            filled.as_millis(),
            a.queue_batch,
            s.version
        ),
    ))
}

async fn redis_member(client: redis::Client, name: String, batch: usize, until: Instant) -> Tally {
    use redis::streams::{StreamReadOptions, StreamReadReply};
    let mut t = Tally::default();
    let mut con = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => {
            t.error(format!("connect: {e}"));
            return t;
        }
    };
    let opts = StreamReadOptions::default()
        .group("g", &name)
        .count(batch)
        .block(100);
    while Instant::now() < until {
        let t0 = Instant::now();
        let r: redis::RedisResult<Option<StreamReadReply>> =
            redis::AsyncCommands::xread_options(&mut con, &["qbench"], &[">"], &opts).await;
        let ids: Vec<String> = match r {
            Ok(reply) => reply
                .map(|r| r.keys)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|k| k.ids.into_iter().map(|i| i.id))
                .collect(),
            Err(e) => {
                t.error(format!("XREADGROUP: {e}"));
                continue;
            }
        };
        if ids.is_empty() {
            continue;
        }
        t.receive.push(t0.elapsed());
        let t1 = Instant::now();
        let r: redis::RedisResult<u64> =
            redis::AsyncCommands::xack(&mut con, "qbench", "g", &ids).await;
        match r {
            Ok(_) => {
                t.ack.push(t1.elapsed());
                t.records += ids.len() as u64;
            }
            Err(e) => t.error(format!("XACK: {e}")),
        }
    }
    t
}

async fn redis_groups(a: &QueueArgs, dir: &Path) -> Result<String, String> {
    let mut s = peer_servers::redis(dir, "always")?;
    peer_servers::wait_port(&mut s, Duration::from_secs(30)).await?;
    let senders = peer_clients::redis_senders(s.port, 4, "qbench").await?;
    let t0 = Instant::now();
    fill(
        senders,
        a.queue_records,
        a.queue_batch,
        a.queue_record_bytes,
    )
    .await?;
    let filled = t0.elapsed();
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}/", s.port)).map_err(|e| e.to_string())?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("qbench")
        .arg("g")
        .arg("0")
        .query_async(&mut con)
        .await
        .map_err(|e| format!("XGROUP CREATE: {e}"))?;
    let until = Instant::now() + Duration::from_secs_f64(a.queue_seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..a.group_members)
        .map(|i| {
            tokio::spawn(redis_member(
                client.clone(),
                format!("m{i}"),
                a.queue_batch,
                until,
            ))
        })
        .collect();
    let t = join_tallies(tasks).await;
    let secs = start.elapsed().as_secs_f64();
    Ok(line(
        "redis-groups",
        t,
        secs,
        &format!(
            "({} members of one group, XREADGROUP COUNT {} + XACK, AOF appendfsync always, {} x {} B filled in {} ms; {})",
            a.group_members,
            a.queue_batch,
            a.queue_records,
            a.queue_record_bytes,
            filled.as_millis(),
            s.version
        ),
    ))
}

pub async fn run(a: &QueueArgs, dir: &Path) {
    if a.queue_systems.iter().all(|s| s.is_empty()) {
        return;
    }
    println!(
        "consuming side of the peers, {} s each (Sluice's side: `sluice-bench queue --receivers {}` and `sluice-bench groups --members {}`, run by scripts/bench.sh after this):",
        a.queue_seconds, a.queue_receivers, a.group_members
    );
    for system in &a.queue_systems {
        let sub = dir.join(system);
        if let Err(e) = std::fs::create_dir_all(&sub) {
            println!("  {system}: SKIPPED: {e}");
            continue;
        }
        let r = match system.as_str() {
            "rabbitmq-queue" => rabbitmq_queue(a, &sub).await,
            "redis-groups" => redis_groups(a, &sub).await,
            "" => continue,
            other => Err(format!(
                "unknown (known: rabbitmq-queue, redis-groups): {other}"
            )),
        };
        match r {
            Ok(l) => println!("{l}"),
            Err(e) => println!("  {system}: SKIPPED: {e}"),
        }
    }
}
