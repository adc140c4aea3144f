//! `/api/v1/audit`: read-only; entries are only ever appended by the changes they record.

use axum::extract::{Query, State};
use holactl_engine::Engine;
use holactl_types::api::AuditList;
use serde::Deserialize;

use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this function's entries.
    function: Option<String>,
    /// Only entries at or after this time (epoch milliseconds).
    since: Option<i64>,
    /// At most this many (the newest).
    limit: Option<usize>,
}

pub async fn list(
    State(engine): State<Engine>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<AuditList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::invalid("limit", "must be between 1 and 10000"));
    }
    Ok(axum::Json(AuditList {
        entries: engine
            .list_audit(q.function.as_deref(), q.since, limit)
            .await?,
    }))
}
