//! Work queues on SQLite: one row per message with `visible_at` (when it may be delivered) and
//! a lease token; dead messages move to their own table.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use super::writer::{ApplyFn, Op, QueueReply};
use super::EmbeddedStore;
use crate::{
    DeadMessage, Death, Leased, NewMessage, QueueDepth, StoreError, StoredMessage, WorkQueue,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    payload BLOB NOT NULL,
    enqueued_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    leased INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    PRIMARY KEY (queue, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at);
CREATE TABLE IF NOT EXISTS dead_messages (
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    payload BLOB NOT NULL,
    attempts INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    died_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (queue, id)
) WITHOUT ROWID;
";

fn holds_lease(c: &Connection, queue: &str, id: &str, token: &str) -> rusqlite::Result<bool> {
    Ok(
        c.prepare_cached("SELECT lease_token FROM messages WHERE queue = ?1 AND id = ?2")?
            .query_row(params![queue, id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten()
            .is_some_and(|t| t == token),
    )
}

impl EmbeddedStore {
    async fn apply(&self, f: ApplyFn) -> Result<QueueReply, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(Op::Apply { f, reply: tx })
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }
}

impl EmbeddedStore {
    /// Runs `f(connection, queue, id)` in the writer's transaction if `token` still holds the
    /// message's lease; [`StoreError::Conflict`] otherwise.
    async fn with_lease(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        f: impl FnOnce(&Connection, &str, &str) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), StoreError> {
        let (queue, id, token) = (queue.to_owned(), id.to_owned(), token.to_owned());
        self.apply(Box::new(move |c| {
            if !holds_lease(c, &queue, &id, &token)? {
                return Ok(Err(StoreError::lease_lost(&queue, &id)));
            }
            f(c, &queue, &id)?;
            Ok(Ok(QueueReply::Unit))
        }))
        .await
        .map(|_| ())
    }
}

fn count(r: QueueReply) -> u64 {
    match r {
        QueueReply::Count(n) => n,
        _ => 0,
    }
}

#[async_trait]
impl WorkQueue for EmbeddedStore {
    async fn enqueue(&self, queue: &str, msg: NewMessage) -> Result<(), StoreError> {
        let queue = queue.to_owned();
        self.apply(Box::new(move |c| {
            c.prepare_cached(
                "INSERT INTO messages (queue, id, payload, enqueued_at, visible_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(queue, id) DO NOTHING",
            )?
            .execute(params![
                queue,
                msg.id,
                msg.payload.as_ref(),
                msg.enqueued_at,
                msg.not_before
            ])?;
            Ok(Ok(QueueReply::Unit))
        }))
        .await
        .map(|_| ())
    }

    async fn lease(
        &self,
        queue: &str,
        max: usize,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        let queue = queue.to_owned();
        let reply = self
            .apply(Box::new(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, payload, attempts, enqueued_at FROM messages
                     WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at LIMIT ?3",
                )?;
                let rows = stmt
                    .query_map(params![queue, now, max as i64], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut out = Vec::with_capacity(rows.len());
                for (id, payload, attempts, enqueued_at) in rows {
                    let token = uuid::Uuid::new_v4().simple().to_string();
                    c.prepare_cached(
                        "UPDATE messages SET visible_at = ?3, attempts = attempts + 1,
                         leased = 1, lease_token = ?4 WHERE queue = ?1 AND id = ?2",
                    )?
                    .execute(params![queue, id, now + lease_ms, token])?;
                    out.push(Leased {
                        id,
                        payload: Bytes::from(payload),
                        attempts: attempts as u32 + 1,
                        enqueued_at,
                        token,
                    });
                }
                Ok(Ok(QueueReply::Leased(out)))
            }))
            .await?;
        Ok(match reply {
            QueueReply::Leased(v) => v,
            _ => Vec::new(),
        })
    }

    async fn extend(
        &self,
        queue: &str,
        id: &str,
        token: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        self.with_lease(queue, id, token, move |c, queue, id| {
            c.prepare_cached("UPDATE messages SET visible_at = ?3 WHERE queue = ?1 AND id = ?2")?
                .execute(params![queue, id, until])
                .map(|_| ())
        })
        .await
    }

    async fn ack(&self, queue: &str, id: &str, token: &str) -> Result<(), StoreError> {
        self.with_lease(queue, id, token, |c, queue, id| {
            c.prepare_cached("DELETE FROM messages WHERE queue = ?1 AND id = ?2")?
                .execute(params![queue, id])
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
        self.with_lease(queue, id, token, move |c, queue, id| {
            c.prepare_cached(
                "UPDATE messages SET visible_at = ?3, leased = 0, lease_token = NULL
                 WHERE queue = ?1 AND id = ?2",
            )?
            .execute(params![queue, id, not_before])
            .map(|_| ())
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
        let reason = reason.to_owned();
        self.with_lease(queue, id, token, move |c, queue, id| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO dead_messages
                 (queue, id, payload, attempts, enqueued_at, died_at, reason)
                 SELECT queue, id, payload, attempts, enqueued_at, ?3, ?4 FROM messages
                 WHERE queue = ?1 AND id = ?2",
            )?
            .execute(params![queue, id, now, reason])?;
            c.prepare_cached("DELETE FROM messages WHERE queue = ?1 AND id = ?2")?
                .execute(params![queue, id])
                .map(|_| ())
        })
        .await
    }

    async fn remove(&self, queue: &str, id: &str) -> Result<bool, StoreError> {
        let (queue, id) = (queue.to_owned(), id.to_owned());
        let n = self
            .apply(Box::new(move |c| {
                let n = c
                    .prepare_cached("DELETE FROM messages WHERE queue = ?1 AND id = ?2")?
                    .execute(params![queue, id])?;
                Ok(Ok(QueueReply::Count(n as u64)))
            }))
            .await?;
        Ok(count(n) > 0)
    }

    async fn depth(&self, queue: &str, now: i64) -> Result<QueueDepth, StoreError> {
        self.barrier().await?;
        let queue = queue.to_owned();
        self.read(move |c| {
            let (ready, oldest, delayed, in_flight): (i64, Option<i64>, i64, i64) = c
                .prepare_cached(
                    "SELECT
                   COALESCE(SUM(visible_at <= ?2), 0),
                   MIN(CASE WHEN visible_at <= ?2 THEN enqueued_at END),
                   COALESCE(SUM(visible_at > ?2 AND leased = 0), 0),
                   COALESCE(SUM(visible_at > ?2 AND leased = 1), 0)
                 FROM messages WHERE queue = ?1",
                )?
                .query_row(params![queue, now], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
            let dead: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM dead_messages WHERE queue = ?1")?
                .query_row(params![queue], |r| r.get(0))?;
            Ok(QueueDepth {
                ready: ready as u64,
                delayed: delayed as u64,
                in_flight: in_flight as u64,
                dead: dead as u64,
                oldest_ready_age_ms: oldest.map_or(0, |o| (now - o).max(0) as u64),
            })
        })
        .await
    }

    async fn depths(
        &self,
        prefix: &str,
        now: i64,
    ) -> Result<BTreeMap<String, QueueDepth>, StoreError> {
        self.barrier().await?;
        // `queue >= prefix AND queue < prefix + U+10FFFF` keeps the primary-key range scan
        // (LIKE would need escaping and defeat the index).
        let low = prefix.to_owned();
        let high = format!("{prefix}\u{10FFFF}");
        self.read(move |c| {
            let mut out: BTreeMap<String, QueueDepth> = BTreeMap::new();
            let mut stmt = c.prepare_cached(
                "SELECT queue,
                   COALESCE(SUM(visible_at <= ?3), 0),
                   MIN(CASE WHEN visible_at <= ?3 THEN enqueued_at END),
                   COALESCE(SUM(visible_at > ?3 AND leased = 0), 0),
                   COALESCE(SUM(visible_at > ?3 AND leased = 1), 0)
                 FROM messages WHERE queue >= ?1 AND queue < ?2 GROUP BY queue",
            )?;
            let rows = stmt.query_map(params![low, high, now], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            for row in rows {
                let (queue, ready, oldest, delayed, in_flight) = row?;
                out.insert(
                    queue,
                    QueueDepth {
                        ready: ready as u64,
                        delayed: delayed as u64,
                        in_flight: in_flight as u64,
                        dead: 0,
                        oldest_ready_age_ms: oldest.map_or(0, |o| (now - o).max(0) as u64),
                    },
                );
            }
            let mut stmt = c.prepare_cached(
                "SELECT queue, COUNT(*) FROM dead_messages
                 WHERE queue >= ?1 AND queue < ?2 GROUP BY queue",
            )?;
            let rows = stmt.query_map(params![low, high], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (queue, dead) = row?;
                out.entry(queue).or_default().dead = dead as u64;
            }
            Ok(out)
        })
        .await
    }

    async fn dead(&self, queue: &str, limit: usize) -> Result<Vec<DeadMessage>, StoreError> {
        self.barrier().await?;
        let queue = queue.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, queue, payload, attempts, enqueued_at, died_at, reason
                 FROM dead_messages WHERE queue = ?1 ORDER BY died_at, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![queue, limit as i64], |r| {
                Ok(DeadMessage {
                    id: r.get(0)?,
                    queue: r.get(1)?,
                    payload: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                    attempts: r.get::<_, i64>(3)? as u32,
                    enqueued_at: r.get(4)?,
                    died_at: r.get(5)?,
                    reason: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn replay_dead(
        &self,
        queue: &str,
        ids: Option<Vec<String>>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let queue = queue.to_owned();
        let n = self
            .apply(Box::new(move |c| {
                let ids: Vec<String> = match ids {
                    Some(ids) => ids,
                    None => {
                        let mut stmt =
                            c.prepare_cached("SELECT id FROM dead_messages WHERE queue = ?1")?;
                        let rows = stmt.query_map(params![queue], |r| r.get(0))?;
                        rows.collect::<rusqlite::Result<_>>()?
                    }
                };
                let mut moved = 0u64;
                for id in ids {
                    // A replay is a fresh chain of attempts: attempts start again at zero.
                    let n = c.prepare_cached("INSERT OR IGNORE INTO messages (queue, id, payload, enqueued_at, visible_at)
                         SELECT queue, id, payload, ?3, ?3 FROM dead_messages
                         WHERE queue = ?1 AND id = ?2")?.execute(
                        params![queue, id, now],
                    )?;
                    c.prepare_cached("DELETE FROM dead_messages WHERE queue = ?1 AND id = ?2")?.execute(
                        params![queue, id],
                    )?;
                    moved += n as u64;
                }
                Ok(Ok(QueueReply::Count(moved)))
            }))
            .await?;
        Ok(count(n))
    }

    async fn purge_dead(
        &self,
        queue: &str,
        ids: Option<Vec<String>>,
        before: Option<i64>,
    ) -> Result<u64, StoreError> {
        let queue = queue.to_owned();
        let n = self
            .apply(Box::new(move |c| {
                let n = match (ids, before) {
                    (Some(ids), _) => {
                        let mut total = 0;
                        for id in ids {
                            total += c
                                .prepare_cached(
                                    "DELETE FROM dead_messages WHERE queue = ?1 AND id = ?2",
                                )?
                                .execute(params![queue, id])?;
                        }
                        total
                    }
                    (None, Some(before)) => c
                        .prepare_cached(
                            "DELETE FROM dead_messages WHERE queue = ?1 AND died_at < ?2",
                        )?
                        .execute(params![queue, before])?,
                    (None, None) => c
                        .prepare_cached("DELETE FROM dead_messages WHERE queue = ?1")?
                        .execute(params![queue])?,
                };
                Ok(Ok(QueueReply::Count(n as u64)))
            }))
            .await?;
        Ok(count(n))
    }

    async fn dump(&self, prefix: &str) -> Result<Vec<StoredMessage>, StoreError> {
        self.barrier().await?;
        let prefix = prefix.to_owned();
        self.read(move |c| {
            c.prepare(
                "SELECT queue, id, payload, enqueued_at, visible_at, attempts, NULL, NULL
                 FROM messages WHERE substr(queue, 1, length(?1)) = ?1
                 UNION ALL
                 SELECT queue, id, payload, enqueued_at, died_at, attempts, died_at, reason
                 FROM dead_messages WHERE substr(queue, 1, length(?1)) = ?1
                 ORDER BY 1, 2",
            )?
            .query_map(params![prefix], |r| {
                let died_at: Option<i64> = r.get(6)?;
                Ok(StoredMessage {
                    queue: r.get(0)?,
                    id: r.get(1)?,
                    payload: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                    enqueued_at: r.get(3)?,
                    visible_at: r.get(4)?,
                    attempts: r.get::<_, i64>(5)? as u32,
                    dead: match died_at {
                        Some(died_at) => Some(Death {
                            died_at,
                            reason: r.get(7)?,
                        }),
                        None => None,
                    },
                })
            })?
            .collect()
        })
        .await
    }

    async fn restore(&self, msg: StoredMessage) -> Result<bool, StoreError> {
        let n = self
            .apply(Box::new(move |c| {
                let held: bool = c
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM messages WHERE queue = ?1 AND id = ?2)
                             OR EXISTS (SELECT 1 FROM dead_messages WHERE queue = ?1 AND id = ?2)",
                    )?
                    .query_row(params![msg.queue, msg.id], |r| r.get(0))?;
                if held {
                    return Ok(Ok(QueueReply::Count(0)));
                }
                match &msg.dead {
                    None => c
                        .prepare_cached(
                            "INSERT INTO messages (queue, id, payload, enqueued_at, visible_at,
                             attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )?
                        .execute(params![
                            msg.queue,
                            msg.id,
                            msg.payload.as_ref(),
                            msg.enqueued_at,
                            msg.visible_at,
                            msg.attempts
                        ])?,
                    Some(death) => c
                        .prepare_cached(
                            "INSERT INTO dead_messages (queue, id, payload, attempts,
                             enqueued_at, died_at, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        )?
                        .execute(params![
                            msg.queue,
                            msg.id,
                            msg.payload.as_ref(),
                            msg.attempts,
                            msg.enqueued_at,
                            death.died_at,
                            death.reason
                        ])?,
                };
                Ok(Ok(QueueReply::Count(1)))
            }))
            .await?;
        Ok(count(n) == 1)
    }
}
