//! `/api/v1/secrets`: values go in, never come out.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use holactl_engine::Engine;
use holactl_types::api::{SecretList, SecretView, SetSecretRequest};

use crate::error::ApiError;
use crate::extract::Json;
use crate::router::Actor;

pub async fn set(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
    Json(req): Json<SetSecretRequest>,
) -> Result<axum::Json<SecretView>, ApiError> {
    Ok(axum::Json(
        engine.set_secret(&actor, &name, &req.value).await?,
    ))
}

pub async fn list(
    State(engine): State<Engine>,
    Extension(principal): Extension<holactl_engine::identity::Principal>,
) -> Result<axum::Json<SecretList>, ApiError> {
    Ok(axum::Json(SecretList {
        secrets: crate::tenancy::only_visible(
            &engine,
            &principal,
            holactl_engine::identity::ResourceKind::Secret,
            engine.list_secrets().await?,
            |x| &x.name,
        ),
    }))
}

pub async fn delete(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_secret(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
