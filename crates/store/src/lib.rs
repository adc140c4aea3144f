//! Storage for holactl: small async traits every backend implements, the embedded backend
//! (SQLite in WAL mode plus a content-addressed blob directory) that runs by default, and the
//! NATS JetStream backend for clusters.
//!
//! # Layout
//! - [`Kv`]: metadata key/value with revisions (get, create, put, compare-and-set update,
//!   delete, prefix list, prefix watch). Functions and tokens live here.
//! - [`ExecutionStore`]: execution records and their captured logs, written in the background
//!   (group commit) and read back consistently.
//! - [`BlobStore`]: content-addressed bytes (code packages), addressed by hex sha256.
//! - [`WorkQueue`]: durable queues with leases, retries and dead letters (async invocations,
//!   queues, webhook deliveries).
//! - [`embedded`]: the SQLite backend; one writer thread batches every queued write into one
//!   transaction, so many small durable writes cost one fsync.
//! - [`nats`] (feature `nats`, on by default): the cluster backend on NATS JetStream (KV
//!   buckets, object store, streams); nodes sharing a namespace share everything.
//! - [`conformance`]: the behaviour every backend must show, as reusable async checks.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use holactl_types::usage::DayUsage;
use holactl_types::ExecutionRecord;

pub mod conformance;
pub mod embedded;
#[cfg(feature = "nats")]
pub mod nats;
pub mod transfer;

/// Store failures, as kinds every backend maps onto.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key or id does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A create found the key present, or an update's revision did not match.
    #[error("conflict on {key}: {reason}")]
    Conflict {
        /// The key.
        key: String,
        /// What did not match.
        reason: String,
    },
    /// The backend cannot serve the request (closed, I/O failure, corrupt data).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    pub(crate) fn unavailable(err: impl std::fmt::Display) -> Self {
        StoreError::Unavailable(err.to_string())
    }

    /// A lease on message `id` of `queue` that no longer holds (it expired and the message
    /// was delivered again, or the message was removed).
    pub(crate) fn lease_lost(queue: &str, id: &str) -> Self {
        StoreError::Conflict {
            key: format!("{queue}/{id}"),
            reason: "lease lost (expired and re-delivered, or message removed)".into(),
        }
    }
}

/// A stored value and its revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The bytes.
    pub value: Bytes,
    /// Changes on every write; compare-and-set compares it.
    pub revision: u64,
}

/// Metadata key/value store with revisions.
#[async_trait]
pub trait Kv: Send + Sync + 'static {
    /// The entry under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError>;
    /// Writes `key` only if absent; [`StoreError::Conflict`] otherwise. Returns the revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<u64, StoreError>;
    /// Writes `key` whatever is there. Returns the revision.
    async fn put(&self, key: &str, value: Bytes) -> Result<u64, StoreError>;
    /// Writes `key` only if its revision is still `revision`.
    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, StoreError>;
    /// Removes `key` (only at `revision` when given). [`StoreError::NotFound`] if absent.
    async fn delete(&self, key: &str, revision: Option<u64>) -> Result<(), StoreError>;
    /// Every entry whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Entry)>, StoreError>;
    /// Changes to keys starting with `prefix` committed after this call returned, from every
    /// writer of the store (on the NATS backend: every node), oldest first.
    ///
    /// A cache follows the store by starting a watch, then listing, then applying events whose
    /// revision is newer than what it holds. The watch ends ([`KvWatch::next`] answers `None`)
    /// when it can no longer follow every change (it fell too far behind, or the backend went
    /// away); the caller then lists again and watches anew.
    async fn watch(&self, prefix: &str) -> Result<KvWatch, StoreError>;
}

/// A change seen by a [`Kv::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvEvent {
    /// `key` was created or overwritten with `entry`.
    Put {
        /// The key.
        key: String,
        /// Its new value and revision.
        entry: Entry,
    },
    /// `key` was deleted.
    Delete {
        /// The key.
        key: String,
        /// The revision of the deletion (orders it among the key's other changes).
        revision: u64,
    },
}

impl KvEvent {
    /// The key changed.
    pub fn key(&self) -> &str {
        match self {
            KvEvent::Put { key, .. } | KvEvent::Delete { key, .. } => key,
        }
    }
}

/// How many events a watcher may fall behind before its watch ends.
pub(crate) const WATCH_BUFFER: usize = 1024;

/// A running [`Kv::watch`]: events arrive in order; dropping it stops the watch.
pub struct KvWatch {
    rx: tokio::sync::mpsc::Receiver<KvEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl KvWatch {
    /// A watch fed by `task` through `rx`; the task is stopped when the watch is dropped.
    pub(crate) fn new(
        rx: tokio::sync::mpsc::Receiver<KvEvent>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        KvWatch { rx, task }
    }

    /// The next change, or `None` once the watch has ended (see [`Kv::watch`]).
    pub async fn next(&mut self) -> Option<KvEvent> {
        self.rx.recv().await
    }
}

impl Drop for KvWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for KvWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvWatch").finish_non_exhaustive()
    }
}

/// Which executions to list.
#[derive(Clone, Debug, Default)]
pub struct ExecutionQuery {
    /// Only this function's.
    pub function: Option<String>,
    /// Only those older than this execution id (pagination).
    pub before: Option<String>,
    /// At most this many (newest first).
    pub limit: usize,
}

/// Which usage aggregates to read.
#[derive(Clone, Debug, Default)]
pub struct UsageQuery {
    /// Only this function's.
    pub function: Option<String>,
    /// Only days (UTC, days since the epoch) from this one on.
    pub since_day: Option<i64>,
}

/// A captured log as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLog {
    /// The bytes.
    pub data: Vec<u8>,
    /// Whether the capture was cut at the cap.
    pub truncated: bool,
}

/// Whether `exec` is the record of a newly accepted event (`pending`, no attempt yet): it is
/// written only where the execution has no record yet, never over one. In a cluster the node
/// that accepted an event may write it after another node has already run the event.
pub fn is_initial(exec: &ExecutionRecord) -> bool {
    exec.status == holactl_types::ExecutionStatus::Pending && exec.attempts == 0
}

/// Execution records and logs.
#[async_trait]
pub trait ExecutionStore: Send + Sync + 'static {
    /// Inserts or replaces a record (and its log, when given) durably; an initial record
    /// ([`is_initial`]) is only inserted.
    async fn record(&self, exec: ExecutionRecord, log: Option<StoredLog>)
        -> Result<(), StoreError>;
    /// Inserts or replaces a record in the background: it is visible to every read that starts
    /// after this call, and durable at the next group commit.
    fn record_later(&self, exec: ExecutionRecord, log: Option<StoredLog>);
    /// Waits until every write of execution `id` queued before this call is stored, so a
    /// queue operation that settles the execution (ack, retry, dead letter) never overtakes
    /// its record: a node that dies in between leaves the event queued, not acked with its
    /// record behind.
    async fn flush(&self, id: &str) -> Result<(), StoreError>;
    /// One record.
    async fn get(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError>;
    /// Records, newest first.
    async fn list(&self, query: ExecutionQuery) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// The id of every record, oldest first, in one pass (a whole-store export).
    async fn ids(&self) -> Result<Vec<String>, StoreError>;
    /// The log of an execution, if it has one.
    async fn log(&self, id: &str) -> Result<Option<StoredLog>, StoreError>;
    /// Usage per function and UTC day: the sum, over the current records, of each final
    /// record's [`holactl_types::usage::Charge`] (each execution counted once however often
    /// it was written). Reads after every write queued before the call.
    async fn usage(&self, query: UsageQuery) -> Result<Vec<DayUsage>, StoreError>;
}

/// A message to add to a work queue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewMessage {
    /// Unique id (also the idempotency key of the enqueue: a second enqueue of the same id in
    /// the same queue is a no-op).
    pub id: String,
    /// The bytes.
    pub payload: Bytes,
    /// Not deliverable before this time (epoch ms).
    pub not_before: i64,
    /// When it was first accepted (epoch ms); kept across retries and replays.
    pub enqueued_at: i64,
}

/// A message handed to a consumer for a limited time.
#[derive(Clone, Debug, PartialEq)]
pub struct Leased {
    /// Message id.
    pub id: String,
    /// The bytes.
    pub payload: Bytes,
    /// Deliveries so far, this one included.
    pub attempts: u32,
    /// First acceptance time (epoch ms).
    pub enqueued_at: i64,
    /// Proof of this lease for ack/retry/dead-letter.
    pub token: String,
}

/// A message that exhausted its deliveries.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadMessage {
    /// Message id.
    pub id: String,
    /// Queue it died in.
    pub queue: String,
    /// The bytes.
    pub payload: Bytes,
    /// Deliveries made.
    pub attempts: u32,
    /// First acceptance time (epoch ms).
    pub enqueued_at: i64,
    /// When it was dead-lettered (epoch ms).
    pub died_at: i64,
    /// The last error.
    pub reason: String,
}

/// A message as a queue keeps it, live or dead: what a dump lists and a restore writes
/// (export and import of a whole store). Leases are not carried.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMessage {
    /// Queue it is in.
    pub queue: String,
    /// Message id.
    pub id: String,
    /// The bytes.
    pub payload: Bytes,
    /// First acceptance time (epoch ms).
    pub enqueued_at: i64,
    /// Not deliverable before this time (epoch ms); for a message leased when dumped, the
    /// end of its lease.
    pub visible_at: i64,
    /// Deliveries so far.
    pub attempts: u32,
    /// Set when the message is dead-lettered.
    pub dead: Option<Death>,
}

/// When and why a message was dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Death {
    /// When (epoch ms).
    pub died_at: i64,
    /// The last error.
    pub reason: String,
}

/// Counts of a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for their time (retries with backoff).
    pub delayed: u64,
    /// Leased to a consumer.
    pub in_flight: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// Age of the oldest ready message, ms.
    pub oldest_ready_age_ms: u64,
}

/// Durable work queues with leases, retries and a dead-letter area.
///
/// A message is delivered at least once: a consumer that crashes (or whose lease runs out)
/// does not ack, and the message becomes deliverable again.
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Adds a message durably (it is on disk when this returns).
    async fn enqueue(&self, queue: &str, msg: NewMessage) -> Result<(), StoreError>;
    /// Leases up to `max` deliverable messages for `lease_ms`, oldest first.
    async fn lease(
        &self,
        queue: &str,
        max: usize,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<Leased>, StoreError>;
    /// Extends a lease.
    async fn extend(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        until: i64,
    ) -> Result<(), StoreError>;
    /// Removes a delivered message. [`StoreError::Conflict`] if the lease was lost.
    async fn ack(&self, queue: &str, id: &str, token: &str) -> Result<(), StoreError>;
    /// Releases a message for another delivery at `not_before`.
    async fn retry(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        not_before: i64,
    ) -> Result<(), StoreError>;
    /// Moves a message to the dead-letter area with the reason.
    async fn dead_letter(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Removes a message whether leased or not (cancellation); true if it was there.
    async fn remove(&self, queue: &str, id: &str) -> Result<bool, StoreError>;
    /// Counts.
    async fn depth(&self, queue: &str, now: i64) -> Result<QueueDepth, StoreError>;
    /// Counts of every queue whose name starts with `prefix` and that holds any message,
    /// live or dead, by queue name.
    async fn depths(
        &self,
        prefix: &str,
        now: i64,
    ) -> Result<std::collections::BTreeMap<String, QueueDepth>, StoreError>;
    /// Dead messages of a queue, oldest first.
    async fn dead(&self, queue: &str, limit: usize) -> Result<Vec<DeadMessage>, StoreError>;
    /// Moves dead messages back into the queue as fresh deliveries (all when `ids` is
    /// `None`); returns how many.
    async fn replay_dead(
        &self,
        queue: &str,
        ids: Option<Vec<String>>,
        now: i64,
    ) -> Result<u64, StoreError>;
    /// Deletes dead messages (all when `ids` is `None`), or those older than `before`.
    async fn purge_dead(
        &self,
        queue: &str,
        ids: Option<Vec<String>>,
        before: Option<i64>,
    ) -> Result<u64, StoreError>;
    /// Every message, live and dead, of every queue whose name starts with `prefix`, ordered
    /// by queue and id.
    async fn dump(&self, prefix: &str) -> Result<Vec<StoredMessage>, StoreError>;
    /// Writes a message as [`WorkQueue::dump`] listed it, unleased. False (and nothing
    /// written) when the queue already holds that id, live or dead.
    async fn restore(&self, msg: StoredMessage) -> Result<bool, StoreError>;
}

/// Content-addressed bytes.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under their sha256 (hex) and returns it; storing twice is harmless.
    async fn put(&self, bytes: Bytes) -> Result<String, StoreError>;
    /// The bytes stored under `sha256`.
    async fn get(&self, sha256: &str) -> Result<Option<Bytes>, StoreError>;
    /// Whether `sha256` is stored.
    async fn contains(&self, sha256: &str) -> Result<bool, StoreError>;
    /// Every stored sha256, sorted.
    async fn list(&self) -> Result<Vec<String>, StoreError>;
}

/// The stores a node runs on, as trait objects so backends are chosen at start.
#[derive(Clone)]
pub struct Stores {
    /// Metadata.
    pub kv: Arc<dyn Kv>,
    /// Executions and logs.
    pub executions: Arc<dyn ExecutionStore>,
    /// Code packages.
    pub blobs: Arc<dyn BlobStore>,
    /// Work queues (async invocations, queues, webhooks).
    pub queues: Arc<dyn WorkQueue>,
    /// Backend name for health output (`embedded`, `nats`).
    pub backend: &'static str,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// True for a 64-character lower-case hex string.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
