//! Managing the gateway: APIs, routes, authorizers, API keys and stages. Every input is
//! validated before anything is written; every write recompiles the API.

use holactl_store::StoreError;
use holactl_types::gateway::{
    parse_route_method, parse_route_path, route_shape, validate_gateway_name, validate_stage_name,
    ApiKeyView, ApiView, AuthorizerView, CorsConfig, CreateApiKeyRequest, CreateApiRequest,
    CreateAuthorizerRequest, CreateRouteRequest, CreatedApiKey, DeployStageRequest, RouteAuth,
    RouteView, StageView, DEFAULT_API, DEFAULT_STAGE, GATEWAY_PREFIX, MAX_ROUTES_PER_API,
};
use holactl_types::version::Qualifier;
use sha2::{Digest, Sha256};

use super::{
    secret_aad, StoredApi, StoredAuthorizer, StoredKey, StoredRoute, StoredStage, API_PREFIX,
    AUTHORIZER_PREFIX, KEY_PREFIX, ROUTE_PREFIX, STAGE_PREFIX,
};
use crate::functions::{decode, encode};
use crate::secrets::seal;
use crate::{now_ms, Engine, EngineError};

/// Longest stage description.
const MAX_DESCRIPTION_LEN: usize = 256;
/// Longest scope.
const MAX_SCOPE_LEN: usize = 128;

fn conflict(what: String) -> EngineError {
    EngineError::Conflict(what)
}

/// Random lower-case hex of `bytes` random bytes.
fn random_hex(bytes: usize) -> Result<String, EngineError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| EngineError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

impl StoredApi {
    fn view(&self, engine: &Engine, routes: usize, stages: Vec<String>) -> ApiView {
        ApiView {
            name: self.name.clone(),
            id: self.id.clone(),
            path: format!("{GATEWAY_PREFIX}/{}", self.name),
            url: engine.gateway_base_url(&self.name),
            cors: self.cors.clone(),
            routes,
            stages,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl StoredRoute {
    fn view(&self, engine: &Engine) -> RouteView {
        RouteView {
            id: self.id.clone(),
            api: self.api.clone(),
            route_key: self.route_key(),
            function: self.function.clone(),
            qualifier: self.qualifier.clone(),
            auth: self.auth,
            authorizer: self.authorizer.clone(),
            scopes: self.scopes.clone(),
            throttle: self.throttle,
            path: format!(
                "{GATEWAY_PREFIX}/{}{}",
                self.api,
                if self.path == "/" { "" } else { &self.path }
            ),
            url: engine
                .gateway_base_url(&self.api)
                .map(|base| format!("{base}{}", self.path)),
            created_at: self.created_at,
        }
    }
}

impl StoredAuthorizer {
    fn view(&self) -> AuthorizerView {
        AuthorizerView {
            name: self.name.clone(),
            api: self.api.clone(),
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            algorithm: self.algorithm,
            jwks_file: self.jwks_file.clone(),
            jwks_url: self.jwks_url.clone(),
            identity_header: self.identity_header.clone(),
            created_at: self.created_at,
        }
    }
}

impl StoredKey {
    fn view(&self) -> ApiKeyView {
        ApiKeyView {
            id: self.id.clone(),
            api: self.api.clone(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            throttle: self.throttle,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        }
    }
}

impl StoredStage {
    fn view(&self) -> StageView {
        StageView {
            name: self.name.clone(),
            api: self.api.clone(),
            path: format!("{GATEWAY_PREFIX}/{}/{}", self.api, self.name),
            description: self.description.clone(),
            routes: self.routes.iter().map(StoredRoute::route_key).collect(),
            deployed_at: self.deployed_at,
        }
    }
}

impl Engine {
    async fn stored_api(&self, api: &str) -> Result<Option<StoredApi>, EngineError> {
        validate_gateway_name("api", api)?;
        match self
            .inner
            .stores
            .kv
            .get(&format!("{API_PREFIX}{api}"))
            .await?
        {
            Some(e) => Ok(Some(decode(&e.value)?)),
            None => Ok(None),
        }
    }

    async fn require_api(&self, api: &str) -> Result<StoredApi, EngineError> {
        self.stored_api(api)
            .await?
            .ok_or_else(|| crate::identity::ResourceKind::Api.not_found(api))
    }

    /// The `what` named `name` stored under `prefix` in an existing API.
    async fn get_in_api<T: for<'de> serde::Deserialize<'de>>(
        &self,
        prefix: &str,
        what: &str,
        api: &str,
        name: &str,
    ) -> Result<T, EngineError> {
        self.require_api(api).await?;
        let e = self
            .inner
            .stores
            .kv
            .get(&format!("{prefix}{api}/{name}"))
            .await?
            .ok_or_else(|| {
                EngineError::ResourceNotFound(format!(
                    "{what} {name:?} does not exist in API {api:?}"
                ))
            })?;
        decode(&e.value)
    }

    async fn list_decoded<T: for<'de> serde::Deserialize<'de>>(
        &self,
        prefix: &str,
    ) -> Result<Vec<T>, EngineError> {
        let mut out = Vec::new();
        for (_, e) in self.inner.stores.kv.list(prefix).await? {
            out.push(decode(&e.value)?);
        }
        Ok(out)
    }

    async fn api_view(&self, api: &StoredApi) -> Result<ApiView, EngineError> {
        let routes = self
            .inner
            .stores
            .kv
            .list(&format!("{ROUTE_PREFIX}{}/", api.name))
            .await?
            .len();
        let stages = self
            .list_decoded::<StoredStage>(&format!("{STAGE_PREFIX}{}/", api.name))
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect();
        Ok(api.view(self, routes, stages))
    }

    /// Creates an API.
    pub async fn create_api(
        &self,
        actor: &str,
        req: CreateApiRequest,
    ) -> Result<ApiView, EngineError> {
        validate_gateway_name("name", &req.name)?;
        let cors = req.cors.map(CorsConfig::normalize).transpose()?;
        let now = now_ms();
        let stored = StoredApi {
            name: req.name.clone(),
            id: random_hex(5)?,
            cors,
            created_at: now,
            updated_at: now,
        };
        match self
            .inner
            .stores
            .kv
            .create(&format!("{API_PREFIX}{}", req.name), encode(&stored)?)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(conflict(format!("API {:?} already exists", req.name)))
            }
            Err(e) => return Err(e.into()),
        }
        self.refresh_api(&req.name).await?;
        let view = self.api_view(&stored).await?;
        tracing::info!(api = %view.name, "API created");
        self.audit(
            actor,
            "api.create",
            None,
            &format!("api {}", view.name),
            None,
            Some(&view),
        )
        .await;
        Ok(view)
    }

    /// The API `route create` without `--api` uses: created when missing.
    async fn api_or_default(&self, actor: &str, api: &str) -> Result<StoredApi, EngineError> {
        if let Some(a) = self.stored_api(api).await? {
            return Ok(a);
        }
        if api != DEFAULT_API {
            return Err(crate::identity::ResourceKind::Api.not_found(api));
        }
        match self
            .create_api(
                actor,
                CreateApiRequest {
                    name: DEFAULT_API.to_owned(),
                    cors: None,
                },
            )
            .await
        {
            Ok(_) | Err(EngineError::Conflict(_)) => self.require_api(api).await,
            Err(e) => Err(e),
        }
    }

    /// One API.
    pub async fn get_api(&self, api: &str) -> Result<ApiView, EngineError> {
        let stored = self.require_api(api).await?;
        self.api_view(&stored).await
    }

    /// Every API.
    pub async fn list_apis(&self) -> Result<Vec<ApiView>, EngineError> {
        let mut out = Vec::new();
        for a in self.list_decoded::<StoredApi>(API_PREFIX).await? {
            out.push(self.api_view(&a).await?);
        }
        Ok(out)
    }

    /// Replaces (or, with `None`, removes) an API's CORS configuration.
    pub async fn set_api_cors(
        &self,
        actor: &str,
        api: &str,
        cors: Option<CorsConfig>,
    ) -> Result<ApiView, EngineError> {
        let cors = cors.map(CorsConfig::normalize).transpose()?;
        let kv = &self.inner.stores.kv;
        let key = format!("{API_PREFIX}{api}");
        validate_gateway_name("api", api)?;
        let entry = kv
            .get(&key)
            .await?
            .ok_or_else(|| crate::identity::ResourceKind::Api.not_found(api))?;
        let before: StoredApi = decode(&entry.value)?;
        let mut after = before.clone();
        after.cors = cors;
        after.updated_at = now_ms();
        match kv.update(&key, encode(&after)?, entry.revision).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(conflict(format!(
                    "API {api:?} changed concurrently; try again"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        self.refresh_api(api).await?;
        let view = self.api_view(&after).await?;
        self.audit(
            actor,
            "api.cors",
            None,
            &format!("api {api}"),
            before.cors.as_ref(),
            after.cors.as_ref(),
        )
        .await;
        Ok(view)
    }

    /// Deletes an API with its routes, authorizers, keys and stages; its URLs answer 404 at
    /// once.
    pub async fn delete_api(&self, actor: &str, api: &str) -> Result<(), EngineError> {
        let stored = self.require_api(api).await?;
        let kv = &self.inner.stores.kv;
        // The API record first: from then on nothing is served, whatever is left below.
        kv.delete(&format!("{API_PREFIX}{api}"), None).await?;
        self.refresh_api(api).await?;
        for prefix in [ROUTE_PREFIX, AUTHORIZER_PREFIX, KEY_PREFIX, STAGE_PREFIX] {
            for (key, _) in kv.list(&format!("{prefix}{api}/")).await? {
                match kv.delete(&key, None).await {
                    Ok(()) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        tracing::info!(api = %api, "API deleted");
        self.audit(
            actor,
            "api.delete",
            None,
            &format!("api {api}"),
            Some(&stored.name),
            None,
        )
        .await;
        Ok(())
    }

    /// Creates a route (the `default` API is created on demand).
    pub async fn create_route(
        &self,
        actor: &str,
        api: &str,
        req: CreateRouteRequest,
    ) -> Result<RouteView, EngineError> {
        validate_gateway_name("api", api)?;
        let method = parse_route_method(&req.method)?;
        let segments = parse_route_path(&req.path)?;
        holactl_types::function::validate_function_name(&req.function)
            .map_err(|e| EngineError::invalid("function", e.message))?;
        let qualifier = req.qualifier.as_deref().map(Qualifier::parse).transpose()?;
        // The function (and qualifier) must exist now; deleting it later makes the route
        // answer 500, as API Gateway does for a missing integration.
        self.resolve(&req.function, qualifier.as_ref())?;
        if let Some(t) = &req.throttle {
            t.validate("throttle")?;
        }
        match (req.auth, &req.authorizer) {
            (RouteAuth::Jwt, None) => {
                return Err(EngineError::invalid(
                    "authorizer",
                    "auth jwt needs an authorizer",
                ))
            }
            (RouteAuth::None | RouteAuth::ApiKey, Some(_)) => {
                return Err(EngineError::invalid(
                    "authorizer",
                    "an authorizer is only used with auth jwt",
                ))
            }
            _ => {}
        }
        if req.auth != RouteAuth::Jwt && !req.scopes.is_empty() {
            return Err(EngineError::invalid(
                "scopes",
                "scopes are only used with auth jwt",
            ));
        }
        if req.scopes.len() > 20
            || req
                .scopes
                .iter()
                .any(|s| s.is_empty() || s.len() > MAX_SCOPE_LEN || s.contains(char::is_whitespace))
        {
            return Err(EngineError::invalid(
                "scopes",
                format!("at most 20 scopes of 1 to {MAX_SCOPE_LEN} characters without spaces"),
            ));
        }
        let stored_api = self.api_or_default(actor, api).await?;
        let kv = &self.inner.stores.kv;
        if let Some(name) = &req.authorizer {
            validate_gateway_name("authorizer", name)?;
            if kv
                .get(&format!("{AUTHORIZER_PREFIX}{api}/{name}"))
                .await?
                .is_none()
            {
                return Err(EngineError::invalid(
                    "authorizer",
                    format!("authorizer {name:?} does not exist in API {api:?}"),
                ));
            }
        }
        if kv.list(&format!("{ROUTE_PREFIX}{api}/")).await?.len() >= MAX_ROUTES_PER_API {
            return Err(EngineError::LimitExceeded(format!(
                "API {api:?} has {MAX_ROUTES_PER_API} routes"
            )));
        }
        let shape = route_shape(&method, &segments);
        let id = hex::encode(&Sha256::digest(shape.as_bytes())[..6]);
        let stored = StoredRoute {
            id: id.clone(),
            api: stored_api.name.clone(),
            method,
            path: req.path.clone(),
            function: req.function.clone(),
            qualifier: qualifier.as_ref().map(ToString::to_string),
            auth: req.auth,
            authorizer: req.authorizer.clone(),
            scopes: req.scopes.clone(),
            throttle: req.throttle,
            created_at: now_ms(),
        };
        match kv
            .create(&format!("{ROUTE_PREFIX}{api}/{id}"), encode(&stored)?)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                let existing = self.get_route(api, &id).await.ok();
                return Err(conflict(format!(
                    "route {} conflicts with the existing {}",
                    stored.route_key(),
                    existing.map_or_else(|| shape.clone(), |r| r.route_key)
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.refresh_api(api).await?;
        let view = stored.view(self);
        tracing::info!(api = %api, route = %view.route_key, function = %view.function, "route created");
        self.audit(
            actor,
            "route.create",
            Some(&view.function),
            &format!("route {api} {}", view.route_key),
            None,
            Some(&view),
        )
        .await;
        Ok(view)
    }

    /// Finds a route by id or by route key (`GET /users/{id}`).
    async fn find_route(
        &self,
        api: &str,
        route: &str,
    ) -> Result<(StoredRoute, String), EngineError> {
        validate_gateway_name("api", api)?;
        self.require_api(api).await?;
        let id = if let Some((method, path)) = route.split_once(' ') {
            let method = parse_route_method(method)?;
            let segments = parse_route_path(path)?;
            hex::encode(&Sha256::digest(route_shape(&method, &segments).as_bytes())[..6])
        } else if route.len() == 12 && route.bytes().all(|b| b.is_ascii_hexdigit()) {
            route.to_ascii_lowercase()
        } else {
            return Err(EngineError::invalid(
                "route",
                format!("{route:?} is neither a route id nor \"METHOD /path\""),
            ));
        };
        let key = format!("{ROUTE_PREFIX}{api}/{id}");
        let entry = self.inner.stores.kv.get(&key).await?.ok_or_else(|| {
            EngineError::ResourceNotFound(format!("route {route:?} does not exist in API {api:?}"))
        })?;
        Ok((decode(&entry.value)?, key))
    }

    /// One route.
    pub async fn get_route(&self, api: &str, route: &str) -> Result<RouteView, EngineError> {
        Ok(self.find_route(api, route).await?.0.view(self))
    }

    /// Every route of an API, by route key.
    pub async fn list_routes(&self, api: &str) -> Result<Vec<RouteView>, EngineError> {
        self.require_api(api).await?;
        let mut routes: Vec<StoredRoute> =
            self.list_decoded(&format!("{ROUTE_PREFIX}{api}/")).await?;
        routes.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
        Ok(routes.iter().map(|r| r.view(self)).collect())
    }

    /// Deletes a route from `$default` (named stages keep it until their next deployment).
    pub async fn delete_route(
        &self,
        actor: &str,
        api: &str,
        route: &str,
    ) -> Result<(), EngineError> {
        let (stored, key) = self.find_route(api, route).await?;
        match self.inner.stores.kv.delete(&key, None).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.refresh_api(api).await?;
        let view = stored.view(self);
        self.audit(
            actor,
            "route.delete",
            Some(&view.function),
            &format!("route {api} {}", view.route_key),
            Some(&view),
            None,
        )
        .await;
        Ok(())
    }

    /// Creates a JWT authorizer.
    pub async fn create_authorizer(
        &self,
        actor: &str,
        api: &str,
        req: CreateAuthorizerRequest,
    ) -> Result<AuthorizerView, EngineError> {
        req.validate()?;
        if let Some(file) = &req.jwks_file {
            // Checked now so that a typo is an error, not a route that refuses every token.
            let bytes = tokio::fs::read(file).await.map_err(|e| {
                EngineError::invalid("jwks_file", format!("cannot read {file}: {e}"))
            })?;
            let keys = super::jwt::parse_jwks(&bytes, req.algorithm)
                .map_err(|e| EngineError::invalid("jwks_file", e))?;
            if keys.is_empty() {
                return Err(EngineError::invalid(
                    "jwks_file",
                    format!("{file} holds no {} key", req.algorithm),
                ));
            }
        }
        self.api_or_default(actor, api).await?;
        let secret = match &req.hs256_secret {
            Some(s) => Some(seal(
                &self.inner.master_key,
                &secret_aad(api, &req.name),
                s.as_bytes(),
            )?),
            None => None,
        };
        let stored = StoredAuthorizer {
            name: req.name.clone(),
            api: api.to_owned(),
            issuer: req.issuer.clone(),
            audiences: req.audiences.clone(),
            algorithm: req.algorithm,
            secret,
            jwks_file: req.jwks_file.clone(),
            jwks_url: req.jwks_url.clone(),
            identity_header: req
                .identity_header
                .clone()
                .unwrap_or_else(|| "authorization".to_owned())
                .to_ascii_lowercase(),
            created_at: now_ms(),
        };
        match self
            .inner
            .stores
            .kv
            .create(
                &format!("{AUTHORIZER_PREFIX}{api}/{}", req.name),
                encode(&stored)?,
            )
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(conflict(format!(
                    "authorizer {:?} already exists in API {api:?}",
                    req.name
                )))
            }
            Err(e) => return Err(e.into()),
        }
        self.refresh_api(api).await?;
        let view = stored.view();
        self.audit(
            actor,
            "authorizer.create",
            None,
            &format!("authorizer {api} {}", view.name),
            None,
            Some(&view),
        )
        .await;
        Ok(view)
    }

    /// Every authorizer of an API.
    pub async fn list_authorizers(&self, api: &str) -> Result<Vec<AuthorizerView>, EngineError> {
        self.require_api(api).await?;
        Ok(self
            .list_decoded::<StoredAuthorizer>(&format!("{AUTHORIZER_PREFIX}{api}/"))
            .await?
            .iter()
            .map(StoredAuthorizer::view)
            .collect())
    }

    /// One authorizer.
    pub async fn get_authorizer(
        &self,
        api: &str,
        name: &str,
    ) -> Result<AuthorizerView, EngineError> {
        validate_gateway_name("authorizer", name)?;
        let stored: StoredAuthorizer = self
            .get_in_api(AUTHORIZER_PREFIX, "authorizer", api, name)
            .await?;
        Ok(stored.view())
    }

    /// Deletes an authorizer no route uses.
    pub async fn delete_authorizer(
        &self,
        actor: &str,
        api: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        let view = self.get_authorizer(api, name).await?;
        let users: Vec<StoredRoute> = self.list_decoded(&format!("{ROUTE_PREFIX}{api}/")).await?;
        if let Some(r) = users.iter().find(|r| r.authorizer.as_deref() == Some(name)) {
            return Err(conflict(format!(
                "authorizer {name:?} is used by route {}; delete or change that route first",
                r.route_key()
            )));
        }
        match self
            .inner
            .stores
            .kv
            .delete(&format!("{AUTHORIZER_PREFIX}{api}/{name}"), None)
            .await
        {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.refresh_api(api).await?;
        self.audit(
            actor,
            "authorizer.delete",
            None,
            &format!("authorizer {api} {name}"),
            Some(&view),
            None,
        )
        .await;
        Ok(())
    }

    /// Creates an API key; the key is in the answer and nowhere else.
    pub async fn create_api_key(
        &self,
        actor: &str,
        api: &str,
        req: CreateApiKeyRequest,
    ) -> Result<CreatedApiKey, EngineError> {
        validate_gateway_name("name", &req.name)?;
        if let Some(t) = &req.throttle {
            t.validate("throttle")?;
        }
        self.api_or_default(actor, api).await?;
        let key = format!("hk_{}", random_hex(24)?);
        let stored = StoredKey {
            id: random_hex(8)?,
            api: api.to_owned(),
            name: req.name,
            prefix: key[..9].to_owned(),
            sha256: hex::encode(Sha256::digest(key.as_bytes())),
            throttle: req.throttle,
            created_at: now_ms(),
            revoked_at: None,
        };
        self.inner
            .stores
            .kv
            .create(
                &format!("{KEY_PREFIX}{api}/{}", stored.id),
                encode(&stored)?,
            )
            .await?;
        self.refresh_api(api).await?;
        let view = stored.view();
        self.audit(
            actor,
            "api_key.create",
            None,
            &format!("api key {api} {}", view.id),
            None,
            Some(&view),
        )
        .await;
        Ok(CreatedApiKey { key, view })
    }

    /// Every key of an API (revoked ones too), newest first.
    pub async fn list_api_keys(&self, api: &str) -> Result<Vec<ApiKeyView>, EngineError> {
        self.require_api(api).await?;
        let mut keys: Vec<StoredKey> = self.list_decoded(&format!("{KEY_PREFIX}{api}/")).await?;
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        Ok(keys.iter().map(StoredKey::view).collect())
    }

    /// Revokes an API key: refused from now on (kept, marked, for the record).
    pub async fn revoke_api_key(
        &self,
        actor: &str,
        api: &str,
        id: &str,
    ) -> Result<ApiKeyView, EngineError> {
        self.require_api(api).await?;
        if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(EngineError::ResourceNotFound(format!(
                "API key {id:?} does not exist"
            )));
        }
        let kv = &self.inner.stores.kv;
        let k = format!("{KEY_PREFIX}{api}/{id}");
        let entry = kv.get(&k).await?.ok_or_else(|| {
            EngineError::ResourceNotFound(format!("API key {id:?} does not exist"))
        })?;
        let mut stored: StoredKey = decode(&entry.value)?;
        if stored.revoked_at.is_none() {
            stored.revoked_at = Some(now_ms());
            match kv.update(&k, encode(&stored)?, entry.revision).await {
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => {
                    return Err(conflict(format!(
                        "API key {id:?} changed concurrently; try again"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
            self.refresh_api(api).await?;
        }
        let view = stored.view();
        self.audit(
            actor,
            "api_key.revoke",
            None,
            &format!("api key {api} {id}"),
            None,
            Some(&view),
        )
        .await;
        Ok(view)
    }

    /// Deploys the current routes and authorizers to a named stage (created or replaced).
    pub async fn deploy_stage(
        &self,
        actor: &str,
        api: &str,
        req: DeployStageRequest,
    ) -> Result<StageView, EngineError> {
        validate_stage_name(&req.stage)?;
        if req.stage == DEFAULT_STAGE {
            return Err(EngineError::invalid(
                "stage",
                "$default is deployed automatically",
            ));
        }
        if req
            .description
            .as_ref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION_LEN)
        {
            return Err(EngineError::invalid(
                "description",
                format!("at most {MAX_DESCRIPTION_LEN} bytes"),
            ));
        }
        self.require_api(api).await?;
        let stored = StoredStage {
            name: req.stage.clone(),
            api: api.to_owned(),
            description: req.description,
            routes: self.list_decoded(&format!("{ROUTE_PREFIX}{api}/")).await?,
            authorizers: self
                .list_decoded(&format!("{AUTHORIZER_PREFIX}{api}/"))
                .await?,
            deployed_at: now_ms(),
        };
        self.inner
            .stores
            .kv
            .put(
                &format!("{STAGE_PREFIX}{api}/{}", req.stage),
                encode(&stored)?,
            )
            .await?;
        self.refresh_api(api).await?;
        let view = stored.view();
        tracing::info!(api = %api, stage = %view.name, routes = view.routes.len(), "stage deployed");
        self.audit(
            actor,
            "stage.deploy",
            None,
            &format!("stage {api} {}", view.name),
            None,
            Some(&view),
        )
        .await;
        Ok(view)
    }

    /// Every named stage of an API.
    pub async fn list_stages(&self, api: &str) -> Result<Vec<StageView>, EngineError> {
        self.require_api(api).await?;
        Ok(self
            .list_decoded::<StoredStage>(&format!("{STAGE_PREFIX}{api}/"))
            .await?
            .iter()
            .map(StoredStage::view)
            .collect())
    }

    /// One named stage.
    pub async fn get_stage(&self, api: &str, stage: &str) -> Result<StageView, EngineError> {
        validate_stage_name(stage)?;
        let stored: StoredStage = self.get_in_api(STAGE_PREFIX, "stage", api, stage).await?;
        Ok(stored.view())
    }

    /// Deletes a named stage: its URLs answer 404 at once.
    pub async fn delete_stage(
        &self,
        actor: &str,
        api: &str,
        stage: &str,
    ) -> Result<(), EngineError> {
        let view = self.get_stage(api, stage).await?;
        match self
            .inner
            .stores
            .kv
            .delete(&format!("{STAGE_PREFIX}{api}/{stage}"), None)
            .await
        {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.refresh_api(api).await?;
        self.audit(
            actor,
            "stage.delete",
            None,
            &format!("stage {api} {stage}"),
            Some(&view),
            None,
        )
        .await;
        Ok(())
    }
}
