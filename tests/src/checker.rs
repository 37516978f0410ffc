//! History checker. Writers record what they were acked; readers record what they got back;
//! [`check`] reports every violation of:
//! - I1 durable ack: every acked record is found at its acked offset with its value;
//! - I2 dense, unique offsets: each partition reads back as 0,1,2,… (from its earliest);
//! - I3 order: one writer's records in one partition have increasing offsets in send order;
//! - I4 integrity: every read succeeded (CRC-checked decode);
//! - I5 idempotence: no record value is stored twice, and a retried request was acked with the
//!   offsets of its first commit.

use std::collections::{BTreeMap, HashMap};

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
}
