//! The HTTP gateway (API Gateway HTTP API style): APIs own routes, JWT authorizers, API keys
//! and stages; requests to a route become synchronous invocations with the payload format 2.0
//! event.
//!
//! This module holds the request and response bodies of `/api/v1/apis/…` and their validation;
//! the route table, the event mapping and the checks run in the engine (`gateway`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::EpochMillis;

/// The API `holactl lambda route create` uses without `--api`, created on demand.
pub const DEFAULT_API: &str = "default";
/// The stage that always serves the current routes (auto-deployed).
pub const DEFAULT_STAGE: &str = "$default";
/// Where the gateway is served on the platform's own port: `/gw/{api}/…`.
pub const GATEWAY_PREFIX: &str = "/gw";
/// The header an API key is sent in (as API Gateway's REST APIs do).
pub const API_KEY_HEADER: &str = "x-api-key";
/// Longest API, authorizer, stage or key name.
pub const MAX_GATEWAY_NAME_LEN: usize = 64;
/// Longest route path.
pub const MAX_ROUTE_PATH_LEN: usize = 512;
/// Most routes per API (API Gateway's default quota is 300).
pub const MAX_ROUTES_PER_API: usize = 300;
/// Most audiences of one authorizer.
pub const MAX_AUDIENCES: usize = 20;
/// Most entries of one CORS list.
pub const MAX_CORS_ENTRIES: usize = 100;
/// Largest CORS max age, seconds (API Gateway's limit: 86400).
pub const MAX_CORS_MAX_AGE_S: u32 = 86_400;
/// Largest throttling rate, requests per second.
pub const MAX_THROTTLE_RATE: f64 = 1_000_000.0;
/// Largest throttling burst.
pub const MAX_THROTTLE_BURST: u32 = 1_000_000;
/// Largest total size of a request's header names and values, bytes (API Gateway: 10240).
pub const MAX_REQUEST_HEADER_BYTES: usize = 10_240;

/// The methods a route may name.
pub const ROUTE_METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// Checks an API, authorizer, stage or key name: `[A-Za-z0-9_-]{1,64}`.
pub fn validate_gateway_name(field: &str, name: &str) -> Result<(), ValidationError> {
    crate::function::validate_name(field, name, MAX_GATEWAY_NAME_LEN)
}

/// Checks a stage name: a gateway name that is not `$default` (always present) and not a
/// word the gateway uses itself.
pub fn validate_stage_name(name: &str) -> Result<(), ValidationError> {
    validate_gateway_name("stage", name)
}

/// One segment of a route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Matches exactly this text (already percent-decoded).
    Static(String),
    /// `{name}`: one whole segment.
    Param(String),
    /// `{name+}`: the rest of the path (one segment or more); only last.
    Greedy(String),
}

/// Parses and checks a route path: `/`, `/users/{id}`, `/files/{proxy+}`.
pub fn parse_route_path(path: &str) -> Result<Vec<Segment>, ValidationError> {
    let bad = |m: String| ValidationError::new("path", m);
    if !path.starts_with('/') {
        return Err(bad(format!("{path:?} must start with /")));
    }
    if path.len() > MAX_ROUTE_PATH_LEN {
        return Err(bad(format!("longer than {MAX_ROUTE_PATH_LEN} bytes")));
    }
    if path == "/" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    let parts: Vec<&str> = path[1..].split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(bad(format!(
                "{path:?} has an empty segment (// or a trailing /)"
            )));
        }
        if *part == "." || *part == ".." {
            return Err(bad(format!("{path:?} has a . or .. segment")));
        }
        if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if name.is_empty()
                || name.len() > 64
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(bad(format!(
                    "path parameter {part:?} must be {{name}} or {{name+}} with name [A-Za-z0-9_]"
                )));
            }
            if !names.insert(name.to_owned()) {
                return Err(bad(format!("path parameter {name:?} appears twice")));
            }
            if greedy {
                if i + 1 != parts.len() {
                    return Err(bad(format!(
                        "the greedy parameter {part:?} must be the last segment"
                    )));
                }
                out.push(Segment::Greedy(name.to_owned()));
            } else {
                out.push(Segment::Param(name.to_owned()));
            }
            continue;
        }
        // RFC 3986 pchar without percent-encoding: what a route can name literally.
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b))
        {
            return Err(bad(format!(
                "segment {part:?} may hold letters, digits and -._~!$&'()*+,;=:@ only"
            )));
        }
        out.push(Segment::Static((*part).to_owned()));
    }
    Ok(out)
}

/// Checks and normalizes a route method (upper case).
pub fn parse_route_method(method: &str) -> Result<String, ValidationError> {
    let upper = method.to_ascii_uppercase();
    if ROUTE_METHODS.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(ValidationError::new(
            "method",
            format!("{method:?} is not one of {}", ROUTE_METHODS.join(", ")),
        ))
    }
}

/// The route key (`GET /users/{id}`) with parameter names removed (`GET /users/{}`): two
/// routes with the same shape would match the same requests, so they conflict.
pub fn route_shape(method: &str, segments: &[Segment]) -> String {
    let mut shape = format!("{method} ");
    if segments.is_empty() {
        shape.push('/');
    }
    for s in segments {
        shape.push('/');
        match s {
            Segment::Static(t) => shape.push_str(t),
            Segment::Param(_) => shape.push_str("{}"),
            Segment::Greedy(_) => shape.push_str("{+}"),
        }
    }
    shape
}

/// Request rate limits (a token bucket): `rate` requests per second on average, up to `burst`
/// at once.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Steady-state requests per second.
    pub rate: f64,
    /// Bucket size: requests allowed at once.
    pub burst: u32,
}

impl Throttle {
    /// Checks the bounds.
    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        if !self.rate.is_finite() || self.rate <= 0.0 || self.rate > MAX_THROTTLE_RATE {
            return Err(ValidationError::new(
                format!("{field}.rate"),
                format!("must be more than 0 and at most {MAX_THROTTLE_RATE} requests per second"),
            ));
        }
        if self.burst == 0 || self.burst > MAX_THROTTLE_BURST {
            return Err(ValidationError::new(
                format!("{field}.burst"),
                format!("must be 1 to {MAX_THROTTLE_BURST}"),
            ));
        }
        Ok(())
    }
}

/// CORS of an API, as API Gateway's `cors_configuration` (the seed's Terraform module).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed (`https://app.example.com`), or `*`.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Methods allowed, or `*`.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Request headers allowed, or `*`.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a preflight answer may be cached, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    /// Whether credentials (cookies, Authorization) are allowed.
    #[serde(default)]
    pub allow_credentials: bool,
}

impl CorsConfig {
    /// Checks the lists and normalizes them (methods upper case, headers lower case).
    pub fn normalize(mut self) -> Result<CorsConfig, ValidationError> {
        let lists = [
            ("cors.allow_origins", &self.allow_origins),
            ("cors.allow_methods", &self.allow_methods),
            ("cors.allow_headers", &self.allow_headers),
            ("cors.expose_headers", &self.expose_headers),
        ];
        for (field, list) in lists {
            if list.len() > MAX_CORS_ENTRIES {
                return Err(ValidationError::new(
                    field,
                    format!("at most {MAX_CORS_ENTRIES} entries"),
                ));
            }
            for v in list {
                if v.is_empty()
                    || v.len() > 256
                    || !v.bytes().all(|b| b.is_ascii_graphic())
                    || v.contains(',')
                {
                    return Err(ValidationError::new(
                        field,
                        format!("{v:?} is not a single printable token (no spaces or commas)"),
                    ));
                }
            }
        }
        for origin in &self.allow_origins {
            if origin != "*"
                && !(origin.starts_with("http://") || origin.starts_with("https://"))
                && origin != "null"
            {
                return Err(ValidationError::new(
                    "cors.allow_origins",
                    format!("{origin:?} must be *, or scheme://host[:port]"),
                ));
            }
            if origin != "*" && origin.matches('/').count() > 2 {
                return Err(ValidationError::new(
                    "cors.allow_origins",
                    format!("{origin:?} must not have a path"),
                ));
            }
        }
        for m in &mut self.allow_methods {
            *m = m.to_ascii_uppercase();
            if m != "*" && !ROUTE_METHODS[..7].contains(&m.as_str()) {
                return Err(ValidationError::new(
                    "cors.allow_methods",
                    format!("{m:?} is not an HTTP method or *"),
                ));
            }
        }
        for h in self
            .allow_headers
            .iter_mut()
            .chain(self.expose_headers.iter_mut())
        {
            *h = h.to_ascii_lowercase();
        }
        if self.allow_credentials && self.allow_origins.iter().any(|o| o == "*") {
            // Browsers refuse `*` with credentials; API Gateway refuses the configuration.
            return Err(ValidationError::new(
                "cors.allow_credentials",
                "cannot be true while allow_origins has *: list the origins",
            ));
        }
        if self.max_age.is_some_and(|a| a > MAX_CORS_MAX_AGE_S) {
            return Err(ValidationError::new(
                "cors.max_age",
                format!("at most {MAX_CORS_MAX_AGE_S} seconds"),
            ));
        }
        Ok(self)
    }
}

/// `POST /api/v1/apis`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiRequest {
    /// API name, unique; part of its URL.
    pub name: String,
    /// CORS, answered by the gateway itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
}

/// `PUT /api/v1/apis/{api}/cors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCorsRequest {
    /// The new configuration; `null` turns CORS off.
    #[serde(default)]
    pub cors: Option<CorsConfig>,
}

/// An API as returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiView {
    /// Name.
    pub name: String,
    /// Random id, the event's `requestContext.apiId`.
    pub id: String,
    /// `/gw/{name}`, relative to the server's endpoint.
    pub path: String,
    /// Base URL on the separate gateway listener, when the server has one for this API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// CORS configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
    /// Number of routes.
    pub routes: usize,
    /// Named stages (besides `$default`).
    pub stages: Vec<String>,
    /// Creation time.
    pub created_at: EpochMillis,
    /// Last change.
    pub updated_at: EpochMillis,
}

/// `GET /api/v1/apis`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiList {
    /// Every API, by name.
    pub apis: Vec<ApiView>,
}

/// How a route authenticates callers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    /// Anyone may call it.
    #[default]
    None,
    /// An active API key of the API in `x-api-key`.
    ApiKey,
    /// A JWT checked by the route's authorizer.
    Jwt,
}

impl RouteAuth {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteAuth::None => "none",
            RouteAuth::ApiKey => "api_key",
            RouteAuth::Jwt => "jwt",
        }
    }
}

impl std::fmt::Display for RouteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /api/v1/apis/{api}/routes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRouteRequest {
    /// `GET`, `POST`, … or `ANY`.
    pub method: String,
    /// `/hola`, `/users/{id}`, `/files/{proxy+}`.
    pub path: String,
    /// Function invoked.
    pub function: String,
    /// Version or alias invoked (default `$LATEST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// How callers authenticate.
    #[serde(default)]
    pub auth: RouteAuth,
    /// The JWT authorizer (with `auth: jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<String>,
    /// With `auth: jwt`: the token must carry one of these scopes (`scope`/`scp` claim).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Rate limit of the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
}

/// A route as returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    /// Stable id (derived from the route's shape).
    pub id: String,
    /// API it belongs to.
    pub api: String,
    /// `POST /hola`.
    pub route_key: String,
    /// Function invoked.
    pub function: String,
    /// Version or alias invoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// How callers authenticate.
    pub auth: RouteAuth,
    /// JWT authorizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<String>,
    /// Scopes required (any of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// The route's path under `$default` on the server's port: `/gw/{api}/hola`.
    pub path: String,
    /// The route's full URL on the separate gateway listener, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Creation time.
    pub created_at: EpochMillis,
}

/// `GET /api/v1/apis/{api}/routes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteList {
    /// Routes, by route key.
    pub routes: Vec<RouteView>,
}

/// JWT signature algorithms an authorizer can be pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys from a JWKS.
    RS256,
    /// ECDSA P-256 with SHA-256, keys from a JWKS.
    ES256,
}

impl JwtAlgorithm {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
        }
    }
}

impl std::fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /api/v1/apis/{api}/authorizers`: a JWT authorizer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAuthorizerRequest {
    /// Name, unique within the API.
    pub name: String,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// Tokens must name one of these in `aud` (or `client_id`), as API Gateway checks.
    pub audiences: Vec<String>,
    /// The only algorithm accepted.
    pub algorithm: JwtAlgorithm,
    /// HS256: the shared secret (stored encrypted, never returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs256_secret: Option<String>,
    /// RS256/ES256: a JWKS file on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// RS256/ES256: an `http://` JWKS URL, fetched and cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Header holding the token (default `authorization`; a `Bearer ` prefix is dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_header: Option<String>,
}

impl std::fmt::Debug for CreateAuthorizerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateAuthorizerRequest")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithm", &self.algorithm)
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "****"))
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field("identity_header", &self.identity_header)
            .finish()
    }
}

impl CreateAuthorizerRequest {
    /// Checks the fields and that exactly the key source the algorithm needs is given.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_gateway_name("name", &self.name)?;
        if self.issuer.is_empty() || self.issuer.len() > 1024 {
            return Err(ValidationError::new("issuer", "must be 1 to 1024 bytes"));
        }
        if self.audiences.is_empty() || self.audiences.len() > MAX_AUDIENCES {
            return Err(ValidationError::new(
                "audiences",
                format!("must list 1 to {MAX_AUDIENCES} audiences"),
            ));
        }
        if self
            .audiences
            .iter()
            .any(|a| a.is_empty() || a.len() > 1024)
        {
            return Err(ValidationError::new(
                "audiences",
                "must be 1 to 1024 bytes each",
            ));
        }
        if let Some(h) = &self.identity_header {
            if h.is_empty()
                || h.len() > 64
                || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(ValidationError::new(
                    "identity_header",
                    "must be a header name",
                ));
            }
        }
        let sources = [
            self.hs256_secret.is_some(),
            self.jwks_file.is_some(),
            self.jwks_url.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(ValidationError::new(
                "hs256_secret",
                "give exactly one of hs256_secret, jwks_file or jwks_url",
            ));
        }
        match self.algorithm {
            JwtAlgorithm::HS256 => match &self.hs256_secret {
                Some(s) if s.len() >= 32 && s.len() <= 4096 => {}
                Some(_) => {
                    // RFC 7518 §3.2: an HS256 key at least as long as the hash (32 bytes).
                    return Err(ValidationError::new(
                        "hs256_secret",
                        "must be 32 to 4096 bytes",
                    ));
                }
                None => {
                    return Err(ValidationError::new(
                        "hs256_secret",
                        "HS256 needs hs256_secret",
                    ))
                }
            },
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                if self.hs256_secret.is_some() {
                    return Err(ValidationError::new(
                        "hs256_secret",
                        format!(
                            "{} takes its keys from jwks_file or jwks_url",
                            self.algorithm
                        ),
                    ));
                }
                if let Some(url) = &self.jwks_url {
                    if !url.starts_with("http://") || url.len() > 2048 {
                        return Err(ValidationError::new(
                            "jwks_url",
                            "must be an http:// URL (https needs a TLS proxy or jwks_file)",
                        ));
                    }
                }
                if let Some(file) = &self.jwks_file {
                    if !file.starts_with('/') {
                        return Err(ValidationError::new(
                            "jwks_file",
                            "must be an absolute path on the server",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// An authorizer as returned: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizerView {
    /// Name.
    pub name: String,
    /// API it belongs to.
    pub api: String,
    /// Required `iss`.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// The only algorithm accepted.
    pub algorithm: JwtAlgorithm,
    /// JWKS file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// JWKS URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Header holding the token.
    pub identity_header: String,
    /// Creation time.
    pub created_at: EpochMillis,
}

/// `GET /api/v1/apis/{api}/authorizers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizerList {
    /// Authorizers, by name.
    pub authorizers: Vec<AuthorizerView>,
}

/// `POST /api/v1/apis/{api}/keys`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A name for people.
    pub name: String,
    /// Rate limit of this key (on top of each route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
}

/// An API key as returned: never the key, only its id and a short prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyView {
    /// Random id.
    pub id: String,
    /// API it belongs to.
    pub api: String,
    /// Name.
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// Creation time.
    pub created_at: EpochMillis,
    /// When it was revoked; a revoked key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<EpochMillis>,
}

/// The answer of `POST /api/v1/apis/{api}/keys`: the key, shown this once.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    /// The key to send in `x-api-key`. Only its hash is stored.
    pub key: String,
    /// The key's record.
    #[serde(flatten)]
    pub view: ApiKeyView,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key", &"****")
            .field("view", &self.view)
            .finish()
    }
}

/// `GET /api/v1/apis/{api}/keys`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyList {
    /// Keys, newest first.
    pub keys: Vec<ApiKeyView>,
}

/// `POST /api/v1/apis/{api}/stages`: deploys the current routes and authorizers to a stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployStageRequest {
    /// Stage name (created if new, replaced otherwise).
    pub stage: String,
    /// What this deployment is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A stage as returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageView {
    /// Name.
    pub name: String,
    /// API it belongs to.
    pub api: String,
    /// `/gw/{api}/{stage}`, relative to the server's endpoint.
    pub path: String,
    /// Description of the last deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The route keys of the deployed snapshot.
    pub routes: Vec<String>,
    /// When it was last deployed.
    pub deployed_at: EpochMillis,
}

/// `GET /api/v1/apis/{api}/stages`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageList {
    /// Named stages, by name.
    pub stages: Vec<StageView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_route_paths() {
        assert_eq!(parse_route_path("/").unwrap(), vec![]);
        assert_eq!(
            parse_route_path("/users/{id}/files/{proxy+}").unwrap(),
            vec![
                Segment::Static("users".into()),
                Segment::Param("id".into()),
                Segment::Static("files".into()),
                Segment::Greedy("proxy".into()),
            ]
        );
        for bad in [
            "",
            "hola",
            "/a//b",
            "/a/",
            "/a/../b",
            "/./a",
            "/{proxy+}/x",
            "/{}",
            "/{a-b}",
            "/{id}/{id}",
            "/a b",
            "/%2e%2e",
            "/a?b",
            "/a#b",
        ] {
            assert!(parse_route_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_route_path(&format!("/{}", "a".repeat(600))).is_err());
    }

    #[test]
    fn shapes_ignore_parameter_names() {
        let a = parse_route_path("/users/{id}").unwrap();
        let b = parse_route_path("/users/{name}").unwrap();
        assert_eq!(route_shape("GET", &a), route_shape("GET", &b));
        assert_ne!(route_shape("GET", &a), route_shape("POST", &b));
        assert_eq!(route_shape("ANY", &[]), "ANY /");
    }

    #[test]
    fn methods_are_normalized() {
        assert_eq!(parse_route_method("post").unwrap(), "POST");
        assert_eq!(parse_route_method("ANY").unwrap(), "ANY");
        assert!(parse_route_method("TRACE").is_err());
        assert!(parse_route_method("").is_err());
    }

    #[test]
    fn cors_is_checked_and_normalized() {
        let cors = CorsConfig {
            allow_origins: vec!["https://app.example.com".into()],
            allow_methods: vec!["get".into(), "post".into()],
            allow_headers: vec!["Content-Type".into()],
            expose_headers: vec!["X-Request-Id".into()],
            max_age: Some(600),
            allow_credentials: true,
        }
        .normalize()
        .unwrap();
        assert_eq!(cors.allow_methods, ["GET", "POST"]);
        assert_eq!(cors.allow_headers, ["content-type"]);
        let star_with_credentials = CorsConfig {
            allow_origins: vec!["*".into()],
            allow_credentials: true,
            ..CorsConfig::default()
        };
        assert!(star_with_credentials.normalize().is_err());
        for bad in [
            "example.com",
            "https://a.com/path",
            "https://a.com, https://b.com",
        ] {
            let c = CorsConfig {
                allow_origins: vec![bad.into()],
                ..CorsConfig::default()
            };
            assert!(c.normalize().is_err(), "{bad:?} accepted");
        }
        let c = CorsConfig {
            max_age: Some(MAX_CORS_MAX_AGE_S + 1),
            ..CorsConfig::default()
        };
        assert!(c.normalize().is_err());
    }

    #[test]
    fn throttles_are_bounded() {
        assert!(Throttle {
            rate: 10.0,
            burst: 5
        }
        .validate("t")
        .is_ok());
        assert!(Throttle {
            rate: 0.0,
            burst: 5
        }
        .validate("t")
        .is_err());
        assert!(Throttle {
            rate: f64::NAN,
            burst: 5
        }
        .validate("t")
        .is_err());
        assert!(Throttle {
            rate: 1.0,
            burst: 0
        }
        .validate("t")
        .is_err());
    }

    #[test]
    fn authorizers_need_exactly_their_key_source() {
        let base = CreateAuthorizerRequest {
            name: "auth".into(),
            issuer: "https://issuer.example.com".into(),
            audiences: vec!["api".into()],
            algorithm: JwtAlgorithm::RS256,
            hs256_secret: None,
            jwks_file: Some("/etc/jwks.json".into()),
            jwks_url: None,
            identity_header: None,
        };
        assert!(base.validate().is_ok());
        let both = CreateAuthorizerRequest {
            jwks_url: Some("http://idp/jwks".into()),
            ..base.clone()
        };
        assert!(both.validate().is_err());
        let hs_short = CreateAuthorizerRequest {
            algorithm: JwtAlgorithm::HS256,
            hs256_secret: Some("short".into()),
            jwks_file: None,
            ..base.clone()
        };
        assert!(hs_short.validate().is_err());
        let rs_with_secret = CreateAuthorizerRequest {
            hs256_secret: Some("x".repeat(32)),
            jwks_file: None,
            ..base.clone()
        };
        assert!(rs_with_secret.validate().is_err());
        let https = CreateAuthorizerRequest {
            jwks_file: None,
            jwks_url: Some("https://idp/jwks".into()),
            ..base.clone()
        };
        assert!(https.validate().is_err());
        assert!(!format!(
            "{:?}",
            CreateAuthorizerRequest {
                algorithm: JwtAlgorithm::HS256,
                hs256_secret: Some("s".repeat(40)),
                jwks_file: None,
                ..base
            }
        )
        .contains("ssss"));
        // `alg: none` is no algorithm at all.
        assert!(serde_json::from_str::<JwtAlgorithm>("\"none\"").is_err());
    }
}
