//! Executions: one invocation of a function, from acceptance to its end.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::ErrorCode;
use crate::EpochMillis;

/// Where an execution is in its life (seed 004's states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Accepted, not started.
    Pending,
    /// Handed to an instance.
    Running,
    /// Finished with a result.
    Complete,
    /// Finished with an error.
    Failed,
    /// Cancelled before or while running.
    Cancelled,
    /// Stopped at its deadline.
    Timeout,
}

impl ExecutionStatus {
    /// The state's wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Complete => "complete",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::Timeout => "timeout",
        }
    }

    /// Parses the wire form.
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        Some(match s {
            "pending" => ExecutionStatus::Pending,
            "running" => ExecutionStatus::Running,
            "complete" => ExecutionStatus::Complete,
            "failed" => ExecutionStatus::Failed,
            "cancelled" => ExecutionStatus::Cancelled,
            "timeout" => ExecutionStatus::Timeout,
            _ => return None,
        })
    }

    /// True once the execution can no longer change.
    pub fn is_final(self) -> bool {
        !matches!(self, ExecutionStatus::Pending | ExecutionStatus::Running)
    }
}

/// What started an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// `POST /functions/{name}/invoke` or `holactl lambda invoke`.
    Invoke,
    /// `POST /executions`.
    Api,
    /// `holactl lambda test --local`.
    Local,
    /// An asynchronous invocation (`X-Invocation-Type: Event`, `invoke --async`).
    Async,
    /// A schedule fired.
    Schedule,
    /// An event-source mapping delivered queue messages.
    Queue,
    /// A signed webhook delivery.
    Webhook,
    /// An HTTP request to a gateway route.
    Http,
    /// Another function, through the internal API (`/hola/v1/functions/{name}/invoke`).
    Function,
}

/// Why an execution failed, as recorded and returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionError {
    /// Stable code (`FUNCTION_ERROR`, `TIMEOUT`, `OUT_OF_MEMORY`, …).
    pub code: ErrorCode,
    /// Lambda's error type (`Sandbox.Timedout`, `Runtime.ExitError`, the exception class, …).
    pub error_type: String,
    /// Human-readable message.
    pub message: String,
}

/// One execution as stored and returned by `GET /api/v1/executions/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// Execution id; also the Lambda request id the function sees.
    pub id: String,
    /// Function name.
    pub function: String,
    /// The version that ran (`$LATEST` or a number).
    pub version: String,
    /// Current state.
    pub status: ExecutionStatus,
    /// What started it.
    pub trigger: Trigger,
    /// Acceptance time.
    pub created_at: EpochMillis,
    /// Hand-off to an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<EpochMillis>,
    /// End time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<EpochMillis>,
    /// Handler run time, ms (excludes init).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Duration rounded up to the billing granularity, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_duration_ms: Option<u64>,
    /// Init time of a cold start, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_duration_ms: Option<f64>,
    /// Whether a new instance was started for it.
    pub cold_start: bool,
    /// Memory size it ran with, MB.
    pub memory_mb: u32,
    /// Attempts so far.
    pub attempts: u32,
    /// The function's result (JSON), when complete and small enough to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<RawValue>>,
    /// Set when the result was too big to keep.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub result_truncated: bool,
    /// The failure, when failed or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
    /// Captured log bytes.
    pub log_bytes: u64,
    /// Set when the log was cut at the per-execution cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_truncated: bool,
}

/// Turns raw result bytes into stored JSON: valid JSON is kept as is, anything else is kept as
/// a JSON string. Returns `None` when the result is over `max` bytes.
pub fn result_to_json(bytes: &[u8], max: usize) -> Option<Box<RawValue>> {
    if bytes.len() > max {
        return None;
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    match RawValue::from_string(text) {
        Ok(raw) => Some(raw),
        Err(_) => {
            let quoted = serde_json::to_string(&String::from_utf8_lossy(bytes)).ok()?;
            RawValue::from_string(quoted).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip() {
        for s in [
            ExecutionStatus::Pending,
            ExecutionStatus::Running,
            ExecutionStatus::Complete,
            ExecutionStatus::Failed,
            ExecutionStatus::Cancelled,
            ExecutionStatus::Timeout,
        ] {
            assert_eq!(ExecutionStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!(!ExecutionStatus::Running.is_final());
        assert!(ExecutionStatus::Timeout.is_final());
    }

    #[test]
    fn results_become_json() {
        assert_eq!(
            result_to_json(br#"{"a":1}"#, 100).unwrap().get(),
            r#"{"a":1}"#
        );
        assert_eq!(
            result_to_json(b"plain text", 100).unwrap().get(),
            r#""plain text""#
        );
        assert!(result_to_json(b"123456", 3).is_none());
    }
}
