//! Queues and event-source mappings: named durable queues with a message API (send, receive
//! with a visibility timeout, delete by receipt), each with a dead-letter area, and mappings
//! ("triggers") that poll a queue and invoke a function with SQS-shaped batches.
//!
//! Messages live in the store's [`holactl_store::WorkQueue`] under `q/<name>`; queue and
//! mapping records live in the key/value store. Delivery is at least once: a batch whose
//! poller dies is not acked, and its messages come back when their lease runs out.
//!
//! # Layout
//! - [`admin`]: queues, their messages and their dead-letter areas.
//! - [`triggers`]: creating, listing, enabling, disabling and deleting mappings.
//! - [`poller`]: the supervisor, one poller per enabled mapping, and batch delivery.
//! - [`batch`]: the pure decisions (partial failures, bisection, payload cuts, MD5).
//! - [`metrics`]: queue depth and oldest-age gauges.

pub mod admin;
pub mod batch;
pub mod metrics;
pub mod poller;
pub mod triggers;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Key/value prefix of queue records.
pub(crate) const QUEUE_PREFIX: &str = "queues/";
/// Key/value prefix of mapping records.
pub(crate) const TRIGGER_PREFIX: &str = "triggers/";

/// Store key of a queue record.
pub(crate) fn queue_key(name: &str) -> String {
    format!("{QUEUE_PREFIX}{name}")
}

/// Store key of a mapping record.
pub(crate) fn trigger_key(id: &str) -> String {
    format!("{TRIGGER_PREFIX}{id}")
}

/// The work queue that holds a queue's messages.
pub(crate) fn store_queue(name: &str) -> String {
    format!("q/{name}")
}

/// A message as the work queue carries it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    pub body: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// When it was sent (epoch ms); kept across retries and replays.
    pub sent_at: i64,
}

/// The pollers of this node's enabled mappings, and a waker per queue so a send reaches an
/// idle poller at once.
#[derive(Default)]
pub(crate) struct Pollers {
    running: Mutex<HashMap<String, poller::Handle>>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Serializes reconciling (read the records, start or stop pollers), so a periodic pass
    /// never restarts a poller that an API call is stopping.
    sync: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Pollers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.running.lock().map(|r| r.len()).unwrap_or(0);
        f.debug_struct("Pollers").field("running", &n).finish()
    }
}

impl Pollers {
    /// The waker of a queue (created on first use).
    pub(crate) fn waker(&self, queue: &str) -> Arc<Notify> {
        match self.wakers.lock() {
            Ok(mut w) => w.entry(queue.to_owned()).or_default().clone(),
            Err(_) => Arc::new(Notify::new()),
        }
    }

    /// Wakes the pollers of a queue.
    pub(crate) fn wake(&self, queue: &str) {
        let waker = self.wakers.lock().ok().and_then(|w| w.get(queue).cloned());
        if let Some(w) = waker {
            w.notify_waiters();
        }
    }
}
