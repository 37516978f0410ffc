//! A queue worker: lease records one by one, ack what was handled, nack (with a delay) what
//! failed; records that fail `max_deliveries` times go to the dead-letter topic.
//!
//! ```sh
//! cargo run -p sluice-sdk --example queue_worker -- http://127.0.0.1:8080 orders work
//! ```

use sluice_sdk::api::PutQueue;
use sluice_sdk::Client;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), sluice_sdk::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let queue = args.next().unwrap_or_else(|| "work".into());
    let client = Client::new(&url)?;
    let config = PutQueue {
        topic,
        visibility_timeout_ms: Some(30_000),
        max_deliveries: Some(5),
        dead_letter_topic: None,
        ordering: None,
        start: None,
        filter: None,
    };
    client.put_queue(&queue, &config).await?;
    loop {
        let messages = client
            .receive(&queue, 10, None, Some(Duration::from_secs(20)))
            .await?;
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for m in messages {
            let value = String::from_utf8_lossy(&m.record.record.record.value).into_owned();
            // "Handle" the record: values containing "fail" fail.
            if value.contains("fail") {
                eprintln!("failed {value} (delivery {})", m.delivery_count);
                failed.push(m.receipt);
            } else {
                println!("handled {value}");
                done.push(m.receipt);
            }
        }
        if !done.is_empty() {
            let a = client.ack(&queue, done).await?;
            for r in a.rejected {
                eprintln!("ack of {} rejected: {}", r.receipt, r.code);
            }
        }
        if !failed.is_empty() {
            client
                .nack(
                    &queue,
                    failed,
                    Some(Duration::from_secs(1)),
                    Some("handler failed".into()),
                )
                .await?;
        }
    }
}
