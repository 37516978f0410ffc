//! History checker. Writers record what they were acked; readers record what they got back;
//! [`check`] reports every violation of:
//! - I1 durable ack: every acked record is found at its acked offset with its value;
//! - I2 dense, unique offsets: each partition reads back as 0,1,2,… (from its earliest);
//! - I3 order: one writer's records in one partition have increasing offsets in send order;
//! - I4 integrity: every read succeeded (CRC-checked decode);
//! - I5 idempotence: no record value is stored twice, and a retried request was acked with the
//!   offsets of its first commit.
//!
//! Consumer groups ([`check_group`] over a [`GroupHistory`]):
//! - G1 one assignment per generation: every answer carrying generation `g` (join, heartbeat,
//!   describe) gives each member the same partitions, and no partition to two members;
//! - G2 complete: every describe of a group with live members assigns every partition;
//! - G3 commits never go back: a commit answered before another was sent never shows a larger
//!   committed offset than the later one, unless a reset ran in between; the final state holds
//!   at least every acknowledged commit;
//! - G4 at least once: every produced offset was polled by some member;
//! - G5 polls are from owned partitions: a record polled in generation `g` comes from a
//!   partition its member owns in `g` (where `g`'s assignment was observed).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One acked record: which writer sent it (and its send sequence), where it landed.
#[derive(Clone, Debug)]
pub struct Acked {
    pub writer: u32,
    pub send_seq: u64,
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub value: Vec<u8>,
}

/// What was read back from one partition: (offset, value) in the order returned.
pub type PartitionRead = Vec<(u64, Vec<u8>)>;

#[derive(Default, Debug)]
pub struct History {
    pub acked: Vec<Acked>,
    /// Read-back per (topic, partition): (offset, value), as returned.
    pub read: BTreeMap<(String, u32), PartitionRead>,
    /// Earliest offset per partition (retention may have removed the start).
    pub earliest: HashMap<(String, u32), u64>,
    /// Read failures (I4).
    pub read_errors: Vec<String>,
    /// Retries whose answer differed from the first answer (I5).
    pub retry_mismatches: Vec<String>,
}

impl History {
    /// Record what `ack` acknowledged of `req` (its records in request order), as `writer`'s
    /// next sends.
    pub fn record_ack(
        &mut self,
        writer: u32,
        req: &sluice_core::log::ProduceRequest,
        ack: &sluice_core::log::ProduceAck,
    ) {
        for ((_, r), (p, o)) in req.records.iter().zip(&ack.offsets) {
            self.acked.push(Acked {
                writer,
                send_seq: self.acked.len() as u64,
                topic: req.topic.name.clone(),
                partition: *p,
                offset: *o,
                value: r.value.to_vec(),
            });
        }
    }
}

pub fn check(h: &History) -> Vec<String> {
    let mut v = Vec::new();
    v.extend(h.read_errors.iter().map(|e| format!("I4 read failed: {e}")));
    v.extend(
        h.retry_mismatches
            .iter()
            .map(|e| format!("I5 retry answered differently: {e}")),
    );
    // I2: dense and unique.
    let mut by_pos: HashMap<(&str, u32, u64), &[u8]> = HashMap::new();
    let mut seen_values: HashMap<&[u8], (String, u32, u64)> = HashMap::new();
    for ((topic, p), records) in &h.read {
        let start = h.earliest.get(&(topic.clone(), *p)).copied().unwrap_or(0);
        for (i, (offset, value)) in records.iter().enumerate() {
            if *offset != start + i as u64 {
                v.push(format!(
                    "I2 {topic}/{p}: position {i} has offset {offset}, expected {}",
                    start + i as u64
                ));
                break;
            }
            by_pos.insert((topic, *p, *offset), value);
            if let Some(prev) = seen_values.insert(value, (topic.clone(), *p, *offset)) {
                v.push(format!(
                    "I5 value {:?} stored twice: {prev:?} and {topic}/{p}@{offset}",
                    String::from_utf8_lossy(value)
                ));
            }
        }
    }
    // I1: acked records are there.
    for a in &h.acked {
        match by_pos.get(&(a.topic.as_str(), a.partition, a.offset)) {
            Some(value) if *value == a.value.as_slice() => {}
            Some(value) => v.push(format!(
                "I1 {}/{}@{} holds {:?}, acked {:?}",
                a.topic,
                a.partition,
                a.offset,
                String::from_utf8_lossy(value),
                String::from_utf8_lossy(&a.value)
            )),
            None => v.push(format!(
                "I1 acked {}/{}@{} ({:?}) not found",
                a.topic,
                a.partition,
                a.offset,
                String::from_utf8_lossy(&a.value)
            )),
        }
    }
    // I3: per writer and partition, offsets increase with send order.
    // (writer, topic, partition) -> (send seq, offset)
    type Sends = Vec<(u64, u64)>;
    let mut per: HashMap<(u32, &str, u32), Sends> = HashMap::new();
    for a in &h.acked {
        per.entry((a.writer, &a.topic, a.partition))
            .or_default()
            .push((a.send_seq, a.offset));
    }
    for ((w, t, p), mut list) in per {
        list.sort();
        if list.windows(2).any(|x| x[0].1 >= x[1].1) {
            v.push(format!(
                "I3 writer {w} on {t}/{p}: offsets not increasing in send order"
            ));
        }
    }
    v
}

/// A partition of a topic.
pub type Tp = (String, u32);

/// One answer that carried a member's assignment.
#[derive(Clone, Debug)]
pub struct AssignmentSeen {
    pub generation: u64,
    pub member: String,
    pub partitions: Vec<Tp>,
}

/// One describe answer: the whole group's assignment in a generation.
#[derive(Clone, Debug)]
pub struct GroupSeen {
    pub generation: u64,
    /// member → its partitions.
    pub members: BTreeMap<String, Vec<Tp>>,
    /// Final describes also give the committed offsets.
    pub committed: BTreeMap<Tp, u64>,
}

/// One acknowledged commit (or reset): the committed offset it answered, with when the request
/// was sent and answered (any monotonic clock, e.g. microseconds since the test started).
#[derive(Clone, Debug)]
pub struct CommitSeen {
    pub tp: Tp,
    pub committed: u64,
    pub sent: u64,
    pub answered: u64,
}

/// A record a member polled.
#[derive(Clone, Debug)]
pub struct PolledSeen {
    pub member: String,
    pub generation: u64,
    pub tp: Tp,
    pub offset: u64,
}

#[derive(Default, Debug)]
pub struct GroupHistory {
    /// Every partition of the group's topics.
    pub partitions: Vec<Tp>,
    pub assignments: Vec<AssignmentSeen>,
    pub describes: Vec<GroupSeen>,
    pub commits: Vec<CommitSeen>,
    /// Resets: (sent, answered) of each.
    pub resets: Vec<(u64, u64)>,
    pub polled: Vec<PolledSeen>,
    /// Acked produced offsets per partition.
    pub produced: BTreeMap<Tp, Vec<u64>>,
    /// The group once everything was committed and nothing ran (its `committed`).
    pub final_state: Option<GroupSeen>,
    /// Calls answered with something no correct gateway answers (e.g. a 5xx for a valid call).
    pub errors: Vec<String>,
}

pub fn check_group(h: &GroupHistory) -> Vec<String> {
    let mut v: Vec<String> = h.errors.iter().map(|e| format!("G0 {e}")).collect();
    // G1: per generation, one owner per partition and one assignment per member.
    let mut by_gen: BTreeMap<u64, BTreeMap<&str, BTreeSet<&Tp>>> = BTreeMap::new();
    let all_seen = h
        .assignments
        .iter()
        .map(|a| (a.generation, a.member.as_str(), &a.partitions))
        .chain(h.describes.iter().flat_map(|d| {
            d.members
                .iter()
                .map(move |(m, ps)| (d.generation, m.as_str(), ps))
        }));
    for (g, member, parts) in all_seen {
        let set: BTreeSet<&Tp> = parts.iter().collect();
        let members = by_gen.entry(g).or_default();
        match members.get(member) {
            Some(prev) if *prev != set => v.push(format!(
                "G1 generation {g}: member {member} seen with {prev:?} and {set:?}"
            )),
            Some(_) => {}
            None => {
                for (other, theirs) in members.iter() {
                    if let Some(tp) = theirs.intersection(&set).next() {
                        v.push(format!(
                            "G1 generation {g}: {tp:?} owned by {other} and {member}"
                        ));
                    }
                }
                members.insert(member, set);
            }
        }
    }
    // G2: complete.
    let all: BTreeSet<&Tp> = h.partitions.iter().collect();
    for d in h.describes.iter().chain(&h.final_state) {
        if d.members.is_empty() {
            continue;
        }
        let owned: BTreeSet<&Tp> = d.members.values().flatten().collect();
        let missing: Vec<&&Tp> = all.difference(&owned).collect();
        if !missing.is_empty() {
            v.push(format!(
                "G2 generation {}: {missing:?} assigned to nobody",
                d.generation
            ));
        }
    }
    // G3: no commit goes back, but by a reset.
    let mut per: BTreeMap<&Tp, Vec<&CommitSeen>> = BTreeMap::new();
    for c in &h.commits {
        per.entry(&c.tp).or_default().push(c);
    }
    for (tp, list) in &per {
        for a in list {
            for b in list {
                let reset_between = h
                    .resets
                    .iter()
                    .any(|(sent, answered)| *answered > a.sent && *sent < b.answered);
                if a.answered < b.sent && b.committed < a.committed && !reset_between {
                    v.push(format!(
                        "G3 {tp:?}: committed {} was answered, then a later commit answered {}",
                        a.committed, b.committed
                    ));
                }
            }
        }
        if let Some(f) = &h.final_state {
            let last_reset = h.resets.iter().map(|r| r.1).max();
            let best = list
                .iter()
                .filter(|c| last_reset.is_none_or(|r| c.sent > r))
                .map(|c| c.committed)
                .max();
            if let Some(best) = best {
                if f.committed.get(*tp).is_none_or(|o| *o < best) {
                    v.push(format!(
                        "G3 {tp:?}: commit of {best} was acknowledged, final state has {:?}",
                        f.committed.get(*tp)
                    ));
                }
            }
        }
    }
    // G4: at least once.
    let polled: BTreeSet<(&Tp, u64)> = h.polled.iter().map(|p| (&p.tp, p.offset)).collect();
    for (tp, offsets) in &h.produced {
        let lost: Vec<u64> = offsets
            .iter()
            .copied()
            .filter(|o| !polled.contains(&(tp, *o)))
            .collect();
        if !lost.is_empty() {
            v.push(format!(
                "G4 {tp:?}: {} produced offsets never polled, first {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            ));
        }
    }
    // G5: polled from owned partitions.
    for p in &h.polled {
        if let Some(members) = by_gen.get(&p.generation) {
            if let Some(parts) = members.get(p.member.as_str()) {
                if !parts.contains(&p.tp) {
                    v.push(format!(
                        "G5 {} polled {:?}@{} in generation {} but owns {parts:?}",
                        p.member, p.tp, p.offset, p.generation
                    ));
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(writer: u32, send_seq: u64, offset: u64, value: &str) -> Acked {
        Acked {
            writer,
            send_seq,
            topic: "t".into(),
            partition: 0,
            offset,
            value: value.into(),
        }
    }

    /// The checker itself must catch each kind of violation.
    #[test]
    fn checker_catches_violations() {
        let mut h = History {
            acked: vec![acked(1, 0, 0, "a"), acked(1, 1, 1, "b")],
            ..Default::default()
        };
        h.read.insert(
            ("t".into(), 0),
            vec![(0, b"a".to_vec()), (1, b"b".to_vec())],
        );
        assert!(check(&h).is_empty());

        let mut lost = History {
            acked: h.acked.clone(),
            ..Default::default()
        };
        lost.read.insert(("t".into(), 0), vec![(0, b"a".to_vec())]);
        assert!(check(&lost).iter().any(|v| v.starts_with("I1")));

        let mut gap = History {
            acked: vec![],
            ..Default::default()
        };
        gap.read.insert(
            ("t".into(), 0),
            vec![(0, b"a".to_vec()), (2, b"b".to_vec())],
        );
        assert!(check(&gap).iter().any(|v| v.starts_with("I2")));

        let mut reorder = History {
            acked: vec![acked(1, 0, 1, "b"), acked(1, 1, 0, "a")],
            ..Default::default()
        };
        reorder.read.insert(
            ("t".into(), 0),
            vec![(0, b"a".to_vec()), (1, b"b".to_vec())],
        );
        assert!(check(&reorder).iter().any(|v| v.starts_with("I3")));

        let mut dup = History::default();
        dup.read.insert(
            ("t".into(), 0),
            vec![(0, b"a".to_vec()), (1, b"a".to_vec())],
        );
        assert!(check(&dup).iter().any(|v| v.starts_with("I5")));
    }

    fn tp(p: u32) -> Tp {
        ("t".to_string(), p)
    }

    fn seen(g: u64, member: &str, parts: &[u32]) -> AssignmentSeen {
        AssignmentSeen {
            generation: g,
            member: member.into(),
            partitions: parts.iter().map(|p| tp(*p)).collect(),
        }
    }

    fn commit(p: u32, committed: u64, sent: u64, answered: u64) -> CommitSeen {
        CommitSeen {
            tp: tp(p),
            committed,
            sent,
            answered,
        }
    }

    fn clean() -> GroupHistory {
        let mut h = GroupHistory {
            partitions: vec![tp(0), tp(1)],
            assignments: vec![
                seen(1, "a", &[0, 1]),
                seen(2, "a", &[0]),
                seen(2, "b", &[1]),
            ],
            commits: vec![
                commit(0, 5, 0, 10),
                commit(0, 7, 20, 30),
                commit(0, 6, 25, 28),
            ],
            polled: vec![
                PolledSeen {
                    member: "a".into(),
                    generation: 2,
                    tp: tp(0),
                    offset: 0,
                },
                PolledSeen {
                    member: "b".into(),
                    generation: 2,
                    tp: tp(1),
                    offset: 0,
                },
            ],
            ..Default::default()
        };
        h.produced.insert(tp(0), vec![0]);
        h.produced.insert(tp(1), vec![0]);
        let mut members = BTreeMap::new();
        members.insert("a".to_string(), vec![tp(0)]);
        members.insert("b".to_string(), vec![tp(1)]);
        h.describes.push(GroupSeen {
            generation: 2,
            members: members.clone(),
            committed: BTreeMap::new(),
        });
        let mut committed = BTreeMap::new();
        committed.insert(tp(0), 7);
        h.final_state = Some(GroupSeen {
            generation: 2,
            members,
            committed,
        });
        h
    }

    /// The group checker passes a clean history and catches each kind of violation.
    #[test]
    fn group_checker_catches_violations() {
        assert_eq!(check_group(&clean()), Vec::<String>::new());
        let has = |h: &GroupHistory, code: &str| check_group(h).iter().any(|v| v.starts_with(code));

        let mut twice = clean();
        twice.assignments.push(seen(2, "c", &[1]));
        assert!(has(&twice, "G1"));
        let mut changed = clean();
        changed.assignments.push(seen(2, "a", &[0, 1]));
        assert!(has(&changed, "G1"));

        let mut incomplete = clean();
        incomplete.describes[0].members.remove("b");
        assert!(has(&incomplete, "G2"));

        let mut back = clean();
        back.commits.push(commit(0, 3, 40, 50));
        assert!(has(&back, "G3"));
        // ... unless a reset ran in between.
        back.resets.push((35, 38));
        back.final_state
            .as_mut()
            .unwrap()
            .committed
            .insert(tp(0), 3);
        assert!(!has(&back, "G3"), "{:?}", check_group(&back));
        let mut lost_commit = clean();
        lost_commit
            .final_state
            .as_mut()
            .unwrap()
            .committed
            .insert(tp(0), 6);
        assert!(has(&lost_commit, "G3"));

        let mut unpolled = clean();
        unpolled.produced.get_mut(&tp(1)).unwrap().push(1);
        assert!(has(&unpolled, "G4"));

        let mut foreign = clean();
        foreign.polled[0].tp = tp(1);
        assert!(has(&foreign, "G5"));
    }
}

/// Queue mode: what receivers observed, and the queue's final state, checked by
/// [`check_queue`] for
/// - Q1 every produced record was leased at least once;
/// - Q2 no record was leased to two receivers at once: the interval a receiver can be sure it
///   held a lease — from when the receive answered to when it was sent plus the visibility
///   timeout — never overlaps another lease's of the same record;
/// - Q3 every lease of a record has its own `delivery_count` (counted at lease time);
/// - Q4 every record that is not poison is acked exactly once in the final state, and was
///   never dead-lettered;
/// - Q5 every poison record is in the dead-letter topic exactly once, after exactly
///   `max_deliveries` deliveries, with its reason.
pub mod queue {
    use std::collections::{BTreeMap, BTreeSet};

    pub type Pos = (u32, u64);

    /// One lease as a receiver saw it (times on the one clock of the test machine).
    #[derive(Clone, Debug)]
    pub struct LeaseObs {
        pub receiver: u32,
        pub pos: Pos,
        pub delivery_count: u32,
        /// When the receive request was sent and answered.
        pub sent_ms: i64,
        pub answered_ms: i64,
        pub visibility_timeout_ms: i64,
        /// When the receiver sent the ack or nack that gave it up (it relies on it no longer).
        pub released_ms: Option<i64>,
    }

    /// A record's final state in the queue (from the history endpoint).
    #[derive(Clone, Debug)]
    pub struct FinalRecord {
        pub state: String,
        pub acked_events: usize,
    }

    /// A record found in the dead-letter topic, from its `sluice.*` headers.
    #[derive(Clone, Debug)]
    pub struct DeadLetter {
        pub pos: Pos,
        pub delivery_count: u32,
        pub reason: String,
    }

    #[derive(Clone, Debug, Default)]
    pub struct QueueHistory {
        pub produced: BTreeSet<Pos>,
        /// Records every receiver nacks: they must end in the dead-letter topic, with one of
        /// these reasons (the nack's, or `visibility_timeout` if the holder of the last delivery
        /// died).
        pub poison: BTreeMap<Pos, Vec<String>>,
        pub leases: Vec<LeaseObs>,
        pub finals: BTreeMap<Pos, FinalRecord>,
        pub dead_letters: Vec<DeadLetter>,
        pub max_deliveries: u32,
    }

    pub fn check_queue(h: &QueueHistory) -> Vec<String> {
        let mut v = Vec::new();
        let mut by_pos: BTreeMap<Pos, Vec<&LeaseObs>> = BTreeMap::new();
        for l in &h.leases {
            by_pos.entry(l.pos).or_default().push(l);
        }
        for pos in &h.produced {
            if !by_pos.contains_key(pos) {
                v.push(format!("Q1 {pos:?} was never leased"));
            }
        }
        for (pos, leases) in &by_pos {
            let mut sure: Vec<(i64, i64, u32)> = leases
                .iter()
                .map(|l| {
                    let end = l.sent_ms + l.visibility_timeout_ms;
                    (
                        l.answered_ms,
                        l.released_ms.map_or(end, |r| r.min(end)),
                        l.receiver,
                    )
                })
                .filter(|(a, b, _)| a < b)
                .collect();
            sure.sort();
            for w in sure.windows(2) {
                if w[1].0 < w[0].1 {
                    v.push(format!(
                        "Q2 {pos:?} leased to receiver {} during [{}, {}) and to receiver {} from {}",
                        w[0].2, w[0].0, w[0].1, w[1].2, w[1].0
                    ));
                }
            }
            let counts: BTreeSet<u32> = leases.iter().map(|l| l.delivery_count).collect();
            if counts.len() != leases.len() {
                let seen: Vec<_> = leases
                    .iter()
                    .map(|l| {
                        (
                            l.receiver,
                            l.delivery_count,
                            l.sent_ms,
                            l.answered_ms,
                            l.released_ms,
                        )
                    })
                    .collect();
                v.push(format!(
                    "Q3 {pos:?}: {} leases but delivery counts {counts:?}: (receiver, count, sent, answered, released) {seen:?}",
                    leases.len()
                ));
            }
        }
        let mut dead: BTreeMap<Pos, Vec<&DeadLetter>> = BTreeMap::new();
        for d in &h.dead_letters {
            dead.entry(d.pos).or_default().push(d);
        }
        for pos in &h.produced {
            if h.poison.contains_key(pos) {
                continue;
            }
            match h.finals.get(pos) {
                Some(f) if f.state == "acked" && f.acked_events == 1 => {}
                f => v.push(format!("Q4 {pos:?} is not acked exactly once: {f:?}")),
            }
            if dead.contains_key(pos) {
                v.push(format!("Q4 {pos:?} is not poison but was dead-lettered"));
            }
        }
        for (pos, reasons) in &h.poison {
            match dead.get(pos).map(Vec::as_slice) {
                Some([d]) => {
                    if d.delivery_count != h.max_deliveries || !reasons.contains(&d.reason) {
                        v.push(format!(
                            "Q5 {pos:?} dead-lettered after {} deliveries with reason {:?} (want {} and one of {reasons:?})",
                            d.delivery_count, d.reason, h.max_deliveries
                        ));
                    }
                }
                other => v.push(format!(
                    "Q5 poison {pos:?} is in the dead-letter topic {} times",
                    other.map_or(0, |d| d.len())
                )),
            }
            if h.finals.get(pos).is_some_and(|f| f.acked_events > 0) {
                v.push(format!("Q5 poison {pos:?} was acked"));
            }
        }
        v
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn lease(receiver: u32, pos: Pos, n: u32, sent: i64, answered: i64) -> LeaseObs {
            LeaseObs {
                receiver,
                pos,
                delivery_count: n,
                sent_ms: sent,
                answered_ms: answered,
                visibility_timeout_ms: 100,
                released_ms: None,
            }
        }

        fn clean() -> QueueHistory {
            let acked = FinalRecord {
                state: "acked".into(),
                acked_events: 1,
            };
            QueueHistory {
                produced: [(0, 0), (0, 1)].into(),
                poison: [((0, 1), vec!["bad".to_string()])].into(),
                leases: vec![
                    lease(1, (0, 0), 1, 0, 5),
                    LeaseObs {
                        released_ms: Some(20),
                        ..lease(1, (0, 1), 1, 0, 5)
                    },
                    // Leased again after receiver 1 nacked it, well before its timeout.
                    lease(2, (0, 1), 2, 30, 35),
                ],
                finals: [
                    ((0, 0), acked),
                    (
                        (0, 1),
                        FinalRecord {
                            state: "dead_lettered".into(),
                            acked_events: 0,
                        },
                    ),
                ]
                .into(),
                dead_letters: vec![DeadLetter {
                    pos: (0, 1),
                    delivery_count: 2,
                    reason: "bad".into(),
                }],
                max_deliveries: 2,
            }
        }

        #[test]
        fn clean_history_passes() {
            assert_eq!(check_queue(&clean()), Vec::<String>::new());
        }

        #[test]
        fn checker_catches_violations() {
            let mut h = clean();
            h.leases.push(lease(3, (0, 0), 2, 50, 60)); // overlaps receiver 1's [5, 100)
            h.leases.push(lease(4, (0, 0), 2, 300, 310)); // same delivery count twice
            h.produced.insert((0, 2)); // never leased, never acked
            h.dead_letters.push(DeadLetter {
                pos: (0, 1),
                delivery_count: 2,
                reason: "bad".into(),
            });
            let v = check_queue(&h);
            let has = |p: &str| v.iter().any(|s| s.starts_with(p));
            assert!(has("Q1"), "{v:?}");
            assert!(has("Q2"), "{v:?}");
            assert!(has("Q3"), "{v:?}");
            assert!(has("Q4"), "{v:?}");
            assert!(has("Q5"), "{v:?}");
        }
    }
}

/// Transactions ([`check_txns`]): what a producer knows of one transaction.
#[derive(Clone, Debug, Default)]
pub struct TxnSeen {
    pub id: String,
    /// Values of the staging requests answered `{"staged":N}`, in staging order.
    pub staged: Vec<(String, Vec<u8>)>,
    /// Values of staging requests whose answer was lost (they may or may not be staged).
    pub maybe_staged: Vec<(String, Vec<u8>)>,
    /// The final state (`GET /v1/transactions/{id}` after resolution): `committed`,
    /// `rolled_back`, or anything else (a violation).
    pub final_state: String,
    /// The answer of a commit that succeeded: (topic, partition, offset) in staging order.
    pub commit_answer: Option<Vec<(String, u32, u64)>>,
    /// The decision the producer's own transaction (or the check server) made, if it made one:
    /// the final state must agree.
    pub decided: Option<bool>,
}

/// Transaction invariants over the final read-back of every partition:
/// - T1 all or nothing: every record staged (answered) in a committed transaction is readable
///   exactly once; no record of a rolled-back one is readable at all (a lost-answer staging
///   request: at most once, and only if committed);
/// - T2 a commit's answer names, in staging order, the offsets that hold its staged records;
/// - T3 every transaction is resolved (committed or rolled back), as its producer decided
///   when it decided (a commit answered, or the check-back's answer);
/// - I2 (via the read-back): offsets dense from 0.
pub fn check_txns(read: &BTreeMap<(String, u32), PartitionRead>, txns: &[TxnSeen]) -> Vec<String> {
    let mut v = check(&History {
        read: read.clone(),
        ..Default::default()
    });
    let mut count: HashMap<(&str, &[u8]), u32> = HashMap::new();
    let mut at: HashMap<(&str, u32, u64), &[u8]> = HashMap::new();
    for ((topic, p), records) in read {
        for (o, value) in records {
            *count.entry((topic.as_str(), value.as_slice())).or_default() += 1;
            at.insert((topic.as_str(), *p, *o), value.as_slice());
        }
    }
    for t in txns {
        let committed = match t.final_state.as_str() {
            "committed" => true,
            "rolled_back" => false,
            other => {
                v.push(format!("T3 transaction {} ended {other:?}", t.id));
                continue;
            }
        };
        if let Some(d) = t.decided {
            if d != committed {
                v.push(format!(
                    "T3 transaction {} was decided {} but ended {}",
                    t.id,
                    if d { "commit" } else { "rollback" },
                    t.final_state
                ));
            }
        }
        for (topic, value) in &t.staged {
            let n = count
                .get(&(topic.as_str(), value.as_slice()))
                .copied()
                .unwrap_or(0);
            if committed && n != 1 || !committed && n != 0 {
                v.push(format!(
                    "T1 transaction {} ({}): staged {topic}:{:?} is readable {n} times",
                    t.id,
                    t.final_state,
                    String::from_utf8_lossy(value)
                ));
            }
        }
        for (topic, value) in &t.maybe_staged {
            let n = count
                .get(&(topic.as_str(), value.as_slice()))
                .copied()
                .unwrap_or(0);
            if n > 1 || !committed && n > 0 {
                v.push(format!(
                    "T1 transaction {} ({}): maybe-staged {topic}:{:?} is readable {n} times",
                    t.id,
                    t.final_state,
                    String::from_utf8_lossy(value)
                ));
            }
        }
        if let Some(answer) = &t.commit_answer {
            if !committed {
                v.push(format!(
                    "T3 transaction {}: commit answered, ended {}",
                    t.id, t.final_state
                ));
            }
            if t.maybe_staged.is_empty() && answer.len() != t.staged.len() {
                v.push(format!(
                    "T2 transaction {}: commit answered {} offsets for {} staged records",
                    t.id,
                    answer.len(),
                    t.staged.len()
                ));
            }
            let zipped = if t.maybe_staged.is_empty() {
                answer.len()
            } else {
                0
            };
            for ((topic, p, o), (st, value)) in answer.iter().zip(&t.staged).take(zipped) {
                if topic != st || at.get(&(topic.as_str(), *p, *o)) != Some(&value.as_slice()) {
                    v.push(format!(
                        "T2 transaction {}: {topic}/{p}@{o} does not hold staged {st}:{:?}",
                        t.id,
                        String::from_utf8_lossy(value)
                    ));
                }
            }
        }
    }
    v
}

/// Delayed records ([`delayed::check_delayed`]):
/// - D1 no loss: every acked delayed record that was not cancelled is delivered;
/// - D2 no duplicate: none is delivered twice;
/// - D3 never early: each is appended at or after its `deliver_at_ms`;
/// - D4 cancels win: a record whose cancel was answered 204 is never delivered.
pub mod delayed {
    use std::collections::HashMap;

    /// One delayed record the produce answer acked.
    #[derive(Clone, Debug)]
    pub struct DelayedAck {
        pub value: Vec<u8>,
        pub deliver_at_ms: i64,
        /// Its cancel was answered 204.
        pub cancelled: bool,
    }

    /// `delivered`: (value, append timestamp) of every record read back from the topic.
    pub fn check_delayed(acked: &[DelayedAck], delivered: &[(Vec<u8>, i64)]) -> Vec<String> {
        let mut v = Vec::new();
        let mut seen: HashMap<&[u8], Vec<i64>> = HashMap::new();
        for (value, ts) in delivered {
            seen.entry(value.as_slice()).or_default().push(*ts);
        }
        for a in acked {
            let name = String::from_utf8_lossy(&a.value);
            match (seen.get(a.value.as_slice()), a.cancelled) {
                (None, false) => v.push(format!("D1 {name:?} was never delivered")),
                (Some(_), true) => v.push(format!("D4 {name:?} was cancelled but delivered")),
                (Some(ts), false) => {
                    if ts.len() > 1 {
                        v.push(format!("D2 {name:?} delivered {} times", ts.len()));
                    }
                    if let Some(t) = ts.iter().find(|t| **t < a.deliver_at_ms) {
                        v.push(format!(
                            "D3 {name:?} appended at {t}, before it was due at {}",
                            a.deliver_at_ms
                        ));
                    }
                }
                (None, true) => {}
            }
        }
        v
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_each_violation() {
            let ack = |v: &str, at, cancelled| DelayedAck {
                value: v.as_bytes().to_vec(),
                deliver_at_ms: at,
                cancelled,
            };
            let acked = [
                ack("ok", 10, false),
                ack("lost", 10, false),
                ack("twice", 10, false),
                ack("early", 10, false),
                ack("cancelled", 10, true),
                ack("cancelled-ok", 10, true),
            ];
            let d = |v: &str, t| (v.as_bytes().to_vec(), t);
            let delivered = [
                d("ok", 10),
                d("twice", 11),
                d("twice", 12),
                d("early", 9),
                d("cancelled", 20),
            ];
            let v = check_delayed(&acked, &delivered);
            assert_eq!(v.len(), 4, "{v:?}");
            for code in ["D1", "D2", "D3", "D4"] {
                assert!(v.iter().any(|s| s.starts_with(code)), "{code}: {v:?}");
            }
        }
    }
}
