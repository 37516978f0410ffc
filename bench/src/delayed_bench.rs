//! `sluice-bench delayed`: delayed records, in process on a local folder (as `sluice dev`: the
//! gateway's `Delayed` writer and the mover over one fsync'ed store). Prints, with `--pending`
//! records (default 1,000,000) waiting a day ahead, against the same run with none pending
//! (the baseline):
//! - delivery lag after due (append timestamp − `deliver_at_ms`) of probe records due 1–5 s
//!   ahead: p50 / p99 / max;
//! - object requests per minute the mover makes while nothing is due (counted by the
//!   instrumented store);
//! - this process's RSS (the mover and everything else) with the records pending.

use crate::stats::Latencies;
use bytes::Bytes;
use sluice_core::clock;
use sluice_core::delayed::mover::{Mover, MoverConfig};
use sluice_core::delayed::Delayed;
use sluice_core::format::delayed::DelayedItem;
use sluice_core::format::record::Record;
use sluice_core::log::{Log, LogConfig};
use sluice_core::store::{self, DynStore, Instrumented, StoreOptions};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Delayed records pending (due a day ahead) while the probes are measured.
    #[arg(long, default_value_t = 1_000_000)]
    pending: u64,
    /// Records per produce request (one object each).
    #[arg(long, default_value_t = 1000)]
    records_per_request: u64,
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Probe records (one request each), due 1–5 s after they are written.
    #[arg(long, default_value_t = 200)]
    probes: u64,
    /// How long the idle phase counts requests.
    #[arg(long, default_value_t = 20)]
    idle_seconds: u64,
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

struct Figures {
    lag: Latencies,
    idle_per_min: f64,
    idle_lists: u64,
    rss: f64,
    write_s: f64,
}

async fn run_one(args: &Args, pending: u64) -> Figures {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw: DynStore = store::open(&dir.path().display().to_string(), &StoreOptions::default())
        .expect("local folder store");
    let counted = Instrumented::new(raw, 0);
    let store: DynStore = counted.clone();
    let clock = clock::system();
    let log = Log::new(store.clone(), clock.clone(), LogConfig::default());
    let topic = log
        .topics()
        .create("bench", 4, None, 0)
        .await
        .expect("topic");
    let delayed = Delayed::new(store.clone(), clock.clone(), log.writer());
    // The pending load: a day ahead, spread over an hour.
    let started = Instant::now();
    let value = Bytes::from(vec![b'v'; args.value_bytes]);
    let requests = pending.div_ceil(args.records_per_request.max(1));
    let day = clock.now_ms() + 86_400_000;
    futures::future::join_all((0..8u64).map(|w| {
        let (delayed, topic, value) = (delayed.clone(), topic.clone(), value.clone());
        let per = args.records_per_request;
        async move {
            let mut r = w;
            while r < requests {
                let items: Vec<DelayedItem> = (0..per)
                    .map(|i| DelayedItem {
                        deliver_at_ms: day + (r as i64 * 3_600_000 / requests as i64),
                        partition: None,
                        record: Record::new(Some(format!("k{i}").as_bytes()), value.clone()),
                    })
                    .collect();
                delayed
                    .write(&topic, items, None)
                    .await
                    .expect("write pending");
                r += 8;
            }
        }
    }))
    .await;
    let write_s = started.elapsed().as_secs_f64();
    let mover_cfg = MoverConfig::default();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mover = Mover::new(log.clone(), delayed.clone(), mover_cfg);
    let moving = tokio::spawn(mover.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    // Idle: nothing due. Let the first (start-up) scan pass, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = counted.counts();
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let after = counted.counts();
    let idle = after.total() - before.total();
    let idle_per_min = idle as f64 * 60.0 / args.idle_seconds as f64;
    let rss = rss_mib();
    // Probes: due 1–5 s ahead, one request each, written over about a second.
    let mut due = Vec::new();
    for i in 0..args.probes {
        let at = clock.now_ms() + 1_000 + (i as i64 * 4_000 / args.probes.max(1) as i64);
        let item = DelayedItem {
            deliver_at_ms: at,
            partition: Some((i % 4) as u32),
            record: Record::new(None, Bytes::from(format!("probe-{i}-{at}"))),
        };
        delayed
            .write(&topic, vec![item], None)
            .await
            .expect("write probe");
        due.push(at);
    }
    let last = *due.iter().max().unwrap_or(&0);
    // Wait until every probe is in the topic (bounded), then read the append timestamps.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lag = Latencies::default();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut found = Vec::new();
        for p in 0..4 {
            let b = log
                .read(&topic, p, 0, 100_000, 64 << 20)
                .await
                .expect("read");
            for r in b.records {
                let v = String::from_utf8_lossy(&r.record.value).to_string();
                if let Some(at) = v.rsplit('-').next().and_then(|s| s.parse::<i64>().ok()) {
                    found.push((r.append_ts - at).max(0));
                }
            }
        }
        if found.len() as u64 >= args.probes || Instant::now() > deadline {
            for ms in found {
                lag.push(Duration::from_millis(ms as u64));
            }
            break;
        }
        if clock.now_ms() > last + 30_000 {
            eprintln!("sluice-bench delayed: probes still missing 30 s after the last was due");
        }
    }
    let _ = stop_tx.send(true);
    let _ = moving.await;
    Figures {
        lag,
        idle_per_min,
        idle_lists: after.list - before.list,
        rss,
        write_s,
    }
}

pub async fn run(args: Args) {
    eprintln!("sluice-bench delayed: baseline (nothing pending) …");
    let mut base = run_one(&args, 0).await;
    eprintln!(
        "sluice-bench delayed: {} pending (writing them) …",
        args.pending
    );
    let mut load = run_one(&args, args.pending).await;
    println!(
        "delayed records, in process on a local folder (fsync), {} probes due 1-5 s ahead",
        args.probes
    );
    println!(
        "| | nothing pending (baseline) | {} pending |",
        args.pending
    );
    println!("|---|---|---|");
    let row = |f: &mut Figures| {
        format!(
            "{:.0} / {:.0} / {:.0} ms",
            f.lag.quantile_ms(0.5),
            f.lag.quantile_ms(0.99),
            f.lag.quantile_ms(1.0)
        )
    };
    println!(
        "| delivery lag after due p50 / p99 / max | {} | {} |",
        row(&mut base),
        row(&mut load)
    );
    println!(
        "| probes delivered | {} | {} |",
        base.lag.len(),
        load.lag.len()
    );
    println!(
        "| object requests per minute while idle | {:.0} ({} LISTs in {} s) | {:.0} ({} LISTs in {} s) |",
        base.idle_per_min,
        base.idle_lists,
        args.idle_seconds,
        load.idle_per_min,
        load.idle_lists,
        args.idle_seconds
    );
    println!(
        "| process RSS while pending | {:.0} MiB | {:.0} MiB |",
        base.rss, load.rss
    );
    println!(
        "| writing the pending records | | {:.1} s ({:.0} records/s) |",
        load.write_s,
        args.pending as f64 / load.write_s.max(1e-9)
    );
}
