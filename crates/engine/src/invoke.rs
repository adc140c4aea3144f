//! The invocation pipeline: resolve the function, admit under the concurrency limit, take a
//! warm instance or start one, hand the event over, and record what happened.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use std::path::PathBuf;

use holactl_sandbox::{
    InstanceSpec, Invocation, InvokeOutcome, InvokeResult, IsolationLevel, NetworkMode,
};
use holactl_store::{ExecutionQuery, StoredLog};
use holactl_types::api::{ExecutionLogs, StartExecutionRequest};
use holactl_types::execution::{result_to_json, ExecutionError};
use holactl_types::function::Network;
use holactl_types::limits::{MAX_STORED_RESULT_BYTES, MAX_SYNC_PAYLOAD_BYTES};
use holactl_types::version::Qualifier;
use holactl_types::{ErrorCode, ExecutionRecord, ExecutionStatus, RuntimeFamily, Trigger};

use crate::metrics::{ErrorLabels, Metrics, OutcomeLabels};
use crate::pool::Worker;
use crate::{now_ms, Engine, EngineError, Runnable};

/// Bytes of log returned with `log_tail`, as Lambda's `LogType=Tail`.
const LOG_TAIL_BYTES: usize = 4096;

/// One synchronous invocation.
#[derive(Clone, Debug)]
pub struct InvokeRequest {
    /// The event.
    pub payload: Bytes,
    /// What started it.
    pub trigger: Trigger,
    /// Return the last 4 KB of the log.
    pub log_tail: bool,
    /// `Lambda-Runtime-Client-Context` (JSON), if any.
    pub client_context: Option<String>,
    /// `$LATEST` (default), a version or an alias.
    pub qualifier: Option<Qualifier>,
    /// The execution id to use (async deliveries keep theirs); a new one when `None`.
    pub execution_id: Option<String>,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
    /// When the invocation was first accepted; now when `None`.
    pub accepted_at: Option<i64>,
    /// Wait for a concurrency slot instead of failing with `THROTTLED` (async work waits in
    /// its queue).
    pub wait_for_capacity: bool,
    /// Same key, same execution (24 h); `CONFLICT` while the first still runs.
    pub idempotency_key: Option<String>,
    /// Never hand this invocation to another node (it was handed to this one).
    pub(crate) no_spill: bool,
}

impl InvokeRequest {
    /// A plain invocation of `$LATEST` with `payload`.
    pub fn new(payload: Bytes, trigger: Trigger) -> Self {
        InvokeRequest {
            payload,
            trigger,
            log_tail: false,
            client_context: None,
            qualifier: None,
            execution_id: None,
            attempt: 1,
            accepted_at: None,
            wait_for_capacity: false,
            idempotency_key: None,
            no_spill: false,
        }
    }
}

/// A uniform random number in [0, 1): weighted alias routing, backoff jitter.
pub(crate) fn uniform() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The result of a synchronous invocation.
#[derive(Clone, Debug)]
pub struct InvokeResponse {
    /// The execution as recorded.
    pub record: ExecutionRecord,
    /// The function's answer, or Lambda's error object when it failed.
    pub body: Bytes,
    /// `Unhandled` when `body` is an error object (Lambda's `X-Amz-Function-Error`).
    pub function_error: Option<&'static str>,
    /// Base64 of the log's last 4 KB, when asked for.
    pub log_tail: Option<String>,
}

fn lambda_error(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string())
}

fn error_message_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned())
}

fn trace_id(request_id: &str) -> String {
    let secs = now_ms() / 1000;
    let hex: String = request_id.chars().filter(|c| *c != '-').collect();
    let root = hex.get(..24).unwrap_or("000000000000000000000000");
    let parent = hex.get(16..32).unwrap_or("0000000000000000");
    format!("Root=1-{secs:08x}-{root};Parent={parent};Sampled=0")
}

/// Maps what the instance did to (status, body, error).
fn classify(
    request_id: &str,
    timeout_s: u32,
    result: InvokeResult,
) -> (ExecutionStatus, Bytes, Option<ExecutionError>) {
    let fail = |code: ErrorCode, error_type: &str, message: String, body: Bytes| {
        (
            if code == ErrorCode::Timeout {
                ExecutionStatus::Timeout
            } else {
                ExecutionStatus::Failed
            },
            body,
            Some(ExecutionError {
                code,
                error_type: error_type.to_owned(),
                message,
            }),
        )
    };
    match result {
        InvokeResult::Response(body) => (ExecutionStatus::Complete, body, None),
        InvokeResult::FunctionError { error_type, body }
        | InvokeResult::InitError { error_type, body } => {
            let message = error_message_of(&body);
            fail(ErrorCode::FunctionError, &error_type, message, body)
        }
        InvokeResult::ResponseTooLarge => {
            let message = format!(
                "Response payload size exceeded maximum allowed payload size ({MAX_SYNC_PAYLOAD_BYTES} bytes)."
            );
            let body = lambda_error("Function.ResponseSizeTooLarge", &message);
            fail(
                ErrorCode::PayloadTooLarge,
                "Function.ResponseSizeTooLarge",
                message,
                body,
            )
        }
        InvokeResult::Timeout { during_init } => {
            let message = if during_init {
                format!("RequestId: {request_id} Error: Runtime did not become ready in time")
            } else {
                format!(
                    "RequestId: {request_id} Error: Task timed out after {timeout_s}.00 seconds"
                )
            };
            let body = lambda_error("Sandbox.Timedout", &message);
            fail(ErrorCode::Timeout, "Sandbox.Timedout", message, body)
        }
        InvokeResult::Exited(info) => {
            let (code, error_type, message) = if info.oom {
                (
                    ErrorCode::OutOfMemory,
                    "Runtime.OutOfMemory",
                    format!(
                        "RequestId: {request_id} Error: Runtime exited with error: {}",
                        info.describe()
                    ),
                )
            } else if let Some((step, msg)) = &info.setup_failure {
                let error_type = if step == "exec" {
                    "Runtime.InvalidEntrypoint"
                } else {
                    "Runtime.SandboxSetupFailed"
                };
                (
                    ErrorCode::FunctionError,
                    error_type,
                    format!("RequestId: {request_id} Error: {step}: {msg}"),
                )
            } else {
                (
                    ErrorCode::FunctionError,
                    "Runtime.ExitError",
                    format!(
                        "RequestId: {request_id} Error: Runtime exited with error: {}",
                        info.describe()
                    ),
                )
            };
            let body = lambda_error(error_type, &message);
            fail(code, error_type, message, body)
        }
    }
}

/// Lambda-style log: START, the captured output, END, REPORT.
fn format_log(record: &ExecutionRecord, outcome: &InvokeOutcome) -> Vec<u8> {
    let id = &record.id;
    let mut log = Vec::with_capacity(outcome.log.data.len() + 256);
    log.extend_from_slice(
        format!("START RequestId: {id} Version: {}\n", record.version).as_bytes(),
    );
    log.extend_from_slice(&outcome.log.data);
    if !log.ends_with(b"\n") {
        log.push(b'\n');
    }
    if outcome.log.truncated {
        log.extend_from_slice(
            format!(
                "[holactl] output truncated: {} bytes written, {} kept\n",
                outcome.log.total_bytes,
                outcome.log.data.len()
            )
            .as_bytes(),
        );
    }
    if let Some(err) = &record.error {
        if err.code != ErrorCode::FunctionError || err.error_type.starts_with("Runtime.") {
            log.extend_from_slice(format!("{}\n{}\n", err.message, err.error_type).as_bytes());
        }
    }
    log.extend_from_slice(format!("END RequestId: {id}\n").as_bytes());
    let mut report = format!(
        "REPORT RequestId: {id}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB",
        record.duration_ms.unwrap_or(0.0),
        record.billed_duration_ms.unwrap_or(0),
        record.memory_mb
    );
    if let Some(init) = record.init_duration_ms {
        report.push_str(&format!("\tInit Duration: {init:.2} ms"));
    }
    if record.status == ExecutionStatus::Timeout {
        report.push_str("\tStatus: timeout");
    }
    log.extend_from_slice(report.as_bytes());
    log.push(b'\n');
    log
}

fn log_stream_name(version: &str, instance_id: &str) -> String {
    let date = time::OffsetDateTime::now_utc().date();
    format!(
        "{:04}/{:02}/{:02}/[{version}]{instance_id}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

impl Engine {
    pub(crate) fn instance_spec(
        &self,
        run: &Runnable,
        secrets: &[(String, String)],
    ) -> Result<InstanceSpec, EngineError> {
        let inner = &self.inner;
        let config = &run.config;
        let task_root = inner.code.path(&run.code.sha256);
        let runtime_dir = inner.catalog.runtime_dir().to_owned();
        // Where the instance sees its code and our runtime files.
        let level = inner.sandbox.level();
        let (view_task, view_runtime) = match level {
            IsolationLevel::Namespaces => (
                PathBuf::from(holactl_sandbox::jail::TASK_DIR),
                PathBuf::from(holactl_sandbox::jail::RUNTIME_DIR),
            ),
            IsolationLevel::Process => (task_root.clone(), runtime_dir.clone()),
        };
        let resolved = inner
            .catalog
            .resolve(&config.runtime, &view_task, &view_runtime)
            .map_err(|e| EngineError::RuntimeUnavailable(e.to_string()))?;
        let instance_id = uuid::Uuid::new_v4().simple().to_string();
        let execution_env = match config.runtime.family() {
            RuntimeFamily::Provided => "AWS_Lambda_rapid".to_owned(),
            _ => format!("AWS_Lambda_{}", config.runtime),
        };
        let task = view_task.display().to_string();
        let rt = view_runtime.display().to_string();
        let mut env: Vec<(String, String)> = vec![
            ("_HANDLER".into(), config.handler.clone()),
            ("LAMBDA_TASK_ROOT".into(), task.clone()),
            ("LAMBDA_RUNTIME_DIR".into(), rt.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), run.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), run.version.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                config.memory_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                format!("/aws/lambda/{}", run.name),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME".into(),
                log_stream_name(&run.version, &instance_id),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
            ("AWS_REGION".into(), inner.config.region.clone()),
            ("AWS_DEFAULT_REGION".into(), inner.config.region.clone()),
            ("AWS_EXECUTION_ENV".into(), execution_env),
            ("TZ".into(), ":UTC".into()),
            ("LANG".into(), "en_US.UTF-8".into()),
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            (
                "LD_LIBRARY_PATH".into(),
                format!("/lib64:/usr/lib64:{rt}:{rt}/lib:{task}:{task}/lib"),
            ),
        ];
        env.extend(
            config
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        env.extend(secrets.iter().cloned());
        Ok(InstanceSpec {
            instance_id,
            argv: resolved.argv,
            env,
            cwd: view_task,
            task_root,
            runtime_dir,
            memory_mb: config.memory_mb,
            tmp_mb: config.ephemeral_storage_mb,
            max_pids: inner.config.max_pids,
            max_open_files: 1024,
            level,
            network: match config.network {
                Network::Isolated => NetworkMode::Isolated,
                Network::Host => NetworkMode::Host,
            },
            root_mount: inner.config.data_dir.join("sandbox/root"),
            cgroup: None,
            uid: holactl_sandbox::jail::SANDBOX_UID,
            gid: holactl_sandbox::jail::SANDBOX_GID,
        })
    }

    /// Runs `name` synchronously with `req.payload` and waits for its answer.
    pub async fn invoke(
        &self,
        name: &str,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, EngineError> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        if req.payload.len() > MAX_SYNC_PAYLOAD_BYTES {
            return Err(EngineError::PayloadTooLarge {
                what: "request payload",
                size: req.payload.len(),
                limit: MAX_SYNC_PAYLOAD_BYTES,
            });
        }
        let run = self.resolve(name, req.qualifier.as_ref())?;
        let mut req = req;
        let idempotency_key = req.idempotency_key.take();
        if let Some(key) = &idempotency_key {
            match self.idempotency_begin(name, key).await? {
                crate::idempotency::Begin::New(id) => req.execution_id = Some(id),
                crate::idempotency::Begin::Existing(record) => {
                    return Ok(InvokeResponse {
                        body: crate::idempotency::replay_body(&record),
                        function_error: record.error.as_ref().map(|_| "Unhandled"),
                        record: *record,
                        log_tail: None,
                    })
                }
            }
        }
        // The function's own cap first, so a capped function never holds an account slot.
        let _reserved = match inner.limits.admit(name, req.wait_for_capacity).await {
            Ok(permit) => permit,
            Err(e) => {
                self.note_throttle(name);
                tracing::warn!(function = %name, limit = "function", "invocation throttled");
                return Err(e);
            }
        };
        // Cluster mode: the reserved limit holds for the whole cluster, not per node.
        let cluster_slot = match (&inner.cluster, &_reserved) {
            (Some(cluster), Some(_)) => {
                let claim = crate::cluster::slots::Claim {
                    kv: &inner.stores.kv,
                    node: &cluster.node_id,
                    function: name,
                    hold_ms: self.invocation_bound_ms(run.config.timeout_s),
                };
                let limits = &inner.limits;
                match claim
                    .claim(req.wait_for_capacity, || limits.reserved_limit(name))
                    .await
                {
                    Ok(slot) => slot,
                    Err(e) => {
                        self.note_throttle(name);
                        tracing::warn!(function = %name, limit = "function", scope = "cluster", "invocation throttled");
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        let _permit = if req.wait_for_capacity {
            inner
                .concurrency
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| EngineError::ShuttingDown)?
        } else {
            let Ok(permit) = inner.concurrency.clone().try_acquire_owned() else {
                // Cluster mode: another node with a free slot may run it (claiming its own
                // cluster slot for a reserved function).
                drop(cluster_slot);
                if !req.no_spill && idempotency_key.is_none() {
                    if let Some(resp) = self.spill(name, &req, run.config.timeout_s).await {
                        return Ok(resp);
                    }
                }
                self.note_throttle(name);
                tracing::warn!(
                    function = %name,
                    limit = "account",
                    max_concurrency = inner.config.max_concurrency,
                    "invocation throttled"
                );
                return Err(EngineError::Throttled(format!(
                    "account concurrency limit of {} reached",
                    inner.config.max_concurrency
                )));
            };
            permit
        };
        inner.metrics.concurrent.inc();
        let result = self.invoke_admitted(&run, req).await;
        inner.metrics.concurrent.dec();
        if let Some(key) = &idempotency_key {
            self.idempotency_finish(name, key).await;
        }
        result
    }

    /// What `name` with `qualifier` runs (an alias picks one of its versions by weight).
    pub(crate) fn resolve(
        &self,
        name: &str,
        qualifier: Option<&Qualifier>,
    ) -> Result<Arc<Runnable>, EngineError> {
        let f = self.function_entry(name)?;
        let run = match qualifier {
            None | Some(Qualifier::Latest) => f.latest.clone(),
            Some(Qualifier::Version(n)) => f
                .versions
                .get(n)
                .map(|(_, run)| run.clone())
                .ok_or_else(|| {
                    EngineError::ResourceNotFound(format!("function {name:?} has no version {n}"))
                })?,
            Some(Qualifier::Alias(a)) => {
                let alias = f.aliases.get(a).ok_or_else(|| {
                    EngineError::ResourceNotFound(format!("function {name:?} has no alias {a:?}"))
                })?;
                let n = alias.pick(uniform());
                f.versions
                    .get(&n)
                    .map(|(_, run)| run.clone())
                    .ok_or_else(|| {
                        EngineError::Internal(format!("alias {a:?} points to missing version {n}"))
                    })?
            }
        };
        Ok(run)
    }

    async fn invoke_admitted(
        &self,
        run: &Arc<Runnable>,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, EngineError> {
        let inner = &self.inner;
        let name = &run.name;
        let config = &run.config;
        let request_id = req
            .execution_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let created_at = req.accepted_at.unwrap_or_else(now_ms);
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
        let _running = crate::cancel::Running::register(self, &request_id, cancel_tx);

        let mut worker = match inner.pool.acquire(name, &run.instance_key) {
            Some(worker) => worker,
            None => {
                let _starting = inner.pool.starting();
                // In a cluster the package may have been uploaded through another node.
                self.ensure_code(&run.code).await?;
                let secrets = self.resolve_secrets(config).await?;
                let spec = self.instance_spec(run, &secrets)?;
                let instance =
                    inner.sandbox.spawn(spec).await.map_err(|e| {
                        EngineError::Internal(format!("cannot start instance: {e}"))
                    })?;
                tracing::info!(
                    function = %name,
                    version = %run.version,
                    instance_key = %run.instance_key,
                    "instance started"
                );
                Worker {
                    instance,
                    secrets: secrets.into_iter().map(|(_, v)| v).collect(),
                    provisioned: None,
                }
            }
        };
        inner.pool.mark_busy();

        let invocation = Invocation {
            request_id: request_id.clone(),
            payload: req.payload,
            timeout: Duration::from_secs(u64::from(config.timeout_s)),
            function_arn: match &req.qualifier {
                Some(q) => format!("{}:{q}", run.arn),
                None => run.arn.clone(),
            },
            trace_id: trace_id(&request_id),
            client_context: req.client_context,
            cognito_identity: None,
            hola_token: Some(self.mint_token(
                run,
                req.qualifier.as_ref(),
                &request_id,
                worker.instance.id(),
            )),
        };
        let started_at = now_ms();
        let outcome = tokio::select! {
            outcome = worker.instance.invoke(invocation) => Some(outcome),
            _ = cancel_rx => None,
        };
        let Some(mut outcome) = outcome else {
            worker.instance.kill();
            inner.pool.discard();
            drop(worker);
            tracing::info!(function = %name, reason = "cancelled", "instance stopped");
            return Ok(self.cancelled(
                run,
                req.trigger,
                &request_id,
                created_at,
                started_at,
                req.attempt,
            ));
        };
        if !worker.secrets.is_empty() {
            crate::secrets::mask(&mut outcome.log.data, &worker.secrets);
        }
        if worker.instance.is_reusable() {
            inner.pool.release(name, &run.instance_key, worker);
        } else {
            inner.pool.discard();
            drop(worker);
            tracing::info!(function = %name, reason = "not_reusable", "instance stopped");
        }

        let (status, body, error) = classify(&request_id, config.timeout_s, outcome.result.clone());
        let duration_ms = outcome.duration.as_secs_f64() * 1000.0;
        let billed = (duration_ms.ceil() as u64).max(1);
        let mut record = ExecutionRecord {
            id: request_id,
            function: name.clone(),
            version: run.version.clone(),
            status,
            trigger: req.trigger,
            created_at,
            started_at: Some(started_at),
            ended_at: Some(now_ms()),
            duration_ms: Some((duration_ms * 1000.0).round() / 1000.0),
            billed_duration_ms: Some(billed),
            init_duration_ms: outcome
                .init_duration
                .map(|d| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0),
            cold_start: outcome.cold_start,
            memory_mb: config.memory_mb,
            attempts: req.attempt,
            result: None,
            result_truncated: false,
            error,
            log_bytes: 0,
            log_truncated: outcome.log.truncated,
        };
        if status == ExecutionStatus::Complete {
            record.result = result_to_json(&body, MAX_STORED_RESULT_BYTES);
            record.result_truncated = record.result.is_none();
        }
        let log = format_log(&record, &outcome);
        record.log_bytes = log.len() as u64;
        self.observe(&record, &outcome);
        let log_tail = req.log_tail.then(|| {
            let tail = &log[log.len().saturating_sub(LOG_TAIL_BYTES)..];
            base64::engine::general_purpose::STANDARD.encode(tail)
        });
        inner.stores.executions.record_later(
            record.clone(),
            Some(StoredLog {
                data: log,
                truncated: outcome.log.truncated,
            }),
        );
        Ok(InvokeResponse {
            function_error: record.error.as_ref().map(|_| "Unhandled"),
            record,
            body,
            log_tail,
        })
    }

    fn observe(&self, record: &ExecutionRecord, outcome: &InvokeOutcome) {
        let m = &self.inner.metrics;
        let labels = Metrics::function(&record.function);
        m.invocations
            .get_or_create(&OutcomeLabels {
                function: record.function.clone(),
                status: record.status.as_str().to_owned(),
            })
            .inc();
        if let Some(err) = &record.error {
            m.errors
                .get_or_create(&ErrorLabels {
                    function: record.function.clone(),
                    code: err.code.as_str().to_owned(),
                })
                .inc();
        }
        m.duration
            .get_or_create(&labels)
            .observe(outcome.duration.as_secs_f64());
        if outcome.cold_start {
            m.cold_starts.get_or_create(&labels).inc();
            if let Some(init) = outcome.init_duration {
                m.init_duration
                    .get_or_create(&labels)
                    .observe(init.as_secs_f64());
            }
        }
    }

    /// `POST /executions`: runs the function (synchronously, or queued when `async`) and
    /// returns its execution record.
    pub async fn start_execution(
        &self,
        req: StartExecutionRequest,
    ) -> Result<ExecutionRecord, EngineError> {
        let payload = match req.payload {
            Some(v) => Bytes::from(v.to_string()),
            None => Bytes::from_static(b"{}"),
        };
        let qualifier = req.qualifier.as_deref().map(Qualifier::parse).transpose()?;
        if req.asynchronous {
            return self
                .invoke_async(
                    &req.function,
                    crate::AsyncRequest {
                        payload,
                        qualifier,
                        trigger: Trigger::Api,
                        idempotency_key: req.idempotency_key,
                    },
                )
                .await;
        }
        let mut invoke = InvokeRequest::new(payload, Trigger::Api);
        invoke.qualifier = qualifier;
        invoke.idempotency_key = req.idempotency_key;
        Ok(self.invoke(&req.function, invoke).await?.record)
    }

    /// One execution.
    pub async fn get_execution(&self, id: &str) -> Result<ExecutionRecord, EngineError> {
        self.inner
            .stores
            .executions
            .get(id)
            .await?
            .ok_or_else(|| EngineError::ExecutionNotFound(id.to_owned()))
    }

    /// Executions, newest first.
    pub async fn list_executions(
        &self,
        function: Option<String>,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>, EngineError> {
        if let Some(f) = &function {
            holactl_types::function::validate_function_name(f)
                .map_err(|e| EngineError::invalid("function", e.message))?;
        }
        Ok(self
            .inner
            .stores
            .executions
            .list(ExecutionQuery {
                function,
                before,
                limit,
            })
            .await?)
    }

    /// The log of one execution.
    pub async fn execution_logs(&self, id: &str) -> Result<ExecutionLogs, EngineError> {
        let record = self.get_execution(id).await?;
        let log = self.inner.stores.executions.log(id).await?;
        let (data, truncated) = log.map(|l| (l.data, l.truncated)).unwrap_or_default();
        Ok(ExecutionLogs {
            execution_id: record.id,
            function: record.function,
            log: String::from_utf8_lossy(&data).into_owned(),
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holactl_sandbox::instance::ExitInfo;

    #[test]
    fn classifies_outcomes() {
        let (s, body, e) = classify("r", 3, InvokeResult::Response(Bytes::from_static(b"1")));
        assert_eq!(
            (s, &body[..], e),
            (ExecutionStatus::Complete, &b"1"[..], None)
        );

        let (s, body, e) = classify("r", 3, InvokeResult::Timeout { during_init: false });
        assert_eq!(s, ExecutionStatus::Timeout);
        let e = e.unwrap();
        assert_eq!(e.code, ErrorCode::Timeout);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errorType"], "Sandbox.Timedout");
        assert_eq!(
            v["errorMessage"],
            "RequestId: r Error: Task timed out after 3.00 seconds"
        );

        let exit = ExitInfo {
            code: Some(3),
            signal: None,
            oom: false,
            setup_failure: None,
        };
        let (s, body, e) = classify("r", 3, InvokeResult::Exited(exit.clone()));
        assert_eq!(s, ExecutionStatus::Failed);
        assert_eq!(e.unwrap().code, ErrorCode::FunctionError);
        assert!(String::from_utf8_lossy(&body).contains("exit status 3"));

        let (_, _, e) = classify("r", 3, InvokeResult::Exited(ExitInfo { oom: true, ..exit }));
        assert_eq!(e.unwrap().code, ErrorCode::OutOfMemory);

        let (_, _, e) = classify(
            "r",
            3,
            InvokeResult::FunctionError {
                error_type: "ValueError".into(),
                body: Bytes::from_static(br#"{"errorMessage":"bad","errorType":"ValueError"}"#),
            },
        );
        let e = e.unwrap();
        assert_eq!(
            (e.code, e.error_type.as_str(), e.message.as_str()),
            (ErrorCode::FunctionError, "ValueError", "bad")
        );

        let (_, _, e) = classify("r", 3, InvokeResult::ResponseTooLarge);
        assert_eq!(e.unwrap().code, ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn trace_ids_look_like_xray() {
        let t = trace_id("8f5c3d1e-0000-4000-8000-123456789abc");
        assert!(t.starts_with("Root=1-"), "{t}");
        assert!(t.contains(";Parent=") && t.ends_with(";Sampled=0"), "{t}");
    }
}
