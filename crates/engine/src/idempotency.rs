//! Idempotency keys: the first request with a key starts an execution; the same key while it
//! runs is refused with `CONFLICT` ("execution already in progress"); after it ended, the
//! same execution is returned, for 24 hours.

use bytes::Bytes;
use holactl_store::StoreError;
use holactl_types::limits::{IDEMPOTENCY_TTL_S, MAX_IDEMPOTENCY_KEY_LEN};
use holactl_types::ExecutionRecord;
use serde::{Deserialize, Serialize};

use crate::functions::{decode, encode};
use crate::{now_ms, Engine, EngineError};

const PREFIX: &str = "idempotency/";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Claim {
    execution_id: String,
    created_at: i64,
    done: bool,
}

/// The outcome of presenting a key.
pub(crate) enum Begin {
    /// First use: run a new execution with this id.
    New(String),
    /// Seen before and finished: this is its execution.
    Existing(Box<ExecutionRecord>),
}

fn key_of(function: &str, key: &str) -> String {
    format!(
        "{PREFIX}{function}/{}",
        holactl_store::sha256_hex(key.as_bytes())
    )
}

/// Checks an idempotency key's shape.
pub fn validate_key(key: &str) -> Result<(), EngineError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || key.chars().any(char::is_control) {
        return Err(EngineError::invalid(
            "idempotency_key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable characters"),
        ));
    }
    Ok(())
}

impl Engine {
    /// Claims `key` for a new execution, or reports the execution that already has it.
    pub(crate) async fn idempotency_begin(
        &self,
        function: &str,
        key: &str,
    ) -> Result<Begin, EngineError> {
        validate_key(key)?;
        let kv = &self.inner.stores.kv;
        let store_key = key_of(function, key);
        for _ in 0..3 {
            let claim = Claim {
                execution_id: uuid::Uuid::new_v4().to_string(),
                created_at: now_ms(),
                done: false,
            };
            match kv.create(&store_key, encode(&claim)?).await {
                Ok(_) => return Ok(Begin::New(claim.execution_id)),
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(entry) = kv.get(&store_key).await? else {
                continue;
            };
            let existing: Claim = decode(&entry.value)?;
            let expired = now_ms() - existing.created_at > (IDEMPOTENCY_TTL_S as i64) * 1000;
            if expired {
                // Reuse the key for a new execution.
                match kv.update(&store_key, encode(&claim)?, entry.revision).await {
                    Ok(_) => return Ok(Begin::New(claim.execution_id)),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let record = self
                .inner
                .stores
                .executions
                .get(&existing.execution_id)
                .await?;
            if record.is_none() && existing.done {
                // Refused before it ran (throttled, store error): the key is free again.
                match kv.update(&store_key, encode(&claim)?, entry.revision).await {
                    Ok(_) => return Ok(Begin::New(claim.execution_id)),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            match record {
                Some(r) if existing.done || r.status.is_final() => {
                    return Ok(Begin::Existing(Box::new(r)))
                }
                _ => {
                    return Err(EngineError::Conflict(format!(
                        "execution already in progress for this idempotency key ({})",
                        existing.execution_id
                    )))
                }
            }
        }
        Err(EngineError::Conflict(
            "idempotency key is being claimed concurrently; try again".into(),
        ))
    }

    /// Marks the execution holding `key` as ended.
    pub(crate) async fn idempotency_finish(&self, function: &str, key: &str) {
        let kv = &self.inner.stores.kv;
        let store_key = key_of(function, key);
        if let Ok(Some(entry)) = kv.get(&store_key).await {
            if let Ok(mut claim) = decode::<Claim>(&entry.value) {
                claim.done = true;
                if let Ok(bytes) = encode(&claim) {
                    let _ = kv.update(&store_key, bytes, entry.revision).await;
                }
            }
        }
    }

    /// Forgets keys older than their 24 hours.
    pub(crate) async fn idempotency_expire(&self) {
        let kv = &self.inner.stores.kv;
        let Ok(entries) = kv.list(PREFIX).await else {
            return;
        };
        let cutoff = now_ms() - (IDEMPOTENCY_TTL_S as i64) * 1000;
        for (key, entry) in entries {
            if decode::<Claim>(&entry.value).is_ok_and(|c| c.created_at < cutoff) {
                let _ = kv.delete(&key, Some(entry.revision)).await;
            }
        }
    }
}

/// Placeholder body of a replayed synchronous answer whose result was not kept.
pub(crate) fn replay_body(record: &ExecutionRecord) -> Bytes {
    match &record.result {
        Some(raw) => Bytes::from(raw.get().to_owned()),
        None => Bytes::from(
            serde_json::json!({
                "errorType": record.error.as_ref().map_or("Unknown", |e| e.error_type.as_str()),
                "errorMessage": record.error.as_ref().map_or("result not kept", |e| e.message.as_str()),
            })
            .to_string(),
        ),
    }
}
