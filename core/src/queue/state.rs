//! A queue's state machine (kept in a [`StateLog`](crate::statelog::StateLog)) and the pure
//! planning functions that turn receive / ack / nack / extend / redrive requests into its ops.
//!
//! Per partition the state keeps a frontier `next`: offsets below it were admitted (leased,
//! held, skipped by the filter, or finished); offsets at or above it are fresh and implicitly
//! ready. Only admitted records that are not finished are kept (`recs`), so memory grows with
//! the records in flight, never with the topic. Acked records leave `recs`; dead-lettered ones
//! move to `dead` (for redrive); the history of the most recently finished ones is kept in
//! `done` (bounded).
//!
//! A record's lease is identified by `lease` (a counter of the queue): the receipt a receiver
//! holds names (partition, offset, lease), so an old receipt never matches a newer lease.

use crate::codec::DecodeResult;
use crate::error::Result;
use crate::statelog::{restore_json, snapshot_json, StateMachine};
use imbl::{OrdMap, OrdSet, Vector};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// Most recent finished records whose history is kept.
pub const DONE_KEEP: usize = 10_000;
/// Events kept per record (the oldest are dropped beyond).
pub const HISTORY_KEEP: usize = 64;

pub type Pos = (u32, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Leased,
    Acked,
    Nacked,
    Expired,
    DeadLettered,
    Redriven,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: i64,
    pub event: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Waiting to be (re)delivered from `at`.
    Ready {
        at: i64,
    },
    Leased {
        lease: u64,
        until: i64,
    },
    /// Out of deliveries: waiting for its copy in the dead-letter topic.
    Dying {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rec {
    pub deliveries: u32,
    pub phase: Phase,
    /// Hash of the record key (ordering "key" only).
    #[serde(default)]
    pub key: Option<u64>,
    pub history: Vec<Event>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub deliveries: u32,
    pub last_lease: u64,
    /// True if acked, false if dead-lettered.
    pub acked: bool,
    pub reason: Option<String>,
    pub history: Vec<Event>,
}

/// An operation of the queue's state log. Every op is checked again when applied and ignored
/// if it no longer fits (it cannot happen for planned ops; it keeps a corrupt log harmless).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueOp {
    /// First op of a queue: where each partition starts.
    Start {
        next: Vec<(u32, u64)>,
    },
    /// Advance a partition's frontier over records nobody will see (filtered out, or deleted by
    /// retention).
    Skip {
        p: u32,
        to: u64,
    },
    /// Admit the record at the frontier: lease it, or hold it (per-key order) when `lease` is
    /// `None`.
    Admit {
        p: u32,
        o: u64,
        key: Option<u64>,
        lease: Option<(u64, i64)>,
        gw: Option<String>,
    },
    /// Lease an admitted record that is ready (or whose lease expired).
    Lease {
        p: u32,
        o: u64,
        lease: u64,
        until: i64,
        gw: Option<String>,
    },
    Ack {
        p: u32,
        o: u64,
        lease: u64,
    },
    /// `dead`: this was the last delivery (decided with the config when planned).
    Nack {
        p: u32,
        o: u64,
        lease: u64,
        delay_ms: i64,
        reason: Option<String>,
        dead: bool,
    },
    Extend {
        p: u32,
        o: u64,
        lease: u64,
        until: i64,
    },
    /// A lease expired on its last delivery.
    Doom {
        p: u32,
        o: u64,
    },
    /// Its dead-letter copy is written.
    Buried {
        p: u32,
        o: u64,
    },
    /// Dead-lettered records become ready again with their delivery count starting over.
    Redrive {
        records: Vec<Pos>,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueState {
    pub started: bool,
    pub next: OrdMap<u32, u64>,
    /// Values are shared (`Arc`): planning works on a clone of the state, and a change then
    /// copies a B-tree leaf of 16 pointers, not 16 records with their histories.
    pub recs: OrdMap<Pos, Arc<Rec>>,
    /// (due, partition, offset) of every Ready (due = at) and Leased (due = until) record.
    pub timers: OrdSet<(i64, u32, u64)>,
    /// Pending offsets per (partition, key hash), for per-key order.
    pub keys: OrdMap<(u32, u64), OrdSet<u64>>,
    pub dying: OrdSet<Pos>,
    pub dead: OrdMap<Pos, Arc<Finished>>,
    pub done: OrdMap<Pos, Arc<Finished>>,
    pub done_order: Vector<Pos>,
    pub lease_seq: u64,
    pub acked: u64,
    pub dead_lettered: u64,
    pub leased: u64,
}

/// What a snapshot holds (the indexes are rebuilt on restore).
#[derive(Serialize, Deserialize)]
struct Snapshot {
    started: bool,
    next: Vec<(u32, u64)>,
    recs: Vec<(Pos, Rec)>,
    dead: Vec<(Pos, Finished)>,
    done: Vec<(Pos, Finished)>,
    lease_seq: u64,
    acked: u64,
    dead_lettered: u64,
}

fn push_event(h: &mut Vec<Event>, e: Event) {
    if h.len() >= HISTORY_KEEP {
        h.remove(0);
    }
    h.push(e);
}

fn ev(at_ms: i64, event: EventKind, gateway: Option<String>, reason: Option<String>) -> Event {
    Event {
        at_ms,
        event,
        gateway,
        reason,
    }
}

impl QueueState {
    pub fn next_of(&self, p: u32) -> u64 {
        self.next.get(&p).copied().unwrap_or(0)
    }

    fn due(rec: &Rec) -> Option<i64> {
        match rec.phase {
            Phase::Ready { at } => Some(at),
            Phase::Leased { until, .. } => Some(until),
            Phase::Dying { .. } => None,
        }
    }

    /// Remove a record from `recs` and every index.
    fn take(&mut self, pos: Pos) -> Option<Rec> {
        let rec = Arc::unwrap_or_clone(self.recs.remove(&pos)?);
        if let Some(d) = Self::due(&rec) {
            self.timers.remove(&(d, pos.0, pos.1));
        }
        if matches!(rec.phase, Phase::Leased { .. }) {
            self.leased = self.leased.saturating_sub(1);
        }
        if matches!(rec.phase, Phase::Dying { .. }) {
            self.dying.remove(&pos);
        }
        if let Some(k) = rec.key {
            if let Some(set) = self.keys.get_mut(&(pos.0, k)) {
                set.remove(&pos.1);
                if set.is_empty() {
                    self.keys.remove(&(pos.0, k));
                }
            }
        }
        Some(rec)
    }

    /// Put a record into `recs` and every index (replacing one already there).
    fn put(&mut self, pos: Pos, rec: Rec) {
        self.take(pos);
        if let Some(d) = Self::due(&rec) {
            self.timers.insert((d, pos.0, pos.1));
        }
        if matches!(rec.phase, Phase::Leased { .. }) {
            self.leased += 1;
        }
        if matches!(rec.phase, Phase::Dying { .. }) {
            self.dying.insert(pos);
        }
        if let Some(k) = rec.key {
            self.keys.entry((pos.0, k)).or_default().insert(pos.1);
        }
        self.recs.insert(pos, Arc::new(rec));
    }

    fn finish(&mut self, pos: Pos, f: Finished) {
        if self.done.insert(pos, Arc::new(f)).is_none() {
            self.done_order.push_back(pos);
        }
        while self.done_order.len() > DONE_KEEP {
            if let Some(old) = self.done_order.pop_front() {
                self.done.remove(&old);
            }
        }
    }

    /// The record's current lease if it is `lease` and still valid at `time`.
    fn valid_lease(&self, pos: Pos, lease: u64, time: i64) -> bool {
        matches!(self.recs.get(&pos).map(|r| &r.phase), Some(Phase::Leased { lease: l, until })
            if *l == lease && *until > time)
    }

    /// Whether the record is the first pending one of its key (per-key order).
    fn first_of_key(&self, pos: Pos, key: Option<u64>) -> bool {
        match key {
            None => true,
            Some(k) => self
                .keys
                .get(&(pos.0, k))
                .and_then(|s| s.get_min().copied())
                .is_none_or(|first| first >= pos.1),
        }
    }
}

impl StateMachine for QueueState {
    type Op = QueueOp;

    fn apply(&mut self, op: &QueueOp, time: i64) {
        match op {
            QueueOp::Start { next } => {
                if !self.started {
                    self.started = true;
                    for (p, o) in next {
                        self.next.insert(*p, *o);
                    }
                }
            }
            QueueOp::Skip { p, to } => {
                if *to > self.next_of(*p) {
                    self.next.insert(*p, *to);
                }
            }
            QueueOp::Admit {
                p,
                o,
                key,
                lease,
                gw,
            } => {
                if *o != self.next_of(*p) || *o == u64::MAX {
                    return;
                }
                self.next.insert(*p, o + 1);
                let (phase, deliveries, history) = match lease {
                    Some((l, until)) => {
                        self.lease_seq = self.lease_seq.max(*l);
                        (
                            Phase::Leased {
                                lease: *l,
                                until: *until,
                            },
                            1,
                            vec![ev(time, EventKind::Leased, gw.clone(), None)],
                        )
                    }
                    None => (Phase::Ready { at: time }, 0, Vec::new()),
                };
                self.put(
                    (*p, *o),
                    Rec {
                        deliveries,
                        phase,
                        key: *key,
                        history,
                    },
                );
            }
            QueueOp::Lease {
                p,
                o,
                lease,
                until,
                gw,
            } => {
                let pos = (*p, *o);
                let Some(rec) = self.recs.get(&pos) else {
                    return;
                };
                let expired = match rec.phase {
                    Phase::Ready { at } if at <= time => None,
                    Phase::Leased { until, .. } if until <= time => Some(until),
                    _ => return,
                };
                let Some(mut rec) = self.take(pos) else {
                    return;
                };
                if let Some(at) = expired {
                    push_event(&mut rec.history, ev(at, EventKind::Expired, None, None));
                }
                rec.deliveries += 1;
                rec.phase = Phase::Leased {
                    lease: *lease,
                    until: *until,
                };
                push_event(
                    &mut rec.history,
                    ev(time, EventKind::Leased, gw.clone(), None),
                );
                self.lease_seq = self.lease_seq.max(*lease);
                self.put(pos, rec);
            }
            QueueOp::Ack { p, o, lease } => {
                let pos = (*p, *o);
                if !self.valid_lease(pos, *lease, time) {
                    return;
                }
                let Some(mut rec) = self.take(pos) else {
                    return;
                };
                push_event(&mut rec.history, ev(time, EventKind::Acked, None, None));
                self.acked += 1;
                self.finish(
                    pos,
                    Finished {
                        deliveries: rec.deliveries,
                        last_lease: *lease,
                        acked: true,
                        reason: None,
                        history: rec.history,
                    },
                );
            }
            QueueOp::Nack {
                p,
                o,
                lease,
                delay_ms,
                reason,
                dead,
            } => {
                let pos = (*p, *o);
                if !self.valid_lease(pos, *lease, time) {
                    return;
                }
                let Some(mut rec) = self.take(pos) else {
                    return;
                };
                push_event(
                    &mut rec.history,
                    ev(time, EventKind::Nacked, None, reason.clone()),
                );
                rec.phase = if *dead {
                    Phase::Dying {
                        reason: reason.clone().unwrap_or_else(|| "nacked".into()),
                    }
                } else {
                    Phase::Ready {
                        at: time.saturating_add(*delay_ms),
                    }
                };
                self.put(pos, rec);
            }
            QueueOp::Extend { p, o, lease, until } => {
                let pos = (*p, *o);
                if !self.valid_lease(pos, *lease, time) {
                    return;
                }
                if let Some(mut rec) = self.take(pos) {
                    rec.phase = Phase::Leased {
                        lease: *lease,
                        until: *until,
                    };
                    self.put(pos, rec);
                }
            }
            QueueOp::Doom { p, o } => {
                let pos = (*p, *o);
                let until = match self.recs.get(&pos).map(|r| &r.phase) {
                    Some(Phase::Leased { until, .. }) if *until <= time => *until,
                    _ => return,
                };
                if let Some(mut rec) = self.take(pos) {
                    push_event(&mut rec.history, ev(until, EventKind::Expired, None, None));
                    rec.phase = Phase::Dying {
                        reason: "visibility_timeout".into(),
                    };
                    self.put(pos, rec);
                }
            }
            QueueOp::Buried { p, o } => {
                let pos = (*p, *o);
                if !matches!(
                    self.recs.get(&pos).map(|r| &r.phase),
                    Some(Phase::Dying { .. })
                ) {
                    return;
                }
                if let Some(mut rec) = self.take(pos) {
                    let reason = match &rec.phase {
                        Phase::Dying { reason } => Some(reason.clone()),
                        _ => None,
                    };
                    push_event(
                        &mut rec.history,
                        ev(time, EventKind::DeadLettered, None, reason.clone()),
                    );
                    self.dead_lettered += 1;
                    let last_lease = 0;
                    self.dead.insert(
                        pos,
                        Arc::new(Finished {
                            deliveries: rec.deliveries,
                            last_lease,
                            acked: false,
                            reason,
                            history: rec.history,
                        }),
                    );
                }
            }
            QueueOp::Redrive { records } => {
                for pos in records {
                    if self.recs.contains_key(pos) {
                        continue;
                    }
                    let Some(f) = self.dead.remove(pos).map(Arc::unwrap_or_clone) else {
                        continue;
                    };
                    self.dead_lettered = self.dead_lettered.saturating_sub(1);
                    let mut history = f.history;
                    push_event(&mut history, ev(time, EventKind::Redriven, None, None));
                    self.put(
                        *pos,
                        Rec {
                            deliveries: 0,
                            phase: Phase::Ready { at: time },
                            key: None,
                            history,
                        },
                    );
                }
            }
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        snapshot_json(&Snapshot {
            started: self.started,
            next: self.next.iter().map(|(p, o)| (*p, *o)).collect(),
            recs: self.recs.iter().map(|(k, v)| (*k, (**v).clone())).collect(),
            dead: self.dead.iter().map(|(k, v)| (*k, (**v).clone())).collect(),
            done: self
                .done_order
                .iter()
                .filter_map(|k| self.done.get(k).map(|v| (*k, (**v).clone())))
                .collect(),
            lease_seq: self.lease_seq,
            acked: self.acked,
            dead_lettered: self.dead_lettered,
        })
    }

    fn restore(bytes: &[u8]) -> DecodeResult<Self> {
        let s: Snapshot = restore_json(bytes)?;
        let mut st = QueueState {
            started: s.started,
            next: s.next.into_iter().collect(),
            lease_seq: s.lease_seq,
            acked: s.acked,
            dead_lettered: s.dead_lettered,
            dead: s.dead.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            ..Default::default()
        };
        for (pos, rec) in s.recs {
            if st.recs.contains_key(&pos) {
                return Err(crate::codec::invalid(
                    "queue_state.recs",
                    format!("record {pos:?} twice"),
                ));
            }
            st.put(pos, rec);
        }
        for (pos, f) in s.done {
            st.finish(pos, f);
        }
        Ok(st)
    }
}

/// The queue settings planning needs (from its config).
#[derive(Clone, Debug)]
pub struct Rules {
    pub max_deliveries: u32,
    pub ordering_key: bool,
}

/// A fresh record the gateway read ahead of a partition's frontier.
#[derive(Clone, Copy, Debug)]
pub struct Fresh {
    pub offset: u64,
    pub key: Option<u64>,
    /// False if the queue's filter drops it.
    pub wanted: bool,
}

/// Records read ahead from one partition: `records` are consecutive offsets from `from`;
/// offsets below `from` that are at or above the frontier no longer exist (retention).
#[derive(Clone, Debug)]
pub struct Window {
    pub p: u32,
    pub from: u64,
    pub records: Vec<Fresh>,
}

/// A lease granted by a receive plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub p: u32,
    pub o: u64,
    pub lease: u64,
    pub deliveries: u32,
}

/// Plan a receive of up to `max` records leased until `until`: first records ready again
/// (nacked and due, or whose lease expired), oldest due first, then fresh records from the
/// windows in the order given. Expired leases on their last delivery are doomed instead
/// (dead-lettered with reason `visibility_timeout`).
pub fn plan_receive(
    st: &QueueState,
    rules: &Rules,
    windows: &[Window],
    max: usize,
    until: i64,
    time: i64,
    gw: Option<&str>,
) -> (Vec<QueueOp>, Vec<Grant>) {
    let mut ops = Vec::new();
    let mut grants = Vec::new();
    let mut lease = st.lease_seq;
    let gw = gw.map(str::to_string);
    let scan_limit = max.saturating_mul(4) + 1000;
    for &(due, p, o) in st
        .timers
        .range(..=(time, u32::MAX, u64::MAX))
        .take(scan_limit)
    {
        if grants.len() >= max {
            break;
        }
        let pos = (p, o);
        let Some(rec) = st.recs.get(&pos) else {
            continue;
        };
        if rules.ordering_key && !st.first_of_key(pos, rec.key) {
            continue;
        }
        if matches!(rec.phase, Phase::Leased { .. }) && rec.deliveries >= rules.max_deliveries {
            ops.push(QueueOp::Doom { p, o });
            continue;
        }
        debug_assert!(due <= time);
        lease += 1;
        ops.push(QueueOp::Lease {
            p,
            o,
            lease,
            until,
            gw: gw.clone(),
        });
        grants.push(Grant {
            p,
            o,
            lease,
            deliveries: rec.deliveries + 1,
        });
    }
    // Keys held or leased by this plan (per-key order among fresh records).
    let mut held: HashSet<(u32, u64)> = HashSet::new();
    for w in windows {
        if grants.len() >= max {
            break;
        }
        let mut next = st.next_of(w.p);
        if next < w.from {
            ops.push(QueueOp::Skip { p: w.p, to: w.from });
            next = w.from;
        }
        let mut skip_to = None;
        let first = next;
        for f in w.records.iter().filter(|f| f.offset >= first) {
            if f.offset != next || grants.len() >= max {
                break;
            }
            next += 1;
            if !f.wanted {
                skip_to = Some(next);
                continue;
            }
            if let Some(to) = skip_to.take() {
                ops.push(QueueOp::Skip { p: w.p, to });
            }
            let key = if rules.ordering_key { f.key } else { None };
            let blocked = key.is_some_and(|k| {
                held.contains(&(w.p, k)) || st.keys.get(&(w.p, k)).is_some_and(|s| !s.is_empty())
            });
            if let Some(k) = key {
                held.insert((w.p, k));
            }
            if blocked {
                ops.push(QueueOp::Admit {
                    p: w.p,
                    o: f.offset,
                    key,
                    lease: None,
                    gw: None,
                });
                continue;
            }
            lease += 1;
            ops.push(QueueOp::Admit {
                p: w.p,
                o: f.offset,
                key,
                lease: Some((lease, until)),
                gw: gw.clone(),
            });
            grants.push(Grant {
                p: w.p,
                o: f.offset,
                lease,
                deliveries: 1,
            });
        }
        if let Some(to) = skip_to {
            ops.push(QueueOp::Skip { p: w.p, to });
        }
    }
    (ops, grants)
}

/// Doom every expired lease on its last delivery (so dead letters need no receiver).
pub fn plan_expiries(st: &QueueState, rules: &Rules, time: i64, limit: usize) -> Vec<QueueOp> {
    st.timers
        .range(..=(time, u32::MAX, u64::MAX))
        .filter_map(|&(_, p, o)| {
            let rec = st.recs.get(&(p, o))?;
            (matches!(rec.phase, Phase::Leased { .. }) && rec.deliveries >= rules.max_deliveries)
                .then_some(QueueOp::Doom { p, o })
        })
        .take(limit)
        .collect()
}

/// What a receipt names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReceiptRef {
    pub p: u32,
    pub o: u64,
    pub lease: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    Expired,
    Invalid,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::Expired => "receipt_expired",
            Rejection::Invalid => "receipt_invalid",
        }
    }
}

/// What to do with receipts.
#[derive(Clone, Debug)]
pub enum Settle {
    Ack,
    Nack {
        delay_ms: i64,
        reason: Option<String>,
    },
    Extend {
        visibility_timeout_ms: i64,
    },
}

/// Plan acks / nacks / extends: one result per receipt (`None` = accepted). A receipt whose
/// lease is no longer valid at `time` is rejected (`receipt_expired`), never applied; a lease
/// number never handed out is `receipt_invalid`. An ack repeated after it was accepted is
/// accepted again (and changes nothing), so a client may retry an ack whose answer it lost.
pub fn plan_settle(
    st: &QueueState,
    rules: &Rules,
    receipts: &[Option<ReceiptRef>],
    action: &Settle,
    time: i64,
) -> (Vec<QueueOp>, Vec<Option<Rejection>>) {
    let mut ops = Vec::new();
    let mut seen = HashSet::new();
    let results = receipts
        .iter()
        .map(|r| {
            let Some(r) = r else {
                return Some(Rejection::Invalid);
            };
            let pos = (r.p, r.o);
            if r.lease == 0 || r.lease > st.lease_seq {
                return Some(Rejection::Invalid);
            }
            if !st.valid_lease(pos, r.lease, time) {
                let acked_already = matches!(action, Settle::Ack)
                    && st
                        .done
                        .get(&pos)
                        .is_some_and(|f| f.acked && f.last_lease == r.lease);
                return (!acked_already).then_some(Rejection::Expired);
            }
            if !seen.insert(pos) {
                return None; // the same receipt twice in one request: once is enough
            }
            let deliveries = st.recs.get(&pos).map_or(0, |x| x.deliveries);
            ops.push(match action {
                Settle::Ack => QueueOp::Ack {
                    p: r.p,
                    o: r.o,
                    lease: r.lease,
                },
                Settle::Nack { delay_ms, reason } => QueueOp::Nack {
                    p: r.p,
                    o: r.o,
                    lease: r.lease,
                    delay_ms: *delay_ms,
                    reason: reason.clone(),
                    dead: deliveries >= rules.max_deliveries,
                },
                Settle::Extend {
                    visibility_timeout_ms,
                } => QueueOp::Extend {
                    p: r.p,
                    o: r.o,
                    lease: r.lease,
                    until: time.saturating_add(*visibility_timeout_ms),
                },
            });
            None
        })
        .collect();
    (ops, results)
}

/// Counts for stats: (ready_redeliveries, in_flight, delayed, oldest due of the ready ones).
/// Fresh records (at or above the frontiers) are the caller's to add.
pub fn counts(st: &QueueState, time: i64) -> (u64, u64, u64, Option<i64>) {
    let mut ready = 0u64;
    let mut expired = 0u64;
    let mut oldest = None;
    for &(due, p, o) in st.timers.range(..=(time, u32::MAX, u64::MAX)) {
        oldest.get_or_insert(due);
        match st.recs.get(&(p, o)).map(|r| &r.phase) {
            Some(Phase::Leased { .. }) => expired += 1,
            _ => ready += 1,
        }
    }
    let waiting = (st.recs.len() as u64)
        .saturating_sub(st.leased)
        .saturating_sub(st.dying.len() as u64);
    let in_flight = st.leased.saturating_sub(expired);
    let delayed = waiting.saturating_sub(ready);
    (ready + expired, in_flight, delayed, oldest)
}

/// The state of one record as the history endpoint shows it, or `None` when the queue has not
/// reached it (fresh: the caller tells ready from beyond-the-end).
pub fn record_view(
    st: &QueueState,
    pos: Pos,
    time: i64,
) -> Option<(&'static str, u32, Vec<Event>)> {
    if let Some(rec) = st.recs.get(&pos) {
        let state = match rec.phase {
            Phase::Ready { at } if at > time => "delayed",
            Phase::Ready { .. } => "ready",
            Phase::Leased { until, .. } if until > time => "in_flight",
            Phase::Leased { .. } => "ready",
            Phase::Dying { .. } => "dead_lettered",
        };
        return Some((state, rec.deliveries, rec.history.clone()));
    }
    if let Some(f) = st.dead.get(&pos) {
        return Some(("dead_lettered", f.deliveries, f.history.clone()));
    }
    if let Some(f) = st.done.get(&pos) {
        return Some(("acked", f.deliveries, f.history.clone()));
    }
    (pos.1 < st.next_of(pos.0)).then(|| ("acked", 0, Vec::new()))
}

/// Plan a redrive of up to `max` dead-lettered records that `keep` accepts.
pub fn plan_redrive(
    st: &QueueState,
    max: usize,
    mut keep: impl FnMut(Pos, &Finished) -> bool,
) -> Vec<Pos> {
    st.dead
        .iter()
        .filter(|(pos, f)| keep(**pos, f))
        .map(|(pos, _)| *pos)
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(max: u32, key: bool) -> Rules {
        Rules {
            max_deliveries: max,
            ordering_key: key,
        }
    }

    fn window(p: u32, from: u64, n: u64, key: impl Fn(u64) -> Option<u64>) -> Window {
        Window {
            p,
            from,
            records: (from..from + n)
                .map(|o| Fresh {
                    offset: o,
                    key: key(o),
                    wanted: true,
                })
                .collect(),
        }
    }

    fn run(st: &mut QueueState, ops: &[QueueOp], time: i64) {
        for op in ops {
            st.apply(op, time);
        }
    }

    fn receive(
        st: &mut QueueState,
        r: &Rules,
        w: &[Window],
        max: usize,
        vt: i64,
        time: i64,
    ) -> Vec<Grant> {
        let (ops, g) = plan_receive(st, r, w, max, time + vt, time, Some("gw1"));
        run(st, &ops, time);
        g
    }

    fn settle(
        st: &mut QueueState,
        r: &Rules,
        g: &[Grant],
        a: Settle,
        time: i64,
    ) -> Vec<Option<Rejection>> {
        let refs: Vec<_> = g
            .iter()
            .map(|g| {
                Some(ReceiptRef {
                    p: g.p,
                    o: g.o,
                    lease: g.lease,
                })
            })
            .collect();
        let (ops, res) = plan_settle(st, r, &refs, &a, time);
        run(st, &ops, time);
        res
    }

    #[test]
    fn lease_ack_and_no_double_lease() {
        let r = rules(3, false);
        let mut st = QueueState::default();
        let w = [window(0, 0, 10, |_| None)];
        let a = receive(&mut st, &r, &w, 4, 1000, 0);
        assert_eq!(a.iter().map(|g| g.o).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        // A second receive planned on the new state gets the next ones, never the same.
        let b = receive(&mut st, &r, &w, 4, 1000, 1);
        assert_eq!(b.iter().map(|g| g.o).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
        assert_eq!(settle(&mut st, &r, &a, Settle::Ack, 2), vec![None; 4]);
        assert_eq!(st.acked, 4);
        // Acking again is accepted and changes nothing; an unknown lease is invalid.
        assert_eq!(settle(&mut st, &r, &a[..1], Settle::Ack, 3), vec![None]);
        assert_eq!(st.acked, 4);
        let bogus = Grant { lease: 999, ..a[0] };
        assert_eq!(
            settle(&mut st, &r, &[bogus], Settle::Ack, 3),
            vec![Some(Rejection::Invalid)]
        );
        let (ready, in_flight, delayed, _) = counts(&st, 3);
        assert_eq!((ready, in_flight, delayed), (0, 4, 0));
    }

    #[test]
    fn expired_receipt_is_rejected_and_redelivered_then_dead_lettered() {
        let r = rules(2, false);
        let mut st = QueueState::default();
        let w = [window(0, 0, 1, |_| None)];
        let a = receive(&mut st, &r, &w, 10, 100, 0);
        assert_eq!(a[0].deliveries, 1);
        // At the deadline the lease is over: the ack is refused and applies nothing.
        assert_eq!(
            settle(&mut st, &r, &a, Settle::Ack, 100),
            vec![Some(Rejection::Expired)]
        );
        let b = receive(&mut st, &r, &w, 10, 100, 100);
        assert_eq!((b[0].o, b[0].deliveries), (0, 2));
        assert_eq!(
            settle(&mut st, &r, &a, Settle::Ack, 101),
            vec![Some(Rejection::Expired)],
            "the old receipt stays expired once the record is leased again"
        );
        // The second (last) lease expires: the record is doomed, not leased a third time.
        assert!(receive(&mut st, &r, &w, 10, 100, 300).is_empty());
        assert!(st.dying.contains(&(0, 0)));
        run(&mut st, &[QueueOp::Buried { p: 0, o: 0 }], 301);
        assert_eq!(st.dead_lettered, 1);
        let (state, n, h) = record_view(&st, (0, 0), 302).unwrap();
        assert_eq!((state, n), ("dead_lettered", 2));
        let kinds: Vec<_> = h.iter().map(|e| e.event).collect();
        use EventKind::*;
        assert_eq!(kinds, vec![Leased, Expired, Leased, Expired, DeadLettered]);
        assert_eq!(h[4].reason.as_deref(), Some("visibility_timeout"));
        // Redrive: ready again with the count starting over.
        let picked = plan_redrive(&st, 10, |_, _| true);
        run(&mut st, &[QueueOp::Redrive { records: picked }], 400);
        let c = receive(&mut st, &r, &w, 10, 100, 401);
        assert_eq!((c[0].o, c[0].deliveries), (0, 1));
        assert_eq!(st.dead_lettered, 0);
    }

    #[test]
    fn nack_delay_extend_and_last_nack() {
        let r = rules(2, false);
        let mut st = QueueState::default();
        let w = [window(0, 0, 1, |_| None)];
        let a = receive(&mut st, &r, &w, 1, 100, 0);
        let nack = Settle::Nack {
            delay_ms: 50,
            reason: Some("db down".into()),
        };
        assert_eq!(settle(&mut st, &r, &a, nack.clone(), 10), vec![None]);
        assert_eq!(counts(&st, 20).2, 1, "delayed");
        assert!(receive(&mut st, &r, &w, 1, 100, 59).is_empty());
        let b = receive(&mut st, &r, &w, 1, 100, 60);
        assert_eq!(b[0].deliveries, 2);
        // Extend past the original deadline, then the last nack dead-letters with its reason.
        let ext = Settle::Extend {
            visibility_timeout_ms: 10_000,
        };
        assert_eq!(settle(&mut st, &r, &b, ext, 150), vec![None]);
        assert_eq!(
            counts(&st, 1000).1,
            1,
            "still in flight after the old deadline"
        );
        assert_eq!(settle(&mut st, &r, &b, nack, 1000), vec![None]);
        assert!(st.dying.contains(&(0, 0)));
        match &st.recs[&(0, 0)].phase {
            Phase::Dying { reason } => assert_eq!(reason, "db down"),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn per_key_fifo_holds_later_records_of_a_key() {
        let r = rules(5, true);
        let mut st = QueueState::default();
        // Keys: offsets 0,2 have key 7; 1,3 key 8.
        let w = [window(0, 0, 4, |o| Some(7 + o % 2))];
        let a = receive(&mut st, &r, &w, 10, 100, 0);
        assert_eq!(a.iter().map(|g| g.o).collect::<Vec<_>>(), vec![0, 1]);
        assert!(receive(&mut st, &r, &w, 10, 100, 1).is_empty());
        settle(&mut st, &r, &a[..1], Settle::Ack, 2);
        let b = receive(&mut st, &r, &w, 10, 100, 3);
        assert_eq!(b.iter().map(|g| g.o).collect::<Vec<_>>(), vec![2]);
        // Record 1 expires: it comes back before 3 (same key) is delivered.
        let c = receive(&mut st, &r, &w, 10, 100, 200);
        assert_eq!(c.iter().map(|g| g.o).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn filter_skips_and_retention_gaps_advance_the_frontier() {
        let r = rules(5, false);
        let mut st = QueueState::default();
        let mut w = window(0, 5, 4, |_| None);
        w.records[0].wanted = false;
        w.records[1].wanted = false;
        let a = receive(&mut st, &r, &[w], 10, 100, 0);
        assert_eq!(a.iter().map(|g| g.o).collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(st.next_of(0), 9);
        assert_eq!(record_view(&st, (0, 5), 1).unwrap().0, "acked");
        assert!(record_view(&st, (0, 9), 1).is_none());
    }

    #[test]
    fn snapshot_restores_the_same_state() {
        let r = rules(3, true);
        let mut st = QueueState::default();
        run(&mut st, &[QueueOp::Start { next: vec![(0, 2)] }], 0);
        let w = [window(0, 2, 6, |o| Some(o % 3)), window(1, 0, 3, |_| None)];
        let a = receive(&mut st, &r, &w, 4, 100, 0);
        settle(&mut st, &r, &a[..1], Settle::Ack, 1);
        let back = QueueState::restore(&st.snapshot().unwrap()).unwrap();
        assert_eq!(back, st);
        assert!(QueueState::restore(b"{}").is_err());
    }
}
