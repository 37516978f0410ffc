//! Sluice core: the log on object storage. Formats, the commit protocol, the read path and the
//! store helpers live here; HTTP, the compactor's scheduling and the CLI live in other crates.
//!
//! Map of the crate:
//! - [`codec`], [`format`]: versioned binary formats (segment, journal entry, index, checkpoint)
//! - [`keys`]: every object key
//! - [`filter`]: record filters on headers and the key (parse, evaluate, print)
//! - [`head`], [`partition`]: pure commit logic (offset assignment, dedup) and partitioning
//! - [`store`]: opening stores, create-only puts, the instrumented / fault-injecting wrapper,
//!   the observing wrapper (metrics of every call)
//! - [`metrics`]: metrics on prometheus-client (a registry per component instance)
//! - [`shard`]: one journal shard's live head: commit, catch-up, tail for reads
//! - [`statelog`]: a generic replicated state machine in the bucket (create-only numbered
//!   entries + snapshots, group commit); queues and consumer groups keep their state in one
//! - [`queue`]: queue mode (per-record leases, acks, dead letters) on a state log
//! - [`producer`]: idempotent producers' ids and epochs (create-only numbered objects)
//! - [`topic`]: topic configs (create-only numbered versions)
//! - [`lease`]: single-active leases from create-only numbered objects (compactor, committers)
//! - [`committer`]: group commit of one shard: every caller's appends of a round in one entry
//! - [`txn`]: transactions (half messages with check-back) on a state log per transaction
//! - [`delayed`]: delayed records (objects by due second, the mover, cancels on a state log)
//! - [`log`]: the facade gateways, the compactor and the SDK use: flush, read, look up by time

pub mod clock;
pub mod codec;
pub mod committer;
pub mod delayed;
pub mod error;
pub mod filter;
pub mod format;
pub mod group;
pub mod head;
pub mod ids;
pub mod keys;
pub mod lease;
pub mod log;
pub mod metrics;
pub mod partition;
pub mod producer;
pub mod queue;
pub mod shard;
pub mod statelog;
pub mod store;
pub mod topic;
pub mod txn;

pub use error::{Error, Result};
