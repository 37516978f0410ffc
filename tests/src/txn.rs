//! A check-back server for transaction tests: answers `check_url` POSTs per transaction id.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Per transaction id, what to answer: `commit`, `rollback`, `unknown` (the default) or
/// `error` (a 500); counts the calls per id.
#[derive(Clone, Default)]
pub struct CheckServer {
    pub answers: Arc<Mutex<HashMap<String, &'static str>>>,
    pub calls: Arc<Mutex<HashMap<String, u32>>>,
}

impl CheckServer {
    pub fn answer(&self, id: &str, a: &'static str) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), a);
    }

    pub fn calls(&self, id: &str) -> u32 {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

/// Serve `s` on a free loopback port; the check URL and the server task.
pub async fn check_server(s: CheckServer) -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new().route(
        "/check",
        post(move |Json(body): Json<Value>| {
            let s = s.clone();
            async move {
                let id = body["transaction_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                *s.calls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(id.clone())
                    .or_default() += 1;
                let a = s
                    .answers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .copied();
                match a {
                    Some("error") => Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                    Some(a) => Ok(Json(json!({ "status": a }))),
                    None => Ok(Json(json!({"status": "unknown"}))),
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the check server");
    let url = format!("http://{}/check", l.local_addr().expect("local addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, task)
}
