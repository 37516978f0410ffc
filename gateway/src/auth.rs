//! Bearer-token authentication and per-topic authorisation.
//!
//! A token carries grants: a scope (`produce`, `consume` or `admin`; `admin` implies the other
//! two) on a topic pattern (`*`, a prefix such as `orders*`, or an exact name). Every request to a
//! `/v1/topics…` route needs `Authorization: Bearer <token>`; the table in [`need`] says which
//! scope on which topic each route needs:
//!
//! | route | needs |
//! |---|---|
//! | `POST /v1/topics/{topic}/records` | `produce` on the topic |
//! | `GET …/partitions/{p}/records` (JSON, long-poll, event stream), `GET …/partitions/{p}/offsets` | `consume` on the topic |
//! | `POST /v1/topics` (name from the body), `PATCH` / `DELETE /v1/topics/{topic}` | `admin` on the topic |
//! | `GET /v1/topics/{topic}` | any scope on the topic |
//! | `GET /v1/topics` | any valid token; the list holds only the topics the token has some scope on |
//! | `POST /v1/producers` | `produce` on some topic (the producer then writes only where the token may) |
//! | `POST /v1/transactions`, `…/{id}/commit`, `…/{id}/rollback`, `GET /v1/transactions` and `…/{id}` | `produce` on some topic (staging, `POST /v1/topics/{topic}/records?transaction=`, needs `produce` on its topic) |
//! | `POST /v1/groups/{group}/members` | `consume` on every topic in the body |
//! | heartbeat, leave, `GET /v1/groups/{group}/records`, `POST …/offsets`, `GET /v1/groups/{group}` | `consume` on every topic of the group |
//! | `DELETE /v1/groups/{group}`, `POST /v1/groups/{group}/reset` | `admin` on every topic of the group (reset: and on the topic reset) |
//! | `GET /v1/groups` | any valid token; the list holds only the groups whose topics the token may all consume |
//! | `POST /v1/queues/{queue}/receive`, `…/ack`, `…/nack`, `…/extend`, `GET /v1/queues/{queue}`, `GET …/records/{p}/{o}` | `consume` on the queue name |
//! | `PUT` / `DELETE /v1/queues/{queue}`, `POST …/redrive` | `admin` on the queue name |
//! | `GET /v1/queues` | any valid token; the list holds only the queues the token has some scope on |
//! | `/`, `/console/{file}` (the web console), `/healthz`, `/readyz`, `/metrics`, `/v1/openapi.json` | nothing |
//! | any route missing from the table | `admin` on `*` (closed by default) |
//!
//! No token or an unknown one is 401 `unauthorized` (with `WWW-Authenticate: Bearer`); a known
//! token without the grant is 403 `forbidden`. Only SHA-256 digests of the tokens are kept in
//! memory and compared in constant time; tokens are never logged and the `Debug` output of
//! [`AuthConfig`] redacts them. Logs name the caller by its configured `name` instead.
//!
//! Configuration, from a JSON file (`--auth-file` / `SLUICE_AUTH_FILE`):
//!
//! ```json
//! {"tokens": [
//!   {"name": "orders-app", "token": "s3cr3t-1", "grants": [
//!     {"scopes": ["produce", "consume"], "topics": ["orders*"]}]},
//!   {"name": "ops", "sha256": "<hex SHA-256 of the token>", "grants": [
//!     {"scopes": ["admin"], "topics": ["*"]}]}
//! ]}
//! ```
//!
//! or the compact form of `SLUICE_TOKENS`: `;`-separated entries `TOKEN=SCOPES:PATTERNS`, both
//! lists comma-separated; repeating a token adds grants, e.g.
//! `t1=produce,consume:orders*;t2=admin:*;t1=consume:audit`.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, BodyLimit};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::fmt;
use std::sync::Arc;

/// What a grant allows. `Admin` implies the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Produce,
    Consume,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "produce" => Some(Scope::Produce),
            "consume" => Some(Scope::Consume),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Produce => "produce",
            Scope::Consume => "consume",
            Scope::Admin => "admin",
        }
    }

    /// Whether holding `self` allows what `needed` allows.
    pub fn covers(self, needed: Scope) -> bool {
        self == needed || self == Scope::Admin
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which topics a grant applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicPattern {
    /// `*`: every topic.
    Any,
    /// `orders*`: names starting with `orders`.
    Prefix(String),
    /// `orders`: that topic only.
    Exact(String),
}

impl TopicPattern {
    pub fn parse(s: &str) -> Result<Self, AuthConfigError> {
        let s = s.trim();
        let bad = |why: &str| AuthConfigError(format!("topic pattern {s:?}: {why}"));
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s == "*" {
            return Ok(TopicPattern::Any);
        }
        let (stem, prefix) = match s.strip_suffix('*') {
            Some(stem) => (stem, true),
            None => (s, false),
        };
        if stem.contains('*') {
            return Err(bad("`*` may only end a pattern"));
        }
        if !stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(bad("topic names use only A-Z a-z 0-9 . _ -"));
        }
        Ok(if prefix {
            TopicPattern::Prefix(stem.to_string())
        } else {
            TopicPattern::Exact(stem.to_string())
        })
    }

    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicPattern::Any => true,
            TopicPattern::Prefix(p) => topic.starts_with(p.as_str()),
            TopicPattern::Exact(t) => topic == t,
        }
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicPattern::Any => f.write_str("*"),
            TopicPattern::Prefix(p) => write!(f, "{p}*"),
            TopicPattern::Exact(t) => f.write_str(t),
        }
    }
}

/// One scope on one topic pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub scope: Scope,
    pub topics: TopicPattern,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scope, self.topics)
    }
}

/// The authenticated caller of a request: the token's name and grants (never the token). The
/// auth middleware puts it in the request's extensions.
#[derive(Clone, Debug)]
pub struct Caller(Arc<CallerInner>);

#[derive(Debug)]
struct CallerInner {
    name: String,
    grants: Vec<Grant>,
}

impl Caller {
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn grants(&self) -> &[Grant] {
        &self.0.grants
    }

    /// Whether the caller has `scope` (or `admin`) on `topic`.
    pub fn may(&self, scope: Scope, topic: &str) -> bool {
        self.grants()
            .iter()
            .any(|g| g.scope.covers(scope) && g.topics.matches(topic))
    }

    /// Whether the caller has any scope on `topic`.
    pub fn may_see(&self, topic: &str) -> bool {
        self.grants().iter().any(|g| g.topics.matches(topic))
    }

    /// `scope` on every topic of `topics`, else 403 `forbidden` naming the first one missing.
    pub fn require<'a>(
        &self,
        scope: Scope,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> ApiResult<()> {
        match topics.into_iter().find(|t| !self.may(scope, t)) {
            None => Ok(()),
            Some(t) => Err(forbidden(self, format!("`{scope}` on topic {t:?}"))),
        }
    }

    /// Whether the caller has `scope` on every topic (a grant on `*`).
    fn may_everywhere(&self, scope: Scope) -> bool {
        self.grants()
            .iter()
            .any(|g| g.scope.covers(scope) && g.topics == TopicPattern::Any)
    }
}

/// An invalid auth configuration. Its text never contains a token.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthConfigError(String);

type Digest = [u8; 32];

fn sha256(bytes: &[u8]) -> Digest {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Constant-time equality of two digests.
fn same(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn from_hex(s: &str) -> Option<Digest> {
    let s = s.trim().as_bytes();
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// RFC 6750 `b64token`: what can follow `Bearer ` in a header.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

struct Token {
    digest: Digest,
    caller: Caller,
}

/// The tokens the gateway accepts. `None` in [`crate::GatewayConfig::auth`] means open.
#[derive(Default)]
pub struct AuthConfig {
    tokens: Vec<Token>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Entry<'a>(&'a Caller);
        impl fmt::Debug for Entry<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let grants: Vec<String> = self.0.grants().iter().map(|g| g.to_string()).collect();
                f.debug_struct("Token")
                    .field("name", &self.0.name())
                    .field("token", &"<redacted>")
                    .field("grants", &grants)
                    .finish()
            }
        }
        f.debug_struct("AuthConfig")
            .field(
                "tokens",
                &self
                    .tokens
                    .iter()
                    .map(|t| Entry(&t.caller))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    tokens: Vec<FileToken>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToken {
    #[serde(default)]
    name: Option<String>,
    /// Kept as a raw value so no parse error can quote it.
    #[serde(default)]
    token: Option<serde_json::Value>,
    #[serde(default)]
    sha256: Option<serde_json::Value>,
    grants: Vec<FileGrant>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGrant {
    scopes: Vec<String>,
    topics: Vec<String>,
}

fn grants_of(scopes: &[&str], topics: &[&str], what: &str) -> Result<Vec<Grant>, AuthConfigError> {
    if scopes.is_empty() || topics.is_empty() {
        return Err(AuthConfigError(format!(
            "{what}: a grant needs at least one scope and one topic pattern"
        )));
    }
    let mut out = Vec::new();
    for s in scopes {
        let scope = Scope::parse(s).ok_or_else(|| {
            AuthConfigError(format!(
                "{what}: unknown scope {s:?} (use produce, consume or admin)"
            ))
        })?;
        for t in topics {
            let topics =
                TopicPattern::parse(t).map_err(|e| AuthConfigError(format!("{what}: {e}")))?;
            out.push(Grant { scope, topics });
        }
    }
    Ok(out)
}

impl AuthConfig {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Add a token (or grants to a token already there).
    fn add(&mut self, digest: Digest, name: String, grants: Vec<Grant>) {
        if let Some(t) = self.tokens.iter_mut().find(|t| same(&t.digest, &digest)) {
            let mut all = t.caller.grants().to_vec();
            all.extend(grants);
            let name = t.caller.name().to_string();
            t.caller = Caller(Arc::new(CallerInner { name, grants: all }));
        } else {
            self.tokens.push(Token {
                digest,
                caller: Caller(Arc::new(CallerInner { name, grants })),
            });
        }
    }

    /// Add a token with its grants: for tests and embedding.
    pub fn with_token(mut self, token: &str, name: &str, grants: Vec<Grant>) -> Self {
        self.add(sha256(token.as_bytes()), name.to_string(), grants);
        self
    }

    /// Parse the JSON file format (see the module documentation). `origin` names the source in
    /// error messages.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, AuthConfigError> {
        // serde_json's messages never quote the raw `token` values (kept as `Value`s).
        let file: FileConfig =
            serde_json::from_str(text).map_err(|e| AuthConfigError(format!("{origin}: {e}")))?;
        let mut cfg = AuthConfig::default();
        for (i, t) in file.tokens.into_iter().enumerate() {
            let what = match &t.name {
                Some(n) => format!("{origin}: token {n:?}"),
                None => format!("{origin}: token #{}", i + 1),
            };
            let digest = match (t.token, t.sha256) {
                (Some(serde_json::Value::String(tok)), None) => {
                    if !is_b64token(&tok) {
                        return Err(AuthConfigError(format!(
                            "{what}: a bearer token is made of A-Z a-z 0-9 - . _ ~ + / \
                             (and trailing =)"
                        )));
                    }
                    sha256(tok.as_bytes())
                }
                (None, Some(serde_json::Value::String(hex))) => {
                    from_hex(&hex).ok_or_else(|| {
                        AuthConfigError(format!("{what}: sha256 must be 64 hex digits"))
                    })?
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Err(AuthConfigError(format!(
                        "{what}: token and sha256 must be strings"
                    )))
                }
                _ => {
                    return Err(AuthConfigError(format!(
                        "{what}: give exactly one of token and sha256"
                    )))
                }
            };
            if cfg.tokens.iter().any(|x| same(&x.digest, &digest)) {
                return Err(AuthConfigError(format!(
                    "{what}: the same token appears twice; merge its grants"
                )));
            }
            if t.grants.is_empty() {
                return Err(AuthConfigError(format!("{what}: no grants")));
            }
            let mut grants = Vec::new();
            for g in &t.grants {
                let scopes: Vec<&str> = g.scopes.iter().map(String::as_str).collect();
                let topics: Vec<&str> = g.topics.iter().map(String::as_str).collect();
                grants.extend(grants_of(&scopes, &topics, &what)?);
            }
            let name = t.name.unwrap_or_else(|| format!("token-{}", i + 1));
            cfg.add(digest, name, grants);
        }
        Ok(cfg)
    }

    /// Parse the compact form `TOKEN=SCOPES:PATTERNS;…` (see the module documentation).
    pub fn from_compact(spec: &str, origin: &str) -> Result<Self, AuthConfigError> {
        let mut cfg = AuthConfig::default();
        for (i, entry) in spec.split(';').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            // Error messages name the entry by position: the entry holds the token.
            let what = format!("{origin}: entry {}", i + 1);
            // A base64 token may end in `=`; the grants never hold one.
            let (token, grants) = entry.rsplit_once('=').ok_or_else(|| {
                AuthConfigError(format!("{what}: expected TOKEN=SCOPES:PATTERNS"))
            })?;
            let token = token.trim();
            if !is_b64token(token) {
                return Err(AuthConfigError(format!(
                    "{what}: a bearer token is made of A-Z a-z 0-9 - . _ ~ + / (and trailing =)"
                )));
            }
            let (scopes, topics) = grants.split_once(':').ok_or_else(|| {
                AuthConfigError(format!("{what}: expected TOKEN=SCOPES:PATTERNS"))
            })?;
            let list = |s: &'_ str| -> Vec<String> {
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let scopes = list(scopes);
            let topics = list(topics);
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            let grants = grants_of(&scopes, &topics, &what)?;
            cfg.add(
                sha256(token.as_bytes()),
                format!("{origin}#{}", i + 1),
                grants,
            );
        }
        Ok(cfg)
    }

    /// The configuration from an optional JSON file and an optional compact spec (tokens from
    /// both are accepted); `None` when neither is given (the gateway is open).
    pub fn load(
        file: Option<&std::path::Path>,
        compact: Option<&str>,
    ) -> Result<Option<Self>, AuthConfigError> {
        let mut cfg = match file {
            None => None,
            Some(path) => {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| AuthConfigError(format!("cannot read {origin}: {e}")))?;
                Some(Self::from_json(&text, &origin)?)
            }
        };
        if let Some(spec) = compact {
            let more = Self::from_compact(spec, "SLUICE_TOKENS")?;
            let all = cfg.get_or_insert_with(AuthConfig::default);
            for t in more.tokens {
                all.add(
                    t.digest,
                    t.caller.name().to_string(),
                    t.caller.grants().to_vec(),
                );
            }
        }
        match cfg {
            Some(c) if c.is_empty() => Err(AuthConfigError(
                "the auth configuration holds no tokens: nobody could use the gateway".into(),
            )),
            other => Ok(other),
        }
    }

    /// The caller presenting the request's bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> ApiResult<Caller> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(ApiError::Unauthorized {
                detail: "this gateway needs `Authorization: Bearer <token>`".into(),
                invalid_token: false,
            });
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized {
                detail: "the Authorization header is not `Bearer <token>`".into(),
                invalid_token: true,
            })?;
        let digest = sha256(token.as_bytes());
        // Look at every token, so the time taken does not depend on which one matched.
        let mut found = None;
        for t in &self.tokens {
            if same(&t.digest, &digest) {
                found = Some(&t.caller);
            }
        }
        found.cloned().ok_or_else(|| ApiError::Unauthorized {
            detail: "the bearer token is not valid".into(),
            invalid_token: true,
        })
    }
}

/// Where a route's topic comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicFrom {
    /// The `{topic}` path parameter.
    Path,
    /// The `name` field of the JSON body (topic creation).
    Body,
}

/// What a route needs from the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: operational endpoints.
    Open,
    /// Any valid token.
    AnyToken,
    /// Any scope on the topic.
    AnyScope(TopicFrom),
    /// This scope (or `admin`) on the topic.
    Scope(Scope, TopicFrom),
    /// A consumer-group route: any valid token here; the handler checks this scope on each
    /// topic of the group (see [`Caller::require`]).
    Group(Scope),
    /// This scope (or `admin`) on at least one topic pattern.
    ScopeSomewhere(Scope),
    /// A route this table does not know: `admin` on `*`.
    Unlisted,
}

/// The permission table: what `method` on the route template `route` needs.
pub fn need(method: &Method, route: &str) -> Need {
    use Need::*;
    let read = *method == Method::GET || *method == Method::HEAD;
    match route {
        "/" | "/console/{file}" | "/healthz" | "/readyz" | "/metrics" | "/v1/openapi.json" => Open,
        "/v1/topics" if read => AnyToken,
        "/v1/topics" if *method == Method::POST => Scope(self::Scope::Admin, TopicFrom::Body),
        "/v1/topics/{topic}" if read => AnyScope(TopicFrom::Path),
        "/v1/topics/{topic}" if *method == Method::PATCH || *method == Method::DELETE => {
            Scope(self::Scope::Admin, TopicFrom::Path)
        }
        "/v1/producers" if *method == Method::POST => ScopeSomewhere(self::Scope::Produce),
        "/v1/transactions" | "/v1/transactions/{id}/commit" | "/v1/transactions/{id}/rollback"
            if *method == Method::POST =>
        {
            ScopeSomewhere(self::Scope::Produce)
        }
        "/v1/transactions" | "/v1/transactions/{id}" if read => {
            ScopeSomewhere(self::Scope::Produce)
        }
        "/v1/topics/{topic}/records" if *method == Method::POST => {
            Scope(self::Scope::Produce, TopicFrom::Path)
        }
        "/v1/topics/{topic}/delayed" if read => Scope(self::Scope::Produce, TopicFrom::Path),
        "/v1/topics/{topic}/delayed/{delayed_id}" if *method == Method::DELETE => {
            Scope(self::Scope::Produce, TopicFrom::Path)
        }
        "/v1/topics/{topic}/partitions/{partition}/records"
        | "/v1/topics/{topic}/partitions/{partition}/offsets"
            if read =>
        {
            Scope(self::Scope::Consume, TopicFrom::Path)
        }
        "/v1/groups" if read => Group(self::Scope::Consume),
        "/v1/groups/{group}" if read => Group(self::Scope::Consume),
        "/v1/groups/{group}" if *method == Method::DELETE => Group(self::Scope::Admin),
        "/v1/groups/{group}/reset" if *method == Method::POST => Group(self::Scope::Admin),
        "/v1/groups/{group}/members" | "/v1/groups/{group}/offsets" if *method == Method::POST => {
            Group(self::Scope::Consume)
        }
        "/v1/groups/{group}/members/{member}/heartbeat" if *method == Method::POST => {
            Group(self::Scope::Consume)
        }
        "/v1/groups/{group}/members/{member}" if *method == Method::DELETE => {
            Group(self::Scope::Consume)
        }
        "/v1/groups/{group}/records" if read => Group(self::Scope::Consume),
        "/v1/queues" if read => AnyToken,
        "/v1/queues/{queue}" if *method == Method::PUT || *method == Method::DELETE => {
            Scope(self::Scope::Admin, TopicFrom::Path)
        }
        "/v1/queues/{queue}/redrive" => Scope(self::Scope::Admin, TopicFrom::Path),
        "/v1/queues/{queue}" | "/v1/queues/{queue}/records/{partition}/{offset}" if read => {
            Scope(self::Scope::Consume, TopicFrom::Path)
        }
        "/v1/queues/{queue}/receive"
        | "/v1/queues/{queue}/ack"
        | "/v1/queues/{queue}/nack"
        | "/v1/queues/{queue}/extend" => Scope(self::Scope::Consume, TopicFrom::Path),
        _ => Unlisted,
    }
}

/// State of the auth middleware.
#[derive(Clone)]
pub struct AuthState {
    pub config: Arc<AuthConfig>,
    pub max_request_bytes: usize,
}

impl BodyLimit for AuthState {
    fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }
}

/// The topic a request acts on: `None` when it cannot be told (then only grants on `*` apply).
async fn topic_of(
    st: &AuthState,
    from: TopicFrom,
    req: Request,
) -> ApiResult<(Request, Option<String>)> {
    match from {
        TopicFrom::Path => {
            let (mut parts, body) = req.into_parts();
            let topic = RawPathParams::from_request_parts(&mut parts, &())
                .await
                .ok()
                .and_then(|p| {
                    p.iter()
                        .find(|(name, _)| *name == "topic" || *name == "queue")
                        .map(|(_, v)| v.to_string())
                });
            Ok((Request::from_parts(parts, body), topic))
        }
        TopicFrom::Body => {
            #[derive(serde::Deserialize)]
            struct Named {
                name: Option<serde_json::Value>,
            }
            let (parts, body) = req.into_parts();
            let Body(bytes) =
                Body::from_request(Request::from_parts(parts.clone(), body), st).await?;
            let topic = serde_json::from_slice::<Named>(&bytes)
                .ok()
                .and_then(|n| match n.name {
                    Some(serde_json::Value::String(s)) => Some(s),
                    _ => None,
                });
            Ok((
                Request::from_parts(parts, axum::body::Body::from(bytes)),
                topic,
            ))
        }
    }
}

fn forbidden(caller: &Caller, what: String) -> ApiError {
    tracing::debug!(caller = caller.name(), %what, "request forbidden");
    ApiError::Forbidden(format!("token {:?} lacks {what}", caller.name()))
}

async fn authorize(st: &AuthState, mut req: Request) -> ApiResult<Request> {
    let Some(route) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        // Unrouted requests (404) never reach a handler.
        return Ok(req);
    };
    let need = need(req.method(), &route);
    if need == Need::Open {
        return Ok(req);
    }
    let caller = st.config.authenticate(req.headers())?;
    match need {
        Need::Open | Need::AnyToken | Need::Group(_) => {}
        Need::ScopeSomewhere(scope) => {
            if !caller.grants().iter().any(|g| g.scope.covers(scope)) {
                return Err(forbidden(&caller, format!("`{scope}` on some topic")));
            }
        }
        Need::Unlisted => {
            if !caller.may_everywhere(Scope::Admin) {
                return Err(forbidden(
                    &caller,
                    format!("`admin` on `*`, which {} {route} needs", req.method()),
                ));
            }
        }
        Need::AnyScope(from) | Need::Scope(_, from) => {
            let (r, topic) = topic_of(st, from, req).await?;
            req = r;
            let allowed = match (need, topic.as_deref()) {
                (Need::Scope(scope, _), Some(t)) => caller.may(scope, t),
                (Need::Scope(scope, _), None) => caller.may_everywhere(scope),
                (_, Some(t)) => caller.may_see(t),
                (_, None) => caller
                    .grants()
                    .iter()
                    .any(|g| g.topics == TopicPattern::Any),
            };
            if !allowed {
                let on = topic.map_or_else(|| "this topic".to_string(), |t| format!("topic {t:?}"));
                let what = match need {
                    Need::Scope(scope, _) => format!("`{scope}` on {on}"),
                    _ => format!("any scope on {on}"),
                };
                return Err(forbidden(&caller, what));
            }
        }
    }
    req.extensions_mut().insert(caller);
    Ok(req)
}

/// Middleware: authenticate and authorise every routed request (see the module documentation).
pub async fn require(State(st): State<AuthState>, req: Request, next: Next) -> Response {
    match authorize(&st, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// OpenAPI: the `bearer` security scheme, and on every operation that needs a token its
/// security requirement and the 401 / 403 answers.
pub struct AuthDoc;

impl utoipa::Modify for AuthDoc {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                utoipa::openapi::security::SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "When the gateway is started with tokens (`--auth-file`, \
                             `SLUICE_TOKENS`): a token granted `produce`, `consume` or `admin` \
                             on topic patterns. Without tokens the gateway is open.",
                        ))
                        .build(),
                ),
            );
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
                (Method::HEAD, &mut item.head),
                (Method::OPTIONS, &mut item.options),
                (Method::TRACE, &mut item.trace),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                if need(&method, path) == Need::Open {
                    continue;
                }
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                let r = &mut op.responses.responses;
                r.entry("401".into()).or_insert_with(|| {
                    crate::api::openapi::problem_response(
                        "Missing or unknown bearer token (`unauthorized`); the answer carries \
                         `WWW-Authenticate: Bearer`",
                    )
                });
                r.entry("403".into()).or_insert_with(|| {
                    crate::api::openapi::problem_response(
                        "The token lacks the scope this operation needs on the topic (`forbidden`)",
                    )
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn compact_form_and_scopes() {
        let cfg = AuthConfig::from_compact(
            " pro-1=produce:orders* ; adm/+x===admin:* ;pro-1=consume:audit,logs",
            "SLUICE_TOKENS",
        )
        .unwrap();
        assert_eq!(cfg.len(), 2);
        let p = cfg.authenticate(&bearer("pro-1")).unwrap();
        assert!(p.may(Scope::Produce, "orders-eu"));
        assert!(!p.may(Scope::Produce, "payments"));
        assert!(!p.may(Scope::Consume, "orders-eu"));
        assert!(p.may(Scope::Consume, "audit") && p.may(Scope::Consume, "logs"));
        assert!(!p.may(Scope::Admin, "audit"));
        assert!(p.may_see("orders") && !p.may_see("payments"));
        let a = cfg.authenticate(&bearer("adm/+x==")).unwrap();
        for s in [Scope::Produce, Scope::Consume, Scope::Admin] {
            assert!(a.may(s, "anything"));
        }
        assert!(cfg.authenticate(&bearer("pro-2")).is_err());
        assert!(cfg.authenticate(&HeaderMap::new()).is_err());
        for bad in [
            "t=write:*",
            "t=produce",
            "t=produce:a*b",
            "=produce:*",
            "t t=admin:*",
        ] {
            let e = AuthConfig::from_compact(bad, "X").unwrap_err().to_string();
            assert!(!e.contains("t t"), "{e}");
        }
    }

    #[test]
    fn json_form_debug_redacts() {
        let hex = sluice_core::format::hex::of(&sha256(b"hashed-secret"));
        let text = format!(
            r#"{{"tokens": [
                {{"name": "app", "token": "plain-secret-123", "grants": [
                    {{"scopes": ["produce", "consume"], "topics": ["orders*", "audit"]}}]}},
                {{"sha256": "{hex}", "grants": [{{"scopes": ["admin"], "topics": ["*"]}}]}}
            ]}}"#
        );
        let cfg = AuthConfig::from_json(&text, "auth.json").unwrap();
        let c = cfg.authenticate(&bearer("plain-secret-123")).unwrap();
        assert_eq!(c.name(), "app");
        assert!(c.may(Scope::Consume, "audit") && !c.may(Scope::Consume, "audit2"));
        let h = cfg.authenticate(&bearer("hashed-secret")).unwrap();
        assert_eq!(h.name(), "token-2");
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("plain-secret-123") && !dbg.contains(&hex),
            "{dbg}"
        );
        assert!(dbg.contains("app") && dbg.contains("<redacted>"), "{dbg}");
        // Errors never quote the token.
        let bad = r#"{"tokens": [{"token": "sec ret", "grants": [{"scopes": ["admin"], "topics": ["*"]}]}]}"#;
        let e = AuthConfig::from_json(bad, "f").unwrap_err().to_string();
        assert!(!e.contains("sec ret"), "{e}");
        let bad =
            r#"{"tokens": [{"token": "x", "grants": [{"scopes": ["admn"], "topics": ["*"]}]}]}"#;
        assert!(AuthConfig::from_json(bad, "f").is_err());
        assert!(AuthConfig::load(None, None).unwrap().is_none());
        assert!(AuthConfig::load(None, Some(" ; ")).is_err());
    }

    #[test]
    fn the_internal_commit_hand_over_needs_admin_everywhere() {
        // Gateway to gateway, not in the OpenAPI document: the rule for unlisted routes.
        assert_eq!(need(&Method::POST, "/internal/v1/commit"), Need::Unlisted);
    }

    #[test]
    fn every_documented_operation_has_a_rule() {
        use utoipa::OpenApi;
        let doc = crate::ApiDoc::openapi();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ] {
                if op.is_some() {
                    assert_ne!(need(&method, path), Need::Unlisted, "{method} {path}");
                }
            }
        }
    }
}
