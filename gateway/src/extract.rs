//! Extractors whose rejections are [`ApiError`]s, so malformed paths, queries and bodies get a
//! problem document like every other error (axum's own rejections answer in plain text).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use serde::de::DeserializeOwned;
pub use sluice_api::json::{objects, JsonObject};

/// The media type of the body, lower-cased without parameters; `None` when absent.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// `application/json`, `*/*+json`, or no content type at all.
pub fn is_json(media: Option<&str>) -> bool {
    match media {
        None => true,
        Some(m) => m == "application/json" || m.ends_with("+json"),
    }
}

fn body_rejection(e: BytesRejection, max: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::RequestTooLarge { max }
    } else {
        ApiError::Invalid(format!(
            "could not read the request body: {}",
            e.body_text()
        ))
    }
}

/// The whole request body, bounded by the router's `DefaultBodyLimit`.
pub struct Body(pub Bytes);

/// State that knows the body limit, for the error message.
pub trait BodyLimit {
    fn max_request_bytes(&self) -> usize;
}

impl<S: Send + Sync + BodyLimit> FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let max = state.max_request_bytes();
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| body_rejection(e, max))
    }
}

/// A JSON body (`application/json` or no content type); other types are 415.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync + BodyLimit> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let media = media_type(req.headers());
        if !is_json(media.as_deref()) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected application/json, got {}",
                media.unwrap_or_default()
            )));
        }
        let Body(bytes) = Body::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parse a JSON object; syntax errors are `invalid_json`, well-formed JSON of the wrong shape
/// is `invalid_request`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice::<JsonObject<T>>(bytes)
        .map(|o| o.0)
        .map_err(|e| json_error(e, None))
}
/// A body that may be empty (or whitespace: the defaults) or JSON, which must then be sent as
/// JSON: 415 `unsupported_media_type` otherwise.
pub fn optional_json<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let media = media_type(headers);
    if !is_json(media.as_deref()) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "expected application/json, got {}",
            media.unwrap_or_default()
        )));
    }
    parse_json::<T>(body)
}

pub fn json_error(e: serde_json::Error, line: Option<usize>) -> ApiError {
    let at = match line {
        Some(l) => format!("line {l}: "),
        None => String::new(),
    };
    match e.classify() {
        serde_json::error::Category::Data => ApiError::Invalid(format!("{at}{e}")),
        _ => ApiError::InvalidJson(format!("{at}{e}")),
    }
}

/// Query string parameters; malformed ones are `invalid_request`.
pub struct ApiQuery<T>(pub T);

/// The query string of `uri` as a `T`, as [`ApiQuery`] reads it.
pub fn parse_query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::Invalid(e.body_text()))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(&parts.uri).map(ApiQuery)
    }
}

/// Path parameters; malformed ones (e.g. a partition that is not a number) are `invalid_request`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::Invalid(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::produce::{parse_records, Format};
    use sluice_api::{CreateTopic, PatchTopic};

    fn code(e: ApiError) -> &'static str {
        e.kind().code
    }

    #[test]
    fn bodies_and_records_are_json_objects() {
        let t: CreateTopic = parse_json(br#"{"name":"orders","partitions":3}"#).unwrap();
        assert_eq!((t.name.as_str(), t.partitions), ("orders", 3));
        // Serde would take these as the fields in order; the API does not.
        for body in [&br#"["orders", 3]"#[..], b"[]", b"null", b"3"] {
            let e = parse_json::<CreateTopic>(body).err().unwrap();
            assert_eq!(code(e), "invalid_request", "{body:?}");
        }
        let e = parse_json::<PatchTopic>(b"[null, null]").err().unwrap();
        assert_eq!(code(e), "invalid_request");
        assert_eq!(
            code(parse_json::<CreateTopic>(b"{").err().unwrap()),
            "invalid_json"
        );

        let ok = parse_records(Format::Json, br#"{"records":[{"value":"v"}]}"#).unwrap();
        assert_eq!(ok[0].value.as_deref(), Some("v"));
        let e = parse_records(Format::Json, br#"{"records":[["k",null,"v"]]}"#).unwrap_err();
        assert_eq!(code(e), "invalid_request");
        let e =
            parse_records(Format::NdJson, b"{\"value\":\"v\"}\n[\"k\",null,\"v\"]\n").unwrap_err();
        assert_eq!(code(e), "invalid_request");
        let e = parse_records(Format::NdJson, b"{\"value\":\"v\"}\n[1]").unwrap_err();
        assert!(e.to_string().starts_with("line 2: "), "{e}");
    }

    #[test]
    fn query_strings() {
        use crate::api::read::{start_of, Start};
        use sluice_api::ReadQuery;
        let q = |s: &str| parse_query::<ReadQuery>(&format!("/r?{s}").parse().unwrap());
        let start = |s: &str| start_of(&q(s).unwrap(), None);
        assert_eq!(start("").unwrap(), Start::Earliest);
        assert_eq!(start("offset=earliest").unwrap(), Start::Earliest);
        assert_eq!(start("offset=latest").unwrap(), Start::Latest);
        assert_eq!(start("offset=42").unwrap(), Start::Offset(42));
        assert_eq!(start("timestamp_ms=-5").unwrap(), Start::Timestamp(-5));
        assert_eq!(code(start("offset=x").unwrap_err()), "invalid_offset");
        assert_eq!(
            code(start("offset=1&timestamp_ms=1").unwrap_err()),
            "invalid_request"
        );
        assert_eq!(code(q("limit=-1").err().unwrap()), "invalid_request");
        assert_eq!(code(q("nope=1").err().unwrap()), "invalid_request");
        let resumed = start_of(&q("offset=latest").unwrap(), Some(9)).unwrap();
        assert_eq!(resumed, Start::Offset(10));
        let e = start_of(&q("").unwrap(), Some(u64::MAX)).unwrap_err();
        assert_eq!(code(e), "invalid_request");
    }
}
