//! Read a topic's partition 0 straight from the bucket (no gateway in the data path), from
//! the start, and follow it as new records commit.
//!
//! ```sh
//! sluice dev --data-dir ./sluice-data &
//! cargo run -p sluice-sdk --example direct_consume -- ./sluice-data orders
//! # on S3: -- s3://bucket/prefix orders http://127.0.0.1:4566
//! ```

use sluice_sdk::{DirectReader, Start};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), sluice_sdk::Error> {
    let mut args = std::env::args().skip(1);
    let store = args.next().unwrap_or_else(|| "./sluice-data".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let endpoint = args.next();
    let reader = DirectReader::open(&store, endpoint.as_deref())?;
    let mut consumer = reader.consumer(&topic, 0, Start::Earliest).await?;
    loop {
        let batch = consumer.poll(Duration::from_secs(30)).await?;
        for r in &batch.records {
            println!("{}\t{}", r.offset, String::from_utf8_lossy(&r.record.value));
        }
    }
}
