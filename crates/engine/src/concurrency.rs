//! Per-function concurrency: reserved concurrency caps a function (0 disables it), provisioned
//! concurrency is stored here and kept warm by the provisioner. Settings live under their own
//! Kv key, `concurrency/{name}`, so changing them never races function updates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use holactl_store::StoreError;
use holactl_types::concurrency::{FunctionConcurrency, MAX_PROVISIONED_CONCURRENCY};
use holactl_types::ValidationError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::functions::{decode, encode};
use crate::{Engine, EngineError};

pub(crate) const CONCURRENCY_PREFIX: &str = "concurrency/";

fn concurrency_key(name: &str) -> String {
    format!("{CONCURRENCY_PREFIX}{name}")
}

/// Checks `settings` against each other and the account-wide limit.
pub(crate) fn validate(
    settings: &FunctionConcurrency,
    account_limit: u32,
) -> Result<(), ValidationError> {
    if let Some(reserved) = settings.reserved {
        if reserved > account_limit {
            return Err(ValidationError::new(
                "reserved",
                format!("must be at most the account concurrency limit ({account_limit})"),
            ));
        }
    }
    if let Some(provisioned) = settings.provisioned {
        if provisioned > MAX_PROVISIONED_CONCURRENCY {
            return Err(ValidationError::new(
                "provisioned",
                format!("must be at most {MAX_PROVISIONED_CONCURRENCY}"),
            ));
        }
        if provisioned > account_limit {
            return Err(ValidationError::new(
                "provisioned",
                format!("must be at most the account concurrency limit ({account_limit})"),
            ));
        }
        if let Some(reserved) = settings.reserved {
            if provisioned > reserved {
                return Err(ValidationError::new(
                    "provisioned",
                    format!("must be at most reserved ({reserved})"),
                ));
            }
        }
    }
    Ok(())
}

struct Slot {
    settings: FunctionConcurrency,
    /// Permits of the reserved limit; replaced (and the old one closed, waking its waiters)
    /// when the limit changes.
    reserved: Option<Arc<Semaphore>>,
}

/// Every function's settings and reserved-concurrency semaphore.
#[derive(Default)]
pub(crate) struct Limits {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Limits {
    fn set(&self, name: &str, settings: FunctionConcurrency) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        let old = slots.remove(name);
        let reserved = match (&old, settings.reserved) {
            (Some(old), Some(n)) if old.settings.reserved == Some(n) => old.reserved.clone(),
            (_, Some(n)) => Some(Arc::new(Semaphore::new(n as usize))),
            (_, None) => None,
        };
        if let Some(old_sem) = old.as_ref().and_then(|o| o.reserved.as_ref()) {
            if !reserved.as_ref().is_some_and(|r| Arc::ptr_eq(r, old_sem)) {
                old_sem.close();
            }
        }
        if settings != FunctionConcurrency::default() {
            slots.insert(name.to_owned(), Slot { settings, reserved });
        }
    }

    fn get(&self, name: &str) -> FunctionConcurrency {
        self.slots
            .lock()
            .ok()
            .and_then(|s| s.get(name).map(|slot| slot.settings))
            .unwrap_or_default()
    }

    fn reserved(&self, name: &str) -> Option<(u32, Arc<Semaphore>)> {
        let slots = self.slots.lock().ok()?;
        let slot = slots.get(name)?;
        Some((slot.settings.reserved?, slot.reserved.clone()?))
    }

    /// `name`'s reserved concurrency, if it has one.
    pub(crate) fn reserved_limit(&self, name: &str) -> Option<u32> {
        self.get(name).reserved
    }

    /// Functions with provisioned concurrency, and how much.
    pub(crate) fn provisioned(&self) -> Vec<(String, u32)> {
        self.slots
            .lock()
            .map(|s| {
                s.iter()
                    .filter_map(|(name, slot)| {
                        slot.settings
                            .provisioned
                            .filter(|n| *n > 0)
                            .map(|n| (name.clone(), n))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A slot under `name`'s reserved limit: `None` when it has none; waits for one when
    /// `wait`, otherwise fails with `THROTTLED`.
    pub(crate) async fn admit(
        &self,
        name: &str,
        wait: bool,
    ) -> Result<Option<OwnedSemaphorePermit>, EngineError> {
        loop {
            let Some((limit, semaphore)) = self.reserved(name) else {
                return Ok(None);
            };
            // A disabled function is refused even to waiters: an asynchronous event would
            // otherwise hold a delivery worker indefinitely; it is retried and dead-lettered by
            // its function's policy instead.
            if wait && limit > 0 {
                match semaphore.acquire_owned().await {
                    Ok(permit) => return Ok(Some(permit)),
                    // The limit changed: look again.
                    Err(_) => continue,
                }
            }
            match semaphore.try_acquire_owned() {
                Ok(permit) => return Ok(Some(permit)),
                Err(TryAcquireError::Closed) => continue,
                Err(TryAcquireError::NoPermits) => {
                    return Err(EngineError::Throttled(if limit == 0 {
                        format!("function {name:?} is disabled (reserved concurrency 0)")
                    } else {
                        format!(
                            "reserved concurrency limit of {limit} of function {name:?} reached"
                        )
                    }))
                }
            }
        }
    }
}

impl Engine {
    /// Loads every function's settings (at open).
    pub(crate) async fn load_concurrency(&self) -> Result<(), EngineError> {
        for (key, entry) in self.inner.stores.kv.list(CONCURRENCY_PREFIX).await? {
            let name = &key[CONCURRENCY_PREFIX.len()..];
            if self.function_entry(name).is_err() {
                // Left behind by a delete interrupted by a crash (or the function was
                // created by another node since this one loaded functions).
                if self.function_gone(name).await {
                    let _ = self.inner.stores.kv.delete(&key, None).await;
                    continue;
                }
            }
            match decode::<FunctionConcurrency>(&entry.value) {
                Ok(settings) => self.inner.limits.set(name, settings),
                Err(e) => tracing::error!(key, error = %e, "skipping unreadable concurrency"),
            }
        }
        Ok(())
    }

    /// Re-reads `name`'s settings from the store (another node changed them).
    pub(crate) async fn reload_concurrency(&self, name: &str) -> Result<(), EngineError> {
        let settings = match self.inner.stores.kv.get(&concurrency_key(name)).await? {
            Some(entry) => decode::<FunctionConcurrency>(&entry.value)?,
            None => FunctionConcurrency::default(),
        };
        if self.inner.limits.get(name) != settings {
            self.inner.limits.set(name, settings);
            self.inner.provisioner_wake.notify_one();
        }
        Ok(())
    }

    /// Names of the functions whose settings are held in memory.
    pub(crate) fn concurrency_names(&self) -> Vec<String> {
        self.inner
            .limits
            .slots
            .lock()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// `name`'s concurrency settings (both `None` when unset).
    pub fn get_concurrency(&self, name: &str) -> Result<FunctionConcurrency, EngineError> {
        self.function_entry(name)?;
        Ok(self.inner.limits.get(name))
    }

    /// Sets `name`'s concurrency settings.
    pub async fn set_concurrency(
        &self,
        actor: &str,
        name: &str,
        settings: FunctionConcurrency,
    ) -> Result<FunctionConcurrency, EngineError> {
        self.function_entry(name)?;
        validate(&settings, self.inner.config.max_concurrency)?;
        let before = self.inner.limits.get(name);
        self.inner
            .stores
            .kv
            .put(&concurrency_key(name), encode(&settings)?)
            .await?;
        self.inner.limits.set(name, settings);
        self.inner.provisioner_wake.notify_one();
        self.audit(
            actor,
            "function.concurrency.set",
            Some(name),
            name,
            Some(&before),
            Some(&settings),
        )
        .await;
        Ok(settings)
    }

    /// Clears `name`'s concurrency settings.
    pub async fn delete_concurrency(&self, actor: &str, name: &str) -> Result<(), EngineError> {
        self.function_entry(name)?;
        let before = self.inner.limits.get(name);
        self.forget_concurrency(name).await?;
        self.audit::<FunctionConcurrency>(
            actor,
            "function.concurrency.delete",
            Some(name),
            name,
            Some(&before),
            None,
        )
        .await;
        Ok(())
    }

    /// Drops `name`'s settings (also when the function is deleted).
    pub(crate) async fn forget_concurrency(&self, name: &str) -> Result<(), EngineError> {
        match self
            .inner
            .stores
            .kv
            .delete(&concurrency_key(name), None)
            .await
        {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.inner.limits.set(name, FunctionConcurrency::default());
        self.inner.provisioner_wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc(reserved: Option<u32>, provisioned: Option<u32>) -> FunctionConcurrency {
        FunctionConcurrency {
            reserved,
            provisioned,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate(&fc(Some(50), Some(5)), 1000).is_ok());
        assert!(validate(&fc(None, Some(5)), 1000).is_ok());
        assert!(validate(&fc(Some(0), None), 1000).is_ok());
        assert_eq!(
            validate(&fc(Some(11), None), 10).unwrap_err().field,
            "reserved"
        );
        assert_eq!(
            validate(&fc(Some(2), Some(3)), 10).unwrap_err().field,
            "provisioned"
        );
        assert_eq!(
            validate(&fc(None, Some(101)), 1000).unwrap_err().field,
            "provisioned"
        );
    }

    #[tokio::test]
    async fn reserved_limit_throttles_or_waits() {
        let limits = Limits::default();
        assert!(limits.admit("f", false).await.unwrap().is_none());
        limits.set("f", fc(Some(2), None));
        let a = limits.admit("f", false).await.unwrap();
        let _b = limits.admit("f", false).await.unwrap();
        assert!(matches!(
            limits.admit("f", false).await,
            Err(EngineError::Throttled(_))
        ));
        drop(a);
        assert!(limits.admit("f", false).await.unwrap().is_some());

        limits.set("g", fc(Some(0), None));
        assert!(matches!(
            limits.admit("g", false).await,
            Err(EngineError::Throttled(_))
        ));
        assert!(
            matches!(
                limits.admit("g", true).await,
                Err(EngineError::Throttled(_))
            ),
            "disabled refuses waiters too"
        );
        // A waiter is woken when the limit changes.
        limits.set("g", fc(Some(1), None));
        let held = limits.admit("g", true).await.unwrap();
        let limits = Arc::new(limits);
        let waiter = {
            let limits = limits.clone();
            tokio::spawn(async move { limits.admit("g", true).await.map(|p| p.is_some()) })
        };
        tokio::task::yield_now().await;
        limits.set("g", fc(Some(2), None));
        assert!(waiter.await.unwrap().unwrap());
        drop(held);
        limits.set("g", FunctionConcurrency::default());
        assert!(limits.admit("g", false).await.unwrap().is_none());
        assert_eq!(limits.get("g"), FunctionConcurrency::default());
    }
}
