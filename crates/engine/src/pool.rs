//! Warm instances, per function and instance key, reused most-recently-used first so the rest
//! age out; idle ones are stopped after a TTL (scale to zero).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holactl_sandbox::Instance;

/// A running instance and what the engine needs to know about it.
pub struct Worker {
    /// The instance.
    pub instance: Instance,
    /// Secret values it was started with, masked in its logs.
    pub secrets: Arc<[String]>,
    /// Set on instances kept warm by provisioned concurrency; while pinned, the idle TTL does
    /// not apply to them.
    pub provisioned: Option<Arc<crate::provisioner::Ticket>>,
}

impl Worker {
    fn pinned(&self) -> bool {
        self.provisioned.as_ref().is_some_and(|t| t.is_pinned())
    }
}

struct Idle {
    worker: Worker,
    since: Instant,
}

/// The warm pool.
#[derive(Default)]
pub struct Pool {
    /// function → instance key → idle workers.
    slots: Mutex<HashMap<String, HashMap<String, Vec<Idle>>>>,
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
    /// Takes a warm instance of `function` started for `key`, if any.
    pub fn acquire(&self, function: &str, key: &str) -> Option<Worker> {
        let found = {
            let mut slots = self.slots.lock().ok()?;
            slots
                .get_mut(function)
                .and_then(|keys| keys.get_mut(key))
                .and_then(|idle| idle.pop())
                .map(|i| i.worker)
        };
        if found.is_some() {
            self.idle.fetch_sub(1, Ordering::Relaxed);
        }
        found
    }

    /// Counts an instance as busy (a fresh one, or one just acquired).
    pub fn mark_busy(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns an instance after an invocation: kept warm if it can take another one.
    pub fn release(&self, function: &str, key: &str, worker: Worker) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
        if !worker.instance.is_reusable() {
            return;
        }
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        slots
            .entry(function.to_owned())
            .or_default()
            .entry(key.to_owned())
            .or_default()
            .push(Idle {
                worker,
                since: Instant::now(),
            });
        self.idle.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets an instance that will not come back (it died or was stopped).
    pub fn discard(&self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    fn remove_where(&self, mut pick: impl FnMut(&str, &str) -> bool) -> usize {
        let removed: Vec<Idle> = match self.slots.lock() {
            Ok(mut slots) => {
                let mut out = Vec::new();
                for (function, keys) in slots.iter_mut() {
                    keys.retain(|key, idle| {
                        if pick(function, key) {
                            out.append(idle);
                            false
                        } else {
                            true
                        }
                    });
                }
                slots.retain(|_, keys| !keys.is_empty());
                out
            }
            Err(_) => Vec::new(),
        };
        self.idle.fetch_sub(removed.len() as u64, Ordering::Relaxed);
        removed.len()
    }

    /// Stops every idle instance of `function`.
    pub fn purge(&self, function: &str) {
        self.remove_where(|f, _| f == function);
    }

    /// Stops the idle instances of `function` started for `key`.
    pub fn purge_key(&self, function: &str, key: &str) {
        self.remove_where(|f, k| f == function && k == key);
    }

    /// Stops instances idle for longer than `ttl`; returns how many.
    pub fn reap(&self, ttl: Duration) -> usize {
        let now = Instant::now();
        let mut expired = Vec::new();
        if let Ok(mut slots) = self.slots.lock() {
            for keys in slots.values_mut() {
                for idle in keys.values_mut() {
                    let (old, keep): (Vec<Idle>, Vec<Idle>) =
                        std::mem::take(idle).into_iter().partition(|i| {
                            (now.duration_since(i.since) >= ttl && !i.worker.pinned())
                                || !i.worker.instance.is_reusable()
                        });
                    *idle = keep;
                    expired.extend(old);
                }
                keys.retain(|_, idle| !idle.is_empty());
            }
            slots.retain(|_, keys| !keys.is_empty());
        }
        self.idle.fetch_sub(expired.len() as u64, Ordering::Relaxed);
        expired.len()
    }

    /// Stops every idle instance.
    pub fn clear(&self) {
        self.remove_where(|_, _| true);
    }

    /// (idle, busy) instance counts.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.idle.load(Ordering::Relaxed),
            self.busy.load(Ordering::Relaxed),
        )
    }
}
