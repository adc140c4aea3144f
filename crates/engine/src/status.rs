//! The platform's status now: async workers per function and the autoscaler's settings,
//! instances by state, prepared sandboxes, queue depths, concurrency and firing alerts
//! (`GET /api/v1/workers/status`, `holactl lambda status`).

use std::collections::BTreeMap;

use holactl_types::observability::{AsyncWorkers, AutoscalerView, PlatformStatus, QueueDepthView};

use crate::autoscaler::ASYNC_QUEUE_PREFIX;
use crate::{Engine, EngineError};

impl Engine {
    /// What the platform is doing now.
    pub async fn status(&self) -> Result<PlatformStatus, EngineError> {
        let counts = self.inner.pool.counts();
        self.inner
            .metrics
            .set_instances(counts.idle, counts.busy, counts.initialising);
        let now = crate::now_ms();
        let depths = self
            .inner
            .stores
            .queues
            .depths(ASYNC_QUEUE_PREFIX, now)
            .await?;
        let functions: BTreeMap<_, _> = self.inner.workers.views().into_iter().collect();
        let cfg = &self.inner.config.autoscaler;
        let alerts = self.alerts().await?;
        Ok(PlatformStatus {
            isolation: self.isolation().to_string(),
            async_workers: AsyncWorkers {
                workers: functions.values().map(|w| w.workers).sum(),
                busy: functions.values().map(|w| w.busy).sum(),
                autoscaler: AutoscalerView {
                    min_workers: cfg.min_workers,
                    max_workers: cfg.max_workers,
                    scale_up_threshold: cfg.scale_up_threshold,
                    scale_down_threshold: cfg.scale_down_threshold,
                    check_interval_ms: cfg.check_interval.as_millis() as u64,
                    cooldown_ms: cfg.cooldown.as_millis() as u64,
                },
                functions,
            },
            instances: BTreeMap::from([
                ("idle".to_owned(), counts.idle),
                ("busy".to_owned(), counts.busy),
                ("initialising".to_owned(), counts.initialising),
            ]),
            prepared_sandboxes: self.inner.config.prepared_sandboxes as u64,
            concurrent_executions: self.inner.metrics.concurrent.get().max(0) as u64,
            max_concurrency: u64::from(self.inner.config.max_concurrency),
            queues: depths
                .into_iter()
                .map(|(queue, d)| {
                    (
                        queue,
                        QueueDepthView {
                            ready: d.ready,
                            delayed: d.delayed,
                            in_flight: d.in_flight,
                            dead: d.dead,
                        },
                    )
                })
                .collect(),
            alerts,
            cluster: self.cluster_status().await?,
        })
    }
}
