//! Event-source mappings ("triggers"): a queue, a function, and how to batch and retry. Every
//! change is stored first, then applied to this node's pollers at once, so a disabled mapping
//! has stopped leasing when the call returns.

use holactl_store::StoreError;
use holactl_types::queue::{CreateTriggerRequest, TriggerRecord, TriggerView};
use holactl_types::version::{split_qualified, Qualifier};

use super::{trigger_key, TRIGGER_PREFIX};
use crate::functions::{decode, encode};
use crate::{now_ms, Engine, EngineError};

fn trigger_not_found(id: &str) -> EngineError {
    EngineError::ResourceNotFound(format!("trigger {id:?} does not exist"))
}

/// Ids are UUIDs; anything else cannot name a mapping.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

impl Engine {
    fn trigger_view(&self, t: TriggerRecord) -> TriggerView {
        let (name, qualifier) = split_qualified(&t.function);
        let function_arn = match qualifier {
            Some(q) => format!("{}:{q}", self.function_arn(name)),
            None => self.function_arn(name),
        };
        TriggerView {
            state: if t.enabled { "Enabled" } else { "Disabled" }.to_owned(),
            queue_arn: self.queue_arn(&t.queue),
            function_arn,
            trigger: t,
        }
    }

    /// Every stored mapping, oldest first.
    pub(crate) async fn list_trigger_records(&self) -> Result<Vec<TriggerRecord>, EngineError> {
        let mut out = Vec::new();
        for (_, entry) in self.inner.stores.kv.list(TRIGGER_PREFIX).await? {
            out.push(decode::<TriggerRecord>(&entry.value)?);
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Creates a mapping from a queue to a function; it starts polling when enabled (the
    /// default).
    pub async fn create_trigger(
        &self,
        actor: &str,
        req: CreateTriggerRequest,
    ) -> Result<TriggerView, EngineError> {
        let id = uuid::Uuid::new_v4().to_string();
        let record = req.into_record(id.clone(), now_ms())?;
        self.queue_record(&record.queue).await?;
        let (name, qualifier) = split_qualified(&record.function);
        let qualifier = qualifier
            .map(Qualifier::parse)
            .transpose()
            .map_err(|e| EngineError::invalid("function", e.message))?;
        self.resolve(name, qualifier.as_ref())?;
        self.inner
            .stores
            .kv
            .create(&trigger_key(&id), encode(&record)?)
            .await?;
        tracing::info!(trigger = %id, queue = %record.queue, function = %record.function, "trigger created");
        self.audit(
            actor,
            "trigger.create",
            Some(name),
            &format!("trigger {id}"),
            None,
            Some(&record),
        )
        .await;
        self.sync_trigger_poller(&id).await;
        Ok(self.trigger_view(record))
    }

    /// Every mapping, oldest first.
    pub async fn list_triggers(&self) -> Result<Vec<TriggerView>, EngineError> {
        Ok(self
            .list_trigger_records()
            .await?
            .into_iter()
            .map(|t| self.trigger_view(t))
            .collect())
    }

    async fn trigger_entry(&self, id: &str) -> Result<(TriggerRecord, u64), EngineError> {
        if !plausible_id(id) {
            return Err(trigger_not_found(id));
        }
        let entry = self
            .inner
            .stores
            .kv
            .get(&trigger_key(id))
            .await?
            .ok_or_else(|| trigger_not_found(id))?;
        Ok((decode(&entry.value)?, entry.revision))
    }

    /// One mapping.
    pub async fn get_trigger(&self, id: &str) -> Result<TriggerView, EngineError> {
        Ok(self.trigger_view(self.trigger_entry(id).await?.0))
    }

    /// Enables or disables a mapping. A disabled mapping leases nothing more once this
    /// returns; batches already in flight finish.
    pub async fn set_trigger_enabled(
        &self,
        actor: &str,
        id: &str,
        enabled: bool,
    ) -> Result<TriggerView, EngineError> {
        let (before, after) = loop {
            let (before, revision) = self.trigger_entry(id).await?;
            let mut after = before.clone();
            after.enabled = enabled;
            after.updated_at = now_ms();
            if before.enabled == enabled {
                break (before, None);
            }
            match self
                .inner
                .stores
                .kv
                .update(&trigger_key(id), encode(&after)?, revision)
                .await
            {
                Ok(_) => break (before, Some(after)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => return Err(trigger_not_found(id)),
                Err(e) => return Err(e.into()),
            }
        };
        self.sync_trigger_poller(id).await;
        let Some(after) = after else {
            return Ok(self.trigger_view(before));
        };
        let action = if enabled {
            "trigger.enable"
        } else {
            "trigger.disable"
        };
        tracing::info!(trigger = %id, enabled, "trigger changed");
        self.audit(
            actor,
            action,
            Some(split_qualified(&after.function).0),
            &format!("trigger {id}"),
            Some(&before),
            Some(&after),
        )
        .await;
        Ok(self.trigger_view(after))
    }

    /// Deletes a mapping; its poller stops leasing before this returns.
    pub async fn delete_trigger(&self, actor: &str, id: &str) -> Result<(), EngineError> {
        let (before, _) = self.trigger_entry(id).await?;
        match self.inner.stores.kv.delete(&trigger_key(id), None).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => return Err(trigger_not_found(id)),
            Err(e) => return Err(e.into()),
        }
        self.sync_trigger_poller(id).await;
        tracing::info!(trigger = %id, "trigger deleted");
        self.audit(
            actor,
            "trigger.delete",
            Some(split_qualified(&before.function).0),
            &format!("trigger {id}"),
            Some(&before),
            None,
        )
        .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(plausible_id("0b7c1e8e-7a0e-4a57-9a53-2f0d8c1e2b3a"));
        assert!(!plausible_id(""));
        assert!(!plausible_id("../x"));
        assert!(!plausible_id("esm/abc"));
    }
}
