use super::*;
use proptest::prelude::*;

fn info(id: &str, partitions: u32) -> TopicInfo {
    TopicInfo {
        id: id.into(),
        partitions,
    }
}

fn join(member: &str, topics: &[(&str, u32)], timeout: u64) -> GroupOp {
    GroupOp::Join {
        member_id: member.into(),
        topics: topics
            .iter()
            .map(|(t, n)| (t.to_string(), info(&format!("id-{t}"), *n)))
            .collect(),
        session_timeout_ms: timeout,
        start: StartFrom::Earliest,
        filter: None,
    }
}

fn commit(member: &str, generation: u64, topic: &str, partition: u32, offset: u64) -> GroupOp {
    GroupOp::Commit {
        member_id: member.into(),
        generation,
        offsets: vec![CommitOffset {
            topic: topic.into(),
            partition,
            offset,
        }],
    }
}

fn poll(member: &str, topic: &str, partition: u32, from: u64, to: u64, commit: bool) -> GroupOp {
    GroupOp::Poll {
        member_id: member.into(),
        advances: vec![Advance {
            topic: topic.into(),
            partition,
            from,
            to,
        }],
        commit,
    }
}

#[test]
fn join_rebalance_and_expiry() {
    let mut s = GroupState::default();
    assert_eq!(s.apply(&GroupOp::Tick, 0), Err(GroupError::GroupNotFound));
    s.apply(&join("a", &[("t", 4)], 1000), 0).unwrap();
    assert!(s.exists);
    assert_eq!(s.generation, 1);
    assert_eq!(s.assigned("a").len(), 4);
    s.apply(&join("b", &[("t", 4)], 5000), 10).unwrap();
    assert_eq!(s.generation, 2);
    assert_eq!((s.assigned("a").len(), s.assigned("b").len()), (2, 2));
    // a's session: last seen at 0, timeout 1000. Alive at 999, gone at 1000.
    assert!(!s.expiry_due(999));
    s.apply(&GroupOp::Tick, 999).unwrap();
    assert_eq!(s.generation, 2);
    assert!(s.expiry_due(1000));
    assert_eq!(s.at(1000).assigned("b").len(), 4);
    s.apply(
        &GroupOp::Heartbeat {
            member_id: "b".into(),
        },
        1000,
    )
    .unwrap();
    assert_eq!(s.generation, 3);
    assert!(!s.members.contains_key("a"));
    assert_eq!(s.assigned("b").len(), 4);
    assert_eq!(s.members["b"].last_seen_ms, 1000);
    assert_eq!(
        s.apply(
            &GroupOp::Heartbeat {
                member_id: "a".into()
            },
            1001
        ),
        Err(GroupError::MemberNotFound("a".into()))
    );
    s.apply(
        &GroupOp::Leave {
            member_id: "b".into(),
        },
        1002,
    )
    .unwrap();
    assert_eq!(s.generation, 4);
    assert!(s.assigned("b").is_empty());
    assert!(s.exists, "an empty group keeps its offsets");
}

#[test]
fn commit_checks_generation_ownership_and_never_goes_back() {
    let mut s = GroupState::default();
    s.apply(&join("a", &[("t", 2)], 60_000), 0).unwrap();
    s.apply(&join("b", &[("t", 2)], 60_000), 0).unwrap();
    let g = s.generation;
    let (a_part, b_part) = (s.assigned("a")[0].1, s.assigned("b")[0].1);
    let before = s.clone();
    assert_eq!(
        s.apply(&commit("a", g - 1, "t", a_part, 5), 1),
        Err(GroupError::StaleGeneration {
            given: g - 1,
            current: g
        })
    );
    assert_eq!(
        s.apply(&commit("a", g, "t", b_part, 5), 1),
        Err(GroupError::NotAssigned {
            topic: "t".into(),
            partition: b_part
        })
    );
    assert_eq!(
        s.apply(&commit("x", g, "t", a_part, 5), 1),
        Err(GroupError::MemberNotFound("x".into()))
    );
    assert_eq!(s, before, "a refused op changes nothing");
    s.apply(&commit("a", g, "t", a_part, 5), 2).unwrap();
    assert_eq!(s.partition("t", a_part).unwrap().committed, Some(5));
    assert_eq!(s.members["a"].last_seen_ms, 2);
    s.apply(&commit("a", g, "t", a_part, 3), 3).unwrap();
    assert_eq!(
        s.partition("t", a_part).unwrap().committed,
        Some(5),
        "a commit never moves back"
    );
    // An explicit reset does, and fences the commits of the old generation.
    let mut offsets = BTreeMap::new();
    offsets.insert(a_part, 1);
    s.apply(
        &GroupOp::Reset {
            topic: "t".into(),
            info: info("id-t", 2),
            offsets,
        },
        4,
    )
    .unwrap();
    assert_eq!(s.partition("t", a_part).unwrap().committed, Some(1));
    assert_eq!(s.generation, g + 1);
    assert!(s.apply(&commit("a", g, "t", a_part, 9), 5).is_err());
}

#[test]
fn polls_advance_positions_and_auto_commit() {
    let mut s = GroupState::default();
    s.apply(&join("a", &[("t", 1)], 60_000), 0).unwrap();
    // Nothing committed: the proposer resolved the start itself.
    s.apply(&poll("a", "t", 0, 7, 10, false), 1).unwrap();
    assert_eq!(s.read_from("t", 0), Some(10));
    assert_eq!(s.partition("t", 0).unwrap().committed, None);
    // A second poll that read from the old position lost the race.
    assert_eq!(
        s.apply(&poll("a", "t", 0, 7, 12, false), 2),
        Err(GroupError::PositionMoved {
            topic: "t".into(),
            partition: 0
        })
    );
    s.apply(&poll("a", "t", 0, 10, 12, true), 3).unwrap();
    assert_eq!(s.partition("t", 0).unwrap().committed, Some(12));
    // A commit ahead of the position moves the position.
    let g = s.generation;
    s.apply(&commit("a", g, "t", 0, 20), 4).unwrap();
    assert_eq!(s.read_from("t", 0), Some(20));
    // Another member takes the partition over: it restarts at the committed offset.
    s.apply(&poll("a", "t", 0, 20, 25, false), 5).unwrap();
    s.apply(
        &GroupOp::Leave {
            member_id: "a".into(),
        },
        6,
    )
    .unwrap();
    s.apply(&join("b", &[("t", 1)], 60_000), 7).unwrap();
    assert_eq!(s.read_from("t", 0), Some(20));
    assert_eq!(
        s.apply(&poll("a", "t", 0, 20, 21, false), 8),
        Err(GroupError::MemberNotFound("a".into()))
    );
}

#[test]
fn topics_grow_recreate_and_delete() {
    let mut s = GroupState::default();
    s.apply(&join("a", &[("t", 1)], 60_000), 0).unwrap();
    s.apply(&join("b", &[("t", 1)], 60_000), 0).unwrap();
    let g = s.generation;
    let owner = s.partition("t", 0).unwrap().owner.clone().unwrap();
    s.apply(&commit(&owner, g, "t", 0, 4), 1).unwrap();
    let mut grown = BTreeMap::new();
    grown.insert("t".to_string(), info("id-t", 2));
    s.apply(
        &GroupOp::Topics {
            topics: grown.clone(),
        },
        2,
    )
    .unwrap();
    assert_eq!(s.generation, g + 1);
    assert_eq!(s.assigned("a").len() + s.assigned("b").len(), 2);
    assert_eq!(s.partition("t", 0).unwrap().committed, Some(4));
    // The same counts again: no rebalance.
    s.apply(&GroupOp::Topics { topics: grown }, 3).unwrap();
    assert_eq!(s.generation, g + 1);
    // The topic was deleted and created again: its offsets start over.
    let mut again = BTreeMap::new();
    again.insert("t".to_string(), info("id-t2", 1));
    s.apply(&GroupOp::Topics { topics: again }, 4).unwrap();
    assert_eq!(s.topics["t"].partitions.len(), 1);
    assert_eq!(s.partition("t", 0).unwrap().committed, None);
    let gen = s.generation;
    s.apply(&GroupOp::Delete, 5).unwrap();
    assert!(!s.exists && s.members.is_empty() && s.topics.is_empty());
    assert!(s.generation > gen);
    assert_eq!(
        s.apply(
            &GroupOp::Heartbeat {
                member_id: "a".into()
            },
            6
        ),
        Err(GroupError::GroupNotFound)
    );
    s.apply(&join("c", &[("t", 1)], 60_000), 7).unwrap();
    assert!(s.generation > gen + 1, "generations never repeat");
}

#[test]
fn state_round_trips_through_json() {
    let mut s = GroupState::default();
    s.apply(&join("a", &[("t", 3), ("u", 1)], 60_000), 0)
        .unwrap();
    s.apply(&poll("a", "t", 1, 0, 9, true), 1).unwrap();
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<GroupState>(&text).unwrap(), s);
    let op = poll("a", "t", 1, 9, 10, false);
    let text = serde_json::to_string(&op).unwrap();
    assert_eq!(serde_json::from_str::<GroupOp>(&text).unwrap(), op);
}

fn arb_op() -> impl Strategy<Value = (GroupOp, i64)> {
    let member = proptest::sample::select(vec!["a", "b", "c", "d"]);
    let topic = proptest::sample::select(vec!["t", "u"]);
    prop_oneof![
        (member.clone(), 1u32..4, 100u64..3000).prop_map(|(m, n, to)| join(
            m,
            &[("t", n), ("u", 2)],
            to
        )),
        (member.clone(), 1u32..4).prop_map(|(m, n)| join(m, &[("t", n)], 1500)),
        member.clone().prop_map(|m| GroupOp::Heartbeat {
            member_id: m.into()
        }),
        member.clone().prop_map(|m| GroupOp::Leave {
            member_id: m.into()
        }),
        (member.clone(), 0u64..12, topic.clone(), 0u32..4, 0u64..100)
            .prop_map(|(m, g, t, p, o)| commit(m, g, t, p, o)),
        (
            member,
            topic.clone(),
            0u32..4,
            0u64..50,
            0u64..50,
            any::<bool>()
        )
            .prop_map(|(m, t, p, f, d, c)| poll(m, t, p, f, f + d, c)),
        (topic, 0u32..4, 0u64..30).prop_map(|(t, p, o)| {
            let mut offsets = BTreeMap::new();
            offsets.insert(p, o);
            GroupOp::Reset {
                info: info(&format!("id-{t}"), 4),
                topic: t.into(),
                offsets,
            }
        }),
        Just(GroupOp::Tick),
    ]
    .prop_flat_map(|op| (Just(op), 0i64..400))
}

proptest! {
    /// Over any sequence of operations: a refused op changes nothing but the expiries due;
    /// every partition of a topic some live member reads has exactly one owner, a live
    /// subscriber; the generation never decreases; committed offsets never go back but by a
    /// reset; a partition that changes owner restarts at its committed offset.
    #[test]
    fn invariants_hold_over_any_history(ops in proptest::collection::vec(arb_op(), 1..60)) {
        let mut s = GroupState::default();
        let mut now = 0i64;
        for (op, dt) in ops {
            now += dt;
            let before = s.clone();
            let r = s.apply(&op, now);
            if r.is_err() {
                let expected = if before.exists { before.at(now) } else { before.clone() };
                prop_assert_eq!(&s, &expected, "refused {:?} changed the state", op);
                continue;
            }
            prop_assert!(s.generation >= before.generation);
            for (name, ts) in &s.topics {
                let readers: Vec<&String> = s.members.iter().filter(|(_, m)| m.topics.contains(name)).map(|(k, _)| k).collect();
                for (i, p) in ts.partitions.iter().enumerate() {
                    match &p.owner {
                        Some(o) => prop_assert!(readers.contains(&o), "{}/{} owned by {}", name, i, o),
                        None => prop_assert!(readers.is_empty(), "{}/{} unowned", name, i),
                    }
                    let old = before.partition(name, i as u32);
                    let same_topic = before.topics.get(name).is_some_and(|b| b.id == ts.id);
                    if let (Some(old), true) = (old, same_topic) {
                        if !matches!(op, GroupOp::Reset { .. }) {
                            prop_assert!(p.committed >= old.committed, "{}/{} committed went back", name, i);
                        }
                        // (A poll may set the position right after the expiry in the same apply
                        // handed the partition over, from the committed offset.)
                        if old.owner != p.owner && !matches!(op, GroupOp::Poll { .. }) {
                            prop_assert_eq!(p.position, None);
                        }
                    }
                }
            }
        }
    }
}
