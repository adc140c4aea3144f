//! `/api/v1/functions/{name}/dlq`: a function's dead-lettered async events.

use axum::extract::{Path, Query, State};
use holactl_engine::Engine;
use holactl_types::api::{
    DeadLetterList, DeadLetterView, PurgeResult, ReplayRequest, ReplayResult,
};
use holactl_types::ErrorCode;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::Json;

pub async fn list(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<DeadLetterList>, ApiError> {
    Ok(axum::Json(DeadLetterList {
        entries: engine.dead_letters(&name).await?,
    }))
}

pub async fn get(
    State(engine): State<Engine>,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<DeadLetterView>, ApiError> {
    engine
        .dead_letters(&name)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .map(axum::Json)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::ResourceNotFound,
                format!("no dead letter {id:?} for function {name:?}"),
            )
        })
}

pub async fn replay(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    Json(req): Json<ReplayRequest>,
) -> Result<axum::Json<ReplayResult>, ApiError> {
    let ids = match (req.ids, req.all) {
        (Some(ids), false) if !ids.is_empty() => Some(ids),
        (None, true) => None,
        _ => {
            return Err(ApiError::invalid(
                "ids",
                "give either a non-empty `ids` list or `all: true`",
            ))
        }
    };
    Ok(axum::Json(engine.replay_dead_letters(&name, ids).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeQuery {
    /// Only this entry.
    id: Option<String>,
}

pub async fn purge(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    query: Result<Query<PurgeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<PurgeResult>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let purged = engine
        .purge_dead_letters(&name, q.id.map(|id| vec![id]))
        .await?;
    Ok(axum::Json(PurgeResult { purged }))
}
