//! Stable error codes: the same code appears in HTTP responses, CLI output and execution
//! records.

use serde::{Deserialize, Serialize};

/// A stable, documented error code. Its string form never changes once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Missing or wrong credentials.
    Unauthorized,
    /// Valid credentials whose role does not allow the operation.
    Forbidden,
    /// No function with that name.
    FunctionNotFound,
    /// No execution with that id.
    ExecutionNotFound,
    /// No such route or resource.
    NotFound,
    /// A field of the request is malformed or out of bounds.
    InvalidInput,
    /// A request or response body is over its limit.
    PayloadTooLarge,
    /// The resource already exists or changed concurrently.
    Conflict,
    /// The function did not finish within its timeout.
    Timeout,
    /// The function raised an error, failed to initialise or its process exited.
    FunctionError,
    /// The function's instance ran out of memory.
    OutOfMemory,
    /// A concurrency limit refused the invocation.
    Throttled,
    /// A count limit (functions per project, versions per function) is reached.
    LimitExceeded,
    /// No such version, alias or secret.
    ResourceNotFound,
    /// The execution was cancelled.
    Cancelled,
    /// The runtime a function asks for is not installed on this host.
    RuntimeUnavailable,
    /// The HTTP method is not allowed on that path.
    MethodNotAllowed,
    /// The server is shutting down or a dependency is unavailable.
    ServiceUnavailable,
    /// An unexpected failure inside the platform.
    InternalError,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::FunctionNotFound,
        ErrorCode::ExecutionNotFound,
        ErrorCode::NotFound,
        ErrorCode::InvalidInput,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Conflict,
        ErrorCode::Timeout,
        ErrorCode::FunctionError,
        ErrorCode::OutOfMemory,
        ErrorCode::Throttled,
        ErrorCode::LimitExceeded,
        ErrorCode::ResourceNotFound,
        ErrorCode::Cancelled,
        ErrorCode::RuntimeUnavailable,
        ErrorCode::MethodNotAllowed,
        ErrorCode::ServiceUnavailable,
        ErrorCode::InternalError,
    ];

    /// The code's wire form, e.g. `FUNCTION_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::FunctionNotFound => "FUNCTION_NOT_FOUND",
            ErrorCode::ExecutionNotFound => "EXECUTION_NOT_FOUND",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::FunctionError => "FUNCTION_ERROR",
            ErrorCode::OutOfMemory => "OUT_OF_MEMORY",
            ErrorCode::Throttled => "THROTTLED",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::ResourceNotFound => "RESOURCE_NOT_FOUND",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::RuntimeUnavailable => "RUNTIME_UNAVAILABLE",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status an API error with this code is sent with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::FunctionNotFound
            | ErrorCode::ExecutionNotFound
            | ErrorCode::NotFound
            | ErrorCode::ResourceNotFound => 404,
            ErrorCode::LimitExceeded => 400,
            ErrorCode::Cancelled => 409,
            ErrorCode::InvalidInput => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Conflict => 409,
            ErrorCode::Timeout => 504,
            ErrorCode::FunctionError | ErrorCode::OutOfMemory => 502,
            ErrorCode::Throttled => 429,
            ErrorCode::RuntimeUnavailable => 422,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::ServiceUnavailable => 503,
            ErrorCode::InternalError => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON envelope of every API error: `{"error":{"code","message","request_id"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The request (or execution) id the error belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For `INVALID_INPUT`: the offending field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A value that failed validation, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct ValidationError {
    /// The field, in the API's spelling (e.g. `memory_mb`, `environment.FOO`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// A new validation error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn statuses_are_errors() {
        for code in ErrorCode::ALL {
            assert!((400..600).contains(&code.http_status()), "{code}");
        }
    }
}
