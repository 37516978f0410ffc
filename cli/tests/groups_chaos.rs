//! A consumer group under kill -9: 3 `sluice gateway` processes on one bucket (a local folder,
//! and LocalStack when configured — always in CI), producers through all of them, 3 group
//! members spread over them, and every second either a gateway SIGKILLed and restarted or a
//! member "killed" (it vanishes without leaving and a new one joins). A group history checker
//! (`sluice_tests::checker::check_group`) asserts, over everything observed: one assignment per
//! generation, complete after each rebalance (G1, G2), committed offsets never going back and
//! never lost (G3), every produced record polled at least once (G4), polls only from owned
//! partitions (G5).
//!
//! A poll that is not answered 200 (the gateway died under it) may have moved the member's
//! positions, so the member leaves and joins again: its partitions restart at their committed
//! offsets. That is what a client must do to keep at-least-once (docs/ARCHITECTURE.md).
//!
//! Duration: `SLUICE_GROUPS_CHAOS_SECONDS` (default 15).

mod common;

use common::{free_port, Proc};
use serde_json::{json, Value};
use sluice_tests::checker::{
    check_group, AssignmentSeen, CommitSeen, GroupHistory, GroupSeen, PolledSeen, Tp,
};
use sluice_tests::{s3_backend, Backend, Rng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOPIC: &str = "group-chaos";
const GROUP: &str = "chaos";
const PARTITIONS: u32 = 6;
const MEMBERS: usize = 3;
const SESSION_MS: u64 = 2_000;

struct Run {
    urls: Vec<String>,
    start: Instant,
    producing: AtomicBool,
    running: AtomicBool,
    /// Set per member by the killer: abandon the member id at once.
    kill: Vec<AtomicBool>,
    calls: AtomicU64,
    rejoins: AtomicU64,
    history: Mutex<GroupHistory>,
}

impl Run {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn history(&self) -> std::sync::MutexGuard<'_, GroupHistory> {
        self.history.lock().unwrap()
    }

    /// One call to a random gateway: `None` if the connection failed or the answer was cut.
    async fn call(
        &self,
        http: &reqwest::Client,
        rng: &mut Rng,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        let url = &self.urls[rng.below(self.urls.len() as u64) as usize];
        let mut req = http.request(method, format!("{url}{path}"));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let r = req.send().await.ok()?;
        let status = r.status().as_u16();
        let text = r.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// A call answered with something no correct gateway answers to a valid call.
    fn unexpected(&self, what: &str, status: u16, v: &Value) {
        if status != 503 {
            self.history().errors.push(format!("{what}: {status} {v}"));
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .expect("client")
}

fn partitions_of(v: &Value, field: &str) -> Vec<Tp> {
    v[field]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["topic"].as_str().unwrap_or_default().to_string(),
                        x["partition"].as_u64().unwrap_or(u64::MAX) as u32,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn producer(run: Arc<Run>, n: u64) {
    let http = client();
    let mut rng = Rng::new(100 + n);
    let mut j = 0u64;
    while run.producing.load(Ordering::Relaxed) {
        let count = 1 + rng.below(5);
        let records: Vec<Value> = (0..count)
            .map(
                |i| json!({"key": format!("k{}", rng.below(64)), "value": format!("p{n}-{j}-{i}")}),
            )
            .collect();
        let body = json!({ "records": records });
        let key = format!("p{n}-r{j}");
        let give_up = Instant::now() + Duration::from_secs(120);
        let acked = loop {
            let url = &run.urls[rng.below(run.urls.len() as u64) as usize];
            let r = http
                .post(format!("{url}/v1/topics/{TOPIC}/records"))
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await;
            if let Ok(r) = r {
                if r.status().is_success() {
                    if let Ok(v) = r.json::<Value>().await {
                        break v;
                    }
                }
            }
            assert!(Instant::now() < give_up, "produce {key} never acked");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        {
            let mut h = run.history();
            for o in acked["offsets"].as_array().cloned().unwrap_or_default() {
                let p = o["partition"].as_u64().unwrap_or(u64::MAX) as u32;
                let offset = o["offset"].as_u64().unwrap_or(u64::MAX);
                h.produced
                    .entry((TOPIC.to_string(), p))
                    .or_default()
                    .push(offset);
            }
        }
        j += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Join until some gateway answers; records the assignment seen.
async fn join(run: &Run, http: &reqwest::Client, rng: &mut Rng) -> (String, u64) {
    let body = json!({"topics": [TOPIC], "session_timeout_ms": SESSION_MS});
    loop {
        match run
            .call(
                http,
                rng,
                reqwest::Method::POST,
                &format!("/v1/groups/{GROUP}/members"),
                Some(&body),
            )
            .await
        {
            Some((201, v)) => {
                let id = v["member_id"].as_str().unwrap_or_default().to_string();
                let generation = v["generation"].as_u64().unwrap_or(0);
                run.history().assignments.push(AssignmentSeen {
                    generation,
                    member: id.clone(),
                    partitions: partitions_of(&v, "assignments"),
                });
                return (id, generation);
            }
            Some((s, v)) => run.unexpected("join", s, &v),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

enum Next {
    Continue,
    Rejoin,
}

async fn heartbeat(
    run: &Run,
    http: &reqwest::Client,
    rng: &mut Rng,
    id: &str,
    generation: &mut u64,
) -> Next {
    let path = format!("/v1/groups/{GROUP}/members/{id}/heartbeat");
    match run
        .call(http, rng, reqwest::Method::POST, &path, None)
        .await
    {
        Some((200, v)) => {
            *generation = v["generation"].as_u64().unwrap_or(0);
            run.history().assignments.push(AssignmentSeen {
                generation: *generation,
                member: id.to_string(),
                partitions: partitions_of(&v, "assignments"),
            });
            Next::Continue
        }
        Some((404, _)) => Next::Rejoin,
        Some((s, v)) => {
            run.unexpected("heartbeat", s, &v);
            Next::Continue
        }
        None => Next::Continue,
    }
}

/// Poll, then commit what was polled. Any doubt about a poll's answer: rejoin.
async fn poll_and_commit(
    run: &Run,
    http: &reqwest::Client,
    rng: &mut Rng,
    id: &str,
    generation: &mut u64,
) -> Next {
    let path = format!("/v1/groups/{GROUP}/records?member_id={id}&limit=50&wait_ms=200");
    let v = match run.call(http, rng, reqwest::Method::GET, &path, None).await {
        Some((200, v)) => v,
        Some((404, _)) => return Next::Rejoin,
        Some((s, v)) => {
            run.unexpected("poll", s, &v);
            return Next::Rejoin;
        }
        None => return Next::Rejoin,
    };
    let g = v["generation"].as_u64().unwrap_or(0);
    *generation = g;
    let mut next: BTreeMap<Tp, u64> = BTreeMap::new();
    {
        let mut h = run.history();
        for r in v["records"].as_array().cloned().unwrap_or_default() {
            let tp = (
                r["topic"].as_str().unwrap_or_default().to_string(),
                r["partition"].as_u64().unwrap_or(u64::MAX) as u32,
            );
            let offset = r["offset"].as_u64().unwrap_or(u64::MAX);
            h.polled.push(PolledSeen {
                member: id.to_string(),
                generation: g,
                tp: tp.clone(),
                offset,
            });
            let e = next.entry(tp).or_insert(0);
            *e = (*e).max(offset + 1);
        }
    }
    if next.is_empty() {
        return Next::Continue;
    }
    let offsets: Vec<Value> = next
        .iter()
        .map(|((t, p), o)| json!({"topic": t, "partition": p, "offset": o}))
        .collect();
    let body = json!({"member_id": id, "generation": g, "offsets": offsets});
    let sent = run.now_us();
    match run
        .call(
            http,
            rng,
            reqwest::Method::POST,
            &format!("/v1/groups/{GROUP}/offsets"),
            Some(&body),
        )
        .await
    {
        Some((200, v)) => {
            let answered = run.now_us();
            let mut h = run.history();
            for o in v["offsets"].as_array().cloned().unwrap_or_default() {
                let tp = (
                    o["topic"].as_str().unwrap_or_default().to_string(),
                    o["partition"].as_u64().unwrap_or(u64::MAX) as u32,
                );
                if let Some(committed) = o["committed_offset"].as_u64() {
                    h.commits.push(CommitSeen {
                        tp,
                        committed,
                        sent,
                        answered,
                    });
                }
            }
            Next::Continue
        }
        // A rebalance got there first: learn the new assignment.
        Some((409, _)) => heartbeat(run, http, rng, id, generation).await,
        Some((404, _)) => Next::Rejoin,
        // The commit's outcome is unknown (or it failed) while the positions already moved past
        // these records: rejoin, so the partitions restart at their committed offsets
        // (at-least-once), as for a lost poll answer.
        Some((s, v)) => {
            run.unexpected("commit", s, &v);
            Next::Rejoin
        }
        None => Next::Rejoin,
    }
}

async fn member(run: Arc<Run>, k: usize) {
    let http = client();
    let mut rng = Rng::new(200 + k as u64);
    while run.running.load(Ordering::Relaxed) {
        let (id, mut generation) = join(&run, &http, &mut rng).await;
        let mut last_beat = Instant::now();
        loop {
            if !run.running.load(Ordering::Relaxed) {
                return;
            }
            if run.kill[k].swap(false, Ordering::Relaxed) {
                // Killed: vanish without leaving; the session expires on its own.
                break;
            }
            let mut next = poll_and_commit(&run, &http, &mut rng, &id, &mut generation).await;
            if matches!(next, Next::Continue) && last_beat.elapsed() > Duration::from_millis(500) {
                next = heartbeat(&run, &http, &mut rng, &id, &mut generation).await;
                last_beat = Instant::now();
            }
            if matches!(next, Next::Rejoin) {
                // Leave (best effort) so the partitions restart at their committed offsets now.
                let path = format!("/v1/groups/{GROUP}/members/{id}");
                let _ = run
                    .call(&http, &mut rng, reqwest::Method::DELETE, &path, None)
                    .await;
                break;
            }
        }
        run.rejoins.fetch_add(1, Ordering::Relaxed);
    }
}

fn group_seen(v: &Value) -> GroupSeen {
    let members = v["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["member_id"].as_str().unwrap_or_default().to_string(),
                partitions_of(m, "assignments"),
            )
        })
        .collect();
    let committed = v["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some((
                (
                    p["topic"].as_str()?.to_string(),
                    p["partition"].as_u64()? as u32,
                ),
                p["committed_offset"].as_u64()?,
            ))
        })
        .collect();
    GroupSeen {
        generation: v["generation"].as_u64().unwrap_or(0),
        members,
        committed,
    }
}

async fn observer(run: Arc<Run>) {
    let http = client();
    let mut rng = Rng::new(300);
    while run.running.load(Ordering::Relaxed) {
        let path = format!("/v1/groups/{GROUP}");
        match run
            .call(&http, &mut rng, reqwest::Method::GET, &path, None)
            .await
        {
            Some((200, v)) => run.history().describes.push(group_seen(&v)),
            Some((404, _)) | None => {}
            Some((s, v)) => run.unexpected("describe", s, &v),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn scenario(backend: Backend) {
    let seconds: u64 = std::env::var("SLUICE_GROUPS_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let mut procs: Vec<Proc> = (0..3)
        .map(|_| Proc::gateway(&backend, free_port()))
        .collect();
    for p in &procs {
        p.wait_healthy().await;
    }
    let urls: Vec<String> = procs.iter().map(Proc::url).collect();
    let http = client();
    let r = http
        .post(format!("{}/v1/topics", urls[0]))
        .json(&json!({"name": TOPIC, "partitions": PARTITIONS}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let run = Arc::new(Run {
        urls: urls.clone(),
        start: Instant::now(),
        producing: AtomicBool::new(true),
        running: AtomicBool::new(true),
        kill: (0..MEMBERS).map(|_| AtomicBool::new(false)).collect(),
        calls: AtomicU64::new(0),
        rejoins: AtomicU64::new(0),
        history: Mutex::new(GroupHistory {
            partitions: (0..PARTITIONS).map(|p| (TOPIC.to_string(), p)).collect(),
            ..Default::default()
        }),
    });
    let producers: Vec<_> = (0..2)
        .map(|n| tokio::spawn(producer(run.clone(), n)))
        .collect();
    let members: Vec<_> = (0..MEMBERS)
        .map(|k| tokio::spawn(member(run.clone(), k)))
        .collect();
    let obs = tokio::spawn(observer(run.clone()));

    // The killer: every second a gateway (SIGKILL, then restart) or a member.
    let mut rng = Rng::new(42);
    let (mut gateway_kills, mut member_kills) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() + Duration::from_secs(1) < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if rng.below(2) == 0 {
            let victim = rng.below(procs.len() as u64) as usize;
            procs[victim].kill();
            tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
            procs[victim].start();
            gateway_kills += 1;
        } else {
            run.kill[rng.below(MEMBERS as u64) as usize].store(true, Ordering::Relaxed);
            member_kills += 1;
        }
    }
    run.producing.store(false, Ordering::Relaxed);
    for p in producers {
        p.await.expect("producer panicked");
    }
    for p in &procs {
        p.wait_healthy().await;
    }
    // Drain: the members go on until everything produced is committed (bounded).
    let produced: BTreeMap<Tp, u64> = run
        .history()
        .produced
        .iter()
        .map(|(tp, o)| (tp.clone(), o.iter().max().map_or(0, |m| m + 1)))
        .collect();
    let give_up = Instant::now() + Duration::from_secs(180);
    let final_state = loop {
        let r = http
            .get(format!("{}/v1/groups/{GROUP}", urls[0]))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let seen = group_seen(&v);
        if produced
            .iter()
            .all(|(tp, end)| seen.committed.get(tp).copied().unwrap_or(0) >= *end)
        {
            break seen;
        }
        assert!(
            Instant::now() < give_up,
            "the group never caught up: committed {:?}, produced {produced:?}",
            seen.committed
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    run.running.store(false, Ordering::Relaxed);
    for m in members {
        m.await.expect("member panicked");
    }
    obs.await.expect("observer panicked");

    let mut h = std::mem::take(&mut *run.history());
    h.final_state = Some(final_state);
    let violations = check_group(&h);
    println!(
        "group chaos ({} backend, {seconds} s): {} calls, {} produced, {} polled, {} commits, \
         {} describes, {gateway_kills} gateway kills, {member_kills} member kills, {} rejoins, \
         {} violations",
        backend.name(),
        run.calls.load(Ordering::Relaxed),
        h.produced.values().map(Vec::len).sum::<usize>(),
        h.polled.len(),
        h.commits.len(),
        h.describes.len(),
        run.rejoins.load(Ordering::Relaxed),
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "{:#?}",
        &violations[..violations.len().min(20)]
    );
    assert!(!h.produced.is_empty() && !h.commits.is_empty() && !h.describes.is_empty());
    assert!(
        seconds < 4 || (gateway_kills > 0 && member_kills > 0),
        "the killer must kill"
    );
}

/// One after the other (not as two tests run at once): 6 gateway processes at a time would
/// starve this 2-core machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_under_kill_nine_on_a_local_folder_and_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    scenario(Backend::Local(dir.path().join("bucket"))).await;
    if let Some(backend) = s3_backend("groups-chaos") {
        scenario(backend).await;
    }
}
