//! One gateway request, in two steps so the body is read only for a request that will run:
//! [`Engine::gateway_route`] (header limits → API → path → stage → CORS preflight → route →
//! auth → throttle) and [`Engine::gateway_invoke`] (event → invoke → response mapping).
//! A routed request whose body cannot be taken is answered by [`Engine::gateway_refuse`].
//!
//! Answers follow API Gateway's HTTP APIs: `{"message":"Not Found"}` (404),
//! `{"message":"Unauthorized"}` (401), `{"message":"Forbidden"}` (403),
//! `{"message":"Too Many Requests"}` (429 with `Retry-After`); a function error or a malformed
//! answer is 502 `{"message":"Internal Server Error"}`, a timeout 503
//! `{"message":"Service Unavailable"}`, a missing function 500.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use holactl_types::api::headers as h;
use holactl_types::gateway::{RouteAuth, API_KEY_HEADER, DEFAULT_STAGE, MAX_REQUEST_HEADER_BYTES};
use holactl_types::{ErrorCode, Trigger};
use sha2::{Digest, Sha256};

use super::event::{build_event, map_response, message, EventContext, EventRequest};
use super::jwt::{JwtError, Verified};
use super::metrics::{AuthFailureLabels, RequestLabels};
use super::table::{split_path, CompiledRoute, PathError};
use super::{cors, throttle, CompiledApi, HttpRequest, HttpResponse};
use crate::{now_ms, Engine, EngineError, InvokeRequest};

/// A request that passed every check and waits for its body.
pub struct Pending {
    api: Arc<CompiledApi>,
    route: Arc<CompiledRoute>,
    stage: String,
    params: Vec<(String, String)>,
    jwt: Option<Verified>,
    req: HttpRequest,
    cors: Vec<(String, String)>,
    request_id: String,
    time_epoch_ms: i64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("api", &self.api.name)
            .field("route", &self.route.route_key)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// What [`Engine::gateway_route`] decided.
#[derive(Debug)]
pub enum Routed {
    /// Answer this now (a preflight, or a refusal).
    Respond(HttpResponse),
    /// Read the body and call [`Engine::gateway_invoke`].
    Invoke(Box<Pending>),
}

fn with_headers(mut resp: HttpResponse, headers: &[(String, String)]) -> HttpResponse {
    resp.headers.extend(headers.iter().cloned());
    resp
}

impl Engine {
    fn gateway_count(&self, api: &str, route: &str, status: u16) {
        self.inner
            .metrics
            .gateway
            .requests
            .get_or_create(&RequestLabels {
                api: api.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
    }

    fn gateway_auth_failure(&self, api: &str, reason: &str) {
        self.inner
            .metrics
            .gateway
            .auth_failures
            .get_or_create(&AuthFailureLabels {
                api: api.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Checks a request up to the point where its function would run.
    pub async fn gateway_route(&self, api_name: &str, req: HttpRequest) -> Routed {
        let refuse = |route: &str, resp: HttpResponse| {
            self.gateway_count(api_name, route, resp.status);
            Routed::Respond(resp)
        };
        let header_bytes: usize = req.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        if header_bytes > MAX_REQUEST_HEADER_BYTES {
            return refuse("none", message(431, "Request Header Fields Too Large"));
        }
        let Some(api) = self.compiled_api(api_name) else {
            return refuse("none", message(404, "Not Found"));
        };
        let origin = req.header("origin").map(str::to_owned);
        let cors_headers = match (&api.cors, &origin) {
            (Some(c), Some(o)) => cors::response_headers(c, o),
            _ => Vec::new(),
        };
        let refuse =
            |route: &str, resp: HttpResponse| refuse(route, with_headers(resp, &cors_headers));
        let segments = match split_path(&req.path) {
            Ok(s) => s,
            Err(PathError::Bad) => return refuse("none", message(400, "Bad Request")),
            Err(PathError::NoRoute) => return refuse("none", message(404, "Not Found")),
        };
        // A first segment naming a deployed stage selects it, as `/{stage}/…` on API Gateway.
        let (stage, table, segments) = match segments.first().and_then(|s| {
            (s != DEFAULT_STAGE)
                .then(|| api.stages.get(s.as_str()))
                .flatten()
        }) {
            Some(table) => (segments[0].clone(), table.clone(), &segments[1..]),
            None => match api.stages.get(DEFAULT_STAGE) {
                Some(t) => (DEFAULT_STAGE.to_owned(), t.clone(), &segments[..]),
                None => return refuse("none", message(404, "Not Found")),
            },
        };
        // Preflights are the gateway's to answer: no route or authorizer runs for them.
        if let Some(c) = &api.cors {
            let request_method = req.header("access-control-request-method");
            if cors::is_preflight(&req.method, origin.as_deref(), request_method) {
                let headers = cors::preflight(
                    c,
                    origin.as_deref().unwrap_or(""),
                    request_method.unwrap_or(""),
                    req.header("access-control-request-headers"),
                );
                self.gateway_count(api_name, "preflight", 204);
                return Routed::Respond(HttpResponse {
                    status: 204,
                    headers,
                    body: Bytes::new(),
                });
            }
        }
        let Some((route, params)) = table.find(&req.method, segments) else {
            return refuse("none", message(404, "Not Found"));
        };
        let key = route.route_key.as_str();
        let mut key_limit = None;
        let mut jwt = None;
        match route.auth {
            RouteAuth::None => {}
            RouteAuth::ApiKey => {
                let Some(presented) = req.header(API_KEY_HEADER).filter(|k| !k.is_empty()) else {
                    self.gateway_auth_failure(api_name, "api_key_missing");
                    return refuse(key, message(401, "Unauthorized"));
                };
                let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                let Some(active) = api.keys.get(&hash) else {
                    // Unknown and revoked keys look the same.
                    self.gateway_auth_failure(api_name, "api_key_invalid");
                    return refuse(key, message(403, "Forbidden"));
                };
                key_limit = active
                    .throttle
                    .map(|t| (throttle::key_bucket(api_name, &active.id), t));
            }
            RouteAuth::Jwt => {
                let Some(authorizer) = route
                    .authorizer
                    .as_deref()
                    .and_then(|a| table.authorizers.get(a))
                else {
                    tracing::error!(api = %api_name, route = %key, "the route's authorizer is missing from its stage");
                    return refuse(key, message(500, "Internal Server Error"));
                };
                let result = match authorizer.token(&req.headers) {
                    None => Err(JwtError::Missing),
                    Some(token) => authorizer.verify(token, &route.scopes).await,
                };
                match result {
                    Ok(v) => jwt = Some(v),
                    Err(e) => {
                        self.gateway_auth_failure(api_name, e.reason());
                        tracing::info!(api = %api_name, route = %key, reason = %e, "gateway request refused");
                        let resp = match e {
                            JwtError::Scope => message(403, "Forbidden"),
                            JwtError::Keys(_) => message(503, "Service Unavailable"),
                            JwtError::Missing => message(401, "Unauthorized"),
                            _ => {
                                let mut r = message(401, "Unauthorized");
                                r.headers.push((
                                    "www-authenticate".into(),
                                    "Bearer error=\"invalid_token\"".into(),
                                ));
                                r
                            }
                        };
                        return refuse(key, resp);
                    }
                }
            }
        }
        let route_limit = route
            .throttle
            .map(|t| (throttle::route_bucket(api_name, &route.id), t));
        // In a cluster each node admits its share of a limit (the cluster's requests are
        // spread over the nodes by whatever balances them).
        let mut shared: Vec<(String, holactl_types::gateway::Throttle)> =
            route_limit.into_iter().chain(key_limit).collect();
        if !shared.is_empty() {
            let (index, nodes) = self.cluster_position();
            for (_, t) in &mut shared {
                *t = throttle::share(*t, index, nodes);
            }
        }
        let limits: Vec<(&str, &holactl_types::gateway::Throttle)> =
            shared.iter().map(|(k, t)| (k.as_str(), t)).collect();
        if let Err(wait) = self.inner.gateway.buckets.take(&limits, Instant::now()) {
            let mut resp = message(429, "Too Many Requests");
            resp.headers.push((
                "retry-after".into(),
                throttle::retry_after_secs(wait).to_string(),
            ));
            return refuse(key, resp);
        }
        Routed::Invoke(Box::new(Pending {
            api: api.clone(),
            route: route.clone(),
            stage,
            params,
            jwt,
            req,
            cors: cors_headers,
            request_id: uuid::Uuid::new_v4().to_string(),
            time_epoch_ms: now_ms(),
        }))
    }

    /// The payload format 2.0 event of a pending request (what [`Engine::gateway_invoke`]
    /// sends); public for benchmarks and tests.
    pub fn gateway_event(&self, p: &Pending, body: &[u8]) -> Vec<u8> {
        let jwt = p.jwt.as_ref().map(|v| (&v.claims, v.scopes.as_slice()));
        let event = build_event(
            &EventRequest {
                method: &p.req.method,
                raw_path: &p.req.path,
                raw_query: &p.req.raw_query,
                headers: &p.req.headers,
                body,
                source_ip: &p.req.source_ip,
                protocol: &p.req.protocol,
            },
            &EventContext {
                account_id: &self.inner.config.account_id,
                api_id: &p.api.id,
                route_key: &p.route.route_key,
                stage: &p.stage,
                request_id: &p.request_id,
                time_epoch_ms: p.time_epoch_ms,
                path_parameters: &p.params,
                jwt,
            },
        );
        serde_json::to_vec(&event).unwrap_or_default()
    }

    /// Runs the route's function with the request's event and maps its answer.
    pub async fn gateway_invoke(&self, p: Pending, body: Bytes) -> HttpResponse {
        let payload = Bytes::from(self.gateway_event(&p, &body));
        let mut invoke = InvokeRequest::new(payload, Trigger::Http);
        invoke.qualifier = p.route.qualifier.clone();
        invoke.execution_id = Some(p.request_id.clone());
        let resp = match self.invoke(&p.route.function, invoke).await {
            Ok(out) => match &out.record.error {
                Some(err) if err.code == ErrorCode::Timeout => message(503, "Service Unavailable"),
                Some(_) => message(502, "Internal Server Error"),
                None => match map_response(&out.body) {
                    Ok(r) => r,
                    Err(m) => {
                        tracing::warn!(api = %p.api.name, route = %p.route.route_key, execution = %p.request_id, error = %m.0, "malformed function response");
                        message(502, "Internal Server Error")
                    }
                },
            },
            Err(EngineError::Throttled(_)) => message(429, "Too Many Requests"),
            Err(EngineError::PayloadTooLarge { .. }) => message(413, "Request Entity Too Large"),
            Err(EngineError::ShuttingDown) => message(503, "Service Unavailable"),
            Err(e) => {
                tracing::warn!(api = %p.api.name, route = %p.route.route_key, function = %p.route.function, error = %e, "gateway invocation failed");
                message(500, "Internal Server Error")
            }
        };
        self.gateway_finish(&p, resp)
    }

    /// Answers a routed request with `{"message": …}` without running its function (a body
    /// too large or unreadable), finished like every other answer of a routed request.
    pub fn gateway_refuse(&self, p: Pending, status: u16, text: &str) -> HttpResponse {
        self.gateway_finish(&p, message(status, text))
    }

    /// What every answer of a routed request gets: the matched CORS headers, the request
    /// id headers, and its count in the route's metrics.
    fn gateway_finish(&self, p: &Pending, mut resp: HttpResponse) -> HttpResponse {
        if p.api.cors.is_some() {
            // The API's CORS configuration decides; the function's own CORS headers go.
            resp.headers.retain(|(k, _)| !cors::is_cors_header(k));
        }
        resp.headers.extend(p.cors.iter().cloned());
        resp.headers
            .push(("apigw-requestid".into(), p.request_id.clone()));
        resp.headers
            .push((h::EXECUTION_ID.to_owned(), p.request_id.clone()));
        self.gateway_count(&p.api.name, &p.route.route_key, resp.status);
        resp
    }

    /// Both steps with a body already read (tests, benchmarks, embedders).
    pub async fn gateway_handle(&self, api: &str, req: HttpRequest, body: Bytes) -> HttpResponse {
        match self.gateway_route(api, req).await {
            Routed::Respond(r) => r,
            Routed::Invoke(p) => self.gateway_invoke(*p, body).await,
        }
    }
}
