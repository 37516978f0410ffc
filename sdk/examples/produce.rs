//! Produce lines of stdin (or 1000 generated records) to a topic through a gateway, with the
//! batching, retrying `Producer`, and print where the first and last landed.
//!
//! ```sh
//! sluice dev &                                   # a gateway on http://127.0.0.1:8080
//! cargo run -p sluice-sdk --example produce -- http://127.0.0.1:8080 orders < lines.txt
//! ```

use sluice_sdk::{Client, ErrorCode, Producer, ProducerConfig, Record};
use std::io::{BufRead, IsTerminal};

#[tokio::main]
async fn main() -> Result<(), sluice_sdk::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let client = Client::new(&url)?;
    match client.create_topic(&topic, 3, None).await {
        Err(e) if e.code() == Some(ErrorCode::TopicExists) => {}
        other => drop(other?),
    }
    let lines: Vec<String> = if std::io::stdin().is_terminal() {
        (0..1000).map(|i| format!("record {i}")).collect()
    } else {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .collect()
    };
    let producer = Producer::new(client, &topic, ProducerConfig::default());
    let mut acks = Vec::with_capacity(lines.len());
    for line in lines {
        acks.push(producer.send(Record::new(None, line)).await?);
    }
    producer.close().await?;
    let n = acks.len();
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = ack.await?;
        if i == 0 || i + 1 == n {
            eprintln!(
                "record {i}: partition {} offset {}",
                ack.partition, ack.offset
            );
        }
    }
    eprintln!("{n} records acked");
    Ok(())
}
