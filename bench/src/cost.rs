//! The cost model of `sluice-bench peers` (issue 17, point 4). Object requests per GiB are
//! *counted*, not estimated: a gateway (HTTP, with committer election on, as `sluice gateway`
//! runs) and a compactor run in this process over one in-memory bucket behind the counting
//! store wrapper (`core::store::Instrumented`); producers post the benchmark's load, the
//! compactor folds it, then 3 readers (one per consumer group) read every record back. The
//! counts per GiB ingested and per GiB read are then priced at 1 GiB/s ingest, 3 consumer
//! groups and 7 days' retention on S3 Standard and S3 Express One Zone. Also measured: object
//! requests per minute of an idle gateway + compactor, and per idle topic.

use crate::http_bench::{self, create_topic, end_offsets, run_producers, Shape};
use futures::TryStreamExt;
use object_store::ObjectStore;
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock;
use sluice_core::log::{Log, LogConfig};
use sluice_core::store::{Counts, Instrumented};
use sluice_gateway::{CommitterConfig, GatewayConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// AWS bills a month as 730 hours.
pub const SECONDS_PER_MONTH: f64 = 730.0 * 3600.0;

/// Object-store prices in USD (us-east-1). A storage tier is (GiB up to which it applies,
/// $ per GiB-month); AWS's "GB" in these prices is 2^30 bytes.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    pub name: &'static str,
    pub source: &'static str,
    pub storage_tiers: &'static [(f64, f64)],
    /// PUT, COPY, POST and LIST requests, $ per 1,000.
    pub put_list_per_1000: f64,
    /// GET and every other request, $ per 1,000.
    pub get_per_1000: f64,
    /// DELETE is free on both classes.
    pub delete_per_1000: f64,
    /// Upload charge per GiB for the part of each PUT beyond 512 KiB (Express One Zone only).
    pub upload_per_gib_over_512k: f64,
    /// Retrieval charge per GiB for the part of each GET beyond 512 KiB (Express One Zone only).
    pub retrieval_per_gib_over_512k: f64,
}

/// S3 Standard, us-east-1, from the public Amazon S3 pricing page (aws.amazon.com/s3/pricing),
/// as published since 2023 and read 2025-06: storage $0.023 / GB-month for the first 50 TB,
/// $0.022 for the next 450 TB, $0.021 beyond 500 TB; PUT/COPY/POST/LIST $0.005 per 1,000;
/// GET $0.0004 per 1,000; DELETE free.
pub const S3_STANDARD: Prices = Prices {
    name: "S3 Standard",
    source: "Amazon S3 pricing page, us-east-1, read 2025-06",
    storage_tiers: &[
        (50.0 * 1024.0, 0.023),
        (500.0 * 1024.0, 0.022),
        (f64::INFINITY, 0.021),
    ],
    put_list_per_1000: 0.005,
    get_per_1000: 0.0004,
    delete_per_1000: 0.0,
    upload_per_gib_over_512k: 0.0,
    retrieval_per_gib_over_512k: 0.0,
};

/// S3 Express One Zone, us-east-1, same page, prices in force since the 2025-04-10 reduction:
/// storage $0.11 / GB-month; PUT/COPY/POST/LIST $0.00113 per 1,000; GET $0.00003 per 1,000;
/// upload $0.0032 / GB and retrieval $0.0006 / GB for the part of a request over 512 KB.
pub const S3_EXPRESS: Prices = Prices {
    name: "S3 Express One Zone",
    source: "Amazon S3 pricing page, us-east-1, prices from 2025-04-10, read 2025-06",
    storage_tiers: &[(f64::INFINITY, 0.11)],
    put_list_per_1000: 0.00113,
    get_per_1000: 0.00003,
    delete_per_1000: 0.0,
    upload_per_gib_over_512k: 0.0032,
    retrieval_per_gib_over_512k: 0.0006,
};

/// Published monthly costs of other systems for the same load (1 GiB/s in, 3 consumer groups,
/// 7 days), with where the figure comes from.
pub const PEER_FIGURES: &[(&str, f64, &str)] = &[(
    "a Kafka fork on S3 (its own published calculation)",
    12_899.0,
    "as quoted in issue #17; not re-checked here (no web access on this machine)",
)];

/// Object requests (and bytes) per GiB, as counted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerGib {
    pub put: f64,
    pub get: f64,
    pub list: f64,
    pub delete: f64,
    pub put_bytes: f64,
    pub get_bytes: f64,
}

impl PerGib {
    /// `counts` (a delta) divided by `gib`.
    pub fn from_counts(c: &Counts, gib: f64) -> Self {
        let g = gib.max(1e-12);
        Self {
            put: c.put as f64 / g,
            get: c.get as f64 / g,
            list: c.list as f64 / g,
            delete: c.delete as f64 / g,
            put_bytes: c.put_bytes as f64 / g,
            get_bytes: c.get_bytes as f64 / g,
        }
    }
}

/// What was measured, in the units the model needs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    /// Requests per GiB of record values ingested (gateway + compactor, while ingesting and
    /// folding).
    pub ingest: PerGib,
    /// Requests per GiB of record values read by consumers.
    pub read: PerGib,
    /// Bytes kept in the bucket once folded, per byte ingested (data + index + checkpoints;
    /// flush segments and journal entries are deleted by GC and truncation).
    pub stored_ratio: f64,
    /// Every object written is eventually deleted once (GC, truncation, retention): DELETEs per
    /// GiB ingested in the steady state.
    pub eventual_delete: f64,
}

/// The load priced.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub ingest_gib_per_s: f64,
    pub consumer_groups: f64,
    pub retention_days: f64,
    /// Offset commits per second of each group (one state-log PUT each, at most).
    pub group_commits_per_s: f64,
}

pub const SCENARIO: Scenario = Scenario {
    ingest_gib_per_s: 1.0,
    consumer_groups: 3.0,
    retention_days: 7.0,
    group_commits_per_s: 1.0,
};

/// A monthly bill, USD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bill {
    pub put_list: f64,
    pub get: f64,
    pub delete: f64,
    pub transfer: f64,
    pub storage: f64,
    /// Requests per month (PUT + LIST, GET, DELETE).
    pub requests: (f64, f64, f64),
    pub stored_gib: f64,
}

impl Bill {
    pub fn requests_total(&self) -> f64 {
        self.put_list + self.get + self.delete + self.transfer
    }
    pub fn total(&self) -> f64 {
        self.requests_total() + self.storage
    }
}

/// $ per month of `gib` GiB stored on tiered prices.
pub fn storage_cost(tiers: &[(f64, f64)], gib: f64) -> f64 {
    let mut cost = 0.0;
    let mut below = 0.0;
    for &(upto, price) in tiers {
        if gib <= below {
            break;
        }
        let in_tier = gib.min(upto) - below;
        cost += in_tier * price;
        below = upto;
    }
    cost
}

/// Prices `m` under `s` on `p`.
pub fn monthly(m: &Measured, s: &Scenario, p: &Prices) -> Bill {
    let ingest_gib = s.ingest_gib_per_s * SECONDS_PER_MONTH;
    let read_gib = ingest_gib * s.consumer_groups;
    let group_puts = s.consumer_groups * s.group_commits_per_s * SECONDS_PER_MONTH;
    let put_list = (m.ingest.put + m.ingest.list) * ingest_gib
        + (m.read.put + m.read.list) * read_gib
        + group_puts;
    let get = m.ingest.get * ingest_gib + m.read.get * read_gib;
    let delete = m.eventual_delete.max(m.ingest.delete) * ingest_gib;
    // The part of each request beyond 512 KiB: bytes minus 512 KiB per request, at least 0.
    let over = |bytes_per_gib: f64, reqs_per_gib: f64| {
        (bytes_per_gib - reqs_per_gib * 512.0 * 1024.0).max(0.0) / GIB
    };
    let transfer = over(m.ingest.put_bytes, m.ingest.put) * ingest_gib * p.upload_per_gib_over_512k
        + over(m.read.get_bytes, m.read.get) * read_gib * p.retrieval_per_gib_over_512k;
    let stored_gib = s.ingest_gib_per_s * s.retention_days * 86_400.0 * m.stored_ratio;
    Bill {
        put_list: put_list / 1000.0 * p.put_list_per_1000,
        get: get / 1000.0 * p.get_per_1000,
        delete: delete / 1000.0 * p.delete_per_1000,
        transfer,
        storage: storage_cost(p.storage_tiers, stored_gib),
        requests: (put_list, get, delete),
        stored_gib,
    }
}

/// Dollars with thousands separators, no cents.
pub fn dollars(x: f64) -> String {
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-${out}")
    } else {
        format!("${out}")
    }
}

/// The printed model: one block per price list, then the peers' figures.
pub fn report(m: &Measured, s: &Scenario) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "cost model: {} GiB/s ingested, {} consumer groups reading everything, {} days' retention, {} offset commit/s per group; 730-hour month",
        s.ingest_gib_per_s, s.consumer_groups, s.retention_days, s.group_commits_per_s
    );
    let _ = writeln!(
        o,
        "  counted per GiB ingested: {:.0} PUT, {:.1} GET, {:.1} LIST, {:.1} DELETE ({:.0} eventually: every object written is deleted once); per GiB read: {:.0} GET, {:.1} LIST; stored bytes / ingested {:.3}",
        m.ingest.put, m.ingest.get, m.ingest.list, m.ingest.delete, m.eventual_delete, m.read.get, m.read.list, m.stored_ratio
    );
    for p in [&S3_STANDARD, &S3_EXPRESS] {
        let b = monthly(m, s, p);
        let _ = writeln!(
            o,
            "  {:<20} requests {:>9}/month (PUT+LIST {} for {:.2e}, GET {} for {:.2e}, DELETE {}{})  storage {:>9}/month ({:.0} GiB)  total {:>9}/month   [{}]",
            p.name,
            dollars(b.requests_total()),
            dollars(b.put_list),
            b.requests.0,
            dollars(b.get),
            b.requests.1,
            dollars(b.delete),
            if b.transfer > 0.0 {
                format!(", transfer {}", dollars(b.transfer))
            } else {
                String::new()
            },
            dollars(b.storage),
            b.stored_gib,
            dollars(b.total()),
            p.source
        );
    }
    for (who, usd, src) in PEER_FIGURES {
        let _ = writeln!(o, "  {who:<52} {}/month [{src}]", dollars(*usd));
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Measurement

fn delta(a: &Counts, b: &Counts) -> Counts {
    Counts {
        put: b.put - a.put,
        get: b.get - a.get,
        list: b.list - a.list,
        delete: b.delete - a.delete,
        put_bytes: b.put_bytes - a.put_bytes,
        get_bytes: b.get_bytes - a.get_bytes,
    }
}

struct InProcess {
    store: Arc<Instrumented>,
    base: String,
    stop: tokio::sync::watch::Sender<bool>,
}

async fn start(compactor_loop: bool, linger: Duration) -> Result<(InProcess, Compactor), String> {
    let mem: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let store = Instrumented::new(mem, 17);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");
    let log = Log::new(store.clone(), clock::system(), LogConfig::default());
    let cfg = GatewayConfig {
        linger,
        committer: Some(CommitterConfig::new(base.clone())),
        ..Default::default()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut rx1 = rx.clone();
    tokio::spawn(async move {
        let _ = sluice_gateway::serve(listener, log, cfg, async move {
            let _ = rx1.wait_for(|s| *s).await;
        })
        .await;
    });
    let compactor = Compactor::new(store.clone(), clock::system(), CompactorConfig::default());
    if compactor_loop {
        let c = Compactor::new(store.clone(), clock::system(), CompactorConfig::default());
        let mut rx2 = rx.clone();
        tokio::spawn(c.run(async move {
            let _ = rx2.wait_for(|s| *s).await;
        }));
    }
    Ok((InProcess { store, base, stop }, compactor))
}

/// Folds until a pass finds nothing more to do (bounded).
async fn fold_all(c: &mut Compactor) -> Result<(), String> {
    for _ in 0..200 {
        let r = c.run_once().await.map_err(|e| format!("compactor: {e}"))?;
        if r.entries_folded == 0 && !r.backlog && !r.waiting {
            return Ok(());
        }
    }
    Err("the compactor still had work after 200 passes".into())
}

/// `sluice gateway`'s produce linger on S3.
pub const S3_LINGER: Duration = Duration::from_millis(10);

/// What one measurement gave besides the counts: the ingest rate, the average PUT and
/// the producers' ack latency (which a longer linger raises).
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub mib_s: f64,
    /// Bytes per PUT of any kind (segments, journal entries, compactor objects), on average.
    pub put_bytes_avg: f64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    /// One line saying what was measured.
    pub note: String,
    /// PUTs and GETs per GiB ingested per area of the bucket (`segments`, `journal`, …).
    pub by_area: String,
}

/// "area PUT/GET, …" per GiB between two per-area snapshots, areas with requests only.
fn format_by_area(
    before: &std::collections::BTreeMap<String, Counts>,
    after: &std::collections::BTreeMap<String, Counts>,
    gib: f64,
) -> String {
    let g = gib.max(1e-12);
    after
        .iter()
        .filter_map(|(area, a)| {
            let b = before.get(area).copied().unwrap_or_default();
            let (put, get) = ((a.put - b.put) as f64 / g, (a.get - b.get) as f64 / g);
            (put >= 0.05 || get >= 0.05).then(|| format!("{area} {put:.0}/{get:.0}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ingests `seconds` of the load with the gateway's produce `linger`, folds it, reads it
/// `groups` times; returns the counts.
pub async fn measure(
    client: &reqwest::Client,
    producers: usize,
    seconds: f64,
    groups: usize,
    linger: Duration,
) -> Result<(Measured, Run), String> {
    let (gw, mut compactor) = start(false, linger).await?;
    let result = measure_on(
        &gw,
        &mut compactor,
        client,
        producers,
        seconds,
        groups,
        linger,
    )
    .await;
    let _ = gw.stop.send(true);
    result
}

/// The same measurement at each of `lingers`: requests per GiB follow the size of a flush,
/// which a gateway at this machine's rate reaches only with a longer linger (or many
/// producers). One line per linger: rate, segment size, PUT and GET per GiB, ack latency and
/// the S3 Standard bill of [`SCENARIO`].
pub async fn linger_sweep(
    client: &reqwest::Client,
    producers: usize,
    seconds: f64,
    groups: usize,
    lingers: &[Duration],
) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "cost vs produce linger (counted as above, {producers} producers x 64 x 1 KiB, {seconds} s each; S3 Standard at {} GiB/s, {} groups, {} days):",
        SCENARIO.ingest_gib_per_s, SCENARIO.consumer_groups, SCENARIO.retention_days
    );
    let _ = writeln!(
        o,
        "  {:>9} {:>8} {:>12} {:>8} {:>8} {:>9} {:>9} {:>13} {:>11}",
        "linger ms",
        "MiB/s",
        "MB/PUT",
        "PUT/GiB",
        "GET/GiB",
        "ack p50",
        "ack p99",
        "requests/mo",
        "total/mo"
    );
    for &linger in lingers {
        match measure(client, producers, seconds, groups, linger).await {
            Ok((m, r)) => {
                let b = monthly(&m, &SCENARIO, &S3_STANDARD);
                let _ = writeln!(
                    o,
                    "  {:>9} {:>8.1} {:>12.2} {:>8.0} {:>8.0} {:>9.1} {:>9.1} {:>13} {:>11}",
                    linger.as_millis(),
                    r.mib_s,
                    r.put_bytes_avg / 1e6,
                    m.ingest.put,
                    m.ingest.get,
                    r.ack_p50_ms,
                    r.ack_p99_ms,
                    dollars(b.requests_total()),
                    dollars(b.total()),
                );
                let _ = writeln!(
                    o,
                    "            PUT/GET per GiB ingested by area: {}",
                    r.by_area
                );
            }
            Err(e) => {
                let _ = writeln!(o, "  {:>9} FAILED: {e}", linger.as_millis());
            }
        }
    }
    o
}

async fn measure_on(
    gw: &InProcess,
    compactor: &mut Compactor,
    client: &reqwest::Client,
    producers: usize,
    seconds: f64,
    groups: usize,
    linger: Duration,
) -> Result<(Measured, Run), String> {
    http_bench::wait_ready(client, &gw.base).await?;
    create_topic(client, &gw.base, 8).await?;
    let shape = Arc::new(Shape::with(64, 1024, true));
    let url = format!("{}/v1/topics/bench/records?ack=durable", gw.base);
    let c0 = gw.store.counts();
    let a0 = gw.store.counts_by_area();
    let start = Instant::now();
    // The compactor passes once a second while producers run, as it would in production.
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let produce = run_producers(client, &url, &shape, producers, seconds, None, start);
    let fold = async {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if let Err(e) = compactor.run_once().await {
                        return Err(format!("compactor: {e}"));
                    }
                }
                _ = rx.changed() => return Ok(()),
            }
        }
    };
    let (phase, folded) = tokio::join!(
        async {
            let p = produce.await;
            let _ = tx.send(true);
            p
        },
        fold
    );
    folded?;
    fold_all(compactor).await?;
    let c1 = gw.store.counts();
    let a1 = gw.store.counts_by_area();
    let ingested = phase.tally.bytes as f64 / GIB;
    if phase.tally.records == 0 {
        return Err(format!(
            "nothing was acked: {:?}",
            phase.tally.error_samples
        ));
    }
    // Stored once folded: everything but flush segments and journal entries.
    let metas: Vec<_> = gw
        .store
        .list(None)
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let written_objects = (c1.put - c0.put) as f64;
    let stored: u64 = metas
        .iter()
        .filter(|m| {
            let k = m.location.as_ref();
            !k.starts_with("segments/") && !k.starts_with("journal/")
        })
        .map(|m| m.size)
        .sum();
    // Reads: each group reads every partition from offset 0 to its end.
    let ends = end_offsets(client, &gw.base).await?;
    let base: Arc<str> = gw.base.as_str().into();
    let mut read_records = 0u64;
    for _ in 0..groups {
        let (_tx, rx) = tokio::sync::watch::channel(Some(ends.clone()));
        let deadline = Instant::now() + Duration::from_secs(120);
        let readers: Vec<_> = (0..ends.len())
            .map(|p| {
                tokio::spawn(http_bench::reader(
                    client.clone(),
                    base.clone(),
                    p as u32,
                    0,
                    start,
                    rx.clone(),
                    deadline,
                ))
            })
            .collect();
        for r in readers {
            read_records += r.await.map(|t| t.records).unwrap_or(0);
        }
    }
    let c2 = gw.store.counts();
    let read_gib = read_records as f64 * shape.record_bytes as f64 / GIB;
    let m = Measured {
        ingest: PerGib::from_counts(&delta(&c0, &c1), ingested),
        read: PerGib::from_counts(&delta(&c1, &c2), read_gib),
        stored_ratio: stored as f64 / phase.tally.bytes.max(1) as f64,
        eventual_delete: written_objects / ingested.max(1e-12),
    };
    let mut phase = phase;
    let mib_s = ingested * 1024.0 / phase.elapsed.as_secs_f64();
    let put_bytes_avg = (c1.put_bytes - c0.put_bytes) as f64 / (c1.put - c0.put).max(1) as f64;
    let note = format!(
        "  measured in process (gateway with committer election + compactor over a counting in-memory bucket, linger {} ms): {} producers x 64 x 1 KiB for {seconds} s: {:.0} MiB ingested at {mib_s:.1} MiB/s ({put_bytes_avg:.0} B per PUT on average), {} records read back by {groups} readers",
        linger.as_millis(),
        producers,
        ingested * 1024.0,
        read_records,
    );
    let by_area = format_by_area(&a0, &a1, ingested);
    let run = Run {
        by_area,
        mib_s,
        put_bytes_avg,
        ack_p50_ms: phase.tally.acks.quantile_ms(0.5),
        ack_p99_ms: phase.tally.acks.quantile_ms(0.99),
        note,
    };
    Ok((m, run))
}

/// Object requests per minute of an idle gateway + compactor: with one topic, then with
/// `topics` topics. Returns (per minute with 1 topic, per minute per extra idle topic) as
/// counts.
pub async fn idle(
    client: &reqwest::Client,
    window: Duration,
    topics: usize,
) -> Result<String, String> {
    let (gw, _unused) = start(true, S3_LINGER).await?;
    let r = idle_on(&gw, client, window, topics).await;
    let _ = gw.stop.send(true);
    r
}

async fn idle_on(
    gw: &InProcess,
    client: &reqwest::Client,
    window: Duration,
    topics: usize,
) -> Result<String, String> {
    http_bench::wait_ready(client, &gw.base).await?;
    create_topic(client, &gw.base, 8).await?;
    // Settle (first passes, first listings), then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a = gw.store.counts();
    tokio::time::sleep(window).await;
    let one = delta(&a, &gw.store.counts());
    for i in 1..topics {
        let r = client
            .post(format!("{}/v1/topics", gw.base))
            .json(&serde_json::json!({"name": format!("idle-{i}"), "partitions": 1}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("creating topic idle-{i}: HTTP {}", r.status()));
        }
    }
    // Settle for a window too: the retention pass in it reads each new topic's config once
    // (a one-time cost of creating a topic, not a cost of an idle one).
    tokio::time::sleep(window.max(Duration::from_secs(3))).await;
    let b = gw.store.counts();
    tokio::time::sleep(window).await;
    let many = delta(&b, &gw.store.counts());
    let per_min = |c: &Counts| {
        let f = 60.0 / window.as_secs_f64();
        (
            c.put as f64 * f,
            c.get as f64 * f,
            c.list as f64 * f,
            c.delete as f64 * f,
        )
    };
    let (p1, g1, l1, d1) = per_min(&one);
    let (pn, gn, ln, dn) = per_min(&many);
    let extra = (topics.max(2) - 1) as f64;
    Ok(format!(
        "idle (gateway with committer election + compactor, {} s windows): 1 topic: {p1:.0} PUT, {g1:.0} GET, {l1:.0} LIST, {d1:.0} DELETE per minute; {topics} topics: {pn:.0} PUT, {gn:.0} GET, {ln:.0} LIST, {dn:.0} DELETE per minute; per extra idle topic: {:.2} PUT, {:.2} GET, {:.2} LIST per minute  (target: 0 PUTs when idle)",
        window.as_secs(),
        (pn - p1) / extra,
        (gn - g1) / extra,
        (ln - l1) / extra,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_by_area_per_gib_only_where_there_were_some() {
        let c = |put, get| Counts {
            put,
            get,
            ..Default::default()
        };
        let before = [("journal".to_string(), c(10, 10))].into_iter().collect();
        let after = [
            ("journal".to_string(), c(30, 10)),
            ("segments".to_string(), c(40, 4)),
            ("topics".to_string(), c(0, 0)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            format_by_area(&before, &after, 2.0),
            "journal 10/0, segments 20/2"
        );
    }

    #[test]
    fn storage_tiers_add_up() {
        let t = S3_STANDARD.storage_tiers;
        assert!((storage_cost(t, 1000.0) - 23.0).abs() < 1e-9);
        // 50 TiB at 0.023 + 450 TiB at 0.022 + 100 TiB at 0.021.
        let gib = 600.0 * 1024.0;
        let want = 51_200.0 * 0.023 + 460_800.0 * 0.022 + 102_400.0 * 0.021;
        assert!((storage_cost(t, gib) - want).abs() < 1e-6);
        assert_eq!(storage_cost(t, 0.0), 0.0);
        assert!((storage_cost(S3_EXPRESS.storage_tiers, 10.0) - 1.1).abs() < 1e-9);
    }

    #[test]
    fn a_bill_from_counts() {
        let m = Measured {
            ingest: PerGib {
                put: 200.0,
                get: 10.0,
                list: 1.0,
                delete: 0.0,
                put_bytes: GIB * 1.01,
                get_bytes: 0.0,
            },
            read: PerGib {
                put: 0.0,
                get: 100.0,
                list: 0.0,
                delete: 0.0,
                put_bytes: 0.0,
                get_bytes: GIB,
            },
            stored_ratio: 1.0,
            eventual_delete: 200.0,
        };
        let s = Scenario {
            ingest_gib_per_s: 1.0,
            consumer_groups: 3.0,
            retention_days: 7.0,
            group_commits_per_s: 0.0,
        };
        let b = monthly(&m, &s, &S3_STANDARD);
        let month = SECONDS_PER_MONTH;
        assert!((b.requests.0 - 201.0 * month).abs() < 1.0);
        assert!((b.put_list - 201.0 * month / 1000.0 * 0.005).abs() < 1e-6);
        assert!((b.requests.1 - (10.0 + 300.0) * month).abs() < 1.0);
        assert!((b.get - 310.0 * month / 1000.0 * 0.0004).abs() < 1e-6);
        assert_eq!(b.delete, 0.0);
        assert_eq!(b.transfer, 0.0);
        assert!((b.stored_gib - 604_800.0).abs() < 1e-6);
        assert!((b.storage - storage_cost(S3_STANDARD.storage_tiers, 604_800.0)).abs() < 1e-6);
        assert!((b.total() - (b.put_list + b.get + b.storage)).abs() < 1e-6);

        // Express charges the bytes of each request beyond 512 KiB.
        let e = monthly(&m, &s, &S3_EXPRESS);
        let up = (1.01 - 200.0 * 512.0 / (1024.0 * 1024.0)) * month * 0.0032;
        let down = (1.0 - 100.0 * 512.0 / (1024.0 * 1024.0)) * 3.0 * month * 0.0006;
        assert!(
            (e.transfer - (up + down)).abs() < 1e-3,
            "{} vs {}",
            e.transfer,
            up + down
        );
        assert!((e.storage - 604_800.0 * 0.11).abs() < 1e-6);
    }

    #[test]
    fn group_commits_are_priced_as_puts() {
        let s = Scenario {
            group_commits_per_s: 1.0,
            ..SCENARIO
        };
        let b = monthly(&Measured::default(), &s, &S3_STANDARD);
        assert!((b.requests.0 - 3.0 * SECONDS_PER_MONTH).abs() < 1e-6);
    }

    #[test]
    fn per_gib_divides_counts() {
        let c = Counts {
            put: 100,
            get: 50,
            list: 4,
            delete: 2,
            put_bytes: 1 << 30,
            get_bytes: 0,
        };
        let p = PerGib::from_counts(&c, 0.5);
        assert_eq!((p.put, p.get, p.list, p.delete), (200.0, 100.0, 8.0, 4.0));
        assert_eq!(p.put_bytes, 2.0 * GIB);
    }

    #[test]
    fn dollars_are_grouped() {
        assert_eq!(dollars(12_899.4), "$12,899");
        assert_eq!(dollars(999.0), "$999");
        assert_eq!(dollars(1_234_567.0), "$1,234,567");
        assert_eq!(dollars(-5000.0), "-$5,000");
        assert_eq!(dollars(0.2), "$0");
    }

    #[test]
    fn the_report_names_every_price_list_and_peer() {
        let r = report(&Measured::default(), &SCENARIO);
        assert!(r.contains("S3 Standard"));
        assert!(r.contains("S3 Express One Zone"));
        assert!(r.contains("$12,899"));
    }
}
