//! The in-memory state follows the store: every node watches the prefixes it mirrors and
//! reloads what another node (or itself) changed.
//!
//! One watch per mirrored prefix forwards the keys that changed; they are gathered for
//! [`DEBOUNCE`] and each affected unit (a function with its versions and aliases, a
//! function's concurrency settings, a compiled API, the identity maps, a trigger's poller) is
//! re-read from the store once, whatever the number of events. `cancel/<id>` keys are
//! requests rather than state: the node running that execution stops it. Reloading from the store
//! rather than applying the events' values keeps the order question simple: a reload that
//! reads after a write sees that write (or a later one), and every write is followed by its
//! own event, so the last reload always sees the last write.
//!
//! A watch that ends (it fell behind, or the connection to NATS was lost) stops every watch;
//! they are opened again and everything is reloaded (the watch is opened before the reload,
//! so nothing written in between is missed). The embedded store does not run this: a single
//! node's writes update its memory directly.

use std::collections::BTreeSet;
use std::time::Duration;

use holactl_store::KvEvent;
use holactl_types::version::{AliasRecord, VersionRecord};
use holactl_types::FunctionRecord;
use tokio::sync::mpsc;

use crate::functions::{decode, function_key, ALIAS_PREFIX, FUNCTION_PREFIX, VERSION_PREFIX};
use crate::{Engine, EngineError};

/// How long changes are gathered before they are applied.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Wait before re-opening watches that ended or failed to open.
const REOPEN_WAIT: Duration = Duration::from_secs(1);

/// What a change asks to reload.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reload {
    Function(String),
    Concurrency(String),
    Api(String),
    Identity,
    Trigger(String),
    /// Stop this execution if it runs here.
    Cancel(String),
}

/// The prefixes followed.
fn prefixes() -> Vec<&'static str> {
    let mut out = vec![
        FUNCTION_PREFIX,
        VERSION_PREFIX,
        ALIAS_PREFIX,
        crate::concurrency::CONCURRENCY_PREFIX,
        "gateway/",
        crate::queues::TRIGGER_PREFIX,
        crate::cancel::CANCEL_PREFIX,
    ];
    out.extend(crate::identity::MIRRORED_PREFIXES);
    out
}

/// What a changed key asks to reload (`None`: nothing this node mirrors).
fn reload_for(key: &str) -> Option<Reload> {
    let first = |rest: &str| rest.split('/').next().unwrap_or_default().to_owned();
    if let Some(rest) = key.strip_prefix(FUNCTION_PREFIX) {
        return Some(Reload::Function(rest.to_owned()));
    }
    if let Some(rest) = key
        .strip_prefix(VERSION_PREFIX)
        .or_else(|| key.strip_prefix(ALIAS_PREFIX))
    {
        return Some(Reload::Function(first(rest)));
    }
    if let Some(rest) = key.strip_prefix(crate::concurrency::CONCURRENCY_PREFIX) {
        return Some(Reload::Concurrency(rest.to_owned()));
    }
    if let Some(rest) = key.strip_prefix("gateway/") {
        // gateway/<kind>/<api>[/…]
        let api = rest.split('/').nth(1).unwrap_or_default();
        return (!api.is_empty()).then(|| Reload::Api(api.to_owned()));
    }
    if let Some(rest) = key.strip_prefix(crate::queues::TRIGGER_PREFIX) {
        return Some(Reload::Trigger(rest.to_owned()));
    }
    if let Some(rest) = key.strip_prefix(crate::cancel::CANCEL_PREFIX) {
        return Some(Reload::Cancel(rest.to_owned()));
    }
    if crate::identity::MIRRORED_PREFIXES
        .iter()
        .any(|p| key.starts_with(p))
    {
        return Some(Reload::Identity);
    }
    None
}

impl Engine {
    /// Starts following the store (cluster mode).
    pub(crate) fn start_follower(&self) {
        let engine = self.clone();
        let task = tokio::spawn(async move { engine.follow().await });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    async fn follow(self) {
        loop {
            // `Err(())`: a watch ended.
            let (tx, mut rx) = mpsc::channel::<Result<String, ()>>(4096);
            let mut forwarders = Vec::new();
            let mut opened = true;
            for prefix in prefixes() {
                let mut watch = match self.inner.stores.kv.watch(prefix).await {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(prefix, error = %e, "cluster: cannot watch the store");
                        opened = false;
                        break;
                    }
                };
                let tx = tx.clone();
                forwarders.push(tokio::spawn(async move {
                    while let Some(event) = watch.next().await {
                        let key = match event {
                            KvEvent::Put { key, .. } | KvEvent::Delete { key, .. } => key,
                        };
                        if tx.send(Ok(key)).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send(Err(())).await;
                }));
            }
            drop(tx);
            if opened {
                self.reload_everything().await;
                self.apply_changes(&mut rx).await;
                tracing::warn!("cluster: a store watch ended; reloading and watching again");
            }
            for f in forwarders {
                f.abort();
            }
            tokio::time::sleep(REOPEN_WAIT).await;
        }
    }

    /// Applies gathered changes until a watch ends.
    async fn apply_changes(&self, rx: &mut mpsc::Receiver<Result<String, ()>>) {
        loop {
            let mut pending = BTreeSet::new();
            match rx.recv().await {
                Some(Ok(key)) => pending.extend(reload_for(&key)),
                Some(Err(())) | None => return,
            }
            let deadline = tokio::time::sleep(DEBOUNCE);
            tokio::pin!(deadline);
            let mut ended = false;
            loop {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(Ok(key)) => pending.extend(reload_for(&key)),
                        Some(Err(())) | None => { ended = true; break; }
                    },
                    _ = &mut deadline => break,
                }
            }
            for reload in pending {
                if let Err(e) = self.reload(&reload).await {
                    tracing::warn!(?reload, error = %e, "cluster: cannot reload a change");
                }
            }
            if ended {
                return;
            }
        }
    }

    async fn reload(&self, reload: &Reload) -> Result<(), EngineError> {
        match reload {
            Reload::Function(name) => self.reload_function(name).await,
            Reload::Concurrency(name) => self.reload_concurrency(name).await,
            Reload::Api(name) => self.refresh_api(name).await,
            Reload::Identity => self.load_identity().await,
            Reload::Trigger(id) => {
                self.sync_trigger_poller(id).await;
                Ok(())
            }
            Reload::Cancel(id) => {
                if self.cancel_running_here(id) {
                    tracing::info!(execution = %id, "execution cancelled through another node");
                }
                Ok(())
            }
        }
    }

    /// Reloads everything mirrored (after watches were (re)opened).
    async fn reload_everything(&self) {
        let mut reloads: BTreeSet<Reload> = BTreeSet::new();
        let kv = &self.inner.stores.kv;
        let cached: Vec<String> = self
            .inner
            .functions
            .read()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default();
        reloads.extend(cached.into_iter().map(Reload::Function));
        reloads.extend(
            self.concurrency_names()
                .into_iter()
                .map(Reload::Concurrency),
        );
        reloads.extend(self.compiled_api_names().into_iter().map(Reload::Api));
        reloads.insert(Reload::Identity);
        for prefix in [
            FUNCTION_PREFIX,
            crate::concurrency::CONCURRENCY_PREFIX,
            crate::gateway::API_PREFIX,
            crate::queues::TRIGGER_PREFIX,
        ] {
            match kv.list(prefix).await {
                Ok(entries) => reloads.extend(entries.iter().filter_map(|(k, _)| reload_for(k))),
                Err(e) => tracing::warn!(prefix, error = %e, "cluster: cannot list the store"),
            }
        }
        for reload in reloads {
            if let Err(e) = self.reload(&reload).await {
                tracing::warn!(?reload, error = %e, "cluster: cannot reload");
            }
        }
    }

    /// Re-reads one function with its versions and aliases and swaps its snapshot in (or
    /// drops it, and its warm instances, when it is gone).
    pub(crate) async fn reload_function(&self, name: &str) -> Result<(), EngineError> {
        let kv = &self.inner.stores.kv;
        let before = self.function_entry(name).ok();
        let Some(entry) = kv.get(&function_key(name)).await? else {
            if before.is_some() {
                if let Ok(mut functions) = self.inner.functions.write() {
                    functions.remove(name);
                }
                self.inner.pool.purge(name);
                self.inner.provisioner_wake.notify_one();
                tracing::info!(function = %name, "function deleted on another node");
            }
            return Ok(());
        };
        let record: FunctionRecord = decode(&entry.value)?;
        let mut versions = std::collections::BTreeMap::new();
        for (_, e) in kv.list(&format!("{VERSION_PREFIX}{name}/")).await? {
            let v: VersionRecord = decode(&e.value)?;
            if v.function == name {
                versions.insert(v.version, v);
            }
        }
        let mut aliases = std::collections::BTreeMap::new();
        for (_, e) in kv.list(&format!("{ALIAS_PREFIX}{name}/")).await? {
            let a: AliasRecord = decode(&e.value)?;
            if a.function == name {
                aliases.insert(a.name.clone(), a);
            }
        }
        let fresh = self.entry_for(record, versions, aliases);
        let unchanged = before.as_ref().is_some_and(|b| {
            b.record == fresh.record
                && b.versions.keys().eq(fresh.versions.keys())
                && b.aliases == fresh.aliases
        });
        if unchanged {
            // Usually this node's own write coming back.
            return Ok(());
        }
        let code = fresh.latest.code.clone();
        let entry = self.cache_function(fresh)?;
        if let Some(before) = before {
            if before.latest.instance_key != entry.latest.instance_key {
                self.inner.pool.purge_key(name, &before.latest.instance_key);
            }
        }
        self.inner.provisioner_wake.notify_one();
        // Fetch and unpack the code now, so the first invocation here is not slower for it.
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.ensure_code(&code).await {
                tracing::warn!(sha256 = %code.sha256, error = %e, "cannot fetch a code package");
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_what_they_reload() {
        let f = |s: &str| Some(Reload::Function(s.to_owned()));
        assert_eq!(reload_for("functions/hello"), f("hello"));
        assert_eq!(reload_for("versions/hello/0000000003"), f("hello"));
        assert_eq!(reload_for("aliases/hello/live"), f("hello"));
        assert_eq!(
            reload_for("concurrency/hello"),
            Some(Reload::Concurrency("hello".into()))
        );
        assert_eq!(
            reload_for("gateway/routes/shop/abc"),
            Some(Reload::Api("shop".into()))
        );
        assert_eq!(
            reload_for("gateway/apis/shop"),
            Some(Reload::Api("shop".into()))
        );
        assert_eq!(reload_for("users/ana"), Some(Reload::Identity));
        assert_eq!(reload_for("owners/function/hello"), Some(Reload::Identity));
        assert_eq!(
            reload_for("triggers/0b7c"),
            Some(Reload::Trigger("0b7c".into()))
        );
        assert_eq!(reload_for("cancel/e-1"), Some(Reload::Cancel("e-1".into())));
        assert_eq!(reload_for("schedules/nightly"), None);
        assert_eq!(reload_for("gateway/"), None);
    }
}
