//! Queue gauges: messages by state and the age of the oldest deliverable message, refreshed by
//! the poller supervisor and whenever a queue is read through the API.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::Metrics;

/// Labels of per-queue series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// Queue name.
    pub queue: String,
}

/// Labels of per-queue, per-state series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueStateLabels {
    /// Queue name.
    pub queue: String,
    /// `ready`, `delayed`, `in_flight` or `dead`.
    pub state: String,
}

const STATES: [&str; 4] = ["ready", "delayed", "in_flight", "dead"];

/// Registers the queue gauges.
pub(crate) fn register(
    registry: &mut Registry,
    messages: &Family<QueueStateLabels, Gauge>,
    oldest: &Family<QueueLabels, Gauge>,
) {
    registry.register(
        "queue_messages",
        "Messages of each queue by state",
        messages.clone(),
    );
    registry.register(
        "queue_oldest_message_age_seconds",
        "Age of each queue's oldest deliverable message",
        oldest.clone(),
    );
}

impl Metrics {
    /// Sets a queue's gauges.
    pub(crate) fn set_queue_depth(&self, queue: &str, d: &holactl_store::QueueDepth) {
        for (state, n) in STATES.iter().zip([d.ready, d.delayed, d.in_flight, d.dead]) {
            self.queue_messages
                .get_or_create(&QueueStateLabels {
                    queue: queue.to_owned(),
                    state: (*state).to_owned(),
                })
                .set(n as i64);
        }
        self.queue_oldest_age
            .get_or_create(&QueueLabels {
                queue: queue.to_owned(),
            })
            .set((d.oldest_ready_age_ms / 1000) as i64);
    }

    /// Drops the series of a deleted queue.
    pub(crate) fn forget_queue(&self, queue: &str) {
        for state in STATES {
            self.queue_messages.remove(&QueueStateLabels {
                queue: queue.to_owned(),
                state: state.to_owned(),
            });
        }
        self.queue_oldest_age.remove(&QueueLabels {
            queue: queue.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_exposed_and_forgotten() {
        let m = Metrics::new();
        m.set_queue_depth(
            "orders",
            &holactl_store::QueueDepth {
                ready: 3,
                delayed: 1,
                in_flight: 2,
                dead: 1,
                oldest_ready_age_ms: 4500,
            },
        );
        let text = m.encode();
        assert!(
            text.contains(r#"holactl_queue_messages{queue="orders",state="ready"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"holactl_queue_oldest_message_age_seconds{queue="orders"} 4"#),
            "{text}"
        );
        m.forget_queue("orders");
        assert!(!m.encode().contains("orders"));
    }
}
