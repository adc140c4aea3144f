//! The audit trail: every change is appended under `audit/<time>-<id>`, never rewritten; the
//! API offers no way to change or remove an entry.

use holactl_types::audit::AuditEntry;
use serde::Serialize;

use crate::functions::{decode, encode};
use crate::{now_ms, Engine, EngineError};

const AUDIT_PREFIX: &str = "audit/";

impl Engine {
    /// Appends an entry. A failure is logged, not returned: the change it records is already
    /// done.
    pub(crate) async fn audit<T: Serialize>(
        &self,
        actor: &str,
        action: &str,
        function: Option<&str>,
        target: &str,
        before: Option<&T>,
        after: Option<&T>,
    ) {
        let at = now_ms();
        let id = format!(
            "{at:013}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let entry = AuditEntry {
            id: id.clone(),
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            function: function.map(str::to_owned),
            target: target.to_owned(),
            before: before.and_then(|b| serde_json::to_value(b).ok()),
            after: after.and_then(|a| serde_json::to_value(a).ok()),
        };
        let written = match encode(&entry) {
            Ok(bytes) => self
                .inner
                .stores
                .kv
                .create(&format!("{AUDIT_PREFIX}{id}"), bytes)
                .await
                .map(|_| ())
                .map_err(EngineError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, action, target, "cannot write an audit entry");
        }
    }

    /// Audit entries, oldest first, optionally only one function's and only since a time.
    pub async fn list_audit(
        &self,
        function: Option<&str>,
        since: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, EngineError> {
        let mut out = Vec::new();
        for (_, entry) in self.inner.stores.kv.list(AUDIT_PREFIX).await? {
            let entry: AuditEntry = decode(&entry.value)?;
            if since.is_some_and(|s| entry.at < s) {
                continue;
            }
            if function.is_some_and(|f| entry.function.as_deref() != Some(f)) {
                continue;
            }
            out.push(entry);
        }
        let skip = out.len().saturating_sub(limit);
        Ok(out.split_off(skip))
    }
}
