//! Cluster mode: what a node does beyond a single server when its store is NATS JetStream
//! shared with other nodes (`serve --nats`).
//!
//! Nodes are identical: each serves the whole API, runs invocations, leases async events and
//! queue batches, and claims schedule ticks, all through the shared store (leases and
//! compare-and-set make each unit of work one node's at a time). What a node keeps in memory
//! (functions, settings, route tables, identity) is loaded at start and then follows every
//! node's writes through store watches.
//!
//! # Layout
//! - this file: the node's identity (a persistent id in the data dir) and its cluster state.
//! - [`follow`]: the caches follow the store: watches on the mirrored prefixes reload what
//!   changed, debounced; a watch that ends is re-opened after a full reload.
//! - [`nodes`]: heartbeats under `nodes/<id>` and the cluster view (`/api/v1/health`,
//!   `/api/v1/workers/status`).
//! - [`slots`]: reserved concurrency across the cluster (a slot per running invocation in the
//!   shared store).
//! - [`spill`]: a synchronous invocation this node has no slot for runs on another node
//!   (NATS request/reply in a queue group).

pub mod follow;
pub mod nodes;
pub(crate) mod slots;
pub mod spill;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::RwLock;

use holactl_types::observability::ClusterNode;

use crate::EngineError;

/// Key prefixes of the state of the nodes running now rather than of the platform
/// (heartbeats, reserved-concurrency slots, cancel requests): an export leaves them out.
pub const TRANSIENT_PREFIXES: &[&str] = &[
    nodes::NODE_PREFIX,
    slots::SLOT_PREFIX,
    crate::cancel::CANCEL_PREFIX,
];

/// The node id file inside the data dir.
pub const NODE_ID_FILE: &str = "node.id";

/// A node's cluster state.
#[derive(Debug)]
pub(crate) struct State {
    /// This node's id.
    pub node_id: String,
    /// The NATS namespace the nodes share.
    pub namespace: String,
    /// Where this node's API answers.
    pub address: String,
    /// When this node started (epoch ms).
    pub started_at: i64,
    /// The nodes as the latest heartbeat round listed them.
    pub nodes: RwLock<Vec<ClusterNode>>,
    /// The connection synchronous invocations spill over through (`None`: not connected).
    pub spill: Option<spill::Spill>,
}

impl crate::Engine {
    /// This node's place among the nodes that share the work: `(index, count)` over the live
    /// nodes of the last heartbeat round ordered by id (this one always among them); `(0, 1)`
    /// on a single server. Limits a cluster holds as a whole are split by it ([`share_of`]).
    pub(crate) fn cluster_position(&self) -> (u32, u32) {
        let Some(cluster) = &self.inner.cluster else {
            return (0, 1);
        };
        let mut live: Vec<String> = cluster
            .nodes
            .read()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter(|n| n.live)
                    .map(|n| n.id.clone())
                    .collect()
            })
            .unwrap_or_default();
        if !live.contains(&cluster.node_id) {
            live.push(cluster.node_id.clone());
        }
        live.sort();
        let index = live
            .iter()
            .position(|id| *id == cluster.node_id)
            .unwrap_or(0);
        (index as u32, live.len() as u32)
    }
}

/// Node `index`'s share of `n` over `nodes` nodes: `n / nodes`, plus one for the first
/// `n % nodes` nodes, so the shares add up to `n`.
pub(crate) fn share_of(n: u32, index: u32, nodes: u32) -> u32 {
    let nodes = nodes.max(1);
    n / nodes + u32::from(index < n % nodes)
}

/// This node's id: kept in `<data>/node.id` so a restarted node is the same node (its
/// heartbeat record is overwritten rather than a second one appearing). Created at first
/// start as `<hostname>-<8 hex digits>`.
pub fn node_id(data_dir: &Path) -> Result<String, EngineError> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if valid_id(text.trim()) => return Ok(text.trim().to_owned()),
        Ok(_) => {
            return Err(EngineError::Internal(format!(
                "{} does not hold a node id (letters, digits, '-', '_', at most 64)",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EngineError::Internal(format!("{}: {e}", path.display()))),
    }
    let host: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| EngineError::Internal(e.to_string()))?;
    let id = if host.is_empty() {
        format!("node-{}", hex::encode(bytes))
    } else {
        format!("{host}-{}", hex::encode(bytes))
    };
    std::fs::write(&path, format!("{id}\n"))
        .map_err(|e| EngineError::Internal(format!("{}: {e}", path.display())))?;
    Ok(id)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn a_node_keeps_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = node_id(dir.path()).unwrap();
        assert!(valid_id(&a), "{a}");
        assert_eq!(node_id(dir.path()).unwrap(), a);
        std::fs::write(dir.path().join(NODE_ID_FILE), "../etc\n").unwrap();
        assert!(node_id(dir.path()).is_err());
    }
}
