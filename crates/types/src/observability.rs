//! Observability bodies: per-function metrics over a window, alerts, and the platform status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::EpochMillis;

/// Percentiles of handler durations, ms; `None` without samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DurationPercentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
}

/// Durations of every, cold and warm invocation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DurationSplit {
    /// Every finished invocation.
    pub all: DurationPercentiles,
    /// Invocations that started an instance.
    pub cold: DurationPercentiles,
    /// Invocations served by a warm instance.
    pub warm: DurationPercentiles,
}

/// `GET /api/v1/functions/{name}/metrics`: a function's invocations in a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionMetrics {
    /// Function name.
    pub function: String,
    /// Window start (inclusive).
    pub since: EpochMillis,
    /// Window end (when computed).
    pub until: EpochMillis,
    /// Finished invocations in the window.
    pub invocations: u64,
    /// Invocations still pending or running.
    pub in_progress: u64,
    /// Invocations that ended failed or timed out.
    pub errors: u64,
    /// `errors / invocations` (0 without invocations).
    pub error_rate: f64,
    /// Invocations that started an instance.
    pub cold_starts: u64,
    /// `cold_starts / invocations`.
    pub cold_start_rate: f64,
    /// Invocations refused by a concurrency limit since the server started.
    pub throttles: u64,
    /// Handler durations.
    pub duration: DurationSplit,
    /// Failed invocations by error code.
    pub errors_by_code: BTreeMap<String, u64>,
}

/// How bad an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Look soon.
    Warning,
    /// Look now.
    Critical,
}

/// One firing alert, as `GET /api/v1/alerts` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `error_rate`, `cold_starts`, `concurrency_saturation` or `dlq_growth`.
    pub name: String,
    /// How bad.
    pub severity: Severity,
    /// The function concerned, for per-function alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The observed value.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// Start of the window evaluated.
    pub since: EpochMillis,
    /// What is wrong, for people.
    pub message: String,
}

/// `GET /api/v1/alerts`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertList {
    /// Firing alerts.
    pub alerts: Vec<Alert>,
}

/// Async workers of this node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AsyncWorkers {
    /// Workers of every function (the autoscaler's current targets, summed).
    pub workers: u64,
    /// Workers running an event now.
    pub busy: u64,
    /// The autoscaler's settings.
    pub autoscaler: AutoscalerView,
    /// By function: workers, busy workers and backlog.
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionWorkersView>,
}

/// The async autoscaler's settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoscalerView {
    /// `MIN_WORKERS` per function.
    pub min_workers: u32,
    /// `MAX_WORKERS` per function.
    pub max_workers: u32,
    /// `SCALE_UP_THRESHOLD`: events per worker above which a function scales up.
    pub scale_up_threshold: u32,
    /// `SCALE_DOWN_THRESHOLD`: events per worker below which it scales down.
    pub scale_down_threshold: u32,
    /// `CHECK_INTERVAL`, ms.
    pub check_interval_ms: u64,
    /// `COOLDOWN_PERIOD`, ms.
    pub cooldown_ms: u64,
}

/// One function's async workers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionWorkersView {
    /// Events that may run at once (the autoscaler's target).
    pub workers: u64,
    /// Events running now.
    pub busy: u64,
    /// Ready and running events at the last check.
    pub backlog: u64,
}

/// Depth of one queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueDepthView {
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for their delay or retry backoff.
    pub delayed: u64,
    /// Leased by a consumer.
    pub in_flight: u64,
    /// Dead-lettered.
    pub dead: u64,
}

/// `GET /api/v1/workers/status`: what the platform is doing now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlatformStatus {
    /// Isolation level in force.
    pub isolation: String,
    /// Async workers.
    pub async_workers: AsyncWorkers,
    /// Instances by state (`idle`, `busy`, `initialising`).
    pub instances: BTreeMap<String, u64>,
    /// Sandboxes kept prepared ahead of demand.
    pub prepared_sandboxes: u64,
    /// Invocations running now, and the account limit.
    pub concurrent_executions: u64,
    /// Account-wide concurrency limit.
    pub max_concurrency: u64,
    /// Queue depths by queue (`async/<function>` are the asynchronous-invocation queues).
    pub queues: BTreeMap<String, QueueDepthView>,
    /// Firing alerts.
    pub alerts: Vec<Alert>,
    /// The cluster's nodes and their load (cluster mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// One node of a cluster as its heartbeat describes it (`nodes/<id>` in the store).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// The node's id (kept in its data dir, so a restarted node keeps it).
    pub id: String,
    /// Where the node's API answers (`http://HOST:PORT`).
    pub address: String,
    /// Server version.
    pub version: String,
    /// When the node started (epoch ms).
    pub started_at: EpochMillis,
    /// Its latest heartbeat (epoch ms).
    pub last_seen: EpochMillis,
    /// Whether the latest heartbeat is recent enough (within 15 s) to count the node as up.
    #[serde(default)]
    pub live: bool,
    /// Invocations running on the node at its latest heartbeat.
    pub running: u64,
    /// The node's instances by state (`idle`, `busy`) at its latest heartbeat.
    #[serde(default)]
    pub instances: BTreeMap<String, u64>,
}

/// The cluster as one node sees it (cluster mode only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The id of the node that answered.
    pub node: String,
    /// The NATS namespace the nodes share.
    pub namespace: String,
    /// Nodes whose heartbeat is recent.
    pub live: u64,
    /// Every node that sent a heartbeat lately, live or not, by id.
    pub nodes: Vec<ClusterNode>,
}
