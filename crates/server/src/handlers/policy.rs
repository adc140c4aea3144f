//! `/api/v1/functions/{name}/policy` and `/api/v1/functions/{name}/aliases/{alias}/policy`:
//! execution policies (what a function may do through the internal API).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Router};
use holactl_engine::Engine;
use holactl_types::policy::{ExecutionPolicy, PolicyView};

use crate::error::ApiError;
use crate::extract::Json;
use crate::router::Actor;

/// The routes of execution policies (behind the token layer).
pub fn routes() -> Router<Engine> {
    Router::new()
        .route(
            "/api/v1/functions/{name}/policy",
            get(get_function).put(put_function).delete(delete_function),
        )
        .route(
            "/api/v1/functions/{name}/aliases/{alias}/policy",
            get(get_alias).put(put_alias).delete(delete_alias),
        )
}

pub async fn get_function(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<PolicyView>, ApiError> {
    Ok(axum::Json(engine.get_policy(&name, None).await?))
}

pub async fn put_function(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
    Json(policy): Json<ExecutionPolicy>,
) -> Result<axum::Json<PolicyView>, ApiError> {
    Ok(axum::Json(
        engine.set_policy(&actor, &name, None, policy).await?,
    ))
}

pub async fn delete_function(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_policy(&actor, &name, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_alias(
    State(engine): State<Engine>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<axum::Json<PolicyView>, ApiError> {
    Ok(axum::Json(engine.get_policy(&name, Some(&alias)).await?))
}

pub async fn put_alias(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((name, alias)): Path<(String, String)>,
    Json(policy): Json<ExecutionPolicy>,
) -> Result<axum::Json<PolicyView>, ApiError> {
    Ok(axum::Json(
        engine
            .set_policy(&actor, &name, Some(&alias), policy)
            .await?,
    ))
}

pub async fn delete_alias(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    engine.delete_policy(&actor, &name, Some(&alias)).await?;
    Ok(StatusCode::NO_CONTENT)
}
