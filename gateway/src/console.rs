//! The web console: plain HTML, CSS and JavaScript modules from `gateway/console/`, embedded in
//! the binary (no build step, no CDN: it works offline) and served at `/` and
//! `/console/{file}`. The console is a client of the public REST API like any other: it calls
//! only `/v1/…`, `/readyz` and `/metrics`, with the caller's bearer token when auth is on.
//!
//! Every answer carries an `ETag` (a digest of the file) with `Cache-Control: no-cache`: the
//! browser keeps its copy and revalidates it (`If-None-Match` → 304), so a new binary's console
//! is picked up at once without fingerprinted file names. A strict `Content-Security-Policy`
//! allows scripts, styles and connections to this origin only.

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiPath;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ctype:expr) => {
        Asset {
            name: $name,
            content_type: $ctype,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `gateway/console/` (a unit test checks the folder and this list agree).
pub static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("topics.js", JS),
    asset!("topic.js", JS),
    asset!("browser.js", JS),
    asset!("delayed.js", JS),
    asset!("groups.js", JS),
    asset!("queues.js", JS),
    asset!("transactions.js", JS),
    asset!("health.js", JS),
];

/// The file names `/console/{file}` serves, for the OpenAPI document.
pub fn names() -> Vec<&'static str> {
    ASSETS.iter().map(|a| a.name).collect()
}

/// Scripts, styles, images and API calls from this origin only; no inline code, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn lookup(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The strong entity tag of each asset (in [`ASSETS`] order), computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| ASSETS.iter().map(|a| etag_of(a.body)).collect())
}

/// `"` + the first 16 bytes of the SHA-256 of `body` in hex + `"`.
pub fn etag_of(body: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    format!("\"{}\"", sluice_core::format::hex::of(&d.as_ref()[..16]))
}

/// RFC 9110 §13.1.2: does `If-None-Match` (a list of tags, or `*`) match `etag`? Weak
/// comparison: `W/"x"` matches `"x"`.
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|t| {
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag.strip_prefix("W/").unwrap_or(etag)
    })
}

fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let i = ASSETS
        .iter()
        .position(|a| std::ptr::eq(a, asset))
        .unwrap_or_default();
    let etag = &etags()[i];
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| none_match(v, etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}

/// The web console.
#[utoipa::path(get, path = "/", tag = "operations",
    params(("If-None-Match" = Option<String>, Header, description = "Revalidate a cached copy")),
    responses(
        (status = 200, description = "The web console's page", body = String, content_type = "text/html"),
        (status = 304, description = "The cached copy is current"),
    ))]
pub async fn index(headers: HeaderMap) -> Response {
    match lookup("index.html") {
        Some(a) => serve(a, &headers),
        None => ApiError::NotFound("/".into()).into_response(),
    }
}

/// A script, style sheet or image of the web console.
#[utoipa::path(get, path = "/console/{file}", tag = "operations",
    params(
        ("file" = String, Path, description = "File name", example = "app.js"),
        ("If-None-Match" = Option<String>, Header, description = "Revalidate a cached copy"),
    ),
    responses(
        (status = 200, description = "The file",
            content(
                (String = "text/javascript"),
                (String = "text/css"),
                (String = "text/html"),
                (String = "image/svg+xml"),
            )),
        (status = 304, description = "The cached copy is current"),
        (status = 400, description = "Malformed path (`invalid_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file (`not_found`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn file(ApiPath(name): ApiPath<String>, headers: HeaderMap) -> ApiResult<Response> {
    lookup(&name)
        .map(|a| serve(a, &headers))
        .ok_or_else(|| ApiError::NotFound(format!("/console/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn console_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console")
    }

    #[test]
    fn every_file_of_the_folder_is_served_and_nothing_else() {
        let on_disk: BTreeSet<String> = std::fs::read_dir(console_dir())
            .expect("gateway/console")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        let served: BTreeSet<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        assert_eq!(on_disk, served);
    }

    /// Every `/console/x` the page names and every `./x.js` a module imports is embedded, so
    /// no reference can 404 in a browser.
    #[test]
    fn every_reference_resolves() {
        let mut refs = Vec::new();
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).expect("UTF-8 text");
            for (prefix, end) in [("/console/", '"'), ("from \"./", '"'), ("import(\"./", '"')] {
                let mut rest = text;
                while let Some(i) = rest.find(prefix) {
                    rest = &rest[i + prefix.len()..];
                    let name = &rest[..rest.find(end).unwrap_or(rest.len())];
                    refs.push((a.name, name.to_string()));
                }
            }
        }
        assert!(refs.len() >= 10, "{refs:?}");
        for (from, name) in refs {
            assert!(lookup(&name).is_some(), "{from} names {name}, not embedded");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        for a in ASSETS {
            let ext = a.name.rsplit('.').next().unwrap_or_default();
            let want = match ext {
                "html" => "text/html",
                "css" => "text/css",
                "js" => "text/javascript",
                "svg" => "image/svg+xml",
                other => panic!("{}: no content type for .{other}", a.name),
            };
            assert!(a.content_type.starts_with(want), "{}", a.name);
        }
    }

    #[test]
    fn etags_are_strong_and_distinct() {
        let tags = etags();
        let distinct: BTreeSet<&String> = tags.iter().collect();
        assert_eq!(distinct.len(), ASSETS.len());
        assert!(tags.iter().all(|t| t.len() == 34 && t.starts_with('"')));
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
    }

    #[test]
    fn if_none_match_rules() {
        let tag = "\"abc\"";
        assert!(none_match("\"abc\"", tag));
        assert!(none_match("W/\"abc\"", tag));
        assert!(none_match("\"x\", \"abc\"", tag));
        assert!(none_match("*", tag));
        assert!(!none_match("\"abcd\"", tag));
        assert!(!none_match("", tag));
        assert!(!none_match("abc", tag));
    }
}
