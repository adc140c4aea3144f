//! The single writer thread: drains queued writes into one transaction per round.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::{Entry, KvEvent, StoreError, StoredLog};

/// Where committed key/value changes are announced (for [`crate::Kv::watch`]).
pub(super) type Changes = tokio::sync::broadcast::Sender<KvEvent>;

/// Where a write's result goes: a revision, or unit-like 0 for non-KV writes.
pub(super) type Reply = oneshot::Sender<Result<u64, StoreError>>;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 1024;

/// What a KV write expects to find.
pub(super) enum Expect {
    Any,
    Absent,
    Revision(u64),
}

pub(super) enum Op {
    KvWrite {
        key: String,
        value: bytes::Bytes,
        expect: Expect,
        reply: Reply,
    },
    KvDelete {
        key: String,
        revision: Option<u64>,
        reply: Reply,
    },
    Execution {
        id: String,
        function: String,
        created_at: i64,
        body: String,
        /// What the record is charged now (see `usage.rs`).
        charge: Option<holactl_types::usage::Charge>,
        log: Option<StoredLog>,
        /// The record of a newly accepted event: written only where there is none yet.
        initial: bool,
        reply: Option<Reply>,
    },
    Barrier {
        reply: Reply,
    },
    /// Any other write: runs inside the batch's transaction. An `Err` from SQLite fails the
    /// batch; a logical failure travels in the inner result.
    Apply {
        f: ApplyFn,
        reply: ApplyReply,
    },
}

/// What an [`Op::Apply`] answers.
#[derive(Debug)]
pub(super) enum QueueReply {
    Unit,
    Count(u64),
    Leased(Vec<crate::Leased>),
}

type ApplyReply = oneshot::Sender<Result<QueueReply, StoreError>>;

pub(super) type ApplyFn =
    Box<dyn FnOnce(&Connection) -> rusqlite::Result<Result<QueueReply, StoreError>> + Send>;

pub(super) fn spawn(
    mut conn: Connection,
    changes: Changes,
) -> Result<mpsc::UnboundedSender<Op>, StoreError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Op>();
    let mut revision: u64 = conn
        .query_row(
            "SELECT value FROM meta WHERE name = 'revision'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .optional()
        .map_err(StoreError::unavailable)?
        .unwrap_or(0) as u64;
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(op) = rx.blocking_recv() {
                batch.push(op);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                commit_batch(&mut conn, &mut revision, &mut batch, &changes);
            }
        })
        .map_err(StoreError::unavailable)?;
    Ok(tx)
}

/// Applies `batch` in one transaction and answers every op once it is committed (or failed).
fn commit_batch(conn: &mut Connection, revision: &mut u64, batch: &mut Vec<Op>, changes: &Changes) {
    let start_revision = *revision;
    let mut events: Vec<KvEvent> = Vec::new();
    let mut replies: Vec<(Reply, Result<u64, StoreError>)> = Vec::with_capacity(batch.len());
    let mut applied: Vec<(ApplyReply, Result<QueueReply, StoreError>)> = Vec::new();
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction()?;
        for op in batch.drain(..) {
            match op {
                Op::Apply { f, reply } => {
                    // A savepoint per op: a failing op must not leave partial writes.
                    let sp = tx.savepoint_with_name("op")?;
                    let result = f(&sp)?;
                    sp.commit()?;
                    applied.push((reply, result));
                }
                other => apply(&tx, revision, other, &mut replies, &mut events)?,
            }
        }
        if *revision != start_revision {
            tx.prepare_cached(
                "INSERT INTO meta (name, value) VALUES ('revision', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![*revision as i64])?;
        }
        tx.commit()
    })();
    match outcome {
        Ok(()) => {
            // Announced only once committed; no receiver is not an error.
            for event in events {
                let _ = changes.send(event);
            }
            for (reply, result) in replies {
                let _ = reply.send(result);
            }
            for (reply, result) in applied {
                let _ = reply.send(result);
            }
        }
        Err(err) => {
            *revision = start_revision;
            tracing::error!(error = %err, "store write failed");
            // Ops not yet applied are dropped with the batch: their callers see the channel
            // close and report the store unavailable.
            batch.clear();
            for (reply, _) in replies {
                let _ = reply.send(Err(StoreError::unavailable(&err)));
            }
            for (reply, _) in applied {
                let _ = reply.send(Err(StoreError::unavailable(&err)));
            }
        }
    }
}

fn apply(
    tx: &Transaction<'_>,
    revision: &mut u64,
    op: Op,
    replies: &mut Vec<(Reply, Result<u64, StoreError>)>,
    events: &mut Vec<KvEvent>,
) -> rusqlite::Result<()> {
    match op {
        Op::KvWrite {
            key,
            value,
            expect,
            reply,
        } => {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT revision FROM kv WHERE key = ?1",
                    params![key],
                    |row| row.get(0),
                )
                .optional()?;
            let conflict = match (&expect, current) {
                (Expect::Any, _) => None,
                (Expect::Absent, None) => None,
                (Expect::Absent, Some(_)) => Some("key already exists".to_owned()),
                (Expect::Revision(want), Some(have)) if *want == have as u64 => None,
                (Expect::Revision(want), Some(have)) => {
                    Some(format!("revision is {have}, expected {want}"))
                }
                (Expect::Revision(_), None) => Some("key does not exist".to_owned()),
            };
            if let Some(reason) = conflict {
                replies.push((reply, Err(StoreError::Conflict { key, reason })));
                return Ok(());
            }
            *revision += 1;
            tx.prepare_cached("INSERT INTO kv (key, value, revision) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, revision = excluded.revision")?.execute(
                params![key, value.as_ref(), *revision as i64],
            )?;
            events.push(KvEvent::Put {
                key,
                entry: Entry {
                    value,
                    revision: *revision,
                },
            });
            replies.push((reply, Ok(*revision)));
        }
        Op::KvDelete {
            key,
            revision: want,
            reply,
        } => {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT revision FROM kv WHERE key = ?1",
                    params![key],
                    |row| row.get(0),
                )
                .optional()?;
            let result = match (current, want) {
                (None, _) => Err(StoreError::NotFound(key)),
                (Some(have), Some(want)) if have as u64 != want => Err(StoreError::Conflict {
                    key,
                    reason: format!("revision is {have}, expected {want}"),
                }),
                (Some(_), _) => {
                    tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                        .execute(params![key])?;
                    *revision += 1;
                    events.push(KvEvent::Delete {
                        key,
                        revision: *revision,
                    });
                    Ok(*revision)
                }
            };
            replies.push((reply, result));
        }
        Op::Execution {
            id,
            function,
            created_at,
            body,
            charge,
            log,
            initial,
            reply,
        } => {
            let exists = || -> rusqlite::Result<bool> {
                tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM executions WHERE id = ?1)")?
                    .query_row(params![id], |r| r.get(0))
            };
            if initial && exists()? {
                if let Some(reply) = reply {
                    replies.push((reply, Ok(0)));
                }
                return Ok(());
            }
            super::usage::account(tx, &id, charge.as_ref())?;
            tx.prepare_cached(
                "INSERT INTO executions (id, function, created_at, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            )?
            .execute(params![id, function, created_at, body])?;
            if let Some(log) = log {
                tx.prepare_cached(
                    "INSERT INTO logs (execution_id, data, truncated) VALUES (?1, ?2, ?3)
                     ON CONFLICT(execution_id) DO UPDATE SET data = excluded.data,
                     truncated = excluded.truncated",
                )?
                .execute(params![id, log.data, log.truncated as i64])?;
            }
            if let Some(reply) = reply {
                replies.push((reply, Ok(0)));
            }
        }
        Op::Barrier { reply } => replies.push((reply, Ok(0))),
        Op::Apply { reply, .. } => {
            let _ = reply.send(Err(StoreError::Unavailable("misrouted write".into())));
        }
    }
    Ok(())
}
