//! One webhook delivery: verify its signature, refuse a replay, wrap the request in an
//! API-Gateway-v2-like event and queue it as an asynchronous invocation.
//!
//! Replays are recognised by a key per delivery (see [`super::verify::Verified`]) remembered
//! under `webhook-seen/{id}/{key}` until the signature would be refused anyway; a janitor
//! forgets expired keys.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use holactl_store::{Kv, StoreError};
use holactl_types::limits::MAX_ASYNC_PAYLOAD_BYTES;
use holactl_types::version::Qualifier;
use holactl_types::{ErrorCode, ExecutionRecord, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::verify::{verify, SignatureError};
use super::{StoredWebhook, SEEN_PREFIX};
use crate::functions::{decode, encode};
use crate::metrics::WebhookLabels;
use crate::{now_ms, AsyncRequest, Engine, EngineError};

/// How often the janitor forgets expired delivery keys.
const JANITOR_PERIOD: Duration = Duration::from_secs(60);

/// The webhook a `/hooks/{id}` URL names, found before the body is read.
pub struct WebhookTarget {
    pub(crate) stored: StoredWebhook,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("name", &self.stored.name)
            .finish_non_exhaustive()
    }
}

impl WebhookTarget {
    /// The webhook's name.
    pub fn name(&self) -> &str {
        &self.stored.name
    }
}

/// A delivery as the server hands it over.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    /// HTTP method.
    pub method: String,
    /// The request path (`/hooks/{id}`).
    pub path: String,
    /// The query string, without `?`.
    pub raw_query: String,
    /// Headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, exactly as received (the signature covers these bytes).
    pub body: Bytes,
    /// The peer's address.
    pub source_ip: Option<String>,
}

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Missing, malformed, wrong or expired signature (`UNAUTHORIZED`, counted).
    #[error("invalid webhook signature: {0}")]
    Signature(#[from] SignatureError),
    /// The delivery was received before (`CONFLICT`).
    #[error("this delivery was already received; replay refused")]
    Replay,
    /// Queueing the invocation failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl WebhookError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            WebhookError::Signature(_) => ErrorCode::Unauthorized,
            WebhookError::Replay => ErrorCode::Conflict,
            WebhookError::Engine(e) => e.code(),
        }
    }
}

/// A remembered delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Seen {
    /// When it was received (epoch ms).
    at: i64,
    /// Until when a replay of it is refused (epoch ms).
    until: i64,
}

fn seen_key(id: &str, replay_key: &str) -> String {
    format!("{SEEN_PREFIX}{id}/{replay_key}")
}

/// Records the delivery under `key` until `until`; false when it is already recorded and not
/// expired (a replay).
pub(crate) async fn claim_delivery(
    kv: &dyn Kv,
    key: &str,
    now: i64,
    until: i64,
) -> Result<bool, EngineError> {
    let bytes = encode(&Seen { at: now, until })?;
    for _ in 0..3 {
        match kv.create(key, bytes.clone()).await {
            Ok(_) => return Ok(true),
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(existing) = kv.get(key).await? else {
            continue;
        };
        // An unreadable entry is treated as expired rather than blocking deliveries forever.
        let live = decode::<Seen>(&existing.value).is_ok_and(|s| s.until > now);
        if live {
            return Ok(false);
        }
        match kv.update(key, bytes.clone(), existing.revision).await {
            Ok(_) => return Ok(true),
            // Another request took the expired key first: this one is its replay.
            Err(StoreError::Conflict { .. }) => return Ok(false),
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

/// Forgets delivery keys expired at `now`; returns how many.
pub(crate) async fn expire_deliveries(kv: &dyn Kv, now: i64) -> Result<usize, EngineError> {
    let mut removed = 0;
    for (key, entry) in kv.list(SEEN_PREFIX).await? {
        let expired = decode::<Seen>(&entry.value).map_or(true, |s| s.until <= now);
        if expired && kv.delete(&key, Some(entry.revision)).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The event the function gets: API Gateway's HTTP API (payload format 2.0) shape, plus
/// `webhook` naming the webhook and its scheme.
pub(crate) fn build_event(
    stored: &StoredWebhook,
    delivery: &Delivery,
    request_id: &str,
    now: i64,
) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for (name, value) in &delivery.headers {
        // Repeated headers are joined with commas, as API Gateway does.
        match headers.get_mut(name) {
            Some(serde_json::Value::String(prev)) => {
                prev.push(',');
                prev.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), json!(value));
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(&delivery.body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&delivery.body),
            true,
        ),
    };
    let user_agent = super::verify::header(&delivery.headers, "user-agent").unwrap_or("");
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": delivery.path,
        "rawQueryString": delivery.raw_query,
        "headers": headers,
        "body": body,
        "isBase64Encoded": is_base64,
        "requestContext": {
            "apiId": stored.id,
            "http": {
                "method": delivery.method,
                "path": delivery.path,
                "protocol": "HTTP/1.1",
                "sourceIp": delivery.source_ip.as_deref().unwrap_or(""),
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": now,
        },
        "webhook": {
            "name": stored.name,
            "scheme": stored.scheme,
        },
    })
}

impl Engine {
    /// Verifies a delivery and queues the invocation; answers the pending execution.
    pub async fn receive_webhook(
        &self,
        target: &WebhookTarget,
        delivery: Delivery,
    ) -> Result<ExecutionRecord, WebhookError> {
        let stored = &target.stored;
        if delivery.body.len() > MAX_ASYNC_PAYLOAD_BYTES {
            return Err(EngineError::PayloadTooLarge {
                what: "webhook body",
                size: delivery.body.len(),
                limit: MAX_ASYNC_PAYLOAD_BYTES,
            }
            .into());
        }
        let secret = self.webhook_secret(stored)?;
        let now = now_ms();
        let verified = match verify(
            stored.scheme,
            &secret,
            &delivery.headers,
            &delivery.body,
            now,
            stored.tolerance_s,
        ) {
            Ok(v) => v,
            Err(e) => {
                self.inner
                    .metrics
                    .webhook_signature_failures
                    .get_or_create(&WebhookLabels {
                        webhook: stored.name.clone(),
                        reason: e.reason().to_owned(),
                    })
                    .inc();
                tracing::warn!(webhook = %stored.name, source = ?delivery.source_ip, reason = %e, "webhook delivery refused");
                return Err(e.into());
            }
        };
        let seen = seen_key(&stored.id, &verified.replay_key);
        let kv = self.inner.stores.kv.as_ref();
        if !claim_delivery(kv, &seen, now, verified.remember_until_ms).await? {
            tracing::warn!(webhook = %stored.name, source = ?delivery.source_ip, "webhook replay refused");
            return Err(WebhookError::Replay);
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let event = build_event(stored, &delivery, &request_id, now);
        let payload = encode(&event)?;
        let qualifier = stored
            .qualifier
            .as_deref()
            .map(Qualifier::parse)
            .transpose()
            .map_err(EngineError::from)?;
        let queued = self
            .invoke_async(
                &stored.function,
                AsyncRequest {
                    payload,
                    qualifier,
                    trigger: Trigger::Webhook,
                    idempotency_key: Some(format!("webhook-{}-{}", stored.id, verified.replay_key)),
                },
            )
            .await;
        match queued {
            Ok(record) => {
                tracing::info!(webhook = %stored.name, execution = %record.id, "webhook delivery accepted");
                Ok(record)
            }
            Err(e) => {
                // Not queued: the sender's retry of this very delivery must not look like a
                // replay.
                let _ = kv.delete(&seen, None).await;
                Err(e.into())
            }
        }
    }

    /// Forgets the deliveries of webhook `id` (all of them, or one key).
    pub(crate) async fn forget_deliveries(&self, id: &str, replay_key: Option<&str>) {
        let kv = &self.inner.stores.kv;
        if let Some(key) = replay_key {
            let _ = kv.delete(&seen_key(id, key), None).await;
            return;
        }
        if let Ok(entries) = kv.list(&format!("{SEEN_PREFIX}{id}/")).await {
            for (key, _) in entries {
                let _ = kv.delete(&key, None).await;
            }
        }
    }

    /// Starts the task that forgets expired delivery keys.
    pub(crate) fn start_webhook_janitor(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(JANITOR_PERIOD);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                match expire_deliveries(inner.stores.kv.as_ref(), now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(forgotten = n, "expired webhook deliveries forgotten"),
                    Err(e) => tracing::warn!(error = %e, "cannot expire webhook deliveries"),
                }
            }
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::seal;
    use holactl_types::webhook::WebhookScheme;

    fn kv() -> (tempfile::TempDir, std::sync::Arc<dyn Kv>) {
        let dir = tempfile::tempdir().unwrap();
        let stores = holactl_store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        (dir, stores.kv)
    }

    #[tokio::test]
    async fn replays_are_refused_until_the_key_expires() {
        let (_dir, kv) = kv();
        let key = seen_key(&"a".repeat(32), "k1");
        assert!(claim_delivery(kv.as_ref(), &key, 1_000, 5_000)
            .await
            .unwrap());
        assert!(!claim_delivery(kv.as_ref(), &key, 2_000, 6_000)
            .await
            .unwrap());
        assert!(!claim_delivery(kv.as_ref(), &key, 4_999, 9_000)
            .await
            .unwrap());
        // Expired: the same key is a new delivery again (its timestamp check refuses the old
        // signature by then).
        assert!(claim_delivery(kv.as_ref(), &key, 5_000, 9_000)
            .await
            .unwrap());
        assert!(!claim_delivery(kv.as_ref(), &key, 8_000, 9_000)
            .await
            .unwrap());
        // Another key is independent.
        let other = seen_key(&"a".repeat(32), "k2");
        assert!(claim_delivery(kv.as_ref(), &other, 8_000, 9_000)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn the_janitor_forgets_only_expired_keys() {
        let (_dir, kv) = kv();
        let id = "b".repeat(32);
        claim_delivery(kv.as_ref(), &seen_key(&id, "old"), 0, 1_000)
            .await
            .unwrap();
        claim_delivery(kv.as_ref(), &seen_key(&id, "new"), 0, 10_000)
            .await
            .unwrap();
        assert_eq!(expire_deliveries(kv.as_ref(), 5_000).await.unwrap(), 1);
        let left: Vec<String> = kv
            .list(SEEN_PREFIX)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, [seen_key(&id, "new")]);
        assert_eq!(expire_deliveries(kv.as_ref(), 10_000).await.unwrap(), 1);
        assert!(kv.list(SEEN_PREFIX).await.unwrap().is_empty());
    }

    fn stored() -> StoredWebhook {
        StoredWebhook {
            name: "gh".into(),
            id: "c".repeat(32),
            function: "f".into(),
            qualifier: None,
            scheme: WebhookScheme::Github,
            tolerance_s: 300,
            secret_version: 1,
            created_at: 0,
            updated_at: 0,
            secret: seal(&[1u8; 32], b"x", b"s").unwrap(),
        }
    }

    #[test]
    fn events_carry_the_original_body() {
        let delivery = Delivery {
            method: "POST".into(),
            path: format!("/hooks/{}", "c".repeat(32)),
            raw_query: "a=1".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-multi".into(), "a".into()),
                ("x-multi".into(), "b".into()),
                ("user-agent".into(), "GitHub-Hookshot/1".into()),
            ],
            body: Bytes::from_static(br#"{"action":"opened"}"#),
            source_ip: Some("192.0.2.1".into()),
        };
        let e = build_event(&stored(), &delivery, "req-1", 42);
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawPath"], format!("/hooks/{}", "c".repeat(32)));
        assert_eq!(e["rawQueryString"], "a=1");
        assert_eq!(e["body"], r#"{"action":"opened"}"#);
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["headers"]["x-multi"], "a,b");
        assert_eq!(e["headers"]["content-type"], "application/json");
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "192.0.2.1");
        assert_eq!(
            e["requestContext"]["http"]["userAgent"],
            "GitHub-Hookshot/1"
        );
        assert_eq!(e["requestContext"]["requestId"], "req-1");
        assert_eq!(e["requestContext"]["timeEpoch"], 42);
        assert_eq!(e["webhook"], json!({"name": "gh", "scheme": "github"}));

        let binary = Delivery {
            body: Bytes::from_static(b"\xff\x00\x01"),
            ..delivery
        };
        let e = build_event(&stored(), &binary, "req-2", 42);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "/wAB");
    }

    #[test]
    fn errors_map_to_stable_codes() {
        assert_eq!(
            WebhookError::Signature(SignatureError::Mismatch).code(),
            ErrorCode::Unauthorized
        );
        assert_eq!(WebhookError::Replay.code(), ErrorCode::Conflict);
        assert_eq!(
            WebhookError::Engine(EngineError::FunctionNotFound("f".into())).code(),
            ErrorCode::FunctionNotFound
        );
    }
}
