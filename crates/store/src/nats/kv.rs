//! [`Kv`] on two KV buckets: `audit/…` keys in the audit bucket (a stream of its own, so the
//! ever-growing trail neither slows metadata listings nor shares their limits), every other
//! key in the metadata bucket.
//!
//! Revisions are the buckets' stream sequences: they grow with every write to the bucket, so
//! they order changes of one key and of keys in one bucket; an audit key's revision is not
//! comparable with a metadata key's.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::bucket::{Bucket, Expect};
use super::{keys, NatsStore};
use crate::{Entry, Kv, KvEvent, KvWatch, StoreError};

/// Keys kept in the audit bucket.
const AUDIT_PREFIX: &str = "audit/";

/// Retries of a delete whose key changed between the read and the write.
const DELETE_ATTEMPTS: usize = 16;

impl NatsStore {
    fn bucket_of(&self, key: &str) -> &Bucket {
        if key.starts_with(AUDIT_PREFIX) {
            &self.audit
        } else {
            &self.kv
        }
    }

    /// The buckets that may hold keys starting with `prefix`.
    fn buckets_for(&self, prefix: &str) -> Vec<&Bucket> {
        if prefix.starts_with(AUDIT_PREFIX) {
            vec![&self.audit]
        } else if AUDIT_PREFIX.starts_with(prefix) {
            vec![&self.kv, &self.audit]
        } else {
            vec![&self.kv]
        }
    }
}

/// The caller's key in a conflict, not its subject form.
fn rekey(err: StoreError, key: &str) -> StoreError {
    match err {
        StoreError::Conflict { reason, .. } => StoreError::Conflict {
            key: key.to_owned(),
            reason,
        },
        other => other,
    }
}

#[async_trait]
impl Kv for NatsStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .bucket_of(key)
            .get(&keys::path(key))
            .await?
            .map(|item| Entry {
                value: item.value,
                revision: item.revision,
            }))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64, StoreError> {
        self.bucket_of(key)
            .write(&keys::path(key), None, value, Expect::Absent)
            .await
            .map_err(|e| rekey(e, key))
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64, StoreError> {
        self.bucket_of(key)
            .write(&keys::path(key), None, value, Expect::Any)
            .await
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, StoreError> {
        self.bucket_of(key)
            .write(&keys::path(key), None, value, Expect::Revision(revision))
            .await
            .map_err(|e| rekey(e, key))
    }

    async fn delete(&self, key: &str, revision: Option<u64>) -> Result<(), StoreError> {
        let bucket = self.bucket_of(key);
        let subject = keys::path(key);
        for _ in 0..DELETE_ATTEMPTS {
            let Some(current) = bucket.get(&subject).await? else {
                return Err(StoreError::NotFound(key.to_owned()));
            };
            if let Some(want) = revision {
                if current.revision != want {
                    return Err(StoreError::Conflict {
                        key: key.to_owned(),
                        reason: format!("revision is {}, expected {want}", current.revision),
                    });
                }
            }
            // Conditional on what was read, so a deletion never hides a write it did not see.
            match bucket.delete(&subject, Some(current.revision)).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) if revision.is_none() => continue,
                Err(e) => return Err(rekey(e, key)),
            }
        }
        Err(StoreError::Conflict {
            key: key.to_owned(),
            reason: "kept changing while being deleted".into(),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Entry)>, StoreError> {
        let filter = keys::prefix_filter(prefix);
        let mut out = Vec::new();
        for bucket in self.buckets_for(prefix) {
            for item in bucket.scan(&filter, false).await? {
                let Some(key) = keys::unpath(&item.key) else {
                    tracing::warn!(key = %item.key, bucket = bucket.name(), "skipping a key not written by holactl");
                    continue;
                };
                if key.starts_with(prefix) {
                    out.push((
                        key,
                        Entry {
                            value: item.value,
                            revision: item.revision,
                        },
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn watch(&self, prefix: &str) -> Result<KvWatch, StoreError> {
        let filter = keys::prefix_filter(prefix);
        let mut streams = Vec::new();
        for bucket in self.buckets_for(prefix) {
            // Created before returning: every change after this call is delivered.
            streams.push(bucket.watch(&filter).await?.boxed());
        }
        let mut merged = futures_util::stream::select_all(streams);
        let prefix = prefix.to_owned();
        let (tx, rx) = mpsc::channel(crate::WATCH_BUFFER);
        let task = tokio::spawn(async move {
            while let Some(change) = merged.next().await {
                let (subject, revision, value) = match change {
                    Ok(change) => change,
                    Err(err) => {
                        tracing::warn!(error = %err, %prefix, "key/value watch failed; ending it");
                        return;
                    }
                };
                let Some(key) = keys::unpath(&subject) else {
                    continue;
                };
                if !key.starts_with(&prefix) {
                    continue;
                }
                let event = match value {
                    Some(value) => KvEvent::Put {
                        key,
                        entry: Entry { value, revision },
                    },
                    None => KvEvent::Delete { key, revision },
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(KvWatch::new(rx, task))
    }
}
