//! `sluice bench`: producers (the SDK's `Producer`) and long-polling consumers against a
//! gateway on a fresh topic for a while; live progress, then produce and end-to-end throughput
//! and latency percentiles (hdrhistogram). The topic is deleted afterwards.

use super::{parse_duration, table, Ctx, Failure, Outcome};
use clap::Args;
use hdrhistogram::Histogram;
use sluice_sdk::{Client, Producer, ProducerConfig, Record, Start};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Concurrent producers (each batches and keeps 4 requests in flight).
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Concurrent consumers; the partitions are shared out among them.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Bytes of each record's value (at least 20: the send time is in it).
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// How long producers send, e.g. 10s, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
}

/// Send time, nanoseconds since the run's start, zero-padded: the first bytes of each value.
const STAMP: usize = 20;
/// How long consumers may take after the producers stop to reach the end.
const DRAIN: Duration = Duration::from_secs(15);

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

#[derive(Default)]
struct Counters {
    acked: AtomicU64,
    consumed: AtomicU64,
    errors: AtomicU64,
}

struct Shared {
    start: Instant,
    counters: Counters,
    ack_latency: Mutex<Histogram<u64>>,
    e2e_latency: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
    stop_consumers: AtomicBool,
}

impl Shared {
    fn error(&self, e: impl ToString) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| e.to_string());
    }
}

fn value(start: Instant, bytes: usize) -> Vec<u8> {
    let ns = start.elapsed().as_nanos() as u64;
    let mut v = format!("{ns:0STAMP$}").into_bytes();
    v.resize(bytes.max(STAMP), b'x');
    v
}

async fn produce(
    client: Client,
    topic: String,
    args_bytes: usize,
    until: Instant,
    sh: Arc<Shared>,
) {
    let producer = Producer::new(client, &topic, ProducerConfig::default());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, sluice_sdk::AckFuture)>(50_000);
    let acks = {
        let sh = sh.clone();
        tokio::spawn(async move {
            let mut h = histogram();
            while let Some((sent, f)) = rx.recv().await {
                match f.await {
                    Ok(_) => {
                        h.saturating_record(sent.elapsed().as_micros() as u64);
                        sh.counters.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => sh.error(e),
                }
            }
            let mut all = sh.ack_latency.lock().unwrap_or_else(|e| e.into_inner());
            let _ = all.add(&h);
        })
    };
    while Instant::now() < until {
        let r = Record::new(None, value(sh.start, args_bytes));
        let sent = Instant::now();
        match producer.send(r).await {
            Ok(f) => {
                if tx.send((sent, f)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                sh.error(e);
                break;
            }
        }
    }
    drop(tx);
    if let Err(e) = producer.close().await {
        sh.error(e);
    }
    let _ = acks.await;
}

/// One consumer: its partitions in turn, a long-poll on the next one when a round found
/// nothing; ends once every partition reached its end (`u64::MAX` until the producers stop).
async fn consume(
    client: Client,
    topic: String,
    parts: Vec<(u32, Arc<AtomicU64>)>,
    sh: Arc<Shared>,
) {
    let mut h = histogram();
    let mut next = vec![0u64; parts.len()];
    let mut turn = 0usize;
    loop {
        let stopping = sh.stop_consumers.load(Ordering::Acquire);
        if stopping
            && parts
                .iter()
                .zip(&next)
                .all(|((_, end), n)| *n >= end.load(Ordering::Acquire))
        {
            break;
        }
        let mut found = 0;
        for (i, (p, _)) in parts.iter().enumerate() {
            let wait =
                (found == 0 && i == turn % parts.len()).then_some(Duration::from_millis(200));
            match client
                .read(&topic, *p, Start::Offset(next[i]), 1000, wait)
                .await
            {
                Ok(b) => {
                    let now = sh.start.elapsed().as_nanos() as u64;
                    for r in &b.records {
                        let stamp = &r.record.value[..STAMP.min(r.record.value.len())];
                        let sent = std::str::from_utf8(stamp)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok());
                        if let Some(sent) = sent {
                            h.saturating_record(now.saturating_sub(sent) / 1000);
                        }
                    }
                    found += b.records.len();
                    sh.counters
                        .consumed
                        .fetch_add(b.records.len() as u64, Ordering::Relaxed);
                    next[i] = b.next_offset;
                }
                Err(e) => {
                    sh.error(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        turn += 1;
    }
    let mut all = sh.e2e_latency.lock().unwrap_or_else(|e| e.into_inner());
    let _ = all.add(&h);
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let v = |x: f64| {
        if x.is_nan() {
            serde_json::Value::Null
        } else {
            serde_json::json!(x)
        }
    };
    serde_json::json!({
        "p50": v(ms(h, 0.5)), "p90": v(ms(h, 0.9)), "p99": v(ms(h, 0.99)),
        "max": v(if h.is_empty() { f64::NAN } else { h.max() as f64 / 1000.0 }),
    })
}

pub async fn run(ctx: &Ctx, args: BenchArgs) -> Outcome {
    if args.producers == 0 || args.partitions == 0 {
        return Err(Failure::usage("--producers and --partitions must be at least 1").into());
    }
    let topic = format!(
        "bench-{}",
        sluice_core::ids::new_ulid(sluice_core::clock::system().now_ms())
    );
    ctx.client
        .create_topic(&topic, args.partitions, None)
        .await?;
    let sh = Arc::new(Shared {
        start: Instant::now(),
        counters: Counters::default(),
        ack_latency: Mutex::new(histogram()),
        e2e_latency: Mutex::new(histogram()),
        first_error: Mutex::new(None),
        stop_consumers: AtomicBool::new(false),
    });
    let until = Instant::now() + args.duration;
    let producers: Vec<_> = (0..args.producers)
        .map(|_| {
            tokio::spawn(produce(
                ctx.client.clone(),
                topic.clone(),
                args.record_bytes,
                until,
                sh.clone(),
            ))
        })
        .collect();
    // Consumer c reads the partitions p with p % consumers == c.
    let ends: Vec<Arc<AtomicU64>> = (0..args.partitions)
        .map(|_| Arc::new(AtomicU64::new(u64::MAX)))
        .collect();
    let consumers: Vec<_> = (0..args.consumers.min(args.partitions as usize))
        .map(|c| {
            let parts = (0..args.partitions)
                .filter(|p| *p as usize % args.consumers == c)
                .map(|p| (p, ends[p as usize].clone()))
                .collect();
            tokio::spawn(consume(
                ctx.client.clone(),
                topic.clone(),
                parts,
                sh.clone(),
            ))
        })
        .collect();
    let bar = ctx.stderr_tty.then(|| {
        let b = indicatif::ProgressBar::new(args.duration.as_millis() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {elapsed}/{duration} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut last = (Instant::now(), 0u64);
    while Instant::now() < until {
        tokio::time::sleep(
            Duration::from_secs(1).min(until.saturating_duration_since(Instant::now())),
        )
        .await;
        let acked = sh.counters.acked.load(Ordering::Relaxed);
        let consumed = sh.counters.consumed.load(Ordering::Relaxed);
        let rate = (acked - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
        last = (Instant::now(), acked);
        let msg = format!(
            "acked {acked} ({rate:.0} rec/s), consumed {consumed}, errors {}",
            sh.counters.errors.load(Ordering::Relaxed)
        );
        match &bar {
            Some(b) => {
                b.set_position(sh.start.elapsed().as_millis() as u64);
                b.set_message(msg);
            }
            None => {
                let _ = writeln!(
                    std::io::stderr(),
                    "bench: {:.0}s {msg}",
                    sh.start.elapsed().as_secs_f64()
                );
            }
        }
    }
    for p in producers {
        let _ = p.await;
    }
    let produce_secs = sh.start.elapsed().as_secs_f64();
    if let Some(b) = &bar {
        b.set_message("draining consumers");
    }
    if !consumers.is_empty() {
        let detail = ctx.client.describe_topic(&topic).await?;
        for info in &detail.partition_info {
            ends[info.partition as usize].store(info.next_offset, Ordering::Release);
        }
        sh.stop_consumers.store(true, Ordering::Release);
        let drained = tokio::time::timeout(DRAIN, futures_join(consumers)).await;
        if drained.is_err() {
            sh.error("consumers did not reach the end within 15 s");
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let _ = ctx.client.delete_topic(&topic).await;

    let acked = sh.counters.acked.load(Ordering::Relaxed);
    let consumed = sh.counters.consumed.load(Ordering::Relaxed);
    let errors = sh.counters.errors.load(Ordering::Relaxed);
    let ack_h = sh
        .ack_latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let e2e_h = sh
        .e2e_latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let bytes = args.record_bytes.max(STAMP) as f64;
    let rec_s = acked as f64 / produce_secs;
    let mib_s = rec_s * bytes / (1024.0 * 1024.0);
    let first_error = sh
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if ctx.json() {
        return ctx.print_json(&serde_json::json!({
            "topic": topic,
            "producers": args.producers,
            "consumers": args.consumers,
            "partitions": args.partitions,
            "record_bytes": args.record_bytes.max(STAMP),
            "duration_ms": (produce_secs * 1000.0).round() as u64,
            "produce": {
                "records": acked,
                "records_per_s": rec_s,
                "mib_per_s": mib_s,
                "latency_ms": latency_json(&ack_h),
            },
            "end_to_end": {
                "records": consumed,
                "latency_ms": latency_json(&e2e_h),
            },
            "errors": errors,
            "first_error": first_error,
        }));
    }
    let f = |x: f64| {
        if x.is_nan() {
            "-".to_string()
        } else {
            format!("{x:.1}")
        }
    };
    let row = |name: &str, n: u64, h: &Histogram<u64>, rate: String, mib: String| {
        vec![
            name.to_string(),
            n.to_string(),
            rate,
            mib,
            f(ms(h, 0.5)),
            f(ms(h, 0.9)),
            f(ms(h, 0.99)),
            f(if h.is_empty() {
                f64::NAN
            } else {
                h.max() as f64 / 1000.0
            }),
        ]
    };
    let rows = vec![
        row(
            "produce",
            acked,
            &ack_h,
            format!("{rec_s:.0}"),
            format!("{mib_s:.1}"),
        ),
        row(
            "end-to-end",
            consumed,
            &e2e_h,
            format!("{:.0}", consumed as f64 / produce_secs),
            format!(
                "{:.1}",
                consumed as f64 * bytes / produce_secs / (1024.0 * 1024.0)
            ),
        ),
    ];
    ctx.print_line(&format!(
        "{} producers, {} consumers, {} partitions, {} B records, {:.1} s\n",
        args.producers,
        args.consumers,
        args.partitions,
        args.record_bytes.max(STAMP),
        produce_secs
    ))?;
    ctx.print_line(&table(
        true,
        &[
            "", "RECORDS", "REC/S", "MIB/S", "P50 MS", "P90 MS", "P99 MS", "MAX MS",
        ],
        &rows,
    ))?;
    if errors > 0 {
        ctx.print_line(&format!(
            "\n{errors} errors; first: {}",
            first_error.unwrap_or_default()
        ))?;
    }
    Ok(())
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}
