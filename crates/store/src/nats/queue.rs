//! [`WorkQueue`] on JetStream: one compare-and-set record per message in a KV bucket.
//!
//! # Why not a JetStream work-queue consumer
//! A pull consumer on a work-queue stream (explicit ack, `ack_wait`, `nak` with delay,
//! `max_deliver`, in-progress heartbeats) runs every clock on the *server*: a message becomes
//! deliverable again when the server's `ack_wait` has passed, a `nak` delay counts on the
//! server's clock, and nothing can be enqueued "not before" a given time. The [`WorkQueue`]
//! contract is driven by the caller's clock instead (`lease(now)`, `retry(not_before)`,
//! `depth(now)`; the conformance suite moves time by hand), and it needs answers a consumer
//! does not give: enqueue idempotent by message id, removal of a queued message by id
//! (cancellation), ready/delayed/in-flight counts per queue, attempt counts that restart on a
//! replay. Emulating those beside a consumer would mean a second source of truth next to the
//! stream, and a suite that passes only with real sleeps. So the queue is state we own, kept
//! where JetStream gives the one primitive that makes it safe across nodes: compare-and-set on
//! a key's revision.
//!
//! The consumer features map onto the contract as the engine uses it: `ack_wait` = the lease
//! (`lease_ms`, the function's timeout plus a margin), in-progress heartbeats = `extend`,
//! `nak` with backoff = `retry(not_before)`, `max_deliver` → DLQ = `attempts` checked by the
//! engine, then `dead_letter` into the dead-letter bucket (max age 14 days).
//!
//! # Layout
//! - Bucket `<ns>_queue`, key `<queue tokens>.==.<id token>` (see `keys`), value = the payload,
//!   header `Hola-Message` = `{"e": enqueued_at, "v": visible_at, "a": attempts, "l": leased,
//!   "t": lease token}`. State lives in a header so listings (`lease`, `depth`) scan headers
//!   only, never payloads.
//! - `lease` scans the queue's headers, takes the visible ones oldest first and claims each by
//!   a write conditional on the revision it read (attempts + 1, `visible_at = now + lease`, a
//!   fresh token), a few at a time. Of two nodes racing for a message exactly one write
//!   succeeds; the other moves on to the next candidate. The rest of a scan's candidates serve
//!   the next leases for up to a second (see `Candidates`), so a steady drain does not scan
//!   the whole queue for every message. A lease that runs out makes the message visible again:
//!   redelivery needs no timer anywhere.
//! - `extend`, `ack`, `retry`, `dead_letter` re-read the message and act only while the token
//!   still matches, again conditionally on the revision read.
//! - Dead letters: bucket `<ns>_dead` (max age = the DLQ retention, 14 days by default), same
//!   keys; value = one JSON line (attempts, times, reason) then the payload, header
//!   `Hola-Died-At`. Dead-lettering writes the dead record first and then removes the live
//!   message conditionally, undoing the dead record when that fails: a crash in between leaves
//!   the message in both places (it is redelivered; the replay of a duplicate is a no-op),
//!   never in neither.
//!
//! Costs: a lease or a depth reads every message header of the queue (one ordered consumer),
//! so they grow with the backlog; fine for the thousands of messages an async queue holds,
//! not for millions. Writes are acknowledged by JetStream (a majority of replicas).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::bucket::{Expect, Item};
use super::{keys, NatsStore};
use crate::{
    DeadMessage, Death, Leased, NewMessage, QueueDepth, StoreError, StoredMessage, WorkQueue,
};

const STATE_HEADER: &str = "Hola-Message";
const DIED_AT_HEADER: &str = "Hola-Died-At";
/// Re-reads of a message whose revision moved under a lease holder's write.
const CAS_ATTEMPTS: usize = 8;

/// A live message's state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct State {
    #[serde(rename = "e")]
    enqueued_at: i64,
    #[serde(rename = "v")]
    visible_at: i64,
    #[serde(rename = "a")]
    attempts: u32,
    #[serde(rename = "l")]
    leased: bool,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl State {
    fn headers(&self) -> Result<HeaderMap, StoreError> {
        let json = serde_json::to_string(self).map_err(StoreError::unavailable)?;
        let mut h = HeaderMap::new();
        h.insert(STATE_HEADER, json.as_str());
        Ok(h)
    }

    fn of(item: &Item) -> Option<State> {
        serde_json::from_str(item.header(STATE_HEADER)?).ok()
    }
}

/// A dead message's facts (the JSON line before its payload).
#[derive(Debug, Serialize, Deserialize)]
struct Dead {
    attempts: u32,
    enqueued_at: i64,
    died_at: i64,
    reason: String,
}

fn encode_dead(dead: &Dead, payload: &[u8]) -> Result<(HeaderMap, Bytes), StoreError> {
    let mut value = serde_json::to_vec(dead).map_err(StoreError::unavailable)?;
    value.push(b'\n');
    value.extend_from_slice(payload);
    let mut h = HeaderMap::new();
    h.insert(DIED_AT_HEADER, dead.died_at.to_string().as_str());
    Ok((h, Bytes::from(value)))
}

fn decode_dead(item: &Item, queue: &str, id: &str) -> Option<DeadMessage> {
    let nl = item.value.iter().position(|&b| b == b'\n')?;
    let dead: Dead = serde_json::from_slice(&item.value[..nl]).ok()?;
    Some(DeadMessage {
        id: id.to_owned(),
        queue: queue.to_owned(),
        payload: item.value.slice(nl + 1..),
        attempts: dead.attempts,
        enqueued_at: dead.enqueued_at,
        died_at: dead.died_at,
        reason: dead.reason,
    })
}

fn died_at(item: &Item) -> Option<i64> {
    item.header(DIED_AT_HEADER)?.parse().ok()
}

/// Adds one live message's state to `depth` as seen at `now`.
fn count(depth: &mut QueueDepth, oldest: &mut Option<i64>, state: &State, now: i64) {
    if state.visible_at <= now {
        depth.ready += 1;
        *oldest = Some(oldest.map_or(state.enqueued_at, |o| o.min(state.enqueued_at)));
    } else if state.leased {
        depth.in_flight += 1;
    } else {
        depth.delayed += 1;
    }
}

/// Messages claimed at once by one lease.
const CLAIM_CONCURRENCY: usize = 8;
/// How long the candidates of a scan are used before the next lease scans again.
const SCAN_REUSE: Duration = Duration::from_secs(1);

/// A message as a scan listed it, in delivery order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    visible_at: i64,
    enqueued_at: i64,
    key: String,
}

/// Each queue's candidates from its last scan. A lease takes visible ones from here and claims
/// them (each claim re-reads the message, so a stale candidate only costs a read); it scans
/// again only when they cannot fill the lease, or after [`SCAN_REUSE`]. A dispatcher that
/// leases one message per freed worker then pays one scan per many leases instead of one per
/// message.
#[derive(Debug, Default)]
pub(super) struct Candidates {
    by_queue: Mutex<HashMap<String, (Instant, VecDeque<Candidate>)>>,
}

impl Candidates {
    fn replace(&self, queue: &str, sorted: Vec<Candidate>) {
        if let Ok(mut all) = self.by_queue.lock() {
            all.insert(queue.to_owned(), (Instant::now(), sorted.into()));
        }
    }

    /// Up to `n` keys visible at `now`, oldest first, removed from the list.
    fn take_visible(&self, queue: &str, now: i64, n: usize) -> Vec<String> {
        let Ok(mut all) = self.by_queue.lock() else {
            return Vec::new();
        };
        let Some((at, list)) = all.get_mut(queue) else {
            return Vec::new();
        };
        if at.elapsed() > SCAN_REUSE {
            all.remove(queue);
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut kept = VecDeque::with_capacity(list.len());
        while let Some(c) = list.pop_front() {
            if out.len() < n && c.visible_at <= now {
                out.push(c.key);
            } else {
                kept.push_back(c);
            }
        }
        *list = kept;
        out
    }
}

fn finish(depth: &mut QueueDepth, oldest: Option<i64>, now: i64) {
    depth.oldest_ready_age_ms = oldest.map_or(0, |o| (now - o).max(0) as u64);
}

impl NatsStore {
    /// Runs `f(item, state)` on message `id` while `token` holds its lease; `f` writes
    /// conditionally on `item.revision`, and a conflict there means the message moved: read
    /// again and decide again.
    async fn with_lease<F, Fut>(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        f: F,
    ) -> Result<(), StoreError>
    where
        F: Fn(Item, State) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>>,
    {
        let key = keys::queue_key(queue, id);
        for _ in 0..CAS_ATTEMPTS {
            let Some(item) = self.queue.get(&key).await? else {
                return Err(StoreError::lease_lost(queue, id));
            };
            let Some(state) = State::of(&item) else {
                return Err(StoreError::lease_lost(queue, id));
            };
            if !state.leased || state.token.as_deref() != Some(token) {
                return Err(StoreError::lease_lost(queue, id));
            }
            match f(item, state).await {
                Err(StoreError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(StoreError::lease_lost(queue, id))
    }

    async fn set_state(&self, item: &Item, state: &State) -> Result<u64, StoreError> {
        self.queue
            .write(
                &item.key,
                Some(state.headers()?),
                item.value.clone(),
                Expect::Revision(item.revision),
            )
            .await
    }

    /// Claims visible candidates of `queue` from the last scan until `out` holds `max`
    /// messages or none is left, a few at a time, in order.
    async fn claim_candidates(
        &self,
        queue: &str,
        max: usize,
        lease_ms: i64,
        now: i64,
        out: &mut Vec<Leased>,
    ) -> Result<(), StoreError> {
        loop {
            let need = max - out.len();
            let keys = self.candidates.take_visible(queue, now, need);
            if keys.is_empty() {
                return Ok(());
            }
            let claims: Vec<Result<Option<Leased>, StoreError>> = futures_util::stream::iter(keys)
                .map(|key| self.claim(key, lease_ms, now))
                .buffered(CLAIM_CONCURRENCY)
                .collect()
                .await;
            for claim in claims {
                if let Some(leased) = claim? {
                    out.push(leased);
                }
            }
            if out.len() >= max {
                return Ok(());
            }
        }
    }

    /// Leases message `key` if it is still deliverable at `now`; `None` when it was acked,
    /// removed or claimed by someone else since it was listed.
    async fn claim(
        &self,
        key: String,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Leased>, StoreError> {
        let Some(item) = self.queue.get(&key).await? else {
            return Ok(None);
        };
        let Some(state) = State::of(&item) else {
            return Ok(None);
        };
        if state.visible_at > now {
            return Ok(None); // leased (or retried) by someone else meanwhile
        }
        let Some((_, id)) = keys::split_queue_key(&key) else {
            return Ok(None);
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let next = State {
            attempts: state.attempts + 1,
            visible_at: now.saturating_add(lease_ms),
            leased: true,
            token: Some(token.clone()),
            ..state
        };
        match self.set_state(&item, &next).await {
            Ok(_) => Ok(Some(Leased {
                id,
                payload: item.value,
                attempts: next.attempts,
                enqueued_at: next.enqueued_at,
                token,
            })),
            // Another node claimed it between our read and our write.
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `(queue, id, item)` of every dead message of queues matching `filter`.
    async fn scan_dead(
        &self,
        filter: &str,
        headers_only: bool,
    ) -> Result<Vec<(String, String, Item)>, StoreError> {
        Ok(self
            .dead
            .scan(filter, headers_only)
            .await?
            .into_iter()
            .filter_map(|item| {
                let (queue, id) = keys::split_queue_key(&item.key)?;
                Some((queue, id, item))
            })
            .collect())
    }
}

#[async_trait]
impl WorkQueue for NatsStore {
    async fn enqueue(&self, queue: &str, msg: NewMessage) -> Result<(), StoreError> {
        let state = State {
            enqueued_at: msg.enqueued_at,
            visible_at: msg.not_before,
            attempts: 0,
            leased: false,
            token: None,
        };
        match self
            .queue
            .write(
                &keys::queue_key(queue, &msg.id),
                Some(state.headers()?),
                msg.payload,
                Expect::Absent,
            )
            .await
        {
            // Same id already queued: the enqueue is idempotent.
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn lease(
        &self,
        queue: &str,
        max: usize,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        // The candidates of a recent scan first; a fresh scan when they do not fill `max`.
        self.claim_candidates(queue, max, lease_ms, now, &mut out)
            .await?;
        if out.len() < max {
            let mut scanned: Vec<Candidate> = self
                .queue
                .scan(&keys::queue_filter(queue), true)
                .await?
                .into_iter()
                .filter_map(|item| {
                    let state = State::of(&item)?;
                    Some(Candidate {
                        visible_at: state.visible_at,
                        enqueued_at: state.enqueued_at,
                        key: item.key,
                    })
                })
                .collect();
            scanned.sort();
            self.candidates.replace(queue, scanned);
            self.claim_candidates(queue, max, lease_ms, now, &mut out)
                .await?;
        }
        Ok(out)
    }

    async fn extend(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        self.with_lease(queue, id, token, |item, state| async move {
            let next = State {
                visible_at: until,
                ..state
            };
            self.set_state(&item, &next).await.map(|_| ())
        })
        .await
    }

    async fn ack(&self, queue: &str, id: &str, token: &str) -> Result<(), StoreError> {
        self.with_lease(queue, id, token, |item, _| async move {
            self.queue
                .remove(&item.key, Some(item.revision))
                .await
                .map(|_| ())
        })
        .await
    }

    async fn retry(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        not_before: i64,
    ) -> Result<(), StoreError> {
        self.with_lease(queue, id, token, |item, state| async move {
            let next = State {
                visible_at: not_before,
                leased: false,
                token: None,
                ..state
            };
            self.set_state(&item, &next).await.map(|_| ())
        })
        .await
    }

    async fn dead_letter(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with_lease(queue, id, token, |item, state| async move {
            let dead = Dead {
                attempts: state.attempts,
                enqueued_at: state.enqueued_at,
                died_at: now,
                reason: reason.to_owned(),
            };
            let (headers, value) = encode_dead(&dead, &item.value)?;
            let dead_revision = self
                .dead
                .write(&item.key, Some(headers), value, Expect::Any)
                .await?;
            match self.queue.remove(&item.key, Some(item.revision)).await {
                Ok(_) => Ok(()),
                Err(err) => {
                    // The lease moved on: this delivery does not get to dead-letter it.
                    if let Err(undo) = self.dead.remove(&item.key, Some(dead_revision)).await {
                        tracing::warn!(error = %undo, %queue, %id, "could not undo a dead letter");
                    }
                    Err(err)
                }
            }
        })
        .await
    }

    async fn remove(&self, queue: &str, id: &str) -> Result<bool, StoreError> {
        let key = keys::queue_key(queue, id);
        for _ in 0..CAS_ATTEMPTS {
            let Some(item) = self.queue.get(&key).await? else {
                return Ok(false);
            };
            match self.queue.remove(&key, Some(item.revision)).await {
                Ok(_) => return Ok(true),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict {
            key: format!("{queue}/{id}"),
            reason: "kept changing while being removed".into(),
        })
    }

    async fn depth(&self, queue: &str, now: i64) -> Result<QueueDepth, StoreError> {
        let filter = keys::queue_filter(queue);
        let mut depth = QueueDepth::default();
        let mut oldest = None;
        for item in self.queue.scan(&filter, true).await? {
            if let Some(state) = State::of(&item) {
                count(&mut depth, &mut oldest, &state, now);
            }
        }
        finish(&mut depth, oldest, now);
        depth.dead = self.dead.scan(&filter, true).await?.len() as u64;
        Ok(depth)
    }

    async fn depths(
        &self,
        prefix: &str,
        now: i64,
    ) -> Result<BTreeMap<String, QueueDepth>, StoreError> {
        let filter = keys::queue_prefix_filter(prefix);
        let mut out: BTreeMap<String, (QueueDepth, Option<i64>)> = BTreeMap::new();
        for item in self.queue.scan(&filter, true).await? {
            let (Some((queue, _)), Some(state)) =
                (keys::split_queue_key(&item.key), State::of(&item))
            else {
                continue;
            };
            if queue.starts_with(prefix) {
                let (depth, oldest) = out.entry(queue).or_default();
                count(depth, oldest, &state, now);
            }
        }
        for (queue, _, _) in self.scan_dead(&filter, true).await? {
            if queue.starts_with(prefix) {
                out.entry(queue).or_default().0.dead += 1;
            }
        }
        Ok(out
            .into_iter()
            .map(|(queue, (mut depth, oldest))| {
                finish(&mut depth, oldest, now);
                (queue, depth)
            })
            .collect())
    }

    async fn dead(&self, queue: &str, limit: usize) -> Result<Vec<DeadMessage>, StoreError> {
        let mut out: Vec<DeadMessage> = self
            .scan_dead(&keys::queue_filter(queue), false)
            .await?
            .into_iter()
            .filter_map(|(q, id, item)| decode_dead(&item, &q, &id))
            .collect();
        out.sort_by(|a, b| (a.died_at, &a.id).cmp(&(b.died_at, &b.id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn replay_dead(
        &self,
        queue: &str,
        ids: Option<Vec<String>>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let ids = match ids {
            Some(ids) => ids,
            None => self
                .scan_dead(&keys::queue_filter(queue), true)
                .await?
                .into_iter()
                .map(|(_, id, _)| id)
                .collect(),
        };
        let mut moved = 0;
        for id in ids {
            let key = keys::queue_key(queue, &id);
            let Some(item) = self.dead.get(&key).await? else {
                continue;
            };
            let Some(dead) = decode_dead(&item, queue, &id) else {
                continue;
            };
            // A replay is a fresh chain of attempts, accepted now.
            let state = State {
                enqueued_at: now,
                visible_at: now,
                attempts: 0,
                leased: false,
                token: None,
            };
            match self
                .queue
                .write(&key, Some(state.headers()?), dead.payload, Expect::Absent)
                .await
            {
                Ok(_) => moved += 1,
                // Already live again (queued anew under the same id): keep that one.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
            match self.dead.remove(&key, Some(item.revision)).await {
                Ok(_) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }

    async fn purge_dead(
        &self,
        queue: &str,
        ids: Option<Vec<String>>,
        before: Option<i64>,
    ) -> Result<u64, StoreError> {
        let victims: Vec<Item> = match ids {
            Some(ids) => {
                let mut found = Vec::new();
                for id in ids {
                    if let Some(item) = self.dead.get(&keys::queue_key(queue, &id)).await? {
                        found.push(item);
                    }
                }
                found
            }
            None => self
                .dead
                .scan(&keys::queue_filter(queue), true)
                .await?
                .into_iter()
                .filter(|item| before.is_none_or(|b| died_at(item).is_some_and(|d| d < b)))
                .collect(),
        };
        let mut purged = 0;
        for item in victims {
            match self.dead.remove(&item.key, Some(item.revision)).await {
                Ok(_) => purged += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(purged)
    }

    async fn dump(&self, prefix: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let filter = keys::queue_prefix_filter(prefix);
        let mut out = Vec::new();
        for item in self.queue.scan(&filter, false).await? {
            let (Some((queue, id)), Some(state)) =
                (keys::split_queue_key(&item.key), State::of(&item))
            else {
                continue;
            };
            if queue.starts_with(prefix) {
                out.push(StoredMessage {
                    queue,
                    id,
                    payload: item.value,
                    enqueued_at: state.enqueued_at,
                    visible_at: state.visible_at,
                    attempts: state.attempts,
                    dead: None,
                });
            }
        }
        for (queue, id, item) in self.scan_dead(&filter, false).await? {
            if !queue.starts_with(prefix) {
                continue;
            }
            if let Some(dead) = decode_dead(&item, &queue, &id) {
                out.push(StoredMessage {
                    queue,
                    id,
                    payload: dead.payload,
                    enqueued_at: dead.enqueued_at,
                    visible_at: dead.died_at,
                    attempts: dead.attempts,
                    dead: Some(Death {
                        died_at: dead.died_at,
                        reason: dead.reason,
                    }),
                });
            }
        }
        out.sort_by(|a, b| (&a.queue, &a.id).cmp(&(&b.queue, &b.id)));
        Ok(out)
    }

    async fn restore(&self, msg: StoredMessage) -> Result<bool, StoreError> {
        let key = keys::queue_key(&msg.queue, &msg.id);
        // Live and dead are two buckets: a message held in either is kept as it is.
        let (here, other) = match msg.dead {
            None => (&self.queue, &self.dead),
            Some(_) => (&self.dead, &self.queue),
        };
        if other.get(&key).await?.is_some() {
            return Ok(false);
        }
        let (headers, value) = match &msg.dead {
            None => {
                let state = State {
                    enqueued_at: msg.enqueued_at,
                    visible_at: msg.visible_at,
                    attempts: msg.attempts,
                    leased: false,
                    token: None,
                };
                (state.headers()?, msg.payload)
            }
            Some(death) => encode_dead(
                &Dead {
                    attempts: msg.attempts,
                    enqueued_at: msg.enqueued_at,
                    died_at: death.died_at,
                    reason: death.reason.clone(),
                },
                &msg.payload,
            )?,
        };
        match here.write(&key, Some(headers), value, Expect::Absent).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
