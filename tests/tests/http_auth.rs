//! Bearer-token auth end to end: real `sluice_gateway::serve` instances on `127.0.0.1:0` over the
//! in-memory store. Every operation of the OpenAPI document is walked without a token, with a
//! token of the wrong scope and with the right one, so a new route cannot be left out.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{json, Value};
use sluice_core::store::{self, StoreOptions};
use sluice_gateway::{AuthConfig, GatewayConfig};
use sluice_tests::http::Gateway;
use std::sync::{Arc, Mutex, OnceLock};

/// Tokens of the tests and what they may do.
const ROOT: &str = "root-0f3c9a7e5b";
const RW_ORDERS: &str = "rw-orders-6d1e2b";
const PRODUCE_ORDERS: &str = "produce-orders-9a8b7c";
const CONSUME_ORDERS: &str = "consume-orders-4f5e6d";
const ADMIN_ORDERS: &str = "admin-orders-1a2b3c";
const PRODUCE_PAYMENTS: &str = "produce-payments-7e7e7e";
/// Never configured.
const UNKNOWN: &str = "unknown-token-5c5c5c";

const ALL_TOKENS: [&str; 7] = [
    ROOT,
    RW_ORDERS,
    PRODUCE_ORDERS,
    CONSUME_ORDERS,
    ADMIN_ORDERS,
    PRODUCE_PAYMENTS,
    UNKNOWN,
];

fn auth_config() -> AuthConfig {
    AuthConfig::from_compact(
        &format!(
            "{ROOT}=admin:*;{RW_ORDERS}=produce,consume:orders*;{PRODUCE_ORDERS}=produce:orders*;\
             {CONSUME_ORDERS}=consume:orders*;{ADMIN_ORDERS}=admin:orders*;\
             {PRODUCE_PAYMENTS}=produce:payments"
        ),
        "test",
    )
    .unwrap()
}

async fn gateway(auth: AuthConfig) -> Gateway {
    captured_logs();
    let store = store::open("memory://", &StoreOptions::default()).unwrap();
    let cfg = GatewayConfig {
        auth: Some(Arc::new(auth)),
        ..Default::default()
    };
    Gateway::start(store, cfg).await
}

/// `Authorization` header for a token (`None`: no header).
fn auth(token: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(t) = token {
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    h
}

async fn call(
    c: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<&Value>,
    headers: HeaderMap,
) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let mut r = c.request(m, url).headers(headers);
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await.unwrap()
}

async fn post(c: &reqwest::Client, url: String, body: Value, token: &str) -> reqwest::Response {
    call(c, "post", &url, Some(&body), auth(Some(token))).await
}

/// Asserts a problem document with this status and code.
async fn problem(r: reqwest::Response, status: u16, code: &str, what: &str) -> HeaderMap {
    let got = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{what}: {text}");
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(ct.starts_with("application/problem+json"), "{what}: {ct}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], code, "{what}: {v}");
    for t in ALL_TOKENS {
        assert!(
            !text.contains(t),
            "{what}: the answer quotes a token: {text}"
        );
    }
    headers
}

async fn status(r: reqwest::Response) -> (u16, String) {
    let s = r.status().as_u16();
    (s, r.text().await.unwrap_or_default())
}

/// What an operation needs, as this test expects it (independent of the gateway's table).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Nothing,
    AnyToken,
    AnyScopeOnTopic,
    Produce,
    /// `produce` on some topic, not necessarily `orders`.
    ProduceSomewhere,
    Consume,
    Admin,
}

/// One operation of the document: what it needs, and a request that exercises it on topic
/// `orders` (created beforehand).
struct Case {
    needs: Needs,
    url: String,
    body: Option<Value>,
}

fn case(method: &str, path: &str) -> Case {
    let (needs, url, body) = match (method, path) {
        ("get", "/" | "/healthz" | "/readyz" | "/metrics" | "/v1/openapi.json") => {
            (Needs::Nothing, path.to_string(), None)
        }
        ("get", "/console/{file}") => (Needs::Nothing, "/console/app.js".into(), None),
        ("get", "/v1/topics") => (Needs::AnyToken, path.to_string(), None),
        ("post", "/v1/topics") => (
            Needs::Admin,
            path.to_string(),
            Some(json!({"name": "orders-new", "partitions": 2})),
        ),
        ("get", "/v1/topics/{topic}") => (Needs::AnyScopeOnTopic, "/v1/topics/orders".into(), None),
        ("patch", "/v1/topics/{topic}") => (
            Needs::Admin,
            "/v1/topics/orders".into(),
            Some(json!({"retention_ms": 86_400_000})),
        ),
        ("delete", "/v1/topics/{topic}") => {
            (Needs::Admin, "/v1/topics/orders-scratch".into(), None)
        }
        ("post", "/v1/producers") => (Needs::ProduceSomewhere, path.to_string(), None),
        ("post", "/v1/topics/{topic}/records") => (
            Needs::Produce,
            "/v1/topics/orders/records".into(),
            Some(json!({"records": [{"key": "k", "value": "v"}]})),
        ),
        ("get", "/v1/topics/{topic}/partitions/{partition}/records") => (
            Needs::Consume,
            "/v1/topics/orders/partitions/0/records?offset=earliest".into(),
            None,
        ),
        ("get", "/v1/topics/{topic}/partitions/{partition}/offsets") => (
            Needs::Consume,
            "/v1/topics/orders/partitions/0/offsets?timestamp_ms=0".into(),
            None,
        ),
        ("get", "/v1/groups") => (Needs::AnyToken, path.to_string(), None),
        ("post", "/v1/groups/{group}/members") => (
            Needs::Consume,
            "/v1/groups/g-new/members".into(),
            Some(json!({"topics": ["orders"]})),
        ),
        ("post", "/v1/groups/{group}/members/{member}/heartbeat") => (
            Needs::Consume,
            format!("/v1/groups/g1/members/{}/heartbeat", members().0),
            None,
        ),
        ("delete", "/v1/groups/{group}/members/{member}") => (
            Needs::Consume,
            format!("/v1/groups/g1/members/{}", members().1),
            None,
        ),
        ("get", "/v1/groups/{group}/records") => (
            Needs::Consume,
            format!("/v1/groups/g1/records?member_id={}", members().0),
            None,
        ),
        ("post", "/v1/groups/{group}/offsets") => (
            Needs::Consume,
            "/v1/groups/g-commit/offsets".into(),
            Some(json!({"member_id": members().2, "generation": 1,
                        "offsets": [{"topic": "orders", "partition": 0, "offset": 0}]})),
        ),
        ("get", "/v1/groups/{group}") => (Needs::Consume, "/v1/groups/g1".into(), None),
        ("delete", "/v1/groups/{group}") => (Needs::Admin, "/v1/groups/g-scratch".into(), None),
        ("post", "/v1/groups/{group}/reset") => (
            Needs::Admin,
            "/v1/groups/g1/reset".into(),
            Some(json!({"topic": "orders", "to": "earliest"})),
        ),
        // Delayed records: produce on the topic.
        ("get", "/v1/topics/{topic}/delayed") => {
            (Needs::Produce, "/v1/topics/orders/delayed".into(), None)
        }
        ("delete", "/v1/topics/{topic}/delayed/{delayed_id}") => (
            Needs::Produce,
            format!(
                "/v1/topics/orders/delayed/{}",
                DELAYED.get().expect("setup ran")
            ),
            None,
        ),
        // Queues: the scopes apply to the queue's name (queues `orders`, `orders-scratch`).
        ("get", "/v1/queues") => (Needs::AnyToken, path.to_string(), None),
        ("put", "/v1/queues/{queue}") => (
            Needs::Admin,
            "/v1/queues/orders".into(),
            Some(json!({"topic": "orders"})),
        ),
        ("get", "/v1/queues/{queue}") => (Needs::Consume, "/v1/queues/orders".into(), None),
        ("delete", "/v1/queues/{queue}") => {
            (Needs::Admin, "/v1/queues/orders-scratch".into(), None)
        }
        ("post", "/v1/queues/{queue}/receive") => (
            Needs::Consume,
            "/v1/queues/orders/receive".into(),
            Some(json!({"max": 1})),
        ),
        ("post", "/v1/queues/{queue}/ack" | "/v1/queues/{queue}/nack") => (
            Needs::Consume,
            path.replace("{queue}", "orders"),
            Some(json!({"receipts": []})),
        ),
        ("post", "/v1/queues/{queue}/extend") => (
            Needs::Consume,
            "/v1/queues/orders/extend".into(),
            Some(json!({"receipts": [], "visibility_timeout_ms": 1000})),
        ),
        ("get", "/v1/queues/{queue}/records/{partition}/{offset}") => {
            (Needs::Consume, "/v1/queues/orders/records/0/0".into(), None)
        }
        ("post", "/v1/queues/{queue}/redrive") => (
            Needs::Admin,
            "/v1/queues/orders/redrive".into(),
            Some(json!({"dry_run": true})),
        ),
        ("post", "/v1/transactions") => (
            Needs::ProduceSomewhere,
            path.to_string(),
            Some(json!({"timeout_ms": 60000})),
        ),
        ("post", "/v1/transactions/{id}/commit") => (
            Needs::ProduceSomewhere,
            format!("/v1/transactions/{}/commit", txns().0),
            None,
        ),
        ("post", "/v1/transactions/{id}/rollback") => (
            Needs::ProduceSomewhere,
            format!("/v1/transactions/{}/rollback", txns().1),
            None,
        ),
        ("get", "/v1/transactions") => (Needs::ProduceSomewhere, path.to_string(), None),
        ("get", "/v1/transactions/{id}") => (
            Needs::ProduceSomewhere,
            format!("/v1/transactions/{}", txns().0),
            None,
        ),
        _ => panic!(
            "{} {path} is in the OpenAPI document but tests/tests/http_auth.rs has no auth case \
             for it: add one (and a rule in gateway/src/auth.rs `need`)",
            method.to_uppercase()
        ),
    };
    Case { needs, url, body }
}

/// Members joined by [`setup`]: two of group `g1`, the only one of `g-commit`.
static MEMBERS: OnceLock<(String, String, String)> = OnceLock::new();
/// The id of a delayed record produced in `setup`.
static DELAYED: OnceLock<String> = OnceLock::new();

fn members() -> &'static (String, String, String) {
    MEMBERS.get().expect("setup joined the members")
}

/// Transactions begun by [`setup_txns`]: one to commit, one to roll back.
static TXNS: OnceLock<(String, String)> = OnceLock::new();

fn txns() -> &'static (String, String) {
    TXNS.get().expect("setup began the transactions")
}

async fn setup_txns(url: &str, c: &reqwest::Client) {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = post(c, format!("{url}/v1/transactions"), json!({}), ROOT).await;
        assert_eq!(r.status().as_u16(), 201, "begin");
        let v: Value = r.json().await.unwrap();
        ids.push(v["transaction_id"].as_str().unwrap().to_string());
    }
    let _ = TXNS.set((ids[0].clone(), ids[1].clone()));
}

/// Tokens that must be refused (403) and one that must be let through, for a need on `orders`.
fn tokens_for(needs: Needs) -> (Vec<&'static str>, &'static str) {
    match needs {
        Needs::Nothing | Needs::AnyToken => (vec![], PRODUCE_PAYMENTS),
        Needs::AnyScopeOnTopic => (vec![PRODUCE_PAYMENTS], CONSUME_ORDERS),
        Needs::Produce => (vec![CONSUME_ORDERS, PRODUCE_PAYMENTS], PRODUCE_ORDERS),
        Needs::ProduceSomewhere => (vec![CONSUME_ORDERS], PRODUCE_PAYMENTS),
        Needs::Consume => (vec![PRODUCE_ORDERS], CONSUME_ORDERS),
        // produce + consume do not make admin.
        Needs::Admin => (vec![RW_ORDERS, PRODUCE_PAYMENTS], ADMIN_ORDERS),
    }
}

async fn setup(url: &str, c: &reqwest::Client) {
    for (name, partitions) in [("orders", 2), ("orders-scratch", 1), ("payments", 1)] {
        let r = call(
            c,
            "post",
            &format!("{url}/v1/topics"),
            Some(&json!({"name": name, "partitions": partitions})),
            auth(Some(ROOT)),
        )
        .await;
        assert_eq!(r.status().as_u16(), 201, "create {name}");
    }
    let r = call(
        c,
        "post",
        &format!("{url}/v1/topics/orders/records"),
        Some(&json!({"records": [{"value": "first", "partition": 0}]})),
        auth(Some(ROOT)),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200, "produce");
    // A delayed record, a day ahead, for the cancel case.
    let r = call(
        c,
        "post",
        &format!("{url}/v1/topics/orders/records"),
        Some(&json!({"records": [{"value": "later", "delay_ms": 86_400_000}]})),
        auth(Some(ROOT)),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200, "produce delayed");
    let v: serde_json::Value = r.json().await.unwrap();
    let id = v["offsets"][0]["delayed_id"].as_str().unwrap().to_string();
    let _ = DELAYED.set(id);
    for queue in ["orders", "orders-scratch"] {
        let r = call(
            c,
            "put",
            &format!("{url}/v1/queues/{queue}"),
            Some(&json!({"topic": "orders"})),
            auth(Some(ROOT)),
        )
        .await;
        assert_eq!(r.status().as_u16(), 201, "create queue {queue}");
    }
}

/// Groups for the group routes' cases (one gateway per test process uses them).
async fn setup_groups(url: &str, c: &reqwest::Client) {
    let mut ids = Vec::new();
    for group in ["g1", "g1", "g-commit", "g-scratch"] {
        let r = post(
            c,
            format!("{url}/v1/groups/{group}/members"),
            json!({"topics": ["orders"]}),
            ROOT,
        )
        .await;
        assert_eq!(r.status().as_u16(), 201, "join {group}");
        let v: Value = r.json().await.unwrap();
        ids.push(v["member_id"].as_str().unwrap().to_string());
    }
    let _ = MEMBERS.set((ids[0].clone(), ids[1].clone(), ids[2].clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_the_right_scope() {
    let gw = gateway(auth_config()).await;
    let url = &gw.url;
    let c = reqwest::Client::new();
    setup(url, &c).await;
    setup_groups(url, &c).await;
    setup_txns(url, &c).await;

    // The document itself is open.
    let r = c
        .get(format!("{url}/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let doc: Value = r.json().await.unwrap();
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http", "{bearer}");
    assert_eq!(
        bearer["scheme"].as_str().map(str::to_lowercase).as_deref(),
        Some("bearer")
    );

    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ![
                "get", "put", "post", "patch", "delete", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                continue;
            }
            walked += 1;
            let case = case(method, path);
            let what = format!("{} {}", method.to_uppercase(), case.url);
            let target = format!("{url}{}", case.url);
            let body = case.body.as_ref();
            let documented = |code: &str| op["responses"][code].is_object();

            if case.needs == Needs::Nothing {
                let (s, text) = status(call(&c, method, &target, body, auth(None)).await).await;
                assert!((200..300).contains(&s), "{what} is open: {s} {text}");
                assert!(op.get("security").is_none(), "{what} documents no security");
                continue;
            }
            assert!(
                op["security"][0]["bearer"].is_array(),
                "{what} documents its bearer security: {op}"
            );
            assert!(
                documented("401") && documented("403"),
                "{what} documents 401/403"
            );

            // No token, an unknown token, not a bearer token: 401 with a challenge.
            let mut basic = HeaderMap::new();
            basic.insert(
                AUTHORIZATION,
                HeaderValue::from_static("Basic dXNlcjpwYXNz"),
            );
            for (label, headers) in [
                ("no token", auth(None)),
                ("unknown token", auth(Some(UNKNOWN))),
                ("basic auth", basic),
            ] {
                let r = call(&c, method, &target, body, headers).await;
                let h = problem(r, 401, "unauthorized", &format!("{what} with {label}")).await;
                let challenge = h.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
                assert!(
                    challenge.is_some_and(|v| v.starts_with("Bearer")),
                    "{what} with {label}: WWW-Authenticate {challenge:?}"
                );
            }

            let (wrong, right) = tokens_for(case.needs);
            for token in wrong {
                let r = call(&c, method, &target, body, auth(Some(token))).await;
                problem(r, 403, "forbidden", &format!("{what} with {token}")).await;
            }
            let (s, text) = status(call(&c, method, &target, body, auth(Some(right))).await).await;
            assert!(
                (200..300).contains(&s),
                "{what} with the right token {right}: {s} {text}"
            );
        }
    }
    assert!(walked >= 12, "only {walked} operations in the document");

    // Unknown paths stay 404 (no auth hint), under /console/ too.
    let r = c
        .get(format!("{url}/console/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = c
        .get(format!("{url}/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // The event stream is a read: consume, not produce.
    let sse = |token| {
        c.get(format!(
            "{url}/v1/topics/orders/partitions/0/records?offset=0"
        ))
        .header("accept", "text/event-stream")
        .headers(auth(token))
        .send()
    };
    problem(sse(None).await.unwrap(), 401, "unauthorized", "sse").await;
    problem(
        sse(Some(PRODUCE_ORDERS)).await.unwrap(),
        403,
        "forbidden",
        "sse",
    )
    .await;
    let r = sse(Some(CONSUME_ORDERS)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_only_token_on_a_prefix() {
    let gw = gateway(auth_config()).await;
    let url = &gw.url;
    let c = reqwest::Client::new();
    for name in ["orders-eu", "payments"] {
        let r = call(
            &c,
            "post",
            &format!("{url}/v1/topics"),
            Some(&json!({"name": name, "partitions": 1})),
            auth(Some(ROOT)),
        )
        .await;
        assert_eq!(r.status().as_u16(), 201);
    }
    let produce = |topic: &str| {
        post(
            &c,
            format!("{url}/v1/topics/{topic}/records"),
            json!({"records": [{"value": "hello"}]}),
            PRODUCE_ORDERS,
        )
    };
    let (s, text) = status(produce("orders-eu").await).await;
    assert_eq!(s, 200, "{text}");
    problem(
        produce("payments").await,
        403,
        "forbidden",
        "produce to payments",
    )
    .await;
    // A topic that does not exist yet but matches: the permission holds, the topic does not.
    let (s, _) = status(produce("orders-us").await).await;
    assert_eq!(s, 404);
    // Produce does not imply consume.
    let r = call(
        &c,
        "get",
        &format!("{url}/v1/topics/orders-eu/partitions/0/records"),
        None,
        auth(Some(PRODUCE_ORDERS)),
    )
    .await;
    problem(r, 403, "forbidden", "read with a produce token").await;
    // A percent-encoded path is matched decoded, as the handler sees it.
    let (s, text) = status(
        call(
            &c,
            "get",
            &format!("{url}/v1/topics/orders%2Deu/partitions/0/records"),
            None,
            auth(Some(CONSUME_ORDERS)),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{text}");
    assert!(text.contains("hello"), "{text}");
    // A path whose topic cannot be decoded only matches grants on `*`.
    let r = call(
        &c,
        "post",
        &format!("{url}/v1/topics/orders%FF/records"),
        Some(&json!({"records": [{"value": "x"}]})),
        auth(Some(PRODUCE_ORDERS)),
    )
    .await;
    problem(r, 403, "forbidden", "undecodable topic").await;

    // The list holds only the topics the token has some scope on.
    let list = |token| {
        c.get(format!("{url}/v1/topics"))
            .headers(auth(Some(token)))
            .send()
    };
    let names = |v: Value| -> Vec<String> {
        v["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let v: Value = list(PRODUCE_ORDERS).await.unwrap().json().await.unwrap();
    assert_eq!(names(v), vec!["orders-eu"]);
    let v: Value = list(ROOT).await.unwrap().json().await.unwrap();
    assert_eq!(names(v), vec!["orders-eu", "payments"]);
    let r = call(
        &c,
        "get",
        &format!("{url}/v1/topics/payments"),
        None,
        auth(Some(PRODUCE_ORDERS)),
    )
    .await;
    problem(r, 403, "forbidden", "describe payments").await;

    // Creating a topic needs admin on its name, read from the body (which still reaches the
    // handler whole).
    let create = |token, name: &str| {
        post(
            &c,
            format!("{url}/v1/topics"),
            json!({"name": name, "partitions": 3}),
            token,
        )
    };
    problem(
        create(PRODUCE_ORDERS, "orders-x").await,
        403,
        "forbidden",
        "create",
    )
    .await;
    problem(
        create(ADMIN_ORDERS, "payments-x").await,
        403,
        "forbidden",
        "create",
    )
    .await;
    let r = create(ADMIN_ORDERS, "orders-x").await;
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["partitions"], 3, "{v}");
    // A body without a name: only an admin of every topic gets to the handler's 400.
    let r = call(
        &c,
        "post",
        &format!("{url}/v1/topics"),
        Some(&json!({"partitions": 1})),
        auth(Some(ADMIN_ORDERS)),
    )
    .await;
    problem(r, 403, "forbidden", "create without a name").await;
    let r = call(
        &c,
        "post",
        &format!("{url}/v1/topics"),
        Some(&json!({"partitions": 1})),
        auth(Some(ROOT)),
    )
    .await;
    problem(r, 400, "invalid_request", "create without a name").await;
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Every event of this test binary, at every level, from every test: one global subscriber,
/// installed before the first gateway starts (a thread-scoped one misses events when other
/// tests run at the same time).
fn captured_logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_never_logged_or_printed() {
    let logs = captured_logs();

    let cfg = auth_config();
    let printed = format!("{cfg:?} {cfg:#?}");
    let gateway_cfg = GatewayConfig {
        auth: Some(Arc::new(auth_config())),
        ..Default::default()
    };
    let printed = format!("{printed} {gateway_cfg:?}");
    for t in ALL_TOKENS {
        assert!(
            !printed.contains(t),
            "Debug output holds a token: {printed}"
        );
    }
    assert!(printed.contains("<redacted>"), "{printed}");

    let gw = gateway(cfg).await;
    let url = &gw.url;
    let c = reqwest::Client::new();
    setup(url, &c).await;
    for token in ALL_TOKENS {
        for (method, path, body) in [
            (
                "post",
                "/v1/topics/orders/records",
                Some(json!({"records": [{"value": "v"}]})),
            ),
            ("get", "/v1/topics/orders/partitions/0/records", None),
            ("get", "/v1/topics/payments", None),
            ("delete", "/v1/topics/payments", None),
            ("get", "/v1/topics", None),
        ] {
            let r = call(
                &c,
                method,
                &format!("{url}{path}"),
                body.as_ref(),
                auth(Some(token)),
            )
            .await;
            let _ = r.text().await;
        }
        // Malformed variants of the header too.
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer  {token} ")).unwrap(),
        );
        let _ = c
            .get(format!("{url}/v1/topics"))
            .headers(h)
            .send()
            .await
            .unwrap()
            .text()
            .await;
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Token {token}")).unwrap(),
        );
        let _ = c
            .get(format!("{url}/v1/topics"))
            .headers(h)
            .send()
            .await
            .unwrap()
            .text()
            .await;
    }
    drop(gw);
    tokio::task::yield_now().await;

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    // The capture works: the refusals were logged (by code and by the caller's name).
    assert!(text.contains("unauthorized"), "nothing captured:\n{text}");
    assert!(
        text.contains("forbidden") && text.contains("test#"),
        "{text}"
    );
    for t in ALL_TOKENS {
        assert!(!text.contains(t), "the log holds token {t}:\n{text}");
    }
}
