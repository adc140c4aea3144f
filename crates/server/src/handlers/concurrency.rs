//! `/api/v1/functions/{name}/concurrency`: reserved and provisioned concurrency.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use holactl_engine::Engine;
use holactl_types::concurrency::FunctionConcurrency;

use crate::error::ApiError;
use crate::extract::Json;
use crate::router::Actor;

pub async fn get(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<FunctionConcurrency>, ApiError> {
    Ok(axum::Json(engine.get_concurrency(&name)?))
}

pub async fn put(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
    Json(req): Json<FunctionConcurrency>,
) -> Result<axum::Json<FunctionConcurrency>, ApiError> {
    Ok(axum::Json(
        engine.set_concurrency(&actor, &name, req).await?,
    ))
}

pub async fn delete(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_concurrency(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
