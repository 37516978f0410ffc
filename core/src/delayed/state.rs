//! The delayed records' state log (`delayed/state/`): the linearization point between the
//! mover delivering an object and a producer cancelling one of its records. It holds only what
//! is in flight — cancels of objects not yet taken, objects taken and not yet deleted, objects
//! deleted in the last [`FORGET_AFTER_MS`] — never an index of the pending records (those are
//! the objects themselves), so its size does not grow with the number pending.

use crate::codec::DecodeResult;
use crate::statelog::{restore_json, snapshot_json, StateMachine};
use crate::Result;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

/// How long a delivered object's name is remembered after its deletion. A cancel whose GET of
/// the object is older than half of this is refused as stale and retried, so a cancel can never
/// be accepted for an object delivered and forgotten since it looked (see [`plan_cancel`]).
/// 20 minutes: above the 10-minute window of idempotency markers with margin (a retry may
/// write a delivered object again; this set keeps it from a second delivery).
pub const FORGET_AFTER_MS: i64 = 20 * 60_000;

/// An object the mover has decided to deliver: the records cancelled before that decision
/// are left out, and no cancel is accepted after it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    pub cancelled: Vec<u32>,
    pub at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DelayedOp {
    /// Record `index` of `object` (its key) is cancelled.
    Cancel { object: String, index: u32 },
    /// The mover takes these objects for delivery. `cursor`: every bucket (second) before it
    /// has been listed, a hint where a restarted mover starts looking.
    Take { objects: Vec<String>, cursor: i64 },
    /// These objects were delivered (appended, or dropped with their topic) and deleted.
    Done { objects: Vec<String> },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DelayedState {
    /// Cancelled records of objects not yet taken: object key → record indexes.
    pub cancelled: OrdMap<String, OrdSet<u32>>,
    /// Objects taken and not yet done.
    pub taken: OrdMap<String, Taken>,
    /// Objects done, with the time they were: kept [`FORGET_AFTER_MS`].
    pub done: OrdMap<String, i64>,
    done_by_time: OrdSet<(i64, String)>,
    /// See [`DelayedOp::Take`].
    pub cursor: i64,
}

/// The outcome of a cancel, as planned against the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelPlan {
    Cancelled,
    /// Taken for delivery, delivered, or cancelled already.
    NotFound,
    /// The caller's look at the object is too old to be trusted: look again.
    Stale,
}

/// Plan a cancel of record `index` of `object`, whose existence the caller saw at `seen_ms`.
/// Accepted only if the mover has not taken the object: the state log orders the two, so
/// exactly one of a cancel and a delivery racing each other wins.
pub fn plan_cancel(
    s: &DelayedState,
    object: &str,
    index: u32,
    seen_ms: i64,
    now_ms: i64,
) -> (Vec<DelayedOp>, CancelPlan) {
    if now_ms - seen_ms > FORGET_AFTER_MS / 2 {
        return (vec![], CancelPlan::Stale);
    }
    let gone = s.taken.contains_key(object) || s.done.contains_key(object);
    let twice = s.cancelled.get(object).is_some_and(|c| c.contains(&index));
    if gone || twice {
        return (vec![], CancelPlan::NotFound);
    }
    (
        vec![DelayedOp::Cancel {
            object: object.to_string(),
            index,
        }],
        CancelPlan::Cancelled,
    )
}

/// Plan taking `objects`: those neither taken nor done.
pub fn plan_take(s: &DelayedState, objects: &[String], cursor: i64) -> Vec<DelayedOp> {
    let fresh: Vec<String> = objects
        .iter()
        .filter(|o| !s.taken.contains_key(*o) && !s.done.contains_key(*o))
        .cloned()
        .collect();
    if fresh.is_empty() && cursor <= s.cursor {
        return vec![];
    }
    vec![DelayedOp::Take {
        objects: fresh,
        cursor,
    }]
}

impl DelayedState {
    /// Whether record `index` of `object` is still pending (not cancelled, not taken or done).
    pub fn is_pending(&self, object: &str, index: u32) -> bool {
        !self.taken.contains_key(object)
            && !self.done.contains_key(object)
            && !self
                .cancelled
                .get(object)
                .is_some_and(|c| c.contains(&index))
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    cancelled: Vec<(String, Vec<u32>)>,
    taken: Vec<(String, Taken)>,
    done: Vec<(String, i64)>,
    cursor: i64,
}

impl StateMachine for DelayedState {
    type Op = DelayedOp;

    fn apply(&mut self, op: &DelayedOp, time_ms: i64) {
        match op {
            DelayedOp::Cancel { object, index } => {
                if !self.taken.contains_key(object) && !self.done.contains_key(object) {
                    self.cancelled
                        .entry(object.clone())
                        .or_default()
                        .insert(*index);
                }
            }
            DelayedOp::Take { objects, cursor } => {
                for o in objects {
                    if self.taken.contains_key(o) || self.done.contains_key(o) {
                        continue;
                    }
                    let cancelled = self
                        .cancelled
                        .remove(o)
                        .map(|c| c.into_iter().collect())
                        .unwrap_or_default();
                    self.taken.insert(
                        o.clone(),
                        Taken {
                            cancelled,
                            at_ms: time_ms,
                        },
                    );
                }
                self.cursor = self.cursor.max(*cursor);
            }
            DelayedOp::Done { objects } => {
                for o in objects {
                    self.taken.remove(o);
                    self.cancelled.remove(o);
                    if let Some(old) = self.done.insert(o.clone(), time_ms) {
                        self.done_by_time.remove(&(old, o.clone()));
                    }
                    self.done_by_time.insert((time_ms, o.clone()));
                }
                while let Some((t, o)) = self.done_by_time.get_min().cloned() {
                    if t + FORGET_AFTER_MS > time_ms {
                        break;
                    }
                    self.done_by_time.remove(&(t, o.clone()));
                    self.done.remove(&o);
                }
            }
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        snapshot_json(&Snapshot {
            cancelled: self
                .cancelled
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().copied().collect()))
                .collect(),
            taken: self
                .taken
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            done: self.done.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            cursor: self.cursor,
        })
    }

    fn restore(bytes: &[u8]) -> DecodeResult<Self> {
        let s: Snapshot = restore_json(bytes)?;
        let mut st = DelayedState {
            cancelled: s
                .cancelled
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect::<OrdSet<u32>>()))
                .collect(),
            taken: s.taken.into_iter().collect(),
            cursor: s.cursor,
            ..Default::default()
        };
        for (k, t) in s.done {
            st.done.insert(k.clone(), t);
            st.done_by_time.insert((t, k));
        }
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut DelayedState, ops: Vec<DelayedOp>, t: i64) {
        for op in &ops {
            s.apply(op, t);
        }
    }

    #[test]
    fn cancel_before_take_is_left_out_of_the_delivery() {
        let mut s = DelayedState::default();
        let (ops, a) = plan_cancel(&s, "o1", 2, 0, 1);
        assert_eq!(a, CancelPlan::Cancelled);
        run(&mut s, ops, 1);
        assert!(!s.is_pending("o1", 2) && s.is_pending("o1", 1));
        // A second cancel of the same record: not found.
        assert_eq!(plan_cancel(&s, "o1", 2, 1, 2).1, CancelPlan::NotFound);
        let ops = plan_take(&s, &["o1".into()], 5);
        run(&mut s, ops, 3);
        assert_eq!(s.taken["o1"].cancelled, vec![2]);
        assert!(s.cancelled.is_empty());
    }

    #[test]
    fn cancel_after_take_or_done_is_refused() {
        let mut s = DelayedState::default();
        let ops = plan_take(&s, &["o1".into()], 0);
        run(&mut s, ops, 10);
        assert_eq!(plan_cancel(&s, "o1", 0, 10, 11).1, CancelPlan::NotFound);
        // Applied anyway (a corrupt log), it changes nothing.
        run(
            &mut s,
            vec![DelayedOp::Cancel {
                object: "o1".into(),
                index: 0,
            }],
            11,
        );
        assert!(s.cancelled.is_empty());
        run(
            &mut s,
            vec![DelayedOp::Done {
                objects: vec!["o1".into()],
            }],
            12,
        );
        assert!(s.taken.is_empty());
        assert_eq!(plan_cancel(&s, "o1", 0, 12, 13).1, CancelPlan::NotFound);
        // Taking it again (a mover redoing a round) is a no-op.
        assert!(plan_take(&s, &["o1".into()], 0).is_empty());
    }

    #[test]
    fn done_objects_are_forgotten_after_the_window_and_stale_cancels_refused() {
        let mut s = DelayedState::default();
        let ops = plan_take(&s, &["a".into()], 0);
        run(&mut s, ops, 0);
        run(
            &mut s,
            vec![DelayedOp::Done {
                objects: vec!["a".into()],
            }],
            0,
        );
        run(
            &mut s,
            vec![DelayedOp::Done { objects: vec![] }],
            FORGET_AFTER_MS - 1,
        );
        assert!(s.done.contains_key("a"));
        run(
            &mut s,
            vec![DelayedOp::Done { objects: vec![] }],
            FORGET_AFTER_MS,
        );
        assert!(s.done.is_empty());
        // A cancel that saw the object before it was forgotten is stale, never accepted.
        assert_eq!(
            plan_cancel(&s, "a", 0, 0, FORGET_AFTER_MS).1,
            CancelPlan::Stale
        );
    }

    #[test]
    fn snapshot_restores_the_same_state() {
        let mut s = DelayedState::default();
        let ops = plan_cancel(&s, "x", 1, 0, 0).0;
        run(&mut s, ops, 0);
        let ops = plan_take(&s, &["y".into()], 7);
        run(&mut s, ops, 1);
        run(
            &mut s,
            vec![DelayedOp::Done {
                objects: vec!["z".into()],
            }],
            2,
        );
        let back = DelayedState::restore(&s.snapshot().unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
