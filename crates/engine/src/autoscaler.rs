//! The autoscaler of asynchronous work: how many events of each function may run at once on
//! this node ("workers"), scaled with the backlog per worker, and instances started ahead of
//! the work when it scales up.
//!
//! Every `check_interval` (or sooner, when a burst of events arrives) it reads the depth of
//! every function's async queue and, per function:
//! - **scales up** when the backlog (ready + running events) per worker exceeds
//!   `scale_up_threshold`: to `ceil(backlog / scale_up_threshold)` workers, at least one more,
//!   at most `max_workers` (and at most the function's reserved concurrency). Scale-ups act at
//!   once: a burst is never held back by the cooldown. Each new worker gets a warm instance
//!   started ahead of its first event (pre-warming).
//! - **scales down** when the backlog per worker falls below `scale_down_threshold`, no sooner
//!   than `cooldown` after the previous decision: by at most half, never below what the backlog
//!   needs nor below `min_workers`.
//!
//! Each decision is logged as an event with its reason and counted in the metrics.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use holactl_types::observability::FunctionWorkersView;

use crate::Engine;

/// Prefix of the per-function async queues.
pub(crate) const ASYNC_QUEUE_PREFIX: &str = "async/";

/// The async queue of `function`.
pub(crate) fn async_queue(function: &str) -> String {
    format!("{ASYNC_QUEUE_PREFIX}{function}")
}

/// The autoscaler's knobs (`MIN_WORKERS`, `MAX_WORKERS`, `SCALE_UP_THRESHOLD`,
/// `SCALE_DOWN_THRESHOLD`, `CHECK_INTERVAL`, `COOLDOWN_PERIOD`).
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalerConfig {
    /// Workers per function never go below this (0 lets an idle function hold none; its
    /// events then wait for the next check).
    pub min_workers: u32,
    /// Workers per function never go above this.
    pub max_workers: u32,
    /// Events per worker above which a function scales up.
    pub scale_up_threshold: u32,
    /// Events per worker below which a function scales down.
    pub scale_down_threshold: u32,
    /// How often backlogs are checked.
    pub check_interval: Duration,
    /// Least time between a decision and the next scale-down.
    pub cooldown: Duration,
}

/// Default `MIN_WORKERS` (the seed's).
pub const DEFAULT_MIN_WORKERS: u32 = 2;
/// Default `MAX_WORKERS`: enough for a burst to use both cores' worth of short invocations.
pub const DEFAULT_MAX_WORKERS: u32 = 64;
/// Default `SCALE_UP_THRESHOLD` (the seed's).
pub const DEFAULT_SCALE_UP_THRESHOLD: u32 = 3;
/// Default `SCALE_DOWN_THRESHOLD` (the seed's).
pub const DEFAULT_SCALE_DOWN_THRESHOLD: u32 = 2;
/// Default `CHECK_INTERVAL`.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Default `COOLDOWN_PERIOD` (the seed's).
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);

/// Shortest pause between two checks woken early by arrivals.
const MIN_CHECK_SPACING: Duration = Duration::from_millis(50);

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            min_workers: DEFAULT_MIN_WORKERS,
            max_workers: DEFAULT_MAX_WORKERS,
            scale_up_threshold: DEFAULT_SCALE_UP_THRESHOLD,
            scale_down_threshold: DEFAULT_SCALE_DOWN_THRESHOLD,
            check_interval: DEFAULT_CHECK_INTERVAL,
            cooldown: DEFAULT_COOLDOWN,
        }
    }
}

/// Why an [`AutoscalerConfig`] is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AutoscalerConfigError {
    /// `max_workers` is 0 or below `min_workers`.
    #[error("MAX_WORKERS ({max}) must be at least 1 and at least MIN_WORKERS ({min})")]
    Workers {
        /// `min_workers`.
        min: u32,
        /// `max_workers`.
        max: u32,
    },
    /// A threshold is 0, or scale-down is not below scale-up.
    #[error(
        "SCALE_UP_THRESHOLD ({up}) must be at least 1 and above SCALE_DOWN_THRESHOLD ({down})"
    )]
    Thresholds {
        /// `scale_up_threshold`.
        up: u32,
        /// `scale_down_threshold`.
        down: u32,
    },
    /// `check_interval` is zero.
    #[error("CHECK_INTERVAL must be longer than zero")]
    Interval,
}

impl AutoscalerConfig {
    /// Checks the knobs agree with each other.
    pub fn validate(&self) -> Result<(), AutoscalerConfigError> {
        if self.max_workers == 0 || self.max_workers < self.min_workers {
            return Err(AutoscalerConfigError::Workers {
                min: self.min_workers,
                max: self.max_workers,
            });
        }
        if self.scale_up_threshold == 0 || self.scale_down_threshold >= self.scale_up_threshold {
            return Err(AutoscalerConfigError::Thresholds {
                up: self.scale_up_threshold,
                down: self.scale_down_threshold,
            });
        }
        if self.check_interval.is_zero() {
            return Err(AutoscalerConfigError::Interval);
        }
        Ok(())
    }
}

/// A scaling decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Workers after the decision.
    pub to: u32,
    /// Why, in words with the numbers.
    pub reason: String,
}

/// What the autoscaler decides for a function with `current` workers (already within its
/// bounds), a backlog of `backlog` events (ready + running), at most `cap` workers (the lower of
/// `max_workers` and its reserved concurrency), `since_change` after its previous decision.
pub fn decide(
    cfg: &AutoscalerConfig,
    current: u32,
    backlog: u64,
    cap: u32,
    since_change: Option<Duration>,
) -> Option<Decision> {
    let floor = cfg.min_workers.min(cap);
    if current > cap {
        return Some(Decision {
            to: cap,
            reason: format!("limit lowered to {cap} workers"),
        });
    }
    if current < floor {
        return Some(Decision {
            to: floor,
            reason: format!("below the minimum of {floor} workers"),
        });
    }
    let up = u64::from(cfg.scale_up_threshold.max(1));
    let down = u64::from(cfg.scale_down_threshold);
    // Workers the backlog needs at the scale-up threshold.
    let needed = u32::try_from(backlog.div_ceil(up)).unwrap_or(u32::MAX);
    let per_worker = backlog as f64 / f64::from(current.max(1));
    if current < cap && (current == 0 && backlog > 0 || backlog > up * u64::from(current)) {
        let to = needed.max(current + 1).min(cap);
        return Some(Decision {
            to,
            reason: format!(
                "{backlog} events for {current} workers ({per_worker:.1} per worker) > {up}"
            ),
        });
    }
    let cooled = since_change.is_none_or(|d| d >= cfg.cooldown);
    if current > floor && cooled && backlog < down * u64::from(current) {
        let to = (current / 2).max(needed).max(floor);
        if to < current {
            return Some(Decision {
                to,
                reason: format!(
                    "{backlog} events for {current} workers ({per_worker:.1} per worker) < {down}"
                ),
            });
        }
    }
    None
}

/// One function's async workers.
#[derive(Debug)]
pub(crate) struct FunctionWorkers {
    /// Events of this function that may run at once.
    pub target: u32,
    /// Events running now.
    pub running: u32,
    /// Bumped whenever work may have become ready (an enqueue, a retry coming due).
    pub signal: u64,
    /// The `signal` seen when a lease last found no more ready work.
    pub drained: u64,
    /// Events accepted since the last check.
    pub arrivals: u64,
    /// Backlog at the last check.
    pub backlog: u64,
    /// When the last decision was made.
    pub changed: Option<Instant>,
}

impl FunctionWorkers {
    fn new(target: u32) -> Self {
        FunctionWorkers {
            target,
            running: 0,
            // Unequal: look at the queue once.
            signal: 1,
            drained: 0,
            arrivals: 0,
            backlog: 0,
            changed: None,
        }
    }

    /// Whether its queue may hold ready work and a worker is free for it.
    pub fn wants_lease(&self) -> bool {
        self.signal != self.drained && self.running < self.target
    }
}

/// The workers of every function with async work on this node.
#[derive(Debug, Default)]
pub(crate) struct Workers {
    pub functions: Mutex<HashMap<String, FunctionWorkers>>,
    /// Wakes the autoscaler early (a burst arrived).
    pub wake: tokio::sync::Notify,
}

impl Workers {
    /// Notes that `function`'s queue may have ready work; `arrival` counts it as a new event.
    /// Returns true when arrivals since the last check call for an early one.
    pub fn signal(&self, function: &str, min_workers: u32, up: u32, arrival: bool) -> bool {
        let Ok(mut all) = self.functions.lock() else {
            return false;
        };
        let w = all
            .entry(function.to_owned())
            .or_insert_with(|| FunctionWorkers::new(min_workers));
        w.signal = w.signal.wrapping_add(1);
        if arrival {
            w.arrivals += 1;
            let threshold = u64::from(up.max(1)) * u64::from(w.target.max(1));
            // Once per check: when the count first crosses the threshold, or at the first
            // event of a function scaled to zero.
            return w.arrivals + w.backlog == threshold + 1 || (w.target == 0 && w.arrivals == 1);
        }
        false
    }

    /// Per-function view for the status.
    pub fn views(&self) -> Vec<(String, FunctionWorkersView)> {
        self.functions
            .lock()
            .map(|all| {
                all.iter()
                    .map(|(name, w)| {
                        (
                            name.clone(),
                            FunctionWorkersView {
                                workers: u64::from(w.target),
                                busy: u64::from(w.running),
                                backlog: w.backlog,
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Engine {
    pub(crate) fn start_autoscaler(&self) {
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let interval = engine.inner.config.autoscaler.check_interval;
            loop {
                if engine
                    .inner
                    .shutting_down
                    .load(std::sync::atomic::Ordering::SeqCst)
                {
                    return;
                }
                // The first check runs at start: events queued before a restart go at once.
                engine.autoscale_once().await;
                tokio::time::sleep(MIN_CHECK_SPACING).await;
                tokio::select! {
                    _ = tokio::time::sleep(interval.saturating_sub(MIN_CHECK_SPACING)) => {}
                    _ = engine.inner.workers.wake.notified() => {}
                }
            }
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    /// One check of every function's backlog.
    pub(crate) async fn autoscale_once(&self) {
        let inner = &self.inner;
        let cfg = &inner.config.autoscaler;
        let depths = match inner
            .stores
            .queues
            .depths(ASYNC_QUEUE_PREFIX, crate::now_ms())
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "autoscaler cannot read queue depths");
                return;
            }
        };
        let mut names: Vec<String> = inner
            .functions
            .read()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default();
        // Events of deleted functions are delivered too: delivery dead-letters them with the
        // reason, rather than leaving them queued forever.
        for (queue, depth) in &depths {
            if let Some(name) = queue.strip_prefix(ASYNC_QUEUE_PREFIX) {
                if depth.ready > 0 && !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
        let mut prewarm = Vec::new();
        {
            let Ok(mut all) = inner.workers.functions.lock() else {
                return;
            };
            // Functions that are gone and have nothing running are forgotten.
            all.retain(|name, w| {
                let keep = w.running > 0 || names.contains(name);
                if !keep {
                    inner.metrics.forget_queue(&async_queue(name));
                }
                keep
            });
            let position = inner.cluster.as_ref().map(|_| self.cluster_position());
            for name in &names {
                let queue = async_queue(name);
                let depth = depths.get(&queue).copied().unwrap_or_default();
                inner.metrics.set_queue_depth(&queue, &depth);
                let w = all
                    .entry(name.clone())
                    .or_insert_with(|| FunctionWorkers::new(cfg.min_workers));
                // Ready + leased; leased events are either running here or about to be. In a
                // cluster every node sees the whole shared queue: each takes its share of the
                // ready events, plus what it runs itself.
                w.backlog = match position {
                    Some((index, nodes)) => {
                        let ready = u32::try_from(depth.ready).unwrap_or(u32::MAX);
                        u64::from(crate::cluster::share_of(ready, index, nodes))
                            + u64::from(w.running)
                    }
                    None => depth.ready + depth.in_flight.max(u64::from(w.running)),
                };
                w.arrivals = 0;
                if depth.ready > 0 {
                    w.signal = w.signal.wrapping_add(1);
                }
                let cap = match inner.limits.reserved_limit(name) {
                    Some(r) => r.min(cfg.max_workers),
                    None => cfg.max_workers,
                };
                let since = w.changed.map(|t| t.elapsed());
                let Some(decision) = decide(cfg, w.target, w.backlog, cap, since) else {
                    continue;
                };
                let from = w.target;
                w.target = decision.to;
                w.changed = Some(Instant::now());
                let direction = if decision.to > from { "up" } else { "down" };
                inner.metrics.scaling(name, direction, decision.to);
                tracing::info!(
                    function = %name,
                    from,
                    to = decision.to,
                    backlog = w.backlog,
                    reason = %decision.reason,
                    "async workers scaled {direction}"
                );
                if decision.to > from {
                    prewarm.push((name.clone(), decision.to.saturating_sub(w.running)));
                }
            }
        }
        for (name, wanted) in prewarm {
            self.prewarm(&name, wanted);
        }
        inner.async_work.notify_one();
    }

    /// Starts instances of `name`'s `$LATEST` in the background until `wanted` are idle.
    fn prewarm(&self, name: &str, wanted: u32) {
        let Ok(entry) = self.function_entry(name) else {
            return;
        };
        let run = entry.latest.clone();
        let idle = self.inner.pool.idle_count(name, &run.instance_key);
        let missing = (wanted as usize).saturating_sub(idle);
        if missing == 0 {
            return;
        }
        tracing::info!(function = %name, instances = missing, "pre-warming instances");
        for _ in 0..missing {
            let engine = self.clone();
            let run = run.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.start_warm(&run, false).await {
                    tracing::warn!(function = %run.name, error = %e, "cannot pre-warm an instance");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AutoscalerConfig {
        AutoscalerConfig {
            min_workers: 2,
            max_workers: 10,
            scale_up_threshold: 3,
            scale_down_threshold: 2,
            check_interval: Duration::from_secs(30),
            cooldown: Duration::from_secs(30),
        }
    }

    const COOL: Option<Duration> = Some(Duration::from_secs(31));
    const WARM: Option<Duration> = Some(Duration::from_secs(5));

    #[test]
    fn scales_up_with_the_backlog_per_worker() {
        let c = cfg();
        // 6 events for 2 workers is exactly 3 each: no change.
        assert_eq!(decide(&c, 2, 6, 10, COOL), None);
        // 7 → 3 workers.
        assert_eq!(decide(&c, 2, 7, 10, WARM).map(|d| d.to), Some(3));
        // A burst goes straight to what it needs, capped.
        assert_eq!(decide(&c, 2, 20, 10, WARM).map(|d| d.to), Some(7));
        assert_eq!(decide(&c, 2, 1000, 10, WARM).map(|d| d.to), Some(10));
        // At the cap: nothing more.
        assert_eq!(decide(&c, 10, 1000, 10, COOL), None);
        let d = decide(&c, 2, 7, 10, None).unwrap();
        assert!(d.reason.contains("7 events for 2 workers"), "{}", d.reason);
    }

    #[test]
    fn scales_down_after_the_cooldown_by_half_at_most() {
        let c = cfg();
        assert_eq!(decide(&c, 8, 0, 10, WARM), None);
        assert_eq!(decide(&c, 8, 0, 10, COOL).map(|d| d.to), Some(4));
        assert_eq!(decide(&c, 4, 0, 10, COOL).map(|d| d.to), Some(2));
        // Never below the minimum.
        assert_eq!(decide(&c, 2, 0, 10, COOL), None);
        // Between the thresholds: stay.
        assert_eq!(decide(&c, 4, 10, 10, COOL), None);
        // Below the down threshold but the backlog still needs more than half.
        assert_eq!(decide(&c, 8, 15, 10, COOL).map(|d| d.to), Some(5));
    }

    #[test]
    fn follows_limits_and_minimums() {
        let c = cfg();
        // Reserved concurrency below the current workers.
        assert_eq!(decide(&c, 8, 100, 3, WARM).map(|d| d.to), Some(3));
        // Reserved 0 disables the function: no workers.
        assert_eq!(decide(&c, 2, 100, 0, WARM).map(|d| d.to), Some(0));
        assert_eq!(decide(&c, 0, 100, 0, WARM), None);
        // Below the minimum (a new function).
        assert_eq!(decide(&c, 0, 0, 10, WARM).map(|d| d.to), Some(2));
        // A minimum of zero: the first event starts a worker.
        let zero = AutoscalerConfig {
            min_workers: 0,
            ..cfg()
        };
        assert_eq!(decide(&zero, 0, 1, 10, WARM).map(|d| d.to), Some(1));
        assert_eq!(decide(&zero, 1, 0, 10, COOL).map(|d| d.to), Some(0));
    }

    #[test]
    fn validates_knobs() {
        assert_eq!(cfg().validate(), Ok(()));
        assert_eq!(AutoscalerConfig::default().validate(), Ok(()));
        let bad = AutoscalerConfig {
            min_workers: 5,
            max_workers: 4,
            ..cfg()
        };
        assert!(matches!(
            bad.validate(),
            Err(AutoscalerConfigError::Workers { .. })
        ));
        let bad = AutoscalerConfig {
            scale_down_threshold: 3,
            ..cfg()
        };
        assert!(matches!(
            bad.validate(),
            Err(AutoscalerConfigError::Thresholds { .. })
        ));
        let bad = AutoscalerConfig {
            check_interval: Duration::ZERO,
            ..cfg()
        };
        assert_eq!(bad.validate(), Err(AutoscalerConfigError::Interval));
    }

    #[test]
    fn arrivals_ask_for_an_early_check() {
        let w = Workers::default();
        assert!(!w.signal("f", 2, 3, true));
        for _ in 0..5 {
            w.signal("f", 2, 3, true);
        }
        // 7 arrivals for 2 workers at 3 each.
        assert!(w.signal("f", 2, 3, true));
        let all = w.functions.lock().unwrap();
        assert!(all["f"].wants_lease());
    }
}
