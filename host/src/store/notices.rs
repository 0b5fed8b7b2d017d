//! The `notices` table: the notices follow-up packets send to people,
//! scheduled with their packet, each sent at most once by its key, with
//! what became of it.

use super::{StoreError, Write, now_rfc3339};
use crate::follow_up::notices::Notice;
use crate::model::{NoticeKind, NoticeState};
use rusqlite::{Connection, params};

/// A stored notice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NoticeRow {
    pub id: i64,
    pub follow_up_id: i64,
    pub kind: NoticeKind,
    pub role: String,
    pub instance: String,
    pub key: String,
    pub send_at: String,
    pub state: NoticeState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
}

/// Schedule a packet's notices (in the transaction that opens it).
pub fn schedule(tx: &Write<'_>, follow_up_id: i64, notices: &[Notice]) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO notices (follow_up_id, kind, role, instance, notice_key, send_at, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
    )?;
    for n in notices {
        stmt.execute(params![
            follow_up_id,
            n.kind.name(),
            n.role,
            n.instance,
            n.key,
            n.send_at
        ])?;
    }
    Ok(())
}

const SELECT: &str = "SELECT id, follow_up_id, kind, role, instance, notice_key, send_at, state,
    attempts, last_error, sent_at FROM notices";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<(NoticeRow, String, String)> {
    Ok((
        NoticeRow {
            id: r.get(0)?,
            follow_up_id: r.get(1)?,
            kind: NoticeKind::Opened,
            role: r.get(3)?,
            instance: r.get(4)?,
            key: r.get(5)?,
            send_at: r.get(6)?,
            state: NoticeState::Pending,
            attempts: r.get(8)?,
            last_error: r.get(9)?,
            sent_at: r.get(10)?,
        },
        r.get(2)?,
        r.get(7)?,
    ))
}

fn decode((mut row, kind, state): (NoticeRow, String, String)) -> Result<NoticeRow, StoreError> {
    row.kind = NoticeKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("notice {}: kind {kind:?}", row.id)))?;
    row.state = NoticeState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("notice {}: state {state:?}", row.id)))?;
    Ok(row)
}

/// Pending notices whose time has come at `now`, oldest first, at most `limit`.
pub fn due(conn: &Connection, now: &str, limit: usize) -> Result<Vec<NoticeRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE state = 'pending' AND send_at <= ?1 ORDER BY send_at, id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![now, limit as i64], read)?;
    rows.map(|r| decode(r?)).collect()
}

/// A packet's notices, in the order they were scheduled.
pub fn for_follow_up(conn: &Connection, follow_up_id: i64) -> Result<Vec<NoticeRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE follow_up_id = ?1 ORDER BY id"))?;
    let rows = stmt.query_map([follow_up_id], read)?;
    rows.map(|r| decode(r?)).collect()
}

/// Move a pending notice to `state` (sent, failed or cancelled); false when
/// it was no longer pending.
pub fn settle(
    tx: &Write<'_>,
    id: i64,
    state: NoticeState,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let sent_at = (state == NoticeState::Sent).then(now_rfc3339);
    let changed = tx
        .prepare_cached(
            "UPDATE notices SET state = ?1, attempts = attempts + 1, last_error = ?2, sent_at = ?3
             WHERE id = ?4 AND state = 'pending'",
        )?
        .execute(params![state.name(), error, sent_at, id])?;
    Ok(changed == 1)
}

/// A failed try: counted, and the notice due again at `retry_at`.
pub fn retry(tx: &Write<'_>, id: i64, error: &str, retry_at: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE notices SET attempts = attempts + 1, last_error = ?1, send_at = ?2
         WHERE id = ?3 AND state = 'pending'",
    )?
    .execute(params![error, retry_at, id])?;
    Ok(())
}
