//! Sluice REST API v1 wire types: the request and answer bodies of every endpoint, shared by the
//! gateway (which serves them and derives the OpenAPI document from them), the SDK and the CLI
//! (which send and parse them). Field names are the contract (`rest-api.md`); add fields freely,
//! rename none.
//!
//! One module per section of the contract: [`topics`], [`records`] (produce and stateless
//! reads), [`groups`] (consumer groups), [`queues`], [`producers`] (idempotent producers), [`transactions`], [`delayed`] (pending delayed records),
//! [`problem`] (errors); [`json`] holds the deserialisers every body uses. [`internal`] holds the
//! gateway-to-gateway types, which are not part of the public contract.

pub mod delayed;
pub mod groups;
pub mod internal;
pub mod json;
pub mod problem;
pub mod producers;
pub mod queues;
pub mod records;
pub mod topics;
pub mod transactions;

pub use delayed::*;
pub use groups::*;
pub use problem::Problem;
pub use producers::*;
pub use queues::*;
pub use records::*;
pub use topics::*;
pub use transactions::*;
