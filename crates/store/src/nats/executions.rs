//! [`ExecutionStore`] on three KV buckets with a retention (max age) each.
//!
//! - `<ns>_executions`: the record as JSON under the execution id, with headers
//!   `Hola-Function` and `Hola-Created-At`, so a listing scans headers only, sorts, and reads
//!   the bodies of one page. Listing order is newest first by `(created_at, id)`: acceptance
//!   time is the one order every node agrees on (the embedded backend's insertion order has
//!   no cluster-wide meaning), and it is the same order for a single node.
//! - `<ns>_logs`: a log under the execution id (header `Hola-Log-Chunks`,
//!   `Hola-Log-Truncated`, the first chunk as value), further chunks under `<id>.<n>`; chunks
//!   stay under the server's max payload (1 MB by default, the size of a full capture).
//!   Continuation chunks are written before the head, so a reader never sees a head whose
//!   chunks are missing.
//! - `<ns>_charges`: what each charged execution costs ([`Charge::of`]) under its id. One key
//!   per execution is what makes usage count each execution once however often its record is
//!   rewritten: a rewrite overwrites the charge, a rewrite to a non-final state deletes it.
//!   Usage is the sum over the charges, computed when read (a scan of one small value per
//!   execution, kept [`super::NatsOptions::usage_ttl`]).
//!
//! Writes go through a node's writer lanes, each execution's in call order (one execution
//! always takes the same lane; sixteen lanes write different executions in parallel): a
//! `record_later` returns at once, and every read on this node first waits for the writes
//! queued before it that it can see (an execution's lane for `get` and `log`, every lane for
//! listings; "a client reads its own writes"; another node sees them once they are
//! acknowledged). A crash loses the queued `record_later` writes — as the embedded backend
//! loses those not yet committed.

use std::sync::Arc;

use async_nats::HeaderMap;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use holactl_types::usage::{Charge, DayUsage};
use holactl_types::ExecutionRecord;
use tokio::sync::{mpsc, oneshot};

use super::bucket::{Bucket, Expect};
use super::{keys, NatsStore};
use crate::{ExecutionQuery, ExecutionStore, StoreError, StoredLog, UsageQuery};

const FUNCTION_HEADER: &str = "Hola-Function";
const CREATED_AT_HEADER: &str = "Hola-Created-At";
const CHUNKS_HEADER: &str = "Hola-Log-Chunks";
const TRUNCATED_HEADER: &str = "Hola-Log-Truncated";
/// Room left in a message for headers and the protocol.
const HEADROOM: usize = 16 * 1024;
/// Bodies read at once when a listing fetches its page.
const FETCH_CONCURRENCY: usize = 32;

enum Op {
    Write {
        exec: Box<ExecutionRecord>,
        log: Option<StoredLog>,
        reply: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
    Barrier(oneshot::Sender<()>),
}

struct Buckets {
    records: Bucket,
    logs: Bucket,
    charges: Bucket,
    /// Bytes of log per message.
    chunk: usize,
}

/// Writer lanes of a node: writes of one execution always take the same lane (in order);
/// different executions are written in parallel.
const LANES: usize = 16;

/// The execution side of [`NatsStore`].
pub(super) struct Executions {
    lanes: Vec<mpsc::UnboundedSender<Op>>,
    buckets: Arc<Buckets>,
}

impl Executions {
    /// Starts the writer tasks (they end when this is dropped).
    pub fn new(records: Bucket, logs: Bucket, charges: Bucket, max_payload: usize) -> Self {
        let buckets = Arc::new(Buckets {
            records,
            logs,
            charges,
            chunk: max_payload.saturating_sub(HEADROOM).max(HEADROOM),
        });
        let lanes = (0..LANES)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel::<Op>();
                tokio::spawn(run_lane(buckets.clone(), rx));
                tx
            })
            .collect();
        Executions { lanes, buckets }
    }

    /// The lane of execution `id`.
    fn lane(&self, id: &str) -> &mpsc::UnboundedSender<Op> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        &self.lanes[(h.finish() % self.lanes.len() as u64) as usize]
    }

    fn send(&self, id: &str, op: Op) -> Result<(), StoreError> {
        self.lane(id)
            .send(op)
            .map_err(|_| StoreError::Unavailable("execution writer stopped".into()))
    }

    /// Waits until every write queued before this call on `lanes` is done.
    async fn barrier_on<'a>(
        lanes: impl Iterator<Item = &'a mpsc::UnboundedSender<Op>>,
    ) -> Result<(), StoreError> {
        let mut waits = Vec::new();
        for lane in lanes {
            let (tx, rx) = oneshot::channel();
            lane.send(Op::Barrier(tx))
                .map_err(|_| StoreError::Unavailable("execution writer stopped".into()))?;
            waits.push(rx);
        }
        for rx in waits {
            rx.await
                .map_err(|_| StoreError::Unavailable("execution writer stopped".into()))?;
        }
        Ok(())
    }

    /// `(created_at, id, key)` of every record (only `function`'s when given), newest first by
    /// `(created_at, id)`: one headers-only scan.
    async fn index(
        &self,
        function: Option<&str>,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let mut index: Vec<(i64, String, String)> = self
            .buckets
            .records
            .scan(">", true)
            .await?
            .into_iter()
            .filter_map(|item| {
                let id = keys::untoken(&item.key)?;
                let of = keys::untoken(item.header(FUNCTION_HEADER)?)?;
                if function.is_some_and(|f| f != of) {
                    return None;
                }
                let created_at: i64 = item.header(CREATED_AT_HEADER)?.parse().ok()?;
                Some((created_at, id, item.key))
            })
            .collect();
        index.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        Ok(index)
    }

    /// Waits until every write queued before this call is done.
    async fn barrier(&self) -> Result<(), StoreError> {
        Self::barrier_on(self.lanes.iter()).await
    }

    /// Waits until every write of execution `id` queued before this call is done.
    async fn barrier_for(&self, id: &str) -> Result<(), StoreError> {
        Self::barrier_on(std::iter::once(self.lane(id))).await
    }
}

/// One writer lane: its writes, one after the other.
async fn run_lane(writer: Arc<Buckets>, mut rx: mpsc::UnboundedReceiver<Op>) {
    while let Some(op) = rx.recv().await {
        match op {
            Op::Write { exec, log, reply } => {
                let id = exec.id.clone();
                let result = writer.write(*exec, log).await;
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    None => {
                        if let Err(err) = result {
                            tracing::error!(error = %err, execution = %id, "an execution record was not stored");
                        }
                    }
                }
            }
            Op::Barrier(reply) => {
                let _ = reply.send(());
            }
        }
    }
}

impl Buckets {
    async fn write(&self, exec: ExecutionRecord, log: Option<StoredLog>) -> Result<(), StoreError> {
        let key = keys::token(&exec.id);
        let body = serde_json::to_vec(&exec).map_err(StoreError::unavailable)?;
        let mut headers = HeaderMap::new();
        headers.insert(FUNCTION_HEADER, keys::token(&exec.function).as_str());
        headers.insert(CREATED_AT_HEADER, exec.created_at.to_string().as_str());
        let expect = if crate::is_initial(&exec) {
            Expect::Absent
        } else {
            Expect::Any
        };
        match self
            .records
            .write(&key, Some(headers), Bytes::from(body), expect)
            .await
        {
            Ok(_) => {}
            // An initial record where the execution already has one: that one is newer.
            Err(StoreError::Conflict { .. }) if expect == Expect::Absent => return Ok(()),
            Err(e) => return Err(e),
        }
        if let Some(log) = log {
            self.write_log(&key, log).await?;
        }
        match Charge::of(&exec) {
            Some(charge) => {
                let value = serde_json::to_vec(&charge).map_err(StoreError::unavailable)?;
                self.charges
                    .write(&key, None, Bytes::from(value), Expect::Any)
                    .await?;
            }
            None => {
                // Back to a non-final state (a retry) or never billed: no longer charged.
                if let Some(old) = self.charges.get(&key).await? {
                    match self.charges.delete(&key, Some(old.revision)).await {
                        Ok(_) | Err(StoreError::Conflict { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    async fn write_log(&self, key: &str, log: StoredLog) -> Result<(), StoreError> {
        let data = Bytes::from(log.data);
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let end = (at + self.chunk).min(data.len());
            chunks.push(data.slice(at..end));
            at = end;
        }
        if chunks.is_empty() {
            chunks.push(Bytes::new());
        }
        for (n, chunk) in chunks.iter().enumerate().skip(1) {
            self.logs
                .write(&format!("{key}.{n}"), None, chunk.clone(), Expect::Any)
                .await?;
        }
        let mut headers = HeaderMap::new();
        headers.insert(CHUNKS_HEADER, chunks.len().to_string().as_str());
        headers.insert(TRUNCATED_HEADER, if log.truncated { "1" } else { "0" });
        self.logs
            .write(key, Some(headers), chunks[0].clone(), Expect::Any)
            .await?;
        Ok(())
    }
}

fn parse_record(value: &[u8]) -> Result<ExecutionRecord, StoreError> {
    serde_json::from_slice(value)
        .map_err(|e| StoreError::Unavailable(format!("corrupt execution record: {e}")))
}

#[async_trait]
impl ExecutionStore for NatsStore {
    async fn record(
        &self,
        exec: ExecutionRecord,
        log: Option<StoredLog>,
    ) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let id = exec.id.clone();
        self.executions.send(
            &id,
            Op::Write {
                exec: Box::new(exec),
                log,
                reply: Some(tx),
            },
        )?;
        rx.await
            .map_err(|_| StoreError::Unavailable("execution writer stopped".into()))?
    }

    fn record_later(&self, exec: ExecutionRecord, log: Option<StoredLog>) {
        let id = exec.id.clone();
        let op = Op::Write {
            exec: Box::new(exec),
            log,
            reply: None,
        };
        if self.executions.send(&id, op).is_err() {
            tracing::error!("execution writer stopped; an execution record was dropped");
        }
    }

    async fn flush(&self, id: &str) -> Result<(), StoreError> {
        self.executions.barrier_for(id).await
    }

    async fn get(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.executions.barrier_for(id).await?;
        match self
            .executions
            .buckets
            .records
            .get(&keys::token(id))
            .await?
        {
            Some(item) => parse_record(&item.value).map(Some),
            None => Ok(None),
        }
    }

    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        self.executions.barrier().await?;
        let mut index = self.executions.index(None).await?;
        index.reverse();
        Ok(index.into_iter().map(|(_, id, _)| id).collect())
    }

    async fn list(&self, query: ExecutionQuery) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.executions.barrier().await?;
        let records = &self.executions.buckets.records;
        let index = self.executions.index(query.function.as_deref()).await?;
        let start = match &query.before {
            // Only records older than `before`; none when it is unknown (as embedded).
            Some(before) => match index.iter().position(|(_, id, _)| id == before) {
                Some(i) => i + 1,
                None => index.len(),
            },
            None => 0,
        };
        let limit = query.limit.clamp(1, 1000);
        let page: Vec<String> = index
            .into_iter()
            .skip(start)
            .take(limit)
            .map(|(_, _, key)| key)
            .collect();
        let bodies: Vec<Result<Option<_>, StoreError>> = futures_util::stream::iter(page)
            .map(|key| async move { records.get(&key).await })
            .buffered(FETCH_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::with_capacity(bodies.len());
        for body in bodies {
            // Gone meanwhile (expired): skipped.
            if let Some(item) = body? {
                out.push(parse_record(&item.value)?);
            }
        }
        Ok(out)
    }

    async fn log(&self, id: &str) -> Result<Option<StoredLog>, StoreError> {
        self.executions.barrier_for(id).await?;
        let logs = &self.executions.buckets.logs;
        let key = keys::token(id);
        let Some(head) = logs.get(&key).await? else {
            return Ok(None);
        };
        let chunks: usize = head
            .header(CHUNKS_HEADER)
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let truncated = head.header(TRUNCATED_HEADER) == Some("1");
        let mut data = head.value.to_vec();
        for n in 1..chunks {
            match logs.get(&format!("{key}.{n}")).await? {
                Some(chunk) => data.extend_from_slice(&chunk.value),
                None => {
                    return Err(StoreError::Unavailable(format!(
                        "log of {id}: chunk {n} of {chunks} is missing"
                    )))
                }
            }
        }
        Ok(Some(StoredLog { data, truncated }))
    }

    async fn usage(&self, query: UsageQuery) -> Result<Vec<DayUsage>, StoreError> {
        use std::collections::BTreeMap;
        self.executions.barrier().await?;
        let mut sums: BTreeMap<(i64, String), DayUsage> = BTreeMap::new();
        for item in self.executions.buckets.charges.scan(">", false).await? {
            let Ok(charge) = serde_json::from_slice::<Charge>(&item.value) else {
                tracing::warn!(key = %item.key, "skipping a corrupt usage charge");
                continue;
            };
            if query
                .function
                .as_ref()
                .is_some_and(|f| *f != charge.function)
                || query.since_day.is_some_and(|d| charge.day < d)
            {
                continue;
            }
            let sum = sums
                .entry((charge.day, charge.function.clone()))
                .or_insert_with(|| DayUsage {
                    function: charge.function,
                    day: charge.day,
                    requests: 0,
                    billed_ms: 0,
                    mb_ms: 0,
                });
            sum.requests += 1;
            sum.billed_ms += charge.billed_ms;
            sum.mb_ms += charge.mb_ms;
        }
        Ok(sums.into_values().collect())
    }
}
