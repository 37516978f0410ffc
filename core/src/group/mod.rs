//! Consumer groups: the group's state machine (members, generation, assignment, committed
//! offsets and the members' read positions) and its operations, all pure and deterministic so
//! every gateway replaying the group's state log reaches the same state.
//!
//! - [`assign`]: which live member owns which partition.
//! - [`GroupState::apply`]: one operation at the time of its log entry. Before any operation the
//!   members whose session expired at that time are dropped (so expiry is decided by the entry
//!   time, the same on every replica, and committed by whichever gateway writes next). An
//!   operation that is not valid in the state it meets changes nothing but that expiry and
//!   returns why ([`GroupError`]); a gateway learns its own operation's fate that way.
//! - Every change of membership or of the partitions read bumps the generation and recomputes the
//!   assignment; every partition loses its position, so it restarts at its committed offset
//!   (at-least-once: nothing polled but not committed before a rebalance is skipped).
//! - A commit never moves a committed offset backwards (an explicit [`GroupOp::Reset`] does).

pub mod assign;
pub mod service;

use assign::Assignment;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where a member starts reading a partition nothing was committed for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
}

/// A live member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub topics: BTreeSet<String>,
    pub session_timeout_ms: u64,
    /// Entry time of its last operation (join, heartbeat, poll, commit).
    pub last_seen_ms: i64,
    pub start: StartFrom,
    /// Canonical text of its record filter, if any.
    pub filter: Option<String>,
}

impl Member {
    pub fn expires_ms(&self) -> i64 {
        self.last_seen_ms
            .saturating_add(i64::try_from(self.session_timeout_ms).unwrap_or(i64::MAX))
    }
}

/// One partition of a topic the group reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub owner: Option<String>,
    /// The offset the group will read next, as committed.
    pub committed: Option<u64>,
    /// Where the owner reads next within its session; `None`: at `committed` (else `start`).
    pub position: Option<u64>,
}

/// A topic as the proposer of an operation saw it: its incarnation and partition count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub id: String,
    pub partitions: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    /// The topic's incarnation; a topic deleted and created again starts over.
    pub id: String,
    /// One per partition.
    pub partitions: Vec<PartitionState>,
}

/// Version of the group state's JSON (in state-log snapshots); readers refuse newer ones.
pub const GROUP_STATE_FORMAT: u32 = 1;

fn state_format() -> u32 {
    GROUP_STATE_FORMAT
}

/// The whole state of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    #[serde(default = "state_format")]
    pub format: u32,
    /// False before the first join and after a delete.
    pub exists: bool,
    /// Bumped on every rebalance; never goes back, not even across a delete.
    pub generation: u64,
    pub members: BTreeMap<String, Member>,
    pub topics: BTreeMap<String, TopicState>,
}

/// A position change of one partition by a poll: the owner read from `from` up to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advance {
    pub topic: String,
    pub partition: u32,
    pub from: u64,
    pub to: u64,
}

/// An offset to commit (the next offset to read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// The operations of the group state log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupOp {
    /// A new member (its id minted by the proposer). Creates the group if needed.
    Join {
        member_id: String,
        topics: BTreeMap<String, TopicInfo>,
        session_timeout_ms: u64,
        start: StartFrom,
        filter: Option<String>,
    },
    Heartbeat {
        member_id: String,
    },
    Leave {
        member_id: String,
    },
    /// The topics' current incarnations and partition counts (a topic grew, or was re-created).
    Topics {
        topics: BTreeMap<String, TopicInfo>,
    },
    /// A poll moved the member's positions; with `commit` the committed offsets too
    /// (`auto_commit`: at-most-once).
    Poll {
        member_id: String,
        advances: Vec<Advance>,
        commit: bool,
    },
    Commit {
        member_id: String,
        generation: u64,
        offsets: Vec<CommitOffset>,
    },
    /// Set committed offsets (administrator); positions of those partitions restart there.
    Reset {
        topic: String,
        info: TopicInfo,
        offsets: BTreeMap<u32, u64>,
    },
    Delete,
    /// Nothing but the expiry of members whose session ran out.
    Tick,
}

/// Why an operation was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("group not found")]
    GroupNotFound,
    #[error("member {0:?} not found (it left or its session expired; join again)")]
    MemberNotFound(String),
    #[error("generation {given} is not the current generation {current}; heartbeat to learn the new assignment")]
    StaleGeneration { given: u64, current: u64 },
    #[error("partition {topic}/{partition} is not assigned to this member")]
    NotAssigned { topic: String, partition: u32 },
    /// A poll's start position is no longer the partition's position (another poll of the
    /// same member, or a reset, got there first): read again.
    #[error("the position of {topic}/{partition} moved; poll again")]
    PositionMoved { topic: String, partition: u32 },
    #[error("{0}")]
    Invalid(String),
}

impl Default for GroupState {
    fn default() -> Self {
        Self {
            format: GROUP_STATE_FORMAT,
            exists: false,
            generation: 0,
            members: BTreeMap::new(),
            topics: BTreeMap::new(),
        }
    }
}

impl GroupState {
    /// The live members at `now_ms` (those whose session has not expired).
    pub fn live_at(&self, now_ms: i64) -> impl Iterator<Item = (&String, &Member)> {
        self.members
            .iter()
            .filter(move |(_, m)| m.expires_ms() > now_ms)
    }

    /// Whether some member's session has expired by `now_ms` but is not yet committed.
    pub fn expiry_due(&self, now_ms: i64) -> bool {
        self.members.values().any(|m| m.expires_ms() <= now_ms)
    }

    /// The state as it will be once the expiries due at `now_ms` are applied.
    pub fn at(&self, now_ms: i64) -> GroupState {
        let mut s = self.clone();
        s.expire(now_ms);
        s
    }

    /// [`at`](Self::at) for a group that exists; the state as is otherwise.
    pub fn at_if_exists(&self, now_ms: i64) -> GroupState {
        if self.exists {
            self.at(now_ms)
        } else {
            self.clone()
        }
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }

    fn partition_mut(&mut self, topic: &str, partition: u32) -> Option<&mut PartitionState> {
        self.topics
            .get_mut(topic)?
            .partitions
            .get_mut(partition as usize)
    }

    /// The partitions `member` owns, sorted.
    pub fn assigned(&self, member: &str) -> Vec<(String, u32)> {
        self.topics
            .iter()
            .flat_map(|(t, ts)| {
                ts.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.owner.as_deref() == Some(member))
                    .map(move |(i, _)| (t.clone(), i as u32))
            })
            .collect()
    }

    /// Where the owner of a partition reads next: its position, else the committed offset.
    pub fn read_from(&self, topic: &str, partition: u32) -> Option<u64> {
        let p = self.partition(topic, partition)?;
        p.position.or(p.committed)
    }

    fn expire(&mut self, now_ms: i64) -> bool {
        let before = self.members.len();
        self.members.retain(|_, m| m.expires_ms() > now_ms);
        let changed = self.members.len() != before;
        if changed {
            self.rebalance();
        }
        changed
    }

    /// New generation and assignment. Every partition loses its position and restarts at its
    /// committed offset (the contract: "after a rebalance a partition restarts at its committed
    /// offset"), so records polled but not committed before the rebalance — a commit refused as
    /// `stale_generation`, or lost — are delivered again, never skipped.
    fn rebalance(&mut self) {
        self.generation += 1;
        let subs: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        let counts: BTreeMap<String, u32> = self
            .topics
            .iter()
            .map(|(t, ts)| (t.clone(), ts.partitions.len() as u32))
            .collect();
        let mut previous: Assignment = BTreeMap::new();
        for (t, ts) in &self.topics {
            for (i, p) in ts.partitions.iter().enumerate() {
                if let Some(o) = &p.owner {
                    previous.insert((t.clone(), i as u32), o.clone());
                }
            }
        }
        let next = assign::assign(&subs, &counts, &previous);
        for (t, ts) in self.topics.iter_mut() {
            for (i, p) in ts.partitions.iter_mut().enumerate() {
                p.position = None;
                p.owner = next.get(&(t.clone(), i as u32)).cloned();
            }
        }
    }

    /// Bring topic incarnations and partition counts up to date; true if anything changed.
    fn refresh_topics(&mut self, infos: &BTreeMap<String, TopicInfo>) -> bool {
        let mut changed = false;
        for (name, info) in infos {
            let ts = self.topics.entry(name.clone()).or_default();
            if ts.id != info.id {
                *ts = TopicState {
                    id: info.id.clone(),
                    partitions: Vec::new(),
                };
                changed = true;
            }
            let n = info.partitions as usize;
            if ts.partitions.len() < n {
                ts.partitions.resize_with(n, PartitionState::default);
                changed = true;
            }
        }
        changed
    }

    fn member_mut(&mut self, id: &str) -> Result<&mut Member, GroupError> {
        self.members
            .get_mut(id)
            .ok_or_else(|| GroupError::MemberNotFound(id.to_string()))
    }

    fn owned_by(&self, member: &str, topic: &str, partition: u32) -> Result<(), GroupError> {
        match self.partition(topic, partition) {
            Some(p) if p.owner.as_deref() == Some(member) => Ok(()),
            _ => Err(GroupError::NotAssigned {
                topic: topic.to_string(),
                partition,
            }),
        }
    }

    /// Apply `op` at the entry time `now_ms`: first the expiries due then, if valid, the op.
    pub fn apply(&mut self, op: &GroupOp, now_ms: i64) -> Result<(), GroupError> {
        if !self.exists && !matches!(op, GroupOp::Join { .. }) {
            return Err(GroupError::GroupNotFound);
        }
        // Decoded defensively: a log entry cannot make a state larger than topics can be.
        let infos: Vec<&TopicInfo> = match op {
            GroupOp::Join { topics, .. } | GroupOp::Topics { topics } => topics.values().collect(),
            GroupOp::Reset { info, .. } => vec![info],
            _ => Vec::new(),
        };
        if infos
            .iter()
            .any(|i| i.partitions > crate::topic::MAX_PARTITIONS)
        {
            return Err(GroupError::Invalid(format!(
                "more than {} partitions",
                crate::topic::MAX_PARTITIONS
            )));
        }
        self.expire(now_ms);
        match op {
            GroupOp::Join {
                member_id,
                topics,
                session_timeout_ms,
                start,
                filter,
            } => {
                if self.members.contains_key(member_id) {
                    return Err(GroupError::Invalid(format!(
                        "member {member_id:?} exists already"
                    )));
                }
                self.exists = true;
                self.refresh_topics(topics);
                self.members.insert(
                    member_id.clone(),
                    Member {
                        topics: topics.keys().cloned().collect(),
                        session_timeout_ms: *session_timeout_ms,
                        last_seen_ms: now_ms,
                        start: *start,
                        filter: filter.clone(),
                    },
                );
                self.rebalance();
            }
            GroupOp::Heartbeat { member_id } => {
                self.member_mut(member_id)?.last_seen_ms = now_ms;
            }
            GroupOp::Leave { member_id } => {
                self.member_mut(member_id)?;
                self.members.remove(member_id);
                self.rebalance();
            }
            GroupOp::Topics { topics } => {
                if self.refresh_topics(topics) {
                    self.rebalance();
                }
            }
            GroupOp::Poll {
                member_id,
                advances,
                commit,
            } => {
                self.member_mut(member_id)?;
                for a in advances {
                    self.owned_by(member_id, &a.topic, a.partition)?;
                    let at = self.read_from(&a.topic, a.partition);
                    if at.is_some_and(|at| at != a.from) {
                        return Err(GroupError::PositionMoved {
                            topic: a.topic.clone(),
                            partition: a.partition,
                        });
                    }
                }
                for a in advances {
                    if let Some(p) = self.partition_mut(&a.topic, a.partition) {
                        p.position = Some(a.to);
                        if *commit {
                            p.committed = Some(p.committed.map_or(a.to, |c| c.max(a.to)));
                        }
                    }
                }
                self.member_mut(member_id)?.last_seen_ms = now_ms;
            }
            GroupOp::Commit {
                member_id,
                generation,
                offsets,
            } => {
                self.member_mut(member_id)?;
                if *generation != self.generation {
                    return Err(GroupError::StaleGeneration {
                        given: *generation,
                        current: self.generation,
                    });
                }
                for o in offsets {
                    self.owned_by(member_id, &o.topic, o.partition)?;
                }
                for o in offsets {
                    if let Some(p) = self.partition_mut(&o.topic, o.partition) {
                        let c = p.committed.map_or(o.offset, |c| c.max(o.offset));
                        p.committed = Some(c);
                        if p.position.is_some_and(|pos| pos < c) {
                            p.position = Some(c);
                        }
                    }
                }
                self.member_mut(member_id)?.last_seen_ms = now_ms;
            }
            GroupOp::Reset {
                topic,
                info,
                offsets,
            } => {
                let mut one = BTreeMap::new();
                one.insert(topic.clone(), info.clone());
                self.refresh_topics(&one);
                for (p, o) in offsets {
                    if let Some(ps) = self.partition_mut(topic, *p) {
                        ps.committed = Some(*o);
                        ps.position = None;
                    }
                }
                // Fences commits made from positions before the reset.
                self.rebalance();
            }
            GroupOp::Delete => {
                *self = GroupState {
                    exists: false,
                    generation: self.generation + 1,
                    ..Default::default()
                };
            }
            GroupOp::Tick => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
