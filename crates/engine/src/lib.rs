//! The invocation pipeline of holactl: functions and their code, warm pools, executions,
//! logs and metrics. It knows nothing of HTTP: the server translates requests into calls on
//! [`Engine`], and the CLI's `test --local` drives an engine directly.
//!
//! # Layout
//! - [`Engine`] (this file): opening, shutdown, health, metrics, authentication.
//! - [`functions`]: create/update/get/list/delete functions, code uploads.
//! - [`versions`]: publishing versions, aliases with weighted routing.
//! - [`webhooks`]: signed webhooks that start asynchronous invocations.
//! - [`schedules`]: cron and rate schedules firing asynchronous invocations.
//! - [`gateway`]: the HTTP gateway: APIs, routes, stages, CORS, JWT and API-key auth,
//!   throttling; requests become synchronous invocations with the payload format 2.0 event.
//! - [`secrets`]: secrets encrypted at rest, bound to functions as environment variables.
//! - [`audit`]: the append-only audit trail.
//! - [`policy`]: execution policies (least privilege), per-invocation scoped tokens and the
//!   internal API functions call through their Runtime API endpoint (`/hola/v1/…`).
//! - [`queues`]: named queues, their messages and DLQs, and event-source mappings (triggers).
//! - [`invoke`]: resolve → admit → pool or cold start → invoke → record.
//! - [`code`]: zip validation and the unpacked, content-addressed code cache.
//! - [`pool`]: warm instances and their idle TTL.
//! - [`concurrency`]: per-function reserved concurrency (admission) and its settings.
//! - [`provisioner`]: provisioned concurrency, instances initialised ahead and kept warm.
//! - [`metrics`]: Prometheus metrics.
//! - [`stats`]: per-function metrics over a window (percentiles, rates) from executions.
//! - [`alerts`]: alerts the platform evaluates, with configurable thresholds.
//! - [`status`]: workers, instances, queue depths and alerts now.
//! - [`usage`]: usage metering: requests, GB-seconds and cost per function and day.
//! - [`auth`]: the admin token.
//! - [`cluster`]: cluster mode (NATS store): caches that follow other nodes' writes,
//!   heartbeats and the node list.
//! - [`config`], [`error`]: configuration and [`EngineError`].

pub mod alerts;
pub mod asynchronous;
pub mod audit;
pub mod auth;
pub mod autoscaler;
pub(crate) mod cancel;
pub mod cluster;
pub mod code;
pub mod concurrency;
pub mod config;
pub mod error;
pub mod functions;
pub mod gateway;
pub mod idempotency;
pub mod identity;
pub mod invoke;
pub mod metrics;
pub mod policy;
pub mod pool;
pub mod provisioner;
pub mod queues;
pub mod schedules;
pub mod secrets;
pub mod stats;
pub mod status;
mod throttles;
pub mod usage;
pub mod versions;
pub mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use holactl_sandbox::{IsolationLevel, RuntimeCatalog, Sandbox, SandboxConfig};
use holactl_store::Stores;
use holactl_types::api::{Health, RuntimeResolution};
use holactl_types::{FunctionRecord, RuntimeFamily};
use tokio::sync::Semaphore;

pub use asynchronous::AsyncRequest;
pub use config::EngineConfig;
pub use error::EngineError;
pub use invoke::{InvokeRequest, InvokeResponse};

use code::{CodeCache, PackageLimits};
use metrics::Metrics;
use pool::Pool;

/// What runs for one qualifier: `$LATEST` or a published version.
#[derive(Debug)]
pub(crate) struct Runnable {
    pub name: String,
    /// `$LATEST` or the version number.
    pub version: String,
    pub config: holactl_types::FunctionConfig,
    pub code: holactl_types::function::CodeRef,
    /// Instances started for one key are never reused for another.
    pub instance_key: String,
    /// Unqualified ARN.
    pub arn: String,
}

/// A function as the engine keeps it in memory: an immutable snapshot replaced on change.
#[derive(Debug)]
pub(crate) struct FunctionEntry {
    pub record: FunctionRecord,
    pub resolution: RuntimeResolution,
    pub latest: Arc<Runnable>,
    pub versions: BTreeMap<u32, (Arc<holactl_types::version::VersionRecord>, Arc<Runnable>)>,
    pub aliases: BTreeMap<String, holactl_types::version::AliasRecord>,
}

pub(crate) struct Inner {
    pub config: EngineConfig,
    pub stores: Stores,
    pub sandbox: Sandbox,
    pub catalog: RuntimeCatalog,
    pub code: CodeCache,
    pub functions: RwLock<HashMap<String, Arc<FunctionEntry>>>,
    pub pool: Pool,
    pub metrics: Metrics,
    pub admin_hash: [u8; 32],
    pub master_key: [u8; 32],
    pub concurrency: Arc<Semaphore>,
    pub started: Instant,
    pub shutting_down: AtomicBool,
    pub reaper: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Cancel handles of executions running on this node.
    pub running: Mutex<HashMap<String, tokio::sync::oneshot::Sender<()>>>,
    /// Executions cancelled while being handed to a worker.
    pub cancelled: Mutex<std::collections::HashSet<String>>,
    /// Wakes the async dispatcher when work is enqueued.
    pub async_work: tokio::sync::Notify,
    /// Background tasks stopped at shutdown.
    pub tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Pollers of the enabled queue triggers.
    pub queue_pollers: queues::Pollers,
    /// Per-function reserved and provisioned concurrency.
    pub limits: concurrency::Limits,
    /// Users, projects, tokens and resource owners.
    pub identity: identity::State,
    /// Throttles per function and minute.
    pub throttle_log: throttles::ThrottleLog,
    /// Async workers per function, steered by the autoscaler.
    pub workers: autoscaler::Workers,
    /// Wakes the provisioner when settings or functions change.
    pub provisioner_wake: tokio::sync::Notify,
    /// The key of invocations' scoped tokens (execution policies).
    pub policy: policy::State,
    /// The gateway's compiled route tables, API keys and token buckets.
    pub gateway: gateway::State,
    pub warnings: Vec<String>,
    /// Where the admin token can be read (this node's file, or the node that created it).
    pub admin_origin: Option<auth::TokenOrigin>,
    /// Cluster mode (NATS store): this node's id and the node list; `None` when embedded.
    pub cluster: Option<cluster::State>,
}

/// The embedded store's directory inside the data dir.
pub const STORE_DIR: &str = "store";

/// The engine: a cheap-to-clone handle.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Engine {
    /// Opens the data dir (creating it), its store, code cache and admin token, finds the
    /// host's runtimes, and loads every function.
    pub async fn open(mut config: EngineConfig) -> Result<Engine, EngineError> {
        // Instances see paths under the data dir from other working directories.
        config.data_dir = std::path::absolute(&config.data_dir)
            .map_err(|e| EngineError::Internal(format!("{}: {e}", config.data_dir.display())))?;
        config
            .autoscaler
            .validate()
            .map_err(|e| EngineError::invalid("autoscaler", e.to_string()))?;
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| EngineError::Internal(format!("{}: {e}", dir.display())))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let stores = match &config.store {
            config::StoreChoice::Embedded => {
                holactl_store::embedded::EmbeddedStore::open(&dir.join(STORE_DIR))?
            }
            config::StoreChoice::Nats { url, options } => {
                holactl_store::nats::NatsStore::connect(url, (**options).clone()).await?
            }
        };
        let cluster_state = match &config.store {
            config::StoreChoice::Embedded => None,
            config::StoreChoice::Nats { url, options } => Some(cluster::State {
                spill: Some(
                    cluster::spill::Spill::connect(url, &options.namespace, &options.auth).await?,
                ),
                node_id: cluster::node_id(dir)?,
                namespace: options.namespace.clone(),
                address: config
                    .node_address
                    .clone()
                    .unwrap_or_else(|| "unknown".to_owned()),
                started_at: now_ms(),
                nodes: RwLock::new(Vec::new()),
            }),
        };
        let catalog = {
            let runtime_dir = dir.join("runtime");
            tokio::task::spawn_blocking(move || RuntimeCatalog::detect(&runtime_dir))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?
                .map_err(|e| EngineError::Internal(e.to_string()))?
        };
        let level = config.isolation.unwrap_or_else(Sandbox::strongest_level);
        let sandbox = Sandbox::new(SandboxConfig {
            init_program: config.init_program.clone(),
            level,
            log_cap: config.log_cap,
            work_dir: dir.join("sandbox"),
            runtime_dir: catalog.runtime_dir().to_owned(),
            max_pids: config.max_pids,
        })
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut warnings = Vec::new();
        if level == IsolationLevel::Process {
            warnings.push(
                "isolation level is 'process': functions run as ordinary processes of this \
                 user, without filesystem, network or memory isolation"
                    .to_owned(),
            );
        }
        let code = CodeCache::open(dir.join("code"), PackageLimits::default())
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let node = cluster_state
            .as_ref()
            .map(|c| (c.node_id.as_str(), Some(c.address.as_str())));
        let admin = auth::ensure_admin_token_as(stores.kv.as_ref(), dir, node).await?;
        let master_key = match &cluster_state {
            None => {
                let key = secrets::load_master_key(dir)?;
                secrets::verify_master_key(stores.kv.as_ref(), &key).await?;
                key
            }
            // Every node must hold the same key: never invent one for a running cluster.
            Some(c) => secrets::cluster_master_key(stores.kv.as_ref(), dir, &c.namespace).await?,
        };
        let policy_state = policy::State::new(config.token_grace)?;
        let engine = Engine {
            inner: Arc::new(Inner {
                concurrency: Arc::new(Semaphore::new(config.max_concurrency as usize)),
                config,
                stores,
                sandbox,
                catalog,
                code,
                functions: RwLock::new(HashMap::new()),
                pool: Pool::default(),
                metrics: Metrics::new(),
                admin_hash: admin.hash,
                admin_origin: admin.origin,
                cluster: cluster_state,
                master_key,
                started: Instant::now(),
                shutting_down: AtomicBool::new(false),
                reaper: Mutex::new(None),
                running: Mutex::new(HashMap::new()),
                cancelled: Mutex::new(std::collections::HashSet::new()),
                async_work: tokio::sync::Notify::new(),
                tasks: Mutex::new(Vec::new()),
                queue_pollers: queues::Pollers::default(),
                limits: concurrency::Limits::default(),
                provisioner_wake: tokio::sync::Notify::new(),
                policy: policy_state,
                gateway: gateway::State::default(),
                workers: autoscaler::Workers::default(),
                throttle_log: throttles::ThrottleLog::default(),
                identity: identity::State::default(),
                warnings,
            }),
        };
        engine.load_functions().await?;
        engine.load_identity().await?;
        engine.ensure_default_project().await?;
        engine.load_gateway().await?;
        engine.load_concurrency().await?;
        engine.sweep_policies().await?;
        // The sandbox answers `/hola/v1/…` on every instance's endpoint through this hook; it
        // holds the engine weakly (the engine owns the sandbox).
        engine
            .inner
            .sandbox
            .set_platform(Arc::new(policy::InternalApi {
                engine: Arc::downgrade(&engine.inner),
            }));
        engine.start_reaper();
        engine.start_async_workers();
        engine.start_autoscaler();
        engine.start_prepared_sandboxes();
        engine.start_queue_pollers();
        engine.start_scheduler();
        engine.start_webhook_janitor();
        engine.start_provisioner();
        if engine.inner.cluster.is_some() {
            engine.start_follower();
            engine.start_heartbeat();
            engine.start_spill_responder().await?;
        }
        Ok(engine)
    }

    fn start_prepared_sandboxes(&self) {
        let count = self.inner.config.prepared_sandboxes;
        let engine = self.clone();
        let task = tokio::spawn(async move { engine.inner.sandbox.keep_prepared(count).await });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    fn start_reaper(&self) {
        let ttl = self.inner.config.idle_ttl;
        let period = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let stopped = inner.pool.reap(ttl);
                if stopped > 0 {
                    tracing::info!(stopped, reason = "idle_ttl", "instances stopped");
                }
                let c = inner.pool.counts();
                inner.metrics.set_instances(c.idle, c.busy, c.initialising);
            }
        });
        if let Ok(mut reaper) = self.inner.reaper.lock() {
            *reaper = Some(task);
        }
    }

    /// The data dir.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.config.data_dir
    }

    /// The isolation level in force.
    pub fn isolation(&self) -> IsolationLevel {
        self.inner.sandbox.level()
    }

    /// Things an operator should know (weak isolation, missing runtimes).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// Where the admin token can be read: this node's `admin.token`, or, on the other nodes
    /// of a cluster, the file of the node that created it (`None` when unknown).
    pub fn admin_token_origin(&self) -> Option<&auth::TokenOrigin> {
        self.inner.admin_origin.as_ref()
    }

    /// This node's id in a cluster (`None` with the embedded store).
    pub fn node_id(&self) -> Option<&str> {
        self.inner.cluster.as_ref().map(|c| c.node_id.as_str())
    }

    /// Whether anyone may register a user.
    pub fn open_registration(&self) -> bool {
        self.inner.config.open_registration
    }

    /// Whether `token` is the admin token.
    pub fn authenticate(&self, token: &str) -> bool {
        auth::verify(&self.inner.admin_hash, token)
    }

    /// Stops taking invocations and stops every idle instance.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        if let Ok(mut reaper) = self.inner.reaper.lock() {
            if let Some(task) = reaper.take() {
                task.abort();
            }
        }
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        self.inner.pool.clear();
        self.inner.sandbox.shutdown();
    }

    /// Prometheus text exposition of every metric.
    pub fn metrics_text(&self) -> String {
        let c = self.inner.pool.counts();
        self.inner
            .metrics
            .set_instances(c.idle, c.busy, c.initialising);
        for (name, w) in self.inner.workers.views() {
            self.inner
                .metrics
                .async_workers
                .get_or_create(&metrics::Metrics::function(&name))
                .set(w.workers as i64);
        }
        self.inner.metrics.encode()
    }

    /// Runtimes this host offers, by family name.
    pub fn runtimes(&self) -> BTreeMap<String, RuntimeResolution> {
        let mut out = BTreeMap::new();
        for (family, interp) in self.inner.catalog.interpreters() {
            let id = match family {
                RuntimeFamily::Python => {
                    format!("python{}.{}", interp.version.0, interp.version.1)
                }
                RuntimeFamily::Node => format!("nodejs{}.x", interp.version.0),
                RuntimeFamily::Provided => continue,
            };
            out.entry(id).or_insert(RuntimeResolution {
                interpreter: Some(interp.path.display().to_string()),
                interpreter_version: Some(interp.version_string.clone()),
                note: None,
            });
        }
        out.insert(
            "provided".to_owned(),
            RuntimeResolution {
                interpreter: None,
                interpreter_version: None,
                note: Some("the package's executable bootstrap".to_owned()),
            },
        );
        out
    }

    /// The health document.
    pub fn health(&self) -> Health {
        let crate::pool::PoolCounts { idle, busy, .. } = self.inner.pool.counts();
        let functions = self.inner.functions.read().map(|f| f.len()).unwrap_or(0) as u64;
        let shutting_down = self.inner.shutting_down.load(Ordering::SeqCst);
        let mut warnings = self.inner.warnings.clone();
        if shutting_down {
            warnings.push("shutting down".to_owned());
        }
        Health {
            status: if shutting_down {
                "stopping".to_owned()
            } else if warnings.is_empty() {
                "ok".to_owned()
            } else {
                "degraded".to_owned()
            },
            version: env!("CARGO_PKG_VERSION").to_owned(),
            isolation: self.isolation().to_string(),
            store: self.inner.stores.backend.to_owned(),
            uptime_s: self.inner.started.elapsed().as_secs(),
            functions,
            instances: BTreeMap::from([("idle".to_owned(), idle), ("busy".to_owned(), busy)]),
            runtimes: self.runtimes(),
            warnings,
            cluster: self.cluster_status_cached(),
        }
    }
}
