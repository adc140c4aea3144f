//! Warm instances, per function and instance key, reused most-recently-used first so the rest
//! age out; idle ones are stopped after a TTL (scale to zero).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use holactl_sandbox::Instance;

struct Idle {
    instance: Instance,
    since: Instant,
}

#[derive(Default)]
struct Slot {
    /// The instance key the idle instances were started for.
    key: String,
    idle: Vec<Idle>,
}

/// The warm pool.
#[derive(Default)]
pub struct Pool {
    slots: Mutex<HashMap<String, Slot>>,
    busy: AtomicU64,
    idle: AtomicU64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("busy", &self.busy.load(Ordering::Relaxed))
            .field("idle", &self.idle.load(Ordering::Relaxed))
            .finish()
    }
}

impl Pool {
    /// Takes a warm instance of `function` started for `key`, if any. Instances started for
    /// another key (older code or configuration) are stopped.
    pub fn acquire(&self, function: &str, key: &str) -> Option<Instance> {
        let mut stale = Vec::new();
        let found = {
            let mut slots = self.slots.lock().ok()?;
            let slot = slots.get_mut(function)?;
            if slot.key != key {
                stale = std::mem::take(&mut slot.idle);
                slot.key = key.to_owned();
                None
            } else {
                slot.idle.pop().map(|i| i.instance)
            }
        };
        self.idle.fetch_sub(
            stale.len() as u64 + found.is_some() as u64,
            Ordering::Relaxed,
        );
        drop(stale);
        found
    }

    /// Counts an instance as busy (a fresh one, or one just acquired).
    pub fn mark_busy(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns an instance after an invocation: kept warm if it can take another one.
    pub fn release(&self, function: &str, key: &str, instance: Instance) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
        if !instance.is_reusable() {
            return;
        }
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        let slot = slots.entry(function.to_owned()).or_default();
        if slot.key != key {
            if !slot.idle.is_empty() {
                // A newer key has taken over; this instance is stale.
                return;
            }
            slot.key = key.to_owned();
        }
        slot.idle.push(Idle {
            instance,
            since: Instant::now(),
        });
        self.idle.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets an instance that will not come back (it died or was stopped).
    pub fn discard(&self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    /// Stops every idle instance of `function`.
    pub fn purge(&self, function: &str) {
        let removed = match self.slots.lock() {
            Ok(mut slots) => slots.remove(function),
            Err(_) => None,
        };
        if let Some(slot) = removed {
            self.idle
                .fetch_sub(slot.idle.len() as u64, Ordering::Relaxed);
        }
    }

    /// Stops instances idle for longer than `ttl`; returns how many.
    pub fn reap(&self, ttl: Duration) -> usize {
        let now = Instant::now();
        let mut expired = Vec::new();
        if let Ok(mut slots) = self.slots.lock() {
            for slot in slots.values_mut() {
                let (old, keep): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut slot.idle)
                    .into_iter()
                    .partition(|i| now.duration_since(i.since) >= ttl || !i.instance.is_reusable());
                slot.idle = keep;
                expired.extend(old);
            }
            slots.retain(|_, s| !s.idle.is_empty());
        }
        self.idle.fetch_sub(expired.len() as u64, Ordering::Relaxed);
        expired.len()
    }

    /// Stops every idle instance.
    pub fn clear(&self) {
        let all = match self.slots.lock() {
            Ok(mut slots) => std::mem::take(&mut *slots),
            Err(_) => return,
        };
        let n: usize = all.values().map(|s| s.idle.len()).sum();
        self.idle.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// (idle, busy) instance counts.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.idle.load(Ordering::Relaxed),
            self.busy.load(Ordering::Relaxed),
        )
    }
}
