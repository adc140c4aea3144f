//! `/api/v1/usage`: requests, GB-seconds and cost per function and UTC day.

use axum::extract::{Query, State};
use holactl_engine::Engine;
use holactl_types::usage::UsageReport;
use serde::Deserialize;

use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Only days from this one on: a duration ago (`7d`), an RFC 3339 time or epoch ms.
    since: Option<String>,
    /// Only this function's usage.
    function: Option<String>,
}

pub async fn report(
    State(engine): State<Engine>,
    axum::Extension(principal): axum::Extension<holactl_engine::identity::Principal>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<UsageReport>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    Ok(axum::Json(
        engine
            .usage_of(q.since.as_deref(), q.function.as_deref(), |f| {
                crate::tenancy::visible(
                    &engine,
                    &principal,
                    holactl_engine::identity::ResourceKind::Function,
                    f,
                )
            })
            .await?,
    ))
}
