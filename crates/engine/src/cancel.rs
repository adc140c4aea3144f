//! Cancelling executions: a pending one is taken out of its queue and never runs; a running
//! one has its instance stopped.

use std::sync::Arc;

use bytes::Bytes;
use holactl_types::execution::ExecutionError;
use holactl_types::{ErrorCode, ExecutionRecord, ExecutionStatus, Trigger};
use tokio::sync::oneshot;

use crate::invoke::InvokeResponse;

/// Cluster mode: `cancel/<execution id>` asks the node running the execution to stop it.
pub const CANCEL_PREFIX: &str = "cancel/";
use crate::{now_ms, Engine, EngineError, Runnable};

/// A running execution's entry in the cancel registry; removed when dropped.
pub(crate) struct Running {
    engine: Engine,
    id: String,
}

impl Running {
    pub(crate) fn register(engine: &Engine, id: &str, cancel: oneshot::Sender<()>) -> Running {
        if let Ok(mut running) = engine.inner.running.lock() {
            running.insert(id.to_owned(), cancel);
        }
        Running {
            engine: engine.clone(),
            id: id.to_owned(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.engine.inner.running.lock() {
            running.remove(&self.id);
        }
    }
}

impl Engine {
    /// The answer for an execution stopped by a cancel request.
    pub(crate) fn cancelled(
        &self,
        run: &Arc<Runnable>,
        trigger: Trigger,
        id: &str,
        created_at: i64,
        started_at: i64,
        attempt: u32,
    ) -> InvokeResponse {
        let message = format!("RequestId: {id} Error: execution cancelled");
        let record = ExecutionRecord {
            id: id.to_owned(),
            function: run.name.clone(),
            version: run.version.clone(),
            status: ExecutionStatus::Cancelled,
            trigger,
            created_at,
            started_at: Some(started_at),
            ended_at: Some(now_ms()),
            duration_ms: None,
            billed_duration_ms: None,
            init_duration_ms: None,
            cold_start: false,
            memory_mb: run.config.memory_mb,
            attempts: attempt,
            result: None,
            result_truncated: false,
            error: Some(ExecutionError {
                code: ErrorCode::Cancelled,
                error_type: "Cancelled".into(),
                message: message.clone(),
            }),
            log_bytes: 0,
            log_truncated: false,
        };
        self.inner
            .stores
            .executions
            .record_later(record.clone(), None);
        InvokeResponse {
            body: Bytes::from(
                serde_json::json!({ "errorType": "Cancelled", "errorMessage": message })
                    .to_string(),
            ),
            function_error: Some("Unhandled"),
            record,
            log_tail: None,
        }
    }

    /// Cancels an execution: a pending one never runs, a running one is stopped.
    /// `CONFLICT` when it already ended.
    pub async fn cancel_execution(&self, id: &str) -> Result<ExecutionRecord, EngineError> {
        let mut record = self.get_execution(id).await?;
        if record.status.is_final() {
            return Err(EngineError::Conflict(format!(
                "execution {id} already ended ({})",
                record.status.as_str()
            )));
        }
        // Running here: stop it.
        if self.cancel_running_here(id) {
            return self.wait_final(id).await;
        }
        // Cluster mode: it may be running on another node. Every node watches `cancel/` and
        // stops the execution if it runs there (see `cluster::follow`); asked before the
        // queue removal below, which also takes a message leased by a running node.
        let cancel_key = format!("{CANCEL_PREFIX}{id}");
        if self.inner.cluster.is_some() {
            self.inner
                .stores
                .kv
                .put(
                    &cancel_key,
                    Bytes::from(self.node_id().unwrap_or_default().to_owned()),
                )
                .await?;
        }
        // Pending: take it out of its queue so it never runs.
        let queue = crate::autoscaler::async_queue(&record.function);
        if self.inner.stores.queues.remove(&queue, id).await? {
            if self.inner.cluster.is_some() {
                // Watchers see the put before the delete, so the request still reaches them.
                let _ = self.inner.stores.kv.delete(&cancel_key, None).await;
            }
            record.status = ExecutionStatus::Cancelled;
            record.ended_at = Some(now_ms());
            record.error = Some(ExecutionError {
                code: ErrorCode::Cancelled,
                error_type: "Cancelled".into(),
                message: format!("RequestId: {id} Error: execution cancelled before it ran"),
            });
            self.inner
                .stores
                .executions
                .record(record.clone(), None)
                .await?;
            return Ok(record);
        }
        if self.inner.cluster.is_some() {
            let now = self.wait_final(id).await;
            let _ = self.inner.stores.kv.delete(&cancel_key, None).await;
            return now;
        }
        // Neither queued nor running here: it is being handed over; mark it so the worker
        // drops it.
        if let Ok(mut cancelled) = self.inner.cancelled.lock() {
            cancelled.insert(id.to_owned());
        }
        Ok(record)
    }

    /// Stops `id` if it runs on this node; whether it did.
    pub(crate) fn cancel_running_here(&self, id: &str) -> bool {
        let running = self
            .inner
            .running
            .lock()
            .ok()
            .and_then(|mut r| r.remove(id));
        match running {
            Some(cancel) => {
                let _ = cancel.send(());
                true
            }
            None => false,
        }
    }

    /// The record once it is final (the invocation records its own end), or as it is after
    /// two seconds.
    async fn wait_final(&self, id: &str) -> Result<ExecutionRecord, EngineError> {
        for _ in 0..100 {
            let now = self.get_execution(id).await?;
            if now.status.is_final() {
                return Ok(now);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.get_execution(id).await
    }
}
