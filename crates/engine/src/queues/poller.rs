//! Pollers: one task per enabled mapping leases batches from its queue (gathering up to the
//! batch size for the batching window), and runs up to `parallelization` batches at once,
//! each invoking the function synchronously and settling every record: ack, retry with
//! backoff, or dead-letter.
//!
//! A supervisor task (stopped at shutdown, taking the pollers with it) starts the pollers of
//! the stored mappings, re-checks them periodically, expires old dead letters and refreshes
//! the queue gauges; API calls start and stop pollers directly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use holactl_store::Leased;
use holactl_types::limits::MAX_SYNC_PAYLOAD_BYTES;
use holactl_types::queue::{
    MessageAttributeValue, QueueEvent, QueueEventRecord, TriggerRecord, EVENT_SOURCE,
};
use holactl_types::version::{split_qualified, Qualifier};
use holactl_types::{ExecutionStatus, Trigger};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::admin::system_attributes;
use super::batch::{self, md5_hex, Verdict};
use super::{store_queue, trigger_key, StoredMessage};
use crate::asynchronous::{after_failure, backoff, AfterFailure};
use crate::functions::decode;
use crate::invoke::InvokeRequest;
use crate::{now_ms, Engine};

/// How often an idle poller looks for due retries (sends wake it at once).
const POLL: Duration = Duration::from_millis(200);
/// How long a poller waits while its function does not exist.
const MISSING_FUNCTION_POLL: Duration = Duration::from_secs(1);
/// Lease beyond the function's timeout (and the batching window), for start-up and settling.
const LEASE_MARGIN_MS: i64 = 30_000;
/// How often the supervisor re-checks pollers and refreshes gauges.
const SUPERVISE: Duration = Duration::from_secs(2);
/// How often expired dead letters are dropped.
const EXPIRE_EVERY: u32 = 1800;
/// How long stopping a poller may wait for it to finish its current lease.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// Room left in the invoke payload limit for the event's envelope.
const ENVELOPE_BYTES: usize = 64 * 1024;

/// A running poller.
pub(crate) struct Handle {
    trigger: TriggerRecord,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Aborts every poller when the supervisor is dropped (shutdown aborts it).
struct StopAll(Engine);

impl Drop for StopAll {
    fn drop(&mut self) {
        if let Ok(mut running) = self.0.inner.queue_pollers.running.lock() {
            for (_, handle) in running.drain() {
                handle.task.abort();
            }
        }
    }
}

/// A leased record of a batch and its decoded message.
#[derive(Clone)]
struct Record {
    leased: Arc<Leased>,
    message: Arc<StoredMessage>,
}

/// Waits for a wake-up, `timeout`, or a stop; false when stopped.
async fn idle(stop: &mut watch::Receiver<bool>, waker: &Notify, timeout: Duration) -> bool {
    tokio::select! {
        _ = waker.notified() => true,
        _ = tokio::time::sleep(timeout) => true,
        changed = stop.changed() => changed.is_ok() && !*stop.borrow(),
    }
}

impl Engine {
    /// Starts the supervisor of the mapping pollers (called once from [`Engine::open`]).
    pub(crate) fn start_queue_pollers(&self) {
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let _stop_all = StopAll(engine.clone());
            let mut ticks = 0u32;
            loop {
                engine.reconcile_trigger_pollers().await;
                engine.refresh_queue_metrics().await;
                if ticks % EXPIRE_EVERY == 0 {
                    engine.expire_queue_dead_letters().await;
                }
                ticks = ticks.wrapping_add(1);
                tokio::time::sleep(SUPERVISE).await;
            }
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    /// Brings every stored mapping's poller in line with its record.
    async fn reconcile_trigger_pollers(&self) {
        let _sync = self.inner.queue_pollers.sync.lock().await;
        let records = match self.list_trigger_records().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list triggers");
                return;
            }
        };
        let running: Vec<String> = self
            .inner
            .queue_pollers
            .running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        for id in running {
            if !records.iter().any(|t| t.id == id && t.enabled) {
                self.apply_trigger_poller(&id, None).await;
            }
        }
        for t in records.into_iter().filter(|t| t.enabled) {
            let id = t.id.clone();
            self.apply_trigger_poller(&id, Some(t)).await;
        }
    }

    /// Brings one mapping's poller in line with its stored record (after an API change).
    pub(crate) async fn sync_trigger_poller(&self, id: &str) {
        let _sync = self.inner.queue_pollers.sync.lock().await;
        let record = match self.inner.stores.kv.get(&trigger_key(id)).await {
            Ok(entry) => entry.and_then(|e| decode::<TriggerRecord>(&e.value).ok()),
            Err(e) => {
                tracing::warn!(trigger = %id, error = %e, "cannot read trigger");
                return;
            }
        };
        self.apply_trigger_poller(id, record.filter(|t| t.enabled))
            .await;
    }

    /// Runs a poller for `want` (stopping one for another configuration), or none.
    async fn apply_trigger_poller(&self, id: &str, want: Option<TriggerRecord>) {
        let pollers = &self.inner.queue_pollers;
        let old = {
            let Ok(mut running) = pollers.running.lock() else {
                return;
            };
            let keep = matches!(
                (running.get(id), &want),
                (Some(h), Some(t)) if h.trigger == *t && !h.task.is_finished()
            );
            if keep {
                return;
            }
            running.remove(id)
        };
        if let Some(old) = old {
            let _ = old.stop.send(true);
            if tokio::time::timeout(STOP_WAIT, old.task).await.is_err() {
                tracing::warn!(trigger = %id, "poller did not stop in time");
            }
            tracing::debug!(trigger = %id, "poller stopped");
        }
        let Some(trigger) = want else { return };
        let (stop, stop_rx) = watch::channel(false);
        let engine = self.clone();
        let t = trigger.clone();
        let task = tokio::spawn(async move { engine.poll_trigger(t, stop_rx).await });
        tracing::debug!(trigger = %id, queue = %trigger.queue, "poller started");
        if let Ok(mut running) = pollers.running.lock() {
            running.insert(
                id.to_owned(),
                Handle {
                    trigger,
                    stop,
                    task,
                },
            );
        }
    }

    /// One mapping's poller: lease, hand the batch to a task, repeat while slots are free.
    async fn poll_trigger(self, t: TriggerRecord, mut stop: watch::Receiver<bool>) {
        let queue = store_queue(&t.queue);
        let waker = self.inner.queue_pollers.waker(&t.queue);
        let slots = Arc::new(tokio::sync::Semaphore::new(t.parallelization as usize));
        let (name, qualifier) = split_qualified(&t.function);
        let (name, qualifier) = (
            name.to_owned(),
            qualifier.and_then(|q| Qualifier::parse(q).ok()),
        );
        let t = Arc::new(t);
        loop {
            if *stop.borrow() {
                return;
            }
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                changed = stop.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return,
                },
            };
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let timeout_s = match self.resolve(&name, qualifier.as_ref()) {
                Ok(run) => run.config.timeout_s,
                Err(_) => {
                    // Leave the messages queued until the function exists again.
                    drop(permit);
                    if !idle(&mut stop, &waker, MISSING_FUNCTION_POLL).await {
                        return;
                    }
                    continue;
                }
            };
            let lease_ms = i64::from(t.batch_window_s + timeout_s) * 1000 + LEASE_MARGIN_MS;
            let batch = self
                .collect_batch(&queue, &t, lease_ms, &waker, &mut stop)
                .await;
            if batch.is_empty() {
                drop(permit);
                let stopped = tokio::select! {
                    _ = notified => false,
                    _ = tokio::time::sleep(POLL) => false,
                    changed = stop.changed() => changed.is_err() || *stop.borrow(),
                };
                if stopped {
                    return;
                }
                continue;
            }
            let engine = self.clone();
            let t = t.clone();
            let timeout_ms = i64::from(timeout_s) * 1000;
            tokio::spawn(async move {
                engine.deliver_queue_batch(&t, batch, timeout_ms).await;
                drop(permit);
            });
        }
    }

    /// Leases a batch: what is there now, then (with a batching window) more as it arrives,
    /// until the batch is full, the window has passed, or the poller is stopped.
    async fn collect_batch(
        &self,
        queue: &str,
        t: &TriggerRecord,
        lease_ms: i64,
        waker: &Notify,
        stop: &mut watch::Receiver<bool>,
    ) -> Vec<Leased> {
        let queues = &self.inner.stores.queues;
        let size = t.batch_size as usize;
        let mut batch = match queues.lease(queue, size, lease_ms, now_ms()).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(queue, error = %e, "cannot lease messages");
                return Vec::new();
            }
        };
        if batch.is_empty() || t.batch_window_s == 0 {
            return batch;
        }
        let deadline = Instant::now() + Duration::from_secs(u64::from(t.batch_window_s));
        let mut bytes: usize = batch.iter().map(|l| l.payload.len()).sum();
        while batch.len() < size && bytes < MAX_SYNC_PAYLOAD_BYTES && Instant::now() < deadline {
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let stopped = tokio::select! {
                _ = notified => false,
                _ = tokio::time::sleep_until(deadline.min(Instant::now() + POLL)) => false,
                changed = stop.changed() => changed.is_err() || *stop.borrow(),
            };
            match queues
                .lease(queue, size - batch.len(), lease_ms, now_ms())
                .await
            {
                Ok(more) => {
                    bytes += more.iter().map(|l| l.payload.len()).sum::<usize>();
                    batch.extend(more);
                }
                Err(e) => tracing::warn!(queue, error = %e, "cannot lease messages"),
            }
            if stopped {
                break;
            }
        }
        batch
    }

    /// Delivers a leased batch and settles every record.
    async fn deliver_queue_batch(&self, t: &TriggerRecord, batch: Vec<Leased>, timeout_ms: i64) {
        let queue = store_queue(&t.queue);
        let queues = &self.inner.stores.queues;
        let max_age = Duration::from_secs(u64::from(t.max_record_age_s));
        let mut records = Vec::with_capacity(batch.len());
        for leased in batch {
            let message = match decode::<StoredMessage>(&leased.payload) {
                Ok(m) => m,
                Err(e) => {
                    let reason = format!("unreadable message: {e}");
                    let _ = queues
                        .dead_letter(&queue, &leased.id, &leased.token, &reason, now_ms())
                        .await;
                    continue;
                }
            };
            if age_of(&leased) >= max_age {
                self.settle_record_dead(t, &leased, "maximum record age exceeded before delivery")
                    .await;
                continue;
            }
            records.push(Record {
                leased: Arc::new(leased),
                message: Arc::new(message),
            });
        }
        let sizes: Vec<usize> = records.iter().map(|r| r.leased.payload.len()).collect();
        let limit = MAX_SYNC_PAYLOAD_BYTES - ENVELOPE_BYTES;
        let mut first = true;
        let queue_name = queue.as_str();
        for range in batch::chunks_within(&sizes, limit) {
            let chunk = records[range].to_vec();
            let failed = batch::run_bisecting(
                chunk.clone(),
                t.bisect_on_error,
                |r: &Record| r.leased.id.as_str(),
                |part: Vec<Record>| {
                    let extend = !std::mem::replace(&mut first, false);
                    async move {
                        if extend {
                            self.extend_batch_leases(queue_name, &part, timeout_ms)
                                .await;
                        }
                        self.invoke_queue_batch(t, &part).await
                    }
                },
            )
            .await;
            if self
                .inner
                .shutting_down
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                // Settle nothing: the leases run out and the batch is delivered again.
                return;
            }
            for r in chunk
                .iter()
                .filter(|r| !failed.iter().any(|(f, _)| f.leased.id == r.leased.id))
            {
                if let Err(e) = queues.ack(&queue, &r.leased.id, &r.leased.token).await {
                    tracing::debug!(message = %r.leased.id, error = %e, "cannot ack");
                }
            }
            for (r, reason) in failed {
                self.settle_record_failed(t, &r.leased, &reason).await;
            }
        }
    }

    async fn extend_batch_leases(&self, queue: &str, part: &[Record], timeout_ms: i64) {
        let until = now_ms() + timeout_ms + LEASE_MARGIN_MS;
        for r in part {
            let _ = self
                .inner
                .stores
                .queues
                .extend(queue, &r.leased.id, &r.leased.token, until)
                .await;
        }
    }

    /// Invokes the mapping's function once with `part` and reads the answer.
    async fn invoke_queue_batch(&self, t: &TriggerRecord, part: &[Record]) -> Verdict {
        let event = QueueEvent {
            records: part.iter().map(|r| self.queue_event_record(t, r)).collect(),
        };
        let payload = match serde_json::to_vec(&event) {
            Ok(p) => Bytes::from(p),
            Err(e) => return Verdict::Failed(format!("cannot encode the event: {e}")),
        };
        let (name, qualifier) = split_qualified(&t.function);
        let mut req = InvokeRequest::new(payload, Trigger::Queue);
        req.qualifier = qualifier.and_then(|q| Qualifier::parse(q).ok());
        req.wait_for_capacity = true;
        req.attempt = part.iter().map(|r| r.leased.attempts).max().unwrap_or(1);
        match self.invoke(name, req).await {
            Ok(resp) if resp.record.status == ExecutionStatus::Complete => {
                let ids: Vec<&str> = part.iter().map(|r| r.leased.id.as_str()).collect();
                batch::read_response(&resp.body, &ids)
            }
            Ok(resp) => Verdict::Failed(
                resp.record
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.code, e.message))
                    .unwrap_or_else(|| format!("execution {}", resp.record.id)),
            ),
            Err(e) => Verdict::Failed(format!("{}: {}", e.code(), e.public_message())),
        }
    }

    fn queue_event_record(&self, t: &TriggerRecord, r: &Record) -> QueueEventRecord {
        let m = &r.message;
        QueueEventRecord {
            message_id: r.leased.id.clone(),
            receipt_handle: r.leased.token.clone(),
            body: m.body.clone(),
            attributes: system_attributes(r.leased.attempts, m.sent_at),
            message_attributes: m
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), MessageAttributeValue::string(v)))
                .collect(),
            md5_of_body: md5_hex(m.body.as_bytes()),
            event_source: EVENT_SOURCE.to_owned(),
            event_source_arn: self.queue_arn(&t.queue),
            aws_region: self.inner.config.region.clone(),
        }
    }

    /// Retries a failed record after a backoff, or dead-letters it when its retries or its
    /// age have run out.
    async fn settle_record_failed(&self, t: &TriggerRecord, leased: &Leased, reason: &str) {
        let max_age = Duration::from_secs(u64::from(t.max_record_age_s));
        match after_failure(leased.attempts, t.max_retries, age_of(leased), max_age) {
            AfterFailure::Retry => {
                let delay = backoff(
                    self.inner.config.retry_base,
                    leased.attempts,
                    crate::invoke::uniform(),
                );
                tracing::info!(
                    queue = %t.queue,
                    message = %leased.id,
                    attempt = leased.attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    reason,
                    "queue record failed; retrying"
                );
                let not_before = now_ms() + delay.as_millis() as i64;
                if let Err(e) = self
                    .inner
                    .stores
                    .queues
                    .retry(
                        &store_queue(&t.queue),
                        &leased.id,
                        &leased.token,
                        not_before,
                    )
                    .await
                {
                    tracing::debug!(message = %leased.id, error = %e, "cannot release for retry");
                }
            }
            AfterFailure::DeadLetter => self.settle_record_dead(t, leased, reason).await,
        }
    }

    async fn settle_record_dead(&self, t: &TriggerRecord, leased: &Leased, reason: &str) {
        tracing::warn!(
            queue = %t.queue,
            message = %leased.id,
            attempts = leased.attempts,
            reason,
            "queue record dead-lettered"
        );
        if let Err(e) = self
            .inner
            .stores
            .queues
            .dead_letter(
                &store_queue(&t.queue),
                &leased.id,
                &leased.token,
                reason,
                now_ms(),
            )
            .await
        {
            tracing::warn!(message = %leased.id, error = %e, "cannot dead-letter a queue record");
        }
    }
}

fn age_of(leased: &Leased) -> Duration {
    Duration::from_millis((now_ms() - leased.enqueued_at).max(0) as u64)
}
