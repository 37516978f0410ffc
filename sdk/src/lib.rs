//! Sluice client SDK.
//!
//! - [`Client`]: the REST API v1 as typed calls (topics, produce, read by offset or time),
//!   with typed errors that say whether a retry is safe ([`Error::is_retryable`],
//!   [`Error::has_no_side_effects`], [`Error::code`]).
//! - [`Producer`]: batching (linger, max bytes, max records), several requests in flight,
//!   retries with an `Idempotency-Key` so a retry never duplicates, backpressure (429 +
//!   `Retry-After`), one future per record with its offset.
//! - Consumer groups ([`Client::join_group`], [`Client::poll_group`], [`Client::commit_offsets`],
//!   …) and queues ([`Client::receive`], [`Client::ack`], [`Client::nack`], …) over REST.
//! - Delayed records: [`ProduceOptions::delay`], [`Producer::send_delayed`],
//!   [`Client::list_delayed`], [`Client::cancel_delayed`].
//! - [`DirectReader`] / [`DirectConsumer`]: read a partition straight from the bucket from an
//!   offset, `earliest`, `latest` or a time, and follow it as records commit, through the same
//!   read path as the gateway ([`sluice_core::log::Log`]).
//!
//! Records are [`Record`]s going in and [`ReadRecord`]s coming out, whichever way they are
//! read. Runnable programs in `sdk/examples/`: `produce`, `direct_consume`, `group_consume`,
//! `queue_worker` (`cargo run -p sluice-sdk --example produce`).

mod client;
mod client_txn;
mod delayed;
mod direct;
mod error;
mod groups;
mod producer;
mod queues;

pub use client::{from_wire, to_wire, Client, ClientBuilder, ProduceOptions, DEFAULT_TIMEOUT};
pub use delayed::Delay;
pub use direct::{
    DirectConsumer, DirectReader, DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, DEFAULT_READ_AHEAD,
};
pub use error::{ApiError, Error, ErrorCode, Result};
pub use groups::{GroupBatch, TopicRecord};
pub use producer::{
    AckFuture, DelayedAckFuture, Producer, ProducerConfig, ProducerStats, RecordAck,
};
pub use queues::QueueMessage;
pub use sluice_api as api;
pub use sluice_core::format::record::Record;
pub use sluice_core::log::{PartitionInfo, ReadBatch, ReadRecord, Start};
