//! Sluice core: the log on object storage. Formats, the commit protocol, the read path and the
//! store helpers live here; HTTP, the compactor's scheduling and the CLI live in other crates.
//!
//! Map of the crate:
//! - [`codec`], [`format`]: versioned binary formats (segment, journal entry, index, checkpoint)
//! - [`keys`]: every object key
//! - [`head`], [`partition`]: pure commit logic (offset assignment, dedup) and partitioning
//! - [`store`]: opening stores, create-only puts, the instrumented / fault-injecting wrapper
//! - [`shard`]: one journal shard's live head: commit, catch-up, tail for reads
//! - [`topic`]: topic configs (create-only numbered versions)
//! - [`lease`]: single-active leases from create-only numbered objects (compactor, committers)
//! - [`committer`]: group commit of one shard: every caller's appends of a round in one entry
//! - [`log`]: the facade gateways, the compactor and the SDK use: flush, read, look up by time

pub mod clock;
pub mod codec;
pub mod committer;
pub mod error;
pub mod format;
pub mod head;
pub mod ids;
pub mod keys;
pub mod lease;
pub mod log;
pub mod partition;
pub mod shard;
pub mod store;
pub mod topic;

pub use error::{Error, Result};
