//! `sluice produce TOPIC`: one record per line of stdin or `--file`, through the SDK's batching,
//! pipelining, retrying [`Producer`].

use super::{Ctx, Failure, Outcome};
use bytes::Bytes;
use clap::Args;
use sluice_api::{ProducedRecord, RecordOffset};
use sluice_sdk::{AckFuture, Delay, DelayedAckFuture, Producer, ProducerConfig, Record};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// The key of every record (unless --key-separator finds one in the line).
    #[arg(long)]
    pub key: Option<String>,
    /// A line is KEY SEP VALUE, split at the first SEP (as kcat's -K); a line without SEP is
    /// a value with no key (or --key).
    #[arg(long)]
    pub key_separator: Option<String>,
    /// A header on every record, NAME=VALUE; repeat for more.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Send every record to this partition (else by key hash, or anywhere).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Deliver every record this long from now (e.g. 30s, 2h, up to 365d): it gets its offset
    /// only when due; `sluice delayed list` shows it meanwhile.
    #[arg(long, value_parser = super::parse_duration, conflicts_with = "deliver_at")]
    pub delay: Option<Duration>,
    /// Deliver every record at this time: RFC 3339 or milliseconds since the epoch.
    #[arg(long, value_parser = super::consume::parse_time)]
    pub deliver_at: Option<i64>,
}

impl ProduceArgs {
    fn delay(&self) -> Option<Delay> {
        match (self.delay, self.deliver_at) {
            (Some(d), _) => Some(Delay::For(d)),
            (None, Some(t)) => Some(Delay::Until(t)),
            (None, None) => None,
        }
    }
}

/// A record's answer to come: an offset, or a delayed id.
enum Pending {
    Now(AckFuture),
    Later(DelayedAckFuture),
}

impl Pending {
    async fn answered(self) -> Result<ProducedRecord, sluice_sdk::Error> {
        Ok(match self {
            Pending::Now(f) => {
                let a = f.await?;
                ProducedRecord::Offset(RecordOffset {
                    partition: a.partition,
                    offset: a.offset,
                })
            }
            Pending::Later(f) => ProducedRecord::Delayed(f.await?),
        })
    }
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

/// The record of one input line.
pub fn record_of(line: &[u8], args: &ProduceArgs) -> Record {
    let mut key = args.key.as_ref().map(|k| Bytes::from(k.clone()));
    let mut value = line;
    if let Some(sep) = args.key_separator.as_deref().filter(|s| !s.is_empty()) {
        let sep = sep.as_bytes();
        if let Some(i) = line.windows(sep.len()).position(|w| w == sep) {
            key = Some(Bytes::copy_from_slice(&line[..i]));
            value = &line[i + sep.len()..];
        }
    }
    Record {
        key,
        value: Bytes::copy_from_slice(value),
        producer_ts: None,
        headers: args
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
            .collect(),
    }
}

/// Lines of the input, read on a thread of their own (reading blocks).
fn lines(
    file: Option<PathBuf>,
) -> Result<tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>, Failure> {
    let input: Box<dyn BufRead + Send> = match &file {
        Some(f) => Box::new(std::io::BufReader::new(std::fs::File::open(f).map_err(
            |e| Failure {
                exit: 1,
                message: format!("cannot read {}: {e}", f.display()),
            },
        )?)),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        let mut input = input;
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// `--output json`: `{"acked":N,"first":{…},"last":{…}}` (`{"partition","offset"}`, or
/// `{"delayed_id","deliver_at_ms"}` for delayed records).
#[derive(Default, serde::Serialize)]
struct Summary {
    acked: u64,
    first: Option<ProducedRecord>,
    last: Option<ProducedRecord>,
}

pub async fn run(ctx: &Ctx, args: ProduceArgs) -> Outcome {
    // Fail fast on a topic that is not there (or a token that may not see it).
    ctx.client.describe_topic(&args.topic).await?;
    let mut input = lines(args.file.clone())?;
    let producer = Producer::new(ctx.client.clone(), &args.topic, ProducerConfig::default());
    let bar = ctx.stderr_tty.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} records acked ({per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(100));
        b
    });
    // Acks are awaited in send order by a task of their own, so sending never waits for them.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::channel::<Pending>(100_000);
    let counter = {
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut acked = Summary::default();
            while let Some(f) = ack_rx.recv().await {
                let a = f.answered().await?;
                acked.acked += 1;
                if acked.first.is_none() {
                    acked.first = Some(a.clone());
                }
                acked.last = Some(a);
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            Ok::<_, sluice_sdk::Error>(acked)
        })
    };
    let mut sent = 0u64;
    let mut failed = None;
    while let Some(line) = input.recv().await {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                failed = Some(Failure {
                    exit: 1,
                    message: format!("cannot read the input: {e}"),
                });
                break;
            }
        };
        let r = record_of(&line, &args);
        let sent_one = match args.delay() {
            None => producer.send_to(args.partition, r).await.map(Pending::Now),
            Some(d) => producer
                .send_delayed(args.partition, r, d)
                .await
                .map(Pending::Later),
        };
        match sent_one {
            Ok(f) => {
                sent += 1;
                if ack_tx.send(f).await.is_err() {
                    break; // the counter stopped at a failed record
                }
            }
            Err(e) => {
                failed = Some(e.into());
                break;
            }
        }
    }
    drop(ack_tx);
    let closed = producer.close().await;
    let counted = counter.await.map_err(|e| Failure {
        exit: 1,
        message: format!("ack task failed: {e}"),
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(f) = failed {
        return Err(f.into());
    }
    let acked = counted?;
    closed?;
    debug_assert_eq!(acked.acked, sent);
    if ctx.json() {
        return ctx.print_json(&acked);
    }
    if args.delay().is_some() {
        return ctx.print_line(&format!(
            "acked {} delayed records (sluice delayed list {})",
            acked.acked, args.topic
        ));
    }
    ctx.print_line(&format!("acked {} records", acked.acked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sep: Option<&str>, key: Option<&str>) -> ProduceArgs {
        ProduceArgs {
            topic: "t".into(),
            key: key.map(Into::into),
            key_separator: sep.map(Into::into),
            headers: vec![("h".into(), "1".into())],
            partition: None,
            file: None,
            delay: None,
            deliver_at: None,
        }
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        let r = record_of(b"user-7:hello:world", &args(Some(":"), None));
        assert_eq!(r.key.as_deref(), Some(&b"user-7"[..]));
        assert_eq!(r.value, "hello:world");
        assert_eq!(r.headers, vec![("h".to_string(), Bytes::from("1"))]);
        let r = record_of(b"no separator", &args(Some("::"), Some("k")));
        assert_eq!(
            (r.key.as_deref(), &r.value[..]),
            (Some(&b"k"[..]), &b"no separator"[..])
        );
        let r = record_of(b"a::b", &args(Some("::"), None));
        assert_eq!(
            (r.key.as_deref(), &r.value[..]),
            (Some(&b"a"[..]), &b"b"[..])
        );
        let r = record_of(b"plain", &args(None, None));
        assert_eq!((r.key, &r.value[..]), (None, &b"plain"[..]));
    }

    #[test]
    fn headers_need_a_name_and_an_equals_sign() {
        assert_eq!(parse_header("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("=v").is_err());
    }
}
