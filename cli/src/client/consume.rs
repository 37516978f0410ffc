//! `sluice consume TOPIC`: records of one or all partitions, through a gateway (REST) or, with
//! `--store`, straight from the bucket with the SDK's direct consumer.

use super::{Ctx, Failure, Outcome, Stop};
use clap::Args;
use sluice_sdk::{Client, DirectConsumer, DirectReader, ReadBatch, ReadRecord, Start};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Only this partition (default: all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Where to start: earliest, latest or an offset.
    #[arg(long, default_value = "earliest", value_parser = parse_from, conflicts_with = "from_time")]
    pub from: Start,
    /// Start at the first record appended at or after this time: RFC 3339
    /// (2026-12-01T10:00:00Z) or milliseconds since the epoch.
    #[arg(long, value_parser = parse_time)]
    pub from_time: Option<i64>,
    /// Stop after this many records in all.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Keep waiting for new records (else exit once what exists is printed).
    #[arg(long)]
    pub follow: bool,
    /// Read the bucket directly instead of a gateway: file:///dir, a folder, s3://bucket/prefix.
    #[arg(long)]
    pub store: Option<String>,
    /// Only records that pass this filter on headers and key, e.g. "type = 'created'".
    #[arg(long)]
    pub filter: Option<String>,
    /// Consume as a member of this consumer group, committing as it goes.
    #[arg(long, conflicts_with = "store")]
    pub group: Option<String>,
    /// S3-compatible endpoint for --store, e.g. http://127.0.0.1:4566.
    #[arg(long, env = "SLUICE_S3_ENDPOINT")]
    pub endpoint: Option<String>,
}

fn parse_from(s: &str) -> Result<Start, String> {
    match s {
        "earliest" => Ok(Start::Earliest),
        "latest" => Ok(Start::Latest),
        o => o
            .parse::<u64>()
            .map(Start::Offset)
            .map_err(|_| format!("{o:?} is not earliest, latest or an offset")),
    }
}

/// RFC 3339 or milliseconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is neither RFC 3339 nor milliseconds: {e}"))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| format!("{s:?} is too far ahead"))
}

/// Longest wait of one poll when following (the gateway's long-poll bound).
const FOLLOW_WAIT: Duration = Duration::from_secs(30);
const PAGE: u64 = 1000;

/// One partition, read through a gateway or from the bucket.
enum Source {
    Rest {
        client: Client,
        topic: String,
        partition: u32,
        next: Start,
        filter: Option<String>,
    },
    Direct(DirectConsumer),
}

impl Source {
    async fn poll(&mut self, wait: Duration) -> Result<ReadBatch, sluice_sdk::Error> {
        match self {
            Source::Rest {
                client,
                topic,
                partition,
                next,
                filter,
            } => {
                let wait = (!wait.is_zero()).then_some(wait);
                let b = client
                    .read_filtered(topic, *partition, *next, PAGE, wait, filter.as_deref())
                    .await?;
                *next = Start::Offset(b.next_offset);
                Ok(b)
            }
            Source::Direct(c) => c.poll(wait).await,
        }
    }

    fn partition(&self) -> u32 {
        match self {
            Source::Rest { partition, .. } => *partition,
            Source::Direct(c) => c.partition(),
        }
    }
}

/// One line of `--output json`: the REST record with its topic and partition.
#[derive(serde::Serialize)]
struct Line<'a> {
    topic: &'a str,
    partition: u32,
    #[serde(flatten)]
    record: sluice_api::RecordOut,
}

pub fn print_record(ctx: &Ctx, topic: &str, partition: u32, r: &ReadRecord) -> Outcome {
    if ctx.json() {
        return ctx.print_json(&Line {
            topic,
            partition,
            record: sluice_api::RecordOut::from(r),
        });
    }
    ctx.print_line(&String::from_utf8_lossy(&r.record.value))
}

async fn sources(ctx: &Ctx, args: &ConsumeArgs) -> Result<Vec<Source>, Stop> {
    let start = match args.from_time {
        Some(ts) => Start::Timestamp(ts),
        None => args.from,
    };
    match &args.store {
        Some(url) => {
            let reader = DirectReader::open(url, args.endpoint.as_deref())?;
            let filter = match &args.filter {
                None => None,
                // Parsed here as a gateway would, with the same code and answer.
                Some(f) => Some(sluice_core::filter::Filter::parse(f).map_err(|e| Failure {
                    exit: 1,
                    message: format!("invalid filter: {e} (invalid_filter)"),
                })?),
            };
            let partitions = match args.partition {
                Some(p) => vec![p],
                None => (0..reader.topic(&args.topic).await?.partitions).collect(),
            };
            let mut out = Vec::new();
            for p in partitions {
                let mut c = reader.consumer(&args.topic, p, start).await?;
                c.set_filter(filter.clone());
                out.push(Source::Direct(c));
            }
            Ok(out)
        }
        None => {
            let partitions = match args.partition {
                Some(p) => vec![p],
                None => (0..ctx
                    .client
                    .describe_topic(&args.topic)
                    .await?
                    .topic
                    .partitions)
                    .collect(),
            };
            Ok(partitions
                .into_iter()
                .map(|partition| Source::Rest {
                    client: ctx.client.clone(),
                    topic: args.topic.clone(),
                    partition,
                    next: start,
                    filter: args.filter.clone(),
                })
                .collect())
        }
    }
}

pub async fn run(ctx: &Ctx, args: ConsumeArgs) -> Outcome {
    if let Some(group) = &args.group {
        return super::groups::consume(ctx, &args, group).await;
    }
    let sources = sources(ctx, &args).await?;
    let mut left = args.limit.unwrap_or(u64::MAX);
    if left == 0 {
        return Ok(());
    }
    if !args.follow {
        // What exists now: each partition up to its end as first seen, one after the other.
        for mut s in sources {
            let mut end = None;
            let mut at = None;
            loop {
                let b = s.poll(Duration::ZERO).await?;
                let end = *end.get_or_insert(b.high_watermark);
                for r in &b.records {
                    print_record(ctx, &args.topic, s.partition(), r)?;
                    left -= 1;
                    if left == 0 {
                        return Ok(());
                    }
                }
                // A filter may drop a whole page: go on while the position advances.
                let stuck = b.records.is_empty() && at == Some(b.next_offset);
                if b.next_offset >= end || stuck {
                    break;
                }
                at = Some(b.next_offset);
            }
        }
        return Ok(());
    }
    // Follow every partition at once; print as batches arrive.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(u32, ReadBatch), sluice_sdk::Error>>(
        sources.len().max(1) * 2,
    );
    for mut s in sources {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let got = s.poll(FOLLOW_WAIT).await.map(|b| (s.partition(), b));
                let failed = got.is_err();
                if tx.send(got).await.is_err() || failed {
                    return;
                }
            }
        });
    }
    drop(tx);
    while let Some(got) = rx.recv().await {
        let (p, b) = got?;
        for r in &b.records {
            print_record(ctx, &args.topic, p, r)?;
            left -= 1;
            if left == 0 {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_times_parse() {
        assert_eq!(parse_from("earliest"), Ok(Start::Earliest));
        assert_eq!(parse_from("latest"), Ok(Start::Latest));
        assert_eq!(parse_from("42"), Ok(Start::Offset(42)));
        assert!(parse_from("-1").is_err());
        assert!(parse_from("soon").is_err());
        assert_eq!(parse_time("1732400000000"), Ok(1_732_400_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time("2024-11-23T22:13:20.5Z"), Ok(1_732_400_000_500));
        assert!(parse_time("yesterday").is_err());
    }
}
