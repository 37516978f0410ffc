//! Property tests: every decoder meets random bytes, truncations and bit flips of valid objects
//! and must answer with an error or a value, never a panic; valid objects round-trip.

use super::checkpoint::{sample_checkpoint, Checkpoint};
use super::index::{sample_index, IndexObject};
use super::journal::{sample_entry, JournalEntry};
use super::record::Record;
use super::run::{decode_slice, sample_run, slice_of_run};
use super::segment::{decode_frame, decode_segment, encode_frame, segment_header, Codec};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn valid_objects() -> Vec<Bytes> {
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
    vec![
        sample_entry().encode(),
        sample_index().encode(),
        sample_checkpoint().encode(),
        seg.freeze(),
        sample_run().0,
    ]
}

/// Run every decoder over `bytes`; the only requirement is that none panics.
fn decode_all(bytes: &[u8]) {
    let b = Bytes::copy_from_slice(bytes);
    let _ = JournalEntry::decode(bytes);
    let _ = IndexObject::decode(bytes);
    let _ = Checkpoint::decode(bytes);
    let _ = decode_segment(&b);
    let _ = decode_frame(&b);
    let _ = super::delayed_key::DelayedMarker::decode(bytes);
    let (_, slices) = sample_run();
    for s in &slices {
        if let Ok(slice) = slice_of_run(&b, s) {
            let _ = decode_slice(&slice, s);
        }
        let _ = decode_slice(&b, s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn truncations_and_flips_are_rejected(which in 0usize..5, cut in any::<prop::sample::Index>(),
                                          flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let obj = valid_objects()[which].clone();
        let n = cut.index(obj.len());
        // Every strict prefix is an error.
        let prefix = obj.slice(..n);
        decode_all(&prefix);
        prop_assert!(JournalEntry::decode(&prefix).is_err());
        prop_assert!(IndexObject::decode(&prefix).is_err());
        prop_assert!(Checkpoint::decode(&prefix).is_err());
        // A single flipped bit is caught by the CRC (or the magic / length checks).
        let mut flipped = obj.to_vec();
        flipped[flip.index(obj.len())] ^= 1 << bit;
        decode_all(&flipped);
        let rejected = match which {
            0 => JournalEntry::decode(&flipped).is_err(),
            1 => IndexObject::decode(&flipped).is_err(),
            2 => Checkpoint::decode(&flipped).is_err(),
            3 => decode_segment(&Bytes::from(flipped)).is_err(),
            // A run: the flipped bit is in a slice's index (CRC) or frame (length or CRC,
            // checked when the frame is decoded) or in the header.
            _ => {
                let (_, slices) = sample_run();
                let b = Bytes::from(flipped);
                slices.iter().any(|s| {
                    slice_of_run(&b, s).is_err()
                        || decode_slice(&b.slice(s.pos as usize..(s.pos + s.len as u64) as usize), s)
                            .map(|(_, frames)| frames.iter().any(|f| decode_frame(f).is_err()))
                            .unwrap_or(true)
                })
            }
        };
        prop_assert!(rejected);
    }

    #[test]
    fn records_round_trip(records in proptest::collection::vec(
        (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
         proptest::collection::vec(any::<u8>(), 0..200),
         proptest::option::of(any::<i64>()),
         proptest::collection::vec(("[a-z]{1,8}", proptest::collection::vec(any::<u8>(), 0..10)), 0..3)),
        1..20), zstd in any::<bool>()) {
        let records: Vec<Record> = records.into_iter().map(|(k, v, ts, h)| Record {
            key: k.map(Bytes::from),
            value: Bytes::from(v),
            producer_ts: ts,
            headers: h.into_iter().map(|(n, v)| (n, Bytes::from(v))).collect(),
        }).collect();
        let mut out = BytesMut::new();
        encode_frame(&records, if zstd { Codec::Zstd } else { Codec::None }, &mut out);
        prop_assert_eq!(decode_frame(&out.freeze()).unwrap(), records);
    }
}
