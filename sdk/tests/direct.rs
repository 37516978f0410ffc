//! The direct consumer returns exactly what REST returns for the same offsets: before any
//! compaction (journal tail), while a producer and a compactor run (tail and indexes mixed,
//! segments moving under the readers), and after everything was folded into indexes and the
//! tail segments were collected. On a local folder and (when configured) on LocalStack. The
//! records compared are the REST wire records (`RecordOut`): the direct ones are converted with
//! the same `From` the gateway uses, so keys, values, headers, binary fields and timestamps all
//! count. A direct consumer that follows each partition while it is written sees the same.

use sluice_api::{ReadAnswer, RecordOut};
use sluice_compactor::{Compactor, CompactorConfig};
use sluice_core::clock;
use sluice_core::ids::PartitionId;
use sluice_sdk::{Client, DirectReader, Producer, ProducerConfig, Record, Start};
use sluice_tests::http::Gateway;
use sluice_tests::{s3_backend, Backend};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOPIC: &str = "mirror";
const PARTITIONS: u32 = 3;
/// Page size of both readers: several pages per partition.
const PAGE: u64 = 97;

/// REST: the records of `[from, to)` as the gateway answers them.
async fn rest_range(
    http: &reqwest::Client,
    url: &str,
    p: u32,
    from: u64,
    to: u64,
) -> Vec<RecordOut> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let a: ReadAnswer = http
            .get(format!(
                "{url}/v1/topics/{TOPIC}/partitions/{p}/records?offset={at}&limit={PAGE}"
            ))
            .send()
            .await
            .expect("read request")
            .error_for_status()
            .expect("read status")
            .json()
            .await
            .expect("read answer");
        assert!(!a.records.is_empty(), "REST read at {at} < {to} was empty");
        out.extend(a.records.into_iter().filter(|r| r.offset < to));
        at = a.next_offset;
    }
    out
}

/// How a direct consumer pages: most bytes per page and pages read ahead.
#[derive(Clone, Copy, Debug)]
struct Paging {
    max_bytes: usize,
    read_ahead: usize,
}

const PAGINGS: [Paging; 3] = [
    // Pages end at PAGE records, two read ahead (the default).
    Paging {
        max_bytes: 4 << 20,
        read_ahead: sluice_sdk::DEFAULT_READ_AHEAD,
    },
    // Pages end at a few hundred bytes, before the PAGE records the read-ahead planned them
    // for: every page is followed by a read of the gap to the next page read ahead.
    Paging {
        max_bytes: 700,
        read_ahead: 4,
    },
    // No read-ahead.
    Paging {
        max_bytes: 4 << 20,
        read_ahead: 0,
    },
];

/// Direct: the records of `[from, to)` read from the bucket.
async fn direct_range(
    reader: &DirectReader,
    p: u32,
    from: u64,
    to: u64,
    paging: Paging,
) -> Vec<RecordOut> {
    let mut c = reader
        .consumer(TOPIC, p, Start::Offset(from))
        .await
        .expect("direct consumer");
    c.set_limits(PAGE as usize, paging.max_bytes);
    c.set_read_ahead(paging.read_ahead);
    let mut out = Vec::new();
    while c.position() < to {
        let at = c.position();
        let b = c.poll(Duration::ZERO).await.expect("direct read");
        assert!(
            !b.records.is_empty(),
            "direct read at {at} < {to} was empty"
        );
        out.extend(
            b.records
                .iter()
                .filter(|r| r.offset < to)
                .map(RecordOut::from),
        );
    }
    out
}

/// Compare every partition from its earliest offset to the high watermark REST reports now.
/// Returns the records compared.
async fn compare_all(http: &reqwest::Client, url: &str, reader: &DirectReader) -> usize {
    let client = Client::new(url).expect("client");
    let detail = client.describe_topic(TOPIC).await.expect("describe");
    let mut n = 0;
    for info in detail.partition_info {
        let p = info.partition;
        let direct_info = reader.partition_info(TOPIC, p).await.expect("direct info");
        assert_eq!(
            direct_info.earliest_offset, info.earliest_offset,
            "earliest of {p}"
        );
        assert!(direct_info.next_offset >= info.next_offset, "next of {p}");
        let (from, to) = (info.earliest_offset, info.next_offset);
        let rest = rest_range(http, url, p, from, to).await;
        assert_eq!(rest.len() as u64, to - from, "REST {p}: dense offsets");
        for paging in PAGINGS {
            let direct = direct_range(reader, p, from, to, paging).await;
            assert_eq!(direct, rest, "partition {p} [{from}, {to}) {paging:?}");
        }
        n += rest.len();
    }
    n
}

fn record(writer: u32, i: u64) -> Record {
    let mut r = Record::new(
        Some(format!("key-{}", i % 11).as_bytes()),
        format!("w{writer}-{i}"),
    );
    if i.is_multiple_of(3) {
        r.headers.push(("kind".into(), "third".into()));
        r.headers.push(("seq".into(), i.to_string().into()));
    }
    if i.is_multiple_of(5) {
        // Not UTF-8: travels as value_b64 over REST.
        r.value = vec![0xff, 0xfe, (i % 251) as u8].into();
    }
    if i.is_multiple_of(7) {
        r.producer_ts = Some(1_700_000_000_000 + i as i64);
    }
    r
}

async fn produce(producer: &Producer, writer: u32, range: std::ops::Range<u64>) {
    let mut acks = Vec::new();
    for i in range {
        acks.push(producer.send(record(writer, i)).await.expect("send"));
    }
    producer.flush().await.expect("flush");
    for a in acks {
        a.await.expect("ack");
    }
}

async fn run(backend: Backend) {
    let store = backend.client();
    let gw = Gateway::start(store, Default::default()).await;
    let http = reqwest::Client::new();
    let client = Client::new(&gw.url).unwrap();
    client.create_topic(TOPIC, PARTITIONS, None).await.unwrap();
    // Its own client of the bucket, as a separate process would have.
    let reader = DirectReader::open(
        &backend.url(),
        match &backend {
            Backend::S3 { endpoint, .. } => Some(endpoint.as_str()),
            _ => None,
        },
    )
    .unwrap();
    let producer = Arc::new(Producer::new(
        client.clone(),
        TOPIC,
        ProducerConfig {
            max_batch_records: 40,
            ..Default::default()
        },
    ));

    // 1. Nothing compacted yet: every read comes from the journal tail.
    produce(&producer, 0, 0..300).await;
    assert_eq!(compare_all(&http, &gw.url, &reader).await, 300);

    // Followers: one direct consumer per partition, from the start, as records commit.
    let done = Arc::new(AtomicBool::new(false));
    let followers: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            let reader = reader.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut c = reader.consumer(TOPIC, p, Start::Earliest).await.unwrap();
                let mut seen = Vec::new();
                loop {
                    let b = c.poll(Duration::from_millis(200)).await.unwrap();
                    let empty = b.records.is_empty();
                    seen.extend(b.records.iter().map(RecordOut::from));
                    if empty && done.load(Ordering::Acquire) {
                        return seen;
                    }
                }
            })
        })
        .collect();

    // 2. A producer and a compactor run while both readers compare.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx = stop_rx.clone();
    let compactor = tokio::spawn(
        Compactor::new(
            backend.client(),
            clock::system(),
            CompactorConfig {
                interval: Duration::from_millis(20),
                ..Default::default()
            },
        )
        .run(async move {
            let _ = rx.wait_for(|s| *s).await;
        }),
    );
    // The writer waits for a comparison round to finish after each chunk, so comparisons
    // interleave with writes however fast either side is.
    let (round_tx, mut round_rx) = tokio::sync::watch::channel(0u64);
    let writing = {
        let producer = producer.clone();
        tokio::spawn(async move {
            for chunk in 0..15u64 {
                produce(&producer, 1, chunk * 80..(chunk + 1) * 80).await;
                round_rx.changed().await.expect("comparer runs");
            }
        })
    };
    let mut rounds = 0u64;
    while !writing.is_finished() {
        compare_all(&http, &gw.url, &reader).await;
        rounds += 1;
        let _ = round_tx.send(rounds);
    }
    writing.await.unwrap();
    assert!(rounds >= 15, "compared only {rounds} times while writing");
    let _ = stop_tx.send(true);
    compactor.await.unwrap();

    // 3. Everything folded into indexes, tail segments collected: reads go to the indexes.
    let mut gc = Compactor::new(
        backend.client(),
        clock::system(),
        CompactorConfig {
            lease_duration: Duration::from_millis(100),
            gc_grace_ms: 0,
            truncate_keep_entries: 0,
            truncate_min_age_ms: 0,
            ..Default::default()
        },
    );
    let topic = reader.topic(TOPIC).await.unwrap();
    let shard = reader.log().shard(topic.shard).await.unwrap();
    for _ in 0..200 {
        let _ = gc.run_once().await;
        shard.refresh_checkpoint().await.unwrap();
        let all_indexed = (0..PARTITIONS).all(|partition| {
            let p = PartitionId {
                topic: topic.topic_id().unwrap(),
                partition,
            };
            shard.covered(&p) == shard.next_offset(&p)
        });
        if all_indexed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for partition in 0..PARTITIONS {
        let p = PartitionId {
            topic: topic.topic_id().unwrap(),
            partition,
        };
        assert_eq!(
            shard.covered(&p),
            shard.next_offset(&p),
            "partition {partition} indexed"
        );
    }
    let _ = gc.run_once().await; // collect the folded segments
    assert_eq!(compare_all(&http, &gw.url, &reader).await, 300 + 15 * 80);

    // The followers saw every record once, in order, as REST has them.
    done.store(true, Ordering::Release);
    for (p, f) in followers.into_iter().enumerate() {
        let seen = f.await.unwrap();
        let p = p as u32;
        let info = reader.partition_info(TOPIC, p).await.unwrap();
        let rest = rest_range(&http, &gw.url, p, 0, info.next_offset).await;
        assert_eq!(seen, rest, "follower of partition {p}");
    }

    // Starts: earliest, latest and by time resolve to the offsets REST resolves them to.
    for p in 0..PARTITIONS {
        let info = reader.partition_info(TOPIC, p).await.unwrap();
        for start in [Start::Earliest, Start::Latest] {
            let direct = reader.consumer(TOPIC, p, start).await.unwrap().position();
            let rest = match start {
                Start::Earliest => info.earliest_offset,
                _ => info.next_offset,
            };
            assert_eq!(direct, rest, "{start:?} of {p}");
        }
        let records = rest_range(&http, &gw.url, p, 0, info.next_offset).await;
        for r in records.iter().step_by(37) {
            for ts in [r.timestamp_ms - 1, r.timestamp_ms, r.timestamp_ms + 1] {
                let direct = reader
                    .consumer(TOPIC, p, Start::Timestamp(ts))
                    .await
                    .unwrap()
                    .position();
                let rest = client.offset_for_timestamp(TOPIC, p, ts).await.unwrap();
                assert_eq!(direct, rest, "timestamp {ts} of {p}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reads_match_rest_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    run(Backend::Local(dir.path().join("bucket"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reads_match_rest_on_s3() {
    if let Some(b) = s3_backend("sdk-direct") {
        run(b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        sluice_core::store::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    let gw = Gateway::start(store.clone(), Default::default()).await;
    let client = Client::new(&gw.url).unwrap();
    client.create_topic("t", 1, None).await.unwrap();
    client
        .produce("t", &[Record::new(None, "x")], None)
        .await
        .unwrap();
    let reader = DirectReader::from_store(store);
    let code = |e: sluice_sdk::Error| e.code();
    let missing = reader
        .consumer("nope", 0, Start::Earliest)
        .await
        .err()
        .unwrap();
    assert_eq!(code(missing), Some(sluice_sdk::ErrorCode::TopicNotFound));
    let bad_p = reader
        .consumer("t", 5, Start::Earliest)
        .await
        .err()
        .unwrap();
    assert_eq!(code(bad_p), Some(sluice_sdk::ErrorCode::PartitionNotFound));
    let mut beyond = reader.consumer("t", 0, Start::Offset(9)).await.unwrap();
    let e = beyond.poll(Duration::ZERO).await.err().unwrap();
    assert_eq!(e.code(), Some(sluice_sdk::ErrorCode::OffsetOutOfRange));
    // REST says the same.
    let e = client
        .read("t", 0, Start::Offset(9), 10, None)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Some(sluice_sdk::ErrorCode::OffsetOutOfRange));
    assert_eq!(e.api().unwrap().next_offset, Some(1));
}
