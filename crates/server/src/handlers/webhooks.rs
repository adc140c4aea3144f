//! `/api/v1/webhooks` (management, behind the token) and `/hooks/{id}` (public deliveries,
//! authenticated by their signature alone).

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use holactl_engine::webhooks::{Delivery, WebhookError};
use holactl_engine::Engine;
use holactl_types::api::headers as h;
use holactl_types::limits::MAX_ASYNC_PAYLOAD_BYTES;
use holactl_types::webhook::{
    CreateWebhookRequest, RotateWebhookSecretRequest, WebhookAccepted, WebhookList, WebhookView,
};

use crate::error::ApiError;
use crate::extract::{read_limited, Json};
use crate::router::Actor;

pub async fn create(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Json(req): Json<CreateWebhookRequest>,
) -> Result<(StatusCode, axum::Json<WebhookView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_webhook(&actor, req).await?),
    ))
}

pub async fn list(
    State(engine): State<Engine>,
    Extension(principal): Extension<holactl_engine::identity::Principal>,
) -> Result<axum::Json<WebhookList>, ApiError> {
    Ok(axum::Json(WebhookList {
        webhooks: crate::tenancy::only_visible(
            &engine,
            &principal,
            holactl_engine::identity::ResourceKind::Webhook,
            engine.list_webhooks().await?,
            |x| &x.name,
        ),
    }))
}

pub async fn get(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    Ok(axum::Json(engine.get_webhook(&name).await?))
}

pub async fn delete(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_webhook(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rotate_secret(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
    Json(req): Json<RotateWebhookSecretRequest>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    Ok(axum::Json(
        engine
            .rotate_webhook_secret(&actor, &name, &req.secret)
            .await?,
    ))
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::Engine(e) => ApiError::from(e),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

/// `POST /hooks/{id}`: no token; the signature is the credential.
pub async fn deliver(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    body: Body,
) -> Result<Response, ApiError> {
    // An unknown id answers exactly as an unknown route does, before the body is read.
    let Some(target) = engine.webhook_target(&id).await? else {
        return Err(crate::handlers::system::not_found().await);
    };
    let body = read_limited(body, MAX_ASYNC_PAYLOAD_BYTES, "webhook body").await?;
    let delivery = Delivery {
        method: method.to_string(),
        path: uri.path().to_owned(),
        raw_query: uri.query().unwrap_or("").to_owned(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                // HeaderName is lower case already; values that are not text are dropped.
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_owned(), v.to_owned()))
            })
            .collect(),
        body,
        source_ip: connect.map(|Extension(ConnectInfo(addr))| addr.ip().to_string()),
    };
    let record = engine.receive_webhook(&target, delivery).await?;
    let mut resp = (
        StatusCode::ACCEPTED,
        axum::Json(WebhookAccepted {
            execution_id: record.id.clone(),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&record.id) {
        resp.headers_mut().insert(h::EXECUTION_ID, v);
    }
    Ok(resp)
}
