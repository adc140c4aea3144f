//! Alerts the platform evaluates itself: a function's error rate, sustained cold starts,
//! account concurrency saturation and dead-letter growth. The same conditions ship as
//! Prometheus rules in `docs/prometheus-rules.yml`.
//!
//! [`evaluate`] is pure (observations in, alerts out); [`Engine::alerts`] gathers the
//! observations: per-function metrics over the window, recent dead letters, the gauge of
//! concurrent executions.

use holactl_types::observability::{Alert, FunctionMetrics, Severity};

use crate::autoscaler::async_queue;
use crate::{Engine, EngineError};

/// Window alerts look back over, ms.
pub const DEFAULT_ALERT_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Error-rate alert: fires above this fraction of failed invocations…
pub const DEFAULT_ERROR_RATE: f64 = 0.01;
/// …and the cold-start alert above this fraction of cold starts…
pub const DEFAULT_COLD_START_RATE: f64 = 0.5;
/// …when the window holds at least this many invocations.
pub const DEFAULT_MIN_INVOCATIONS: u64 = 20;
/// Concurrency-saturation alert: concurrent executions at or above this fraction of the
/// account limit.
pub const DEFAULT_CONCURRENCY_SATURATION: f64 = 0.9;

/// Alert thresholds (part of [`crate::EngineConfig`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertThresholds {
    /// Window evaluated, ms.
    pub window_ms: i64,
    /// Error rate above which `error_rate` fires.
    pub error_rate: f64,
    /// Cold-start rate above which `cold_starts` fires.
    pub cold_start_rate: f64,
    /// Invocations in the window below which rate alerts stay quiet.
    pub min_invocations: u64,
    /// Fraction of the account limit at which `concurrency_saturation` fires.
    pub concurrency_saturation: f64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            window_ms: DEFAULT_ALERT_WINDOW_MS,
            error_rate: DEFAULT_ERROR_RATE,
            cold_start_rate: DEFAULT_COLD_START_RATE,
            min_invocations: DEFAULT_MIN_INVOCATIONS,
            concurrency_saturation: DEFAULT_CONCURRENCY_SATURATION,
        }
    }
}

/// What one function looked like over the window.
#[derive(Clone, Debug)]
pub struct FunctionObservation {
    /// Its metrics over the window.
    pub metrics: FunctionMetrics,
    /// Dead letters that appeared in the window.
    pub new_dead_letters: u64,
}

/// What the platform looked like when evaluated.
#[derive(Clone, Debug)]
pub struct Observations {
    /// Start of the window.
    pub since: i64,
    /// Invocations running now.
    pub concurrent: u64,
    /// Account limit.
    pub max_concurrency: u64,
    /// Per function.
    pub functions: Vec<FunctionObservation>,
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The alerts firing for `obs` under `t`.
pub fn evaluate(t: &AlertThresholds, obs: &Observations) -> Vec<Alert> {
    let mut out = Vec::new();
    let minutes = t.window_ms as f64 / 60_000.0;
    if obs.max_concurrency > 0 {
        let used = obs.concurrent as f64 / obs.max_concurrency as f64;
        if used >= t.concurrency_saturation {
            out.push(Alert {
                name: "concurrency_saturation".into(),
                severity: Severity::Critical,
                function: None,
                value: used,
                threshold: t.concurrency_saturation,
                since: obs.since,
                message: format!(
                    "{} of {} concurrent executions in use ({}); new invocations will be throttled",
                    obs.concurrent,
                    obs.max_concurrency,
                    pct(used)
                ),
            });
        }
    }
    for f in &obs.functions {
        let m = &f.metrics;
        let enough = m.invocations >= t.min_invocations;
        if enough && m.error_rate > t.error_rate {
            out.push(Alert {
                name: "error_rate".into(),
                severity: Severity::Critical,
                function: Some(m.function.clone()),
                value: m.error_rate,
                threshold: t.error_rate,
                since: obs.since,
                message: format!(
                    "{}: {} of {} invocations failed in the last {minutes} min ({} > {})",
                    m.function,
                    m.errors,
                    m.invocations,
                    pct(m.error_rate),
                    pct(t.error_rate)
                ),
            });
        }
        if enough && m.cold_start_rate > t.cold_start_rate {
            out.push(Alert {
                name: "cold_starts".into(),
                severity: Severity::Warning,
                function: Some(m.function.clone()),
                value: m.cold_start_rate,
                threshold: t.cold_start_rate,
                since: obs.since,
                message: format!(
                    "{}: {} of {} invocations were cold starts in the last {minutes} min ({} > {})",
                    m.function,
                    m.cold_starts,
                    m.invocations,
                    pct(m.cold_start_rate),
                    pct(t.cold_start_rate)
                ),
            });
        }
        if f.new_dead_letters > 0 {
            out.push(Alert {
                name: "dlq_growth".into(),
                severity: Severity::Warning,
                function: Some(m.function.clone()),
                value: f.new_dead_letters as f64,
                threshold: 0.0,
                since: obs.since,
                message: format!(
                    "{}: {} async events dead-lettered in the last {minutes} min (holactl lambda dlq list {})",
                    m.function, f.new_dead_letters, m.function
                ),
            });
        }
    }
    out
}

impl Engine {
    /// The alert thresholds in force.
    pub fn alert_thresholds(&self) -> &AlertThresholds {
        &self.inner.config.alerts
    }

    /// Alerts firing now.
    pub async fn alerts(&self) -> Result<Vec<Alert>, EngineError> {
        let t = self.alert_thresholds().clone();
        let now = crate::now_ms();
        let since = now - t.window_ms;
        let mut names: Vec<String> = self
            .inner
            .functions
            .read()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        // Dead letters are only read for functions that have any.
        let depths = self
            .inner
            .stores
            .queues
            .depths(crate::autoscaler::ASYNC_QUEUE_PREFIX, now)
            .await?;
        let mut functions = Vec::with_capacity(names.len());
        for name in names {
            let records = self.executions_since(&name, since).await?;
            let metrics = crate::stats::compute(
                &name,
                since,
                now,
                &records,
                self.throttle_count(&name, since),
            );
            let queue = async_queue(&name);
            let new_dead_letters = if depths.get(&queue).is_some_and(|d| d.dead > 0) {
                self.inner
                    .stores
                    .queues
                    .dead(&queue, 100_000)
                    .await?
                    .iter()
                    .filter(|d| d.died_at >= since)
                    .count() as u64
            } else {
                0
            };
            functions.push(FunctionObservation {
                metrics,
                new_dead_letters,
            });
        }
        let obs = Observations {
            since,
            concurrent: self.inner.metrics.concurrent.get().max(0) as u64,
            max_concurrency: u64::from(self.inner.config.max_concurrency),
            functions,
        };
        Ok(evaluate(&t, &obs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::tests::record;
    use holactl_types::ExecutionStatus;

    fn observe(failed: u64, ok: u64, cold: u64) -> FunctionObservation {
        let mut records = Vec::new();
        let mut at = 0;
        for (n, status) in [
            (failed, ExecutionStatus::Failed),
            (ok, ExecutionStatus::Complete),
        ] {
            for _ in 0..n {
                at += 1;
                records.push(record(at, status, (at as u64) <= cold, 1.0));
            }
        }
        FunctionObservation {
            metrics: crate::stats::compute("hello", 0, 1_000_000, &records, 0),
            new_dead_letters: 0,
        }
    }

    fn obs(functions: Vec<FunctionObservation>, concurrent: u64) -> Observations {
        Observations {
            since: 0,
            concurrent,
            max_concurrency: 10,
            functions,
        }
    }

    fn names(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.name.as_str()).collect()
    }

    #[test]
    fn error_rate_needs_enough_invocations() {
        let t = AlertThresholds::default();
        // 1 of 19: too few invocations.
        assert!(evaluate(&t, &obs(vec![observe(1, 18, 0)], 0)).is_empty());
        // 1 of 100 = 1 %: not above the threshold.
        assert!(evaluate(&t, &obs(vec![observe(1, 99, 0)], 0)).is_empty());
        // 1 of 20 = 5 %.
        let alerts = evaluate(&t, &obs(vec![observe(1, 19, 0)], 0));
        assert_eq!(names(&alerts), ["error_rate"]);
        assert_eq!(alerts[0].function.as_deref(), Some("hello"));
        assert!((alerts[0].value - 0.05).abs() < 1e-9);
        assert_eq!(alerts[0].threshold, DEFAULT_ERROR_RATE);
    }

    #[test]
    fn cold_starts_and_dlq() {
        let t = AlertThresholds::default();
        assert!(evaluate(&t, &obs(vec![observe(0, 20, 10)], 0)).is_empty());
        let alerts = evaluate(&t, &obs(vec![observe(0, 20, 11)], 0));
        assert_eq!(names(&alerts), ["cold_starts"]);
        let mut f = observe(0, 1, 0);
        f.new_dead_letters = 2;
        let alerts = evaluate(&t, &obs(vec![f], 0));
        assert_eq!(names(&alerts), ["dlq_growth"]);
        assert_eq!(alerts[0].value, 2.0);
    }

    #[test]
    fn concurrency_saturation() {
        let t = AlertThresholds::default();
        assert!(evaluate(&t, &obs(vec![], 8)).is_empty());
        let alerts = evaluate(&t, &obs(vec![], 9));
        assert_eq!(names(&alerts), ["concurrency_saturation"]);
        assert_eq!(alerts[0].severity, Severity::Critical);
        let strict = AlertThresholds {
            concurrency_saturation: 0.5,
            ..AlertThresholds::default()
        };
        assert_eq!(evaluate(&strict, &obs(vec![], 5)).len(), 1);
    }
}
