//! Partition assignment of a consumer group: a pure, deterministic function of the live members
//! (and the topics each subscribes to), the partition counts and the previous assignment.
//!
//! Rules, in order:
//! 1. **Sticky**: a partition stays with its previous owner while that member is live and still
//!    subscribes to the topic.
//! 2. **Complete**: every other partition of a subscribed topic goes to the least-loaded member
//!    subscribing to its topic (ties: the smallest member id).
//! 3. **Balanced**: while some partition's owner holds more than one partition more than the
//!    least-loaded member that could take it, it moves there. Each move lowers the sum of the
//!    squared loads, so this ends; afterwards no eligible member has fewer than `owner load - 1`.
//!
//! Partitions of topics no live member subscribes to are left unassigned. Iteration is over
//! `BTreeMap`s only, so every gateway computes the same answer from the same input.

use std::collections::{BTreeMap, BTreeSet};

/// A partition of a topic.
pub type TopicPartition = (String, u32);

/// The owner of each assigned partition.
pub type Assignment = BTreeMap<TopicPartition, String>;

/// Assign every partition of the subscribed topics to exactly one live member subscribing to it.
/// `members`: live member id → its topics; `partitions`: topic → partition count; `previous`: the
/// assignment before this change (entries for gone members or partitions are ignored).
pub fn assign(
    members: &BTreeMap<String, BTreeSet<String>>,
    partitions: &BTreeMap<String, u32>,
    previous: &Assignment,
) -> Assignment {
    let mut load: BTreeMap<String, usize> = members.keys().map(|m| (m.clone(), 0)).collect();
    let mut out: Assignment = BTreeMap::new();
    // Members subscribing to each topic, sorted by id.
    let eligible: BTreeMap<&str, Vec<&str>> = partitions
        .keys()
        .map(|t| {
            let subs = members
                .iter()
                .filter(|(_, topics)| topics.contains(t))
                .map(|(m, _)| m.as_str())
                .collect();
            (t.as_str(), subs)
        })
        .collect();
    // The least-loaded member subscribing to `topic` (ties: smallest id) and its load.
    let least = |load: &BTreeMap<String, usize>, topic: &str| -> Option<(String, usize)> {
        eligible
            .get(topic)?
            .iter()
            .map(|m| (load.get(*m).copied().unwrap_or(0), *m))
            .min()
            .map(|(l, m)| (m.to_string(), l))
    };
    let all: Vec<TopicPartition> = partitions
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
        .collect();
    // 1. sticky
    for tp in &all {
        if let Some(owner) = previous.get(tp) {
            if members.get(owner).is_some_and(|ts| ts.contains(&tp.0)) {
                *load.entry(owner.clone()).or_default() += 1;
                out.insert(tp.clone(), owner.clone());
            }
        }
    }
    // 2. complete
    for tp in &all {
        if out.contains_key(tp) {
            continue;
        }
        if let Some((m, _)) = least(&load, &tp.0) {
            *load.entry(m.clone()).or_default() += 1;
            out.insert(tp.clone(), m);
        }
    }
    // 3. balanced
    loop {
        let mut moved = false;
        for tp in &all {
            let Some(owner) = out.get(tp).cloned() else {
                continue;
            };
            let owner_load = load.get(&owner).copied().unwrap_or(0);
            if let Some((m, l)) = least(&load, &tp.0) {
                if owner_load > l + 1 {
                    *load.entry(owner).or_default() -= 1;
                    *load.entry(m.clone()).or_default() += 1;
                    out.insert(tp.clone(), m);
                    moved = true;
                }
            }
        }
        if !moved {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(spec: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        spec.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(spec: &[(&str, u32)]) -> BTreeMap<String, u32> {
        spec.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn loads(a: &Assignment) -> BTreeMap<String, usize> {
        let mut l = BTreeMap::new();
        for m in a.values() {
            *l.entry(m.clone()).or_insert(0) += 1;
        }
        l
    }

    #[test]
    fn spreads_evenly_and_sticks() {
        let m = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let p = counts(&[("t", 7)]);
        let first = assign(&m, &p, &BTreeMap::new());
        assert_eq!(first.len(), 7);
        let l = loads(&first);
        assert_eq!((l["a"], l["b"], l["c"]), (3, 2, 2));
        // Same input again: nothing moves.
        assert_eq!(assign(&m, &p, &first), first);
        // b leaves: only b's partitions move, and a and c end balanced.
        let m2 = members(&[("a", &["t"]), ("c", &["t"])]);
        let second = assign(&m2, &p, &first);
        for (tp, owner) in &first {
            if owner != "b" {
                assert_eq!(&second[tp], owner, "{tp:?} moved needlessly");
            }
        }
        let l = loads(&second);
        assert!(l["a"].abs_diff(l["c"]) <= 1, "{l:?}");
        // d joins: it takes partitions until balanced; the others keep the rest.
        let m3 = members(&[("a", &["t"]), ("c", &["t"]), ("d", &["t"])]);
        let third = assign(&m3, &p, &second);
        let l = loads(&third);
        assert!(l.values().all(|n| (2..=3).contains(n)), "{l:?}");
        for (tp, owner) in &third {
            if owner != "d" {
                assert_eq!(&second[tp], owner);
            }
        }
    }

    #[test]
    fn only_subscribers_get_a_topic() {
        let m = members(&[("a", &["x"]), ("b", &["x", "y"])]);
        let p = counts(&[("x", 2), ("y", 2), ("z", 3)]);
        let a = assign(&m, &p, &BTreeMap::new());
        assert_eq!(a[&("y".to_string(), 0)], "b");
        assert_eq!(a[&("y".to_string(), 1)], "b");
        assert!(!a.keys().any(|(t, _)| t == "z"), "nobody reads z");
        assert_eq!(a.len(), 4);
        assert!(assign(&BTreeMap::new(), &p, &a).is_empty());
    }

    type Input = (
        BTreeMap<String, BTreeSet<String>>,
        BTreeMap<String, u32>,
        Vec<(usize, usize, u32)>,
    );

    fn arb_input() -> impl Strategy<Value = Input> {
        let topics = ["t0", "t1", "t2"];
        (
            proptest::collection::btree_map(
                "m[0-9]",
                proptest::collection::btree_set(proptest::sample::select(topics.to_vec()), 1..3),
                0..6,
            ),
            proptest::collection::btree_map(
                proptest::sample::select(topics.to_vec()),
                0u32..12,
                0..3,
            ),
            proptest::collection::vec((0usize..8, 0usize..3, 0u32..12), 0..20),
        )
            .prop_map(|(m, p, prev)| {
                let m = m
                    .into_iter()
                    .map(|(k, v)| (k, v.into_iter().map(str::to_string).collect()))
                    .collect();
                let p = p.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                (m, p, prev)
            })
    }

    proptest! {
        /// Complete, exclusive, eligible, balanced, deterministic and stable on the same input,
        /// whatever the previous assignment (even one naming gone members).
        #[test]
        fn assignment_properties((m, p, prev_spec) in arb_input()) {
            let topics = ["t0", "t1", "t2"];
            let prev: Assignment = prev_spec
                .iter()
                .map(|(mi, ti, part)| ((topics[*ti].to_string(), *part), format!("m{mi}")))
                .collect();
            let a = assign(&m, &p, &prev);
            prop_assert_eq!(&a, &assign(&m, &p, &prev));
            prop_assert_eq!(&assign(&m, &p, &a), &a);
            let l = loads(&a);
            for (t, n) in &p {
                let subs: Vec<&String> = m.iter().filter(|(_, ts)| ts.contains(t)).map(|(k, _)| k).collect();
                for part in 0..*n {
                    let tp = (t.clone(), part);
                    match a.get(&tp) {
                        None => prop_assert!(subs.is_empty(), "{:?} unassigned", tp),
                        Some(owner) => {
                            prop_assert!(subs.contains(&owner), "{:?} owned by non-subscriber {}", tp, owner);
                            let min = subs.iter().map(|s| l.get(*s).copied().unwrap_or(0)).min().unwrap_or(0);
                            prop_assert!(l[owner] <= min + 1, "unbalanced {:?}", l);
                        }
                    }
                }
            }
            prop_assert!(a.keys().all(|(t, part)| p.get(t).is_some_and(|n| part < n)));
        }

        /// With every member reading every topic, a member leaving moves only its own
        /// partitions, and a member joining takes partitions only from the others.
        #[test]
        fn leaving_and_joining_move_only_what_they_must(n in 1usize..7, parts in proptest::collection::vec(0u32..10, 1..3), gone in 0usize..7) {
            let topics: Vec<String> = (0..parts.len()).map(|i| format!("t{i}")).collect();
            let all: BTreeSet<String> = topics.iter().cloned().collect();
            let m: BTreeMap<String, BTreeSet<String>> = (0..n).map(|i| (format!("m{i}"), all.clone())).collect();
            let p: BTreeMap<String, u32> = topics.iter().cloned().zip(parts.iter().copied()).collect();
            let before = assign(&m, &p, &BTreeMap::new());
            let gone = format!("m{}", gone % n);
            let mut fewer = m.clone();
            fewer.remove(&gone);
            let after = assign(&fewer, &p, &before);
            for (tp, owner) in &before {
                if *owner != gone {
                    prop_assert_eq!(after.get(tp), Some(owner), "{:?} moved", tp);
                }
            }
            let mut more = m.clone();
            more.insert("new".into(), all.clone());
            let joined = assign(&more, &p, &before);
            for (tp, owner) in &joined {
                if owner != "new" {
                    prop_assert_eq!(before.get(tp), Some(owner), "{:?} moved between old members", tp);
                }
            }
        }
    }
}
