//! Per-function metrics over a time window, computed from execution records: invocations,
//! error rate, duration percentiles split cold vs warm, cold-start rate, errors by code.
//!
//! The computation ([`compute`]) is pure so it is tested on synthetic records; the engine
//! method pages the execution store newest first until the window's start.

use std::collections::BTreeMap;

use holactl_store::ExecutionQuery;
use holactl_types::observability::{DurationPercentiles, DurationSplit, FunctionMetrics};
use holactl_types::{ExecutionRecord, ExecutionStatus};

use crate::{Engine, EngineError};

/// Window of `holactl lambda metrics` without `--since`.
pub const DEFAULT_METRICS_WINDOW_MS: i64 = 3_600_000;
/// Executions read per store page.
const PAGE: usize = 500;
/// Most executions read for one window, so a huge window cannot stall the server.
pub const MAX_WINDOW_EXECUTIONS: usize = 200_000;

/// The `p`-th percentile (0–100) of ascending `sorted` samples, nearest-rank method.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// `part / whole`, 0 when `whole` is 0.
pub fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn percentiles(mut samples: Vec<f64>) -> DurationPercentiles {
    samples.sort_by(f64::total_cmp);
    DurationPercentiles {
        count: samples.len() as u64,
        p50_ms: percentile(&samples, 50.0),
        p95_ms: percentile(&samples, 95.0),
        p99_ms: percentile(&samples, 99.0),
    }
}

/// Whether an execution counts as an error.
fn is_error(status: ExecutionStatus) -> bool {
    matches!(status, ExecutionStatus::Failed | ExecutionStatus::Timeout)
}

/// Metrics of `function` from its `records` created in `[since, until]`; records outside the
/// window or of other functions are ignored.
pub fn compute(
    function: &str,
    since: i64,
    until: i64,
    records: &[ExecutionRecord],
    throttles: u64,
) -> FunctionMetrics {
    let mut m = FunctionMetrics {
        function: function.to_owned(),
        since,
        until,
        throttles,
        ..FunctionMetrics::default()
    };
    let (mut all, mut cold, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.function == function && r.created_at >= since && r.created_at <= until)
    {
        if !r.status.is_final() {
            m.in_progress += 1;
            continue;
        }
        m.invocations += 1;
        if r.cold_start {
            m.cold_starts += 1;
        }
        if is_error(r.status) {
            m.errors += 1;
            let code = r
                .error
                .as_ref()
                .map(|e| e.code.as_str().to_owned())
                .unwrap_or_else(|| r.status.as_str().to_uppercase());
            *by_code.entry(code).or_default() += 1;
        }
        if let Some(d) = r.duration_ms {
            all.push(d);
            if r.cold_start {
                cold.push(d);
            } else {
                warm.push(d);
            }
        }
    }
    m.error_rate = rate(m.errors, m.invocations);
    m.cold_start_rate = rate(m.cold_starts, m.invocations);
    m.errors_by_code = by_code;
    m.duration = DurationSplit {
        all: percentiles(all),
        cold: percentiles(cold),
        warm: percentiles(warm),
    };
    m
}

impl Engine {
    /// Executions of `name` created at or after `since`, newest first.
    pub(crate) async fn executions_since(
        &self,
        name: &str,
        since: i64,
    ) -> Result<Vec<ExecutionRecord>, EngineError> {
        let mut out: Vec<ExecutionRecord> = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .inner
                .stores
                .executions
                .list(ExecutionQuery {
                    function: Some(name.to_owned()),
                    before: before.take(),
                    limit: PAGE,
                })
                .await?;
            let full = page.len() == PAGE;
            let last = page.last().map(|r| (r.id.clone(), r.created_at));
            out.extend(page.into_iter().filter(|r| r.created_at >= since));
            match last {
                Some((id, created)) if full && created >= since => before = Some(id),
                _ => break,
            }
            if out.len() >= MAX_WINDOW_EXECUTIONS {
                break;
            }
        }
        Ok(out)
    }

    /// Invocations of `name` refused by a concurrency limit since `since` (epoch ms; kept
    /// for a day, in memory).
    pub fn throttle_count(&self, name: &str, since: i64) -> u64 {
        self.inner.throttle_log.since(name, since)
    }

    /// Metrics of function `name` over executions created since `since` (a duration ago like
    /// `1h`, an RFC 3339 time or epoch ms; default the last hour).
    pub async fn function_metrics(
        &self,
        name: &str,
        since: Option<&str>,
    ) -> Result<FunctionMetrics, EngineError> {
        self.function_entry(name)?;
        let now = crate::now_ms();
        let since = match since.filter(|s| !s.is_empty()) {
            Some(s) => crate::usage::parse_since(s, now)?,
            None => now - DEFAULT_METRICS_WINDOW_MS,
        };
        let records = self.executions_since(name, since).await?;
        Ok(compute(
            name,
            since,
            now,
            &records,
            self.throttle_count(name, since),
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use holactl_types::execution::{ExecutionError, Trigger};
    use holactl_types::ErrorCode;

    pub(crate) fn record(
        at: i64,
        status: ExecutionStatus,
        cold: bool,
        duration: f64,
    ) -> ExecutionRecord {
        ExecutionRecord {
            id: format!("e{at}"),
            function: "hello".into(),
            version: "$LATEST".into(),
            status,
            trigger: Trigger::Invoke,
            created_at: at,
            started_at: Some(at),
            ended_at: Some(at + duration as i64),
            duration_ms: Some(duration),
            billed_duration_ms: None,
            init_duration_ms: None,
            cold_start: cold,
            memory_mb: 128,
            attempts: 1,
            result: None,
            result_truncated: false,
            error: (status == ExecutionStatus::Failed).then(|| ExecutionError {
                code: ErrorCode::FunctionError,
                error_type: "Exception".into(),
                message: "boom".into(),
            }),
            log_bytes: 0,
            log_truncated: false,
        }
    }

    #[test]
    fn percentiles_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 95.0), Some(95.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.0));
    }

    #[test]
    fn rates() {
        assert_eq!(rate(0, 0), 0.0);
        assert_eq!(rate(1, 4), 0.25);
    }

    #[test]
    fn computes_counts_rates_and_split() {
        let mut records = Vec::new();
        // 2 cold (100, 200 ms), 8 warm (1..=8 ms), 2 of the warm ones failed, 1 timeout.
        records.push(record(1000, ExecutionStatus::Complete, true, 100.0));
        records.push(record(1001, ExecutionStatus::Complete, true, 200.0));
        for i in 1..=8 {
            let status = match i {
                1 | 2 => ExecutionStatus::Failed,
                3 => ExecutionStatus::Timeout,
                _ => ExecutionStatus::Complete,
            };
            records.push(record(1100 + i, status, false, i as f64));
        }
        records.push(record(1200, ExecutionStatus::Running, false, 0.0));
        // Outside the window, and another function's.
        records.push(record(10, ExecutionStatus::Failed, true, 1.0));
        let mut other = record(1300, ExecutionStatus::Failed, true, 1.0);
        other.function = "other".into();
        records.push(other);

        let m = compute("hello", 500, 5000, &records, 3);
        assert_eq!(m.invocations, 10);
        assert_eq!(m.in_progress, 1);
        assert_eq!(m.errors, 3);
        assert!((m.error_rate - 0.3).abs() < 1e-9);
        assert_eq!(m.cold_starts, 2);
        assert!((m.cold_start_rate - 0.2).abs() < 1e-9);
        assert_eq!(m.throttles, 3);
        assert_eq!(m.errors_by_code.get("FUNCTION_ERROR"), Some(&2));
        assert_eq!(m.errors_by_code.get("TIMEOUT"), Some(&1));
        assert_eq!(m.duration.all.count, 10);
        assert_eq!(m.duration.cold.count, 2);
        assert_eq!(m.duration.cold.p50_ms, Some(100.0));
        assert_eq!(m.duration.cold.p99_ms, Some(200.0));
        assert_eq!(m.duration.warm.count, 8);
        assert_eq!(m.duration.warm.p50_ms, Some(4.0));
        assert_eq!(m.duration.warm.p95_ms, Some(8.0));
        assert_eq!(m.duration.all.p99_ms, Some(200.0));
    }

    #[test]
    fn empty_window() {
        let m = compute("hello", 0, 1, &[], 0);
        assert_eq!(m.invocations, 0);
        assert_eq!(m.error_rate, 0.0);
        assert_eq!(m.duration.all.p50_ms, None);
    }
}
