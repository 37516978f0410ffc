use super::service::{CheckBack, CheckRequest, Transactions, TxnConfig};
use super::*;
use crate::clock::ManualClock;
use crate::format::record::Record;
use crate::log::{Log, LogConfig};
use crate::store::DynStore;
use crate::topic::TopicConfig;
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::{Arc, Mutex};

fn staged(object: &str, records: u32, key: Option<&str>) -> Staged {
    Staged {
        object: object.into(),
        topic: "t".into(),
        topic_id: "x".into(),
        records,
        bytes: 10,
        idempotency_key: key.map(str::to_string),
    }
}

fn begun(timeout_ms: u64, check_url: Option<&str>) -> TxnState {
    let mut s = TxnState::default();
    s.apply_op(
        &TxnOp::Begin {
            timeout_ms,
            check_url: check_url.map(str::to_string),
        },
        1000,
    );
    s
}

#[test]
fn staging_closes_at_the_decision_and_at_the_timeout() {
    let mut s = begun(100, None);
    assert_eq!(s.expires_at_ms, 1100);
    let (ops, n) = plan_stage("id", &s, 1050, &staged("a", 3, None)).unwrap();
    assert_eq!(n, 3);
    for op in &ops {
        s.apply_op(op, 1050);
    }
    // At the timeout: refused when planned, and ignored when applied (another gateway's
    // stale plan).
    assert!(matches!(
        plan_stage("id", &s, 1100, &staged("b", 1, None)),
        Err(TxnError::Closed { .. })
    ));
    s.apply_op(&TxnOp::Stage(staged("b", 1, None)), 1100);
    assert_eq!(s.staged.len(), 1);
    let ops = plan_commit("id", &s).unwrap();
    for op in &ops {
        s.apply_op(op, 1200);
    }
    assert_eq!(s.phase, Phase::Committing);
    s.apply_op(&TxnOp::Stage(staged("c", 1, None)), 1000);
    assert_eq!(s.staged.len(), 1, "nothing is staged after the decision");
    // Commit again plans nothing; rollback is refused.
    assert!(plan_commit("id", &s).unwrap().is_empty());
    assert!(matches!(
        plan_rollback("id", &s),
        Err(TxnError::Closed { .. })
    ));
    // Applied out of place is ignored; in place completes it.
    s.apply_op(
        &TxnOp::Applied {
            from: 1,
            offsets: vec![vec![(0, 0)]],
        },
        1300,
    );
    assert_eq!(s.phase, Phase::Committing);
    let ops = plan_applied(&s, 0, vec![vec![(0, 5), (0, 6), (1, 0)]]);
    for op in &ops {
        s.apply_op(op, 1300);
    }
    assert_eq!(s.phase, Phase::Committed);
    assert_eq!(
        s.offsets(),
        vec![("t".into(), 0, 5), ("t".into(), 0, 6), ("t".into(), 1, 0)]
    );
    assert!(plan_applied(&s, 0, vec![vec![]]).is_empty());
}

#[test]
fn rollback_is_idempotent_and_closes_commit() {
    let mut s = begun(100, None);
    for op in plan_rollback("id", &s).unwrap() {
        s.apply_op(&op, 1001);
    }
    assert_eq!(s.phase, Phase::RolledBack);
    assert!(plan_rollback("id", &s).unwrap().is_empty());
    assert!(matches!(
        plan_commit("id", &s),
        Err(TxnError::Closed { .. })
    ));
    assert!(matches!(
        plan_stage("id", &s, 1002, &staged("a", 1, None)),
        Err(TxnError::Closed { .. })
    ));
    let none = TxnState::default();
    assert!(matches!(
        plan_commit("id", &none),
        Err(TxnError::NotFound(_))
    ));
    assert!(matches!(
        plan_stage("id", &none, 0, &staged("a", 1, None)),
        Err(TxnError::NotFound(_))
    ));
}

#[test]
fn an_idempotency_key_stages_once() {
    let mut s = begun(100, None);
    for op in plan_stage("id", &s, 1001, &staged("a", 3, Some("k")))
        .unwrap()
        .0
    {
        s.apply_op(&op, 1001);
    }
    let (ops, n) = plan_stage("id", &s, 1002, &staged("b", 9, Some("k"))).unwrap();
    assert!(ops.is_empty());
    assert_eq!(n, 3, "the first request's answer");
    s.apply_op(&TxnOp::Stage(staged("b", 9, Some("k"))), 1002);
    assert_eq!(s.staged.len(), 1);
}

#[test]
fn check_backs_count_back_off_and_roll_back_after_fifteen() {
    let mut s = begun(100, Some("http://x/check"));
    let mut t = 1100;
    for n in 1..=MAX_CHECKS {
        assert!(s.is_open());
        // A repeat of an older check number (two resolvers) changes nothing.
        if n > 1 {
            assert!(plan_checked(&s, n - 1, CheckStatus::Unknown, t, (1000, 60_000)).is_empty());
        }
        for op in plan_checked(&s, n, CheckStatus::Unknown, t, (1000, 60_000)) {
            s.apply_op(&op, t);
        }
        assert_eq!(s.checks, n);
        t = s.next_check_ms;
    }
    assert_eq!(s.phase, Phase::RolledBack);
    assert_eq!(s.decided_by, Some(Decider::Checks));
    assert_eq!(check_backoff_ms(1, 1000, 60_000), 1000);
    assert_eq!(check_backoff_ms(3, 1000, 60_000), 4000);
    assert_eq!(check_backoff_ms(14, 1000, 60_000), 60_000);
    assert_eq!(check_backoff_ms(40, u64::MAX, 60_000), 60_000);

    let mut s = begun(100, Some("http://x/check"));
    for op in plan_checked(&s, 1, CheckStatus::Commit, 1200, (1, 1)) {
        s.apply_op(&op, 1200);
    }
    assert_eq!(
        s.phase,
        Phase::Committed,
        "nothing staged: committed at once"
    );
    assert_eq!(s.decided_by, Some(Decider::CheckBack));
}

#[test]
fn timeout_rolls_back_only_without_check_url_and_when_due() {
    let s = begun(100, None);
    assert!(plan_timeout(&s, 1099).is_empty());
    assert_eq!(plan_timeout(&s, 1100).len(), 1);
    assert!(plan_timeout(&begun(100, Some("http://x")), 5000).is_empty());
}

#[test]
fn void_keeps_an_abandoned_id_from_beginning() {
    let mut s = TxnState::default();
    s.apply_op(&TxnOp::Void, 1);
    s.apply_op(
        &TxnOp::Begin {
            timeout_ms: 10,
            check_url: None,
        },
        2,
    );
    assert!(!s.exists);
}

#[test]
fn check_urls_and_timeouts_are_validated() {
    for ok in ["http://127.0.0.1:9/check", "https://example.com/tx?x=1"] {
        validate_check_url(ok).unwrap();
    }
    for bad in [
        "",
        "not a url",
        "ftp://x/y",
        "http://user:pw@x/",
        "http://x/#frag",
        "file:///etc/passwd",
        &format!("http://x/{}", "a".repeat(3000)),
    ] {
        assert!(
            matches!(validate_check_url(bad), Err(TxnError::InvalidCheckUrl(_))),
            "{bad}"
        );
    }
    assert_eq!(validate_timeout(None).unwrap(), DEFAULT_TIMEOUT_MS);
    assert!(validate_timeout(Some(0)).is_err());
    assert!(validate_timeout(Some(MAX_TIMEOUT_MS + 1)).is_err());
}

#[test]
fn state_restore_is_defensive() {
    let s = begun(100, None);
    let bytes = s.snapshot().unwrap();
    assert_eq!(TxnState::restore(&bytes).unwrap(), s);
    let mut newer = s.clone();
    newer.format = 2;
    assert!(TxnState::restore(&newer.snapshot().unwrap()).is_err());
    assert!(TxnState::restore(b"{").is_err());
    let mut bad = s;
    bad.applied.push(vec![]);
    assert!(TxnState::restore(&bad.snapshot().unwrap()).is_err());
}

// ---- the service, on an in-memory bucket ----

struct Scripted(Mutex<Vec<CheckStatus>>, Mutex<Vec<CheckRequest>>);

#[async_trait]
impl CheckBack for Scripted {
    async fn check(&self, _url: &str, req: &CheckRequest) -> CheckStatus {
        self.1.lock().unwrap().push(req.clone());
        let mut s = self.0.lock().unwrap();
        if s.len() > 1 {
            s.remove(0)
        } else {
            s[0]
        }
    }
}

fn scripted(s: &[CheckStatus]) -> Scripted {
    Scripted(Mutex::new(s.to_vec()), Mutex::new(Vec::new()))
}

async fn setup() -> (
    Arc<Log>,
    Arc<ManualClock>,
    Arc<TopicConfig>,
    Arc<TopicConfig>,
) {
    let store: DynStore = Arc::new(object_store::memory::InMemory::new());
    let clock = ManualClock::new(1_700_000_000_000);
    let log = Log::new(store, clock.clone(), LogConfig::default());
    let a = log.topics().create("a", 3, None, 0).await.unwrap();
    let b = log.topics().create("b", 2, None, 1).await.unwrap();
    (log, clock, a, b)
}

fn recs(prefix: &str, n: usize) -> Vec<(Option<u32>, Record)> {
    (0..n)
        .map(|i| {
            let key = format!("{prefix}-{i}");
            (
                None,
                Record::new(Some(key.as_bytes()), Bytes::from(key.clone())),
            )
        })
        .collect()
}

async fn all_values(log: &Log, t: &TopicConfig) -> Vec<String> {
    let mut out = Vec::new();
    for p in 0..t.partitions {
        let b = log.read(t, p, 0, 10_000, usize::MAX).await.unwrap();
        out.extend(
            b.records
                .iter()
                .map(|r| String::from_utf8(r.record.value.to_vec()).unwrap()),
        );
    }
    out.sort();
    out
}

#[tokio::test]
async fn commit_appends_every_staged_record_once_across_topics() {
    let (log, _clock, a, b) = setup().await;
    let txns = Transactions::new(log.clone(), TxnConfig::default());
    let t = txns.begin(None, None).await.unwrap();
    assert_eq!(txns.stage(&t.id, &a, recs("a1", 5), None).await.unwrap(), 5);
    assert_eq!(txns.stage(&t.id, &b, recs("b1", 4), None).await.unwrap(), 4);
    assert_eq!(
        txns.stage(&t.id, &a, recs("a2", 2), Some("k".into()))
            .await
            .unwrap(),
        2
    );
    // A retry of the last request (same key) stages nothing more.
    assert_eq!(
        txns.stage(&t.id, &a, recs("zz", 9), Some("k".into()))
            .await
            .unwrap(),
        2
    );
    assert!(
        all_values(&log, &a).await.is_empty(),
        "staged records are invisible"
    );
    let offsets = txns.commit(&t.id).await.unwrap();
    assert_eq!(offsets.len(), 11);
    assert!(offsets[..5].iter().all(|(t, _, _)| t == "a"));
    assert!(offsets[5..9].iter().all(|(t, _, _)| t == "b"));
    let mut want_a: Vec<String> = recs("a1", 5)
        .into_iter()
        .chain(recs("a2", 2))
        .map(|(_, r)| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    want_a.sort();
    assert_eq!(all_values(&log, &a).await, want_a);
    assert_eq!(all_values(&log, &b).await.len(), 4);
    // Idempotent: the same answer, nothing appended again.
    assert_eq!(txns.commit(&t.id).await.unwrap(), offsets);
    assert_eq!(all_values(&log, &a).await.len(), 7);
    assert!(matches!(
        txns.rollback(&t.id).await,
        Err(TxnError::Closed { .. })
    ));
    assert!(matches!(
        txns.stage(&t.id, &a, recs("late", 1), None).await,
        Err(TxnError::Closed { .. })
    ));
    let st = txns.describe(&t.id).await.unwrap();
    assert_eq!((st.phase, st.staged_records()), (Phase::Committed, 11));
    // Another process (no cache) sees the same.
    let other = Transactions::new(log.clone(), TxnConfig::default());
    assert_eq!(other.commit(&t.id).await.unwrap(), offsets);
    assert!(matches!(
        other.describe("01ARZ3NDEKTSV4RRFFQ69G5FAV").await,
        Err(TxnError::NotFound(_))
    ));
    assert!(matches!(
        other.describe("nope").await,
        Err(TxnError::NotFound(_))
    ));
}

#[tokio::test]
async fn rolled_back_and_expired_transactions_append_nothing() {
    let (log, clock, a, _) = setup().await;
    let txns = Transactions::new(log.clone(), TxnConfig::default());
    let checker = scripted(&[CheckStatus::Unknown]);
    let r = txns.begin(None, None).await.unwrap();
    txns.stage(&r.id, &a, recs("r", 3), None).await.unwrap();
    txns.rollback(&r.id).await.unwrap();
    txns.rollback(&r.id).await.unwrap();
    assert!(matches!(
        txns.commit(&r.id).await,
        Err(TxnError::Closed { .. })
    ));

    let e = txns.begin(Some(1000), None).await.unwrap();
    txns.stage(&e.id, &a, recs("e", 3), None).await.unwrap();
    assert_eq!(txns.resolve_pass(&checker).await.unwrap().open, 1);
    clock.advance(1000);
    assert!(matches!(
        txns.stage(&e.id, &a, recs("late", 1), None).await,
        Err(TxnError::Closed { .. })
    ));
    let stats = txns.resolve_pass(&checker).await.unwrap();
    assert_eq!(stats.rolled_back, 1);
    assert_eq!(
        txns.describe(&e.id).await.unwrap().decided_by,
        Some(Decider::Timeout)
    );
    assert!(
        checker.1.lock().unwrap().is_empty(),
        "no check_url: never checked"
    );
    assert!(all_values(&log, &a).await.is_empty());
    // Both are finished: no marker left; the staged objects are gone.
    let open = crate::store::list_names(&**log.store(), &crate::keys::txn_open_dir(), None)
        .await
        .unwrap();
    assert!(open.is_empty(), "{open:?}");
    // Past the retention they are reaped entirely.
    clock.advance(25 * 3600 * 1000);
    let txns2 = Transactions::new(log.clone(), TxnConfig::default());
    assert_eq!(txns2.resolve_pass(&checker).await.unwrap().reaped, 2);
    assert!(matches!(
        txns2.describe(&e.id).await,
        Err(TxnError::NotFound(_))
    ));
}

#[tokio::test]
async fn check_back_decides_and_unknown_answers_roll_back_after_fifteen() {
    let (log, clock, a, _) = setup().await;
    let cfg = TxnConfig {
        check_backoff_initial: std::time::Duration::from_millis(10),
        check_backoff_max: std::time::Duration::from_millis(100),
        ..Default::default()
    };
    let txns = Transactions::new(log.clone(), cfg);
    let c = txns
        .begin(Some(500), Some("http://127.0.0.1:9/c".into()))
        .await
        .unwrap();
    txns.stage(&c.id, &a, recs("c", 4), None).await.unwrap();
    clock.advance(500);
    let checker = scripted(&[
        CheckStatus::Unknown,
        CheckStatus::Unknown,
        CheckStatus::Commit,
    ]);
    for _ in 0..3 {
        txns.resolve_pass(&checker).await.unwrap();
        clock.advance(100);
    }
    let st = txns.describe(&c.id).await.unwrap();
    assert_eq!((st.phase, st.checks), (Phase::Committed, 2));
    assert_eq!(all_values(&log, &a).await.len(), 4);
    let req = checker.1.lock().unwrap()[0].clone();
    assert_eq!(
        (req.transaction_id, req.topics, req.staged),
        (c.id.clone(), vec!["a".to_string()], 4)
    );

    let u = txns
        .begin(Some(500), Some("http://127.0.0.1:9/c".into()))
        .await
        .unwrap();
    txns.stage(&u.id, &a, recs("u", 2), None).await.unwrap();
    let never = scripted(&[CheckStatus::Unknown]);
    clock.advance(500);
    for _ in 0..20 {
        txns.resolve_pass(&never).await.unwrap();
        clock.advance(100);
    }
    let st = txns.describe(&u.id).await.unwrap();
    assert_eq!((st.phase, st.checks), (Phase::RolledBack, MAX_CHECKS));
    assert_eq!(never.1.lock().unwrap().len(), MAX_CHECKS as usize);
    assert_eq!(
        all_values(&log, &a).await.len(),
        4,
        "the rolled-back records never appear"
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_written() {
    let (log, _clock, a, _) = setup().await;
    let txns = Transactions::new(log.clone(), TxnConfig::default());
    assert!(matches!(
        txns.begin(None, Some("ftp://x".into())).await,
        Err(TxnError::InvalidCheckUrl(_))
    ));
    assert!(matches!(
        txns.begin(Some(0), None).await,
        Err(TxnError::Invalid(_))
    ));
    let t = txns.begin(None, None).await.unwrap();
    let bad = vec![(Some(7), Record::new(None, Bytes::from_static(b"x")))];
    assert!(matches!(
        txns.stage(&t.id, &a, bad, None).await,
        Err(TxnError::Core(crate::Error::PartitionNotFound { .. }))
    ));
    assert_eq!(txns.describe(&t.id).await.unwrap().staged.len(), 0);
    assert!(txns.commit(&t.id).await.unwrap().is_empty());
}
