//! The SDK's delayed records against a real gateway on `127.0.0.1:0`, on a manual clock with the
//! mover driven tick by tick (no sleep decides anything): `Client::produce` with a delay and the
//! `Producer`'s `send_delayed` answer delayed ids (a keyed retry the same ones) (a record without a delay in the same producer
//! still gets its offset), `list_delayed` lists them soonest first, `cancel_delayed` cancels once
//! (then `delayed_not_found`), bad delays are typed 400s that the producer does not retry, and
//! once due exactly the records not cancelled are read back through the client.

use sluice_core::clock::ManualClock;
use sluice_core::delayed::mover::{Mover, MoverConfig};
use sluice_core::delayed::Delayed;
use sluice_core::log::{Log, LogConfig};
use sluice_gateway::GatewayConfig;
use sluice_sdk::api::ProducedRecord;
use sluice_sdk::{
    Client, Delay, Error, ErrorCode, ProduceOptions, Producer, ProducerConfig, Record, Start,
};
use sluice_tests::http::Gateway;
use std::time::Duration;

const T0: i64 = 1_800_000_000_000;
const DAY_MS: i64 = 86_400_000;

fn code(e: &Error) -> ErrorCode {
    e.code().unwrap_or_else(|| panic!("no problem code: {e}"))
}

/// A mover over the log's store, driven tick by tick by the test.
fn mover(log: &std::sync::Arc<Log>) -> Mover {
    let delayed = Delayed::new(log.store().clone(), log.clock().clone(), log.writer());
    let cfg = MoverConfig {
        lease_duration: Duration::from_millis(50),
        ..Default::default()
    };
    Mover::new(log.clone(), delayed, cfg)
}

/// Every value in the topic, sorted, read through the client.
async fn values(c: &Client, topic: &str, partitions: u32) -> Vec<String> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let b = c.read(topic, p, Start::Earliest, 1000, None).await.unwrap();
        out.extend(
            b.records
                .iter()
                .map(|r| String::from_utf8(r.record.value.to_vec()).unwrap()),
        );
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_records_through_the_client_and_the_producer() {
    let store = sluice_core::store::open("memory://", &Default::default()).unwrap();
    let clock = ManualClock::new(T0);
    let log = Log::new(store, clock.clone(), LogConfig::default());
    let gw = Gateway::serve(log.clone(), GatewayConfig::default()).await;
    let url = gw.url.clone();
    let mut mover = mover(&log);
    let c = Client::new(&url).unwrap();
    c.create_topic("t", 2, None).await.unwrap();

    // The client: every record of the call delayed, answered with ids in request order.
    let opts = ProduceOptions {
        delay: Some(Delay::For(Duration::from_secs(10))),
        partition: Some(1),
        ..Default::default()
    };
    let a = c
        .produce(
            "t",
            &[Record::new(Some(b"k"), "c10"), Record::new(None, "c10b")],
            Some(&opts),
        )
        .await
        .unwrap();
    let client_ids: Vec<String> = a
        .offsets
        .iter()
        .map(|o| match o {
            ProducedRecord::Delayed(d) => {
                assert_eq!(d.deliver_at_ms, T0 + 10_000);
                d.delayed_id.clone()
            }
            other => panic!("not delayed: {other:?}"),
        })
        .collect();
    assert_eq!(client_ids.len(), 2);

    // The producer: a record without a delay gets its offset; delayed ones their ids.
    let producer = Producer::new(c.clone(), "t", ProducerConfig::default());
    let now = producer
        .send_to(Some(0), Record::new(None, "now"))
        .await
        .unwrap();
    let at = producer
        .send_delayed(Some(0), Record::new(None, "p5"), Delay::Until(T0 + 5_000))
        .await
        .unwrap();
    let later = producer
        .send_delayed(
            Some(0),
            Record::new(None, "p20"),
            Delay::For(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    producer.flush().await.unwrap();
    let now = now.await.unwrap();
    assert_eq!((now.partition, now.offset), (0, 0));
    let p5 = at.await.unwrap();
    assert_eq!(p5.deliver_at_ms, T0 + 5_000);
    let p20 = later.await.unwrap();
    assert_eq!(p20.deliver_at_ms, T0 + 20_000);
    // Past 365 days: refused (400, nothing of its request written) and not retried.
    let too_far = producer
        .send_delayed(
            None,
            Record::new(None, "never"),
            Delay::For(Duration::from_millis((366 * DAY_MS) as u64)),
        )
        .await
        .unwrap();
    producer.flush().await.unwrap();
    let e = too_far.await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::InvalidRequest, "{e}");
    assert!(e.has_no_side_effects());
    assert_eq!(producer.stats().retries, 0);

    // A delay with an Idempotency-Key: a retry gets the first answer (same id and time, even
    // with a relative delay counted again), flagged duplicate; then cancelled.
    let keyed = ProduceOptions {
        idempotency_key: Some("k1".into()),
        delay: Some(Delay::For(Duration::from_secs(30))),
        ..Default::default()
    };
    let produce = |value: &'static str| {
        let (c, keyed) = (&c, &keyed);
        async move {
            c.produce("t", &[Record::new(None, value)], Some(keyed))
                .await
        }
    };
    let first = produce("x").await.unwrap();
    clock.advance(10);
    let again = produce("x").await.unwrap();
    assert_eq!(again.offsets, first.offsets);
    assert!(again.duplicate && !first.duplicate);
    let e = produce("y").await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::IdempotencyKeyReused, "{e}");
    let ProducedRecord::Delayed(d) = &first.offsets[0] else {
        panic!("{first:?}");
    };
    c.cancel_delayed("t", &d.delayed_id).await.unwrap();

    // Listed soonest first; the limit is passed on.
    let listed = c.list_delayed("t", None).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|d| d.delayed_id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{listed:?}");
    assert_eq!(
        (ids[0], ids[3]),
        (p5.delayed_id.as_str(), p20.delayed_id.as_str())
    );
    // The two due at the same time, in either order.
    let mut tens = ids[1..3].to_vec();
    tens.sort();
    let mut sent: Vec<&str> = client_ids.iter().map(String::as_str).collect();
    sent.sort();
    assert_eq!(tens, sent);
    assert_eq!(
        listed
            .iter()
            .find(|d| d.key.as_deref() == Some("k"))
            .map(|d| d.partition),
        Some(Some(1))
    );
    assert_eq!(c.list_delayed("t", Some(1)).await.unwrap().len(), 1);
    let e = c.list_delayed("t", Some(0)).await.unwrap_err();
    assert_eq!(e.api().map(|a| a.status), Some(400), "{e}");
    let e = c.list_delayed("nope", None).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::TopicNotFound);

    // Cancel one of the client's: once, then delayed_not_found; unknown ids too.
    c.cancel_delayed("t", &client_ids[1]).await.unwrap();
    let e = c.cancel_delayed("t", &client_ids[1]).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::DelayedNotFound);
    assert!(!e.is_retryable());
    let e = c.cancel_delayed("t", "garbage").await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::DelayedNotFound);
    assert!(matches!(
        c.cancel_delayed("t", "").await,
        Err(Error::Invalid(_))
    ));

    // Nothing early: one millisecond before the first is due, only "now".
    clock.set(T0 + 4_999);
    mover.tick().await.unwrap();
    assert_eq!(values(&c, "t", 2).await, ["now"]);
    // All due: exactly the records not cancelled, once.
    clock.set(T0 + 20_000);
    let mut delivered = 0;
    for _ in 0..20 {
        delivered += mover.tick().await.unwrap().records_delivered;
        if delivered >= 3 {
            break;
        }
    }
    assert_eq!(delivered, 3);
    assert_eq!(mover.tick().await.unwrap().records_delivered, 0);
    assert_eq!(values(&c, "t", 2).await, ["c10", "now", "p20", "p5"]);
    assert!(c.list_delayed("t", None).await.unwrap().is_empty());
    let e = c.cancel_delayed("t", &p20.delayed_id).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::DelayedNotFound);
    // The partition asked for is kept.
    let b = c.read("t", 1, Start::Earliest, 10, None).await.unwrap();
    assert_eq!(b.records.len(), 1);
    assert_eq!(b.records[0].record.value, "c10");
    assert!(b.records[0].append_ts >= T0 + 10_000);
}

/// The `Producer` retries a delayed batch with its `Idempotency-Key`: with every delayed-object
/// PUT's answer lost 30% of the time (the object written, an error answered), each record still
/// resolves with one id, and once due each is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_retries_delayed_batches_once_under_lost_answers() {
    use sluice_core::store::{FaultConfig, Instrumented};
    let inner = sluice_core::store::open("memory://", &Default::default()).unwrap();
    let faulty = Instrumented::new(inner, 11);
    let clock = ManualClock::new(T0);
    let log = Log::new(faulty.clone(), clock.clone(), LogConfig::default());
    let gw = Gateway::serve(log.clone(), GatewayConfig::default()).await;
    let mut mover = mover(&log);
    let c = Client::new(&gw.url).unwrap();
    c.create_topic("t", 2, None).await.unwrap();
    faulty.set_faults(FaultConfig {
        lost_reply_rate: 0.3,
        only_prefix: Some("delayed/b/".into()),
        ..Default::default()
    });
    let producer = Producer::new(
        c.clone(),
        "t",
        ProducerConfig {
            max_batch_records: 4,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..Default::default()
        },
    );
    let mut acks = Vec::new();
    for i in 0..40u32 {
        let delay = Delay::Until(T0 + 1_000 + i64::from(i % 5) * 200);
        let ack = producer
            .send_delayed(Some(i % 2), Record::new(None, format!("d{i}")), delay)
            .await
            .unwrap();
        acks.push(ack);
    }
    let mut ids = Vec::new();
    for a in acks {
        ids.push(a.await.expect("every delayed record resolves").delayed_id);
    }
    let retries = producer.stats().retries;
    assert!(retries > 0, "no lost answer was retried");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "one id per record");
    faulty.set_faults(FaultConfig::default());

    clock.set(T0 + 10_000);
    mover.tick().await.unwrap();
    let want: Vec<String> = {
        let mut v: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
        v.sort();
        v
    };
    assert_eq!(
        values(&c, "t", 2).await,
        want,
        "each delivered once ({retries} retries)"
    );
}
