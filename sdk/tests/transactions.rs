//! The SDK's transaction calls against an in-process gateway: begin, stage, commit (idempotent),
//! rollback, describe, and the typed errors of a closed or unknown transaction.

use sluice_gateway::GatewayConfig;
use sluice_sdk::{Client, Error, ErrorCode, Record};
use sluice_tests::http::Gateway;
use std::time::Duration;

fn code(e: Error) -> ErrorCode {
    match e {
        Error::Api(a) => a.code,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_stage_commit_rollback_describe() {
    let store = sluice_core::store::open("memory://", &Default::default()).unwrap();
    let gw = Gateway::start(store, GatewayConfig::default()).await;
    let c = Client::new(&gw.url).unwrap();
    c.create_topic("t", 2, None).await.unwrap();
    let tx = c
        .begin_transaction(Some(Duration::from_secs(30)), None)
        .await
        .unwrap();
    let recs = [
        Record::new(Some(b"a"), &b"1"[..]),
        Record::new(Some(b"b"), &b"2"[..]),
    ];
    assert_eq!(
        c.stage(&tx.transaction_id, "t", &recs, None, Some("k"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        c.stage(&tx.transaction_id, "t", &recs, None, Some("k"))
            .await
            .unwrap(),
        2
    );
    let info = c.describe_transaction(&tx.transaction_id).await.unwrap();
    assert_eq!(info.staged, 2);
    let offsets = c.commit_transaction(&tx.transaction_id).await.unwrap();
    assert_eq!(offsets.len(), 2);
    assert_eq!(
        c.commit_transaction(&tx.transaction_id).await.unwrap(),
        offsets
    );
    let e = c
        .rollback_transaction(&tx.transaction_id)
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::TransactionClosed);

    let r = c.begin_transaction(None, None).await.unwrap();
    c.stage(&r.transaction_id, "t", &recs, Some(1), None)
        .await
        .unwrap();
    c.rollback_transaction(&r.transaction_id).await.unwrap();
    let e = c.commit_transaction(&r.transaction_id).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::TransactionClosed);
    let e = c
        .describe_transaction("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::TransactionNotFound);
    let e = c
        .begin_transaction(None, Some("ftp://x"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Api(ref a) if a.status == 400), "{e}");
}
