//! Every limit and default of the platform, in one documented place.

/// Smallest function memory size, MB.
pub const MIN_MEMORY_MB: u32 = 512;
/// Largest function memory size, MB.
pub const MAX_MEMORY_MB: u32 = 4096;
/// Memory size when none is given, MB.
pub const DEFAULT_MEMORY_MB: u32 = 512;
/// Shortest timeout, seconds.
pub const MIN_TIMEOUT_S: u32 = 1;
/// Longest timeout (15 minutes), seconds.
pub const MAX_TIMEOUT_S: u32 = 900;
/// Timeout when none is given, seconds.
pub const DEFAULT_TIMEOUT_S: u32 = 30;
/// Smallest `/tmp` (ephemeral storage), MB.
pub const MIN_EPHEMERAL_STORAGE_MB: u32 = 512;
/// Largest `/tmp`, MB.
pub const MAX_EPHEMERAL_STORAGE_MB: u32 = 10_240;
/// `/tmp` size when none is given, MB.
pub const DEFAULT_EPHEMERAL_STORAGE_MB: u32 = 512;
/// Largest synchronous request or response payload, bytes (6 MB, as Lambda).
pub const MAX_SYNC_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Largest asynchronous event, bytes.
pub const MAX_ASYNC_PAYLOAD_BYTES: usize = 256 * 1024;
/// Largest zipped code package accepted by an upload, bytes.
pub const MAX_CODE_ZIP_BYTES: usize = 50 * 1024 * 1024;
/// Largest unpacked code package, bytes (250 MB, as Lambda's 262,144,000).
pub const MAX_CODE_UNPACKED_BYTES: u64 = 262_144_000;
/// Most files in one code package.
pub const MAX_CODE_FILES: usize = 20_000;
/// Most total bytes of environment variable names and values (4 KB, as Lambda).
pub const MAX_ENVIRONMENT_BYTES: usize = 4096;
/// Longest function name.
pub const MAX_FUNCTION_NAME_LEN: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 256;
/// Longest handler string.
pub const MAX_HANDLER_LEN: usize = 128;
/// Captured log bytes kept per execution; the rest is dropped and the log marked truncated.
pub const MAX_LOG_BYTES_PER_EXECUTION: usize = 1024 * 1024;
/// Result bytes kept in an execution record.
pub const MAX_STORED_RESULT_BYTES: usize = 256 * 1024;
/// How long an idle warm instance is kept before it is stopped, seconds.
pub const DEFAULT_IDLE_TTL_S: u64 = 300;
/// Account-wide concurrent executions.
pub const DEFAULT_ACCOUNT_CONCURRENCY: u32 = 1000;
/// Billing granularity of durations, milliseconds.
pub const BILLING_GRANULARITY_MS: u64 = 1;
/// Default region in ARNs and `AWS_REGION`.
pub const DEFAULT_REGION: &str = "local-1";
/// Default account id in ARNs.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
/// Most functions per project.
pub const MAX_FUNCTIONS: usize = 1000;
/// Most published versions kept per function.
pub const MAX_VERSIONS_PER_FUNCTION: usize = 100;
/// Longest secret name.
pub const MAX_SECRET_NAME_LEN: usize = 128;
/// Largest secret value, bytes.
pub const MAX_SECRET_BYTES: usize = 32 * 1024;
/// Default retries of a failed asynchronous invocation.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 2;
/// Most retries of a failed asynchronous invocation.
pub const MAX_RETRY_ATTEMPTS: u32 = 2;
/// Shortest maximum event age, seconds.
pub const MIN_EVENT_AGE_S: u32 = 60;
/// Longest (and default) maximum event age: 6 hours.
pub const MAX_EVENT_AGE_S: u32 = 21_600;
/// How long dead-lettered events are kept: 14 days.
pub const DLQ_RETENTION_S: u64 = 14 * 24 * 3600;
/// How long an idempotency key remembers its execution: 24 hours.
pub const IDEMPOTENCY_TTL_S: u64 = 24 * 3600;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
