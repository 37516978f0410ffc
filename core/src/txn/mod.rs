//! Transactions (half messages with check-back): records staged under a transaction become
//! visible only when it commits, all or nothing across topics and shards, whichever process
//! dies; an open transaction past its timeout is checked back over HTTP.
//!
//! # Objects
//! - `txns/{id}/staged/{ulid}`: the records of one staging request ([`staged::StagedBatch`],
//!   `SLTB`), create-only, written before the request is acked. Outside `segments/` and the
//!   journal, so no read, group or queue can see them.
//! - `txns/{id}/log/{seq}`, `txns/{id}/snap/{seq}`: the transaction's state ([`TxnState`]) as
//!   a state log ([`crate::statelog`]): `Begin`, `Stage` (registers a staged object: the set
//!   is whatever the log says), `Decide` (**the linearization point**: the entry that holds it
//!   fixes commit or rollback and the staged set), `Checked` (a check-back answered
//!   unknown or failed), `Applied` (staged requests appended to their shards).
//! - `txn-open/{id}`: marker of a transaction not finished yet (what the resolver lists).
//! - `txn-done/{finished_ms:020}-{id}`: marker of a finished one, reaped after a retention.
//!
//! # Commit
//! Decide (one create-only state-log entry), then apply: the staged requests are appended in
//! staging order through the normal append path ([`crate::log::Log::flush`]) with the
//! idempotency key `sluice-txn/{id}/{staged object}`, so a redo after a crash (by this or any
//! other gateway) is answered from the shards' dedup window instead of writing twice; then
//! `Applied` records the offsets. The commit answers only once every request is applied.
//!
//! This module holds the pure state machine and its planners; [`service`] does the IO.

pub mod service;
pub mod staged;

use crate::codec::{DecodeError, DecodeResult};
use crate::statelog::{self, StateMachine};
use serde::{Deserialize, Serialize};

/// Version of the [`TxnState`] JSON (in snapshots); a reader refuses a newer one.
pub const TXN_STATE_FORMAT: u32 = 1;
/// Check-backs answered `unknown` (or not at all) before the transaction is rolled back.
pub const MAX_CHECKS: u32 = 15;
/// Default and bounds of `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
pub const MAX_TIMEOUT_MS: u64 = 24 * 3_600_000;
/// Staging requests one transaction may hold.
pub const MAX_STAGED_REQUESTS: usize = 10_000;
/// Longest `check_url`.
pub const MAX_CHECK_URL: usize = 2048;

/// Why a transaction call was refused. `Core` is an IO or store error (usually retryable).
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("transaction {0} not found")]
    NotFound(String),
    #[error("transaction {id} is closed: {reason}")]
    Closed { id: String, reason: String },
    #[error("invalid check_url: {0}")]
    InvalidCheckUrl(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Core(#[from] crate::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Open,
    /// Decided to commit; some staged requests are not applied yet.
    Committing,
    Committed,
    RolledBack,
}

/// Who decided, for diagnostics and the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decider {
    /// The producer's commit or rollback call.
    Client,
    /// The check-back answered commit or rollback.
    CheckBack,
    /// Expired without a `check_url`.
    Timeout,
    /// `MAX_CHECKS` check-backs answered unknown or failed.
    Checks,
}

/// One staging request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    /// The staged object's ULID (`txns/{id}/staged/{object}`).
    pub object: String,
    pub topic: String,
    /// The topic's incarnation when staged: a topic deleted (and re-created) since loses them.
    pub topic_id: String,
    pub records: u32,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// The state of one transaction (the state machine of its state log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnState {
    pub format: u32,
    pub exists: bool,
    /// A marker was found with no begin behind it: the id can never begin any more.
    #[serde(default)]
    pub void: bool,
    pub created_ms: i64,
    pub timeout_ms: u64,
    pub expires_at_ms: i64,
    pub check_url: Option<String>,
    pub phase: Phase,
    pub decided_by: Option<Decider>,
    pub decided_ms: Option<i64>,
    pub staged: Vec<Staged>,
    /// Check-backs made (answered unknown or failed; a definite answer decides instead).
    pub checks: u32,
    /// No check before this time (backoff after an unknown answer).
    pub next_check_ms: i64,
    /// Offsets `(partition, offset)` of each applied staged request, in staging order; a
    /// request whose topic was deleted since has none.
    pub applied: Vec<Vec<(u32, u64)>>,
}

impl Default for TxnState {
    fn default() -> Self {
        Self {
            format: TXN_STATE_FORMAT,
            exists: false,
            void: false,
            created_ms: 0,
            timeout_ms: 0,
            expires_at_ms: 0,
            check_url: None,
            phase: Phase::Open,
            decided_by: None,
            decided_ms: None,
            staged: Vec::new(),
            checks: 0,
            next_check_ms: 0,
            applied: Vec::new(),
        }
    }
}

/// The operations of a transaction's state log (JSON, externally tagged). Each is re-checked
/// when applied and ignored if it no longer fits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Expires `timeout_ms` after the entry's time.
    Begin {
        timeout_ms: u64,
        check_url: Option<String>,
    },
    Stage(Staged),
    Decide {
        commit: bool,
        by: Decider,
    },
    /// Check-back number `n` answered unknown or failed; the next one not before `next_check_ms`.
    Checked {
        n: u32,
        next_check_ms: i64,
    },
    /// Staged requests `from..from + offsets.len()` were appended with these offsets.
    Applied {
        from: u32,
        offsets: Vec<Vec<(u32, u64)>>,
    },
    /// A marker without a begin: the id is closed for good.
    Void,
}

impl TxnState {
    pub fn is_open(&self) -> bool {
        self.exists && self.phase == Phase::Open
    }

    pub fn staged_records(&self) -> u64 {
        self.staged.iter().map(|s| s.records as u64).sum()
    }

    /// Topics of the staged records, in order of first staging, each once.
    pub fn topics(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.staged {
            if !out.contains(&s.topic) {
                out.push(s.topic.clone());
            }
        }
        out
    }

    /// When the resolver should look at this transaction next (open ones only).
    pub fn due_ms(&self) -> i64 {
        self.expires_at_ms.max(self.next_check_ms)
    }

    /// Every staged record's `(topic, partition, offset)`, in staging order (committed only).
    pub fn offsets(&self) -> Vec<(String, u32, u64)> {
        self.staged
            .iter()
            .zip(self.applied.iter())
            .flat_map(|(s, offs)| offs.iter().map(|&(p, o)| (s.topic.clone(), p, o)))
            .collect()
    }

    fn decide(&mut self, commit: bool, by: Decider, time_ms: i64) {
        self.decided_by = Some(by);
        self.decided_ms = Some(time_ms);
        self.phase = if !commit {
            Phase::RolledBack
        } else if self.staged.is_empty() {
            Phase::Committed
        } else {
            Phase::Committing
        };
    }

    /// Apply one committed op (deterministic; an op that no longer fits changes nothing).
    pub fn apply_op(&mut self, op: &TxnOp, time_ms: i64) {
        match op {
            TxnOp::Begin {
                timeout_ms,
                check_url,
            } => {
                if self.exists || self.void {
                    return;
                }
                self.exists = true;
                self.created_ms = time_ms;
                self.timeout_ms = *timeout_ms;
                self.expires_at_ms = time_ms.saturating_add(*timeout_ms as i64);
                self.check_url = check_url.clone();
            }
            TxnOp::Stage(s) => {
                if !self.is_open()
                    || time_ms >= self.expires_at_ms
                    || self.staged.len() >= MAX_STAGED_REQUESTS
                    || self.staged.iter().any(|x| x.object == s.object)
                    || s.idempotency_key.is_some()
                        && self.staged_with_key(s.idempotency_key.as_deref()).is_some()
                {
                    return;
                }
                self.staged.push(s.clone());
            }
            TxnOp::Decide { commit, by } => {
                if self.is_open() {
                    self.decide(*commit, *by, time_ms);
                }
            }
            TxnOp::Checked { n, next_check_ms } => {
                if self.is_open() && *n == self.checks + 1 {
                    self.checks = *n;
                    self.next_check_ms = *next_check_ms;
                }
            }
            TxnOp::Applied { from, offsets } => {
                if self.phase != Phase::Committing || *from as usize != self.applied.len() {
                    return;
                }
                for o in offsets.iter().take(self.staged.len() - self.applied.len()) {
                    self.applied.push(o.clone());
                }
                if self.applied.len() == self.staged.len() {
                    self.phase = Phase::Committed;
                }
            }
            TxnOp::Void => {
                if !self.exists {
                    self.void = true;
                }
            }
        }
    }

    /// The staged request with this idempotency key, if any.
    pub fn staged_with_key(&self, key: Option<&str>) -> Option<&Staged> {
        let key = key?;
        self.staged
            .iter()
            .find(|s| s.idempotency_key.as_deref() == Some(key))
    }
}

impl StateMachine for TxnState {
    type Op = TxnOp;

    fn apply(&mut self, op: &TxnOp, time_ms: i64) {
        self.apply_op(op, time_ms)
    }

    fn snapshot(&self) -> crate::Result<Vec<u8>> {
        statelog::snapshot_json(self)
    }

    fn restore(bytes: &[u8]) -> DecodeResult<Self> {
        let s: TxnState = statelog::restore_json(bytes)?;
        if s.format == 0 || s.format > TXN_STATE_FORMAT {
            return Err(DecodeError::UnsupportedVersion {
                found: u16::try_from(s.format).unwrap_or(u16::MAX),
                supported: TXN_STATE_FORMAT as u16,
            });
        }
        if s.applied.len() > s.staged.len() {
            return Err(crate::codec::invalid(
                "txn.applied",
                "more applied requests than staged",
            ));
        }
        Ok(s)
    }
}

fn not_found(id: &str) -> TxnError {
    TxnError::NotFound(id.to_string())
}

fn closed(id: &str, s: &TxnState) -> TxnError {
    let reason = match s.phase {
        Phase::Open => "its timeout has passed: no more records can be staged".to_string(),
        Phase::Committing | Phase::Committed => "it was committed".to_string(),
        Phase::RolledBack => match s.decided_by {
            Some(Decider::Timeout) => "it was rolled back at its timeout".to_string(),
            Some(Decider::Checks) => {
                format!("it was rolled back after {MAX_CHECKS} check-backs without an answer")
            }
            Some(Decider::CheckBack) => "the check-back answered rollback".to_string(),
            _ => "it was rolled back".to_string(),
        },
    };
    TxnError::Closed {
        id: id.to_string(),
        reason,
    }
}

/// Check a `check_url`: absolute `http` or `https` with a host, no credentials, no fragment.
pub fn validate_check_url(s: &str) -> Result<(), TxnError> {
    if s.len() > MAX_CHECK_URL {
        return Err(TxnError::InvalidCheckUrl(format!(
            "longer than {MAX_CHECK_URL} bytes"
        )));
    }
    let u = url::Url::parse(s).map_err(|e| TxnError::InvalidCheckUrl(e.to_string()))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(TxnError::InvalidCheckUrl(format!(
            "scheme {:?}: use http or https",
            u.scheme()
        )));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(TxnError::InvalidCheckUrl("no host".into()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(TxnError::InvalidCheckUrl(
            "credentials in the URL are not accepted".into(),
        ));
    }
    if u.fragment().is_some() {
        return Err(TxnError::InvalidCheckUrl("no fragment allowed".into()));
    }
    Ok(())
}

/// Check `timeout_ms`: 1 ms to 24 h (default 60 s).
pub fn validate_timeout(t: Option<u64>) -> Result<u64, TxnError> {
    let t = t.unwrap_or(DEFAULT_TIMEOUT_MS);
    if t == 0 || t > MAX_TIMEOUT_MS {
        return Err(TxnError::Invalid(format!(
            "timeout_ms must be 1 to {MAX_TIMEOUT_MS}"
        )));
    }
    Ok(t)
}

/// What a staging plan answers: the records this request staged (a retry with the same
/// `Idempotency-Key`: the first request's).
pub type StagePlan = Result<(Vec<TxnOp>, u32), TxnError>;

/// Plan staging `s` in transaction `id`.
pub fn plan_stage(id: &str, st: &TxnState, time_ms: i64, s: &Staged) -> StagePlan {
    if !st.exists {
        return Err(not_found(id));
    }
    if st.phase != Phase::Open || time_ms >= st.expires_at_ms {
        return Err(closed(id, st));
    }
    if let Some(first) = st.staged_with_key(s.idempotency_key.as_deref()) {
        return Ok((vec![], first.records));
    }
    if st.staged.len() >= MAX_STAGED_REQUESTS {
        return Err(TxnError::Invalid(format!(
            "a transaction holds at most {MAX_STAGED_REQUESTS} staging requests"
        )));
    }
    Ok((vec![TxnOp::Stage(s.clone())], s.records))
}

/// Plan the producer's commit: `Decide{commit}` if open; nothing if already decided to commit.
pub fn plan_commit(id: &str, st: &TxnState) -> Result<Vec<TxnOp>, TxnError> {
    if !st.exists {
        return Err(not_found(id));
    }
    match st.phase {
        Phase::Open => Ok(vec![TxnOp::Decide {
            commit: true,
            by: Decider::Client,
        }]),
        Phase::Committing | Phase::Committed => Ok(vec![]),
        Phase::RolledBack => Err(closed(id, st)),
    }
}

/// Plan the producer's rollback: `Decide{rollback}` if open; nothing if already rolled back.
pub fn plan_rollback(id: &str, st: &TxnState) -> Result<Vec<TxnOp>, TxnError> {
    if !st.exists {
        return Err(not_found(id));
    }
    match st.phase {
        Phase::Open => Ok(vec![TxnOp::Decide {
            commit: false,
            by: Decider::Client,
        }]),
        Phase::RolledBack => Ok(vec![]),
        Phase::Committing | Phase::Committed => Err(closed(id, st)),
    }
}

/// What a check-back answered (`Unknown` also for no answer, an error or a bad body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Commit,
    Rollback,
    Unknown,
}

/// Backoff before check `n + 1` after check `n` answered unknown: `initial × 2^(n-1)`, capped.
pub fn check_backoff_ms(n: u32, initial_ms: u64, max_ms: u64) -> u64 {
    let shift = n.saturating_sub(1).min(30);
    initial_ms.saturating_mul(1u64 << shift).min(max_ms.max(1))
}

/// Plan what check-back number `n` answered, at `time_ms`: a definite answer decides; unknown
/// counts the check and schedules the next, and the `MAX_CHECKS`-th unknown rolls back.
/// Nothing if the transaction was decided meanwhile or check `n` was already counted.
pub fn plan_checked(
    st: &TxnState,
    n: u32,
    status: CheckStatus,
    time_ms: i64,
    backoff: (u64, u64),
) -> Vec<TxnOp> {
    if !st.is_open() || n != st.checks + 1 {
        return vec![];
    }
    match status {
        CheckStatus::Commit => vec![TxnOp::Decide {
            commit: true,
            by: Decider::CheckBack,
        }],
        CheckStatus::Rollback => vec![TxnOp::Decide {
            commit: false,
            by: Decider::CheckBack,
        }],
        CheckStatus::Unknown => {
            let next = time_ms.saturating_add(check_backoff_ms(n, backoff.0, backoff.1) as i64);
            let mut ops = vec![TxnOp::Checked {
                n,
                next_check_ms: next,
            }];
            if n >= MAX_CHECKS {
                ops.push(TxnOp::Decide {
                    commit: false,
                    by: Decider::Checks,
                });
            }
            ops
        }
    }
}

/// Plan the rollback of an open transaction without `check_url` that has expired by `time_ms`.
pub fn plan_timeout(st: &TxnState, time_ms: i64) -> Vec<TxnOp> {
    if st.is_open() && st.check_url.is_none() && time_ms >= st.expires_at_ms {
        vec![TxnOp::Decide {
            commit: false,
            by: Decider::Timeout,
        }]
    } else {
        vec![]
    }
}

/// Plan `Applied` for requests `from..` with these offsets, if nobody recorded them first.
pub fn plan_applied(st: &TxnState, from: u32, offsets: Vec<Vec<(u32, u64)>>) -> Vec<TxnOp> {
    if st.phase == Phase::Committing && st.applied.len() == from as usize && !offsets.is_empty() {
        vec![TxnOp::Applied { from, offsets }]
    } else {
        vec![]
    }
}

#[cfg(test)]
mod tests;
