//! `sluice-bench hot`: one hot topic (64 partitions, one journal shard) produced to through G
//! gateways that share one simulated S3 Standard bucket (an in-memory store behind the
//! instrumented store's latency: conditional PUT p50 60 ms / p99 150 ms, GET/LIST p50 22 /
//! p99 30 ms). Each gateway is its own store client, log and produce batcher; in the `committer`
//! mode each also serves its HTTP router on a 127.0.0.1 port, takes part in the shard
//! committer election and hands its commits to the elected committer over
//! `POST /internal/v1/commit`. In the `direct` mode (the baseline, how Sluice committed before)
//! every gateway commits to the journal itself and the gateways race; `serial` is the committer
//! with one hand-over in flight per follower at a time (the first round of issue 9).
//!
//! Producers call each gateway's batcher in process (no public HTTP: the point is the commit
//! path, and the JSON parsing of this load would need more CPU than the machine has), each
//! sending one request at a time. Printed per G: records/s, MiB/s, ack p50/p99, PUTs per GiB
//! (every PUT of every gateway: segments, journal entries, leases), journal entries per second.

use crate::stats::{mib, Latencies};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStore;
use sluice_core::clock;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig, ProduceRequest};
use sluice_core::store::{DynStore, FaultConfig, Instrumented, LatencyDist};
use sluice_gateway::batcher::{Batcher, BatcherConfig};
use sluice_gateway::metrics::Metrics;
use sluice_gateway::{CommitterConfig, GatewayConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Gateway counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    gateways: Vec<usize>,
    /// Modes: `direct` (every gateway commits itself: the baseline), `serial` (the shard
    /// committer, each follower with one hand-over in flight at a time: the first round of
    /// issue 9) and `committer` (several numbered hand-overs in flight per follower).
    #[arg(long, value_delimiter = ',', default_value = "direct,serial,committer")]
    modes: Vec<String>,
    /// Producers per gateway, each sending one request at a time.
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Records per produce request.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 16384)]
    record_bytes: usize,
    /// Gateway linger in milliseconds (the S3 default).
    #[arg(long, default_value_t = 10)]
    linger_ms: u64,
    /// Seconds measured per point (after a warm-up of 2 s).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
}

/// S3 Standard as measured (published figures; see issue 9).
pub(crate) fn s3_standard() -> FaultConfig {
    FaultConfig {
        put_latency: Some(LatencyDist {
            p50: Duration::from_millis(60),
            p99: Duration::from_millis(150),
        }),
        get_latency: Some(LatencyDist {
            p50: Duration::from_millis(22),
            p99: Duration::from_millis(30),
        }),
        ..Default::default()
    }
}

struct Gateway {
    store: Arc<Instrumented>,
    batcher: Batcher,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Point {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    acks: Latencies,
    errors: u64,
    puts: u64,
    entries: u64,
}

async fn start_gateway(
    inner: &DynStore,
    seed: u64,
    hand_overs: Option<usize>,
    linger: Duration,
) -> Result<Gateway, String> {
    let store = Instrumented::new(inner.clone(), seed);
    store.set_faults(s3_standard());
    let log = Log::new(store.clone(), clock::system(), LogConfig::default());
    let mut stop = None;
    if let Some(max_hand_overs) = hand_overs {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let cfg = GatewayConfig {
            committer: Some(CommitterConfig {
                max_hand_overs,
                ..CommitterConfig::new(format!("http://{addr}"))
            }),
            ..Default::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stop = Some(tx);
        let log = log.clone();
        tokio::spawn(async move {
            let _ = sluice_gateway::serve(listener, log, cfg, async move {
                let _ = rx.await;
            })
            .await;
        });
    }
    let batcher = Batcher::spawn(
        log,
        BatcherConfig {
            linger,
            max_flush_bytes: 8 << 20,
            max_flushes_in_flight: 4,
        },
        Metrics::new(),
    );
    Ok(Gateway {
        store,
        batcher,
        stop,
    })
}

/// Delete flush segments now and then, straight from the shared in-memory bucket (not counted):
/// nothing reads them here, and they would fill the memory.
async fn janitor(inner: DynStore, stop: tokio::sync::watch::Receiver<bool>) {
    let dir = object_store::path::Path::from("segments");
    while !*stop.borrow() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let listed: Vec<_> = inner
            .list(Some(&dir))
            .try_collect()
            .await
            .unwrap_or_default();
        for m in listed {
            let _ = sluice_core::store::delete(&*inner, &m.location).await;
        }
    }
}

/// `None`: direct commits; `Some(n)`: the shard committer with `n` hand-overs in flight.
async fn measure(args: &Args, g: usize, hand_overs: Option<usize>) -> Result<Point, String> {
    let inner: DynStore = Arc::new(object_store::memory::InMemory::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let janitor = tokio::spawn(janitor(inner.clone(), stop_rx));
    let setup = Log::new(inner.clone(), clock::system(), LogConfig::default());
    setup
        .topics()
        .create("hot", 64, None, 0)
        .await
        .map_err(|e| format!("create topic: {e}"))?;
    let mut gateways = Vec::with_capacity(g);
    for i in 0..g {
        gateways.push(
            start_gateway(
                &inner,
                i as u64 + 1,
                hand_overs,
                Duration::from_millis(args.linger_ms),
            )
            .await?,
        );
    }
    let topic = setup
        .topics()
        .get("hot")
        .await
        .map_err(|e| format!("topic: {e}"))?;
    let value = Bytes::from(vec![b'x'; args.record_bytes]);
    let warmup = Duration::from_secs(2);
    let started = Instant::now();
    let measure_from = started + warmup;
    let until = measure_from + Duration::from_secs_f64(args.seconds);
    let mut tasks = Vec::new();
    for gw in &gateways {
        for _ in 0..args.producers {
            let batcher = gw.batcher.clone();
            let topic = topic.clone();
            let value = value.clone();
            let batch = args.batch;
            tasks.push(tokio::spawn(async move {
                let mut acks = Latencies::default();
                let (mut records, mut errors) = (0u64, 0u64);
                while Instant::now() < until {
                    let request = ProduceRequest {
                        topic: topic.clone(),
                        records: (0..batch)
                            .map(|_| (None, Record::new(None, value.clone())))
                            .collect(),
                        dedup_key: None,
                        producer: None,
                    };
                    let sent = Instant::now();
                    let ok = matches!(batcher.produce(request, None).await, Ok(Ok(_)));
                    if sent >= measure_from && Instant::now() <= until {
                        if ok {
                            records += batch as u64;
                            acks.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                (records, errors, acks)
            }));
        }
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let puts0: u64 = gateways.iter().map(|g| g.store.counts().put).sum();
    let head0 = journal_entries(&inner).await;
    tokio::time::sleep_until(until.into()).await;
    let puts1: u64 = gateways.iter().map(|g| g.store.counts().put).sum();
    let head1 = journal_entries(&inner).await;
    let mut point = Point {
        records: 0,
        bytes: 0,
        elapsed: Duration::from_secs_f64(args.seconds),
        acks: Latencies::default(),
        errors: 0,
        puts: puts1 - puts0,
        entries: head1.saturating_sub(head0),
    };
    for t in tasks {
        let (records, errors, acks) = t.await.map_err(|e| format!("producer: {e}"))?;
        point.records += records;
        point.errors += errors;
        point.acks.extend(acks);
    }
    point.bytes = point.records * args.record_bytes as u64;
    for gw in &mut gateways {
        if let Some(stop) = gw.stop.take() {
            let _ = stop.send(());
        }
    }
    let _ = stop_tx.send(true);
    let _ = janitor.await;
    Ok(point)
}

/// Journal entries of the topic's shard so far (the topic was created on shard 0).
async fn journal_entries(inner: &DynStore) -> u64 {
    let dir = sluice_core::keys::journal_dir(0);
    let names = sluice_core::store::list_names(&**inner, &dir, None)
        .await
        .unwrap_or_default();
    names.len() as u64
}

pub async fn run(args: Args) {
    println!(
        "sluice-bench hot: one topic of 64 partitions (one journal shard) through G gateways on one simulated S3 Standard bucket (PUT p50 60 / p99 150 ms, GET p50 22 / p99 30 ms); {} producers per gateway x {} records of {} B per request, linger {} ms, {} s per point after a 2 s warm-up",
        args.producers, args.batch, args.record_bytes, args.linger_ms, args.seconds
    );
    println!(
        "  {:<10} {:>3} {:>11} {:>9} {:>9} {:>9} {:>10} {:>11} {:>7} {:>8}",
        "mode",
        "G",
        "records/s",
        "MiB/s",
        "ack p50",
        "ack p99",
        "PUTs/GiB",
        "entries/s",
        "errors",
        "x of G=1"
    );
    for mode in &args.modes {
        let hand_overs = match mode.as_str() {
            "direct" => None,
            "serial" => Some(1),
            "committer" => Some(CommitterConfig::new(String::new()).max_hand_overs),
            other => {
                println!("  unknown mode {other} (use direct, serial or committer)");
                continue;
            }
        };
        let mut one = None;
        for &g in &args.gateways {
            match measure(&args, g, hand_overs).await {
                Ok(mut p) => {
                    let secs = p.elapsed.as_secs_f64();
                    let rate = p.records as f64 / secs;
                    let gib = p.bytes as f64 / (1u64 << 30) as f64;
                    if g == 1 {
                        one = Some(rate);
                    }
                    println!(
                        "  {:<10} {:>3} {:>11.0} {:>9.1} {:>6.0} ms {:>6.0} ms {:>10.0} {:>11.1} {:>7} {:>8}",
                        mode,
                        g,
                        rate,
                        mib(p.bytes) / secs,
                        p.acks.quantile_ms(0.5),
                        p.acks.quantile_ms(0.99),
                        p.puts as f64 / gib.max(f64::MIN_POSITIVE),
                        p.entries as f64 / secs,
                        p.errors,
                        one.map_or("-".to_string(), |o| format!("{:.1}x", rate / o)),
                    );
                }
                Err(e) => println!("  {mode} G={g}: failed: {e}"),
            }
        }
    }
    println!(
        "targets (issue 9): 8 gateways >= 6x the throughput of 1; ack p99 <= 400 ms at G = 8; <= 200 PUTs per GiB at load"
    );
}
