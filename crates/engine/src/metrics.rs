//! Prometheus metrics of the engine, exposed as text at `/api/v1/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of per-function series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    /// Function name.
    pub function: String,
}

/// Labels of invocation outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Function name.
    pub function: String,
    /// Execution status (`complete`, `failed`, `timeout`, …).
    pub status: String,
}

/// Labels of errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Function name.
    pub function: String,
    /// Stable error code.
    pub code: String,
}

/// Labels of webhook signature failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// Webhook name.
    pub webhook: String,
    /// `missing`, `malformed`, `mismatch` or `expired`.
    pub reason: String,
}

/// Labels of the autoscaler's decisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScalingLabels {
    /// Function name.
    pub function: String,
    /// `up` or `down`.
    pub direction: String,
}

/// Labels of instance gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `idle`, `busy` or `initialising`.
    pub state: String,
}

fn duration_buckets() -> impl Iterator<Item = f64> {
    [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    ]
    .into_iter()
}

/// Every metric the engine keeps.
pub struct Metrics {
    registry: Registry,
    /// Invocations by outcome.
    pub invocations: Family<OutcomeLabels, Counter>,
    /// Errors by code.
    pub errors: Family<ErrorLabels, Counter>,
    /// Handler duration.
    pub duration: Family<FunctionLabels, Histogram>,
    /// Init duration of cold starts.
    pub init_duration: Family<FunctionLabels, Histogram>,
    /// Cold starts.
    pub cold_starts: Family<FunctionLabels, Counter>,
    /// Invocations refused by a concurrency limit.
    pub throttles: Family<FunctionLabels, Counter>,
    /// Instances by state.
    pub instances: Family<StateLabels, Gauge>,
    /// Invocations running now.
    pub concurrent: Gauge,
    /// Messages of each queue by state (`ready`, `delayed`, `in_flight`, `dead`).
    pub queue_messages: Family<crate::queues::metrics::QueueStateLabels, Gauge>,
    /// Age of each queue's oldest deliverable message, seconds.
    pub queue_oldest_age: Family<crate::queues::metrics::QueueLabels, Gauge>,
    /// Webhook deliveries refused for a bad, missing or expired signature.
    pub webhook_signature_failures: Family<WebhookLabels, Counter>,
    /// Gateway requests and refused authentications.
    pub gateway: crate::gateway::metrics::GatewayMetrics,
    /// Async workers per function (the autoscaler's current target).
    pub async_workers: Family<FunctionLabels, Gauge>,
    /// The autoscaler's decisions.
    pub scaling_decisions: Family<ScalingLabels, Counter>,
    /// Failed async deliveries scheduled for another attempt.
    pub async_retries: Family<FunctionLabels, Counter>,
    /// Async events moved to their function's dead-letter queue.
    pub dead_letters: Family<FunctionLabels, Counter>,
    /// Synchronous invocations this node had no slot for and another node ran (cluster).
    pub spilled: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("holactl");
        let invocations = Family::<OutcomeLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<FunctionLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(duration_buckets())) as fn() -> Histogram,
        );
        let init_duration = Family::<FunctionLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(duration_buckets())) as fn() -> Histogram,
        );
        let cold_starts = Family::<FunctionLabels, Counter>::default();
        let throttles = Family::<FunctionLabels, Counter>::default();
        let instances = Family::<StateLabels, Gauge>::default();
        let concurrent = Gauge::default();
        let queue_messages = Family::default();
        let queue_oldest_age = Family::default();
        crate::queues::metrics::register(&mut registry, &queue_messages, &queue_oldest_age);
        let webhook_signature_failures = Family::<WebhookLabels, Counter>::default();
        let gateway = crate::gateway::metrics::GatewayMetrics::register(&mut registry);
        let async_workers = Family::<FunctionLabels, Gauge>::default();
        let scaling_decisions = Family::<ScalingLabels, Counter>::default();
        let async_retries = Family::<FunctionLabels, Counter>::default();
        let dead_letters = Family::<FunctionLabels, Counter>::default();
        let spilled = Counter::default();
        registry.register(
            "spilled_invocations",
            "Synchronous invocations this node had no concurrency slot for, run by another node of the cluster",
            spilled.clone(),
        );
        registry.register(
            "async_retries",
            "Failed async deliveries scheduled for another attempt",
            async_retries.clone(),
        );
        registry.register(
            "dead_letters",
            "Async events dead-lettered (depth: holactl_queue_messages{queue=\"async/<function>\",state=\"dead\"})",
            dead_letters.clone(),
        );
        registry.register(
            "async_workers",
            "Async events of a function that may run at once on this node (autoscaled)",
            async_workers.clone(),
        );
        registry.register(
            "autoscaler_decisions",
            "Scaling decisions of the async autoscaler by function and direction",
            scaling_decisions.clone(),
        );
        registry.register(
            "invocations",
            "Invocations by function and final status",
            invocations.clone(),
        );
        registry.register(
            "errors",
            "Failed invocations by function and error code",
            errors.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Handler duration (hand-off to answer)",
            duration.clone(),
        );
        registry.register(
            "init_duration_seconds",
            "Instance start to runtime ready, for cold starts",
            init_duration.clone(),
        );
        registry.register(
            "cold_starts",
            "Invocations that started an instance",
            cold_starts.clone(),
        );
        registry.register(
            "throttles",
            "Invocations refused by a concurrency limit",
            throttles.clone(),
        );
        registry.register(
            "instances",
            "Function instances by state",
            instances.clone(),
        );
        registry.register(
            "concurrent_executions",
            "Invocations running now",
            concurrent.clone(),
        );
        registry.register(
            "webhook_signature_failures",
            "Webhook deliveries refused for a bad, missing or expired signature",
            webhook_signature_failures.clone(),
        );
        Metrics {
            registry,
            invocations,
            errors,
            duration,
            init_duration,
            cold_starts,
            throttles,
            instances,
            concurrent,
            queue_messages,
            queue_oldest_age,
            webhook_signature_failures,
            gateway,
            async_workers,
            scaling_decisions,
            async_retries,
            dead_letters,
            spilled,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Per-function labels.
    pub fn function(name: &str) -> FunctionLabels {
        FunctionLabels {
            function: name.to_owned(),
        }
    }

    /// Records a scaling decision of the async autoscaler.
    pub fn scaling(&self, function: &str, direction: &str, workers: u32) {
        self.scaling_decisions
            .get_or_create(&ScalingLabels {
                function: function.to_owned(),
                direction: direction.to_owned(),
            })
            .inc();
        self.async_workers
            .get_or_create(&Metrics::function(function))
            .set(i64::from(workers));
    }

    /// Sets the instance gauges.
    pub fn set_instances(&self, idle: u64, busy: u64, initialising: u64) {
        self.instances
            .get_or_create(&StateLabels {
                state: "idle".into(),
            })
            .set(idle as i64);
        self.instances
            .get_or_create(&StateLabels {
                state: "busy".into(),
            })
            .set(busy as i64);
        self.instances
            .get_or_create(&StateLabels {
                state: "initialising".into(),
            })
            .set(initialising as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_prometheus_text() {
        let m = Metrics::new();
        m.invocations
            .get_or_create(&OutcomeLabels {
                function: "hello".into(),
                status: "complete".into(),
            })
            .inc();
        m.duration
            .get_or_create(&Metrics::function("hello"))
            .observe(0.002);
        let text = m.encode();
        assert!(
            text.contains(r#"holactl_invocations_total{function="hello",status="complete"} 1"#),
            "{text}"
        );
        assert!(text.contains("holactl_invocation_duration_seconds_bucket"));
        assert!(text.ends_with("# EOF\n"));
    }
}
