//! Identifiers that appear in keys and formats. Persisted: keep their encodings stable.

use std::fmt;
use ulid::Ulid;

/// Identity of one incarnation of a topic (a ULID minted at creation). A topic deleted and
/// created again under the same name gets a new id, so old data can never reappear in it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    pub fn from_ulid(u: Ulid) -> Self {
        Self(u.to_bytes())
    }
    pub fn parse(s: &str) -> Option<Self> {
        Ulid::from_string(s).ok().map(Self::from_ulid)
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Ulid::from_bytes(self.0))
    }
}
impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

/// Name of an immutable object holding record batches (a flush segment or a merged data
/// object). A ULID: its first 48 bits are the creation time in ms, which GC relies on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 16]);

impl ObjectId {
    pub fn from_ulid(u: Ulid) -> Self {
        Self(u.to_bytes())
    }
    pub fn ulid(&self) -> Ulid {
        Ulid::from_bytes(self.0)
    }
    pub fn created_ms(&self) -> i64 {
        self.ulid().timestamp_ms() as i64
    }
    pub fn parse(s: &str) -> Option<Self> {
        Ulid::from_string(s).ok().map(Self::from_ulid)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ulid())
    }
}
impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

/// Identity of an idempotent producer (a ULID minted by `POST /v1/producers`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerId(pub [u8; 16]);

impl ProducerId {
    pub fn from_ulid(u: Ulid) -> Self {
        Self(u.to_bytes())
    }
    pub fn parse(s: &str) -> Option<Self> {
        Ulid::from_string(s).ok().map(Self::from_ulid)
    }
}

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Ulid::from_bytes(self.0))
    }
}
impl fmt::Debug for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProducerId({self})")
    }
}

/// One partition of one topic incarnation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PartitionId {
    pub topic: TopicId,
    pub partition: u32,
}

/// Mint a ULID from a clock reading plus randomness (ULIDs need uniqueness, not secrecy).
pub fn new_ulid(now_ms: i64) -> Ulid {
    Ulid::from_parts(now_ms.max(0) as u64, random_u128())
}

fn random_u128() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = 0u128;
    for _ in 0..2 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        out = (out << 64) | h.finish() as u128;
    }
    out
}
