//! `/api/v1/schedules`: cron and rate schedules.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use holactl_engine::Engine;
use holactl_types::api::headers as h;
use holactl_types::schedule::{CreateScheduleRequest, ScheduleList, ScheduleView};

use crate::error::ApiError;
use crate::extract::Json;
use crate::router::Actor;

pub async fn create(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Json(req): Json<CreateScheduleRequest>,
) -> Result<(StatusCode, axum::Json<ScheduleView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_schedule(&actor, req).await?),
    ))
}

pub async fn list(
    State(engine): State<Engine>,
    Extension(principal): Extension<holactl_engine::identity::Principal>,
) -> Result<axum::Json<ScheduleList>, ApiError> {
    Ok(axum::Json(ScheduleList {
        schedules: crate::tenancy::only_visible(
            &engine,
            &principal,
            holactl_engine::identity::ResourceKind::Schedule,
            engine.list_schedules().await?,
            |x| &x.name,
        ),
    }))
}

pub async fn get(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<ScheduleView>, ApiError> {
    Ok(axum::Json(engine.get_schedule(&name).await?))
}

pub async fn pause(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<axum::Json<ScheduleView>, ApiError> {
    Ok(axum::Json(engine.pause_schedule(&actor, &name).await?))
}

pub async fn resume(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<axum::Json<ScheduleView>, ApiError> {
    Ok(axum::Json(engine.resume_schedule(&actor, &name).await?))
}

/// Fires the schedule now: 202 with the pending execution, like an asynchronous invoke.
pub async fn run(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let record = engine.run_schedule(&actor, &name).await?;
    let mut resp = (StatusCode::ACCEPTED, axum::Json(&record)).into_response();
    if let Ok(v) = HeaderValue::from_str(&record.id) {
        resp.headers_mut().insert(h::EXECUTION_ID, v);
    }
    Ok(resp)
}

pub async fn delete(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_schedule(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
