//! Versioned binary formats. Every decoder checks lengths and CRCs and returns
//! [`DecodeError`](crate::codec::DecodeError) instead of panicking. `docs/FORMAT.md` describes
//! each one byte by byte; the tests in each module pin the bytes of version 1.

pub mod checkpoint;
pub mod index;
pub mod journal;
pub mod record;
pub mod segment;
pub mod state;

#[cfg(test)]
mod fuzz_tests;
