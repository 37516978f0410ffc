//! Consume a topic as a member of a consumer group: poll, process, commit, and leave on the way
//! out (at-least-once: a crash before the commit replays those records to the next owner).
//!
//! ```sh
//! cargo run -p sluice-sdk --example group_consume -- http://127.0.0.1:8080 orders billing
//! ```

use sluice_sdk::api::{GroupStart, JoinGroup};
use sluice_sdk::{Client, ErrorCode};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), sluice_sdk::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let group = args.next().unwrap_or_else(|| "billing".into());
    let client = Client::new(&url)?;
    let join = JoinGroup {
        topics: vec![topic],
        session_timeout_ms: None,
        start: Some(GroupStart::Earliest),
        filter: None,
    };
    let mut member = client.join_group(&group, &join).await?.member_id;
    loop {
        let batch = match client
            .poll_group(&group, &member, 100, Some(Duration::from_secs(10)), false)
            .await
        {
            Ok(b) => b,
            // Expired (e.g. paused too long): join again and restart at the committed offsets.
            Err(e) if e.code() == Some(ErrorCode::MemberNotFound) => {
                member = client.join_group(&group, &join).await?.member_id;
                continue;
            }
            Err(e) => return Err(e),
        };
        for r in &batch.records {
            println!(
                "{}/{}@{}: {}",
                r.topic,
                r.partition,
                r.record.offset,
                String::from_utf8_lossy(&r.record.record.value)
            );
        }
        if !batch.records.is_empty() {
            client
                .commit_offsets(&group, &member, batch.generation, batch.next_offsets())
                .await?;
        }
    }
}
