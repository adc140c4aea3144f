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
//! `nats://host:port` (several comma-separated URLs for a cluster; the client reconnects by
//! itself), with the credentials and TLS of [`NatsAuth`]: a `.creds` file, user and password, or
//! a token; TLS verified against a CA file or the system roots, with an optional client
//! certificate.

mod blobs;
mod bucket;
mod executions;
mod keys;
mod kv;
mod queue;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
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
    /// Credentials and TLS of the connection.
    pub auth: NatsAuth,
}

/// How a node proves who it is to NATS and secures the connection. Any combination the NATS
/// server's configuration asks for; nothing set = plain TCP, no credentials.
#[derive(Clone, Default)]
pub struct NatsAuth {
    /// A `.creds` file (user JWT and NKey seed: NATS' decentralized authentication).
    pub creds_file: Option<PathBuf>,
    /// User and password.
    pub user_password: Option<(String, String)>,
    /// An authentication token.
    pub token: Option<String>,
    /// Use TLS (implied by `tls_ca`, `tls_client` and `tls://` URLs); the server is verified
    /// against `tls_ca`, else the system's root certificates.
    pub tls: bool,
    /// PEM file of the certificate authorities to verify the server with.
    pub tls_ca: Option<PathBuf>,
    /// PEM files of this node's certificate and key, for servers that verify clients.
    pub tls_client: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAuth")
            .field("creds_file", &self.creds_file)
            .field("user", &self.user_password.as_ref().map(|(u, _)| u))
            .field("token", &self.token.as_ref().map(|_| "****"))
            .field("tls", &self.tls)
            .field("tls_ca", &self.tls_ca)
            .field("tls_client", &self.tls_client)
            .finish()
    }
}

impl NatsAuth {
    /// Connection options carrying these credentials and TLS settings (name, timeouts and the
    /// rest are the caller's).
    pub async fn connect_options(&self) -> Result<async_nats::ConnectOptions, StoreError> {
        let mut options = match &self.creds_file {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!(
                        "reading the NATS credentials file {}: {e}",
                        path.display()
                    ))
                })?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some((user, password)) = &self.user_password {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        for path in self
            .tls_ca
            .iter()
            .chain(self.tls_client.iter().flat_map(|(c, k)| [c, k]))
        {
            if !path.is_file() {
                return Err(StoreError::Unavailable(format!(
                    "NATS TLS: {} is not a readable file",
                    path.display()
                )));
            }
        }
        if self.tls || self.tls_ca.is_some() || self.tls_client.is_some() {
            options = options.require_tls(true);
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options)
    }
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            replicas: DEFAULT_REPLICAS,
            execution_ttl: DEFAULT_EXECUTION_TTL,
            usage_ttl: DEFAULT_USAGE_TTL,
            dead_letter_ttl: DEFAULT_DEAD_LETTER_TTL,
            auth: NatsAuth::default(),
        }
    }
}

/// The NATS store: one client connection shared by every trait.
pub struct NatsStore {
    kv: Bucket,
    audit: Bucket,
    queue: Bucket,
    /// Lease candidates from each queue's last scan.
    candidates: queue::Candidates,
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
        let client = options
            .auth
            .connect_options()
            .await?
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
            candidates: queue::Candidates::default(),
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
