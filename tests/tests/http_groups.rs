//! Consumer groups end to end over REST, in process: real gateways (`sluice_gateway::serve`) on
//! one in-memory bucket, driven with an HTTP client. Every path of the "Consumer groups" section
//! of the contract, the reset addition, and the bad inputs.

use serde_json::{json, Value};
use sluice_core::store::{self, DynStore, StoreOptions};
use sluice_gateway::GatewayConfig;
use sluice_tests::http::{expect_problem, metrics_text, send, Gateway};
use std::time::{Duration, Instant};

fn memory() -> DynStore {
    store::open("memory://", &StoreOptions::default()).unwrap()
}

struct Api {
    url: String,
    c: reqwest::Client,
}

impl Api {
    fn new(gw: &Gateway) -> Self {
        Self {
            url: gw.url.clone(),
            c: reqwest::Client::new(),
        }
    }
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.c.get(format!("{}{path}", self.url))
    }
    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.c.post(format!("{}{path}", self.url)).json(&body)
    }
    fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.c.delete(format!("{}{path}", self.url))
    }
    async fn ok(&self, req: reqwest::RequestBuilder, status: u16) -> Value {
        let (s, v) = send(req).await;
        assert_eq!(s, status, "{v}");
        v
    }
    async fn topic(&self, name: &str, partitions: u32) {
        self.ok(
            self.post(
                "/v1/topics",
                json!({"name": name, "partitions": partitions}),
            ),
            201,
        )
        .await;
    }
    /// Produce `n` records `{prefix}-{i}` to one partition.
    async fn produce(&self, topic: &str, partition: u32, prefix: &str, n: usize) {
        let records: Vec<Value> = (0..n)
            .map(|i| json!({"value": format!("{prefix}-{i}"), "partition": partition}))
            .collect();
        self.ok(
            self.post(
                &format!("/v1/topics/{topic}/records"),
                json!({ "records": records }),
            ),
            200,
        )
        .await;
    }
    async fn join(&self, group: &str, body: Value) -> Value {
        self.ok(self.post(&format!("/v1/groups/{group}/members"), body), 201)
            .await
    }
    async fn heartbeat(&self, group: &str, member: &str) -> Value {
        self.ok(
            self.post(
                &format!("/v1/groups/{group}/members/{member}/heartbeat"),
                json!({}),
            ),
            200,
        )
        .await
    }
    async fn poll(&self, group: &str, member: &str, query: &str) -> Value {
        self.ok(
            self.get(&format!(
                "/v1/groups/{group}/records?member_id={member}&{query}"
            )),
            200,
        )
        .await
    }
    async fn commit(&self, group: &str, member: &str, generation: u64, offsets: Value) -> Value {
        self.ok(
            self.post(
                &format!("/v1/groups/{group}/offsets"),
                json!({"member_id": member, "generation": generation, "offsets": offsets}),
            ),
            200,
        )
        .await
    }
    async fn describe(&self, group: &str) -> Value {
        self.ok(self.get(&format!("/v1/groups/{group}")), 200).await
    }
}

fn id(v: &Value) -> String {
    v["member_id"].as_str().unwrap().to_string()
}

fn generation(v: &Value) -> u64 {
    v["generation"].as_u64().unwrap()
}

fn assigned(v: &Value) -> Vec<(String, u64)> {
    v["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["topic"].as_str().unwrap().to_string(),
                a["partition"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// (partition, offset, value) of a poll's records.
fn polled(v: &Value) -> Vec<(u64, u64, String)> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["partition"].as_u64().unwrap(),
                r["offset"].as_u64().unwrap(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn partition_row(detail: &Value, topic: &str, p: u64) -> Value {
    detail["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["topic"] == topic && r["partition"] == p)
        .cloned()
        .unwrap_or_else(|| panic!("{topic}/{p} missing in {detail}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_poll_commit_rebalance_describe_list_leave_delete() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let api = Api::new(&gw);
    api.topic("orders", 2).await;
    api.produce("orders", 0, "a", 10).await;
    api.produce("orders", 1, "b", 5).await;

    let a = api.join("billing", json!({"topics": ["orders"]})).await;
    let ma = id(&a);
    assert_eq!(generation(&a), 1);
    assert_eq!(a["session_timeout_ms"], 30_000);
    assert_eq!(assigned(&a).len(), 2);
    assert!(a["assignments"][0]["committed_offset"].is_null());

    // Polls advance through everything, nothing twice.
    let mut seen = Vec::new();
    loop {
        let p = api.poll("billing", &ma, "limit=4").await;
        assert_eq!(generation(&p), 1);
        let got = polled(&p);
        assert!(got.len() <= 4);
        if got.is_empty() {
            break;
        }
        seen.extend(got);
    }
    assert_eq!(seen.len(), 15, "{seen:?}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 15);
    assert!(seen
        .iter()
        .all(|(p, o, v)| v == &format!("{}-{o}", if *p == 0 { "a" } else { "b" })));

    // Commit part of it; describe shows committed, high watermark and lag.
    let c = api
        .commit(
            "billing",
            &ma,
            1,
            json!([{"topic": "orders", "partition": 0, "offset": 6},
                   {"topic": "orders", "partition": 1, "offset": 5}]),
        )
        .await;
    assert_eq!(c["offsets"][0]["committed_offset"], 6);
    let d = api.describe("billing").await;
    assert_eq!(d["group"], "billing");
    assert_eq!(d["members"].as_array().unwrap().len(), 1);
    let row = partition_row(&d, "orders", 0);
    assert_eq!(
        (
            row["committed_offset"].clone(),
            row["high_watermark"].clone(),
            row["lag"].clone()
        ),
        (json!(6), json!(10), json!(4))
    );
    assert_eq!(partition_row(&d, "orders", 1)["lag"], 0);
    // A commit never moves back.
    let c = api
        .commit(
            "billing",
            &ma,
            1,
            json!([{"topic": "orders", "partition": 0, "offset": 2}]),
        )
        .await;
    assert_eq!(c["offsets"][0]["committed_offset"], 6);

    // A second member: a new generation, the old one is stale for commits.
    let b = api.join("billing", json!({"topics": ["orders"]})).await;
    let mb = id(&b);
    assert_eq!(generation(&b), 2);
    assert_eq!(assigned(&b).len(), 1);
    let stale = api.post(
        "/v1/groups/billing/offsets",
        json!({"member_id": ma, "generation": 1,
               "offsets": [{"topic": "orders", "partition": 0, "offset": 7}]}),
    );
    expect_problem(stale, 409, "stale_generation").await;
    let h = api.heartbeat("billing", &ma).await;
    assert_eq!(generation(&h), 2);
    assert_eq!(assigned(&h).len(), 1);
    let (theirs, _) = &assigned(&b)[0];
    let their_p = assigned(&b)[0].1;
    let foreign = api.post(
        "/v1/groups/billing/offsets",
        json!({"member_id": ma, "generation": 2,
               "offsets": [{"topic": theirs, "partition": their_p, "offset": 1}]}),
    );
    expect_problem(foreign, 409, "not_assigned").await;
    // The new owner restarts at the committed offset (at-least-once).
    let p = api.poll("billing", &mb, "limit=100").await;
    let got = polled(&p);
    let restart = if their_p == 0 { 6 } else { 5 };
    assert_eq!(
        got.first().map(|r| r.1),
        (restart < [10, 5][their_p as usize]).then_some(restart)
    );
    assert!(got.iter().all(|r| r.0 == their_p));

    let list = api.ok(api.get("/v1/groups"), 200).await;
    assert_eq!(list["groups"][0]["group"], "billing");
    assert_eq!(list["groups"][0]["members"], 2);
    assert_eq!(list["groups"][0]["lag"], 4);

    // Leave: its partitions go to the other member at once.
    api.ok(api.delete(&format!("/v1/groups/billing/members/{mb}")), 204)
        .await;
    let h = api.heartbeat("billing", &ma).await;
    assert_eq!(generation(&h), 3);
    assert_eq!(assigned(&h).len(), 2);
    expect_problem(
        api.post(
            &format!("/v1/groups/billing/members/{mb}/heartbeat"),
            json!({}),
        ),
        404,
        "member_not_found",
    )
    .await;

    // Lag is a gauge too.
    let text = metrics_text(&api.url).await;
    assert!(
        text.contains("sluice_group_lag{group=\"billing\",topic=\"orders\",partition=\"0\"} 4"),
        "{text}"
    );

    api.ok(api.delete("/v1/groups/billing"), 204).await;
    expect_problem(api.get("/v1/groups/billing"), 404, "group_not_found").await;
    expect_problem(
        api.post(
            &format!("/v1/groups/billing/members/{ma}/heartbeat"),
            json!({}),
        ),
        404,
        "group_not_found",
    )
    .await;
    let list = api.ok(api.get("/v1/groups"), 200).await;
    assert_eq!(list["groups"], json!([]));
    // Joining again starts a fresh group: nothing committed.
    let again = api.join("billing", json!({"topics": ["orders"]})).await;
    assert!(generation(&again) > 3);
    assert!(again["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["committed_offset"].is_null()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_follow_the_member_across_gateways() {
    let bucket = memory();
    let gw1 = Gateway::start(bucket.clone(), GatewayConfig::default()).await;
    let gw2 = Gateway::start(bucket, GatewayConfig::default()).await;
    let (one, two) = (Api::new(&gw1), Api::new(&gw2));
    one.topic("events", 1).await;
    one.produce("events", 0, "e", 9).await;
    let m = id(&one.join("g", json!({"topics": ["events"]})).await);
    let mut offsets = Vec::new();
    for i in 0..3 {
        let api = if i % 2 == 0 { &one } else { &two };
        let p = api.poll("g", &m, "limit=3").await;
        offsets.extend(polled(&p).into_iter().map(|r| r.1));
    }
    assert_eq!(offsets, (0..9).collect::<Vec<u64>>());
    // A member that just joined through one gateway is known at once to the other, whose
    // cached state of the group predates it: never a 404 from a stale cache.
    for _ in 0..5 {
        let fresh = id(&one.join("g", json!({"topics": ["events"]})).await);
        two.poll("g", &fresh, "").await;
        two.heartbeat("g", &fresh).await;
    }
    // Nothing committed yet: describe on either gateway says so.
    let d = two.describe("g").await;
    assert!(partition_row(&d, "events", 0)["committed_offset"].is_null());
    assert_eq!(partition_row(&d, "events", 0)["lag"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_start_latest_and_long_poll() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let api = Api::new(&gw);
    api.topic("t", 1).await;
    api.produce("t", 0, "old", 5).await;
    let m = id(&api
        .join("late", json!({"topics": ["t"], "start": "latest"}))
        .await);
    assert!(polled(&api.poll("late", &m, "").await).is_empty());
    api.produce("t", 0, "new", 3).await;
    let p = api.poll("late", &m, "auto_commit=true").await;
    let got: Vec<String> = polled(&p).into_iter().map(|r| r.2).collect();
    assert_eq!(got, ["new-0", "new-1", "new-2"]);
    // Committed before the answer (at-most-once).
    let d = api.describe("late").await;
    assert_eq!(partition_row(&d, "t", 0)["committed_offset"], 8);

    // A long-poll is answered by a record produced while it waits.
    let url = api.url.clone();
    let waiter = tokio::spawn(async move {
        let c = reqwest::Client::new();
        let (s, v) = send(c.get(format!(
            "{url}/v1/groups/late/records?member_id={m}&wait_ms=20000"
        )))
        .await;
        assert_eq!(s, 200, "{v}");
        v
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.produce("t", 0, "later", 1).await;
    let v = waiter.await.unwrap();
    assert_eq!(
        polled(&v).first().map(|r| r.2.clone()).as_deref(),
        Some("later-0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_expires_and_loses_its_partitions() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let api = Api::new(&gw);
    api.topic("t", 4).await;
    let quiet = id(&api
        .join("g", json!({"topics": ["t"], "session_timeout_ms": 1000}))
        .await);
    let live = api
        .join("g", json!({"topics": ["t"], "session_timeout_ms": 60000}))
        .await;
    let (m, g0) = (id(&live), generation(&live));
    assert_eq!(assigned(&live).len(), 2);
    // Heartbeat the live member until the quiet one's session has run out (bounded).
    let give_up = Instant::now() + Duration::from_secs(20);
    let h = loop {
        let h = api.heartbeat("g", &m).await;
        if generation(&h) > g0 {
            break h;
        }
        assert!(Instant::now() < give_up, "the silent member never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(assigned(&h).len(), 4);
    expect_problem(
        api.post(
            &format!("/v1/groups/g/members/{quiet}/heartbeat"),
            json!({}),
        ),
        404,
        "member_not_found",
    )
    .await;
    expect_problem(
        api.get(&format!("/v1/groups/g/records?member_id={quiet}")),
        404,
        "member_not_found",
    )
    .await;
    assert_eq!(
        api.describe("g").await["members"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_growing_topics() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let api = Api::new(&gw);
    api.topic("t", 1).await;
    api.produce("t", 0, "r", 10).await;
    let j = api.join("g", json!({"topics": ["t"]})).await;
    let m = id(&j);
    let p = api.poll("g", &m, "limit=10&auto_commit=true").await;
    assert_eq!(polled(&p).len(), 10);
    let r = api
        .ok(
            api.post("/v1/groups/g/reset", json!({"topic": "t", "to": "3"})),
            200,
        )
        .await;
    assert_eq!(r["offsets"][0]["committed_offset"], 3);
    assert!(generation(&r) > generation(&j));
    // The member reads from the reset offset again; its old generation is fenced.
    let p = api.poll("g", &m, "limit=100").await;
    assert_eq!(polled(&p).first().map(|r| r.1), Some(3));
    expect_problem(
        api.post(
            "/v1/groups/g/offsets",
            json!({"member_id": m, "generation": generation(&j),
                   "offsets": [{"topic": "t", "partition": 0, "offset": 10}]}),
        ),
        409,
        "stale_generation",
    )
    .await;
    for (to, want) in [("earliest", 0), ("latest", 10)] {
        let r = api
            .ok(
                api.post("/v1/groups/g/reset", json!({"topic": "t", "to": to})),
                200,
            )
            .await;
        assert_eq!(r["offsets"][0]["committed_offset"], want, "{to}");
    }
    let r = api
        .ok(
            api.post(
                "/v1/groups/g/reset",
                json!({"topic": "t", "partition": 0, "timestamp_ms": 0}),
            ),
            200,
        )
        .await;
    assert_eq!(r["offsets"][0]["committed_offset"], 0);

    // The topic grows: the next heartbeat shows a new generation with the new partition.
    let before = api.heartbeat("g", &m).await;
    api.ok(
        api.c
            .patch(format!("{}/v1/topics/t", api.url))
            .json(&json!({"partitions": 2})),
        200,
    )
    .await;
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let h = api.heartbeat("g", &m).await;
        if assigned(&h).len() == 2 {
            assert!(generation(&h) > generation(&before));
            break;
        }
        // The topic config is cached for a moment.
        assert!(
            Instant::now() < give_up,
            "the new partition was never assigned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_problem_document() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let api = Api::new(&gw);
    api.topic("t", 1).await;
    api.produce("t", 0, "x", 2).await;
    let m = id(&api.join("g", json!({"topics": ["t"]})).await);

    // Join.
    for body in [
        json!({"topics": []}),
        json!({"topics": ["t"], "session_timeout_ms": 10}),
        json!({"topics": ["t"], "session_timeout_ms": 3_600_001}),
        json!({"topics": ["t"], "start": "middle"}),
        json!({"topics": ["t"], "surprise": 1}),
        json!({"topics": "t"}),
        json!(["t"]),
    ] {
        expect_problem(
            api.post("/v1/groups/g/members", body),
            400,
            "invalid_request",
        )
        .await;
    }
    let bad = expect_problem(
        api.post(
            "/v1/groups/g/members",
            json!({"topics": ["t"], "filter": "type = 'x' AND"}),
        ),
        400,
        "invalid_filter",
    )
    .await;
    assert_eq!(bad["position"], 14, "{bad}");
    expect_problem(
        api.post("/v1/groups/g/members", json!({"topics": ["nope"]})),
        404,
        "topic_not_found",
    )
    .await;
    expect_problem(
        api.post("/v1/groups/a..b%20c/members", json!({"topics": ["t"]})),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        api.c
            .post(format!("{}/v1/groups/g/members", api.url))
            .header("content-type", "application/json")
            .body("{"),
        400,
        "invalid_json",
    )
    .await;
    expect_problem(
        api.c
            .post(format!("{}/v1/groups/g/members", api.url))
            .header("content-type", "text/plain")
            .body("{}"),
        415,
        "unsupported_media_type",
    )
    .await;

    // Poll limits: past a limit is 400, not clamped.
    for q in [
        "limit=0",
        "limit=1001",
        "wait_ms=30001",
        "limit=x",
        "auto_commit=maybe",
    ] {
        expect_problem(
            api.get(&format!("/v1/groups/g/records?member_id={m}&{q}")),
            400,
            "invalid_request",
        )
        .await;
    }
    expect_problem(api.get("/v1/groups/g/records"), 400, "invalid_request").await;
    let p = api.poll("g", &m, "limit=1000&wait_ms=0").await;
    assert_eq!(polled(&p).len(), 2);

    // Unknown group / member.
    expect_problem(api.get("/v1/groups/none"), 404, "group_not_found").await;
    expect_problem(api.get("/v1/groups/a%20b"), 404, "group_not_found").await;
    expect_problem(api.delete("/v1/groups/none"), 404, "group_not_found").await;
    expect_problem(
        api.get(&format!("/v1/groups/none/records?member_id={m}")),
        404,
        "group_not_found",
    )
    .await;
    expect_problem(
        api.get("/v1/groups/g/records?member_id=m-nobody"),
        404,
        "member_not_found",
    )
    .await;
    expect_problem(
        api.post("/v1/groups/g/members/m-nobody/heartbeat", json!({})),
        404,
        "member_not_found",
    )
    .await;
    expect_problem(
        api.delete("/v1/groups/g/members/m-nobody"),
        404,
        "member_not_found",
    )
    .await;
    expect_problem(
        api.delete(&format!("/v1/groups/none/members/{m}")),
        404,
        "group_not_found",
    )
    .await;

    // Commit.
    let commit = |body: Value| api.post("/v1/groups/g/offsets", body);
    expect_problem(
        commit(json!({"member_id": m, "generation": 1, "offsets": []})),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        commit(json!({"member_id": m, "generation": 1,
                      "offsets": [{"topic": "t", "partition": 0, "offset": 3}]})),
        400,
        "invalid_offset",
    )
    .await;
    expect_problem(
        commit(json!({"member_id": m, "generation": 1,
                      "offsets": [{"topic": "t", "partition": 0, "offset": -1}]})),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        commit(json!({"member_id": "m-nobody", "generation": 1,
                      "offsets": [{"topic": "t", "partition": 0, "offset": 1}]})),
        404,
        "member_not_found",
    )
    .await;
    expect_problem(
        commit(json!({"member_id": m, "generation": 1,
                      "offsets": [{"topic": "other", "partition": 0, "offset": 0}]})),
        409,
        "not_assigned",
    )
    .await;
    expect_problem(
        api.post(
            "/v1/groups/none/offsets",
            json!({"member_id": m, "generation": 1,
                   "offsets": [{"topic": "t", "partition": 0, "offset": 1}]}),
        ),
        404,
        "group_not_found",
    )
    .await;

    // Reset.
    let reset = |body: Value| api.post("/v1/groups/g/reset", body);
    expect_problem(reset(json!({"topic": "t"})), 400, "invalid_request").await;
    expect_problem(
        reset(json!({"topic": "t", "to": "earliest", "timestamp_ms": 0})),
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        reset(json!({"topic": "t", "to": "x"})),
        400,
        "invalid_offset",
    )
    .await;
    expect_problem(
        reset(json!({"topic": "t", "to": "99"})),
        400,
        "invalid_offset",
    )
    .await;
    expect_problem(
        reset(json!({"topic": "nope", "to": "0"})),
        404,
        "topic_not_found",
    )
    .await;
    expect_problem(
        reset(json!({"topic": "t", "partition": 9, "to": "0"})),
        404,
        "partition_not_found",
    )
    .await;
    expect_problem(
        api.post("/v1/groups/none/reset", json!({"topic": "t", "to": "0"})),
        404,
        "group_not_found",
    )
    .await;
    // Nothing above changed the group.
    let d = api.describe("g").await;
    assert_eq!(d["generation"], 1);
    assert!(partition_row(&d, "t", 0)["committed_offset"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_member_gets_matching_records_and_passes_the_others() {
    let gw = Gateway::start(memory(), GatewayConfig::default()).await;
    let api = Api::new(&gw);
    api.topic("t", 1).await;
    let records: Vec<Value> = (0..10)
        .map(|i| json!({"value": format!("v{i}"), "headers": {"type": if i % 3 == 0 { "a" } else { "b" }}}))
        .collect();
    api.ok(
        api.post("/v1/topics/t/records", json!({ "records": records })),
        200,
    )
    .await;
    let m = id(&api
        .join("f", json!({"topics": ["t"], "filter": "type = 'a'"}))
        .await);
    let p = api.poll("f", &m, "auto_commit=true").await;
    let got: Vec<(u64, String)> = polled(&p).into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        got,
        [
            (0, "v0".to_string()),
            (3, "v3".into()),
            (6, "v6".into()),
            (9, "v9".into())
        ]
    );
    // Dropped records advance the committed offset too.
    let d = api.describe("f").await;
    assert_eq!(partition_row(&d, "t", 0)["committed_offset"], 10);
    assert_eq!(partition_row(&d, "t", 0)["lag"], 0);
    // Only dropped records arrive: the poll answers empty, and the position passes them.
    api.produce("t", 0, "untyped", 3).await;
    assert!(polled(&api.poll("f", &m, "auto_commit=true").await).is_empty());
    let d = api.describe("f").await;
    assert_eq!(partition_row(&d, "t", 0)["committed_offset"], 13);
}
