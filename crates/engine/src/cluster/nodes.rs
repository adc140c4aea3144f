//! Heartbeats: every [`HEARTBEAT`] each node writes `nodes/<id>` (address, start time, last
//! seen, load) and lists the others. A node is live while its last heartbeat is younger than
//! [`LIVE_WINDOW`]; records of nodes not seen for [`FORGET_AFTER`] are removed by whichever
//! node notices. A node that stops cleanly removes its own record.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use holactl_types::observability::{ClusterNode, ClusterStatus};

use crate::{now_ms, Engine, EngineError};

/// Where heartbeats live.
pub const NODE_PREFIX: &str = "nodes/";
/// How often a node writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node is live while its last heartbeat is at most this old.
pub const LIVE_WINDOW: Duration = Duration::from_secs(15);
/// Records of nodes silent this long are removed.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Whether a heartbeat at `last_seen` is live at `now`.
fn is_live(last_seen: i64, now: i64) -> bool {
    now - last_seen <= LIVE_WINDOW.as_millis() as i64
}

impl Engine {
    /// Starts the heartbeat (cluster mode).
    pub(crate) fn start_heartbeat(&self) {
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = engine.heartbeat().await {
                    tracing::warn!(error = %e, "cluster: heartbeat failed");
                }
            }
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    /// This node as its heartbeat describes it now.
    fn this_node(&self) -> Option<ClusterNode> {
        let cluster = self.inner.cluster.as_ref()?;
        let counts = self.inner.pool.counts();
        let now = now_ms();
        Some(ClusterNode {
            id: cluster.node_id.clone(),
            address: cluster.address.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: cluster.started_at,
            last_seen: now,
            live: true,
            running: self.inner.metrics.concurrent.get().max(0) as u64,
            instances: BTreeMap::from([
                ("idle".to_owned(), counts.idle),
                ("busy".to_owned(), counts.busy),
            ]),
        })
    }

    /// Writes this node's heartbeat and refreshes the list of nodes.
    async fn heartbeat(&self) -> Result<(), EngineError> {
        let (Some(cluster), Some(me)) = (self.inner.cluster.as_ref(), self.this_node()) else {
            return Ok(());
        };
        let kv = &self.inner.stores.kv;
        let bytes = serde_json::to_vec(&me).map_err(|e| EngineError::Internal(e.to_string()))?;
        kv.put(&format!("{NODE_PREFIX}{}", me.id), Bytes::from(bytes))
            .await?;
        let nodes = self.read_nodes().await?;
        if let Ok(mut cached) = cluster.nodes.write() {
            *cached = nodes;
        }
        Ok(())
    }

    /// Every node's latest heartbeat, by id; forgets long-silent nodes.
    async fn read_nodes(&self) -> Result<Vec<ClusterNode>, EngineError> {
        let kv = &self.inner.stores.kv;
        let now = now_ms();
        let mut out = Vec::new();
        for (key, entry) in kv.list(NODE_PREFIX).await? {
            let Ok(mut node) = serde_json::from_slice::<ClusterNode>(&entry.value) else {
                tracing::warn!(key, "cluster: unreadable heartbeat");
                continue;
            };
            if now - node.last_seen > FORGET_AFTER.as_millis() as i64 {
                let _ = kv.delete(&key, Some(entry.revision)).await;
                continue;
            }
            node.live = is_live(node.last_seen, now);
            out.push(node);
        }
        Ok(out)
    }

    /// The cluster as the latest heartbeat round saw it (`None` unless in cluster mode), for
    /// the health document, which reads no store.
    pub(crate) fn cluster_status_cached(&self) -> Option<ClusterStatus> {
        let cluster = self.inner.cluster.as_ref()?;
        let now = now_ms();
        let mut nodes = cluster.nodes.read().map(|n| n.clone()).unwrap_or_default();
        // This node's own figures are current; the others' are their latest heartbeat's.
        if let Some(me) = self.this_node() {
            nodes.retain(|n| n.id != me.id);
            nodes.push(me);
        }
        for n in &mut nodes {
            n.live = is_live(n.last_seen, now);
        }
        Some(status(cluster, nodes))
    }

    /// The cluster read from the store now (`None` unless in cluster mode).
    pub(crate) async fn cluster_status(&self) -> Result<Option<ClusterStatus>, EngineError> {
        let Some(cluster) = self.inner.cluster.as_ref() else {
            return Ok(None);
        };
        let mut nodes = self.read_nodes().await?;
        if let Some(me) = self.this_node() {
            nodes.retain(|n| n.id != me.id);
            nodes.push(me);
        }
        Ok(Some(status(cluster, nodes)))
    }

    /// Removes this node's heartbeat (a clean stop), so the others stop listing it at once.
    pub async fn leave_cluster(&self) {
        let Some(cluster) = self.inner.cluster.as_ref() else {
            return;
        };
        let key = format!("{NODE_PREFIX}{}", cluster.node_id);
        if let Err(e) = self.inner.stores.kv.delete(&key, None).await {
            tracing::debug!(error = %e, "cluster: cannot remove this node's heartbeat");
        }
    }
}

fn status(cluster: &super::State, mut nodes: Vec<ClusterNode>) -> ClusterStatus {
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    ClusterStatus {
        node: cluster.node_id.clone(),
        namespace: cluster.namespace.clone(),
        live: nodes.iter().filter(|n| n.live).count() as u64,
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_is_the_heartbeat_window() {
        let now = 1_000_000;
        assert!(is_live(now, now));
        assert!(is_live(now - 15_000, now));
        assert!(!is_live(now - 15_001, now));
    }
}
