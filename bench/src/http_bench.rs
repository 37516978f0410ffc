//! `sluice-bench http`: the gateway over HTTP, run as its own process (`sluice dev` on a temp
//! folder, `sluice gateway --with-compactor` on S3), driven by concurrent producers posting JSON
//! batches with `ack=durable` and by long-polling readers. Printed next to the HTTP + JSON
//! ceiling: an in-process axum server that parses the same bodies and stores nothing, driven by
//! the same producer code in the same run. Nothing here passes or fails on a timing.

use crate::stats::{median, mib, Latencies};
use bytes::Bytes;
use serde::Deserialize;
use sluice_core::clock;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Backends to run: `dev` (`sluice dev` on a temp folder), `dev-nofsync` (the same with
    /// `--no-fsync`, to compare the cost of fsync), `s3` (`sluice gateway
    /// --with-compactor` on S3; needs --endpoint, credentials from the AWS_* environment).
    #[arg(long, value_delimiter = ',', default_value = "dev,s3")]
    pub(crate) backends: Vec<String>,
    /// Concurrent producers, each sending one batch at a time.
    #[arg(long, default_value_t = 16)]
    pub(crate) producers: usize,
    /// Records per produce request.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch: usize,
    /// Bytes of each record's value (at least 20: the send timestamp is embedded).
    #[arg(long, default_value_t = 1024)]
    pub(crate) record_bytes: usize,
    /// Seconds per measurement (throughput phase and fixed-rate phase each).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) seconds: f64,
    /// Offered load of the fixed-rate phase, MiB/s of record values over all producers.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) rate_mib: f64,
    /// Run the backends this many times, in alternating order, and print each backend's
    /// median; with `dev` and `dev-nofsync`, the median of their per-round ratio.
    #[arg(long, default_value_t = 1)]
    pub(crate) rounds: usize,
    /// Partitions of the `bench` topic.
    #[arg(long, default_value_t = 8)]
    pub(crate) partitions: u32,
    /// The `sluice` binary (default: `sluice` next to this executable; build both with
    /// `cargo build --release -p sluice-cli -p sluice-bench`).
    #[arg(long)]
    pub(crate) sluice_bin: Option<PathBuf>,
    /// `--linger-ms` for the gateway (default: the gateway's own default).
    #[arg(long)]
    pub(crate) linger_ms: Option<u64>,
    /// `--max-pending-bytes` for the gateway, in MiB: with many producers this measures memory
    /// under overload (the gateway answers 429 beyond it; counted as errors here).
    #[arg(long)]
    pub(crate) max_pending_mib: Option<u64>,
    /// S3 endpoint for the `s3` backend (e.g. http://127.0.0.1:4566).
    #[arg(long, env = "SLUICE_TEST_S3_ENDPOINT")]
    pub(crate) endpoint: Option<String>,
    #[arg(long, env = "SLUICE_TEST_S3_BUCKET", default_value = "sluice-test")]
    pub(crate) bucket: String,
}

/// Keys are drawn among this many.
const KEYS: u64 = 1000;
/// The send time (nanoseconds since the run's start, zero-padded decimal) opens every value.
pub(crate) const STAMP: usize = 20;
/// Long-poll wait of the readers.
const WAIT_MS: u64 = 5000;
/// How long readers may take after the producers stop to reach the end of every partition.
const DRAIN: Duration = Duration::from_secs(15);
/// Error messages kept per producer / reader.
const KEEP_ERRORS: usize = 3;

// ---------------------------------------------------------------------------------------------
// The gateway process

/// `sync(1)`: write every dirty page of the machine back before a measurement.
pub(crate) fn flush_page_cache() {
    if let Err(e) = std::process::Command::new("sync").status() {
        println!("  (sync failed: {e}; the next figures may include the last run's writeback)");
    }
}

/// A `sluice` process on a loopback port; killed (by its pid) when dropped.
pub(crate) struct Gateway {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Gateway {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// How to start a gateway process (the HTTP and the queue benchmarks share it).
pub(crate) struct GatewayOpts<'a> {
    pub endpoint: Option<&'a str>,
    pub bucket: &'a str,
    pub linger_ms: Option<u64>,
    pub max_pending_mib: Option<u64>,
}

impl Args {
    pub(crate) fn opts(&self) -> GatewayOpts<'_> {
        GatewayOpts {
            endpoint: self.endpoint.as_deref(),
            bucket: &self.bucket,
            linger_ms: self.linger_ms,
            max_pending_mib: self.max_pending_mib,
        }
    }
}

pub(crate) fn sluice_bin(given: Option<&PathBuf>) -> Result<PathBuf, String> {
    let bin = match given {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this executable: {e}"))?
            .with_file_name("sluice"),
    };
    if !bin.is_file() {
        return Err(format!(
            "no sluice binary at {} (build it with `cargo build --release -p sluice-cli \
             -p sluice-bench`, or pass --sluice-bin)",
            bin.display()
        ));
    }
    Ok(bin)
}

pub(crate) fn spawn_gateway(
    bin: &Path,
    backend: &str,
    args: &GatewayOpts,
    dir: &Path,
    run_id: &str,
) -> Result<Gateway, String> {
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    match backend {
        "dev" | "dev-nofsync" => {
            let data = dir.join(format!("{backend}-{run_id}"));
            cmd.arg("dev").arg("--data-dir").arg(&data);
            if backend == "dev-nofsync" {
                cmd.arg("--no-fsync");
            }
        }
        "s3" => {
            let endpoint = args.endpoint.unwrap_or_default();
            cmd.arg("gateway")
                .arg("--with-compactor")
                .arg("--store")
                .arg(format!("s3://{}/bench-{run_id}", args.bucket))
                .arg("--endpoint")
                .arg(endpoint);
        }
        other => {
            return Err(format!(
                "unknown backend {other} (use dev, dev-nofsync or s3)"
            ))
        }
    }
    cmd.arg("--listen").arg(&listen);
    if let Some(ms) = args.linger_ms {
        cmd.arg("--linger-ms").arg(ms.to_string());
    }
    if let Some(mib) = args.max_pending_mib {
        cmd.arg("--max-pending-bytes").arg((mib << 20).to_string());
    }
    let log = dir.join(format!("gateway-{backend}-{run_id}.log"));
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| e.to_string())?;
    // The environment (AWS_* credentials and region) is inherited.
    cmd.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    Ok(Gateway {
        child,
        base: format!("http://{listen}"),
        log,
    })
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n    ")
}

pub(crate) async fn wait_healthy(
    gw: &mut Gateway,
    client: &reqwest::Client,
) -> Result<Duration, String> {
    let start = Instant::now();
    let limit = Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = gw.child.try_wait() {
            return Err(format!(
                "the gateway exited ({status}) before answering /healthz:\n    {}",
                log_tail(&gw.log, 10)
            ));
        }
        let r = client
            .get(format!("{}/healthz", gw.base))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if matches!(&r, Ok(resp) if resp.status().is_success()) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            return Err(format!(
                "no answer from {}/healthz within {} s:\n    {}",
                gw.base,
                limit.as_secs(),
                log_tail(&gw.log, 10)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (30 s at most) until `base`/healthz answers 2xx: a gateway served in this process.
pub(crate) async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let r = client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if matches!(&r, Ok(resp) if resp.status().is_success()) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("no answer from {base}/healthz within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
pub(crate) fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

pub(crate) fn print_rss(label: &str, pid: u32) {
    match rss_mib(pid) {
        Some((rss, hwm)) => {
            println!("  {label:<30} gateway RSS {rss:>7.1} MiB   peak (VmHWM) {hwm:>7.1} MiB")
        }
        None => println!("  {label:<30} gateway RSS: /proc/{pid}/status not readable"),
    }
}

/// Warnings and errors the gateway logged, with the first few of them. A log with any is
/// copied out of the temp folder (which goes at exit) and its path printed.
pub(crate) fn print_log_summary(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let warn: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    let err: Vec<&str> = text.lines().filter(|l| l.contains(" ERROR ")).collect();
    let kept = if warn.is_empty() && err.is_empty() {
        String::new()
    } else {
        let name = path.file_name().unwrap_or_default();
        let keep = std::env::temp_dir().join(format!("sluice-bench-{}", name.to_string_lossy()));
        match std::fs::copy(path, &keep) {
            Ok(_) => format!(", log kept at {}", keep.display()),
            Err(e) => format!(", log not kept: {e}"),
        }
    };
    println!(
        "  gateway log: {} WARN, {} ERROR lines{kept}",
        warn.len(),
        err.len(),
    );
    for l in err.iter().chain(warn.iter()).take(5) {
        println!("    {}", truncate(l, 300));
    }
}

/// The gateway's flush counters from `/metrics`: (flushes, requests flushed, flush seconds).
async fn flush_counters(client: &reqwest::Client, base: &str) -> Option<(f64, f64, f64)> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    Some((
        value("sluice_flushes_total")?,
        value("sluice_flush_requests_total")?,
        value("sluice_flush_duration_seconds_sum")?,
    ))
}

fn print_flushes(before: Option<(f64, f64, f64)>, after: Option<(f64, f64, f64)>, secs: f64) {
    if let (Some(b), Some(a)) = (before, after) {
        let flushes = a.0 - b.0;
        println!(
            "  {:<30} gateway: {flushes:.0} flushes ({:.0}/s), {:.1} produce requests per flush, mean flush (segment PUT to commit) {:.1} ms",
            "",
            flushes / secs.max(1e-9),
            (a.1 - b.1) / flushes.max(1.0),
            1000.0 * (a.2 - b.2) / flushes.max(1.0),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Producers

/// What a producer, a reader, or a whole phase counted.
#[derive(Default)]
pub(crate) struct Tally {
    pub records: u64,
    pub bytes: u64,
    pub requests: u64,
    /// Ack latency (producers) or send → receive per record (readers).
    pub acks: Latencies,
    /// Readers: duration of the long-polls that returned records.
    pub reads: Latencies,
    pub errors: u64,
    pub error_samples: Vec<String>,
}

impl Tally {
    pub fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.error_samples.len() < KEEP_ERRORS {
            self.error_samples.push(msg);
        }
    }
    pub fn merge(&mut self, o: Tally) {
        self.records += o.records;
        self.bytes += o.bytes;
        self.requests += o.requests;
        self.acks.extend(o.acks);
        self.reads.extend(o.reads);
        self.errors += o.errors;
        for m in o.error_samples {
            if self.error_samples.len() < 2 * KEEP_ERRORS && !self.error_samples.contains(&m) {
                self.error_samples.push(m);
            }
        }
    }
}

pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let _ = write!(s, ": {c}");
        src = c.source();
    }
    s
}

pub(crate) struct Shape {
    pub batch: usize,
    pub record_bytes: usize,
    /// Keys are drawn among this many (more than the partitions, for every partition to get
    /// records).
    pub keys: u64,
    filler: String,
    /// Every record gets its own random filler (incompressible but for the alphabet's 6 bits
    /// per byte) instead of the shared `x…x`, so no store gains from compressing the load.
    random: bool,
}

impl Shape {
    fn new(args: &Args) -> Self {
        Self::with(args.batch, args.record_bytes, false)
    }
    pub(crate) fn with(batch: usize, record_bytes: usize, random: bool) -> Self {
        let record_bytes = record_bytes.max(STAMP);
        Self {
            batch: batch.max(1),
            record_bytes,
            keys: KEYS,
            filler: "x".repeat(record_bytes - STAMP),
            random,
        }
    }
    /// The same shape with keys drawn among `keys` (at least [`KEYS`]).
    pub(crate) fn with_keys(mut self, keys: u64) -> Self {
        self.keys = keys.max(KEYS);
        self
    }
    pub(crate) fn request_bytes(&self) -> u64 {
        (self.batch * self.record_bytes) as u64
    }
}

pub(crate) fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// The value alphabet of random fillers: JSON-safe, 64 symbols (6 bits per byte).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Appends a value of `len` bytes: `sent_ns` as [`STAMP`] zero-padded digits, then random
/// symbols of [`ALPHABET`]. Every benchmarked system gets values made by this function.
pub(crate) fn push_value(out: &mut String, sent_ns: u128, len: usize, rng: &mut u64) {
    let _ = write!(out, "{sent_ns:0w$}", w = STAMP);
    let mut left = len.saturating_sub(STAMP);
    while left > 0 {
        let mut r = xorshift(rng);
        for _ in 0..left.min(10) {
            out.push(ALPHABET[(r & 63) as usize] as char);
            r >>= 6;
        }
        left = left.saturating_sub(10);
    }
}

/// The send time [`push_value`] put at the start of a value.
pub(crate) fn value_stamp(value: &[u8]) -> Option<u128> {
    std::str::from_utf8(value.get(..STAMP)?).ok()?.parse().ok()
}

/// A produce body of `shape.batch` records whose values start with `sent_ns`.
fn produce_body(shape: &Shape, rng: &mut u64, sent_ns: u128) -> String {
    let mut b = String::with_capacity(16 + shape.batch * (shape.record_bytes + 40));
    b.push_str("{\"records\":[");
    for i in 0..shape.batch {
        if i > 0 {
            b.push(',');
        }
        let key = xorshift(rng) % shape.keys;
        if shape.random {
            let _ = write!(b, "{{\"key\":\"k{key}\",\"value\":\"");
            push_value(&mut b, sent_ns, shape.record_bytes, rng);
            b.push_str("\"}");
        } else {
            let _ = write!(
                b,
                "{{\"key\":\"k{key}\",\"value\":\"{sent_ns:0w$}{}\"}}",
                shape.filler,
                w = STAMP
            );
        }
    }
    b.push_str("]}");
    b
}

/// Paces a producer: one send per `interval`, the first `phase` from now; a producer that
/// falls more than one interval behind skips ahead rather than bursting. Without a pace,
/// [`Pacer::wait`] returns at once (back to back).
pub(crate) struct Pacer {
    next: Option<(tokio::time::Instant, Duration)>,
}

impl Pacer {
    /// The pace (interval, phase) of producer `i` of `producers` that together offer `rate`
    /// bytes/s in requests of `request_bytes`: one request per interval each, their first
    /// sends spread over one interval.
    pub(crate) fn pace(
        i: usize,
        producers: usize,
        request_bytes: f64,
        rate: f64,
    ) -> (Duration, Duration) {
        let n = producers.max(1);
        let interval = Duration::from_secs_f64(request_bytes * n as f64 / rate.max(1.0));
        (interval, interval.mul_f64(i as f64 / n as f64))
    }

    /// `pace`: (interval, phase).
    pub(crate) fn new(pace: Option<(Duration, Duration)>) -> Self {
        Self {
            next: pace.map(|(interval, phase)| (tokio::time::Instant::now() + phase, interval)),
        }
    }

    /// Until the next send is due.
    pub(crate) async fn wait(&mut self) {
        if let Some((n, interval)) = self.next.as_mut() {
            tokio::time::sleep_until(*n).await;
            let now = tokio::time::Instant::now();
            *n += *interval;
            if *n + *interval < now {
                *n = now;
            }
        }
    }
}

/// One producer: posts batches until `deadline`, back to back or paced at one request per
/// `interval` (a producer that falls more than one interval behind skips ahead rather than
/// bursting; the achieved rate is printed).
async fn producer(
    client: reqwest::Client,
    urls: Arc<[String]>,
    shape: Arc<Shape>,
    start: Instant,
    deadline: Instant,
    pace: Option<(Duration, Duration)>,
    seed: u64,
) -> Tally {
    let mut t = Tally::default();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    // Picks the target of each request when there are several (its own sequence, so that a
    // single target sends the same bodies as before).
    let mut pick = seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
    let mut pacer = Pacer::new(pace);
    loop {
        pacer.wait().await;
        if Instant::now() >= deadline {
            break;
        }
        let sent = start.elapsed().as_nanos();
        let body = produce_body(&shape, &mut rng, sent);
        let url = match urls.len() {
            1 => &urls[0],
            n => &urls[(xorshift(&mut pick) % n as u64) as usize],
        };
        let t0 = Instant::now();
        let r = client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        t.requests += 1;
        let mut retry_after = None;
        let failed = match r {
            Ok(resp) => {
                let status = resp.status();
                // Well-behaved producers wait as told when the gateway sheds load.
                retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                match resp.bytes().await {
                    Ok(_) if status.as_u16() == 200 => {
                        t.acks.push(t0.elapsed());
                        t.records += shape.batch as u64;
                        t.bytes += shape.request_bytes();
                        false
                    }
                    Ok(body) => {
                        t.error(format!(
                            "HTTP {status}: {}",
                            truncate(&String::from_utf8_lossy(&body), 200)
                        ));
                        true
                    }
                    Err(e) => {
                        t.error(format!("reading the answer: {}", error_chain(&e)));
                        true
                    }
                }
            }
            Err(e) => {
                t.error(error_chain(&e));
                true
            }
        };
        if failed && pace.is_none() {
            let wait = retry_after.unwrap_or(Duration::from_millis(10));
            tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
    t
}

pub(crate) struct Phase {
    pub tally: Tally,
    pub elapsed: Duration,
}

/// What a produce phase measured, as numbers (the curves plot them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Figures {
    pub records_per_s: f64,
    pub mib_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub requests: u64,
    pub errors: u64,
}

impl Phase {
    /// Acknowledged records per second, MiB/s of values, ack latency quantiles.
    pub(crate) fn figures(&mut self, record_bytes: usize) -> Figures {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let t = &mut self.tally;
        Figures {
            records_per_s: t.records as f64 / secs,
            mib_per_s: mib(t.records * record_bytes as u64) / secs,
            p50_ms: t.acks.quantile_ms(0.5),
            p99_ms: t.acks.quantile_ms(0.99),
            max_ms: t.acks.quantile_ms(1.0),
            requests: t.requests,
            errors: t.errors,
        }
    }
}

/// `producers` producers against `url` for `seconds`; `rate` (bytes/s over all) paces them.
pub(crate) async fn run_producers(
    client: &reqwest::Client,
    url: &str,
    shape: &Arc<Shape>,
    producers: usize,
    seconds: f64,
    rate: Option<f64>,
    start: Instant,
) -> Phase {
    let urls: Arc<[String]> = Arc::from(vec![url.to_string()]);
    run_producers_to(client, urls, shape, producers, seconds, rate, start).await
}

/// [`run_producers`] over several targets: each request goes to one of `urls` at random.
pub(crate) async fn run_producers_to(
    client: &reqwest::Client,
    urls: Arc<[String]>,
    shape: &Arc<Shape>,
    producers: usize,
    seconds: f64,
    rate: Option<f64>,
    start: Instant,
) -> Phase {
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..producers)
        .map(|i| {
            let pace = rate.map(|r| Pacer::pace(i, producers, shape.request_bytes() as f64, r));
            tokio::spawn(producer(
                client.clone(),
                urls.clone(),
                shape.clone(),
                start,
                deadline,
                pace,
                i as u64 + 1,
            ))
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

fn print_produce(label: &str, p: &mut Phase, record_bytes: usize) {
    let f = p.figures(record_bytes);
    println!(
        "  {label:<30} {:>9.0} rec/s {:>7.1} MiB/s   ack p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.1} ms   [{} requests, {} errors]",
        f.records_per_s, f.mib_per_s, f.p50_ms, f.p99_ms, f.max_ms, f.requests, f.errors,
    );
    for m in &p.tally.error_samples {
        println!("    error: {m}");
    }
}

// ---------------------------------------------------------------------------------------------
// Readers

#[derive(Deserialize)]
struct ReadAnswer {
    records: Vec<ReadRecord>,
    next_offset: u64,
}

#[derive(Deserialize)]
struct ReadRecord {
    value: Option<String>,
}

#[derive(Deserialize)]
struct TopicDetail {
    partition_info: Vec<PartitionInfo>,
}

#[derive(Deserialize)]
struct PartitionInfo {
    partition: u32,
    next_offset: u64,
}

/// Every partition's next offset.
pub(crate) async fn end_offsets(client: &reqwest::Client, base: &str) -> Result<Vec<u64>, String> {
    let resp = client
        .get(format!("{base}/v1/topics/bench"))
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| error_chain(&e))?;
    if !status.is_success() {
        return Err(format!(
            "GET /v1/topics/bench: HTTP {status}: {}",
            truncate(&String::from_utf8_lossy(&body), 200)
        ));
    }
    let d: TopicDetail = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let mut ends = vec![0; d.partition_info.len()];
    for p in d.partition_info {
        if let Some(e) = ends.get_mut(p.partition as usize) {
            *e = p.next_offset;
        }
    }
    Ok(ends)
}

/// Follows one partition from `from` with long-polls, measuring send → receive per record,
/// until `targets` is set and reached or `hard_deadline` passes.
pub(crate) async fn reader(
    client: reqwest::Client,
    base: Arc<str>,
    partition: u32,
    from: u64,
    start: Instant,
    mut targets: watch::Receiver<Option<Vec<u64>>>,
    hard_deadline: Instant,
) -> Tally {
    let mut t = Tally::default();
    let mut next = from;
    loop {
        let target = targets
            .borrow()
            .as_ref()
            .map(|v| v.get(partition as usize).copied().unwrap_or(0));
        if let Some(target) = target {
            if next >= target || Instant::now() >= hard_deadline {
                break;
            }
        }
        let t0 = Instant::now();
        let request = client
            .get(format!(
                "{base}/v1/topics/bench/partitions/{partition}/records?offset={next}&limit=1000&wait_ms={WAIT_MS}"
            ))
            .timeout(Duration::from_millis(WAIT_MS + 10_000))
            .send();
        let resp = if target.is_none() {
            tokio::select! {
                r = request => r,
                // The producers stopped: look at the target before waiting any longer.
                _ = targets.changed() => continue,
            }
        } else {
            request.await
        };
        t.requests += 1;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                t.error(error_chain(&e));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let status = resp.status();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                t.error(format!("reading the answer: {}", error_chain(&e)));
                continue;
            }
        };
        let received = start.elapsed().as_nanos();
        if status.as_u16() != 200 {
            t.error(format!(
                "HTTP {status}: {}",
                truncate(&String::from_utf8_lossy(&body), 200)
            ));
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let answer: ReadAnswer = match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => {
                t.error(format!("bad read answer: {e}"));
                continue;
            }
        };
        if !answer.records.is_empty() {
            t.reads.push(t0.elapsed());
        }
        for r in &answer.records {
            t.records += 1;
            let sent = r
                .value
                .as_deref()
                .and_then(|v| v.get(..STAMP))
                .and_then(|s| s.parse::<u128>().ok());
            match sent {
                Some(s) if s <= received => t.acks.push(Duration::from_nanos(
                    (received - s).min(u64::MAX as u128) as u64,
                )),
                _ => t.error("a record without a send timestamp".into()),
            }
        }
        if answer.next_offset < next {
            t.error(format!(
                "next_offset went back from {next} to {}",
                answer.next_offset
            ));
        }
        next = answer.next_offset.max(next);
    }
    t
}

// ---------------------------------------------------------------------------------------------
// The ceiling: HTTP + JSON, no storage

/// The gateway's record shape, parsed the same way (owned strings, unknown fields refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CeilingRecord {
    key: Option<String>,
    key_b64: Option<String>,
    value: Option<String>,
    value_b64: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    partition: Option<u32>,
    timestamp_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CeilingBody {
    records: Vec<CeilingRecord>,
}

async fn ceiling_produce(body: Bytes) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    match serde_json::from_slice::<CeilingBody>(&body) {
        Ok(b) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"records\":{}}}", b.records.len()),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn ceiling(
    client: &reqwest::Client,
    args: &Args,
    shape: &Arc<Shape>,
    start: Instant,
) -> Result<Phase, String> {
    ceiling_at(client, shape, args.producers, args.seconds, start).await
}

/// The HTTP + JSON ceiling (an in-process server that parses the bodies and stores nothing)
/// driven by `producers` producers for `seconds`.
pub(crate) async fn ceiling_at(
    client: &reqwest::Client,
    shape: &Arc<Shape>,
    producers: usize,
    seconds: f64,
    start: Instant,
) -> Result<Phase, String> {
    let app = axum::Router::new()
        .route(
            "/v1/topics/bench/records",
            axum::routing::post(ceiling_produce),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let phase = run_producers(
        client,
        &format!("http://{addr}/v1/topics/bench/records"),
        shape,
        producers,
        seconds,
        None,
        start,
    )
    .await;
    server.abort();
    Ok(phase)
}

// ---------------------------------------------------------------------------------------------
// One backend

pub(crate) async fn create_topic(
    client: &reqwest::Client,
    base: &str,
    partitions: u32,
) -> Result<(), String> {
    create_named_topic(client, base, "bench", partitions).await
}

/// `POST /v1/topics` of `name` (an existing one is fine).
pub(crate) async fn create_named_topic(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    partitions: u32,
) -> Result<(), String> {
    let resp = client
        .post(format!("{base}/v1/topics"))
        .json(&serde_json::json!({"name": name, "partitions": partitions}))
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = resp.status();
    if status.as_u16() == 201 || status.as_u16() == 409 {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(format!(
        "POST /v1/topics: HTTP {status}: {}",
        truncate(&body, 300)
    ))
}

#[allow(clippy::too_many_arguments)]
async fn run_backend(
    backend: &str,
    bin: &Path,
    args: &Args,
    dir: &Path,
    client: &reqwest::Client,
    shape: &Arc<Shape>,
    start: Instant,
    ceiling: Option<&Phase>,
) -> Result<f64, String> {
    let run_id = sluice_core::ids::new_ulid(clock::system().now_ms()).to_string();
    let mut gw = spawn_gateway(bin, backend, &args.opts(), dir, &run_id)?;
    let r = measure(
        backend, &mut gw, args, client, shape, start, ceiling, &run_id,
    )
    .await;
    if let Ok(Some(status)) = gw.child.try_wait() {
        println!("  the gateway has exited: {status}");
    }
    let log = gw.log.clone();
    drop(gw);
    print_log_summary(&log);
    r
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    backend: &str,
    gw: &mut Gateway,
    args: &Args,
    client: &reqwest::Client,
    shape: &Arc<Shape>,
    start: Instant,
    ceiling: Option<&Phase>,
    run_id: &str,
) -> Result<f64, String> {
    let pid = gw.pid();
    let ready = wait_healthy(gw, client).await?;
    let base = gw.base.clone();
    match backend {
        "dev" => println!(
            "backend dev (sluice dev on a temp folder, fsync on, pid {pid}, {base}, healthy after {} ms):",
            ready.as_millis()
        ),
        "dev-nofsync" => println!(
            "backend dev-nofsync (sluice dev --no-fsync on a temp folder, pid {pid}, {base}, healthy after {} ms):",
            ready.as_millis()
        ),
        _ => println!(
            "backend s3 (sluice gateway --with-compactor on s3://{}/bench-{run_id} at {}, pid {pid}, healthy after {} ms):",
            args.bucket,
            args.endpoint.as_deref().unwrap_or_default(),
            ready.as_millis()
        ),
    }
    create_topic(client, &base, args.partitions).await?;
    print_rss("idle, topic created", pid);

    // Throughput: back to back.
    let url = format!("{base}/v1/topics/bench/records?ack=durable");
    let m0 = flush_counters(client, &base).await;
    let mut tp = run_producers(
        client,
        &url,
        shape,
        args.producers,
        args.seconds,
        None,
        start,
    )
    .await;
    print_produce(
        &format!("sluice: {} producers", args.producers),
        &mut tp,
        shape.record_bytes,
    );
    let m1 = flush_counters(client, &base).await;
    print_flushes(m0, m1, tp.elapsed.as_secs_f64());
    print_rss("after the throughput phase", pid);
    let ends = end_offsets(client, &base).await?;
    let stored: u64 = ends.iter().sum();
    println!(
        "  {:<30} {} records acked, the topic holds {stored}{}",
        "check",
        tp.tally.records,
        if stored < tp.tally.records {
            "  <-- FEWER than acked"
        } else {
            ""
        }
    );
    if let Some(c) = ceiling {
        let s = tp.tally.records as f64 / tp.elapsed.as_secs_f64();
        let c = c.tally.records as f64 / c.elapsed.as_secs_f64();
        println!("  sluice / ceiling: {:.0}%", 100.0 * s / c.max(1e-9));
    }

    // Fixed rate, with a long-polling reader per partition.
    let FixedRate {
        phase: mut fr,
        mut e2e,
        targets,
        drained,
    } = fixed_rate(
        client,
        &base,
        &url,
        shape,
        args.producers,
        args.seconds,
        args.rate_mib * 1024.0 * 1024.0,
        start,
        &ends,
        DRAIN,
    )
    .await?;
    let m2 = flush_counters(client, &base).await;
    print_produce(
        &format!("sluice: offered {} MiB/s", args.rate_mib),
        &mut fr,
        shape.record_bytes,
    );
    print_flushes(m1, m2, fr.elapsed.as_secs_f64());
    let expected: u64 = targets.iter().zip(&ends).map(|(t, e)| t - e).sum();
    println!(
        "  {:<30} end-to-end p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.1} ms   [{} of {expected} records read by {} long-poll readers in {} requests, {} errors; drained {} ms after the producers stopped]",
        "",
        e2e.acks.quantile_ms(0.5),
        e2e.acks.quantile_ms(0.99),
        e2e.acks.quantile_ms(1.0),
        e2e.records,
        ends.len(),
        e2e.requests,
        e2e.errors,
        drained.as_millis(),
    );
    if e2e.records < expected {
        println!(
            "  {:<30} INCOMPLETE: the readers had not caught up {} s after the producers stopped; the {} unread records are not in the percentiles (their latency is higher still)",
            "",
            DRAIN.as_secs(),
            expected - e2e.records,
        );
    }
    println!(
        "  {:<30} long-polls that returned records: p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.1} ms, {:.0} records per answer",
        "",
        e2e.reads.quantile_ms(0.5),
        e2e.reads.quantile_ms(0.99),
        e2e.reads.quantile_ms(1.0),
        e2e.records as f64 / e2e.reads.len().max(1) as f64,
    );
    for m in &e2e.error_samples {
        println!("    reader error: {m}");
    }
    print_rss("after the fixed-rate phase", pid);
    Ok(tp.tally.records as f64 / tp.elapsed.as_secs_f64().max(1e-9))
}

/// What [`fixed_rate`] measured.
pub(crate) struct FixedRate {
    pub phase: Phase,
    /// Send → receipt per record read.
    pub e2e: Tally,
    /// The partitions' end offsets once the producers had stopped.
    pub targets: Vec<u64>,
    /// How long the readers took after the producers stopped.
    pub drained: Duration,
}

/// Producers paced to `rate` bytes/s of values for `seconds`, and a long-poll reader per
/// partition from `ends` until it has read to the end offsets after the producers stopped (or
/// `drain` after that).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fixed_rate(
    client: &reqwest::Client,
    base: &str,
    url: &str,
    shape: &Arc<Shape>,
    producers: usize,
    seconds: f64,
    rate: f64,
    start: Instant,
    ends: &[u64],
    drain: Duration,
) -> Result<FixedRate, String> {
    let (tx, rx) = watch::channel(None);
    let base_arc: Arc<str> = base.into();
    let hard_deadline = Instant::now() + Duration::from_secs_f64(seconds) + drain;
    let readers: Vec<_> = ends
        .iter()
        .enumerate()
        .map(|(p, &from)| {
            tokio::spawn(reader(
                client.clone(),
                base_arc.clone(),
                p as u32,
                from,
                start,
                rx.clone(),
                hard_deadline,
            ))
        })
        .collect();
    let phase = run_producers(client, url, shape, producers, seconds, Some(rate), start).await;
    let drain_start = Instant::now();
    let targets = end_offsets(client, base).await?;
    let _ = tx.send(Some(targets.clone()));
    let mut e2e = Tally::default();
    for r in readers {
        match r.await {
            Ok(t) => e2e.merge(t),
            Err(e) => e2e.error(format!("reader task: {e}")),
        }
    }
    Ok(FixedRate {
        phase,
        e2e,
        targets,
        drained: drain_start.elapsed(),
    })
}

/// The backends of round `round`: as given in even rounds, reversed in odd ones, so neither
/// side of a paired comparison always runs first (a VM disk's burst allowance and the page
/// cache favour whoever does).
fn round_order(backends: &[String], round: usize) -> Vec<&String> {
    let mut order: Vec<&String> = backends.iter().collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// The summary of several rounds: each backend's throughput per round and median, and, with
/// both `dev` and `dev-nofsync`, fsync ÷ no-fsync per round and the median of those ratios
/// (issue 9, point 1: at least 80%).
fn format_rounds(results: &[(usize, String, f64)], rounds: usize) -> String {
    use std::fmt::Write;
    let mut out = String::from("rounds (throughput phase, records/s):\n");
    let mut backends: Vec<&str> = Vec::new();
    for (_, b, _) in results {
        if !backends.contains(&b.as_str()) {
            backends.push(b);
        }
    }
    let rate = |round: usize, backend: &str| {
        results
            .iter()
            .find(|(r, b, _)| *r == round && b == backend)
            .map(|(_, _, x)| *x)
    };
    for b in &backends {
        let per: Vec<f64> = (0..rounds).filter_map(|r| rate(r, b)).collect();
        let cells: Vec<String> = per.iter().map(|x| format!("{x:.0}")).collect();
        let _ = writeln!(
            out,
            "  {b:<12} {}   median {:.0}",
            cells.join("  "),
            median(per)
        );
    }
    if backends.contains(&"dev") && backends.contains(&"dev-nofsync") {
        let ratios: Vec<f64> = (0..rounds)
            .filter_map(|r| Some(rate(r, "dev")? / rate(r, "dev-nofsync")?))
            .collect();
        let cells: Vec<String> = ratios
            .iter()
            .map(|x| format!("{:.0}%", 100.0 * x))
            .collect();
        let m = median(ratios);
        let _ = writeln!(
            out,
            "  fsync / no-fsync per round: {}   median {:.0}% (target >= 80%: {})",
            cells.join("  "),
            100.0 * m,
            if m >= 0.8 { "MET" } else { "NOT MET" }
        );
    }
    out
}

pub async fn run(args: Args) {
    let shape = Arc::new(Shape::new(&args));
    println!(
        "sluice-bench http: {} producers x {}-record JSON batches of {} B values (ack=durable), topic of {} partitions, {} s per run; fixed rate {} MiB/s with a long-poll reader per partition",
        args.producers, shape.batch, shape.record_bytes, args.partitions, args.seconds, args.rate_mib
    );
    let Some((client, dir)) = crate::stats::client_and_dir() else {
        return;
    };
    let start = Instant::now();

    println!("baseline: HTTP + JSON ceiling (in-process axum + serde_json parse of the same bodies, nothing stored):");
    let ceiling = match ceiling(&client, &args, &shape, start).await {
        Ok(mut c) => {
            print_produce(
                &format!("ceiling: {} producers", args.producers),
                &mut c,
                shape.record_bytes,
            );
            Some(c)
        }
        Err(e) => {
            println!("  ceiling: failed: {e}");
            None
        }
    };

    let bin = sluice_bin(args.sluice_bin.as_ref());
    // (round, backend, throughput-phase records/s)
    let mut results: Vec<(usize, String, f64)> = Vec::new();
    for round in 0..args.rounds.max(1) {
        if args.rounds > 1 {
            println!("round {} of {}:", round + 1, args.rounds);
        }
        for backend in round_order(&args.backends, round) {
            if backend == "s3" && args.endpoint.is_none() {
                println!("backend s3: skipped, no --endpoint / SLUICE_TEST_S3_ENDPOINT given");
                continue;
            }
            let bin = match &bin {
                Ok(b) => b,
                Err(e) => {
                    println!("backend {backend}: skipped, {e}");
                    continue;
                }
            };
            // The run before (`--no-fsync` above all) may have left gigabytes of dirty pages
            // whose writeback would slow this run's fsyncs: start each backend with them
            // written.
            flush_page_cache();
            match run_backend(
                backend,
                bin,
                &args,
                dir.path(),
                &client,
                &shape,
                start,
                ceiling.as_ref(),
            )
            .await
            {
                Ok(rate) => results.push((round, backend.clone(), rate)),
                Err(e) => println!("backend {backend}: failed: {e}"),
            }
        }
    }
    if args.rounds > 1 {
        print!("{}", format_rounds(&results, args.rounds));
    }
    println!(
        "targets (issue #4): dev 16 producers >= 150,000 rec/s durable; at 10 MiB/s ack p99 <= 50 ms, e2e p99 <= 100 ms; RSS <= 256 MiB; peer on object storage measured here earlier: ~89,000 rec/s, ack p99 124 ms at 10 MiB/s"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_rounds_run_the_backends_in_reverse() {
        let b = vec!["dev".to_string(), "dev-nofsync".to_string()];
        assert_eq!(round_order(&b, 0), vec![&b[0], &b[1]]);
        assert_eq!(round_order(&b, 1), vec![&b[1], &b[0]]);
    }

    #[test]
    fn rounds_print_the_median_ratio_of_pairs() {
        let r = |round, b: &str, x| (round, b.to_string(), x);
        let results = vec![
            r(0, "dev", 80.0),
            r(0, "dev-nofsync", 100.0),
            r(1, "dev-nofsync", 100.0),
            r(1, "dev", 60.0),
            r(2, "dev", 90.0),
            r(2, "dev-nofsync", 100.0),
        ];
        let out = format_rounds(&results, 3);
        assert!(out.contains("dev          80  60  90   median 80"), "{out}");
        assert!(
            out.contains("80%  60%  90%   median 80% (target >= 80%: MET)"),
            "{out}"
        );
        // A round where one side failed has no ratio.
        let out = format_rounds(&results[..5], 3);
        assert!(out.contains("median 70% (target >= 80%: NOT MET)"), "{out}");
    }
}
