//! Queues, their messages and their dead-letter areas.

use std::collections::BTreeMap;

use holactl_store::{NewMessage, StoreError};
use holactl_types::limits::DLQ_RETENTION_S;
use holactl_types::queue::{
    validate_queue_name, CreateQueueRequest, QueueDeadLetter, QueueDepthView, QueueRecord,
    QueueView, ReceiveRequest, ReceivedMessage, ReceivedMessages, SendMessageRequest, SentMessage,
    MAX_MESSAGE_BYTES,
};

use super::batch::md5_hex;
use super::{queue_key, store_queue, StoredMessage, QUEUE_PREFIX};
use crate::functions::{decode, encode};
use crate::{now_ms, Engine, EngineError};

/// `SenderId` of every message (there are no per-sender identities).
pub(crate) const SENDER_ID: &str = "holactl";

pub(crate) fn queue_not_found(name: &str) -> EngineError {
    EngineError::ResourceNotFound(format!("queue {name:?} does not exist"))
}

impl Engine {
    /// `arn:aws:sqs:REGION:ACCOUNT:NAME`.
    pub fn queue_arn(&self, name: &str) -> String {
        let c = &self.inner.config;
        format!("arn:aws:sqs:{}:{}:{name}", c.region, c.account_id)
    }

    /// The stored record of a queue; `RESOURCE_NOT_FOUND` if there is none.
    pub(crate) async fn queue_record(&self, name: &str) -> Result<QueueRecord, EngineError> {
        if validate_queue_name("queue", name).is_err() {
            return Err(queue_not_found(name));
        }
        let entry = self
            .inner
            .stores
            .kv
            .get(&queue_key(name))
            .await?
            .ok_or_else(|| queue_not_found(name))?;
        decode(&entry.value)
    }

    pub(crate) async fn queue_depth(&self, name: &str) -> Result<QueueDepthView, EngineError> {
        let d = self
            .inner
            .stores
            .queues
            .depth(&store_queue(name), now_ms())
            .await?;
        self.inner.metrics.set_queue_depth(name, &d);
        Ok(QueueDepthView {
            ready: d.ready,
            delayed: d.delayed,
            in_flight: d.in_flight,
            dead: d.dead,
            oldest_age_ms: d.oldest_ready_age_ms,
        })
    }

    async fn queue_view(&self, record: QueueRecord) -> Result<QueueView, EngineError> {
        Ok(QueueView {
            arn: self.queue_arn(&record.name),
            depth: self.queue_depth(&record.name).await?,
            name: record.name,
            visibility_timeout_s: record.visibility_timeout_s,
            delay_seconds: record.delay_seconds,
            created_at: record.created_at,
        })
    }

    /// Creates a queue; `CONFLICT` if one has that name.
    pub async fn create_queue(
        &self,
        actor: &str,
        req: CreateQueueRequest,
    ) -> Result<QueueView, EngineError> {
        let record = req.into_record(now_ms())?;
        match self
            .inner
            .stores
            .kv
            .create(&queue_key(&record.name), encode(&record)?)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict(format!(
                    "queue {:?} already exists",
                    record.name
                )))
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(queue = %record.name, "queue created");
        self.audit(
            actor,
            "queue.create",
            None,
            &format!("queue {}", record.name),
            None,
            Some(&record),
        )
        .await;
        self.queue_view(record).await
    }

    /// Every queue with its counts, by name.
    pub async fn list_queues(&self) -> Result<Vec<QueueView>, EngineError> {
        let mut out = Vec::new();
        for (_, entry) in self.inner.stores.kv.list(QUEUE_PREFIX).await? {
            out.push(self.queue_view(decode(&entry.value)?).await?);
        }
        Ok(out)
    }

    /// One queue with its counts.
    pub async fn get_queue(&self, name: &str) -> Result<QueueView, EngineError> {
        let record = self.queue_record(name).await?;
        self.queue_view(record).await
    }

    /// Deletes a queue with its messages and dead letters; `CONFLICT` while a trigger reads
    /// from it.
    pub async fn delete_queue(&self, actor: &str, name: &str) -> Result<(), EngineError> {
        let record = self.queue_record(name).await?;
        if let Some(t) = self
            .list_trigger_records()
            .await?
            .into_iter()
            .find(|t| t.queue == name)
        {
            return Err(EngineError::Conflict(format!(
                "queue {name:?} is read by trigger {}; delete the trigger first",
                t.id
            )));
        }
        match self.inner.stores.kv.delete(&queue_key(name), None).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.purge_queue_messages(name).await?;
        self.inner.metrics.forget_queue(name);
        tracing::info!(queue = %name, "queue deleted");
        self.audit(
            actor,
            "queue.delete",
            None,
            &format!("queue {name}"),
            Some(&record),
            None,
        )
        .await;
        Ok(())
    }

    /// Removes every message of a queue, leased or not, and its dead letters.
    async fn purge_queue_messages(&self, name: &str) -> Result<(), EngineError> {
        let queues = &self.inner.stores.queues;
        let queue = store_queue(name);
        // A lease "in the far future" takes every message, delayed and in flight included.
        let far = i64::MAX / 4;
        loop {
            let batch = queues.lease(&queue, 1000, 0, far).await?;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                queues.remove(&queue, &m.id).await?;
            }
        }
        queues.purge_dead(&queue, None, None).await?;
        Ok(())
    }

    /// Sends a message; returns its id. `PAYLOAD_TOO_LARGE` over 256 KB.
    pub async fn send_message(
        &self,
        name: &str,
        req: SendMessageRequest,
    ) -> Result<SentMessage, EngineError> {
        req.validate()?;
        let size = req.size();
        if size > MAX_MESSAGE_BYTES {
            return Err(EngineError::PayloadTooLarge {
                what: "message",
                size,
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let queue = self.queue_record(name).await?;
        let now = now_ms();
        let delay = req.delay_seconds.unwrap_or(queue.delay_seconds);
        let id = uuid::Uuid::new_v4().to_string();
        let md5_of_body = md5_hex(req.body.as_bytes());
        let stored = StoredMessage {
            body: req.body,
            attributes: req.attributes.unwrap_or_default(),
            sent_at: now,
        };
        self.inner
            .stores
            .queues
            .enqueue(
                &store_queue(name),
                NewMessage {
                    id: id.clone(),
                    payload: encode(&stored)?,
                    not_before: now + i64::from(delay) * 1000,
                    enqueued_at: now,
                },
            )
            .await?;
        self.inner.queue_pollers.wake(name);
        Ok(SentMessage {
            message_id: id,
            md5_of_body,
        })
    }

    /// Receives (leases) up to `max` messages, hidden from other consumers for the visibility
    /// timeout; delete each with its receipt handle once handled.
    pub async fn receive_messages(
        &self,
        name: &str,
        req: ReceiveRequest,
    ) -> Result<ReceivedMessages, EngineError> {
        req.validate()?;
        let queue = self.queue_record(name).await?;
        let visibility = req
            .visibility_timeout_s
            .unwrap_or(queue.visibility_timeout_s);
        let leased = self
            .inner
            .stores
            .queues
            .lease(
                &store_queue(name),
                req.max.unwrap_or(1) as usize,
                i64::from(visibility) * 1000,
                now_ms(),
            )
            .await?;
        let mut messages = Vec::with_capacity(leased.len());
        for m in leased {
            let stored: StoredMessage = match decode(&m.payload) {
                Ok(s) => s,
                Err(_) => {
                    let _ = self
                        .inner
                        .stores
                        .queues
                        .dead_letter(
                            &store_queue(name),
                            &m.id,
                            &m.token,
                            "unreadable message",
                            now_ms(),
                        )
                        .await;
                    continue;
                }
            };
            messages.push(ReceivedMessage {
                attributes: system_attributes(m.attempts, stored.sent_at),
                md5_of_body: md5_hex(stored.body.as_bytes()),
                message_id: m.id,
                receipt_handle: m.token,
                body: stored.body,
                message_attributes: stored.attributes,
            });
        }
        Ok(ReceivedMessages { messages })
    }

    /// Deletes (acks) a received message; `CONFLICT` when the receipt is stale (its visibility
    /// timeout ran out and the message was received again, or it is gone).
    pub async fn delete_message(
        &self,
        name: &str,
        id: &str,
        receipt: &str,
    ) -> Result<(), EngineError> {
        self.queue_record(name).await?;
        if receipt.is_empty() {
            return Err(EngineError::invalid(
                "receipt",
                "give the receipt handle of the receive",
            ));
        }
        self.inner
            .stores
            .queues
            .ack(&store_queue(name), id, receipt)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => EngineError::Conflict(format!(
                    "receipt handle of message {id:?} is stale or the message is gone"
                )),
                e => e.into(),
            })
    }

    /// A queue's dead letters, oldest first.
    pub async fn queue_dead_letters(
        &self,
        name: &str,
    ) -> Result<Vec<QueueDeadLetter>, EngineError> {
        self.queue_record(name).await?;
        let dead = self
            .inner
            .stores
            .queues
            .dead(&store_queue(name), 100_000)
            .await?;
        Ok(dead
            .into_iter()
            .map(|d| {
                let stored: Option<StoredMessage> = decode(&d.payload).ok();
                QueueDeadLetter {
                    id: d.id,
                    body: stored
                        .as_ref()
                        .map(|s| s.body.clone())
                        .unwrap_or_else(|| String::from_utf8_lossy(&d.payload).into_owned()),
                    message_attributes: stored
                        .as_ref()
                        .map(|s| s.attributes.clone())
                        .unwrap_or_default(),
                    attempts: d.attempts,
                    sent_at: stored.map_or(d.enqueued_at, |s| s.sent_at),
                    died_at: d.died_at,
                    reason: d.reason,
                }
            })
            .collect())
    }

    /// Moves dead letters (all, or `ids`) back into the queue for a fresh chain of attempts.
    pub async fn replay_queue_dead_letters(
        &self,
        actor: &str,
        name: &str,
        ids: Option<Vec<String>>,
    ) -> Result<u64, EngineError> {
        self.check_queue_dead_ids(name, ids.as_deref()).await?;
        let n = self
            .inner
            .stores
            .queues
            .replay_dead(&store_queue(name), ids.clone(), now_ms())
            .await?;
        self.inner.queue_pollers.wake(name);
        self.audit(
            actor,
            "queue.dlq.replay",
            None,
            &format!("queue {name}"),
            None,
            Some(&serde_json::json!({ "ids": ids, "replayed": n })),
        )
        .await;
        Ok(n)
    }

    /// Deletes dead letters (all, or `ids`).
    pub async fn purge_queue_dead_letters(
        &self,
        actor: &str,
        name: &str,
        ids: Option<Vec<String>>,
    ) -> Result<u64, EngineError> {
        self.check_queue_dead_ids(name, ids.as_deref()).await?;
        let n = self
            .inner
            .stores
            .queues
            .purge_dead(&store_queue(name), ids.clone(), None)
            .await?;
        self.audit(
            actor,
            "queue.dlq.purge",
            None,
            &format!("queue {name}"),
            None,
            Some(&serde_json::json!({ "ids": ids, "purged": n })),
        )
        .await;
        Ok(n)
    }

    async fn check_queue_dead_ids(
        &self,
        name: &str,
        ids: Option<&[String]>,
    ) -> Result<(), EngineError> {
        let Some(ids) = ids else {
            self.queue_record(name).await?;
            return Ok(());
        };
        let dead = self.queue_dead_letters(name).await?;
        for id in ids {
            if !dead.iter().any(|d| &d.id == id) {
                return Err(EngineError::ResourceNotFound(format!(
                    "no dead letter {id:?} in queue {name:?}"
                )));
            }
        }
        Ok(())
    }

    /// Drops a queue's dead letters older than the retention (14 days).
    pub(crate) async fn expire_queue_dead_letters(&self) {
        let Ok(queues) = self.inner.stores.kv.list(QUEUE_PREFIX).await else {
            return;
        };
        let before = now_ms() - (DLQ_RETENTION_S as i64) * 1000;
        for (_, entry) in queues {
            let Ok(q) = decode::<QueueRecord>(&entry.value) else {
                continue;
            };
            let _ = self
                .inner
                .stores
                .queues
                .purge_dead(&store_queue(&q.name), None, Some(before))
                .await;
        }
    }

    /// Refreshes the depth gauges of every queue.
    pub(crate) async fn refresh_queue_metrics(&self) {
        let Ok(queues) = self.inner.stores.kv.list(QUEUE_PREFIX).await else {
            return;
        };
        for (_, entry) in queues {
            if let Ok(q) = decode::<QueueRecord>(&entry.value) {
                let _ = self.queue_depth(&q.name).await;
            }
        }
    }
}

/// `attributes` of a delivered message, as SQS names them.
pub(crate) fn system_attributes(attempts: u32, sent_at: i64) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("ApproximateReceiveCount".to_owned(), attempts.to_string()),
        ("SentTimestamp".to_owned(), sent_at.to_string()),
        ("SenderId".to_owned(), SENDER_ID.to_owned()),
    ])
}
