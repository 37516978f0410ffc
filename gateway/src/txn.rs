//! The transaction resolver: one gateway per bucket, the holder of the lease
//! `leases/txn-resolver/` (as a shard's committer is elected, [`sluice_core::lease`]), runs
//! [`Transactions::resolve_pass`] every tick: expired transactions are checked back over HTTP
//! (or rolled back without a `check_url`), commits a crash interrupted after their decision are
//! finished, finished transactions past their retention are deleted. Correctness never depends
//! on the lease: every step is planned on the transaction's state log (a check is counted once
//! by its number, a decision is taken once, appends carry idempotency keys), so two resolvers
//! during a hand-over only repeat a check-back. An idle resolver (no transaction open) holds no
//! lease and makes one LIST per [`TxnSettings::discovery_every`]: see [`spawn_resolver`].

use async_trait::async_trait;
use sluice_api::{CheckBackAnswer, CheckBackRequest, CheckBackStatus};
use sluice_core::lease::Lease;
use sluice_core::store::DynStore;
use sluice_core::txn::service::{CheckBack, CheckRequest, Transactions, TxnConfig};
use sluice_core::txn::CheckStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How this gateway serves transactions.
#[derive(Clone, Debug)]
pub struct TxnSettings {
    pub core: TxnConfig,
    /// Take part in electing the bucket's resolver (default true).
    pub resolver: bool,
    /// How often the resolver looks at open transactions (default 500 ms).
    pub tick: Duration,
    /// The resolver lease: a resolver that stops is replaced after this (default 5 s).
    pub lease_duration: Duration,
    /// A check-back without an answer within this counts as `unknown` (default 5 s).
    pub check_timeout: Duration,
    /// An idle resolver looks for transactions begun by other (perhaps gone) gateways this
    /// often, one LIST of `txn-open/` (default 60 s); a local begin wakes it at once.
    pub discovery_every: Duration,
}

impl Default for TxnSettings {
    fn default() -> Self {
        Self {
            core: TxnConfig::default(),
            resolver: true,
            tick: Duration::from_millis(500),
            lease_duration: Duration::from_secs(5),
            check_timeout: Duration::from_secs(5),
            discovery_every: Duration::from_secs(60),
        }
    }
}

/// Check-back over HTTP: POST a [`CheckBackRequest`] as JSON, expect 2xx with a
/// [`CheckBackAnswer`]. No redirects are followed; anything else is `unknown`.
pub struct HttpCheck {
    http: reqwest::Client,
}

impl HttpCheck {
    pub fn new(timeout: Duration) -> Option<Self> {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the check-back client"))
            .ok()
            .map(|http| Self { http })
    }
}

#[async_trait]
impl CheckBack for HttpCheck {
    async fn check(&self, url: &str, req: &CheckRequest) -> CheckStatus {
        let body = CheckBackRequest {
            transaction_id: req.transaction_id.clone(),
            topics: req.topics.clone(),
            staged: req.staged,
        };
        let resp = match self.http.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tracing::info!(txn = %req.transaction_id, status = %r.status(), "check-back answered an error");
                return CheckStatus::Unknown;
            }
            Err(e) => {
                tracing::info!(txn = %req.transaction_id, error = %e, "check-back unreachable");
                return CheckStatus::Unknown;
            }
        };
        match resp.json::<CheckBackAnswer>().await {
            Ok(a) => match a.status {
                CheckBackStatus::Commit => CheckStatus::Commit,
                CheckBackStatus::Rollback => CheckStatus::Rollback,
                CheckBackStatus::Unknown => CheckStatus::Unknown,
            },
            Err(e) => {
                tracing::info!(txn = %req.transaction_id, error = %e, "check-back answer is not a status");
                CheckStatus::Unknown
            }
        }
    }
}

/// Run the resolver until `shutdown` turns true (or closes).
///
/// Idle (no transaction known to be open) it makes no request but one LIST of `txn-open/` at
/// start and every [`TxnSettings::discovery_every`] (transactions begun by gateways that are
/// gone). A local begin, or a marker found, makes it active: each tick it takes part in the
/// election and, holding the lease, runs a pass. A pass that finds no marker gives the lease
/// up and goes idle again, so an idle gateway neither renews a lease nor lists every tick.
pub fn spawn_resolver(
    txns: Arc<Transactions>,
    store: DynStore,
    settings: TxnSettings,
    holder: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(checker) = HttpCheck::new(settings.check_timeout) else {
        return;
    };
    tokio::spawn(async move {
        let mut lease = Lease::new(store, "txn-resolver", holder, settings.lease_duration);
        let mut active = false;
        let mut next_look = tokio::time::Instant::now();
        loop {
            if !active {
                let look = tokio::select! {
                    _ = shutdown.wait_for(|down| *down) => return,
                    _ = txns.begun() => false,
                    _ = tokio::time::sleep_until(next_look) => true,
                };
                active = true;
                if look {
                    next_look = tokio::time::Instant::now() + settings.discovery_every;
                    match txns.any_open().await {
                        Ok(found) => active = found,
                        Err(e) => {
                            tracing::warn!(error = %e, "transaction resolver: looking for open transactions")
                        }
                    }
                }
                continue;
            }
            let stop = tokio::select! {
                _ = shutdown.wait_for(|down| *down) => true,
                _ = tokio::time::sleep(settings.tick) => false,
            };
            if stop {
                let _ = lease.release().await;
                return;
            }
            match lease.acquire().await {
                Ok(true) if lease.epoch().is_some() => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "transaction resolver lease");
                    continue;
                }
            }
            match txns.resolve_pass(&checker).await {
                Ok(stats) if stats.markers == 0 => {
                    // Nothing open anywhere: idle until a begin or the next look.
                    if let Err(e) = lease.release().await {
                        tracing::warn!(error = %e, "transaction resolver: releasing the lease");
                    }
                    active = false;
                    next_look = tokio::time::Instant::now() + settings.discovery_every;
                }
                Ok(stats) => tracing::debug!(?stats, "transaction resolver pass"),
                Err(e) => tracing::warn!(error = %e, "transaction resolver pass"),
            }
        }
    });
}
