//! The HTTP gateway, after API Gateway's HTTP APIs: an API owns routes (`METHOD /path` → a
//! function and qualifier), JWT authorizers, API keys and stages. A request is matched against
//! the stage's compiled route table, answered by CORS when it is a preflight, authenticated,
//! throttled, turned into the payload format 2.0 event and run through [`Engine::invoke`]
//! (trigger `http`), and the function's answer is mapped back to HTTP.
//!
//! # Layout
//! - this file: the stored records, the compiled in-memory state and its refresh.
//! - [`admin`]: create/list/get/delete of APIs, routes, authorizers, keys and stages.
//! - [`serve`]: one request: match → preflight → auth → throttle → invoke → map.
//! - [`table`]: route matching and path parsing (traversal refused).
//! - [`event`]: the 2.0 event and the response mapping.
//! - [`cors`], [`jwt`], [`throttle`], [`metrics`].
//!
//! # Storage
//! - `gateway/apis/{api}`: the API (id, CORS).
//! - `gateway/routes/{api}/{route id}`: a route; the id is derived from the route's shape
//!   (method and path with parameter names removed), so two routes that would match the same
//!   requests cannot both be created.
//! - `gateway/authorizers/{api}/{name}`: a JWT authorizer (an HS256 secret sealed under the
//!   master key).
//! - `gateway/keys/{api}/{id}`: an API key: its sha256, never the key.
//! - `gateway/stages/{api}/{stage}`: a named stage: a snapshot of the routes and authorizers
//!   taken by its last deployment. `$default` is not stored: it is the live routes.
//!
//! Every write reloads the API's records and recompiles it, so requests never read the store.

pub mod admin;
pub mod cors;
pub mod event;
pub mod jwt;
pub mod metrics;
pub mod serve;
pub mod table;
pub mod throttle;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use holactl_types::gateway::{
    parse_route_path, CorsConfig, JwtAlgorithm, RouteAuth, Throttle, DEFAULT_STAGE,
};
use holactl_types::version::Qualifier;
use serde::{Deserialize, Serialize};

use crate::functions::decode;
use crate::secrets::{unseal, Sealed};
use crate::{Engine, EngineError};

pub use serve::{Pending, Routed};
use table::{CompiledRoute, RouteTable};

pub(crate) const API_PREFIX: &str = "gateway/apis/";
pub(crate) const ROUTE_PREFIX: &str = "gateway/routes/";
pub(crate) const AUTHORIZER_PREFIX: &str = "gateway/authorizers/";
pub(crate) const KEY_PREFIX: &str = "gateway/keys/";
pub(crate) const STAGE_PREFIX: &str = "gateway/stages/";

/// A request as the server hands it over (no axum types).
#[derive(Clone, Debug, Default)]
pub struct HttpRequest {
    /// Upper-case method.
    pub method: String,
    /// The raw path below the API (`/prod/users/42`; `/` at least), still percent-encoded.
    pub path: String,
    /// The raw query string, without `?`.
    pub raw_query: String,
    /// Headers, lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
    /// The peer's address.
    pub source_ip: String,
    /// `HTTP/1.1`.
    pub protocol: String,
}

impl HttpRequest {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status.
    pub status: u16,
    /// Headers (lower-case names; `set-cookie` may repeat).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

/// An API as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredApi {
    pub name: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A route as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredRoute {
    pub id: String,
    pub api: String,
    pub method: String,
    pub path: String,
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    pub auth: RouteAuth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    pub created_at: i64,
}

impl StoredRoute {
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A JWT authorizer as stored.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredAuthorizer {
    pub name: String,
    pub api: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithm: JwtAlgorithm,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    pub identity_header: String,
    pub created_at: i64,
}

/// An API key as stored: the sha256 of the key, never the key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredKey {
    pub id: String,
    pub api: String,
    pub name: String,
    pub prefix: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// A named stage as stored: the snapshot of its last deployment.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredStage {
    pub name: String,
    pub api: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub routes: Vec<StoredRoute>,
    pub authorizers: Vec<StoredAuthorizer>,
    pub deployed_at: i64,
}

/// An active API key, in memory.
#[derive(Debug)]
pub(crate) struct ActiveKey {
    pub id: String,
    pub throttle: Option<Throttle>,
}

/// An API ready to serve.
#[derive(Debug)]
pub(crate) struct CompiledApi {
    pub name: String,
    pub id: String,
    pub cors: Option<CorsConfig>,
    /// `$default` and every named stage.
    pub stages: HashMap<String, Arc<RouteTable>>,
    /// Active keys by the sha256 of the key.
    pub keys: HashMap<[u8; 32], ActiveKey>,
}

/// The gateway's in-memory state.
#[derive(Debug, Default)]
pub struct State {
    apis: RwLock<HashMap<String, Arc<CompiledApi>>>,
    /// Serializes recompilations, so a slower one never overwrites a newer one.
    refresh: tokio::sync::Mutex<()>,
    pub(crate) buckets: throttle::Buckets,
    /// The separate gateway listener's base URL and the API it serves, when there is one.
    listener: RwLock<Option<(String, String)>>,
}

/// The associated data of an authorizer's sealed secret.
pub(crate) fn secret_aad(api: &str, name: &str) -> Vec<u8> {
    format!("gateway-authorizer/{api}/{name}").into_bytes()
}

impl Engine {
    /// The compiled API, if it exists.
    pub(crate) fn compiled_api(&self, name: &str) -> Option<Arc<CompiledApi>> {
        self.inner.gateway.apis.read().ok()?.get(name).cloned()
    }

    /// Names of the compiled APIs.
    pub(crate) fn compiled_api_names(&self) -> Vec<String> {
        self.inner
            .gateway
            .apis
            .read()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Tells the engine the gateway also listens on its own address (`http://host:port`),
    /// serving `api` from `/`: views then carry full URLs there.
    pub fn set_gateway_listener(&self, base_url: &str, api: &str) {
        if let Ok(mut l) = self.inner.gateway.listener.write() {
            *l = Some((base_url.trim_end_matches('/').to_owned(), api.to_owned()));
        }
    }

    /// The separate listener's base URL for `api`, when it serves that API.
    pub(crate) fn gateway_base_url(&self, api: &str) -> Option<String> {
        let l = self.inner.gateway.listener.read().ok()?;
        l.as_ref().filter(|(_, a)| a == api).map(|(u, _)| u.clone())
    }

    /// Compiles every API at start.
    pub(crate) async fn load_gateway(&self) -> Result<(), EngineError> {
        for (key, _) in self.inner.stores.kv.list(API_PREFIX).await? {
            if let Some(name) = key.strip_prefix(API_PREFIX) {
                self.refresh_api(name).await?;
            }
        }
        Ok(())
    }

    /// Reloads one API's records and replaces its compiled form (or drops it when gone).
    pub(crate) async fn refresh_api(&self, name: &str) -> Result<(), EngineError> {
        let _serial = self.inner.gateway.refresh.lock().await;
        let kv = &self.inner.stores.kv;
        let Some(entry) = kv.get(&format!("{API_PREFIX}{name}")).await? else {
            if let Ok(mut apis) = self.inner.gateway.apis.write() {
                apis.remove(name);
            }
            self.inner
                .gateway
                .buckets
                .retain_api(name, &Default::default());
            return Ok(());
        };
        let api: StoredApi = decode(&entry.value)?;
        let mut routes = Vec::new();
        for (_, e) in kv.list(&format!("{ROUTE_PREFIX}{name}/")).await? {
            routes.push(decode::<StoredRoute>(&e.value)?);
        }
        let mut authorizers = Vec::new();
        for (_, e) in kv.list(&format!("{AUTHORIZER_PREFIX}{name}/")).await? {
            authorizers.push(decode::<StoredAuthorizer>(&e.value)?);
        }
        let mut keys = HashMap::new();
        for (_, e) in kv.list(&format!("{KEY_PREFIX}{name}/")).await? {
            let k: StoredKey = decode(&e.value)?;
            if k.revoked_at.is_some() {
                continue;
            }
            let mut hash = [0u8; 32];
            if hex::decode_to_slice(&k.sha256, &mut hash).is_ok() {
                keys.insert(
                    hash,
                    ActiveKey {
                        id: k.id,
                        throttle: k.throttle,
                    },
                );
            }
        }
        let mut stages = HashMap::new();
        stages.insert(
            DEFAULT_STAGE.to_owned(),
            Arc::new(self.compile_table(&routes, &authorizers)),
        );
        let mut stage_routes = Vec::new();
        for (_, e) in kv.list(&format!("{STAGE_PREFIX}{name}/")).await? {
            let s: StoredStage = decode(&e.value)?;
            stages.insert(
                s.name.clone(),
                Arc::new(self.compile_table(&s.routes, &s.authorizers)),
            );
            stage_routes.push(s.routes);
        }
        // Throttle buckets of routes and keys that are gone are dropped (here, so every
        // node drops them when it follows the change).
        let live: std::collections::HashSet<String> = routes
            .iter()
            .chain(stage_routes.iter().flatten())
            .map(|r| throttle::route_bucket(name, &r.id))
            .chain(keys.values().map(|k| throttle::key_bucket(name, &k.id)))
            .collect();
        self.inner.gateway.buckets.retain_api(name, &live);
        let compiled = CompiledApi {
            name: api.name.clone(),
            id: api.id.clone(),
            cors: api.cors.clone(),
            stages,
            keys,
        };
        if let Ok(mut apis) = self.inner.gateway.apis.write() {
            apis.insert(name.to_owned(), Arc::new(compiled));
        }
        Ok(())
    }

    /// Compiles routes and authorizers into a table. Records that no longer compile (they
    /// were checked when written) are skipped and logged.
    fn compile_table(
        &self,
        routes: &[StoredRoute],
        authorizers: &[StoredAuthorizer],
    ) -> RouteTable {
        let mut compiled_auth = HashMap::new();
        for a in authorizers {
            let source = if let Some(sealed) = &a.secret {
                match unseal(&self.inner.master_key, &secret_aad(&a.api, &a.name), sealed) {
                    Ok(s) => jwt::KeySource::Secret(s),
                    Err(_) => {
                        tracing::error!(api = %a.api, authorizer = %a.name, "cannot decrypt the authorizer's secret with this master key");
                        continue;
                    }
                }
            } else if let Some(file) = &a.jwks_file {
                jwt::KeySource::File(file.clone())
            } else if let Some(url) = &a.jwks_url {
                jwt::KeySource::Url(url.clone())
            } else {
                continue;
            };
            compiled_auth.insert(
                a.name.clone(),
                Arc::new(jwt::Authorizer::new(
                    a.name.clone(),
                    a.issuer.clone(),
                    a.audiences.clone(),
                    a.algorithm,
                    a.identity_header.clone(),
                    source,
                )),
            );
        }
        let mut compiled = Vec::new();
        for r in routes {
            let segments = match parse_route_path(&r.path) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(api = %r.api, route = %r.route_key(), error = %e, "stored route does not compile");
                    continue;
                }
            };
            let qualifier = match r.qualifier.as_deref().map(Qualifier::parse).transpose() {
                Ok(q) => q,
                Err(e) => {
                    tracing::error!(api = %r.api, route = %r.route_key(), error = %e, "stored route does not compile");
                    continue;
                }
            };
            compiled.push(CompiledRoute {
                id: r.id.clone(),
                route_key: r.route_key(),
                method: r.method.clone(),
                segments,
                function: r.function.clone(),
                qualifier,
                auth: r.auth,
                authorizer: r.authorizer.clone(),
                scopes: r.scopes.clone(),
                throttle: r.throttle,
            });
        }
        RouteTable::new(compiled, compiled_auth)
    }
}
