//! `sluice-fuzz TARGET [ITERATIONS] [SEED]`: a mutational fuzzer for every decoder of the bucket
//! formats and for the gateway's request parsers. It starts from valid inputs, applies random
//! mutations (bit flips, byte sets, truncations, insertions, deletions, splices of two inputs,
//! length-field tweaks; JSON tokens for the text targets), runs the decoder on each input and
//! checks that it returns instead of panicking, and that whatever decodes re-encodes to a value
//! that decodes the same. Deterministic for a given seed; a panic prints the seed and the
//! iteration so it can be replayed.
//!
//! Targets: `segment`, `journal`, `index`, `checkpoint`, `run` (a shared run cut into the
//! slices a checkpoint names), `state-entry`, `state-snapshot` (bucket
//! objects); `queue-snapshot` (a queue state snapshot: restore, and what restores re-encodes the
//! same), `queue-ops` (a queue state-log entry's ops: decoded and applied to a state holding
//! leased, held and dead records, then planned against — nothing may panic); `produce-json`,
//! `produce-ndjson` (produce request bodies, through the same function the handler calls, so
//! every rejection must be a 4xx problem), `query` (the read and produce query strings and the
//! read's start offset); `filter` (the record filter parser: an error names a position inside
//! the input, whatever parses prints back to itself and evaluates without panicking); `group`
//! (a consumer group's state-log ops and snapshot JSON: whatever decodes applies without
//! panicking and keeps the group's invariants); `txn-staged` (a transaction's staged-records
//! object, `SLTB`), `txn` (a transaction's state-log ops and snapshot JSON: whatever decodes
//! applies without panicking and keeps the transaction's invariants); `all`. Example (≥ 10 million runs):
//! `cargo run --release -p sluice-fuzz -- all 10000000`.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain, which this project's machines cannot fetch.
//! The same decoders are also exercised by proptest in `core/src/format/fuzz_tests.rs`.

use base64::Engine;
use bytes::{Bytes, BytesMut};
use sluice_api::{OffsetQuery, ProduceQuery, ReadQuery};
use sluice_core::delayed::state::{DelayedOp, DelayedState};
use sluice_core::filter::Filter;
use sluice_core::format::checkpoint::{Checkpoint, DedupRecord, ProducerRecord, RunRef, Slice};
use sluice_core::format::delayed::{DelayedItem, DelayedObject};
use sluice_core::format::delayed_key::{sample_marker, DelayedMarker};
use sluice_core::format::index::{IndexEntry, IndexObject, Summary};
use sluice_core::format::journal::{Append, BatchRef, JournalEntry, ProducerStamp};
use sluice_core::format::record::Record;
use sluice_core::format::run::{decode_slice, slice_of_run, RunBuilder, SliceBatch};
use sluice_core::format::segment::{
    decode_frame, decode_segment, encode_frame, segment_header, Codec,
};
use sluice_core::format::state::{StateEntry, StateSnapshot};
use sluice_core::group::{GroupOp, GroupState};
use sluice_core::ids::{ObjectId, PartitionId, ProducerId, TopicId};
use sluice_core::queue::state::{QueueOp, QueueState};
use sluice_core::statelog::StateMachine;
use sluice_core::topic::TopicConfig;
use sluice_core::txn::staged::StagedBatch;
use sluice_core::txn::{Decider, Phase, Staged, TxnOp, TxnState};
use sluice_gateway::api::produce::{records_of, Format};
use sluice_gateway::api::read::{start_of, Start};
use sluice_gateway::extract::parse_query;
use sluice_gateway::ApiError;
use sluice_tables::manifest::{Manifest, OffsetRange, TableFile};
use std::process::ExitCode;

const TARGETS: [&str; 20] = [
    "segment",
    "journal",
    "index",
    "checkpoint",
    "run",
    "state-entry",
    "state-snapshot",
    "queue-snapshot",
    "queue-ops",
    "produce-json",
    "produce-ndjson",
    "query",
    "filter",
    "group",
    "table-manifest",
    "txn-staged",
    "txn",
    "delayed",
    "delayed-ops",
    "delayed-marker",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A run of two slices (seed of the `run` target) and the checkpoint's description of them.
fn sample_run() -> (Vec<u8>, Vec<Slice>) {
    let t = TopicId([1; 16]);
    let mut run = RunBuilder::new(ObjectId([9; 16]));
    for partition in [0u32, 2] {
        let mut frame = BytesMut::new();
        encode_frame(
            &[Record::new(Some(b"k"), &b"v"[..])],
            Codec::None,
            &mut frame,
        );
        let batches = vec![SliceBatch {
            base_offset: 5,
            record_count: 1,
            append_ts: 9,
            frame: frame.freeze(),
        }];
        let p = PartitionId {
            topic: t,
            partition,
        };
        run.push(p, batches, None, 3);
    }
    let (parts, slices) = run.finish();
    (parts.concat(), slices)
}

/// Cut a run into the sample's slices and decode each: whatever decodes has frames that tile
/// the slice after its index.
fn run_slices(input: &[u8]) -> bool {
    let (_, slices) = sample_run();
    let run = Bytes::copy_from_slice(input);
    let mut any = false;
    for s in &slices {
        let Ok(bytes) = slice_of_run(&run, s) else {
            continue;
        };
        if let Ok((index, frames)) = decode_slice(&bytes, s) {
            let framed: usize = frames.iter().map(Bytes::len).sum();
            assert_eq!(framed + s.index_len as usize, s.len as usize);
            assert_eq!(index.entries.len(), frames.len());
            for f in &frames {
                let _ = decode_frame(f);
            }
            any = true;
        }
    }
    any
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let t = TopicId([1; 16]);
    match target {
        "segment" => {
            let mut seg = BytesMut::from(&segment_header()[..]);
            encode_frame(
                &[
                    Record::new(Some(b"k"), &b"v"[..]),
                    Record::new(None, &b"w"[..]),
                ],
                Codec::None,
                &mut seg,
            );
            encode_frame(&[Record::new(None, vec![7u8; 300])], Codec::Zstd, &mut seg);
            vec![seg.to_vec()]
        }
        "journal" => vec![JournalEntry {
            shard: 1,
            seq: 9,
            append_ts: 5,
            writer: [3; 16],
            appends: vec![Append {
                topic: t,
                partition_count: 4,
                dedup_key: Some(Bytes::from_static(b"idem")),
                batches: vec![BatchRef {
                    partition: 1,
                    base_offset: 10,
                    record_count: 2,
                    segment: ObjectId([4; 16]),
                    pos: 8,
                    len: 40,
                }],
                producer: Some(ProducerStamp {
                    id: ProducerId([6; 16]),
                    epoch: 3,
                    seq: 17,
                }),
            }],
        }
        .encode()
        .to_vec()],
        "index" => vec![IndexObject {
            topic: t,
            partition: 2,
            through_seq: 3,
            entries: vec![
                IndexEntry {
                    base_offset: 0,
                    record_count: 3,
                    append_ts: 1,
                    pos: 8,
                    len: 60,
                },
                IndexEntry {
                    base_offset: 3,
                    record_count: 1,
                    append_ts: 2,
                    pos: 68,
                    len: 20,
                },
            ],
            summary: Summary::of(&[
                Record::new(Some(b"k"), &b"v"[..]),
                Record {
                    headers: vec![
                        ("type".into(), Bytes::from_static(b"paid")),
                        ("id".into(), Bytes::from(vec![b'x'; 80])),
                    ],
                    ..Record::new(None, &b"w"[..])
                },
                Record {
                    headers: vec![("type".into(), Bytes::from_static(b"created"))],
                    ..Record::new(Some(b"k2"), &b""[..])
                },
                Record::new(None, &b""[..]),
            ]),
        }
        .encode()
        .to_vec()],
        "run" => vec![sample_run().0],
        "checkpoint" => vec![Checkpoint {
            shard: 0,
            seq: 4,
            last_append_ts: 9,
            next_offsets: vec![(
                PartitionId {
                    topic: t,
                    partition: 0,
                },
                12,
            )],
            dedup: vec![DedupRecord {
                topic: t,
                key: Bytes::from_static(b"k"),
                seq: 4,
                append_ts: 9,
                partition_count: 1,
                batches: vec![(0, 10, 2)],
            }],
            producers: vec![ProducerRecord {
                topic: t,
                id: ProducerId([6; 16]),
                epoch: 3,
                last_append_ts: 9,
                recent: vec![
                    (
                        16,
                        DedupRecord {
                            topic: t,
                            key: Bytes::from_static(b"route"),
                            seq: 3,
                            append_ts: 8,
                            partition_count: 1,
                            batches: vec![(0, 8, 2)],
                        },
                    ),
                    (
                        17,
                        DedupRecord {
                            topic: t,
                            key: Bytes::from_static(b"route2"),
                            seq: 4,
                            append_ts: 9,
                            partition_count: 1,
                            batches: vec![(0, 10, 2)],
                        },
                    ),
                ],
            }],
            runs: vec![RunRef {
                id: ObjectId([9; 16]),
                level: 1,
                len: 500,
            }],
            slices: vec![Slice {
                partition: PartitionId {
                    topic: t,
                    partition: 0,
                },
                run: ObjectId([9; 16]),
                base: 10,
                end: 12,
                min_ts: 8,
                max_ts: 9,
                pos: 8,
                index_len: 60,
                len: 200,
            }],
        }
        .encode()
        .to_vec()],
        "state-entry" => vec![StateEntry {
            seq: 3,
            time_ms: 1_700_000_000_000,
            writer: [2; 16],
            ops: Bytes::from_static(br#"[{"Ack":{"p":0,"o":1}}]"#),
        }
        .encode()
        .to_vec()],
        "state-snapshot" => vec![StateSnapshot {
            seq: 3,
            time_ms: 1_700_000_000_000,
            state: Bytes::from_static(b"{}"),
        }
        .encode()
        .to_vec()],
        "queue-snapshot" => vec![fuzz_queue_state().snapshot().unwrap_or_default()],
        "queue-ops" => vec![serde_json::to_vec(&fuzz_queue_ops()).unwrap_or_default()],
        "produce-json" => [
            r#"{"records":[{"key":"user-7","value":"hello","headers":{"type":"created"},"partition":null,"timestamp_ms":null}]}"#,
            r#"{"records":[{"key_b64":"AAEC","value_b64":"aGVsbG8=","partition":3,"timestamp_ms":1732400000000},{"value":"x"}]}"#,
            r#"{"records":[{"value":"\u00e9\ud83d\ude00 ","headers":{"a":"1","b":""}},{"value_b64":"","key":""}]}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "produce-ndjson" => [
            "{\"key\":\"user-7\",\"value\":\"created\",\"headers\":{\"type\":\"created\"}}\n{\"key\":\"user-7\",\"value\":\"paid\"}\n",
            "{\"value_b64\":\"AP8=\",\"partition\":1}\n\n  \n{\"value\":\"tail\",\"timestamp_ms\":-1}",
            "{\"key_b64\":\"dXNlcg==\",\"value\":\"\",\"headers\":{}}\r\n",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "query" => [
            "offset=earliest&limit=10&wait_ms=100",
            "offset=42",
            "offset=latest",
            "timestamp_ms=1732400000000",
            "offset=7&timestamp_ms=-5",
            "ack=none&key=user-7&partition=3",
            "ack=durable&key=%E2%82%AC+x&partition=0",
            "",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "filter" => [
            "type = 'created' AND amount > 100",
            "key LIKE 'user-%' OR NOT (region IN ('eu', 'us') AND \"x y\" IS NOT NULL)",
            "n NOT IN (1, -2.5, 1e+3) and \"key\" <> 'it''s' or b NOT LIKE '_%' OR c IS NULL",
            "((a = 1)) AND b != 2 AND c <= 3 AND d >= 4 AND e < 5",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "group" => vec![
            br#"[{"Join":{"member_id":"m-a","topics":{"t":{"id":"01T","partitions":3}},"session_timeout_ms":1000,"start":"earliest","filter":null}},{"Join":{"member_id":"m-b","topics":{"t":{"id":"01T","partitions":3},"u":{"id":"01U","partitions":1}},"session_timeout_ms":60000,"start":"latest","filter":"a = 1"}},{"Poll":{"member_id":"m-a","advances":[{"topic":"t","partition":0,"from":0,"to":5}],"commit":true}},{"Commit":{"member_id":"m-b","generation":2,"offsets":[{"topic":"t","partition":1,"offset":3}]}},"Tick",{"Heartbeat":{"member_id":"m-b"}},{"Topics":{"topics":{"t":{"id":"01T","partitions":4}}}},{"Reset":{"topic":"t","info":{"id":"01T","partitions":4},"offsets":{"0":1}}},{"Leave":{"member_id":"m-a"}},"Delete"]"#.to_vec(),
            br#"{"format":1,"exists":true,"generation":3,"members":{"m-a":{"topics":["t"],"session_timeout_ms":30000,"last_seen_ms":1000,"start":"earliest","filter":null}},"topics":{"t":{"id":"01T","partitions":[{"owner":"m-a","committed":4,"position":9},{"owner":"m-a","committed":null,"position":null}]}}}"#.to_vec(),
        ],
        "delayed" => vec![DelayedObject {
            topic_id: [7; 16],
            created_ms: 1_700_000_000_000,
            items: vec![
                DelayedItem {
                    deliver_at_ms: 1_700_000_060_000,
                    partition: Some(2),
                    record: Record {
                        key: Some(Bytes::from_static(b"k")),
                        value: Bytes::from_static(b"v"),
                        producer_ts: Some(5),
                        headers: vec![("h".into(), Bytes::from_static(b"x"))],
                    },
                },
                DelayedItem {
                    deliver_at_ms: 1,
                    partition: None,
                    record: Record::new(None, Bytes::new()),
                },
            ],
        }
        .encode()
        .to_vec()],
        "delayed-marker" => vec![sample_marker().encode().to_vec()],
        "delayed-ops" => vec![br#"[{"op":"cancel","object":"o","index":1},{"op":"take","objects":["o","p"],"cursor":5},{"op":"done","objects":["o"]}]"#.to_vec()],
        "table-manifest" => {
            let mut m = Manifest::new("orders", "01JDC0000000000000000000AA", 3);
            m.set_next(0, 5);
            m.files.push(TableFile {
                path: "date=2026-12-02/part-00000000000000000003.parquet".into(),
                staging: "01JDC0000000000000000000AB".into(),
                added_in: 3,
                rows: 5,
                bytes: 900,
                min_ts: 1,
                max_ts: 2,
                partitions: vec![OffsetRange {
                    partition: 0,
                    start: 0,
                    end: 5,
                }],
            });
            vec![m.encode().to_vec()]
        }
        "txn-staged" => vec![StagedBatch {
            txn: ObjectId([1; 16]),
            object: ObjectId([2; 16]),
            topic_id: [3; 16],
            topic: "orders".into(),
            records: vec![
                (0, Record::new(Some(b"k"), &b"v"[..])),
                (
                    3,
                    Record {
                        headers: vec![("h".into(), Bytes::from_static(b"x"))],
                        producer_ts: Some(5),
                        ..Record::new(None, &b"w"[..])
                    },
                ),
            ],
        }
        .encode()
        .to_vec()],
        "txn" => {
            let staged = |o: &str, n| Staged {
                object: o.into(),
                topic: "orders".into(),
                topic_id: "01T".into(),
                records: n,
                bytes: 40,
                idempotency_key: Some(o.into()),
            };
            let ops = vec![
                TxnOp::Begin {
                    timeout_ms: 1000,
                    check_url: Some("http://x/check".into()),
                },
                TxnOp::Stage(staged("a", 2)),
                TxnOp::Stage(staged("b", 1)),
                TxnOp::Checked {
                    n: 1,
                    next_check_ms: 5,
                },
                TxnOp::Decide {
                    commit: true,
                    by: Decider::CheckBack,
                },
                TxnOp::Applied {
                    from: 0,
                    offsets: vec![vec![(0, 1), (1, 4)]],
                },
                TxnOp::Applied {
                    from: 1,
                    offsets: vec![vec![(2, 0)]],
                },
                TxnOp::Void,
            ];
            let mut state = TxnState::default();
            for op in &ops {
                state.apply_op(op, 100);
            }
            vec![
                serde_json::to_vec(&ops).unwrap_or_default(),
                state.snapshot().unwrap_or_default(),
            ]
        }
        _ => Vec::new(),
    }
}

/// A transaction's state-log ops and snapshots: whatever decodes applies (at increasing times)
/// without panicking and keeps the invariants (no more applied than staged; committed means
/// every staged request applied; nothing staged after the decision); a snapshot round-trips.
fn run_txn(input: &[u8]) -> bool {
    let check = |s: &TxnState| {
        assert!(s.applied.len() <= s.staged.len());
        if s.phase == Phase::Committed {
            assert_eq!(s.applied.len(), s.staged.len());
        }
        if s.phase == Phase::Open {
            assert!(s.applied.is_empty());
        }
        let _ = s.offsets();
        let bytes = s.snapshot().expect("a state encodes");
        assert_eq!(<TxnState as StateMachine>::restore(&bytes).as_ref(), Ok(s));
    };
    if let Ok(mut state) = <TxnState as StateMachine>::restore(input) {
        let staged = state.staged.len();
        state.apply_op(
            &TxnOp::Stage(Staged {
                object: "late".into(),
                topic: "t".into(),
                topic_id: "x".into(),
                records: 1,
                bytes: 1,
                idempotency_key: None,
            }),
            i64::MAX,
        );
        assert!(state.staged.len() <= staged + 1);
        return true;
    }
    let Ok(ops) = serde_json::from_slice::<Vec<TxnOp>>(input) else {
        return false;
    };
    let mut state = TxnState::default();
    for (i, op) in ops.iter().enumerate() {
        let before = state.clone();
        state.apply_op(op, 10 * i as i64);
        if before.phase != Phase::Open {
            assert_eq!(state.staged, before.staged, "staged after the decision");
        }
        check(&state);
    }
    true
}

/// JSON and query-string fragments the text targets splice in.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "{", "}", "[", "]", ",", ":", "\"", "\\", "\n", " ", "null", "true", "0", "-1", "1.5", "1e400",
    "4294967295", "4294967296", "18446744073709551616", "-9223372036854775809", "\"\\ud800\"",
    "\"records\"", "\"key\"", "\"key_b64\"", "\"value\"", "\"value_b64\"", "\"headers\"",
    "\"partition\"", "\"timestamp_ms\"", "\"AAEC\"", "\"====\"", "\"x\"", "{}", "[]", "&", "=",
    "%", "%FF", "%00", "+", "offset=", "limit=", "wait_ms=", "timestamp_ms=", "ack=", "key=",
    "partition=", "earliest", "latest", "none", "durable", "\"partition\":3,", "\"key\":\"k\",",
    "\"key_b64\":\"AAEC\",", "\"value_b64\":\"/w==\",", "\"timestamp_ms\":-1,",
    "\"headers\":{\"h\":\"v\"},", "{\"value\":\"v\"},", "\"\\u00e9\",", "\"h\":\"v\",",
    " AND ", " OR ", "NOT ", " IN ", " LIKE ", " IS ", "NULL", "'", "''", "(", ")", "<>", "!=",
    "<=", ">=", "<", ">", "'x'", "1e+5", "key", "\"q\"",
    "\"Tick\"", "\"Delete\"", "\"member_id\":\"m-a\"", "\"generation\":", "\"owner\":null",
    "\"Void\"", "\"phase\":\"committed\"", "\"applied\":[[[0,1]]]", "\"from\":0", "\"n\":1",
];

/// Limits the produce targets check records against.
const MAX_RECORD_BYTES: usize = 512;
const MAX_RECORDS: usize = 64;
const PARTITIONS: u32 = 4;

fn fuzz_queue_ops() -> Vec<QueueOp> {
    vec![
        QueueOp::Start {
            next: vec![(0, 0), (1, 5)],
        },
        QueueOp::Admit {
            p: 0,
            o: 0,
            key: Some(7),
            lease: Some((1, 100)),
            gw: Some("g".into()),
        },
        QueueOp::Admit {
            p: 0,
            o: 1,
            key: Some(7),
            lease: None,
            gw: None,
        },
        QueueOp::Skip { p: 1, to: 9 },
        QueueOp::Nack {
            p: 0,
            o: 0,
            lease: 1,
            delay_ms: 5,
            reason: Some("r".into()),
            dead: false,
        },
        QueueOp::Lease {
            p: 0,
            o: 0,
            lease: 2,
            until: 200,
            gw: None,
        },
        QueueOp::Extend {
            p: 0,
            o: 0,
            lease: 2,
            until: 300,
        },
        QueueOp::Ack {
            p: 0,
            o: 0,
            lease: 2,
        },
        QueueOp::Doom { p: 0, o: 1 },
        QueueOp::Buried { p: 0, o: 1 },
        QueueOp::Redrive {
            records: vec![(0, 1)],
        },
    ]
}

/// A queue state with a record in every phase.
fn fuzz_queue_state() -> QueueState {
    let mut st = QueueState::default();
    for (i, op) in fuzz_queue_ops().iter().enumerate() {
        st.apply(op, 10 * i as i64);
    }
    st
}

fn run_queue_ops(input: &[u8]) -> bool {
    let Ok(ops) = serde_json::from_slice::<Vec<QueueOp>>(input) else {
        return false;
    };
    let mut st = fuzz_queue_state();
    for (i, op) in ops.iter().enumerate() {
        st.apply(op, 1000 + i as i64);
    }
    let rules = sluice_core::queue::state::Rules {
        max_deliveries: 2,
        ordering_key: true,
    };
    let _ = sluice_core::queue::state::plan_receive(&st, &rules, &[], 10, 5000, 2000, None);
    let _ = sluice_core::queue::state::counts(&st, 2000);
    let back = QueueState::restore(&st.snapshot().expect("encodes")).expect("restores");
    assert_eq!(back, st);
    true
}

fn fuzz_topic() -> TopicConfig {
    TopicConfig {
        format: sluice_core::topic::TOPIC_FORMAT,
        name: "orders".into(),
        id: "01JDC0000000000000000000AA".into(),
        version: 1,
        partitions: PARTITIONS,
        retention_ms: None,
        shard: 0,
        created_ms: 0,
        deleted: false,
        parquet: false,
    }
}

/// Bad input is the client's fault: a 4xx problem document, never a 5xx.
fn assert_client_error(e: &ApiError) {
    let status = e.kind().status;
    assert!(status.is_client_error(), "{status} for bad input: {e}");
    assert!(serde_json::to_vec(&e.problem()).is_ok());
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A record as wire JSON, with every byte string base64-encoded so any record round-trips.
fn wire_record(partition: Option<u32>, r: &Record) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| {
            let v = std::str::from_utf8(v).expect("header values come from JSON strings");
            (k.clone(), serde_json::Value::from(v))
        })
        .collect();
    serde_json::json!({
        "key_b64": r.key.as_deref().map(b64),
        "value_b64": b64(&r.value),
        "headers": headers,
        "partition": partition,
        "timestamp_ms": r.producer_ts,
    })
}

/// Decode a produce body the way the handler does; whatever decodes must be within the limits
/// and re-encode (as JSON and as NDJSON) to a body that decodes to the same records.
fn run_produce(format: Format, input: &[u8]) -> bool {
    let topic = fuzz_topic();
    let q = ProduceQuery {
        ack: None,
        key: None,
        partition: None,
        transaction: None,
    };
    let decode = |format, body: Vec<u8>| {
        records_of(
            format,
            Bytes::from(body),
            &q,
            &topic,
            MAX_RECORD_BYTES,
            MAX_RECORDS,
        )
    };
    let records = match decode(format, input.to_vec()) {
        Ok(records) => records,
        Err(e) => {
            assert_client_error(&e);
            return false;
        }
    };
    assert!((1..=MAX_RECORDS).contains(&records.len()));
    for (p, r) in &records {
        assert!(p.is_none_or(|p| p < PARTITIONS));
        assert!(r.encoded_len() <= MAX_RECORD_BYTES);
    }
    let wire: Vec<serde_json::Value> = records.iter().map(|(p, r)| wire_record(*p, r)).collect();
    let json = serde_json::to_vec(&serde_json::json!({ "records": wire })).unwrap();
    assert_eq!(decode(Format::Json, json).ok().as_ref(), Some(&records));
    let mut ndjson = Vec::new();
    for w in &wire {
        serde_json::to_writer(&mut ndjson, w).unwrap();
        ndjson.push(b'\n');
    }
    assert_eq!(decode(Format::NdJson, ndjson).ok().as_ref(), Some(&records));
    true
}

/// A delayed-records object: decoding never panics; what decodes round-trips.
fn run_delayed(input: &[u8]) -> bool {
    let bytes = Bytes::copy_from_slice(input);
    match DelayedObject::decode(&bytes) {
        Ok(o) => {
            let again = DelayedObject::decode(&o.encode());
            assert_eq!(
                again.as_ref(),
                Ok(&o),
                "a decoded delayed object round-trips"
            );
            true
        }
        Err(_) => false,
    }
}

/// An idempotency marker of delayed records: decoding never panics; what decodes round-trips
/// and plans every record in exactly one object.
fn run_delayed_marker(input: &[u8]) -> bool {
    match DelayedMarker::decode(input) {
        Ok(m) => {
            assert_eq!(DelayedMarker::decode(&m.encode()).as_ref(), Ok(&m));
            let mut planned: Vec<u32> = m.objects.iter().flat_map(|o| o.members.clone()).collect();
            planned.sort_unstable();
            assert!(planned.iter().copied().eq(0..m.deliver_at_ms.len() as u32));
            true
        }
        Err(_) => false,
    }
}

/// Delayed state-log ops and snapshots: any ops apply without panicking, and the state's
/// snapshot restores to the same state.
fn run_delayed_ops(input: &[u8]) -> bool {
    let _ = DelayedState::restore(input);
    let Ok(ops) = serde_json::from_slice::<Vec<DelayedOp>>(input) else {
        return false;
    };
    let mut st = DelayedState::default();
    for (t, op) in ops.iter().enumerate() {
        st.apply(op, t as i64);
    }
    let back = DelayedState::restore(&st.snapshot().unwrap()).unwrap();
    assert_eq!(back, st);
    true
}

/// Parse a query string as each endpoint's parameters; for reads, resolve the start offset.
/// A table manifest: decoding never panics; any JSON of the right shape, re-encoded with its
/// CRC, goes through the checks past the CRC, and what they accept round-trips.
fn run_manifest(input: &[u8]) -> bool {
    let direct = Manifest::decode(input).is_ok();
    if let Ok(m) = serde_json::from_slice::<Manifest>(input) {
        if let Ok(back) = Manifest::decode(&m.encode()) {
            assert_eq!(back.files, m.files);
            assert_eq!(back.next, m.next);
            return true;
        }
    }
    direct
}

fn run_query(input: &[u8]) -> bool {
    let Ok(uri) = axum::http::Uri::try_from([b"/q?", input].concat()) else {
        return false; // not a request target the HTTP layer would pass on
    };
    let mut parsed = false;
    match parse_query::<ReadQuery>(&uri) {
        Err(e) => assert_client_error(&e),
        Ok(q) => {
            parsed = true;
            match start_of(&q, None) {
                Err(e) => assert_client_error(&e),
                Ok(Start::Offset(n)) => {
                    assert_eq!(q.offset.as_deref().map(str::parse), Some(Ok(n)))
                }
                Ok(Start::Timestamp(ts)) => {
                    assert!(q.offset.is_none() && q.timestamp_ms == Some(ts))
                }
                Ok(Start::Earliest | Start::Latest) => assert!(q.timestamp_ms.is_none()),
            }
            // A resuming event stream starts after Last-Event-ID, whatever the query says.
            assert_eq!(start_of(&q, Some(41)).ok(), Some(Start::Offset(42)));
            assert_client_error(&start_of(&q, Some(u64::MAX)).unwrap_err());
        }
    }
    for r in [
        parse_query::<ProduceQuery>(&uri).map(|_| ()),
        parse_query::<OffsetQuery>(&uri).map(|_| ()),
    ] {
        match r {
            Ok(()) => parsed = true,
            Err(e) => assert_client_error(&e),
        }
    }
    parsed
}

/// Parse a filter: an error points inside the input; a filter prints to text that parses back to
/// it, and evaluates on a few records without panicking.
fn run_filter(input: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(input) else {
        return false; // query strings reach the parser as UTF-8
    };
    match Filter::parse(text) {
        Err(e) => {
            assert!(e.position <= text.len() && text.is_char_boundary(e.position));
            false
        }
        Ok(f) => {
            assert_eq!(Filter::parse(&f.to_string()).as_ref(), Ok(&f));
            let mut r = Record::new(Some(b"user-7"), &b"v"[..]);
            for (n, v) in [("type", "created"), ("amount", "150"), ("region", "eu")] {
                r.headers.push((n.into(), Bytes::from_static(v.as_bytes())));
            }
            let _ = f.matches(&r);
            let _ = f.matches(&Record::new(None, &b""[..]));
            true
        }
    }
}

/// Group state-log ops and snapshots: whatever decodes applies (at increasing times) without
/// panicking, every partition of a topic a member reads keeps exactly one owner among the
/// members reading it, and a snapshot round-trips.
fn run_group(input: &[u8]) -> bool {
    let check = |s: &GroupState| {
        for (name, t) in &s.topics {
            let read = s.members.values().any(|m| m.topics.contains(name));
            for p in &t.partitions {
                match &p.owner {
                    Some(o) => assert!(s.members.get(o).is_some_and(|m| m.topics.contains(name))),
                    None => assert!(!read, "a partition of {name} has no owner"),
                }
            }
        }
        let bytes = s.snapshot().expect("a state encodes");
        assert_eq!(
            <GroupState as StateMachine>::restore(&bytes).as_ref(),
            Ok(s)
        );
    };
    if let Ok(mut state) = <GroupState as StateMachine>::restore(input) {
        StateMachine::apply(&mut state, &GroupOp::Tick, i64::MAX);
        return true;
    }
    let Ok(ops) = serde_json::from_slice::<Vec<GroupOp>>(input) else {
        return false;
    };
    let mut state = GroupState::default();
    for (i, op) in ops.iter().enumerate() {
        StateMachine::apply(&mut state, op, 500 * i as i64);
        check(&state);
    }
    true
}

/// Decode; whatever decodes must round-trip through its encoder. Returns whether it decoded.
fn run_one(target: &str, input: &[u8]) -> bool {
    match target {
        "segment" => decode_segment(&Bytes::copy_from_slice(input)).is_ok(),
        "journal" => JournalEntry::decode(input)
            .map(|e| assert_eq!(JournalEntry::decode(&e.encode()).as_ref(), Ok(&e)))
            .is_ok(),
        "index" => IndexObject::decode(input)
            .map(|i| assert_eq!(IndexObject::decode(&i.encode()).as_ref(), Ok(&i)))
            .is_ok(),
        "run" => run_slices(input),
        "checkpoint" => Checkpoint::decode(input)
            .map(|c| assert_eq!(Checkpoint::decode(&c.encode()).as_ref(), Ok(&c)))
            .is_ok(),
        "state-entry" => StateEntry::decode(input)
            .map(|e| assert_eq!(StateEntry::decode(&e.encode()).as_ref(), Ok(&e)))
            .is_ok(),
        "state-snapshot" => StateSnapshot::decode(input)
            .map(|e| assert_eq!(StateSnapshot::decode(&e.encode()).as_ref(), Ok(&e)))
            .is_ok(),
        "queue-snapshot" => QueueState::restore(input)
            .map(|st| {
                let again = st.snapshot().expect("a restored state encodes");
                assert_eq!(QueueState::restore(&again).as_ref(), Ok(&st));
            })
            .is_ok(),
        "queue-ops" => run_queue_ops(input),
        "produce-json" => run_produce(Format::Json, input),
        "produce-ndjson" => run_produce(Format::NdJson, input),
        "query" => run_query(input),
        "filter" => run_filter(input),
        "group" => run_group(input),
        "table-manifest" => run_manifest(input),
        "txn-staged" => StagedBatch::decode(&Bytes::copy_from_slice(input))
            .map(|b| assert_eq!(StagedBatch::decode(&b.encode()).as_ref(), Ok(&b)))
            .is_ok(),
        "txn" => run_txn(input),
        "delayed" => run_delayed(input),
        "delayed-marker" => run_delayed_marker(input),
        "delayed-ops" => run_delayed_ops(input),
        _ => unreachable!(),
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = [0, 0xFF, 0x7F, 0x80, 1][rng.below(5)];
            }
            2 => v.truncate(rng.below(len + 1)),
            3 => {
                let i = rng.below(len + 1);
                let extra: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                v.splice(i..i, extra);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let j = (i + 1 + rng.below(16)).min(len);
                v.drain(i..j);
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            6 if len >= 4 => {
                // Tweak what may be a length or count field.
                let i = rng.below(len - 3);
                let x = u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
                let y =
                    [0, 1, x.wrapping_add(1), x.wrapping_sub(1), u32::MAX, x << 1][rng.below(6)];
                v[i..i + 4].copy_from_slice(&y.to_le_bytes());
            }
            _ => v = (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        }
    }
    v
}

/// Make checksums (and, sometimes, the envelope length) agree with a mutated input, so most
/// inputs get past the CRC and exercise the body decoders.
fn fix_checksums(target: &str, rng: &mut Rng, v: &mut [u8]) {
    if is_text(target) {
        return;
    }
    if target == "segment" {
        let mut pos = 8;
        while pos + 4 <= v.len() {
            let len = u32::from_le_bytes([v[pos], v[pos + 1], v[pos + 2], v[pos + 3]]) as usize;
            let Some(end) = pos
                .checked_add(4 + len)
                .filter(|&e| e <= v.len() && len >= 4)
            else {
                break;
            };
            let crc = crc32c::crc32c(&v[pos + 4..end - 4]);
            v[end - 4..end].copy_from_slice(&crc.to_le_bytes());
            pos = end;
        }
    } else if v.len() >= 16 {
        let n = v.len();
        if rng.below(2) == 0 {
            v[8..12].copy_from_slice(&((n - 16) as u32).to_le_bytes());
        }
        let crc = crc32c::crc32c(&v[..n - 4]);
        v[n - 4..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Targets whose inputs are text (request bodies, query strings) rather than bucket objects.
fn is_text(target: &str) -> bool {
    matches!(
        target,
        "produce-json"
            | "produce-ndjson"
            | "query"
            | "filter"
            | "group"
            | "queue-snapshot"
            | "queue-ops"
            | "table-manifest"
            | "txn"
    )
}

/// Splice a few JSON / query tokens into a text input: anywhere, right after a structural
/// character (where a whole member or element fits), or in place of a short run.
fn add_tokens(rng: &mut Rng, v: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
        let mut i = rng.below(v.len() + 1);
        match rng.below(3) {
            0 => {
                let after = |b: &u8| b"{[,:&".contains(b);
                if let Some(p) = v[..i]
                    .iter()
                    .rposition(after)
                    .or_else(|| v.iter().position(after))
                {
                    i = p + 1;
                }
                v.splice(i..i, token.iter().copied());
            }
            1 if i < v.len() => {
                let j = (i + 1 + rng.below(8)).min(v.len());
                v.splice(i..j, token.iter().copied());
            }
            _ => {
                v.splice(i..i, token.iter().copied());
            }
        }
    }
}

fn fuzz(target: &str, iterations: u64, seed: u64) {
    let mut corpus = seeds(target);
    let mut rng = Rng(seed);
    let started = std::time::Instant::now();
    let mut decoded = 0u64;
    for i in 0..iterations {
        let text = is_text(target);
        let mut input = if text && rng.below(2) == 0 {
            // Tokens alone: keeps more inputs well-formed, so the checks past the parser run.
            let mut v = corpus[rng.below(corpus.len())].clone();
            add_tokens(&mut rng, &mut v);
            v
        } else {
            mutate(&mut rng, &corpus)
        };
        if rng.below(4) != 0 {
            fix_checksums(target, &mut rng, &mut input);
        }
        if text && rng.below(4) == 0 {
            add_tokens(&mut rng, &mut input);
        }
        let ok = match std::panic::catch_unwind(|| run_one(target, &input)) {
            Ok(ok) => ok,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("?");
                eprintln!("sluice-fuzz: {target} panicked at iteration {i} (seed {seed}): {msg}");
                if text {
                    eprintln!("input (lossy UTF-8): {:?}", String::from_utf8_lossy(&input));
                } else {
                    eprintln!("input: {input:02x?}");
                }
                std::process::exit(1);
            }
        };
        decoded += ok as u64;
        // Keep some inputs, so later mutations explore deeper; for text targets only those that
        // decoded (most mutants of a JSON body are not JSON any more).
        if text {
            if ok && corpus.len() < 256 && rng.below(8) == 0 {
                corpus.push(input);
            }
        } else if corpus.len() < 256 && rng.below(64) == 0 {
            corpus.push(input);
        }
    }
    println!(
        "sluice-fuzz: {target}: {iterations} executions ({decoded} decoded), 0 crashes, {:.1} s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map(String::as_str).unwrap_or("all");
    let iterations: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let targets: Vec<&str> = match target {
        "all" => TARGETS.to_vec(),
        t if TARGETS.contains(&t) => vec![t],
        other => {
            eprintln!(
                "usage: sluice-fuzz {}|all [ITERATIONS] [SEED] (unknown target {other:?})",
                TARGETS.join("|")
            );
            return ExitCode::FAILURE;
        }
    };
    std::panic::set_hook(Box::new(|_| {}));
    for t in targets {
        fuzz(t, iterations, seed);
    }
    ExitCode::SUCCESS
}
