//! Extractors whose rejections are [`ApiError`]s, so malformed paths, queries and bodies get a
//! problem document like every other error (axum's own rejections answer in plain text).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

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

/// Parse JSON; syntax errors are `invalid_json`, well-formed JSON of the wrong shape is
/// `invalid_request`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| json_error(e, None))
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

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::Invalid(e.body_text()))
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
