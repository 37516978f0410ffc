//! A request id per HTTP request: the client's `X-Request-Id` when it is sane (1 to 128
//! characters of `A-Z a-z 0-9 - _ . : / + = @`), else a fresh ULID. It is echoed in the
//! answer's `X-Request-Id`, carried by a `request` span (so every log line of the request has
//! `request_id`, in the JSON log format as `span.request_id`), and put into problem documents
//! (`request_id`) made while the request is handled.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest `X-Request-Id` taken from a client.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The id of the request being handled by the current task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// Whether a client's `X-Request-Id` is taken as is.
pub fn is_sane(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

/// The request's id: the client's when sane, else a new ULID.
pub fn choose(given: Option<&HeaderValue>) -> String {
    match given.and_then(|v| v.to_str().ok()) {
        Some(id) if is_sane(id) => id.to_string(),
        _ => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            sluice_core::ids::new_ulid(now_ms).to_string()
        }
    }
}

/// Middleware (outermost): pick the id, run the request in its span and task-local scope,
/// echo the id, log the answer (debug; 5xx at warn).
pub async fn layer(mut req: Request, next: Next) -> Response {
    let id = choose(req.headers().get(&HEADER));
    let value = HeaderValue::from_str(&id).expect("ids are visible ASCII");
    req.headers_mut().insert(HEADER, value.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = %route,
    );
    let started = Instant::now();
    let mut resp = REQUEST_ID
        .scope(
            Arc::from(id.as_str()),
            next.run(req).instrument(span.clone()),
        )
        .await;
    let status = resp.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms, "request failed");
        } else {
            tracing::debug!(status, elapsed_ms, "request done");
        }
    });
    resp.headers_mut().insert(HEADER, value);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        for ok in [
            "a",
            "req-123",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "x.y:z/w+v=u@t_s",
        ] {
            assert!(is_sane(ok), "{ok}");
            assert_eq!(choose(Some(&HeaderValue::from_static(ok))), ok);
        }
        let long = "a".repeat(MAX_LEN + 1);
        for bad in [
            "",
            "has space",
            "quote\"d",
            "tab\t",
            "ünïcode",
            long.as_str(),
        ] {
            assert!(!is_sane(bad), "{bad}");
        }
        let generated = choose(Some(&HeaderValue::from_static("no spaces please")));
        assert_eq!(generated.len(), 26, "a ULID: {generated}");
        assert!(is_sane(&generated));
        assert_ne!(choose(None), choose(None));
    }

    #[tokio::test]
    async fn the_id_is_current_inside_the_scope_only() {
        assert_eq!(current(), None);
        let inside = REQUEST_ID
            .scope(Arc::from("abc"), async { current() })
            .await;
        assert_eq!(inside.as_deref(), Some("abc"));
    }
}
