//! The `events` table: each delivery recorded once (see pipeline::intake).

use crate::model::{CloudEvent, DuplicateOf};
use crate::store::{StoreError, now_rfc3339};
use rusqlite::{Connection, OptionalExtension, params};

/// An event already stored under the same (source, id) or business key.
pub fn find(
    conn: &Connection,
    source: &str,
    event_id: &str,
    business_key: Option<&str>,
) -> Result<Option<(i64, DuplicateOf)>, StoreError> {
    let by_id: Option<i64> = conn
        .prepare_cached("SELECT seq FROM events WHERE source = ?1 AND event_id = ?2")?
        .query_row(params![source, event_id], |r| r.get(0))
        .optional()?;
    if let Some(seq) = by_id {
        return Ok(Some((seq, DuplicateOf::EventId)));
    }
    let Some(key) = business_key else {
        return Ok(None);
    };
    let by_key: Option<i64> = conn
        .prepare_cached("SELECT seq FROM events WHERE business_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    Ok(by_key.map(|seq| (seq, DuplicateOf::BusinessKey)))
}

pub fn insert(
    conn: &Connection,
    event: &CloudEvent,
    business_key: Option<&str>,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO events (source, event_id, event_type, business_key, received_at, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        event.source,
        event.id,
        event.event_type,
        business_key,
        now_rfc3339(),
        event.raw.to_string()
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Every event stored, oldest first: its source and id.
pub fn list(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT source, event_id FROM events ORDER BY seq")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
