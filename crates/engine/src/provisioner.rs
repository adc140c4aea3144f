//! Provisioned concurrency: keeps N initialised instances of each function's `$LATEST` in the
//! warm pool. Each is started with `AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`,
//! run up to its first `next` (so its first invocation is warm), and pinned: the idle TTL does
//! not stop it. Every half second (or when settings change) dead ones are replaced, instances
//! of an outdated `$LATEST` are let go and new ones started. A function whose instance fails to
//! initialise is tried again after a pause rather than in a tight loop.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use holactl_sandbox::instance::INIT_TIMEOUT;

use crate::cluster::share_of;
use crate::pool::Worker;
use crate::{Engine, EngineError, Runnable};

/// How often the provisioner looks at its instances when nothing wakes it.
const CHECK_PERIOD: Duration = Duration::from_millis(500);
/// How long a function whose instance failed to start waits before the next attempt.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Carried by a provisioned instance's [`Worker`]; the provisioner counts the live ones.
#[derive(Debug)]
pub struct Ticket {
    /// The instance key it was started for.
    key: String,
    pinned: AtomicBool,
}

impl Ticket {
    /// Whether the instance is still wanted (exempt from the idle TTL).
    pub fn is_pinned(&self) -> bool {
        self.pinned.load(Ordering::Relaxed)
    }

    /// Lets the instance age out like any other.
    fn unpin(&self) {
        self.pinned.store(false, Ordering::Relaxed);
    }
}

/// What the provisioner remembers between rounds.
#[derive(Default)]
struct Live {
    /// function → its provisioned instances.
    tickets: HashMap<String, Vec<Weak<Ticket>>>,
    /// function → no new attempt before then (its last instance failed to start).
    retry_at: HashMap<String, Instant>,
}

impl Engine {
    pub(crate) fn start_provisioner(&self) {
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let mut live = Live::default();
            loop {
                engine.provision_once(&mut live).await;
                tokio::select! {
                    _ = engine.inner.provisioner_wake.notified() => {}
                    _ = tokio::time::sleep(CHECK_PERIOD) => {}
                }
            }
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    /// How many of a function's `n` provisioned instances this node keeps: all of them on one
    /// node, its share in a cluster, so the cluster as a whole keeps `n`, as the setting says.
    fn provisioned_share(&self) -> impl Fn(u32) -> u32 {
        let (index, nodes) = self.cluster_position();
        move |n| share_of(n, index, nodes)
    }

    async fn provision_once(&self, live: &mut Live) {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let share = self.provisioned_share();
        let wanted: HashMap<String, u32> = inner
            .limits
            .provisioned()
            .into_iter()
            .map(|(name, n)| (name, share(n)))
            .filter(|(_, n)| *n > 0)
            .collect();
        if wanted.is_empty() && live.tickets.is_empty() {
            return;
        }
        live.retry_at.retain(|_, at| *at > Instant::now());
        // Idle instances that died (only those: nothing lives forever).
        inner.pool.reap(Duration::MAX);
        live.tickets.retain(|name, tickets| {
            if wanted.contains_key(name) {
                return true;
            }
            tickets
                .iter()
                .filter_map(Weak::upgrade)
                .for_each(|t| t.unpin());
            false
        });
        for (name, n) in wanted {
            let Ok(entry) = self.function_entry(&name) else {
                continue;
            };
            let run = entry.latest.clone();
            let tickets = live.tickets.entry(name.clone()).or_default();
            let mut stale = HashSet::new();
            tickets.retain(|w| match w.upgrade() {
                None => false,
                Some(t) if t.key != run.instance_key => {
                    t.unpin();
                    stale.insert(t.key.clone());
                    false
                }
                Some(_) => true,
            });
            for key in stale {
                inner.pool.purge_key(&name, &key);
            }
            while tickets.len() > n as usize {
                if let Some(t) = tickets.pop().and_then(|w| w.upgrade()) {
                    t.unpin();
                }
            }
            if live.retry_at.contains_key(&name) {
                continue;
            }
            for _ in tickets.len()..n as usize {
                match self.start_warm(&run, true).await {
                    Ok(Some(ticket)) => tickets.push(Arc::downgrade(&ticket)),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(function = %name, error = %e, "cannot start provisioned instance");
                        live.retry_at
                            .insert(name.clone(), Instant::now() + RETRY_AFTER_FAILURE);
                        break;
                    }
                }
            }
        }
    }

    /// Starts one instance of `run`, waits for its runtime to initialise and parks it in the
    /// pool: pinned with a ticket when `provisioned`, otherwise an ordinary warm instance
    /// (pre-warmed) that the idle TTL stops like any other.
    pub(crate) async fn start_warm(
        &self,
        run: &Runnable,
        provisioned: bool,
    ) -> Result<Option<Arc<Ticket>>, EngineError> {
        let inner = &self.inner;
        let _starting = inner.pool.starting();
        self.ensure_code(&run.code).await?;
        let secrets = self.resolve_secrets(&run.config).await?;
        let mut spec = self.instance_spec(run, &secrets)?;
        if provisioned {
            for (key, value) in spec.env.iter_mut() {
                if key == "AWS_LAMBDA_INITIALIZATION_TYPE" {
                    *value = "provisioned-concurrency".to_owned();
                }
            }
        }
        let mut instance = inner
            .sandbox
            .spawn(spec)
            .await
            .map_err(|e| EngineError::Internal(format!("cannot start instance: {e}")))?;
        let timeout = Duration::from_secs(u64::from(run.config.timeout_s)).max(INIT_TIMEOUT);
        instance.wait_ready(timeout).await.map_err(|why| {
            EngineError::Internal(format!("instance did not initialise: {why:?}"))
        })?;
        let ticket = provisioned.then(|| {
            Arc::new(Ticket {
                key: run.instance_key.clone(),
                pinned: AtomicBool::new(true),
            })
        });
        let worker = Worker {
            instance,
            secrets: secrets.into_iter().map(|(_, v)| v).collect(),
            provisioned: ticket.clone(),
        };
        inner.pool.mark_busy();
        inner.pool.release(&run.name, &run.instance_key, worker);
        tracing::info!(
            function = %run.name,
            version = %run.version,
            reason = if provisioned { "provisioned" } else { "pre-warm" },
            "instance started"
        );
        Ok(ticket)
    }
}

#[cfg(test)]
mod share_tests {
    use crate::cluster::share_of;

    #[test]
    fn shares_add_up_to_the_setting() {
        for n in 0..12 {
            for nodes in 1..5 {
                let shares: Vec<u32> = (0..nodes).map(|i| share_of(n, i, nodes)).collect();
                assert_eq!(
                    shares.iter().sum::<u32>(),
                    n,
                    "{n} over {nodes}: {shares:?}"
                );
                assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
            }
        }
        assert_eq!(share_of(3, 0, 1), 3);
    }
}
