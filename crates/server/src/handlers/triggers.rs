//! `/api/v1/triggers`: event-source mappings from a queue to a function.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use holactl_engine::Engine;
use holactl_types::queue::{CreateTriggerRequest, TriggerList, TriggerView};

use crate::error::ApiError;
use crate::extract::Json;
use crate::router::Actor;

/// The routes of triggers (behind the token layer).
pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/api/v1/triggers", post(create).get(list))
        .route("/api/v1/triggers/{id}", get(show).delete(remove))
        .route("/api/v1/triggers/{id}/enable", post(enable))
        .route("/api/v1/triggers/{id}/disable", post(disable))
}

pub async fn create(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Json(req): Json<CreateTriggerRequest>,
) -> Result<(StatusCode, axum::Json<TriggerView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_trigger(&actor, req).await?),
    ))
}

pub async fn list(
    State(engine): State<Engine>,
    Extension(principal): Extension<holactl_engine::identity::Principal>,
) -> Result<axum::Json<TriggerList>, ApiError> {
    Ok(axum::Json(TriggerList {
        triggers: crate::tenancy::only_visible(
            &engine,
            &principal,
            holactl_engine::identity::ResourceKind::Trigger,
            engine.list_triggers().await?,
            |x| &x.trigger.id,
        ),
    }))
}

pub async fn show(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<axum::Json<TriggerView>, ApiError> {
    Ok(axum::Json(engine.get_trigger(&id).await?))
}

pub async fn remove(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_trigger(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn enable(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<axum::Json<TriggerView>, ApiError> {
    Ok(axum::Json(
        engine.set_trigger_enabled(&actor, &id, true).await?,
    ))
}

pub async fn disable(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<axum::Json<TriggerView>, ApiError> {
    Ok(axum::Json(
        engine.set_trigger_enabled(&actor, &id, false).await?,
    ))
}
