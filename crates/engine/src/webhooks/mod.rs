//! Signed webhooks: a public URL `/hooks/{id}` whose deliveries are verified against a shared
//! secret and turned into asynchronous invocations.
//!
//! The secret is sealed under the master key (see [`crate::secrets`]), bound to the webhook's
//! id, and never returned.
//!
//! # Layout
//! - this file: create, get, list, delete, rotate the secret; the stored records.
//! - [`verify`]: each scheme's signature check, pure.
//! - [`receive`]: one delivery: verify, refuse replays, build the event, queue the invocation;
//!   the janitor that forgets old deliveries.
//!
//! # Storage
//! - `webhooks/{name}`: the record, with the sealed secret.
//! - `webhook-ids/{id}`: the name of the webhook with that id (the URL names the id).
//! - `webhook-seen/{id}/{key}`: deliveries received, until a replay of them would be refused
//!   by the timestamp anyway.

pub mod receive;
pub mod verify;

use holactl_store::StoreError;
use holactl_types::version::Qualifier;
use holactl_types::webhook::{
    validate_tolerance, validate_webhook_name, validate_webhook_secret, CreateWebhookRequest,
    WebhookScheme, WebhookView, DEFAULT_WEBHOOK_TOLERANCE_S,
};
use serde::{Deserialize, Serialize};

use crate::functions::{decode, encode};
use crate::secrets::{seal, unseal, Sealed};
use crate::{now_ms, Engine, EngineError};

pub use receive::{Delivery, WebhookError, WebhookTarget};
pub use verify::SignatureError;

const WEBHOOK_PREFIX: &str = "webhooks/";
const ID_PREFIX: &str = "webhook-ids/";
pub(crate) const SEEN_PREFIX: &str = "webhook-seen/";

/// A webhook as stored.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredWebhook {
    pub name: String,
    pub id: String,
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    pub scheme: WebhookScheme,
    pub tolerance_s: u32,
    pub secret_version: u32,
    pub created_at: i64,
    pub updated_at: i64,
    pub secret: Sealed,
}

/// What `webhook-ids/{id}` holds.
#[derive(Clone, Serialize, Deserialize)]
struct IdIndex {
    name: String,
}

fn webhook_key(name: &str) -> String {
    format!("{WEBHOOK_PREFIX}{name}")
}

fn id_key(id: &str) -> String {
    format!("{ID_PREFIX}{id}")
}

/// The associated data of a webhook's sealed secret: a ciphertext cannot be moved to another
/// webhook.
fn secret_aad(id: &str) -> Vec<u8> {
    format!("webhook/{id}").into_bytes()
}

/// Whether `id` has the shape of a webhook id (32 lower-case hex digits).
pub(crate) fn is_webhook_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn not_found(name: &str) -> EngineError {
    EngineError::ResourceNotFound(format!("webhook {name:?} does not exist"))
}

impl StoredWebhook {
    fn view(&self) -> WebhookView {
        WebhookView {
            name: self.name.clone(),
            id: self.id.clone(),
            path: format!("/hooks/{}", self.id),
            function: self.function.clone(),
            qualifier: self.qualifier.clone(),
            scheme: self.scheme,
            tolerance_s: self.tolerance_s,
            secret_version: self.secret_version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl Engine {
    /// Creates a webhook for an existing function (and qualifier).
    pub async fn create_webhook(
        &self,
        actor: &str,
        req: CreateWebhookRequest,
    ) -> Result<WebhookView, EngineError> {
        validate_webhook_name(&req.name)?;
        validate_webhook_secret(&req.secret)?;
        let tolerance_s = req.tolerance_s.unwrap_or(DEFAULT_WEBHOOK_TOLERANCE_S);
        validate_tolerance(tolerance_s)?;
        let qualifier = req.qualifier.as_deref().map(Qualifier::parse).transpose()?;
        self.resolve(&req.function, qualifier.as_ref())?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let stored = StoredWebhook {
            name: req.name.clone(),
            id: id.clone(),
            function: req.function.clone(),
            qualifier: qualifier.as_ref().map(ToString::to_string),
            scheme: req.scheme,
            tolerance_s,
            secret_version: 1,
            created_at: now,
            updated_at: now,
            secret: seal(
                &self.inner.master_key,
                &secret_aad(&id),
                req.secret.as_bytes(),
            )?,
        };
        let kv = &self.inner.stores.kv;
        match kv.create(&webhook_key(&req.name), encode(&stored)?).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict(format!(
                    "webhook {:?} already exists",
                    req.name
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let index = IdIndex {
            name: req.name.clone(),
        };
        if let Err(e) = kv.create(&id_key(&id), encode(&index)?).await {
            let _ = kv.delete(&webhook_key(&req.name), None).await;
            return Err(e.into());
        }
        let view = stored.view();
        tracing::info!(webhook = %view.name, function = %view.function, scheme = %view.scheme, "webhook created");
        self.audit(
            actor,
            "webhook.create",
            Some(&view.function),
            &format!("webhook {}", view.name),
            None,
            Some(&view),
        )
        .await;
        Ok(view)
    }

    async fn stored_webhook(
        &self,
        name: &str,
    ) -> Result<Option<(StoredWebhook, u64)>, EngineError> {
        validate_webhook_name(name)?;
        match self.inner.stores.kv.get(&webhook_key(name)).await? {
            Some(e) => Ok(Some((decode(&e.value)?, e.revision))),
            None => Ok(None),
        }
    }

    /// One webhook (never its secret).
    pub async fn get_webhook(&self, name: &str) -> Result<WebhookView, EngineError> {
        self.stored_webhook(name)
            .await?
            .map(|(s, _)| s.view())
            .ok_or_else(|| not_found(name))
    }

    /// Every webhook, by name.
    pub async fn list_webhooks(&self) -> Result<Vec<WebhookView>, EngineError> {
        let mut out = Vec::new();
        for (_, e) in self.inner.stores.kv.list(WEBHOOK_PREFIX).await? {
            out.push(decode::<StoredWebhook>(&e.value)?.view());
        }
        Ok(out)
    }

    /// Deletes a webhook: its URL answers 404 at once.
    pub async fn delete_webhook(&self, actor: &str, name: &str) -> Result<(), EngineError> {
        let (stored, revision) = self
            .stored_webhook(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let kv = &self.inner.stores.kv;
        // The index first: once it is gone, deliveries no longer find the webhook.
        match kv.delete(&id_key(&stored.id), None).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match kv.delete(&webhook_key(name), Some(revision)).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict(format!(
                    "webhook {name:?} changed concurrently; try again"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        self.forget_deliveries(&stored.id, None).await;
        let view = stored.view();
        tracing::info!(webhook = %name, "webhook deleted");
        self.audit(
            actor,
            "webhook.delete",
            Some(&view.function),
            &format!("webhook {name}"),
            Some(&view),
            None,
        )
        .await;
        Ok(())
    }

    /// Replaces a webhook's secret; deliveries signed with the old one are refused from now.
    pub async fn rotate_webhook_secret(
        &self,
        actor: &str,
        name: &str,
        secret: &str,
    ) -> Result<WebhookView, EngineError> {
        validate_webhook_secret(secret)?;
        let (before, revision) = self
            .stored_webhook(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let mut after = before.clone();
        after.secret = seal(
            &self.inner.master_key,
            &secret_aad(&before.id),
            secret.as_bytes(),
        )?;
        after.secret_version += 1;
        after.updated_at = now_ms();
        match self
            .inner
            .stores
            .kv
            .update(&webhook_key(name), encode(&after)?, revision)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict(format!(
                    "webhook {name:?} changed concurrently; try again"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let view = after.view();
        tracing::info!(webhook = %name, version = view.secret_version, "webhook secret rotated");
        self.audit(
            actor,
            "webhook.rotate_secret",
            Some(&view.function),
            &format!("webhook {name}"),
            Some(&before.view()),
            Some(&view),
        )
        .await;
        Ok(view)
    }

    /// The webhook a URL names, if any.
    pub async fn webhook_target(&self, id: &str) -> Result<Option<WebhookTarget>, EngineError> {
        if !is_webhook_id(id) {
            return Ok(None);
        }
        let kv = &self.inner.stores.kv;
        let Some(index) = kv.get(&id_key(id)).await? else {
            return Ok(None);
        };
        let index: IdIndex = decode(&index.value)?;
        let Some(entry) = kv.get(&webhook_key(&index.name)).await? else {
            return Ok(None);
        };
        let stored: StoredWebhook = decode(&entry.value)?;
        // A stale index (the name was deleted and made again) names another webhook.
        if stored.id != id {
            return Ok(None);
        }
        Ok(Some(WebhookTarget { stored }))
    }

    /// The plaintext secret of a webhook.
    pub(crate) fn webhook_secret(&self, stored: &StoredWebhook) -> Result<Vec<u8>, EngineError> {
        unseal(
            &self.inner.master_key,
            &secret_aad(&stored.id),
            &stored.secret,
        )
        .map_err(|_| {
            EngineError::Internal(format!(
                "the secret of webhook {:?} cannot be decrypted with this master key",
                stored.name
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_any_lookup() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        assert!(is_webhook_id(&id));
        assert!(!is_webhook_id(&id.to_uppercase()));
        assert!(!is_webhook_id("../../functions/x"));
        assert!(!is_webhook_id(""));
        assert!(!is_webhook_id(&format!("{id}0")));
    }

    #[test]
    fn views_hold_no_secret() {
        let key = [3u8; 32];
        let stored = StoredWebhook {
            name: "gh".into(),
            id: "0".repeat(32),
            function: "f".into(),
            qualifier: None,
            scheme: WebhookScheme::Github,
            tolerance_s: 300,
            secret_version: 1,
            created_at: 1,
            updated_at: 1,
            secret: seal(&key, &secret_aad(&"0".repeat(32)), b"topsecret").unwrap(),
        };
        let view = serde_json::to_string(&stored.view()).unwrap();
        assert!(!view.contains("topsecret"));
        assert!(!view.contains(&stored.secret.ciphertext));
        assert!(view.contains(&format!("/hooks/{}", "0".repeat(32))));
        let on_disk = String::from_utf8(encode(&stored).unwrap().to_vec()).unwrap();
        assert!(!on_disk.contains("topsecret"));
    }
}
