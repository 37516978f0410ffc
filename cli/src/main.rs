//! `sluice`: the one binary. `sluice dev` runs a gateway and a compactor in one process on a
//! local folder; `sluice gateway` and `sluice compactor` run them separately against any store.
//! The client commands of `cli.md` (topics, produce, consume, bench) live in [`client`].

mod client;
mod ecs;

use clap::{Args, Parser, Subcommand};
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock;
use sluice_core::delayed::mover::{Mover, MoverConfig};
use sluice_core::delayed::Delayed;
use sluice_core::log::{Log, LogConfig};
use sluice_core::store::{self, DynStore, StoreOptions};
use sluice_gateway::{AuthConfig, CommitterConfig, GatewayConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A serverless message queue on object storage"
)]
struct Cli {
    #[command(flatten)]
    global: client::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topics(client::topics::TopicsCmd),
    /// Produce one record per line of stdin or --file; prints how many were acked.
    Produce(client::produce::ProduceArgs),
    /// Print records of a topic, one value a line (json: one record object a line).
    Consume(client::consume::ConsumeArgs),
    /// Consumer groups: list, describe (lag per partition), reset committed offsets.
    #[command(subcommand)]
    Groups(client::groups::GroupsCmd),
    /// Queues: create, list, describe, redrive dead letters.
    #[command(subcommand)]
    Queues(client::queues::QueuesCmd),
    /// Delayed records: list the pending ones of a topic, cancel one before it is due.
    #[command(subcommand)]
    Delayed(client::delayed::DelayedCmd),
    /// Transactions: list the unfinished ones, describe, commit or roll back one.
    #[command(subcommand)]
    Transactions(client::transactions::TransactionsCmd),
    /// Produce and consume for a while; print throughput and latency percentiles.
    Bench(client::bench::BenchArgs),
    /// Gateway + compactor in one process on a local folder: no other service needed.
    Dev {
        /// Folder used as the bucket.
        #[arg(long, default_value = "./sluice-data", env = "SLUICE_DATA_DIR")]
        data_dir: String,
        /// Address to serve HTTP on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "SLUICE_LISTEN")]
        listen: SocketAddr,
        /// Do not fsync written objects: faster, but an OS crash or power loss may lose
        /// acknowledged records. For throwaway data only.
        #[arg(long, env = "SLUICE_NO_FSYNC")]
        no_fsync: bool,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        tuning: Tuning,
        #[command(flatten)]
        log: LogArgs,
    },
    /// A stateless HTTP gateway. Run as many as you like on one bucket.
    Gateway {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value = "127.0.0.1:8080", env = "SLUICE_LISTEN")]
        listen: SocketAddr,
        /// Also run a compactor in this process (only one is active at a time anyway).
        #[arg(long)]
        with_compactor: bool,
        #[command(flatten)]
        commit: CommitArgs,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        tuning: Tuning,
        #[command(flatten)]
        log: LogArgs,
    },
    /// The compactor: folds the journal into indexes, applies retention, collects garbage.
    Compactor {
        #[command(flatten)]
        store: StoreArgs,
        /// Pause between passes, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Lease duration in milliseconds: how long a successor waits after this instance stops
        /// renewing before it takes over.
        #[arg(long, default_value_t = 30_000)]
        lease_ms: u64,
        /// Serve this compactor's metrics (lag per shard, passes, object-store calls) at
        /// http://ADDR/metrics, e.g. 127.0.0.1:9091.
        #[arg(long, env = "SLUICE_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        #[command(flatten)]
        log: LogArgs,
    },
}

/// How server commands log (to stderr; the level comes from SLUICE_LOG, default info).
#[derive(Args, Clone, Copy, Default)]
struct LogArgs {
    /// `text` (human-readable) or `json` (one JSON object a line, with the request's span and
    /// its `request_id`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SLUICE_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Args)]
struct StoreArgs {
    /// `s3://bucket[/prefix]`, `file:///dir` (or a plain folder path), or `memory://`.
    /// S3 credentials and region come from the usual AWS environment variables.
    #[arg(long, env = "SLUICE_STORE")]
    store: String,
    /// S3-compatible endpoint, e.g. http://127.0.0.1:4566 for LocalStack.
    #[arg(long, env = "SLUICE_S3_ENDPOINT")]
    endpoint: Option<String>,
    /// Local-folder stores: do not fsync written objects. Faster, but an OS crash or power
    /// loss may lose acknowledged records. For throwaway data only.
    #[arg(long, env = "SLUICE_NO_FSYNC")]
    no_fsync: bool,
}

/// Shard committers: gateways elect one per journal shard (a lease in the bucket) and hand it
/// their commits, so a hot topic's commit rate grows with the number of gateways.
#[derive(Args)]
struct CommitArgs {
    /// URL other gateways reach this one at (default: on Amazon ECS the task's address, read
    /// from the task metadata endpoint, with the listen port; elsewhere http://LISTEN-ADDRESS,
    /// unless that is 0.0.0.0 / [::], which other machines cannot use: then give it).
    #[arg(long, env = "SLUICE_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Commit directly to the journal; never act as, or hand commits to, a shard committer.
    #[arg(long, env = "SLUICE_NO_COMMITTER")]
    no_committer: bool,
    /// Committer lease duration in milliseconds: a committer that stops is replaced after it.
    #[arg(long, default_value_t = 3000, env = "SLUICE_COMMITTER_LEASE_MS")]
    committer_lease_ms: u64,
}

/// Bearer tokens. Without any, the gateway serves everyone.
#[derive(Args)]
struct AuthArgs {
    /// JSON file of bearer tokens and their grants:
    /// {"tokens":[{"name":"app","token":"…" (or "sha256":"<hex>"),
    /// "grants":[{"scopes":["produce","consume"],"topics":["orders*"]}]}]}.
    /// Tokens can also come from the environment variable SLUICE_TOKENS in the compact form
    /// TOKEN=SCOPES:PATTERNS;… e.g. "t1=produce,consume:orders*;t2=admin:*" (both sources
    /// add up). Scopes: produce, consume, admin (implies the others); patterns: *, prefix*, name.
    #[arg(long, env = "SLUICE_AUTH_FILE")]
    auth_file: Option<PathBuf>,
}

impl AuthArgs {
    /// The tokens from `--auth-file` and `SLUICE_TOKENS` (read here, not by clap, so that it
    /// never shows in `--help`); `None` when neither is set.
    fn load(&self) -> Result<Option<Arc<AuthConfig>>, String> {
        let compact = match std::env::var("SLUICE_TOKENS") {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err("SLUICE_TOKENS is not valid UTF-8".into())
            }
        };
        AuthConfig::load(self.auth_file.as_deref(), compact.as_deref())
            .map(|c| c.map(Arc::new))
            .map_err(|e| e.to_string())
    }
}

#[derive(Args)]
struct Tuning {
    /// How long a flush waits to gather more produce requests, in milliseconds.
    #[arg(long, env = "SLUICE_LINGER_MS")]
    linger_ms: Option<u64>,
    /// Journal shards new topics are spread over.
    #[arg(long, env = "SLUICE_SHARDS")]
    shards: Option<u32>,
    /// Bytes of produce requests waiting for their commit, at most (default 64 MiB); beyond
    /// it producers get 429 with Retry-After.
    #[arg(long, env = "SLUICE_MAX_PENDING_BYTES")]
    max_pending_bytes: Option<usize>,
    /// Long-polls and event streams waiting at once, at most (default 4096); beyond it
    /// long-polls answer at once and new event streams get 429.
    #[arg(long, env = "SLUICE_MAX_WAITING_READERS")]
    max_waiting_readers: Option<usize>,
    /// Backoff after a transaction's first check-back answered unknown, in milliseconds
    /// (default 1000); it doubles per check, up to 60 s.
    #[arg(long, env = "SLUICE_TXN_CHECK_BACKOFF_MS")]
    txn_check_backoff_ms: Option<u64>,
    /// How often the transaction resolver looks at open transactions, in milliseconds
    /// (default 500).
    #[arg(long, env = "SLUICE_TXN_TICK_MS")]
    txn_tick_ms: Option<u64>,
    /// Transaction resolver lease, in milliseconds (default 5000): a resolver that stops is
    /// replaced after it.
    #[arg(long, env = "SLUICE_TXN_RESOLVER_LEASE_MS")]
    txn_resolver_lease_ms: Option<u64>,
    /// How often an idle transaction resolver looks for transactions begun by other gateways
    /// (one LIST), in milliseconds (default 60000); a local begin wakes it at once.
    #[arg(long, env = "SLUICE_TXN_DISCOVERY_MS")]
    txn_discovery_ms: Option<u64>,
    /// Take no part in electing the transaction resolver (another gateway must run it).
    #[arg(long, env = "SLUICE_NO_TXN_RESOLVER")]
    no_txn_resolver: bool,
}

impl StoreArgs {
    fn open(&self) -> Result<DynStore, String> {
        store::open(
            &self.store,
            &StoreOptions {
                endpoint: self.endpoint.clone(),
                fsync: !self.no_fsync,
            },
        )
        .map_err(|e| e.to_string())
    }
}

fn gateway_config(t: &Tuning, default_linger: Duration) -> GatewayConfig {
    let mut cfg = GatewayConfig {
        linger: default_linger,
        ..Default::default()
    };
    if let Some(ms) = t.linger_ms {
        cfg.linger = Duration::from_millis(ms);
    }
    if let Some(s) = t.shards {
        cfg.shards = s.max(1);
    }
    if let Some(b) = t.max_pending_bytes {
        cfg.max_pending_bytes = b;
    }
    if let Some(n) = t.max_waiting_readers {
        cfg.max_waiting_readers = n.max(1);
    }
    if let Some(ms) = t.txn_check_backoff_ms {
        cfg.txn.core.check_backoff_initial = Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = t.txn_tick_ms {
        cfg.txn.tick = Duration::from_millis(ms.max(10));
    }
    if let Some(ms) = t.txn_resolver_lease_ms {
        cfg.txn.lease_duration = Duration::from_millis(ms.max(300));
    }
    if let Some(ms) = t.txn_discovery_ms {
        cfg.txn.discovery_every = Duration::from_millis(ms.max(10));
    }
    cfg.txn.resolver = !t.no_txn_resolver;
    cfg
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Wrap `store` in the observing wrapper: every call's latency by operation and outcome.
fn observed(store: DynStore) -> (DynStore, Arc<sluice_core::metrics::Registry>) {
    let o = store::Observed::new(store);
    let registry = o.registry();
    (o, registry)
}

/// The delayed-records mover: runs wherever a compactor runs (single active, own lease).
/// `SLUICE_MOVER_LEASE_MS` overrides the lease (tests that kill processes use a short one).
fn mover(log: &Arc<Log>, lease: Duration) -> Mover {
    let lease = std::env::var("SLUICE_MOVER_LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(lease, Duration::from_millis);
    let delayed = Delayed::new(log.store().clone(), log.clock().clone(), log.writer());
    let cfg = MoverConfig {
        lease_duration: lease,
        ..Default::default()
    };
    Mover::new(log.clone(), delayed, cfg)
}

async fn run_gateway(
    store: DynStore,
    listen: SocketAddr,
    mut cfg: GatewayConfig,
    compactor: Option<CompactorConfig>,
    commit: Option<&CommitArgs>,
) -> Result<(), String> {
    let clock = clock::system();
    let (store, store_metrics) = observed(store);
    cfg.metrics_also.push(store_metrics);
    // The compactor of this process: its metrics are served with the gateway's.
    let compactor = compactor.map(|c| Compactor::new(store.clone(), clock.clone(), c));
    if let Some(c) = &compactor {
        cfg.metrics_also.push(c.metrics().registry());
    }
    let log = Log::new(store.clone(), clock.clone(), LogConfig::default());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("sluice: serving http://{addr}");
    if let Some(c) = commit.filter(|c| !c.no_committer) {
        let ecs_endpoint = std::env::var(ecs::METADATA_ENV)
            .ok()
            .filter(|e| !e.is_empty());
        let advertise = match (&c.advertise_url, ecs_endpoint) {
            (Some(u), _) => Ok(u.trim_end_matches('/').to_string()),
            // On ECS the task's own address, whatever the listen address says.
            (None, Some(endpoint)) => match ecs::discover(&endpoint, addr.port()).await {
                Ok(url) => {
                    eprintln!(
                        "sluice: advertising {url} to the other gateways (this task's address, \
                         from the ECS task metadata endpoint)"
                    );
                    Ok(url)
                }
                Err(e) => Err(format!(
                    "cannot learn this task's address from the ECS task metadata endpoint \
                     ({e}): this gateway commits directly and takes no part in shard committer \
                     election"
                )),
            },
            (None, None) if addr.ip().is_unspecified() => Err(format!(
                "listening on {addr} without --advertise-url: this gateway commits directly \
                 and takes no part in shard committer election"
            )),
            (None, None) => Ok(format!("http://{addr}")),
        };
        match advertise {
            Ok(url) => {
                let mut cc = CommitterConfig::new(url);
                cc.lease_duration = Duration::from_millis(c.committer_lease_ms.max(300));
                // Another gateway's token, for the hand-over when auth is on (`admin` on `*`).
                cc.token = std::env::var("SLUICE_INTERNAL_TOKEN").ok();
                cfg.committer = Some(cc);
            }
            Err(why) => eprintln!("sluice: {why}"),
        }
    }
    match &cfg.auth {
        Some(auth) => eprintln!(
            "sluice: bearer-token authentication is on ({} token(s)); the console, /healthz, \
             /readyz, /metrics and /v1/openapi.json stay open",
            auth.len()
        ),
        None if addr.ip().is_loopback() => {
            eprintln!("sluice: no authentication is configured; listening on loopback only")
        }
        None => {
            tracing::warn!(%addr, "no authentication is configured on a non-loopback address");
            eprintln!(
                "\n\
                 ********************************************************************\n\
                 sluice: WARNING: NO AUTHENTICATION IS CONFIGURED and the gateway\n\
                 listens on {addr}, reachable from other machines: anyone who can\n\
                 connect can read, write and delete every topic. Give tokens with\n\
                 --auth-file or SLUICE_TOKENS, or listen on 127.0.0.1.\n\
                 ********************************************************************\n"
            );
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let compacting = compactor.map(|c| {
        let mut rx = stop_rx.clone();
        let moving = mover(&log, Duration::from_secs(10)).run(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        });
        let mut rx = stop_rx.clone();
        let compacting = c.run(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        });
        tokio::spawn(async move {
            tokio::join!(moving, compacting);
        })
    });
    let mut rx = stop_rx.clone();
    let served = sluice_gateway::serve(listener, log, cfg, async move {
        let _ = rx.wait_for(|stop| *stop).await;
    });
    let stopper = tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("sluice: shutting down");
        let _ = stop_tx.send(true);
    });
    let r = served.await.map_err(|e| e.to_string());
    stopper.abort();
    if let Some(c) = compacting {
        let _ = c.await;
    }
    r
}

/// A client command; its failure carries the exit code.
async fn run_client(global: client::Global, command: Command) -> Result<(), client::Failure> {
    let ctx = client::Ctx::new(global)?;
    let done = match command {
        Command::Topics(cmd) => client::topics::run(&ctx, cmd).await,
        Command::Produce(args) => client::produce::run(&ctx, args).await,
        Command::Consume(args) => client::consume::run(&ctx, args).await,
        Command::Bench(args) => client::bench::run(&ctx, args).await,
        Command::Groups(cmd) => client::groups::run(&ctx, cmd).await,
        Command::Queues(cmd) => client::queues::run(&ctx, cmd).await,
        Command::Delayed(cmd) => client::delayed::run(&ctx, cmd).await,
        Command::Transactions(cmd) => client::transactions::run(&ctx, cmd).await,
        _ => Ok(()),
    };
    match done {
        Ok(()) | Err(client::Stop::PipeClosed) => Ok(()),
        Err(client::Stop::Failed(f)) => Err(f),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Dev {
            data_dir,
            listen,
            no_fsync,
            auth,
            tuning,
            log: _,
        } => {
            let auth = auth.load()?;
            let opts = StoreOptions {
                fsync: !no_fsync,
                ..Default::default()
            };
            let store = store::open(&data_dir, &opts).map_err(|e| e.to_string())?;
            if no_fsync {
                eprintln!("sluice dev: data in {data_dir} (--no-fsync: an OS crash may lose acknowledged records)");
            } else {
                eprintln!("sluice dev: data in {data_dir}");
            }
            let mut cfg = gateway_config(&tuning, Duration::ZERO);
            cfg.auth = auth;
            // One process is its own committer: no election needed.
            run_gateway(store, listen, cfg, Some(CompactorConfig::default()), None).await
        }
        Command::Gateway {
            store,
            listen,
            with_compactor,
            commit,
            auth,
            tuning,
            log: _,
        } => {
            let auth = auth.load()?;
            let s = store.open()?;
            let mut cfg = gateway_config(&tuning, Duration::from_millis(10));
            cfg.auth = auth;
            run_gateway(
                s,
                listen,
                cfg,
                with_compactor.then(CompactorConfig::default),
                Some(&commit),
            )
            .await
        }
        Command::Compactor {
            store,
            interval_ms,
            lease_ms,
            metrics_listen,
            log: _,
        } => {
            let (s, store_metrics) = observed(store.open()?);
            let cfg = CompactorConfig {
                interval: Duration::from_millis(interval_ms),
                lease_duration: Duration::from_millis(lease_ms),
                ..Default::default()
            };
            eprintln!("sluice compactor: running on {}", store.store);
            let log = Log::new(s.clone(), clock::system(), LogConfig::default());
            let c = Compactor::new(s, clock::system(), cfg.clone());
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let metrics = match metrics_listen {
                Some(addr) => {
                    let listener = tokio::net::TcpListener::bind(addr)
                        .await
                        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                    let addr = listener.local_addr().map_err(|e| e.to_string())?;
                    eprintln!("sluice compactor: metrics at http://{addr}/metrics");
                    let mut rx = stop_rx.clone();
                    Some(tokio::spawn(sluice_gateway::metrics::serve_registries(
                        listener,
                        vec![c.metrics().registry(), store_metrics],
                        async move {
                            let _ = rx.wait_for(|stop| *stop).await;
                        },
                    )))
                }
                None => None,
            };
            let mut rx = stop_rx.clone();
            let moving = mover(&log, cfg.lease_duration).run(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            });
            let compacting = c.run(async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            tokio::join!(moving, compacting);
            if let Some(m) = metrics {
                let _ = m.await;
            }
            Ok(())
        }
        Command::Topics(_)
        | Command::Produce(_)
        | Command::Consume(_)
        | Command::Bench(_)
        | Command::Groups(_)
        | Command::Queues(_)
        | Command::Delayed(_)
        | Command::Transactions(_) => Err("not a server command".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = matches!(
        cli.command,
        Command::Dev { .. } | Command::Gateway { .. } | Command::Compactor { .. }
    );
    // Servers log at info; client commands only warn (their output is the point).
    let default_filter = if server { "info" } else { "warn" };
    let format = match &cli.command {
        Command::Dev { log, .. }
        | Command::Gateway { log, .. }
        | Command::Compactor { log, .. } => log.log_format,
        _ => LogFormat::Text,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // One object a line: timestamp, level, target, fields, and the current span (a
        // request's `request_id`, `method`, `route`) and its parents.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !server {
        return match rt.block_on(run_client(cli.global, cli.command)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => {
                eprintln!("sluice: {}", f.message);
                f.exit_code()
            }
        };
    }
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::FAILURE
        }
    }
}
