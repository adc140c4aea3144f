//! Health, metrics, the OpenAPI document and the fallbacks.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use holactl_engine::Engine;
use holactl_types::api::Health;
use holactl_types::ErrorCode;

use crate::error::ApiError;

pub async fn health(State(engine): State<Engine>) -> Json<Health> {
    Json(engine.health())
}

pub async fn metrics(State(engine): State<Engine>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        engine.metrics_text(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI)
}

pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}
