//! The cluster backend: every store trait on NATS JetStream, so any number of identical nodes
//! share metadata, code, queues and executions.
//!
//! Everything lives in JetStream's own structures, created at connect when missing, named
//! `<namespace>_<what>` (the namespace lets several platforms, or parallel tests, share one
//! NATS cluster):
//!
//! | what | structure | retention |
//! |---|---|---|
//! | metadata ([`Kv`](crate::Kv)) | KV bucket `_kv` | none |
//! | audit (`audit/…` keys of the [`Kv`](crate::Kv)) | KV bucket `_audit`, a stream of its own | none |
//! | code packages ([`BlobStore`](crate::BlobStore)) | object store `_blobs`, objects named by sha256 | none |
//! | queue messages ([`WorkQueue`](crate::WorkQueue)) | KV bucket `_queue`, one key per message | none |
//! | dead letters | KV bucket `_dead` | [`NatsOptions::dead_letter_ttl`] (14 days) |
//! | execution records | KV bucket `_executions` | [`NatsOptions::execution_ttl`] |
//! | execution logs | KV bucket `_logs` (chunked under the server's max payload) | [`NatsOptions::execution_ttl`] |
//! | usage charges | KV bucket `_charges`, one key per charged execution | [`NatsOptions::usage_ttl`] |
//!
//! Every structure is created with [`NatsOptions::replicas`] replicas: 1 for a single dev
//! server, 3 for a production cluster (a write is acknowledged once a majority holds it, so
//! one server can fail without losing anything acknowledged). Existing structures are used as
//! they are: changing replicas or retention later is an operator's `nats stream edit`.
//!
//! Watches ([`Kv::watch`](crate::Kv::watch)) are ordered push consumers on the bucket's stream,
//! so a change made on one node reaches every watching node in the time of one message hop.
//!
//! # Layout
//! - `keys`: our keys as NATS subjects (reversible, prefix listings filtered by the server).
//! - `bucket`: one KV bucket through the JetStream primitives (headers, compare-and-set, scans).
//! - `kv`: [`Kv`](crate::Kv) on the metadata and audit buckets.
//! - `executions`: [`ExecutionStore`](crate::ExecutionStore): records, logs, usage charges.
//! - `queue`: [`WorkQueue`](crate::WorkQueue): why the queue is one compare-and-set record per
//!   message rather than a JetStream work-queue consumer is explained there.
//! - `blobs`: [`BlobStore`](crate::BlobStore) on the object store.
//!
//! # Transport
//! Plain TCP (`nats://host:port`, several comma-separated URLs for a cluster); the client
//! reconnects by itself. TLS and credentials are not wired yet.

mod blobs;
mod bucket;
mod executions;
mod keys;
mod kv;
mod queue;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use crate::{StoreError, Stores};
use bucket::Bucket;

/// Replicas of every bucket and stream unless configured: right for one dev server.
pub const DEFAULT_REPLICAS: usize = 1;
/// Replicas for a production cluster (three servers or more).
pub const PRODUCTION_REPLICAS: usize = 3;
/// The namespace unless configured.
pub const DEFAULT_NAMESPACE: &str = "holactl";
/// How long execution records and logs are kept.
pub const DEFAULT_EXECUTION_TTL: Duration = Duration::from_secs(30 * 86_400);
/// How long per-execution usage charges are kept (usage reports older than this are empty).
pub const DEFAULT_USAGE_TTL: Duration = Duration::from_secs(400 * 86_400);
/// How long dead letters are kept (the platform's DLQ retention).
pub const DEFAULT_DEAD_LETTER_TTL: Duration = Duration::from_secs(14 * 86_400);

/// How to lay the store out in JetStream.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// Prefix of every bucket and stream name (`[A-Za-z0-9_-]+`); nodes of one platform share
    /// it, different platforms (or tests) on one NATS cluster do not.
    pub namespace: String,
    /// Replicas of every bucket and stream: [`DEFAULT_REPLICAS`] (1) for development,
    /// [`PRODUCTION_REPLICAS`] (3) for a production cluster. Only used when creating.
    pub replicas: usize,
    /// Retention of execution records and logs.
    pub execution_ttl: Duration,
    /// Retention of usage charges.
    pub usage_ttl: Duration,
    /// Retention of dead letters.
    pub dead_letter_ttl: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            replicas: DEFAULT_REPLICAS,
            execution_ttl: DEFAULT_EXECUTION_TTL,
            usage_ttl: DEFAULT_USAGE_TTL,
            dead_letter_ttl: DEFAULT_DEAD_LETTER_TTL,
        }
    }
}

/// The NATS store: one client connection shared by every trait.
pub struct NatsStore {
    kv: Bucket,
    audit: Bucket,
    queue: Bucket,
    dead: Bucket,
    executions: executions::Executions,
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore")
            .field("kv", &self.kv.name())
            .finish_non_exhaustive()
    }
}

fn valid_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl NatsStore {
    /// Connects to `url` and opens (creating when missing) every bucket and stream.
    pub async fn connect(url: &str, options: NatsOptions) -> Result<Stores, StoreError> {
        if !valid_namespace(&options.namespace) {
            return Err(StoreError::Unavailable(format!(
                "invalid NATS namespace {:?}: use letters, digits, '_' and '-'",
                options.namespace
            )));
        }
        if options.replicas == 0 || options.replicas > 5 {
            return Err(StoreError::Unavailable(format!(
                "invalid NATS replicas {}: use 1 to 5 (1 for development, 3 for production)",
                options.replicas
            )));
        }
        let client = async_nats::ConnectOptions::new()
            .name("holactl")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| StoreError::Unavailable(format!("connecting to NATS at {url}: {e}")))?;
        let js = jetstream::new(client.clone());
        let ns = &options.namespace;
        let r = options.replicas;
        let none = Duration::ZERO;
        let open = |what: &str, description: &'static str, max_age: Duration| {
            let name = format!("{ns}_{what}");
            let js = js.clone();
            async move { Bucket::open(&js, &name, description, r, max_age).await }
        };
        let kv = open("kv", "holactl metadata", none).await?;
        let audit = open("audit", "holactl audit trail", none).await?;
        let queue = open("queue", "holactl work queue messages", none).await?;
        let dead = open("dead", "holactl dead letters", options.dead_letter_ttl).await?;
        let records = open(
            "executions",
            "holactl execution records",
            options.execution_ttl,
        )
        .await?;
        let logs = open("logs", "holactl execution logs", options.execution_ttl).await?;
        let charges = open("charges", "holactl usage charges", options.usage_ttl).await?;
        let blobs = blobs::NatsBlobStore::open(&js, &format!("{ns}_blobs"), r).await?;
        let max_payload = client.server_info().max_payload;
        let store = Arc::new(NatsStore {
            kv,
            audit,
            queue,
            dead,
            executions: executions::Executions::new(records, logs, charges, max_payload),
        });
        Ok(Stores {
            kv: store.clone(),
            queues: store.clone(),
            executions: store,
            blobs: Arc::new(blobs),
            backend: "nats",
        })
    }
}
