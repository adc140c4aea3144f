//! `/api/v1/apis/…` (managing the gateway, behind the token) and the gateway itself:
//! `/gw/{api}/…` on the API's port, or every path of a separate gateway listener. The gateway's
//! requests carry no platform token: each route's own auth decides.

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use holactl_engine::gateway::{HttpRequest, HttpResponse, Routed};
use holactl_engine::Engine;
use holactl_types::gateway::{
    ApiKeyList, ApiKeyView, ApiList, ApiView, AuthorizerList, AuthorizerView, CreateApiKeyRequest,
    CreateApiRequest, CreateAuthorizerRequest, CreateRouteRequest, CreatedApiKey,
    DeployStageRequest, RouteList, RouteView, SetCorsRequest, StageList, StageView, GATEWAY_PREFIX,
};
use holactl_types::limits::MAX_SYNC_PAYLOAD_BYTES;
use http_body_util::BodyExt;

use crate::error::ApiError;
use crate::extract::Json;
use crate::router::Actor;

/// The routes managing the gateway (behind the token layer).
pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/api/v1/apis", post(create_api).get(list_apis))
        .route("/api/v1/apis/{api}", get(get_api).delete(delete_api))
        .route("/api/v1/apis/{api}/cors", axum::routing::put(set_cors))
        .route(
            "/api/v1/apis/{api}/routes",
            post(create_route).get(list_routes),
        )
        .route(
            "/api/v1/apis/{api}/routes/{route}",
            get(get_route).delete(delete_route),
        )
        .route(
            "/api/v1/apis/{api}/authorizers",
            post(create_authorizer).get(list_authorizers),
        )
        .route(
            "/api/v1/apis/{api}/authorizers/{authorizer}",
            get(get_authorizer).delete(delete_authorizer),
        )
        .route("/api/v1/apis/{api}/keys", post(create_key).get(list_keys))
        .route(
            "/api/v1/apis/{api}/keys/{key}",
            axum::routing::delete(revoke_key),
        )
        .route(
            "/api/v1/apis/{api}/stages",
            post(deploy_stage).get(list_stages),
        )
        .route(
            "/api/v1/apis/{api}/stages/{stage}",
            get(get_stage).delete(delete_stage),
        )
}

type Res<T> = Result<axum::Json<T>, ApiError>;

async fn create_api(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Json(req): Json<CreateApiRequest>,
) -> Result<(StatusCode, axum::Json<ApiView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_api(&actor, req).await?),
    ))
}

async fn list_apis(
    State(engine): State<Engine>,
    Extension(principal): Extension<holactl_engine::identity::Principal>,
) -> Res<ApiList> {
    Ok(axum::Json(ApiList {
        apis: crate::tenancy::only_visible(
            &engine,
            &principal,
            holactl_engine::identity::ResourceKind::Api,
            engine.list_apis().await?,
            |x| &x.name,
        ),
    }))
}

async fn get_api(State(engine): State<Engine>, Path(api): Path<String>) -> Res<ApiView> {
    Ok(axum::Json(engine.get_api(&api).await?))
}

async fn delete_api(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(api): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_api(&actor, &api).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_cors(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(api): Path<String>,
    Json(req): Json<SetCorsRequest>,
) -> Res<ApiView> {
    Ok(axum::Json(
        engine.set_api_cors(&actor, &api, req.cors).await?,
    ))
}

async fn create_route(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(api): Path<String>,
    Json(req): Json<CreateRouteRequest>,
) -> Result<(StatusCode, axum::Json<RouteView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_route(&actor, &api, req).await?),
    ))
}

async fn list_routes(State(engine): State<Engine>, Path(api): Path<String>) -> Res<RouteList> {
    Ok(axum::Json(RouteList {
        routes: engine.list_routes(&api).await?,
    }))
}

async fn get_route(
    State(engine): State<Engine>,
    Path((api, route)): Path<(String, String)>,
) -> Res<RouteView> {
    Ok(axum::Json(engine.get_route(&api, &route).await?))
}

async fn delete_route(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((api, route)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    engine.delete_route(&actor, &api, &route).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_authorizer(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(api): Path<String>,
    Json(req): Json<CreateAuthorizerRequest>,
) -> Result<(StatusCode, axum::Json<AuthorizerView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_authorizer(&actor, &api, req).await?),
    ))
}

async fn list_authorizers(
    State(engine): State<Engine>,
    Path(api): Path<String>,
) -> Res<AuthorizerList> {
    Ok(axum::Json(AuthorizerList {
        authorizers: engine.list_authorizers(&api).await?,
    }))
}

async fn get_authorizer(
    State(engine): State<Engine>,
    Path((api, name)): Path<(String, String)>,
) -> Res<AuthorizerView> {
    Ok(axum::Json(engine.get_authorizer(&api, &name).await?))
}

async fn delete_authorizer(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((api, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    engine.delete_authorizer(&actor, &api, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_key(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(api): Path<String>,
    Json(req): Json<CreateApiKeyRequest>,
) -> Result<(StatusCode, axum::Json<CreatedApiKey>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_api_key(&actor, &api, req).await?),
    ))
}

async fn list_keys(State(engine): State<Engine>, Path(api): Path<String>) -> Res<ApiKeyList> {
    Ok(axum::Json(ApiKeyList {
        keys: engine.list_api_keys(&api).await?,
    }))
}

async fn revoke_key(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((api, key)): Path<(String, String)>,
) -> Res<ApiKeyView> {
    Ok(axum::Json(engine.revoke_api_key(&actor, &api, &key).await?))
}

async fn deploy_stage(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(api): Path<String>,
    Json(req): Json<DeployStageRequest>,
) -> Result<(StatusCode, axum::Json<StageView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.deploy_stage(&actor, &api, req).await?),
    ))
}

async fn list_stages(State(engine): State<Engine>, Path(api): Path<String>) -> Res<StageList> {
    Ok(axum::Json(StageList {
        stages: engine.list_stages(&api).await?,
    }))
}

async fn get_stage(
    State(engine): State<Engine>,
    Path((api, stage)): Path<(String, String)>,
) -> Res<StageView> {
    Ok(axum::Json(engine.get_stage(&api, &stage).await?))
}

async fn delete_stage(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((api, stage)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    engine.delete_stage(&actor, &api, &stage).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The gateway's answer as an axum response.
fn into_response(r: HttpResponse) -> Response {
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = resp.headers_mut();
    for (k, v) in r.headers {
        // Checked when the function's answer was mapped; anything else is dropped.
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.append(k, v);
        }
    }
    resp
}

fn gateway_message(status: u16, message: &str) -> Response {
    into_response(HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::json!({ "message": message }).to_string().into(),
    })
}

/// Serves one gateway request for `api`, `path` being the raw path below the API.
async fn serve(engine: &Engine, api: &str, path: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip().to_string())
        .unwrap_or_default();
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (k, v) in &parts.headers {
        // Header values that are not text cannot be put in the event: refuse, not drop.
        match v.to_str() {
            Ok(v) => headers.push((k.as_str().to_owned(), v.to_owned())),
            Err(_) => return gateway_message(400, "Bad Request"),
        }
    }
    let request = HttpRequest {
        method: parts.method.as_str().to_owned(),
        path: if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        },
        raw_query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        source_ip,
        protocol: format!("{:?}", parts.version),
    };
    match engine.gateway_route(api, request).await {
        Routed::Respond(r) => into_response(r),
        Routed::Invoke(pending) => {
            // Read only once the request may run.
            let body = match http_body_util::Limited::new(body, MAX_SYNC_PAYLOAD_BYTES)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return into_response(engine.gateway_refuse(
                        *pending,
                        413,
                        "Request Entity Too Large",
                    ))
                }
                Err(_) => {
                    return into_response(engine.gateway_refuse(*pending, 400, "Bad Request"))
                }
            };
            into_response(engine.gateway_invoke(*pending, body).await)
        }
    }
}

/// `/gw/{api}/…` on the API's own port: the first segment after the prefix names the API.
pub async fn serve_prefixed(State(engine): State<Engine>, req: Request) -> Response {
    let raw = req.uri().path().to_owned();
    let rest = raw
        .strip_prefix(GATEWAY_PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or("");
    let (api, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    serve(&engine, api, path, req).await
}

/// The separate gateway listener: every path belongs to `api`.
pub fn listener_router(engine: Engine, api: String) -> Router {
    Router::new()
        .fallback(move |State(engine): State<Engine>, req: Request| {
            let api = api.clone();
            async move {
                let path = req.uri().path().to_owned();
                serve(&engine, &api, &path, req).await
            }
        })
        .with_state(engine)
}
