//! The embedded backend: SQLite (WAL, `synchronous=FULL`) for metadata and executions, a
//! directory of sha256-named files for blobs.
//!
//! One writer thread owns the write connection and drains its queue into one transaction per
//! round (group commit); readers use their own connection, so reads never wait for fsync.

mod blobs;
mod queue;
mod usage;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use holactl_types::ExecutionRecord;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

pub use blobs::FsBlobStore;
use writer::{Op, Reply};

use crate::{
    Entry, ExecutionQuery, ExecutionStore, Kv, KvWatch, StoreError, StoredLog, Stores, UsageQuery,
};
use holactl_types::usage::DayUsage;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    function TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_function ON executions (function, seq);
CREATE TABLE IF NOT EXISTS logs (
    execution_id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    truncated INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The embedded store: one SQLite database plus a blob directory under a data dir.
pub struct EmbeddedStore {
    writer: mpsc::UnboundedSender<Op>,
    reader: Arc<Mutex<Connection>>,
    /// Committed key/value changes, for watches. The writer is the only process writing the
    /// database, so its own commits are every change there is.
    changes: writer::Changes,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(StoreError::unavailable)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(StoreError::unavailable)?;
    // Every statement the store runs stays parsed (the default keeps 16).
    conn.set_prepared_statement_cache_capacity(128);
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
         PRAGMA cache_size=-16384;",
    )
    .map_err(StoreError::unavailable)?;
    Ok(conn)
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir`: `dir/holactl.db` and `dir/blobs/`.
    pub fn open(dir: &Path) -> Result<Stores, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::unavailable)?;
        let db = dir.join("holactl.db");
        let write_conn = open_connection(&db)?;
        write_conn
            .execute_batch(SCHEMA)
            .map_err(StoreError::unavailable)?;
        write_conn
            .execute_batch(queue::SCHEMA)
            .map_err(StoreError::unavailable)?;
        write_conn
            .execute_batch(usage::SCHEMA)
            .map_err(StoreError::unavailable)?;
        let read_conn = open_connection(&db)?;
        let (changes, _) = tokio::sync::broadcast::channel(crate::WATCH_BUFFER);
        let writer = writer::spawn(write_conn, changes.clone())?;
        let store = Arc::new(EmbeddedStore {
            writer,
            reader: Arc::new(Mutex::new(read_conn)),
            changes,
        });
        let blobs = Arc::new(FsBlobStore::open(dir.join("blobs"))?);
        Ok(Stores {
            kv: store.clone(),
            queues: store.clone(),
            executions: store,
            blobs,
            backend: "embedded",
        })
    }

    /// The database file inside `dir`.
    pub fn database_path(dir: &Path) -> PathBuf {
        dir.join("holactl.db")
    }

    async fn write(&self, make: impl FnOnce(Reply) -> Op) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(make(tx))
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }

    /// Waits until every write queued before this call is committed.
    pub(super) async fn barrier(&self) -> Result<(), StoreError> {
        self.write(|reply| Op::Barrier { reply }).await.map(|_| ())
    }

    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .map_err(|_| StoreError::Unavailable("reader poisoned".into()))?;
            f(&conn).map_err(StoreError::unavailable)
        })
        .await
        .map_err(StoreError::unavailable)?
    }
}

#[async_trait]
impl Kv for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT value, revision FROM kv WHERE key = ?1")?
                .query_row(params![key], |row| {
                    Ok(Entry {
                        value: Bytes::from(row.get::<_, Vec<u8>>(0)?),
                        revision: row.get::<_, i64>(1)? as u64,
                    })
                })
                .optional()
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64, StoreError> {
        let key = key.to_owned();
        self.write(|reply| Op::KvWrite {
            key,
            value,
            expect: writer::Expect::Absent,
            reply,
        })
        .await
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64, StoreError> {
        let key = key.to_owned();
        self.write(|reply| Op::KvWrite {
            key,
            value,
            expect: writer::Expect::Any,
            reply,
        })
        .await
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, StoreError> {
        let key = key.to_owned();
        self.write(|reply| Op::KvWrite {
            key,
            value,
            expect: writer::Expect::Revision(revision),
            reply,
        })
        .await
    }

    async fn delete(&self, key: &str, revision: Option<u64>) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(|reply| Op::KvDelete {
            key,
            revision,
            reply,
        })
        .await
        .map(|_| ())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Entry)>, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |c| {
            // Keys are compared bytewise; everything starting with `prefix` sorts between
            // `prefix` and `prefix` followed by the largest code point.
            let upper = format!("{prefix}\u{10FFFF}");
            let mut stmt = c.prepare_cached(
                "SELECT key, value, revision FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key",
            )?;
            let rows = stmt.query_map(params![prefix, upper], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    Entry {
                        value: Bytes::from(row.get::<_, Vec<u8>>(1)?),
                        revision: row.get::<_, i64>(2)? as u64,
                    },
                ))
            })?;
            rows.collect()
        })
        .await
    }

    async fn watch(&self, prefix: &str) -> Result<KvWatch, StoreError> {
        use tokio::sync::broadcast::error::RecvError;
        // Subscribed before returning, so every commit after this call is seen.
        let mut changes = self.changes.subscribe();
        let prefix = prefix.to_owned();
        let (tx, rx) = mpsc::channel(crate::WATCH_BUFFER);
        let task = tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(event) if event.key().starts_with(&prefix) => {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        // A gap would leave the watcher's cache wrong: end the watch instead.
                        tracing::warn!(missed, %prefix, "key/value watcher fell behind; ending it");
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(KvWatch::new(rx, task))
    }
}

fn execution_op(exec: ExecutionRecord, log: Option<StoredLog>, reply: Option<Reply>) -> Op {
    Op::Execution {
        body: serde_json::to_string(&exec).unwrap_or_default(),
        charge: holactl_types::usage::Charge::of(&exec),
        initial: crate::is_initial(&exec),
        id: exec.id,
        function: exec.function,
        created_at: exec.created_at,
        log,
        reply,
    }
}

fn parse_record(body: &str) -> rusqlite::Result<ExecutionRecord> {
    serde_json::from_str(body).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

#[async_trait]
impl ExecutionStore for EmbeddedStore {
    async fn record(
        &self,
        exec: ExecutionRecord,
        log: Option<StoredLog>,
    ) -> Result<(), StoreError> {
        self.write(|reply| execution_op(exec, log, Some(reply)))
            .await
            .map(|_| ())
    }

    fn record_later(&self, exec: ExecutionRecord, log: Option<StoredLog>) {
        if self.writer.send(execution_op(exec, log, None)).is_err() {
            tracing::error!("store writer stopped; an execution record was dropped");
        }
    }

    async fn flush(&self, _id: &str) -> Result<(), StoreError> {
        // Records and queue operations go through the one writer, in call order: a queue
        // operation queued after a record is committed with it or after it.
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.barrier().await?;
        let id = id.to_owned();
        self.read(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM executions WHERE id = ?1",
                    params![id],
                    |row| row.get(0),
                )
                .optional()?;
            body.map(|b| parse_record(&b)).transpose()
        })
        .await
    }

    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        self.barrier().await?;
        self.read(|c| {
            c.prepare("SELECT id FROM executions ORDER BY seq")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
        .await
    }

    async fn list(&self, query: ExecutionQuery) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.barrier().await?;
        self.read(move |c| {
            let before: i64 = match &query.before {
                Some(id) => c
                    .query_row(
                        "SELECT seq FROM executions WHERE id = ?1",
                        params![id],
                        |row| row.get(0),
                    )
                    .optional()?
                    .unwrap_or(0),
                None => i64::MAX,
            };
            let limit = query.limit.clamp(1, 1000) as i64;
            let mut out = Vec::new();
            match &query.function {
                Some(function) => {
                    let mut stmt = c.prepare_cached(
                        "SELECT body FROM executions WHERE function = ?1 AND seq < ?2
                         ORDER BY seq DESC LIMIT ?3",
                    )?;
                    let rows = stmt
                        .query_map(params![function, before, limit], |r| r.get::<_, String>(0))?;
                    for body in rows {
                        out.push(parse_record(&body?)?);
                    }
                }
                None => {
                    let mut stmt = c.prepare_cached(
                        "SELECT body FROM executions WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
                    )?;
                    let rows = stmt.query_map(params![before, limit], |r| r.get::<_, String>(0))?;
                    for body in rows {
                        out.push(parse_record(&body?)?);
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn log(&self, id: &str) -> Result<Option<StoredLog>, StoreError> {
        self.barrier().await?;
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT data, truncated FROM logs WHERE execution_id = ?1")?
                .query_row(params![id], |row| {
                    Ok(StoredLog {
                        data: row.get(0)?,
                        truncated: row.get::<_, i64>(1)? != 0,
                    })
                })
                .optional()
        })
        .await
    }

    async fn usage(&self, query: UsageQuery) -> Result<Vec<DayUsage>, StoreError> {
        self.barrier().await?;
        self.read(move |c| usage::read(c, query.function.as_deref(), query.since_day))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Stores) {
        let dir = tempfile::tempdir().unwrap();
        let stores = EmbeddedStore::open(dir.path()).unwrap();
        (dir, stores)
    }

    #[tokio::test]
    async fn kv_conformance() {
        let (_dir, stores) = open();
        crate::conformance::kv(stores.kv.as_ref()).await;
    }

    #[tokio::test]
    async fn kv_watch_conformance() {
        let (_dir, stores) = open();
        crate::conformance::kv_watch(stores.kv.as_ref()).await;
    }

    #[tokio::test]
    async fn execution_conformance() {
        let (_dir, stores) = open();
        crate::conformance::executions(stores.executions.as_ref()).await;
    }

    #[tokio::test]
    async fn usage_conformance() {
        let (_dir, stores) = open();
        crate::conformance::usage(stores.executions.as_ref()).await;
    }

    #[tokio::test]
    async fn usage_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let stores = EmbeddedStore::open(dir.path()).unwrap();
            crate::conformance::usage(stores.executions.as_ref()).await;
            stores
                .executions
                .usage(UsageQuery::default())
                .await
                .unwrap()
        };
        let stores = EmbeddedStore::open(dir.path()).unwrap();
        let after = stores
            .executions
            .usage(UsageQuery::default())
            .await
            .unwrap();
        assert_eq!(before, after);
        assert!(!after.is_empty());
    }

    #[tokio::test]
    async fn queue_conformance() {
        let (_dir, stores) = open();
        crate::conformance::queues(stores.queues.as_ref()).await;
    }

    #[tokio::test]
    async fn queue_lease_conformance() {
        let (_dir, stores) = open();
        crate::conformance::queue_leases(stores.queues.as_ref()).await;
    }

    #[tokio::test]
    async fn queue_dump_conformance() {
        let (_dir, from) = open();
        let (_dir2, to) = open();
        crate::conformance::queue_dump(from.queues.as_ref(), to.queues.as_ref()).await;
    }

    #[tokio::test]
    async fn blob_conformance() {
        let (_dir, stores) = open();
        crate::conformance::blobs(stores.blobs.as_ref()).await;
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let rev = {
            let stores = EmbeddedStore::open(dir.path()).unwrap();
            stores.kv.put("a", Bytes::from_static(b"1")).await.unwrap();
            stores.kv.delete("a", None).await.unwrap();
            stores.kv.put("b", Bytes::from_static(b"2")).await.unwrap()
        };
        let stores = EmbeddedStore::open(dir.path()).unwrap();
        let entry = stores.kv.get("b").await.unwrap().unwrap();
        assert_eq!(entry.revision, rev);
        // Revisions keep growing across restarts, even past deleted keys.
        let next = stores.kv.put("c", Bytes::from_static(b"3")).await.unwrap();
        assert!(next > rev);
    }
}
