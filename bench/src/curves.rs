//! `sluice-bench curves`: scaling curves (issue 17, point 3), printed as tables and drawn as PNG
//! plots. Each sweep runs against one `sluice dev` process (local folder, fsync on) with the
//! producers of `sluice-bench http` (JSON batches, `ack=durable`, random-symbol values):
//!
//! - producers 1, 4, 16, 64 on one topic of 8 partitions, next to the HTTP + JSON ceiling at the
//!   same producer count (in-process server that stores nothing: `http_bench::ceiling_at`);
//! - partitions 1 … 1,000 of one topic, 16 producers;
//! - topics 10 … 100,000 of one partition each, 16 producers, every request to a random topic,
//!   with the compactor's PUTs per minute for the same topic counts from the in-memory model of
//!   `sluice-bench topics` (`topics_bench::run_one`).
//!
//! Every point is two phases: back to back (the throughput, and the latency of a saturated
//! gateway) and then a fixed offered rate, the same total load for every point of every sweep
//! (the latency at equal load). The first point of each sweep is its baseline; the check
//! for topics (100,000 topics within 1.2× of 10 topics' p99 at the same total load) is printed
//! as a figure. Nothing here passes or fails on a timing.

use crate::http_bench::{self, Figures, Gateway, GatewayOpts, Shape};
use crate::topics_bench;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Sweeps to run: producers, partitions, topics.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "producers,partitions,topics"
    )]
    sweeps: Vec<String>,
    /// Producer counts of the producer sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    producers: Vec<usize>,
    /// Partition counts of the partition sweep (one topic each).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    partitions: Vec<u32>,
    /// Topic counts of the topic sweep (one partition each, created cumulatively, ascending).
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000,100000")]
    topics: Vec<usize>,
    /// Seconds of each phase of a point (back to back, then fixed rate).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Offered load of the fixed-rate phase, MiB/s of values over all producers (the same for
    /// every point).
    #[arg(long, default_value_t = 10.0)]
    rate_mib: f64,
    /// Producers of the partition and topic sweeps.
    #[arg(long, default_value_t = 16)]
    sweep_producers: usize,
    /// Partitions of the topic of the producer sweep.
    #[arg(long, default_value_t = 8)]
    base_partitions: u32,
    /// Records per produce request.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Topics created at once while setting up the topic sweep.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Simulated seconds of the compactor model (`sluice-bench topics`) per topic count; 0
    /// skips it.
    #[arg(long, default_value_t = 10)]
    model_seconds: u64,
    /// Folder for the PNG plots (`producers.png`, `partitions.png`, `topics.png`).
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// Print the tables only.
    #[arg(long)]
    no_plots: bool,
    /// The `sluice` binary (default: `sluice` next to this executable).
    #[arg(long)]
    sluice_bin: Option<PathBuf>,
    /// `--linger-ms` for the gateway (default: the gateway's own default).
    #[arg(long)]
    linger_ms: Option<u64>,
}

/// One point of a curve.
#[derive(Clone, Debug, Default)]
pub(crate) struct Point {
    pub x: f64,
    /// Back to back.
    pub saturated: Figures,
    /// At the fixed offered rate.
    pub fixed: Figures,
    /// Producer sweep: the HTTP + JSON ceiling with as many producers.
    pub ceiling: Option<Figures>,
    /// Topic sweep: the compactor's PUTs per minute in the in-memory model.
    pub model_puts_per_min: Option<f64>,
}

// ---------------------------------------------------------------------------------------------
// Pure helpers (unit-tested)

/// Each value divided by the first (NaN where the first is zero or not finite).
pub(crate) fn ratio_to_first(values: &[f64]) -> Vec<f64> {
    let first = values.first().copied().unwrap_or(f64::NAN);
    values
        .iter()
        .map(|v| {
            if first.is_finite() && first != 0.0 {
                v / first
            } else {
                f64::NAN
            }
        })
        .collect()
}

/// The last value over the first, if both are finite and the first is not zero.
pub(crate) fn last_over_first(values: &[f64]) -> Option<f64> {
    let r = *ratio_to_first(values).last()?;
    r.is_finite().then_some(r)
}

/// A count as an axis label: 1, 10, 100, 1k, 10k, 100k, 1M (others with one decimal).
pub(crate) fn fmt_count(x: f64) -> String {
    let (v, unit) = if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    if (v - v.round()).abs() < 1e-9 {
        format!("{}{unit}", v.round() as i64)
    } else {
        format!("{v:.1}{unit}")
    }
}

/// The top of a linear y axis from 0 that shows every finite value with some headroom.
pub(crate) fn y_top(values: impl IntoIterator<Item = f64>) -> f64 {
    let max = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if max > 0.0 {
        max * 1.15
    } else {
        1.0
    }
}

/// The x range of a log axis that holds every x, a bit wider than them on both sides.
pub(crate) fn log_x_range(xs: &[f64]) -> (f64, f64) {
    let lo = xs
        .iter()
        .copied()
        .filter(|x| *x > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(0.0f64, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return (1.0, 10.0);
    }
    let (lo, hi) = (lo / 1.5, hi * 1.5);
    if hi / lo < 10.0 {
        (lo, lo * 10.0)
    } else {
        (lo, hi)
    }
}

// ---------------------------------------------------------------------------------------------
// Running the sweeps

struct Ctx<'a> {
    args: &'a Args,
    client: reqwest::Client,
    dir: &'a Path,
    bin: PathBuf,
    start: Instant,
}

impl Ctx<'_> {
    fn rate(&self) -> f64 {
        self.args.rate_mib * 1024.0 * 1024.0
    }

    fn shape(&self) -> Shape {
        Shape::with(self.args.batch, self.args.record_bytes, true)
    }

    async fn gateway(&self, label: &str) -> Result<Gateway, String> {
        let now = sluice_core::clock::system().now_ms();
        let run_id = format!("{label}-{}", sluice_core::ids::new_ulid(now));
        let opts = GatewayOpts {
            endpoint: None,
            bucket: "",
            linger_ms: self.args.linger_ms,
            max_pending_mib: None,
        };
        let mut gw = http_bench::spawn_gateway(&self.bin, "dev", &opts, self.dir, &run_id)?;
        http_bench::wait_healthy(&mut gw, &self.client).await?;
        Ok(gw)
    }

    /// A point: back to back, then at the fixed rate, against `urls`.
    async fn point(
        &self,
        x: f64,
        urls: &Arc<[String]>,
        shape: &Arc<Shape>,
        producers: usize,
    ) -> Point {
        let a = self.args;
        let mut sat = http_bench::run_producers_to(
            &self.client,
            urls.clone(),
            shape,
            producers,
            a.seconds,
            None,
            self.start,
        )
        .await;
        let mut fixed = http_bench::run_producers_to(
            &self.client,
            urls.clone(),
            shape,
            producers,
            a.seconds,
            Some(self.rate()),
            self.start,
        )
        .await;
        for m in sat
            .tally
            .error_samples
            .iter()
            .chain(&fixed.tally.error_samples)
        {
            println!("    error: {m}");
        }
        Point {
            x,
            saturated: sat.figures(shape.record_bytes),
            fixed: fixed.figures(shape.record_bytes),
            ..Default::default()
        }
    }
}

fn topic_url(base: &str, topic: &str) -> String {
    format!("{base}/v1/topics/{topic}/records?ack=durable")
}

fn print_header(x_name: &str, extra: &str) {
    println!(
        "  {x_name:>10} | {:>9} {:>7} {:>8} {:>8} {:>7} | {:>9} {:>8} {:>8} {:>7} | {:>6}{extra}",
        "rec/s",
        "MiB/s",
        "p50 ms",
        "p99 ms",
        "× first",
        "rec/s",
        "p50 ms",
        "p99 ms",
        "p99 ×",
        "errors",
    );
}

fn print_row(p: &Point, rec_ratio: f64, p99_ratio: f64, extra: &str) {
    println!(
        "  {:>10} | {:>9.0} {:>7.1} {:>8.2} {:>8.2} {:>7.2} | {:>9.0} {:>8.2} {:>8.2} {:>7.2} | {:>6}{extra}",
        fmt_count(p.x),
        p.saturated.records_per_s,
        p.saturated.mib_per_s,
        p.saturated.p50_ms,
        p.saturated.p99_ms,
        rec_ratio,
        p.fixed.records_per_s,
        p.fixed.p50_ms,
        p.fixed.p99_ms,
        p99_ratio,
        p.saturated.errors + p.fixed.errors,
    );
}

/// A sweep's table: the header, then one row per point with its ratios to the first point and
/// `extra(i, point)` appended.
fn print_table(
    x_name: &str,
    extra_header: &str,
    points: &[Point],
    extra: impl Fn(usize, &Point) -> String,
) {
    print_header(x_name, extra_header);
    let (rec, p99) = ratios(points);
    for (i, p) in points.iter().enumerate() {
        print_row(p, rec[i], p99[i], &extra(i, p));
    }
}

/// Ratios of a point to the sweep's first: back-to-back records/s and fixed-rate p99.
fn ratios(points: &[Point]) -> (Vec<f64>, Vec<f64>) {
    let rec: Vec<f64> = points.iter().map(|p| p.saturated.records_per_s).collect();
    let p99: Vec<f64> = points.iter().map(|p| p.fixed.p99_ms).collect();
    (ratio_to_first(&rec), ratio_to_first(&p99))
}

async fn sweep_producers(ctx: &Ctx<'_>) -> Result<Vec<Point>, String> {
    let a = ctx.args;
    let gw = ctx.gateway("producers").await?;
    let r = async {
        http_bench::create_named_topic(&ctx.client, &gw.base, "bench", a.base_partitions).await?;
        let urls: Arc<[String]> = Arc::from(vec![topic_url(&gw.base, "bench")]);
        let shape = Arc::new(ctx.shape());
        let mut points = Vec::new();
        for &n in &a.producers {
            let mut ceiling =
                http_bench::ceiling_at(&ctx.client, &shape, n, a.seconds, ctx.start).await?;
            let mut p = ctx.point(n as f64, &urls, &shape, n).await;
            p.ceiling = Some(ceiling.figures(shape.record_bytes));
            let c = p.ceiling.unwrap_or_default();
            println!(
                "    {n} producers: {:.0} rec/s back to back ({:.0}% of the ceiling's {:.0}), p99 {:.2} ms at {} MiB/s",
                p.saturated.records_per_s,
                100.0 * p.saturated.records_per_s / c.records_per_s.max(1e-9),
                c.records_per_s,
                p.fixed.p99_ms,
                a.rate_mib
            );
            points.push(p);
        }
        Ok::<_, String>(points)
    }
    .await;
    finish(gw);
    let points = r?;
    println!(
        "producers (one topic of {} partitions; back to back | at {} MiB/s offered | ceiling = HTTP + JSON, nothing stored):",
        a.base_partitions, a.rate_mib
    );
    print_table(
        "producers",
        " | ceiling rec/s  sluice/ceiling",
        &points,
        |_, p| {
            let c = p.ceiling.unwrap_or_default();
            format!(
                " | {:>13.0} {:>14.0}%",
                c.records_per_s,
                100.0 * p.saturated.records_per_s / c.records_per_s.max(1e-9)
            )
        },
    );
    Ok(points)
}

async fn sweep_partitions(ctx: &Ctx<'_>) -> Result<Vec<Point>, String> {
    let a = ctx.args;
    let gw = ctx.gateway("partitions").await?;
    let r = async {
        let mut points = Vec::new();
        for &n in &a.partitions {
            let topic = format!("p{n}");
            http_bench::create_named_topic(&ctx.client, &gw.base, &topic, n).await?;
            let urls: Arc<[String]> = Arc::from(vec![topic_url(&gw.base, &topic)]);
            // Ten keys per partition at least, so that every partition gets records.
            let shape = Arc::new(ctx.shape().with_keys(10 * n as u64));
            let p = ctx.point(n as f64, &urls, &shape, a.sweep_producers).await;
            println!(
                "    {n} partitions: {:.0} rec/s back to back, p99 {:.2} ms at {} MiB/s",
                p.saturated.records_per_s, p.fixed.p99_ms, a.rate_mib
            );
            points.push(p);
        }
        Ok::<_, String>(points)
    }
    .await;
    finish(gw);
    let points = r?;
    println!(
        "partitions (one topic, {} producers; back to back | at {} MiB/s offered):",
        a.sweep_producers, a.rate_mib
    );
    print_table("partitions", "", &points, |_, _| String::new());
    Ok(points)
}

/// Creates topics `t{from:06}` … `t{to-1:06}` (one partition each), `concurrency` at a time.
async fn create_topics(
    client: &reqwest::Client,
    base: &str,
    from: usize,
    to: usize,
    concurrency: usize,
) -> Result<(), String> {
    let mut results = futures::stream::iter(from..to)
        .map(|i| {
            let client = client.clone();
            let base = base.to_string();
            async move { http_bench::create_named_topic(&client, &base, &topic_name(i), 1).await }
        })
        .buffer_unordered(concurrency.max(1));
    let mut failed = 0usize;
    let mut first = None;
    while let Some(r) = results.next().await {
        if let Err(e) = r {
            failed += 1;
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(e) => Err(format!("{failed} topics not created, the first: {e}")),
    }
}

fn topic_name(i: usize) -> String {
    format!("t{i:06}")
}

async fn sweep_topics(ctx: &Ctx<'_>) -> Result<Vec<Point>, String> {
    let a = ctx.args;
    let mut counts = a.topics.clone();
    counts.sort_unstable();
    counts.dedup();
    let gw = ctx.gateway("topics").await?;
    let r = async {
        let shape = Arc::new(ctx.shape());
        let mut points = Vec::new();
        let mut created = 0;
        for &n in &counts {
            let began = Instant::now();
            create_topics(&ctx.client, &gw.base, created, n, a.create_concurrency).await?;
            println!(
                "    created topics {created}..{n} in {:.1} s",
                began.elapsed().as_secs_f64()
            );
            created = n;
            let urls: Arc<[String]> = (0..n)
                .map(|i| topic_url(&gw.base, &topic_name(i)))
                .collect();
            let p = ctx.point(n as f64, &urls, &shape, a.sweep_producers).await;
            println!(
                "    {n} topics: {:.0} rec/s back to back, p99 {:.2} ms at {} MiB/s",
                p.saturated.records_per_s, p.fixed.p99_ms, a.rate_mib
            );
            points.push(p);
        }
        Ok::<_, String>(points)
    }
    .await;
    finish(gw);
    let mut points = r?;
    if a.model_seconds > 0 {
        let model = topics_bench::Args::simulated(a.model_seconds);
        for p in &mut points {
            let began = Instant::now();
            let f = topics_bench::run_one(&model, p.x as usize).await;
            println!(
                "    model, {} topics: {:.0} compactor PUTs/min ({} records, {:.1} s)",
                f.topics,
                f.puts_per_min,
                f.records,
                began.elapsed().as_secs_f64()
            );
            p.model_puts_per_min = Some(f.puts_per_min);
        }
    }
    println!(
        "topics (one partition each, {} producers, each request to a random topic; back to back | at {} MiB/s offered, the same total load | compactor model: `sluice-bench topics --seconds {}`, in memory):",
        a.sweep_producers, a.rate_mib, a.model_seconds
    );
    let puts: Vec<f64> = points
        .iter()
        .map(|p| p.model_puts_per_min.unwrap_or(f64::NAN))
        .collect();
    let puts_ratio = ratio_to_first(&puts);
    print_table(
        "topics",
        " | compactor PUT/min  × first",
        &points,
        |i, _| format!(" | {:>17.0} {:>8.1}", puts[i], puts_ratio[i]),
    );
    let p99s: Vec<f64> = points.iter().map(|p| p.fixed.p99_ms).collect();
    if let (Some(first), Some(last), Some(r)) =
        (points.first(), points.last(), last_over_first(&p99s))
    {
        println!(
            "  check (issue 17): {} topics' ack p99 at the same total load is {:.2} ms, {:.2}× {} topics' {:.2} ms (target ≤ 1.2×: {})",
            fmt_count(last.x),
            last.fixed.p99_ms,
            r,
            fmt_count(first.x),
            first.fixed.p99_ms,
            if r <= 1.2 { "within" } else { "NOT within" }
        );
    }
    Ok(points)
}

/// Stops a sweep's gateway and prints what it logged.
fn finish(gw: Gateway) {
    let log = gw.log.clone();
    http_bench::print_rss("end of the sweep", gw.pid());
    drop(gw);
    http_bench::print_log_summary(&log);
}

// ---------------------------------------------------------------------------------------------
// Plots

struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    color: plotters::style::RGBColor,
}

struct Panel {
    title: String,
    y_desc: String,
    series: Vec<Series>,
}

fn series(
    label: &str,
    color: plotters::style::RGBColor,
    pts: &[Point],
    y: impl Fn(&Point) -> Option<f64>,
) -> Series {
    Series {
        label: label.to_string(),
        points: pts
            .iter()
            .filter_map(|p| y(p).filter(|v| v.is_finite()).map(|v| (p.x, v)))
            .collect(),
        color,
    }
}

fn register_font() -> Result<(), String> {
    use std::sync::OnceLock;
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            dejavu::sans::regular(),
        )
        .map_err(|_| "the bundled DejaVu Sans font did not load".to_string())
    })
    .clone()
}

/// One PNG of panels side by side, each a log-x line chart of its series.
fn draw(path: &Path, title: &str, x_desc: &str, panels: &[Panel]) -> Result<(), String> {
    use plotters::prelude::*;
    register_font()?;
    let e = |e: DrawingAreaErrorKind<_>| format!("{}: {e}", path.display());
    let width = 560 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
    let xs: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0)))
        .collect();
    let (x0, x1) = log_x_range(&xs);
    let ticks: Vec<f64> = {
        let mut t: Vec<f64> = xs.clone();
        t.sort_by(f64::total_cmp);
        t.dedup();
        t
    };
    for (area, panel) in root
        .split_evenly((1, panels.len().max(1)))
        .iter()
        .zip(panels)
    {
        let top = y_top(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|q| q.1)),
        );
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(62)
            .build_cartesian_2d(
                (x0..x1).log_scale().with_key_points(ticks.clone()),
                0f64..top,
            )
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(&panel.y_desc)
            .x_label_formatter(&|x| fmt_count(*x))
            .y_label_formatter(&|y| fmt_count(*y))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(e)?;
        for s in &panel.series {
            let color = s.color;
            chart
                .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
                .map_err(e)?
                .label(&s.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(s.points.iter().map(|&q| Circle::new(q, 3, color.filled())))
                .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

const BLUE: plotters::style::RGBColor = plotters::style::RGBColor(31, 119, 180);
const ORANGE: plotters::style::RGBColor = plotters::style::RGBColor(255, 127, 14);
const GREEN: plotters::style::RGBColor = plotters::style::RGBColor(44, 160, 44);
const RED: plotters::style::RGBColor = plotters::style::RGBColor(214, 39, 40);
const PURPLE: plotters::style::RGBColor = plotters::style::RGBColor(148, 103, 189);
const GREY: plotters::style::RGBColor = plotters::style::RGBColor(127, 127, 127);

fn throughput_panel(points: &[Point]) -> Panel {
    let mut s = vec![series("sluice dev, back to back", BLUE, points, |p| {
        Some(p.saturated.records_per_s)
    })];
    if points.iter().any(|p| p.ceiling.is_some()) {
        s.push(series(
            "HTTP + JSON ceiling (stores nothing)",
            GREY,
            points,
            |p| p.ceiling.map(|c| c.records_per_s),
        ));
    }
    Panel {
        title: "throughput (acknowledged, durable)".into(),
        y_desc: "records/s".into(),
        series: s,
    }
}

fn latency_panel(points: &[Point], rate_mib: f64) -> Panel {
    Panel {
        title: "ack latency".into(),
        y_desc: "ms".into(),
        series: vec![
            series(&format!("p99 at {rate_mib} MiB/s"), RED, points, |p| {
                Some(p.fixed.p99_ms)
            }),
            series(&format!("p50 at {rate_mib} MiB/s"), ORANGE, points, |p| {
                Some(p.fixed.p50_ms)
            }),
            series("p99 back to back", PURPLE, points, |p| {
                Some(p.saturated.p99_ms)
            }),
            series("p50 back to back", GREEN, points, |p| {
                Some(p.saturated.p50_ms)
            }),
        ],
    }
}

fn plot(args: &Args, name: &str, x_desc: &str, title: &str, points: &[Point]) {
    if args.no_plots || points.is_empty() {
        return;
    }
    let mut panels = vec![
        throughput_panel(points),
        latency_panel(points, args.rate_mib),
    ];
    if points.iter().any(|p| p.model_puts_per_min.is_some()) {
        panels.push(Panel {
            title: "compactor PUTs (in-memory model)".into(),
            y_desc: "PUTs per minute".into(),
            series: vec![series("same total load", BLUE, points, |p| {
                p.model_puts_per_min
            })],
        });
    }
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        println!("plot {name}: cannot create {}: {e}", args.out.display());
        return;
    }
    let path = args.out.join(format!("{name}.png"));
    match draw(&path, title, x_desc, &panels) {
        Ok(()) => println!("plot: {}", path.display()),
        Err(e) => println!("plot {name}: failed: {e}"),
    }
}

pub async fn run(args: Args) {
    println!(
        "sluice-bench curves: sluice dev (local folder, fsync on), {}-record JSON batches of {} B random-symbol values (ack=durable), {} s back to back then {} s at {} MiB/s per point",
        args.batch, args.record_bytes, args.seconds, args.seconds, args.rate_mib
    );
    let bin = match http_bench::sluice_bin(args.sluice_bin.as_ref()) {
        Ok(b) => b,
        Err(e) => {
            println!("{e}");
            return;
        }
    };
    let Some((client, dir)) = crate::stats::client_and_dir() else {
        return;
    };
    let ctx = Ctx {
        args: &args,
        client,
        dir: dir.path(),
        bin,
        start: Instant::now(),
    };
    let began = Instant::now();
    for sweep in &args.sweeps {
        let t0 = Instant::now();
        let r = match sweep.as_str() {
            "producers" => sweep_producers(&ctx).await.map(|p| {
                plot(
                    &args,
                    "producers",
                    "producers",
                    &format!(
                        "sluice dev: producers (one topic of {} partitions)",
                        args.base_partitions
                    ),
                    &p,
                )
            }),
            "partitions" => sweep_partitions(&ctx).await.map(|p| {
                plot(
                    &args,
                    "partitions",
                    "partitions of one topic",
                    &format!(
                        "sluice dev: partitions ({} producers)",
                        args.sweep_producers
                    ),
                    &p,
                )
            }),
            "topics" => sweep_topics(&ctx).await.map(|p| {
                plot(
                    &args,
                    "topics",
                    "topics (1 partition each)",
                    &format!(
                        "sluice dev: topics ({} producers, same total load)",
                        args.sweep_producers
                    ),
                    &p,
                )
            }),
            other => Err(format!(
                "unknown sweep {other} (producers, partitions, topics)"
            )),
        };
        match r {
            Ok(()) => println!("  ({sweep}: {:.0} s)", t0.elapsed().as_secs_f64()),
            Err(e) => println!("sweep {sweep}: failed: {e}"),
        }
    }
    println!(
        "sluice-bench curves: {:.0} s in all",
        began.elapsed().as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_to_the_first_value() {
        assert_eq!(ratio_to_first(&[2.0, 4.0, 1.0]), vec![1.0, 2.0, 0.5]);
        assert!(ratio_to_first(&[0.0, 3.0]).iter().all(|r| r.is_nan()));
        assert!(ratio_to_first(&[f64::NAN, 3.0]).iter().all(|r| r.is_nan()));
        assert!(ratio_to_first(&[]).is_empty());
    }

    #[test]
    fn last_over_first_is_the_check_figure() {
        assert_eq!(last_over_first(&[10.0, 11.0, 12.0]), Some(1.2));
        assert_eq!(last_over_first(&[5.0]), Some(1.0));
        assert_eq!(last_over_first(&[0.0, 1.0]), None);
        assert_eq!(last_over_first(&[1.0, f64::NAN]), None);
        assert_eq!(last_over_first(&[]), None);
    }

    #[test]
    fn counts_are_labelled_short() {
        assert_eq!(fmt_count(1.0), "1");
        assert_eq!(fmt_count(64.0), "64");
        assert_eq!(fmt_count(1000.0), "1k");
        assert_eq!(fmt_count(100_000.0), "100k");
        assert_eq!(fmt_count(2_500_000.0), "2.5M");
        assert_eq!(fmt_count(1500.0), "1.5k");
        assert_eq!(fmt_count(0.5), "0.5");
    }

    #[test]
    fn axes_hold_every_value() {
        assert_eq!(y_top([1.0, 10.0, f64::NAN]), 11.5);
        assert_eq!(y_top([]), 1.0);
        assert_eq!(y_top([f64::INFINITY, 0.0]), 1.0);
        let (lo, hi) = log_x_range(&[10.0, 100_000.0]);
        assert!(lo < 10.0 && hi > 100_000.0);
        // A single point still gets a decade.
        let (lo, hi) = log_x_range(&[4.0]);
        assert!(lo < 4.0 && hi > 4.0 && hi / lo >= 10.0 - 1e-9);
        assert_eq!(log_x_range(&[]), (1.0, 10.0));
    }

    #[test]
    fn a_plot_is_written_as_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        let pts: Vec<Point> = [1.0, 10.0, 100.0]
            .iter()
            .map(|&x| Point {
                x,
                saturated: Figures {
                    records_per_s: 1000.0 * x,
                    p50_ms: 1.0,
                    p99_ms: 2.0,
                    ..Default::default()
                },
                fixed: Figures {
                    p50_ms: 0.5,
                    p99_ms: 1.5,
                    ..Default::default()
                },
                ceiling: None,
                model_puts_per_min: Some(x),
            })
            .collect();
        let panels = [throughput_panel(&pts), latency_panel(&pts, 10.0)];
        draw(&path, "test", "x", &panels).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
}
