//! The groups of one process: each group's [`GroupState`] lives in its own [`StateLog`] under
//! `groups/{group}` (entries `groups/{group}/log/{seq}`, snapshots `groups/{group}/snap/{seq}`),
//! so every gateway serves every member and concurrent operations of one gateway on one group
//! share one create-only PUT per round trip.

use super::{GroupError, GroupOp, GroupState, GROUP_STATE_FORMAT};
use crate::clock::Clock;
use crate::error::Result;
use crate::statelog::{self, StateLog, StateLogConfig, StateMachine, View};
use crate::store::{self, DynStore};
use object_store::path::Path;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

impl StateMachine for GroupState {
    type Op = GroupOp;

    fn apply(&mut self, op: &GroupOp, time_ms: i64) {
        // Ops are validated when planned; one refused here (a bug or a corrupt log) changes
        // nothing but the expiries due, on every replica alike.
        if let Err(e) = GroupState::apply(self, op, time_ms) {
            tracing::warn!(error = %e, "group state log holds an op its state refuses; ignored");
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        statelog::snapshot_json(self)
    }

    fn restore(bytes: &[u8]) -> crate::codec::DecodeResult<Self> {
        let state: GroupState = statelog::restore_json(bytes)?;
        if state.format == 0 || state.format > GROUP_STATE_FORMAT {
            return Err(crate::codec::DecodeError::UnsupportedVersion {
                found: u16::try_from(state.format).unwrap_or(u16::MAX),
                supported: GROUP_STATE_FORMAT as u16,
            });
        }
        Ok(state)
    }
}

/// The answer to a proposal: the state right after the op, or why it was refused.
pub type Proposed = std::result::Result<GroupState, GroupError>;

pub struct Groups {
    store: DynStore,
    clock: Arc<dyn Clock>,
    cfg: StateLogConfig,
    writer: [u8; 16],
    logs: tokio::sync::Mutex<HashMap<String, Arc<StateLog<GroupState>>>>,
}

/// How long a group's state-log round waits for more proposals: one group writes at most one
/// entry per this + a PUT on each gateway, however many members poll and commit through it.
pub const GROUP_COMMIT_LINGER: Duration = Duration::from_millis(5);

/// The key prefix of a group's state log.
pub fn prefix(group: &str) -> String {
    format!("groups/{group}")
}

impl Groups {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, writer: [u8; 16]) -> Self {
        Self {
            store,
            clock,
            cfg: StateLogConfig {
                linger: GROUP_COMMIT_LINGER,
                ..Default::default()
            },
            writer,
            logs: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The group's state log, opened on first use. Logs of groups that do not exist are not
    /// kept, so looking up random names costs no memory.
    async fn log(&self, group: &str) -> Result<Arc<StateLog<GroupState>>> {
        if let Some(l) = self.logs.lock().await.get(group) {
            return Ok(l.clone());
        }
        let log = StateLog::open(
            self.store.clone(),
            prefix(group),
            self.clock.clone(),
            self.cfg.clone(),
            self.writer,
        )
        .await?;
        let mut logs = self.logs.lock().await;
        if let Some(l) = logs.get(group) {
            return Ok(l.clone());
        }
        if log.seq() > 0 {
            logs.insert(group.to_string(), log.clone());
        }
        Ok(log)
    }

    /// The group's state, confirmed current within `max_staleness`.
    pub async fn state(&self, group: &str, max_staleness: Duration) -> Result<View<GroupState>> {
        self.log(group).await?.read(max_staleness).await
    }

    /// Commit the op `make` builds from the current state (planned again if the round loses a
    /// race). A refused op writes nothing but the expiries it found due, so "whichever gateway
    /// notices" commits them.
    pub async fn propose<F>(&self, group: &str, mut make: F) -> Result<Proposed>
    where
        F: FnMut(&GroupState, i64) -> std::result::Result<Option<GroupOp>, GroupError>
            + Send
            + 'static,
    {
        let log = self.log(group).await?;
        let committed = log
            .propose(move |state: &GroupState, now: i64| {
                let tick = || {
                    if state.exists && state.expiry_due(now) {
                        vec![GroupOp::Tick]
                    } else {
                        Vec::new()
                    }
                };
                match make(state, now) {
                    Err(e) => (tick(), Err(e)),
                    Ok(None) => (tick(), Ok(state.at_if_exists(now))),
                    Ok(Some(op)) => {
                        let mut next = state.clone();
                        match next.apply(&op, now) {
                            Ok(()) => (vec![op], Ok(next)),
                            Err(e) => (tick(), Err(e)),
                        }
                    }
                }
            })
            .await?;
        if committed.seq > 0 && !self.logs.lock().await.contains_key(group) {
            self.logs.lock().await.insert(group.to_string(), log);
        }
        Ok(committed.answer)
    }

    /// Names of every group with a state log (some may be deleted: check `exists`).
    pub async fn names(&self) -> Result<Vec<String>> {
        store::list_dirs(&*self.store, &Path::from("groups")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statelog::StateMachine;

    #[test]
    fn snapshots_round_trip_and_refuse_newer_formats() {
        let mut s = GroupState::default();
        let op: GroupOp = serde_json::from_str(
            r#"{"Join":{"member_id":"m-1","topics":{"t":{"id":"x","partitions":2}},
                "session_timeout_ms":1000,"start":"latest","filter":null}}"#,
        )
        .unwrap();
        StateMachine::apply(&mut s, &op, 5);
        assert_eq!(s.assigned("m-1").len(), 2);
        let bytes = s.snapshot().unwrap();
        assert_eq!(<GroupState as StateMachine>::restore(&bytes).unwrap(), s);
        let newer = String::from_utf8(bytes)
            .unwrap()
            .replace(r#""format":1"#, r#""format":2"#);
        assert!(<GroupState as StateMachine>::restore(newer.as_bytes()).is_err());
        assert!(<GroupState as StateMachine>::restore(b"{").is_err());
        // An op the state refuses changes nothing (here: a second join of the same id).
        let before = s.clone();
        StateMachine::apply(&mut s, &op, 6);
        assert_eq!(s, before);
    }
}
