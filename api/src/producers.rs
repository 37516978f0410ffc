//! Idempotent producers (`rest-api.md`, "Idempotent producers").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/producers`: an empty body (or `{}`) registers a new producer at epoch 0; with the
/// `producer_id` of an existing producer it bumps the epoch (fencing the older epochs; sequences
/// start again at 0).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProducer {
    #[schema(example = "01JDC0000000000000000000AA")]
    pub producer_id: Option<String>,
}

/// A producer id and its current epoch: send them as `Producer-Id` and `Producer-Epoch`, with
/// `Producer-Seq` 0, 1, 2, … (per topic) on each produce request.
#[derive(Debug, Serialize, ToSchema)]
pub struct Producer {
    #[schema(example = "01JDC0000000000000000000AA")]
    pub producer_id: String,
    pub epoch: u32,
}
