//! Warm instances, per function and instance key, reused most-recently-used first so the rest
//! age out; idle ones are stopped after a TTL (scale to zero).
//!
//! Idle times are read from tokio's clock, so tests can drive the TTL with paused time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holactl_sandbox::Instance;
use tokio::time::Instant;

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

/// What the pool needs to know of what it keeps.
pub trait Pooled: Send + 'static {
    /// Exempt from the idle TTL (kept by provisioned concurrency).
    fn pinned(&self) -> bool;
    /// Can take another invocation.
    fn reusable(&self) -> bool;
}

impl Pooled for Worker {
    fn pinned(&self) -> bool {
        self.provisioned.as_ref().is_some_and(|t| t.is_pinned())
    }

    fn reusable(&self) -> bool {
        self.instance.is_reusable()
    }
}

struct Idle<W> {
    worker: W,
    since: Instant,
}

/// Instance counts by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Warm and waiting for an invocation.
    pub idle: u64,
    /// Running an invocation.
    pub busy: u64,
    /// Started, runtime not ready yet.
    pub initialising: u64,
}

/// Idle workers by function, then by instance key.
type Slots<W> = HashMap<String, HashMap<String, Vec<Idle<W>>>>;

/// The warm pool.
pub struct Pool<W = Worker> {
    slots: Mutex<Slots<W>>,
    busy: AtomicU64,
    idle: AtomicU64,
    initialising: AtomicU64,
}

impl<W> Default for Pool<W> {
    fn default() -> Self {
        Pool {
            slots: Mutex::default(),
            busy: AtomicU64::new(0),
            idle: AtomicU64::new(0),
            initialising: AtomicU64::new(0),
        }
    }
}

/// Counts an instance as initialising while it lives.
pub struct Starting<'a>(&'a AtomicU64);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<W> std::fmt::Debug for Pool<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("busy", &self.busy.load(Ordering::Relaxed))
            .field("idle", &self.idle.load(Ordering::Relaxed))
            .finish()
    }
}

impl<W: Pooled> Pool<W> {
    /// Takes a warm instance of `function` started for `key`, if any.
    pub fn acquire(&self, function: &str, key: &str) -> Option<W> {
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
    pub fn release(&self, function: &str, key: &str, worker: W) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
        if !worker.reusable() {
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
        let removed: Vec<Idle<W>> = match self.slots.lock() {
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
                    let (old, keep): (Vec<Idle<W>>, Vec<Idle<W>>) =
                        std::mem::take(idle).into_iter().partition(|i| {
                            (now.duration_since(i.since) >= ttl && !i.worker.pinned())
                                || !i.worker.reusable()
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

    /// Idle instances of `function` started for `key`.
    pub fn idle_count(&self, function: &str, key: &str) -> usize {
        self.slots
            .lock()
            .ok()
            .and_then(|slots| slots.get(function).and_then(|k| k.get(key)).map(Vec::len))
            .unwrap_or(0)
    }

    /// Counts an instance as initialising until the guard is dropped.
    pub fn starting(&self) -> Starting<'_> {
        self.initialising.fetch_add(1, Ordering::Relaxed);
        Starting(&self.initialising)
    }

    /// Instance counts by state.
    pub fn counts(&self) -> PoolCounts {
        PoolCounts {
            idle: self.idle.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            initialising: self.initialising.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A stand-in instance: the pool only asks these two questions.
    struct Fake {
        pinned: bool,
        alive: Arc<AtomicBool>,
    }

    impl Pooled for Fake {
        fn pinned(&self) -> bool {
            self.pinned
        }
        fn reusable(&self) -> bool {
            self.alive.load(Ordering::Relaxed)
        }
    }

    fn fake(pinned: bool) -> Fake {
        Fake {
            pinned,
            alive: Arc::new(AtomicBool::new(true)),
        }
    }

    fn park(pool: &Pool<Fake>, function: &str, key: &str, w: Fake) {
        pool.mark_busy();
        pool.release(function, key, w);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_instances_scale_to_zero_after_the_ttl() {
        let ttl = Duration::from_secs(300);
        let pool = Pool::<Fake>::default();
        park(&pool, "f", "k1", fake(false));
        tokio::time::advance(Duration::from_secs(100)).await;
        park(&pool, "f", "k1", fake(false));
        park(&pool, "g", "k2", fake(true));
        assert_eq!(pool.counts().idle, 3);

        // The first one reaches the TTL, the second is 100 s younger.
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(pool.reap(ttl), 1);
        assert_eq!(pool.idle_count("f", "k1"), 1);
        tokio::time::advance(Duration::from_secs(99)).await;
        assert_eq!(pool.reap(ttl), 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(pool.reap(ttl), 1);
        // Zero left but the provisioned (pinned) one, however long it idles.
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert_eq!(pool.reap(ttl), 0);
        assert_eq!(
            pool.counts(),
            PoolCounts {
                idle: 1,
                busy: 0,
                initialising: 0
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reuse_resets_the_idle_clock_and_dead_ones_go() {
        let ttl = Duration::from_secs(10);
        let pool = Pool::<Fake>::default();
        park(&pool, "f", "k", fake(false));
        tokio::time::advance(Duration::from_secs(9)).await;
        let w = pool.acquire("f", "k").expect("warm instance");
        assert!(pool.acquire("f", "k").is_none());
        pool.mark_busy();
        assert_eq!(pool.counts().busy, 1);
        pool.release("f", "k", w);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(pool.reap(ttl), 0, "released 9 s ago");

        // One that died while idle is removed at the next pass, TTL or not.
        let dead = fake(false);
        let alive = dead.alive.clone();
        park(&pool, "f", "k", dead);
        alive.store(false, Ordering::Relaxed);
        assert_eq!(pool.reap(Duration::MAX), 1);
        // Not reusable when released: not kept.
        let gone = fake(false);
        gone.alive.store(false, Ordering::Relaxed);
        park(&pool, "f", "k", gone);
        assert_eq!(pool.idle_count("f", "k"), 1);
    }

    #[test]
    fn counts_initialising_while_the_guard_lives() {
        let pool = Pool::<Fake>::default();
        let a = pool.starting();
        let b = pool.starting();
        assert_eq!(pool.counts().initialising, 2);
        drop(a);
        assert_eq!(pool.counts().initialising, 1);
        drop(b);
        assert_eq!(pool.counts().initialising, 0);
    }
}
