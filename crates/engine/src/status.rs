//! The platform's status now: async workers, instances, prepared sandboxes, queue depths,
//! concurrency and firing alerts (`GET /api/v1/workers/status`, `holactl lambda status`).

use std::collections::BTreeMap;

use holactl_types::observability::{AsyncWorkers, PlatformStatus, QueueDepthView};

use crate::cancel::ASYNC_QUEUE;
use crate::{Engine, EngineError};

impl Engine {
    /// What the platform is doing now.
    pub async fn status(&self) -> Result<PlatformStatus, EngineError> {
        let (idle, busy) = self.inner.pool.counts();
        self.inner.metrics.set_instances(idle, busy);
        let now = crate::now_ms();
        let depth = self.inner.stores.queues.depth(ASYNC_QUEUE, now).await?;
        let configured = self.inner.config.async_workers as u64;
        let alerts = self.alerts().await?;
        Ok(PlatformStatus {
            isolation: self.isolation().to_string(),
            async_workers: AsyncWorkers {
                configured,
                // Each busy worker holds one leased event.
                busy: depth.in_flight.min(configured),
            },
            instances: BTreeMap::from([("idle".to_owned(), idle), ("busy".to_owned(), busy)]),
            prepared_sandboxes: self.inner.config.prepared_sandboxes as u64,
            concurrent_executions: self.inner.metrics.concurrent.get().max(0) as u64,
            max_concurrency: u64::from(self.inner.config.max_concurrency),
            queues: BTreeMap::from([(
                ASYNC_QUEUE.to_owned(),
                QueueDepthView {
                    ready: depth.ready,
                    delayed: depth.delayed,
                    in_flight: depth.in_flight,
                    dead: depth.dead,
                },
            )]),
            alerts,
        })
    }
}
