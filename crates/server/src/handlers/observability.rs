//! `/api/v1/functions/{name}/metrics`, `/api/v1/alerts`, `/api/v1/workers/status`: what
//! functions did over a window, which alerts fire, what the platform is doing now.

use axum::extract::{Path, Query, State};
use holactl_engine::Engine;
use holactl_types::observability::{AlertList, FunctionMetrics, PlatformStatus};
use serde::Deserialize;

use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    /// Window start: a duration ago (`1h`), an RFC 3339 time or epoch ms. Default: 1 hour.
    since: Option<String>,
}

pub async fn function_metrics(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    query: Result<Query<MetricsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<FunctionMetrics>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    Ok(axum::Json(
        engine.function_metrics(&name, q.since.as_deref()).await?,
    ))
}

pub async fn alerts(
    State(engine): State<Engine>,
    axum::Extension(principal): axum::Extension<holactl_engine::identity::Principal>,
) -> Result<axum::Json<AlertList>, ApiError> {
    // Account-wide alerts are for administrators; others see their functions' alerts.
    let alerts = engine
        .alerts()
        .await?
        .into_iter()
        .filter(|a| match &a.function {
            Some(f) => crate::tenancy::visible(
                &engine,
                &principal,
                holactl_engine::identity::ResourceKind::Function,
                f,
            ),
            None => principal.is_admin(),
        })
        .collect();
    Ok(axum::Json(AlertList { alerts }))
}

pub async fn status(State(engine): State<Engine>) -> Result<axum::Json<PlatformStatus>, ApiError> {
    Ok(axum::Json(engine.status().await?))
}
