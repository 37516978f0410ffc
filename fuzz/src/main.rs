//! `sluice-fuzz TARGET [ITERATIONS] [SEED]`: a mutational fuzzer for every decoder of the bucket
//! formats. It starts from valid objects, applies random mutations (bit flips, byte sets,
//! truncations, insertions, deletions, splices of two inputs, length-field tweaks), runs the
//! decoder on each input and checks that it returns instead of panicking, and that whatever
//! decodes re-encodes to a value that decodes the same. Deterministic for a given seed; a panic
//! prints the seed and the iteration so it can be replayed.
//!
//! Targets: `segment`, `journal`, `index`, `checkpoint`, `all`. Example (≥ 10 million runs):
//! `cargo run --release -p sluice-fuzz -- all 10000000`.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain, which this project's machines cannot fetch.
//! The same decoders are also exercised by proptest in `core/src/format/fuzz_tests.rs`.

use bytes::{Bytes, BytesMut};
use sluice_core::format::checkpoint::{Checkpoint, DedupRecord};
use sluice_core::format::index::{IndexEntry, IndexObject};
use sluice_core::format::journal::{Append, BatchRef, JournalEntry};
use sluice_core::format::record::Record;
use sluice_core::format::segment::{decode_segment, encode_frame, segment_header, Codec};
use sluice_core::ids::{ObjectId, PartitionId, TopicId};
use std::process::ExitCode;

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
        }
        .encode()
        .to_vec()],
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
        }
        .encode()
        .to_vec()],
        _ => Vec::new(),
    }
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
        "checkpoint" => Checkpoint::decode(input)
            .map(|c| assert_eq!(Checkpoint::decode(&c.encode()).as_ref(), Ok(&c)))
            .is_ok(),
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

fn fuzz(target: &str, iterations: u64, seed: u64) {
    let mut corpus = seeds(target);
    let mut rng = Rng(seed);
    let started = std::time::Instant::now();
    let mut decoded = 0u64;
    for i in 0..iterations {
        let mut input = mutate(&mut rng, &corpus);
        if rng.below(4) != 0 {
            fix_checksums(target, &mut rng, &mut input);
        }
        match std::panic::catch_unwind(|| run_one(target, &input)) {
            Ok(true) => decoded += 1,
            Ok(false) => {}
            Err(_) => {
                eprintln!("sluice-fuzz: {target} panicked at iteration {i} (seed {seed}); input: {input:02x?}");
                std::process::exit(1);
            }
        }
        // Keep some inputs that still decode, so later mutations explore deeper.
        if corpus.len() < 256 && rng.below(64) == 0 {
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
        "all" => vec!["segment", "journal", "index", "checkpoint"],
        t @ ("segment" | "journal" | "index" | "checkpoint") => vec![t],
        other => {
            eprintln!("usage: sluice-fuzz segment|journal|index|checkpoint|all [ITERATIONS] [SEED] (unknown target {other:?})");
            return ExitCode::FAILURE;
        }
    };
    std::panic::set_hook(Box::new(|_| {}));
    for t in targets {
        fuzz(t, iterations, seed);
    }
    ExitCode::SUCCESS
}
