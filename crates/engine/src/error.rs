//! Engine errors and their stable codes.

use holactl_store::StoreError;
use holactl_types::{ErrorCode, ValidationError};

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such function.
    #[error("function {0:?} does not exist")]
    FunctionNotFound(String),
    /// No such execution.
    #[error("execution {0:?} does not exist")]
    ExecutionNotFound(String),
    /// A field is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A body is over its limit.
    #[error("{what} is {size} bytes; the limit is {limit}")]
    PayloadTooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Already exists or changed concurrently.
    #[error("{0}")]
    Conflict(String),
    /// The runtime is not installed.
    #[error("{0}")]
    RuntimeUnavailable(String),
    /// A count limit is reached.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// No such version, alias or secret.
    #[error("{0}")]
    ResourceNotFound(String),
    /// Too many concurrent executions.
    #[error("rate exceeded: {0}")]
    Throttled(String),
    /// Missing or wrong credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// The caller's role does not allow the operation.
    #[error("{0}")]
    Forbidden(String),
    /// The engine is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::FunctionNotFound(_) => ErrorCode::FunctionNotFound,
            EngineError::ExecutionNotFound(_) => ErrorCode::ExecutionNotFound,
            EngineError::Invalid(_) => ErrorCode::InvalidInput,
            EngineError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            EngineError::Conflict(_) => ErrorCode::Conflict,
            EngineError::RuntimeUnavailable(_) => ErrorCode::RuntimeUnavailable,
            EngineError::Throttled(_) => ErrorCode::Throttled,
            EngineError::LimitExceeded(_) => ErrorCode::LimitExceeded,
            EngineError::ResourceNotFound(_) => ErrorCode::ResourceNotFound,
            EngineError::Forbidden(_) => ErrorCode::Forbidden,
            EngineError::Unauthorized => ErrorCode::Unauthorized,
            EngineError::ShuttingDown => ErrorCode::ServiceUnavailable,
            EngineError::Store(StoreError::Unavailable(_)) => ErrorCode::ServiceUnavailable,
            EngineError::Store(StoreError::Conflict { .. }) => ErrorCode::Conflict,
            EngineError::Store(StoreError::NotFound(_)) => ErrorCode::NotFound,
            EngineError::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// For `INVALID_INPUT`: the field at fault.
    pub fn field(&self) -> Option<&str> {
        match self {
            EngineError::Invalid(v) => Some(&v.field),
            _ => None,
        }
    }

    /// A message safe to show clients (no internals for internal errors).
    pub fn public_message(&self) -> String {
        match self {
            EngineError::Internal(_) => "internal error".to_owned(),
            EngineError::Store(StoreError::Unavailable(_)) => "the store is unavailable".to_owned(),
            other => other.to_string(),
        }
    }

    /// An `INVALID_INPUT` error on `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        EngineError::Invalid(ValidationError::new(field, message))
    }
}
