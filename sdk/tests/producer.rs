//! The Producer under injected faults: the fault-injecting store behind an in-process gateway
//! fails store calls, loses the answers of PUTs that landed (so commits look failed when they
//! were not) and adds latency, and the gateway's small pending budget answers 429 +
//! `Retry-After`. Every record must be acked exactly once at the offset where it is stored
//! (the history checker: I1 acked = stored, I2 dense, I3 send order per partition for the
//! producer with one request in flight, I5 nothing stored twice).

use sluice_core::clock;
use sluice_core::log::{Log, LogConfig};
use sluice_core::store::{self, FaultConfig, Instrumented, StoreOptions};
use sluice_gateway::GatewayConfig;
use sluice_sdk::{Client, Producer, ProducerConfig, Record};
use sluice_tests::checker::{check, Acked, History};
use sluice_tests::http::Gateway;
use sluice_tests::read_back;
use std::time::Duration;

const TOPIC: &str = "faulty";

/// Send `n` records; returns (value, ack) in send order.
async fn send_all(
    producer: &Producer,
    writer: u32,
    n: u64,
) -> Vec<(Vec<u8>, sluice_sdk::RecordAck)> {
    let mut pending = Vec::new();
    for i in 0..n {
        let value = format!("w{writer}-{i:05}-{}", "x".repeat(200));
        let r = Record::new(Some(format!("k{}", i % 13).as_bytes()), value.clone());
        pending.push((value.into_bytes(), producer.send(r).await.expect("send")));
    }
    producer.flush().await.expect("flush");
    let mut out = Vec::new();
    for (v, ack) in pending {
        out.push((v, ack.await.expect("every record is acked")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_acks_every_record_exactly_once_under_faults() {
    let inner = store::open("memory://", &StoreOptions::default()).unwrap();
    let faulty = Instrumented::new(inner.clone(), 7);
    let gw = Gateway::start(
        faulty.clone(),
        GatewayConfig {
            // A few requests at once fit; more get 429 + Retry-After.
            max_pending_bytes: 40 << 10,
            ..Default::default()
        },
    )
    .await;
    let client = Client::builder(&gw.url)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    client.create_topic(TOPIC, 4, None).await.unwrap();
    faulty.set_faults(FaultConfig {
        error_rate: 0.05,
        lost_reply_rate: 0.15,
        latency: Some((Duration::from_millis(1), Duration::from_millis(8))),
        ..Default::default()
    });
    let fast = ProducerConfig {
        max_batch_records: 50,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    // Writer 0: one request in flight, so its order per partition is promised too.
    let ordered = Producer::new(
        client.clone(),
        TOPIC,
        ProducerConfig {
            max_in_flight: 1,
            ..fast.clone()
        },
    );
    // Writer 1: eight requests in flight (more than the pending budget holds: 429s).
    let piped = Producer::new(
        client.clone(),
        TOPIC,
        ProducerConfig {
            max_in_flight: 8,
            ..fast
        },
    );
    let (a, b) = tokio::join!(send_all(&ordered, 0, 1500), send_all(&piped, 1, 3000));
    faulty.set_faults(FaultConfig::default());

    let mut history = History::default();
    for (seq, (value, ack)) in a.into_iter().enumerate() {
        history.acked.push(Acked {
            writer: 0,
            send_seq: seq as u64,
            topic: TOPIC.into(),
            partition: ack.partition,
            offset: ack.offset,
            value,
        });
    }
    for (seq, (value, ack)) in b.into_iter().enumerate() {
        history.acked.push(Acked {
            // Requests in flight together may land in either order (documented): order is
            // not checked for this writer, so each record is its own writer for I3.
            writer: 1000 + seq as u32,
            send_seq: 0,
            topic: TOPIC.into(),
            partition: ack.partition,
            offset: ack.offset,
            value,
        });
    }
    let log = Log::new(inner, clock::system(), LogConfig::default());
    read_back(&log, &[TOPIC], &mut history).await;
    let stored: usize = history.read.values().map(Vec::len).sum();
    assert_eq!(stored, 4500, "exactly the records sent are stored");
    let violations = check(&history);
    assert!(violations.is_empty(), "{violations:#?}");

    // The faults did happen and were survived by retrying.
    let (sa, sb) = (ordered.stats(), piped.stats());
    eprintln!("ordered: {sa:?}, pipelined: {sb:?}");
    assert!(sa.retries + sb.retries > 0, "no retry happened");
    assert!(sb.throttled > 0, "the pending budget never pushed back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_the_records_without_retrying() {
    let inner = store::open("memory://", &StoreOptions::default()).unwrap();
    let gw = Gateway::start(inner, GatewayConfig::default()).await;
    let client = Client::new(&gw.url).unwrap();
    let producer = Producer::new(client, "missing", ProducerConfig::default());
    let ack = producer.send(Record::new(None, "x")).await.unwrap();
    let e = ack.await.unwrap_err();
    assert_eq!(e.code(), Some(sluice_sdk::ErrorCode::TopicNotFound));
    assert_eq!(producer.stats().retries, 0);
    // A gateway that is not there: retryable, and retried until the deadline.
    let gone = Client::new("http://127.0.0.1:9").unwrap();
    let producer = Producer::new(
        gone,
        "t",
        ProducerConfig {
            retry_timeout: Duration::from_millis(300),
            initial_backoff: Duration::from_millis(10),
            ..Default::default()
        },
    );
    let e = producer
        .send(Record::new(None, "x"))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(e.is_unreachable() && e.has_no_side_effects(), "{e:?}");
    assert!(producer.stats().retries > 0);
}
