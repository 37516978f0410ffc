//! Versioned binary formats. Every decoder checks lengths and CRCs and returns
//! [`DecodeError`](crate::codec::DecodeError) instead of panicking. `docs/FORMAT.md` describes
//! each one byte by byte; the tests in each module pin the bytes of every version.

pub mod checkpoint;
pub mod delayed;
pub mod delayed_key;
pub mod index;
pub mod journal;
pub mod record;
pub mod run;
pub mod segment;
pub mod state;

#[cfg(test)]
mod fuzz_tests;

/// Test helper: every strict prefix of `bytes`, and `bytes` with any one byte flipped (bit 4),
/// must be refused by `decodes` (which answers whether the bytes decoded).
#[cfg(test)]
pub(crate) fn assert_every_cut_and_flip_refused(
    bytes: &[u8],
    decodes: impl Fn(bytes::Bytes) -> bool,
) {
    for n in 0..bytes.len() {
        assert!(
            !decodes(bytes::Bytes::copy_from_slice(&bytes[..n])),
            "prefix {n}"
        );
    }
    for i in 0..bytes.len() {
        let mut b = bytes.to_vec();
        b[i] ^= 0x10;
        assert!(!decodes(bytes::Bytes::from(b)), "flip at {i}");
    }
}

/// Lower-case hex text of bytes (object names, ETags, pinned test bytes), and back (tests).
pub mod hex {
    pub fn of(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Test helper: the bytes of pinned hex text (panics on bad input).
    #[cfg(test)]
    pub fn bytes(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }
}
