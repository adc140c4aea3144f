//! Which project owns each resource: `owners/<kind>/<name>` → project. A resource without an
//! entry (created before projects existed, or by an administrator without naming a project)
//! belongs to the `default` project.

use std::collections::HashMap;

use bytes::Bytes;
use holactl_store::Kv;
use holactl_types::identity::DEFAULT_PROJECT;

use crate::{Engine, EngineError};

pub(super) const PREFIX: &str = "owners/";

/// Kinds of owned resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A function (its versions, aliases, executions, logs, DLQ, settings go with it).
    Function,
    /// A named queue.
    Queue,
    /// A schedule.
    Schedule,
    /// A webhook.
    Webhook,
    /// A secret.
    Secret,
    /// An event-source mapping.
    Trigger,
    /// An HTTP API of the gateway.
    Api,
}

impl ResourceKind {
    /// Every kind.
    pub const ALL: [ResourceKind; 7] = [
        ResourceKind::Function,
        ResourceKind::Queue,
        ResourceKind::Schedule,
        ResourceKind::Webhook,
        ResourceKind::Secret,
        ResourceKind::Trigger,
        ResourceKind::Api,
    ];

    /// The word used in keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Function => "function",
            ResourceKind::Queue => "queue",
            ResourceKind::Schedule => "schedule",
            ResourceKind::Webhook => "webhook",
            ResourceKind::Secret => "secret",
            ResourceKind::Trigger => "trigger",
            ResourceKind::Api => "api",
        }
    }

    /// The not-found answer for a resource of this kind, exactly as the engine gives it for
    /// one that does not exist.
    pub fn not_found(self, name: &str) -> EngineError {
        match self {
            ResourceKind::Function => EngineError::FunctionNotFound(name.to_owned()),
            ResourceKind::Api => {
                EngineError::ResourceNotFound(format!("API {name:?} does not exist"))
            }
            other => {
                EngineError::ResourceNotFound(format!("{} {name:?} does not exist", other.as_str()))
            }
        }
    }

    fn parse(s: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

fn key(kind: ResourceKind, name: &str) -> String {
    format!("{PREFIX}{}/{name}", kind.as_str())
}

pub(super) async fn load(
    kv: &dyn Kv,
) -> Result<HashMap<(ResourceKind, String), String>, EngineError> {
    let mut out = HashMap::new();
    for (k, entry) in kv.list(PREFIX).await? {
        let Some((kind, name)) = k.strip_prefix(PREFIX).and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        let (Some(kind), Ok(project)) = (
            ResourceKind::parse(kind),
            String::from_utf8(entry.value.to_vec()),
        ) else {
            continue;
        };
        out.insert((kind, name.to_owned()), project);
    }
    Ok(out)
}

impl Engine {
    /// The project that owns a resource (`default` when none was recorded).
    pub fn owner(&self, kind: ResourceKind, name: &str) -> String {
        self.inner
            .identity
            .owners
            .read()
            .ok()
            .and_then(|o| o.get(&(kind, name.to_owned())).cloned())
            .unwrap_or_else(|| DEFAULT_PROJECT.to_owned())
    }

    /// Whether an owner was recorded for a resource.
    pub fn has_owner(&self, kind: ResourceKind, name: &str) -> bool {
        self.inner
            .identity
            .owners
            .read()
            .map(|o| o.contains_key(&(kind, name.to_owned())))
            .unwrap_or(false)
    }

    /// Records that `project` owns a resource just created.
    pub async fn set_owner(
        &self,
        kind: ResourceKind,
        name: &str,
        project: &str,
    ) -> Result<(), EngineError> {
        self.inner
            .stores
            .kv
            .put(&key(kind, name), Bytes::from(project.to_owned()))
            .await?;
        if let Ok(mut o) = self.inner.identity.owners.write() {
            o.insert((kind, name.to_owned()), project.to_owned());
        }
        Ok(())
    }

    /// Forgets the owner of a deleted resource.
    pub async fn remove_owner(&self, kind: ResourceKind, name: &str) -> Result<(), EngineError> {
        match self.inner.stores.kv.delete(&key(kind, name), None).await {
            Ok(()) | Err(holactl_store::StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if let Ok(mut o) = self.inner.identity.owners.write() {
            o.remove(&(kind, name.to_owned()));
        }
        Ok(())
    }

    /// Whether a project exists.
    pub fn project_exists(&self, name: &str) -> bool {
        self.inner
            .identity
            .projects
            .read()
            .map(|p| p.contains_key(name))
            .unwrap_or(false)
    }
}
