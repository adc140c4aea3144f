//! The API's error type: every failure becomes `{"error":{"code","message","request_id"}}`
//! with the code's HTTP status; internal details go to the server log, not the client.

use axum::response::{IntoResponse, Response};
use axum::Json;
use holactl_engine::EngineError;
use holactl_types::{ErrorBody, ErrorCode, ErrorDetail};

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// Message for the client.
    pub message: String,
    /// Offending field, for `INVALID_INPUT`.
    pub field: Option<String>,
    /// Request or execution id.
    pub request_id: Option<String>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            request_id: None,
        }
    }

    /// `INVALID_INPUT` naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(ErrorCode::InvalidInput, message)
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        let code = err.code();
        if code == ErrorCode::InternalError || code == ErrorCode::ServiceUnavailable {
            tracing::error!(error = %err, code = %code, "request failed");
        }
        ApiError {
            code,
            message: err.public_message(),
            field: err.field().map(str::to_owned),
            request_id: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = axum::http::StatusCode::from_u16(self.code.http_status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let request_id = self
            .request_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                request_id: Some(request_id),
                field: self.field,
            },
        };
        (status, Json(body)).into_response()
    }
}
