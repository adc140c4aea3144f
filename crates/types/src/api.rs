//! Bodies of the HTTP API (`/api/v1`), shared by the server and the typed client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::execution::ExecutionRecord;
use crate::function::{CodeRef, ConfigPatch, FunctionConfig};
use crate::EpochMillis;

/// Response headers of a synchronous invoke.
pub mod headers {
    /// The execution (request) id.
    pub const EXECUTION_ID: &str = "x-hola-execution-id";
    /// The version that ran.
    pub const EXECUTED_VERSION: &str = "x-hola-executed-version";
    /// Handler duration, ms (decimal).
    pub const DURATION_MS: &str = "x-hola-duration-ms";
    /// Billed duration, ms (integer).
    pub const BILLED_DURATION_MS: &str = "x-hola-billed-duration-ms";
    /// Init duration of a cold start, ms (decimal); absent when warm.
    pub const INIT_DURATION_MS: &str = "x-hola-init-duration-ms";
    /// `true` when a new instance was started.
    pub const COLD_START: &str = "x-hola-cold-start";
    /// `Unhandled` when the body is the function's error, as Lambda's `X-Amz-Function-Error`.
    pub const FUNCTION_ERROR: &str = "x-hola-function-error";
    /// The stable error code of a failed execution (`FUNCTION_ERROR`, `TIMEOUT`, …).
    pub const ERROR_CODE: &str = "x-hola-error-code";
    /// Request: `Tail` to get the last 4 KB of the log in [`LOG_RESULT`].
    pub const LOG_TYPE: &str = "x-hola-log-type";
    /// Base64 of the last 4 KB of the execution's log.
    pub const LOG_RESULT: &str = "x-hola-log-result";
    /// Set when the captured log was truncated.
    pub const LOG_TRUNCATED: &str = "x-hola-log-truncated";
    /// Request: `Event` for an asynchronous invocation (as Lambda's `X-Amz-Invocation-Type`).
    pub const INVOCATION_TYPE: &str = "x-invocation-type";
    /// Request: the same key gives the same execution (24 h).
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
}

/// `POST /api/v1/functions`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateFunctionRequest {
    /// Function name.
    pub name: String,
    /// sha256 of a package uploaded with `POST /api/v1/code`.
    pub code_sha256: String,
    /// Runtime identifier (required).
    #[serde(default)]
    pub runtime: Option<String>,
    /// Handler; the runtime's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Memory size, MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// Timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Size of `/tmp`, MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_mb: Option<u32>,
    /// `isolated` or `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::function::Network>,
    /// Secret bindings: variable name → secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<BTreeMap<String, String>>,
    /// Retries of failed async invocations (0–2, default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_attempts: Option<u32>,
    /// Maximum age of an async event, seconds (60–21600, default 21600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_age_s: Option<u32>,
}

impl CreateFunctionRequest {
    /// The configuration part of the request.
    pub fn config_patch(&self) -> ConfigPatch {
        ConfigPatch {
            runtime: self.runtime.clone(),
            handler: self.handler.clone(),
            memory_mb: self.memory_mb,
            timeout_s: self.timeout_s,
            environment: self.environment.clone(),
            description: self.description.clone(),
            ephemeral_storage_mb: self.ephemeral_storage_mb,
            network: self.network,
            secrets: self.secrets.clone(),
            max_retry_attempts: self.max_retry_attempts,
            max_event_age_s: self.max_event_age_s,
        }
    }
}

/// `PATCH /api/v1/functions/{name}`: code and/or configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateFunctionRequest {
    /// New code package, uploaded first with `POST /api/v1/code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_sha256: Option<String>,
    /// New runtime identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// New handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// New memory size, MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// New timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// Replaces all environment variables when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New `/tmp` size, MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_mb: Option<u32>,
    /// New network mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::function::Network>,
    /// Replaces every secret binding when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<BTreeMap<String, String>>,
    /// New retries of failed async invocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_attempts: Option<u32>,
    /// New maximum age of an async event, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_age_s: Option<u32>,
}

impl UpdateFunctionRequest {
    /// The configuration part of the request.
    pub fn config_patch(&self) -> ConfigPatch {
        ConfigPatch {
            runtime: self.runtime.clone(),
            handler: self.handler.clone(),
            memory_mb: self.memory_mb,
            timeout_s: self.timeout_s,
            environment: self.environment.clone(),
            description: self.description.clone(),
            ephemeral_storage_mb: self.ephemeral_storage_mb,
            network: self.network,
            secrets: self.secrets.clone(),
            max_retry_attempts: self.max_retry_attempts,
            max_event_age_s: self.max_event_age_s,
        }
    }
}

/// How a runtime identifier maps onto this host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeResolution {
    /// The interpreter that runs the function (absent for `provided`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// The interpreter's own version string (e.g. `Python 3.11.2`, `v20.20.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter_version: Option<String>,
    /// Set when the host has no exact match and a nearby version runs instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A function as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FunctionView {
    /// Name.
    pub name: String,
    /// Always `$LATEST` for now.
    pub version: String,
    /// Lambda-style ARN.
    pub arn: String,
    /// Configuration.
    #[serde(flatten)]
    pub config: FunctionConfig,
    /// Code package.
    pub code: CodeRef,
    /// How the runtime maps onto this host.
    pub runtime_resolution: RuntimeResolution,
    /// Creation time.
    pub created_at: EpochMillis,
    /// Last change.
    pub updated_at: EpochMillis,
}

/// `GET /api/v1/functions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FunctionList {
    /// Functions by name.
    pub functions: Vec<FunctionView>,
}

/// `POST /api/v1/code`: the stored package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeUploaded {
    /// Content address.
    #[serde(flatten)]
    pub code: CodeRef,
    /// Files in the package.
    pub files: u64,
}

/// `POST /api/v1/executions`: run a function (synchronously) and return its execution.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartExecutionRequest {
    /// Function name.
    pub function: String,
    /// The event (any JSON).
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    /// `$LATEST`, a version or an alias.
    #[serde(default)]
    pub qualifier: Option<String>,
    /// Queue it and answer 202 at once instead of waiting for the result.
    #[serde(default, rename = "async")]
    pub asynchronous: bool,
    /// Same key, same execution (24 h).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `GET /api/v1/executions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecutionList {
    /// Newest first.
    pub executions: Vec<ExecutionRecord>,
    /// Pass as `before` to get the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /api/v1/executions/{id}/logs`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecutionLogs {
    /// Execution id.
    pub execution_id: String,
    /// Function name.
    pub function: String,
    /// Captured output, lossily decoded as UTF-8.
    pub log: String,
    /// Set when the log was cut at the cap.
    pub truncated: bool,
}

/// `GET /api/v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` with reasons in `warnings`.
    pub status: String,
    /// Server version.
    pub version: String,
    /// Isolation level in force (`namespaces` or `process`).
    pub isolation: String,
    /// Store backend (`embedded` or `nats`).
    pub store: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Functions defined.
    pub functions: u64,
    /// Instances by state.
    pub instances: BTreeMap<String, u64>,
    /// Runtimes available on this host.
    pub runtimes: BTreeMap<String, RuntimeResolution>,
    /// Things an operator should know.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The cluster's nodes (cluster mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::observability::ClusterStatus>,
}

/// `POST /api/v1/functions/{name}/versions`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishVersionRequest {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A published version as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionView {
    /// Function name.
    pub function: String,
    /// Version number, as text (`"1"`), like Lambda.
    pub version: String,
    /// Qualified ARN.
    pub arn: String,
    /// Free text.
    pub description: String,
    /// Configuration snapshot.
    pub config: FunctionConfig,
    /// Code snapshot.
    pub code: CodeRef,
    /// Publish time.
    pub created_at: EpochMillis,
}

/// `GET /api/v1/functions/{name}/versions`: `$LATEST` first, then by number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionList {
    /// Versions.
    pub versions: Vec<VersionView>,
}

/// Weighted routing in requests: `weight` percent (0–100) of traffic to `version`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRequest {
    /// The additional version.
    pub version: u32,
    /// Percent of traffic, 0–100.
    pub weight: f64,
}

/// `PUT /api/v1/functions/{name}/aliases/{alias}`: create or repoint an alias.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAliasRequest {
    /// The version it points to.
    pub version: u32,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Optional weighted routing to a second version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingRequest>,
}

/// `POST /api/v1/functions/{name}/aliases/{alias}/shift`: send `weight` percent of traffic to
/// version `to`; 100 completes the shift.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftAliasRequest {
    /// Target version.
    pub to: u32,
    /// Percent of traffic, 0–100.
    pub weight: f64,
}

/// An alias as the API returns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AliasView {
    /// The alias.
    #[serde(flatten)]
    pub alias: crate::version::AliasRecord,
    /// Qualified ARN.
    pub arn: String,
}

/// `GET /api/v1/functions/{name}/aliases`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AliasList {
    /// Aliases by name.
    pub aliases: Vec<AliasView>,
}

/// `PUT /api/v1/secrets/{name}`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSecretRequest {
    /// The secret value (never returned).
    pub value: String,
}

impl std::fmt::Debug for SetSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetSecretRequest { value: **** }")
    }
}

/// A secret as the API shows it: never its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecretView {
    /// Name.
    pub name: String,
    /// Incremented on every change.
    pub version: u32,
    /// Creation time.
    pub created_at: EpochMillis,
    /// Last change.
    pub updated_at: EpochMillis,
}

/// `GET /api/v1/secrets`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecretList {
    /// Secrets by name.
    pub secrets: Vec<SecretView>,
}

/// `GET /api/v1/audit`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditList {
    /// Oldest first.
    pub entries: Vec<crate::audit::AuditEntry>,
}

/// A dead-lettered asynchronous event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetterView {
    /// The dead execution's id (also the DLQ entry's id).
    pub id: String,
    /// Function name.
    pub function: String,
    /// Qualifier it was invoked with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// The event.
    pub payload: serde_json::Value,
    /// Attempts made.
    pub attempts: u32,
    /// Accepted at (epoch ms).
    pub enqueued_at: EpochMillis,
    /// Dead-lettered at (epoch ms).
    pub died_at: EpochMillis,
    /// Kept until (epoch ms).
    pub expires_at: EpochMillis,
    /// The last error.
    pub reason: String,
}

/// `GET /api/v1/functions/{name}/dlq`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetterList {
    /// Oldest first.
    pub entries: Vec<DeadLetterView>,
}

/// `POST /api/v1/functions/{name}/dlq/replay`: `ids`, or `all`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// These entries.
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    /// Every entry of the function.
    #[serde(default)]
    pub all: bool,
}

/// The answer of a replay: the new executions started.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplayResult {
    /// (dead entry id, new execution id).
    pub replayed: Vec<(String, String)>,
}

/// `DELETE /api/v1/functions/{name}/dlq`: how many entries were removed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PurgeResult {
    /// Entries removed.
    pub purged: u64,
}
