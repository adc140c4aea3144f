//! Engine configuration, with defaults.

use std::path::PathBuf;
use std::time::Duration;

use holactl_sandbox::IsolationLevel;
use holactl_types::limits;

/// [`EngineConfig::lease_margin`] unless configured.
pub const DEFAULT_LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Where the engine keeps what nodes share.
#[derive(Clone, Debug, Default)]
pub enum StoreChoice {
    /// SQLite and a blob directory under the data dir: one node (the default).
    #[default]
    Embedded,
    /// A NATS JetStream server or cluster shared by every node of a platform.
    Nats {
        /// `nats://HOST:PORT` (several comma-separated for a cluster).
        url: String,
        /// Namespace, replicas, retention, credentials and TLS.
        options: Box<holactl_store::nats::NatsOptions>,
    },
}

/// How an engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where everything lives: database, blobs, code cache, runtime files, token. With the
    /// NATS store, only what stays local to the node (code cache, runtime files, sandbox work
    /// dir, master key file, node id, the admin token file of the node that created it).
    pub data_dir: PathBuf,
    /// The store backend.
    pub store: StoreChoice,
    /// Where this node's API answers (`http://HOST:PORT`), shown to other nodes (cluster
    /// mode); `None` when unknown.
    pub node_address: Option<String>,
    /// Lease time of an async delivery beyond its function's timeout (start-up, recording,
    /// settling). After a node dies, its deliveries are handed to another node once their
    /// lease runs out, so this bounds the recovery time.
    pub lease_margin: Duration,
    /// Our own binary (re-executed as `sandbox-init`).
    pub init_program: PathBuf,
    /// Isolation level; `None` picks the strongest the host supports.
    pub isolation: Option<IsolationLevel>,
    /// Idle warm instances are stopped after this long.
    pub idle_ttl: Duration,
    /// Account-wide concurrent executions.
    pub max_concurrency: u32,
    /// Region in ARNs and `AWS_REGION`.
    pub region: String,
    /// Account id in ARNs.
    pub account_id: String,
    /// Captured log bytes kept per execution.
    pub log_cap: usize,
    /// Most processes per instance.
    pub max_pids: u32,
    /// The autoscaler of asynchronous work (workers per function).
    pub autoscaler: crate::autoscaler::AutoscalerConfig,
    /// First retry delay of a failed async invocation; doubles with each retry.
    pub retry_base: Duration,
    /// Sandboxes kept prepared ahead of demand (cgroup and namespaces ready), which takes
    /// the cost of joining a cgroup off cold starts.
    pub prepared_sandboxes: usize,
    /// Usage reports' price per request, USD (default: AWS's x86 list price).
    pub price_per_request: f64,
    /// Usage reports' price per GB-second, USD (default: AWS's x86 list price).
    pub price_per_gb_second: f64,
    /// Anyone may register a user (`POST /api/v1/users/register` without credentials); each
    /// gets a personal project. Otherwise only administrators register users.
    pub open_registration: bool,
    /// Thresholds of the alerts the platform evaluates.
    pub alerts: crate::alerts::AlertThresholds,
    /// How long an invocation's scoped token stays valid after the invocation's deadline
    /// (it is also refused as soon as another invocation runs on its instance).
    pub token_grace: Duration,
}

impl EngineConfig {
    /// Defaults for a data dir and our binary.
    pub fn new(data_dir: PathBuf, init_program: PathBuf) -> EngineConfig {
        EngineConfig {
            data_dir,
            store: StoreChoice::Embedded,
            node_address: None,
            lease_margin: DEFAULT_LEASE_MARGIN,
            init_program,
            isolation: None,
            idle_ttl: Duration::from_secs(limits::DEFAULT_IDLE_TTL_S),
            max_concurrency: limits::DEFAULT_ACCOUNT_CONCURRENCY,
            region: limits::DEFAULT_REGION.to_owned(),
            account_id: limits::DEFAULT_ACCOUNT_ID.to_owned(),
            log_cap: limits::MAX_LOG_BYTES_PER_EXECUTION,
            max_pids: 1024,
            autoscaler: crate::autoscaler::AutoscalerConfig::default(),
            retry_base: Duration::from_secs(1),
            prepared_sandboxes: 2,
            price_per_request: holactl_types::usage::AWS_PRICE_PER_REQUEST,
            price_per_gb_second: holactl_types::usage::AWS_PRICE_PER_GB_SECOND,
            alerts: crate::alerts::AlertThresholds::default(),
            token_grace: crate::policy::DEFAULT_TOKEN_GRACE,
            open_registration: false,
        }
    }
}
