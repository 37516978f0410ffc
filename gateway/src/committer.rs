//! One hot topic past one chain of conditional PUTs: each journal shard has an elected
//! committer, the holder of the lease `leases/committer-{shard}/` (create-only numbered
//! objects, [`sluice_core::lease`]) whose holder string is its address. Every gateway PUTs its
//! own segments and hands the committer only the references (`POST /internal/v1/commit`); the
//! committer commits every gateway's references of a round in one journal entry through the
//! ordinary commit protocol (its [`sluice_core::committer::GroupCommitter`]) and answers each
//! with its offsets.
//!
//! Correctness never depends on the lease: the journal's create-only rule decides, so two
//! gateways that both think they commit only race like any two writers. A gateway commits
//! itself when it holds the lease, when nobody does yet, when the committer refuses (421: not
//! the committer) or cannot be reached (the connection was refused: it took nothing). When the
//! request was sent but no answer came, the outcome is unknown: the produce request fails with a
//! retryable error (a retry with the same `Idempotency-Key` is answered once, as for any lost
//! answer), never committed a second time by this gateway.

use crate::api::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Body};
use async_trait::async_trait;
use axum::extract::State;
use axum::Json;
use sluice_api::internal::{CommitAnswer, CommitOutcome};
use sluice_core::committer::{self, CommitForwarder, Committed, HandOverOrder, Sequencer};
use sluice_core::format::checkpoint::DedupRecord;
use sluice_core::format::journal::{Append, JournalEntry};
use sluice_core::head::{route_key, Outcome, PendingAppend, SeqError};
use sluice_core::lease::Lease;
use sluice_core::store::DynStore;
use sluice_core::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How this gateway takes part in committer election.
#[derive(Clone, Debug)]
pub struct CommitterConfig {
    /// Base URL other gateways reach this one at, e.g. `http://10.0.0.5:8080`.
    pub advertise_url: String,
    /// Lease duration: a committer that stops renewing is replaced after this (default 3 s).
    pub lease_duration: Duration,
    /// Bearer token sent to other gateways (needs `admin` on `*` when auth is on).
    pub token: Option<String>,
    /// How long a handed-over commit may take before its outcome counts as unknown.
    pub timeout: Duration,
    /// A shard this gateway has not committed to for this long stops being watched: its lease
    /// is no longer renewed (nor, on a follower, read), so an idle gateway makes no requests.
    /// The next commit to the shard starts watching again (committing directly meanwhile).
    pub idle_release: Duration,
    /// Hand-overs of one shard a follower keeps in flight at once (numbered so that the
    /// committer queues them in the follower's order; 1 = one at a time, as before issue 9's
    /// second round).
    pub max_hand_overs: usize,
    /// How long the committer holds a hand-over that arrived before the one it must follow,
    /// before refusing it (retryable, not committed).
    pub hold: Duration,
}

impl CommitterConfig {
    pub fn new(advertise_url: String) -> Self {
        Self {
            advertise_url,
            lease_duration: Duration::from_secs(3),
            token: None,
            timeout: Duration::from_secs(5),
            idle_release: Duration::from_secs(30),
            max_hand_overs: 4,
            hold: Duration::from_secs(2),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    /// Not known yet, or the lease could not be read: commit here.
    Unknown,
    /// We hold the lease: commit here, and take other gateways' commits.
    Committer,
    /// Another gateway holds it: hand commits to it.
    Follower(String),
}

/// The [`CommitForwarder`] of a gateway: per shard, a task holding or watching the lease, and
/// the HTTP client to the committer.
pub struct CommitRouter {
    cfg: CommitterConfig,
    store: DynStore,
    http: reqwest::Client,
    /// Per watched shard: our role and when a commit last asked for it.
    roles: Mutex<HashMap<u32, (Role, Instant)>>,
    /// Other gateways this one saw (as a shard's committer, or handing it commits): URL → when.
    seen: Mutex<HashMap<String, std::time::Instant>>,
    /// The order of numbered hand-overs taken as a committer.
    sequencer: Sequencer,
    me: Weak<CommitRouter>,
}

/// The header a gateway names itself with when it hands commits over (its advertised URL).
pub const GATEWAY_HEADER: &str = "x-sluice-gateway";

/// The header a numbered hand-over carries its [`HandOverOrder`] in.
pub const ORDER_HEADER: &str = "x-sluice-hand-over";

fn lease_name(shard: u32) -> String {
    format!("committer-{shard}")
}

impl CommitRouter {
    pub fn new(store: DynStore, cfg: CommitterConfig) -> Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot build the committer client: {e}")))?;
        Ok(Arc::new_cyclic(|me| Self {
            sequencer: Sequencer::new(cfg.hold),
            cfg,
            store,
            http,
            roles: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            me: me.clone(),
        }))
    }

    fn roles(&self) -> std::sync::MutexGuard<'_, HashMap<u32, (Role, Instant)>> {
        self.roles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This gateway's role for `shard`; the first call (after an idle release) starts watching
    /// the shard's lease.
    fn role(&self, shard: u32) -> Role {
        let mut roles = self.roles();
        if let Some((r, used)) = roles.get_mut(&shard) {
            *used = Instant::now();
            return r.clone();
        }
        roles.insert(shard, (Role::Unknown, Instant::now()));
        let lease = Lease::new(
            self.store.clone(),
            &lease_name(shard),
            self.cfg.advertise_url.clone(),
            self.cfg.lease_duration,
        );
        tokio::spawn(watch_lease(self.me.clone(), shard, lease));
        Role::Unknown
    }

    /// Whether this gateway holds `shard`'s committer lease.
    pub fn is_committer(&self, shard: u32) -> bool {
        self.roles().get(&shard).map(|(r, _)| r) == Some(&Role::Committer)
    }

    fn set_role(&self, shard: u32, role: Role) {
        if let Some((r, _)) = self.roles().get_mut(&shard) {
            *r = role;
        }
    }

    /// Stop watching `shard` if no commit asked for it for `idle_release`. Returns whether
    /// it stopped.
    fn release_if_idle(&self, shard: u32) -> bool {
        let mut roles = self.roles();
        let idle = roles
            .get(&shard)
            .is_none_or(|(_, used)| used.elapsed() >= self.cfg.idle_release);
        if idle {
            roles.remove(&shard);
        }
        idle
    }

    /// Note that gateway `url` was seen now (not this one).
    pub fn saw(&self, url: &str) {
        if url != self.cfg.advertise_url {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.insert(url.to_string(), std::time::Instant::now());
        }
    }

    /// Gateways seen within `window`, this one included: the shard committers it follows and
    /// the gateways that handed it commits (`sluice_gateways_seen`).
    pub fn gateways_seen(&self, window: Duration) -> usize {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| at.elapsed() <= window);
        seen.len() + 1
    }
}

/// Hold (or watch) the lease of `shard` for as long as the router lives: every quarter of the
/// lease duration, renew it if ours, learn the holder if not, take it over if it expired.
async fn watch_lease(router: Weak<CommitRouter>, shard: u32, mut lease: Lease) {
    loop {
        let Some(r) = router.upgrade() else { return };
        let every = r.cfg.lease_duration / 4;
        let role = match lease.acquire().await {
            Ok(true) if lease.epoch().is_some() => Role::Committer,
            Ok(_) => match lease.other_holder() {
                Some(h) if h != r.cfg.advertise_url => {
                    r.saw(h);
                    Role::Follower(h.to_string())
                }
                _ => Role::Unknown,
            },
            Err(e) => {
                tracing::warn!(shard, error = %e, "cannot read the committer lease; committing directly");
                Role::Unknown
            }
        };
        if r.roles().get(&shard).map(|(r, _)| r) != Some(&role) {
            tracing::info!(shard, ?role, "committer role");
        }
        r.set_role(shard, role);
        if r.release_if_idle(shard) {
            tracing::info!(shard, "no commits for a while: committer lease released");
            return;
        }
        drop(r);
        tokio::time::sleep(every).await;
    }
}

/// The request body: the appends as a journal entry with `seq` 0 (see `docs/FORMAT.md`).
pub fn encode_request(shard: u32, pending: &[PendingAppend]) -> bytes::Bytes {
    JournalEntry {
        shard,
        seq: 0,
        append_ts: 0,
        writer: [0; 16],
        appends: pending
            .iter()
            .map(|p| Append {
                topic: p.topic,
                partition_count: p.partition_count,
                dedup_key: p.dedup_key.clone(),
                batches: p.batches.clone(),
                producer: p.producer,
            })
            .collect(),
    }
    .encode()
}

/// Decode a request body for `shard` into the appends to commit.
pub fn decode_request(shard: u32, body: &[u8]) -> ApiResult<Vec<PendingAppend>> {
    let entry = JournalEntry::decode(body)
        .map_err(|e| ApiError::Invalid(format!("commit request: {e}")))?;
    if entry.seq != 0 || entry.shard != shard {
        return Err(ApiError::Invalid(
            "commit request: seq must be 0 and shard match the query".into(),
        ));
    }
    Ok(entry
        .appends
        .into_iter()
        .map(|a| PendingAppend {
            topic: a.topic,
            partition_count: a.partition_count,
            dedup_key: a.dedup_key,
            batches: a.batches,
            producer: a.producer,
        })
        .collect())
}

/// The committer's outcomes as the wire answer.
pub fn to_answer((outcomes, append_ts): Committed) -> CommitAnswer {
    CommitAnswer {
        append_ts,
        outcomes: outcomes
            .into_iter()
            .map(|o| match o {
                Outcome::Committed { batches } => CommitOutcome::Committed {
                    base_offsets: batches.iter().map(|b| b.base_offset).collect(),
                },
                Outcome::Duplicate(d) => CommitOutcome::Duplicate {
                    seq: d.seq,
                    append_ts: d.append_ts,
                    partition_count: d.partition_count,
                    batches: d.batches,
                },
                Outcome::Refused(SeqError::Fenced { epoch, current }) => {
                    CommitOutcome::Fenced { epoch, current }
                }
                Outcome::Refused(SeqError::OutOfOrder { got, expected }) => {
                    CommitOutcome::OutOfOrder { got, expected }
                }
            })
            .collect(),
    }
}

/// The wire answer back as outcomes of `pending`; `None` if it does not fit them.
pub fn from_answer(pending: &[PendingAppend], answer: CommitAnswer) -> Option<Committed> {
    if answer.outcomes.len() != pending.len() {
        return None;
    }
    let mut outcomes = Vec::with_capacity(pending.len());
    for (p, o) in pending.iter().zip(answer.outcomes) {
        outcomes.push(match o {
            CommitOutcome::Committed { base_offsets } => {
                if base_offsets.len() != p.batches.len() {
                    return None;
                }
                let mut batches = p.batches.clone();
                for (b, base) in batches.iter_mut().zip(base_offsets) {
                    b.base_offset = base;
                }
                Outcome::Committed { batches }
            }
            CommitOutcome::Duplicate {
                seq,
                append_ts,
                partition_count,
                batches,
            } => Outcome::Duplicate(DedupRecord {
                topic: p.topic,
                key: route_key(p.dedup_key.as_ref(), p.producer.as_ref())?,
                seq,
                append_ts,
                partition_count,
                batches,
            }),
            CommitOutcome::Fenced { epoch, current } => {
                Outcome::Refused(SeqError::Fenced { epoch, current })
            }
            CommitOutcome::OutOfOrder { got, expected } => {
                Outcome::Refused(SeqError::OutOfOrder { got, expected })
            }
        });
    }
    Some((outcomes, answer.append_ts))
}

#[async_trait]
impl CommitForwarder for CommitRouter {
    fn is_remote(&self, shard: u32) -> bool {
        matches!(self.role(shard), Role::Follower(_))
    }

    fn max_in_flight(&self) -> usize {
        self.cfg.max_hand_overs
    }

    async fn forward(
        &self,
        shard: u32,
        pending: &[PendingAppend],
        order: HandOverOrder,
    ) -> Option<Result<Committed>> {
        let url = match self.role(shard) {
            Role::Follower(url) => url,
            Role::Unknown | Role::Committer => return None,
        };
        let mut req = self
            .http
            .post(format!("{url}/internal/v1/commit?shard={shard}"))
            .header("content-type", "application/octet-stream")
            .header(GATEWAY_HEADER, &self.cfg.advertise_url)
            .header(ORDER_HEADER, order.to_header())
            .timeout(self.cfg.timeout)
            .body(encode_request(shard, pending));
        if let Some(t) = &self.cfg.token {
            req = req.bearer_auth(t);
        }
        let unknown = |why: String| {
            Some(Err(Error::Stale(format!(
                "the shard committer at {url} {why}; the records may be committed: retry \
                 with the same Idempotency-Key"
            ))))
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                // Nothing was sent: commit here until the lease says otherwise.
                tracing::debug!(shard, %url, error = %e, "committer unreachable; committing directly");
                self.set_role(shard, Role::Unknown);
                return None;
            }
            Err(e) => return unknown(format!("did not answer ({e})")),
        };
        let status = resp.status();
        if status == reqwest::StatusCode::MISDIRECTED_REQUEST {
            self.set_role(shard, Role::Unknown);
            return None; // not (or no longer) the committer: it took nothing
        }
        if !status.is_success() {
            return if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                unknown(format!("answered {status}"))
            } else {
                Some(Err(Error::Internal(format!(
                    "the shard committer at {url} refused a commit: {status}"
                ))))
            };
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return unknown(format!("answer was cut ({e})")),
        };
        match serde_json::from_slice::<CommitAnswer>(&body)
            .ok()
            .and_then(|a| from_answer(pending, a))
        {
            Some(c) => Some(Ok(c)),
            None => Some(Err(Error::Internal(format!(
                "the shard committer at {url} answered something that does not fit the request"
            )))),
        }
    }
}

#[derive(serde::Deserialize)]
pub struct CommitQuery {
    shard: u32,
}

/// `POST /internal/v1/commit?shard=N` (gateway to gateway; not in the public API): commit the
/// appends of the body (segments already written by the caller) in this committer's next round.
pub async fn commit(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<CommitQuery>,
    headers: axum::http::HeaderMap,
    Body(body): Body,
) -> ApiResult<Json<CommitAnswer>> {
    if let (Some(c), Some(from)) = (
        &st.committer,
        headers
            .get(GATEWAY_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|u| crate::request_id::is_sane(u)),
    ) {
        c.saw(from);
    }
    let Some(router) = st.committer.as_ref().filter(|c| c.is_committer(q.shard)) else {
        return Err(ApiError::NotCommitter(format!(
            "this gateway is not the committer of shard {}",
            q.shard
        )));
    };
    let order = match headers.get(ORDER_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(HandOverOrder::parse)
                .ok_or_else(|| {
                    ApiError::Invalid(format!(
                        "{ORDER_HEADER} must be {{session:032x}}/{{number}}/{{after or -}}"
                    ))
                })?,
        ),
    };
    let pending = decode_request(q.shard, &body)?;
    let local = st.log.group_committer(q.shard).await?;
    let queued = match order {
        // Unnumbered (one hand-over at a time): queued as it comes.
        None => local.enqueue(pending),
        Some(order) => {
            router
                .sequencer
                .admit(q.shard, &order, || local.enqueue(pending))
                .await?
        }
    };
    Ok(Json(to_answer(committer::wait(queued).await?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_core::format::journal::BatchRef;
    use sluice_core::ids::{new_ulid, ObjectId, TopicId};

    fn pending(key: Option<&str>) -> PendingAppend {
        let segment = ObjectId::from_ulid(new_ulid(1));
        PendingAppend {
            topic: TopicId([7; 16]),
            partition_count: 4,
            dedup_key: key.map(|k| Bytes::from(k.to_string())),
            batches: vec![
                BatchRef {
                    partition: 1,
                    base_offset: 0,
                    record_count: 2,
                    segment,
                    pos: 10,
                    len: 20,
                },
                BatchRef {
                    partition: 3,
                    base_offset: 0,
                    record_count: 1,
                    segment,
                    pos: 30,
                    len: 9,
                },
            ],
            producer: None,
        }
    }

    #[test]
    fn request_round_trips_and_checks_its_shard() {
        let p = vec![pending(Some("k")), pending(None)];
        let body = encode_request(2, &p);
        let back = decode_request(2, &body).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].dedup_key, p[0].dedup_key);
        assert_eq!(back[1].batches, p[1].batches);
        assert!(matches!(
            decode_request(3, &body),
            Err(ApiError::Invalid(_))
        ));
        assert!(matches!(
            decode_request(2, b"not a journal entry"),
            Err(ApiError::Invalid(_))
        ));
    }

    #[test]
    fn answer_round_trips_and_must_fit_the_request() {
        let p = vec![pending(Some("k")), pending(None)];
        let mut committed = p[1].batches.clone();
        committed[0].base_offset = 40;
        committed[1].base_offset = 7;
        let dup = DedupRecord {
            topic: p[0].topic,
            key: Bytes::from("k"),
            seq: 3,
            append_ts: 99,
            partition_count: 4,
            batches: vec![(1, 5, 2), (3, 0, 1)],
        };
        let outcomes = vec![
            Outcome::Duplicate(dup),
            Outcome::Committed { batches: committed },
        ];
        let answer = to_answer((outcomes.clone(), 123));
        let wire: CommitAnswer =
            serde_json::from_slice(&serde_json::to_vec(&answer).unwrap()).unwrap();
        assert_eq!(from_answer(&p, wire.clone()), Some((outcomes, 123)));
        // Wrong count, or a duplicate for an append without a key: refused.
        assert_eq!(from_answer(&p[..1], wire.clone()), None);
        let swapped = vec![p[1].clone(), p[0].clone()];
        assert_eq!(from_answer(&swapped, wire), None);
    }
}
