//! `/api/v1/executions`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Extension;
use holactl_engine::identity::ResourceKind;
use holactl_engine::Engine;
use holactl_types::api::{ExecutionList, ExecutionLogs, StartExecutionRequest};
use holactl_types::ExecutionRecord;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{parse_json, read_limited};

/// Default page size of execution lists.
const DEFAULT_LIMIT: usize = 50;
/// Largest page.
const MAX_LIMIT: usize = 1000;

pub async fn start(
    State(engine): State<Engine>,
    body: axum::body::Body,
) -> Result<(StatusCode, axum::Json<ExecutionRecord>), ApiError> {
    let bytes = read_limited(
        body,
        holactl_types::limits::MAX_SYNC_PAYLOAD_BYTES + 64 * 1024,
        "request body",
    )
    .await?;
    let req: StartExecutionRequest = parse_json(&bytes)?;
    let asynchronous = req.asynchronous;
    let record = engine.start_execution(req).await?;
    let status = if asynchronous {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(record)))
}

pub async fn cancel(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<axum::Json<ExecutionRecord>, ApiError> {
    Ok(axum::Json(engine.cancel_execution(&id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    function: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
}

pub async fn list(
    State(engine): State<Engine>,
    Extension(principal): Extension<holactl_engine::identity::Principal>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<ExecutionList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    if let Some(f) = &q.function {
        if !crate::tenancy::visible(&engine, &principal, ResourceKind::Function, f) {
            return Err(ResourceKind::Function.not_found(f).into());
        }
    }
    // Pages are filled with what the caller may see: records of other projects' functions
    // are skipped and the next page read, so a page is short only at the end of the history.
    let mut executions = Vec::new();
    let mut before = q.before;
    loop {
        let page = engine
            .list_executions(q.function.clone(), before, limit)
            .await?;
        let more = page.len() == limit;
        before = page.last().map(|e| e.id.clone());
        executions.extend(page.into_iter().filter(|e| {
            crate::tenancy::visible(&engine, &principal, ResourceKind::Function, &e.function)
        }));
        if executions.len() >= limit || !more {
            break;
        }
    }
    executions.truncate(limit);
    let next = (executions.len() == limit)
        .then(|| executions.last().map(|e| e.id.clone()))
        .flatten();
    Ok(axum::Json(ExecutionList { executions, next }))
}

pub async fn get(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<axum::Json<ExecutionRecord>, ApiError> {
    Ok(axum::Json(engine.get_execution(&id).await?))
}

pub async fn logs(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<axum::Json<ExecutionLogs>, ApiError> {
    Ok(axum::Json(engine.execution_logs(&id).await?))
}
