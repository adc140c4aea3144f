//! One KV bucket, used through the JetStream primitives under it.
//!
//! A bucket is a stream `KV_<name>` holding the last message of each subject `$KV.<name>.<key>`;
//! a message's stream sequence is the key's revision, and a publish carrying
//! `Nats-Expected-Last-Subject-Sequence` is a compare-and-set on it. Going one level below
//! async-nats' `kv::Store` gives what the store needs and the wrapper lacks: headers on
//! values (queue message state, execution index fields, read without the payload by a
//! headers-only scan), a prefix listing that ends when it has caught up, and one error kind for
//! every failed compare-and-set.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, context::PublishErrorKind, kv, stream};

use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::StoreError;

/// Header marking deletions (written by `kv::Store::delete` and by us).
const KV_OPERATION: &str = "KV-Operation";
/// Header the server sets on markers it writes itself (2.11+; harmless to check on 2.9).
const MARKER_REASON: &str = "Nats-Marker-Reason";
/// Compare-and-set on the subject's last sequence (0 = no message for the subject).
const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";

/// Longest a listing may take before the store is reported unavailable.
const SCAN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a scan that has delivered everything up to its end waits for more (see `scan`).
const SCAN_SETTLE: Duration = Duration::from_millis(250);

/// What a write expects of the key's current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    /// Anything.
    Any,
    /// No live value (never written, or deleted).
    Absent,
    /// This revision.
    Revision(u64),
}

/// A live value as read.
#[derive(Clone, Debug)]
pub(super) struct Item {
    /// The key (bucket-relative subject).
    pub key: String,
    /// Its revision.
    pub revision: u64,
    /// Headers written with it (empty map when none).
    pub headers: HeaderMap,
    /// The value (empty after a headers-only scan).
    pub value: Bytes,
}

impl Item {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.as_str())
    }
}

fn is_marker(headers: Option<&HeaderMap>) -> bool {
    headers.is_some_and(|h| {
        h.get(KV_OPERATION)
            .is_some_and(|v| v.as_str() == "DEL" || v.as_str() == "PURGE")
            || h.get(MARKER_REASON).is_some()
    })
}

/// A KV bucket.
#[derive(Clone)]
pub(super) struct Bucket {
    store: kv::Store,
    js: jetstream::Context,
}

impl Bucket {
    /// Opens KV bucket `name`, creating it when missing (an existing bucket is used as it is:
    /// changing its settings is an operator's decision).
    ///
    /// The stream is created here with the layout async-nats' `create_key_value` would give it
    /// (`KV_<name>`, subjects `$KV.<name>.>`, one message per subject, rollups, direct gets,
    /// discard new) because that call first reads account fields nats-server 2.9 does not send.
    pub async fn open(
        js: &jetstream::Context,
        name: &str,
        description: &str,
        replicas: usize,
        max_age: Duration,
    ) -> Result<Bucket, StoreError> {
        let store = match js.get_key_value(name).await {
            Ok(store) => store,
            Err(_) => {
                let config = stream::Config {
                    name: format!("KV_{name}"),
                    description: Some(description.to_owned()),
                    subjects: vec![format!("$KV.{name}.>")],
                    max_messages_per_subject: 1,
                    max_age,
                    storage: stream::StorageType::File,
                    num_replicas: replicas,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    ..Default::default()
                };
                // Another node may create it at the same time: an identical create succeeds.
                if let Err(create) = js.create_stream(config).await {
                    tracing::debug!(error = %create, bucket = name, "creating a bucket failed; opening it");
                }
                js.get_key_value(name)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("opening bucket {name}: {e}")))?
            }
        };
        Ok(Bucket {
            store,
            js: js.clone(),
        })
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.store.name
    }

    fn subject(&self, key: &str) -> String {
        format!("{}{key}", self.store.prefix)
    }

    fn unavailable(&self, what: &str, err: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!("{what} in bucket {}: {err}", self.store.name))
    }

    /// The live value of `key`, if any, with its headers.
    pub async fn get(&self, key: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .last(key)
            .await?
            .filter(|(_, marker)| !marker)
            .map(|(item, _)| item))
    }

    /// The key's last message and whether it is a deletion marker.
    async fn last(&self, key: &str) -> Result<Option<(Item, bool)>, StoreError> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        match self
            .store
            .stream
            .direct_get_last_for_subject(self.subject(key))
            .await
        {
            Ok(msg) => {
                let marker = is_marker(Some(&msg.headers));
                Ok(Some((
                    Item {
                        key: key.to_owned(),
                        revision: msg.sequence,
                        headers: msg.headers,
                        value: msg.payload,
                    },
                    marker,
                )))
            }
            Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.unavailable(&format!("reading {key}"), err)),
        }
    }

    /// Publishes `value` (and `headers`) under `key` if `expect` holds; the new revision.
    pub async fn write(
        &self,
        key: &str,
        headers: Option<HeaderMap>,
        value: Bytes,
        expect: Expect,
    ) -> Result<u64, StoreError> {
        let expected = match expect {
            Expect::Any => None,
            Expect::Revision(r) => Some(r),
            // A deleted key's subject still holds its marker: expect the marker's sequence.
            Expect::Absent => Some(match self.last(key).await? {
                None => 0,
                Some((item, true)) => item.revision,
                Some((_, false)) => return Err(conflict(key, "key already exists")),
            }),
        };
        self.publish(key, headers.unwrap_or_default(), value, expected)
            .await
    }

    /// Deletes `key` (at `revision` when given) by writing a deletion marker.
    /// [`StoreError::Conflict`] when the revision does not match.
    pub async fn delete(&self, key: &str, revision: Option<u64>) -> Result<u64, StoreError> {
        let mut headers = HeaderMap::new();
        headers.insert(KV_OPERATION, "DEL");
        self.publish(key, headers, Bytes::new(), revision).await
    }

    /// Deletes `key` as [`Bucket::delete`] does, then purges its subject up to that marker so
    /// nothing of it stays in the stream (a write after the marker is kept). For buckets
    /// nobody watches (queues): a watcher could miss the deletion, and scans would otherwise
    /// walk one marker per key ever deleted. A failed purge leaves the marker, which readers
    /// skip.
    pub async fn remove(&self, key: &str, revision: Option<u64>) -> Result<u64, StoreError> {
        let marker = self.delete(key, revision).await?;
        if let Err(e) = self
            .store
            .stream
            .purge()
            .filter(self.subject(key))
            .sequence(marker + 1)
            .await
        {
            tracing::debug!(error = %e, bucket = %self.store.name, key, "could not purge a deleted key");
        }
        Ok(marker)
    }

    async fn publish(
        &self,
        key: &str,
        mut headers: HeaderMap,
        value: Bytes,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        if let Some(seq) = expected {
            headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE, seq.to_string().as_str());
        }
        let result = match self
            .js
            .publish_with_headers(self.subject(key), headers, value)
            .await
        {
            Ok(ack) => ack.await,
            Err(err) => Err(err),
        };
        match result {
            Ok(ack) => Ok(ack.sequence),
            Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => Err(conflict(
                key,
                &format!("revision is not {}", expected.unwrap_or_default()),
            )),
            Err(err) => Err(self.unavailable(&format!("writing {key}"), err)),
        }
    }

    /// Every live value whose key matches `filter` (a bucket-relative subject filter), in no
    /// particular order. `headers_only` leaves values empty (cheap scans of big values).
    pub async fn scan(&self, filter: &str, headers_only: bool) -> Result<Vec<Item>, StoreError> {
        match tokio::time::timeout(SCAN_TIMEOUT, self.scan_inner(filter, headers_only)).await {
            Ok(result) => result,
            Err(_) => Err(self.unavailable(&format!("listing {filter}"), "timed out")),
        }
    }

    async fn scan_inner(&self, filter: &str, headers_only: bool) -> Result<Vec<Item>, StoreError> {
        let consumer = self
            .store
            .stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.js.client().new_inbox(),
                filter_subject: self.subject(filter),
                headers_only,
                replay_policy: consumer::ReplayPolicy::Instant,
                deliver_policy: consumer::DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(|e| self.unavailable(&format!("listing {filter}"), e))?;
        let mut out = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return Ok(out);
        }
        // nats-server 2.9 over-counts the pending messages of this consumer when a key it has
        // not delivered yet is overwritten during the scan (concurrent writers, e.g. several
        // nodes' schedulers): the last delivery then says one more is pending and none comes,
        // and the scan would wait for its timeout. So the scan also knows where its listing
        // ends: the last message matching the filter now (taken after the consumer, so every
        // key's value as of the consumer's start is at or before it, or superseded by a later
        // write that is delivered in sequence order). Once past it, the scan ends when nothing
        // more arrives for `SCAN_SETTLE`.
        let end = self
            .store
            .stream
            .direct_get_last_for_subject(self.subject(filter))
            .await
            .ok()
            .map(|m| m.sequence);
        let mut past_end = false;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| self.unavailable(&format!("listing {filter}"), e))?;
        loop {
            let next = if past_end {
                match tokio::time::timeout(SCAN_SETTLE, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            } else {
                messages.next().await
            };
            let Some(message) = next else { break };
            let message = message.map_err(|e| self.unavailable(&format!("listing {filter}"), e))?;
            let info = message
                .info()
                .map_err(|e| self.unavailable(&format!("listing {filter}"), e))?;
            let (revision, pending) = (info.stream_sequence, info.pending);
            if !is_marker(message.headers.as_ref()) {
                if let Some(key) = message.subject.strip_prefix(self.store.prefix.as_str()) {
                    out.push(Item {
                        key: key.to_owned(),
                        revision,
                        headers: message.headers.clone().unwrap_or_default(),
                        value: message.payload.clone(),
                    });
                }
            }
            if pending == 0 {
                break;
            }
            past_end |= end.is_some_and(|end| revision >= end);
        }
        Ok(out)
    }

    /// Changes of keys matching `filter` from now on: `(key, revision, Some(value))` for a
    /// write, `None` for a deletion; ends when the server connection gives up.
    pub async fn watch(
        &self,
        filter: &str,
    ) -> Result<
        impl futures_util::Stream<Item = Result<(String, u64, Option<Bytes>), StoreError>>,
        StoreError,
    > {
        let watch = self
            .store
            .watch(filter)
            .await
            .map_err(|e| self.unavailable(&format!("watching {filter}"), e))?;
        let bucket = self.store.name.clone();
        Ok(watch.map(move |entry| match entry {
            Ok(entry) => {
                let value = match entry.operation {
                    kv::Operation::Put => Some(entry.value),
                    kv::Operation::Delete | kv::Operation::Purge => None,
                };
                Ok((entry.key, entry.revision, value))
            }
            Err(e) => Err(StoreError::Unavailable(format!(
                "watching bucket {bucket}: {e}"
            ))),
        }))
    }
}

fn conflict(key: &str, reason: &str) -> StoreError {
    StoreError::Conflict {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}
