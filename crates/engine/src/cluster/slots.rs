//! Reserved concurrency across the cluster. Each node caps a function at its reserved
//! concurrency with a local semaphore; in cluster mode an invocation also holds one of the
//! function's cluster slots, `slots/<function>/<k>` for `k` below the limit, so the whole
//! cluster runs at most that many at once.
//!
//! A slot is a key in the shared store holding `{node, until}`: claimed by create-if-absent, or
//! by compare-and-set over a holder whose `until` has passed (its node died), and deleted
//! (conditionally on the revision claimed) when the invocation ends. `until` is the start
//! plus the function's timeout plus the lease margin, the same bound as an async delivery's
//! lease, so a dead node's slots come back when its deliveries do. A claim first counts the
//! live holders under the prefix, whatever their index: after the limit is lowered, slots held
//! above it still count until they end.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use holactl_store::{Kv, StoreError};
use serde::{Deserialize, Serialize};

use crate::{now_ms, EngineError};

/// Prefix of every function's slots.
pub const SLOT_PREFIX: &str = "slots/";
/// Compare-and-set races lost in a row before a claim looks again from the listing.
const RACES: usize = 4;
/// Pause between looks while waiting for a slot.
const WAIT_STEP: Duration = Duration::from_millis(50);

#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    node: String,
    until: i64,
}

/// One claimed slot; released (in the background) when dropped.
pub(crate) struct ClusterSlot {
    kv: Arc<dyn Kv>,
    key: String,
    revision: u64,
}

impl std::fmt::Debug for ClusterSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSlot")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Drop for ClusterSlot {
    fn drop(&mut self) {
        let (kv, key, revision) = (
            self.kv.clone(),
            std::mem::take(&mut self.key),
            self.revision,
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                match kv.delete(&key, Some(revision)).await {
                    // Taken over after it expired: no longer ours to free.
                    Ok(()) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, %key, "could not free a cluster concurrency slot; it frees itself when it expires")
                    }
                }
            });
        }
    }
}

fn slot_prefix(function: &str) -> String {
    format!("{SLOT_PREFIX}{function}/")
}

/// What a claim needs to know.
pub(crate) struct Claim<'a> {
    /// The shared store.
    pub kv: &'a Arc<dyn Kv>,
    /// This node.
    pub node: &'a str,
    /// The function.
    pub function: &'a str,
    /// How long the slot may be held (the invocation's bound).
    pub hold_ms: i64,
}

impl Claim<'_> {
    /// One look: a slot if fewer than `limit` are held now, `None` otherwise.
    async fn try_once(&self, limit: u32) -> Result<Option<ClusterSlot>, EngineError> {
        let prefix = slot_prefix(self.function);
        for _ in 0..RACES {
            let now = now_ms();
            let held = self.kv.list(&prefix).await?;
            let live = |value: &Bytes| {
                serde_json::from_slice::<Holder>(value).map_or(true, |h| h.until >= now)
            };
            let live_count = held.iter().filter(|(_, e)| live(&e.value)).count();
            if live_count >= limit as usize {
                return Ok(None);
            }
            let value = serde_json::to_vec(&Holder {
                node: self.node.to_owned(),
                until: now + self.hold_ms,
            })
            .map_err(|e| EngineError::Internal(e.to_string()))?;
            // Spread concurrent claimants over the free indexes.
            let offset = (now as u32).wrapping_add(std::process::id()) % limit.max(1);
            let mut lost = false;
            for i in 0..limit {
                let key = format!("{prefix}{}", (i + offset) % limit);
                let current = held.iter().find(|(k, _)| *k == key).map(|(_, e)| e);
                let claimed = match current {
                    None => self.kv.create(&key, Bytes::from(value.clone())).await,
                    Some(e) if !live(&e.value) => {
                        self.kv
                            .update(&key, Bytes::from(value.clone()), e.revision)
                            .await
                    }
                    Some(_) => continue,
                };
                match claimed {
                    Ok(revision) => {
                        return Ok(Some(ClusterSlot {
                            kv: self.kv.clone(),
                            key,
                            revision,
                        }))
                    }
                    Err(StoreError::Conflict { .. }) => lost = true,
                    Err(e) => return Err(e.into()),
                }
            }
            if !lost {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// A slot under the limit `limit()` reads (it may change meanwhile; `None` = no limit any
    /// more): at once, or after waiting when `wait`.
    pub(crate) async fn claim(
        &self,
        wait: bool,
        limit: impl Fn() -> Option<u32>,
    ) -> Result<Option<ClusterSlot>, EngineError> {
        loop {
            let Some(n) = limit() else {
                return Ok(None);
            };
            if n > 0 {
                if let Some(slot) = self.try_once(n).await? {
                    return Ok(Some(slot));
                }
            }
            if !wait || n == 0 {
                return Err(EngineError::Throttled(if n == 0 {
                    format!(
                        "function {:?} is disabled (reserved concurrency 0)",
                        self.function
                    )
                } else {
                    format!(
                        "reserved concurrency limit of {n} of function {:?} reached across the \
                         cluster",
                        self.function
                    )
                }));
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }
}
