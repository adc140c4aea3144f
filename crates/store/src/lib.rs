//! Storage for holactl: small async traits every backend implements, and the embedded backend
//! (SQLite in WAL mode plus a content-addressed blob directory) that runs by default.
//!
//! # Layout
//! - [`Kv`]: metadata key/value with revisions (get, create, put, compare-and-set update,
//!   delete, prefix list). Functions and tokens live here.
//! - [`ExecutionStore`]: execution records and their captured logs, written in the background
//!   (group commit) and read back consistently.
//! - [`BlobStore`]: content-addressed bytes (code packages), addressed by hex sha256.
//! - [`embedded`]: the SQLite backend; one writer thread batches every queued write into one
//!   transaction, so many small durable writes cost one fsync.
//! - [`conformance`]: the behaviour every backend must show, as reusable async checks.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use holactl_types::ExecutionRecord;

pub mod conformance;
pub mod embedded;

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

/// A captured log as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLog {
    /// The bytes.
    pub data: Vec<u8>,
    /// Whether the capture was cut at the cap.
    pub truncated: bool,
}

/// Execution records and logs.
#[async_trait]
pub trait ExecutionStore: Send + Sync + 'static {
    /// Inserts or replaces a record (and its log, when given) durably.
    async fn record(&self, exec: ExecutionRecord, log: Option<StoredLog>)
        -> Result<(), StoreError>;
    /// Inserts or replaces a record in the background: it is visible to every read that starts
    /// after this call, and durable at the next group commit.
    fn record_later(&self, exec: ExecutionRecord, log: Option<StoredLog>);
    /// One record.
    async fn get(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError>;
    /// Records, newest first.
    async fn list(&self, query: ExecutionQuery) -> Result<Vec<ExecutionRecord>, StoreError>;
    /// The log of an execution, if it has one.
    async fn log(&self, id: &str) -> Result<Option<StoredLog>, StoreError>;
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
    /// Backend name for health output (`embedded`).
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
