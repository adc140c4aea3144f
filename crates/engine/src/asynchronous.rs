//! Asynchronous invocations: accepted only once durably queued (one queue per function,
//! `async/<function>`), run by this node's workers under the account concurrency limit —
//! as many per function as the autoscaler allows ([`crate::autoscaler`]) — retried with
//! exponential backoff and jitter, and dead-lettered (kept 14 days) when retries or the
//! maximum event age run out.
//!
//! Delivery is at least once: a worker that dies mid-invocation does not ack, and the event is
//! delivered again when its lease expires.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use holactl_store::{Leased, NewMessage};
use holactl_types::api::{DeadLetterView, ReplayResult};
use holactl_types::limits::{DLQ_RETENTION_S, MAX_ASYNC_PAYLOAD_BYTES};
use holactl_types::version::Qualifier;
use holactl_types::{ExecutionRecord, ExecutionStatus, Trigger};
use serde::{Deserialize, Serialize};

use crate::autoscaler::{async_queue, ASYNC_QUEUE_PREFIX};
use crate::invoke::InvokeRequest;
use crate::{now_ms, Engine, EngineError};

/// The lease taken before the function is known, in lease margins
/// ([`crate::EngineConfig::lease_margin`], 30 s by default: 90 s). It only has to cover the
/// moments until the delivery extends it to the function's timeout plus the margin.
const INITIAL_LEASE_MARGINS: i64 = 3;
/// How often the dispatcher looks for work when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);
/// Where asynchronous events were queued before each function had its own queue; moved to
/// the per-function queues at start.
const LEGACY_QUEUE: &str = "async";
/// Longest backoff between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What the async queue carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AsyncMessage {
    pub execution_id: String,
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    pub trigger: Trigger,
    /// The event, as JSON.
    pub payload: Box<serde_json::value::RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// An asynchronous invocation request.
#[derive(Clone, Debug)]
pub struct AsyncRequest {
    /// The event (JSON).
    pub payload: Bytes,
    /// `$LATEST`, a version or an alias.
    pub qualifier: Option<Qualifier>,
    /// What started it.
    pub trigger: Trigger,
    /// Same key, same execution.
    pub idempotency_key: Option<String>,
}

/// The delay before retry number `retry` (1-based): `base · 2^(retry-1)`, capped, with up to
/// 50 % jitter taken from `jitter` (a uniform number in [0, 1)).
pub fn backoff(base: Duration, retry: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
    let capped = exp.min(MAX_BACKOFF);
    capped.mul_f64(1.0 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// What to do with an event whose delivery failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Deliver again after the backoff.
    Retry,
    /// Give up: dead-letter it.
    DeadLetter,
}

/// Retries while attempts ≤ max retries and the event is younger than its maximum age.
pub fn after_failure(
    attempt: u32,
    max_retries: u32,
    age: Duration,
    max_age: Duration,
) -> AfterFailure {
    if attempt > max_retries || age >= max_age {
        AfterFailure::DeadLetter
    } else {
        AfterFailure::Retry
    }
}

impl Engine {
    /// Queues an invocation durably and returns its pending execution. The function (and
    /// qualifier) must exist; the event must be JSON within the async payload limit.
    pub async fn invoke_async(
        &self,
        name: &str,
        req: AsyncRequest,
    ) -> Result<ExecutionRecord, EngineError> {
        if self
            .inner
            .shutting_down
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(EngineError::ShuttingDown);
        }
        if req.payload.len() > MAX_ASYNC_PAYLOAD_BYTES {
            return Err(EngineError::PayloadTooLarge {
                what: "async event",
                size: req.payload.len(),
                limit: MAX_ASYNC_PAYLOAD_BYTES,
            });
        }
        let payload = serde_json::value::RawValue::from_string(
            String::from_utf8(req.payload.to_vec())
                .map_err(|_| EngineError::invalid("payload", "is not UTF-8 JSON"))?,
        )
        .map_err(|e| EngineError::invalid("payload", format!("is not JSON: {e}")))?;
        let run = self.resolve(name, req.qualifier.as_ref())?;
        let execution_id = match &req.idempotency_key {
            Some(key) => match self.idempotency_begin(name, key).await? {
                crate::idempotency::Begin::New(id) => id,
                crate::idempotency::Begin::Existing(record) => return Ok(*record),
            },
            None => uuid::Uuid::new_v4().to_string(),
        };
        let now = now_ms();
        let msg = AsyncMessage {
            execution_id: execution_id.clone(),
            function: name.to_owned(),
            qualifier: req.qualifier.as_ref().map(ToString::to_string),
            trigger: req.trigger,
            payload,
            idempotency_key: req.idempotency_key.clone(),
        };
        let record = ExecutionRecord {
            id: execution_id.clone(),
            function: name.to_owned(),
            version: run.version.clone(),
            status: ExecutionStatus::Pending,
            trigger: req.trigger,
            created_at: now,
            started_at: None,
            ended_at: None,
            duration_ms: None,
            billed_duration_ms: None,
            init_duration_ms: None,
            cold_start: false,
            memory_mb: run.config.memory_mb,
            attempts: 0,
            result: None,
            result_truncated: false,
            error: None,
            log_bytes: 0,
            log_truncated: false,
        };
        // The pending record first (in the background), then the durable enqueue: once the
        // caller hears 202 the event is on disk, and the record shows it at once. In a cluster
        // another node may run the event before this write lands: as an initial record
        // (`holactl_store::is_initial`) it never replaces the one that node wrote.
        self.inner
            .stores
            .executions
            .record_later(record.clone(), None);
        self.inner
            .stores
            .queues
            .enqueue(
                &async_queue(name),
                NewMessage {
                    id: execution_id,
                    payload: Bytes::from(
                        serde_json::to_vec(&msg)
                            .map_err(|e| EngineError::Internal(e.to_string()))?,
                    ),
                    not_before: now,
                    enqueued_at: now,
                },
            )
            .await?;
        self.signal_async(name, true);
        Ok(record)
    }

    /// Lease time beyond a function's timeout, ms.
    fn lease_margin_ms(&self) -> i64 {
        self.inner.config.lease_margin.as_millis() as i64
    }

    /// How long an invocation of a function with timeout `timeout_s` may hold what it claims
    /// from the shared store (an async delivery's lease, a reserved-concurrency slot), ms: the
    /// timeout plus the lease margin. One bound for both, so a dead node's slots come back
    /// when its deliveries do.
    pub(crate) fn invocation_bound_ms(&self, timeout_s: u32) -> i64 {
        i64::from(timeout_s) * 1000 + self.lease_margin_ms()
    }

    /// Tells the dispatcher `name`'s queue may have ready work (`arrival`: a new event), and
    /// the autoscaler when arrivals call for an early check.
    pub(crate) fn signal_async(&self, name: &str, arrival: bool) {
        let cfg = &self.inner.config.autoscaler;
        if self
            .inner
            .workers
            .signal(name, cfg.min_workers, cfg.scale_up_threshold, arrival)
        {
            self.inner.workers.wake.notify_one();
        }
        self.inner.async_work.notify_one();
    }

    pub(crate) fn start_async_workers(&self) {
        let engine = self.clone();
        let task = tokio::spawn(async move {
            engine.move_legacy_queue().await;
            engine.dispatch().await
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                engine.purge_expired_dead_letters().await;
                engine.idempotency_expire().await;
            }
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    /// Removes dead letters older than their retention from every async queue.
    async fn purge_expired_dead_letters(&self) {
        let queues = &self.inner.stores.queues;
        let before = now_ms() - (DLQ_RETENTION_S as i64) * 1000;
        let depths = match queues.depths(ASYNC_QUEUE_PREFIX, now_ms()).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot purge expired dead letters");
                return;
            }
        };
        for (queue, _) in depths.into_iter().filter(|(_, d)| d.dead > 0) {
            match queues.purge_dead(&queue, None, Some(before)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(queue = %queue, purged = n, "expired dead letters removed"),
                Err(e) => tracing::warn!(error = %e, "cannot purge expired dead letters"),
            }
        }
    }

    /// Moves events left in the single queue of earlier versions to their functions' queues.
    async fn move_legacy_queue(&self) {
        let queues = &self.inner.stores.queues;
        loop {
            let batch = match queues.lease(LEGACY_QUEUE, 256, 60_000, now_ms()).await {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the legacy async queue");
                    return;
                }
            };
            for leased in batch {
                let Ok(msg) = serde_json::from_slice::<AsyncMessage>(&leased.payload) else {
                    continue;
                };
                let moved = queues
                    .enqueue(
                        &async_queue(&msg.function),
                        NewMessage {
                            id: leased.id.clone(),
                            payload: leased.payload.clone(),
                            not_before: now_ms(),
                            enqueued_at: leased.enqueued_at,
                        },
                    )
                    .await;
                if moved.is_ok() {
                    let _ = queues.ack(LEGACY_QUEUE, &leased.id, &leased.token).await;
                }
            }
        }
    }

    /// Leases ready events of every function with free workers and runs each in its own task,
    /// never more at once than the account concurrency limit.
    async fn dispatch(self) {
        let total = self.inner.config.max_concurrency.max(1) as usize;
        let slots = Arc::new(tokio::sync::Semaphore::new(total));
        loop {
            let wanted: Vec<(String, u32, u64)> = match self.inner.workers.functions.lock() {
                Ok(all) => all
                    .iter()
                    .filter(|(_, w)| w.wants_lease())
                    .map(|(name, w)| (name.clone(), w.target - w.running, w.signal))
                    .collect(),
                Err(_) => return,
            };
            let mut leased_any = false;
            for (name, free, signal) in wanted {
                let free = (free as usize).min(slots.available_permits());
                if free == 0 {
                    break;
                }
                let queue = async_queue(&name);
                // The lease is renewed once the function (and its timeout) is known.
                let leased = match self
                    .inner
                    .stores
                    .queues
                    .lease(
                        &queue,
                        free,
                        self.lease_margin_ms() * INITIAL_LEASE_MARGINS,
                        now_ms(),
                    )
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, queue = %queue, "cannot lease async events");
                        continue;
                    }
                };
                if let Ok(mut all) = self.inner.workers.functions.lock() {
                    if let Some(w) = all.get_mut(&name) {
                        w.running += leased.len() as u32;
                        if leased.len() < free {
                            // Drained, unless more was signalled meanwhile.
                            w.drained = signal;
                        }
                    }
                }
                leased_any |= !leased.is_empty();
                for msg in leased {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let engine = self.clone();
                    let queue = queue.clone();
                    let name = name.clone();
                    tokio::spawn(async move {
                        engine.deliver(&queue, msg).await;
                        drop(permit);
                        if let Ok(mut all) = engine.inner.workers.functions.lock() {
                            if let Some(w) = all.get_mut(&name) {
                                w.running = w.running.saturating_sub(1);
                            }
                        }
                        // A worker is free: look for more work now rather than at the next poll.
                        engine.inner.async_work.notify_one();
                    });
                }
            }
            if !leased_any {
                tokio::select! {
                    _ = self.inner.async_work.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }

    /// Runs one delivery of an async event and settles it: ack, retry or dead-letter.
    async fn deliver(&self, queue: &str, leased: Leased) {
        let stores = &self.inner.stores;
        let msg: AsyncMessage = match serde_json::from_slice(&leased.payload) {
            Ok(m) => m,
            Err(e) => {
                let _ = stores
                    .queues
                    .dead_letter(
                        queue,
                        &leased.id,
                        &leased.token,
                        &format!("unreadable event: {e}"),
                        now_ms(),
                    )
                    .await;
                return;
            }
        };
        let was_cancelled = self
            .inner
            .cancelled
            .lock()
            .map(|mut c| c.remove(&msg.execution_id))
            .unwrap_or(false);
        if was_cancelled {
            let _ = stores.queues.ack(queue, &leased.id, &leased.token).await;
            return;
        }
        let qualifier = msg
            .qualifier
            .as_deref()
            .map(Qualifier::parse)
            .transpose()
            .ok()
            .flatten();
        let run = match self.resolve(&msg.function, qualifier.as_ref()) {
            Ok(run) => run,
            Err(e) => {
                // The function (or its alias) is gone: nothing will ever run it.
                self.settle_dead(
                    queue,
                    &leased,
                    &msg,
                    &format!("{}: {}", e.code(), e.public_message()),
                )
                .await;
                return;
            }
        };
        let age = Duration::from_millis((now_ms() - leased.enqueued_at).max(0) as u64);
        let max_age = Duration::from_secs(u64::from(run.config.async_config.max_event_age_s));
        if age >= max_age {
            self.settle_dead(
                queue,
                &leased,
                &msg,
                "maximum event age exceeded before delivery",
            )
            .await;
            return;
        }
        let lease_until = now_ms() + self.invocation_bound_ms(run.config.timeout_s);
        let _ = stores
            .queues
            .extend(queue, &leased.id, &leased.token, lease_until)
            .await;
        let mut req = InvokeRequest::new(Bytes::from(msg.payload.get().to_owned()), msg.trigger);
        req.qualifier = qualifier;
        req.execution_id = Some(msg.execution_id.clone());
        req.attempt = leased.attempts;
        req.accepted_at = Some(leased.enqueued_at);
        req.wait_for_capacity = true;
        let outcome = self.invoke(&msg.function, req).await;
        let failure = match &outcome {
            Ok(resp) => match resp.record.status {
                ExecutionStatus::Complete | ExecutionStatus::Cancelled => None,
                _ => Some(
                    resp.record
                        .error
                        .as_ref()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .unwrap_or_else(|| "failed".to_owned()),
                ),
            },
            Err(e) => Some(format!("{}: {}", e.code(), e.public_message())),
        };
        let Some(reason) = failure else {
            self.flush_record(&msg.execution_id).await;
            let _ = stores.queues.ack(queue, &leased.id, &leased.token).await;
            if let Some(key) = &msg.idempotency_key {
                self.idempotency_finish(&msg.function, key).await;
            }
            return;
        };
        let retries = run.config.async_config.max_retry_attempts;
        let age = Duration::from_millis((now_ms() - leased.enqueued_at).max(0) as u64);
        match after_failure(leased.attempts, retries, age, max_age) {
            AfterFailure::Retry => {
                let delay = backoff(
                    self.inner.config.retry_base,
                    leased.attempts,
                    crate::invoke::uniform(),
                );
                tracing::info!(
                    execution = %msg.execution_id,
                    function = %msg.function,
                    attempt = leased.attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    reason = %reason,
                    "async invocation failed; retrying"
                );
                if let Ok(resp) = &outcome {
                    // Shown as pending again until the next attempt ends.
                    let mut record = resp.record.clone();
                    record.status = ExecutionStatus::Pending;
                    stores.executions.record_later(record, None);
                }
                // Stored before the retry is queued where another node may take it.
                self.flush_record(&msg.execution_id).await;
                let _ = stores
                    .queues
                    .retry(
                        queue,
                        &leased.id,
                        &leased.token,
                        now_ms() + delay.as_millis() as i64,
                    )
                    .await;
                self.inner
                    .metrics
                    .async_retries
                    .get_or_create(&crate::metrics::Metrics::function(&msg.function))
                    .inc();
                // Look at the queue again when the retry comes due.
                let engine = self.clone();
                let function = msg.function.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    engine.signal_async(&function, false);
                });
            }
            AfterFailure::DeadLetter => self.settle_dead(queue, &leased, &msg, &reason).await,
        }
    }

    /// Waits until this node's writes of execution `id` are stored, before its event is
    /// settled ([`holactl_store::ExecutionStore::flush`]); a failure is logged (the event is
    /// settled anyway: its record is as current as the store allows).
    async fn flush_record(&self, id: &str) {
        if let Err(e) = self.inner.stores.executions.flush(id).await {
            tracing::warn!(error = %e, execution = %id, "an execution record may lag its event");
        }
    }

    async fn settle_dead(&self, queue: &str, leased: &Leased, msg: &AsyncMessage, reason: &str) {
        let stores = &self.inner.stores;
        tracing::warn!(
            execution = %msg.execution_id,
            function = %msg.function,
            attempts = leased.attempts,
            reason,
            "async invocation dead-lettered"
        );
        self.flush_record(&msg.execution_id).await;
        if let Err(e) = stores
            .queues
            .dead_letter(queue, &leased.id, &leased.token, reason, now_ms())
            .await
        {
            tracing::warn!(error = %e, "cannot dead-letter an async invocation");
            return;
        }
        self.inner
            .metrics
            .dead_letters
            .get_or_create(&crate::metrics::Metrics::function(&msg.function))
            .inc();
        if let Ok(mut record) = stores
            .executions
            .get(&msg.execution_id)
            .await
            .map(|r| r.unwrap_or_else(|| pending_record(msg, leased)))
        {
            if !record.status.is_final() || record.status == ExecutionStatus::Complete {
                record.status = ExecutionStatus::Failed;
            }
            record.attempts = leased.attempts;
            if record.error.is_none() {
                record.error = Some(holactl_types::execution::ExecutionError {
                    code: holactl_types::ErrorCode::FunctionError,
                    error_type: "DeadLetter".into(),
                    message: reason.to_owned(),
                });
            }
            record.ended_at.get_or_insert_with(now_ms);
            stores.executions.record_later(record, None);
        }
        if let Some(key) = &msg.idempotency_key {
            self.idempotency_finish(&msg.function, key).await;
        }
    }

    pub(crate) fn dead_view(&self, dead: holactl_store::DeadMessage) -> Option<DeadLetterView> {
        let msg: AsyncMessage = serde_json::from_slice(&dead.payload).ok()?;
        Some(DeadLetterView {
            id: dead.id,
            function: msg.function,
            qualifier: msg.qualifier,
            payload: serde_json::from_str(msg.payload.get()).unwrap_or(serde_json::Value::Null),
            attempts: dead.attempts,
            enqueued_at: dead.enqueued_at,
            died_at: dead.died_at,
            expires_at: dead.died_at + (DLQ_RETENTION_S as i64) * 1000,
            reason: dead.reason,
        })
    }

    /// The dead-lettered events of a function, oldest first.
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetterView>, EngineError> {
        self.function_entry(name)?;
        let dead = self
            .inner
            .stores
            .queues
            .dead(&async_queue(name), 100_000)
            .await?;
        Ok(dead
            .into_iter()
            .filter_map(|d| self.dead_view(d))
            .filter(|d| d.function == name)
            .collect())
    }

    /// Runs dead-lettered events again, each as a new execution with a fresh attempt chain.
    pub async fn replay_dead_letters(
        &self,
        name: &str,
        ids: Option<Vec<String>>,
    ) -> Result<ReplayResult, EngineError> {
        let all = self.dead_letters(name).await?;
        let chosen: Vec<DeadLetterView> = match &ids {
            Some(ids) => {
                for id in ids {
                    if !all.iter().any(|d| &d.id == id) {
                        return Err(EngineError::ResourceNotFound(format!(
                            "no dead letter {id:?} for function {name:?}"
                        )));
                    }
                }
                all.into_iter().filter(|d| ids.contains(&d.id)).collect()
            }
            None => all,
        };
        let mut replayed = Vec::new();
        for dead in chosen {
            let qualifier = dead
                .qualifier
                .as_deref()
                .map(Qualifier::parse)
                .transpose()
                .map_err(EngineError::Invalid)?;
            let record = self
                .invoke_async(
                    name,
                    AsyncRequest {
                        payload: Bytes::from(dead.payload.to_string()),
                        qualifier,
                        trigger: Trigger::Async,
                        idempotency_key: None,
                    },
                )
                .await?;
            self.inner
                .stores
                .queues
                .purge_dead(&async_queue(name), Some(vec![dead.id.clone()]), None)
                .await?;
            replayed.push((dead.id, record.id));
        }
        Ok(ReplayResult { replayed })
    }

    /// Deletes dead-lettered events of a function (all, or `ids`).
    pub async fn purge_dead_letters(
        &self,
        name: &str,
        ids: Option<Vec<String>>,
    ) -> Result<u64, EngineError> {
        let mine: Vec<String> = self
            .dead_letters(name)
            .await?
            .into_iter()
            .map(|d| d.id)
            .filter(|id| ids.as_ref().is_none_or(|want| want.contains(id)))
            .collect();
        if mine.is_empty() {
            return Ok(0);
        }
        Ok(self
            .inner
            .stores
            .queues
            .purge_dead(&async_queue(name), Some(mine), None)
            .await?)
    }
}

fn pending_record(msg: &AsyncMessage, leased: &Leased) -> ExecutionRecord {
    ExecutionRecord {
        id: msg.execution_id.clone(),
        function: msg.function.clone(),
        version: msg.qualifier.clone().unwrap_or_else(|| "$LATEST".into()),
        status: ExecutionStatus::Pending,
        trigger: msg.trigger,
        created_at: leased.enqueued_at,
        started_at: None,
        ended_at: None,
        duration_ms: None,
        billed_duration_ms: None,
        init_duration_ms: None,
        cold_start: false,
        memory_mb: 0,
        attempts: leased.attempts,
        result: None,
        result_truncated: false,
        error: None,
        log_bytes: 0,
        log_truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(base, 2, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(base, 3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(base, 3, 1.0), Duration::from_secs(6));
        assert_eq!(backoff(base, 30, 0.0), MAX_BACKOFF);
    }

    #[test]
    fn retries_until_attempts_or_age_run_out() {
        let hour = Duration::from_secs(3600);
        let six = Duration::from_secs(6 * 3600);
        assert_eq!(after_failure(1, 2, hour, six), AfterFailure::Retry);
        assert_eq!(after_failure(2, 2, hour, six), AfterFailure::Retry);
        assert_eq!(after_failure(3, 2, hour, six), AfterFailure::DeadLetter);
        assert_eq!(after_failure(1, 0, hour, six), AfterFailure::DeadLetter);
        assert_eq!(after_failure(1, 2, six, six), AfterFailure::DeadLetter);
    }
}
