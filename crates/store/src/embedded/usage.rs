//! Usage aggregates, kept on write in the same transaction as the execution record.
//!
//! An execution record is written several times (pending → running → final; async retries
//! upsert the same id), so each execution's counted charge is remembered in `usage_counted`.
//! Every write of a record compares the record's charge now ([`Charge::of`]) with the one
//! counted: unchanged costs one primary-key lookup; otherwise the old charge is taken out of
//! its `(function, day)` row and the new one put in. The aggregates therefore always equal
//! the sum over the current execution records, however often each was written, and reading
//! them is a scan of one small table instead of every execution.

use holactl_types::usage::{Charge, DayUsage};
use rusqlite::{params, Connection, OptionalExtension};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    function TEXT NOT NULL,
    day INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    billed_ms INTEGER NOT NULL,
    mb_ms INTEGER NOT NULL,
    PRIMARY KEY (function, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_counted (
    execution_id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    day INTEGER NOT NULL,
    billed_ms INTEGER NOT NULL,
    mb_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

fn add(conn: &Connection, c: &Charge, sign: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO usage (function, day, requests, billed_ms, mb_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(function, day) DO UPDATE SET requests = requests + excluded.requests,
         billed_ms = billed_ms + excluded.billed_ms, mb_ms = mb_ms + excluded.mb_ms",
    )?
    .execute(params![
        c.function,
        c.day,
        sign,
        sign * c.billed_ms as i64,
        sign * c.mb_ms as i64
    ])?;
    Ok(())
}

/// Brings the aggregates in line with execution `id` now being charged `charge`.
pub(super) fn account(
    conn: &Connection,
    id: &str,
    charge: Option<&Charge>,
) -> rusqlite::Result<()> {
    let counted: Option<Charge> = conn
        .query_row(
            "SELECT function, day, billed_ms, mb_ms FROM usage_counted WHERE execution_id = ?1",
            params![id],
            |row| {
                Ok(Charge {
                    function: row.get(0)?,
                    day: row.get(1)?,
                    billed_ms: row.get::<_, i64>(2)? as u64,
                    mb_ms: row.get::<_, i64>(3)? as u64,
                })
            },
        )
        .optional()?;
    if counted.as_ref() == charge {
        return Ok(());
    }
    if let Some(old) = &counted {
        add(conn, old, -1)?;
    }
    match charge {
        Some(new) => {
            add(conn, new, 1)?;
            conn.prepare_cached(
                "INSERT INTO usage_counted (execution_id, function, day, billed_ms, mb_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(execution_id) DO UPDATE SET function = excluded.function,
                 day = excluded.day, billed_ms = excluded.billed_ms, mb_ms = excluded.mb_ms",
            )?
            .execute(params![
                id,
                new.function,
                new.day,
                new.billed_ms as i64,
                new.mb_ms as i64
            ])?;
        }
        None => {
            conn.prepare_cached("DELETE FROM usage_counted WHERE execution_id = ?1")?
                .execute(params![id])?;
        }
    }
    Ok(())
}

/// Aggregates from `since_day` on, optionally one function's.
pub(super) fn read(
    conn: &Connection,
    function: Option<&str>,
    since_day: Option<i64>,
) -> rusqlite::Result<Vec<DayUsage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT function, day, requests, billed_ms, mb_ms FROM usage
         WHERE (?1 IS NULL OR function = ?1) AND day >= ?2 AND requests > 0
         ORDER BY day, function",
    )?;
    let rows = stmt.query_map(params![function, since_day.unwrap_or(i64::MIN)], |row| {
        Ok(DayUsage {
            function: row.get(0)?,
            day: row.get(1)?,
            requests: row.get::<_, i64>(2)? as u64,
            billed_ms: row.get::<_, i64>(3)? as u64,
            mb_ms: row.get::<_, i64>(4)? as u64,
        })
    })?;
    rows.collect()
}
