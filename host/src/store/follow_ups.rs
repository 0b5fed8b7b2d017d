//! The `follow_ups` table: packets handed to people, and their resolution
//! (who decided what, when). The packet is stored whole here; the audit
//! chain gets only its reason and identifiers.

use super::Write;
use super::{StoreError, now_rfc3339};
use crate::follow_up::{FollowUp, Packet, Resolution};
use rusqlite::{Connection, OptionalExtension, params};

pub fn insert(tx: &Write<'_>, packet: &Packet) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO follow_ups (run_id, reason, route_to, due_at, packet, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        packet.run_id,
        packet.reason.name(),
        packet.route_to,
        packet.due_at,
        kept_packet(packet),
        now_rfc3339()
    ])?;
    Ok(tx.last_insert_rowid())
}

/// The packet as stored: every value from outside in its bounded form.
fn kept_packet(packet: &Packet) -> String {
    let mut value = serde_json::to_value(packet).expect("a packet encodes");
    crate::kept::bound_json(&mut value);
    value.to_string()
}

const SELECT: &str = "SELECT id, created_at, packet, resolution, resolved_by, resolved_note,
    resolved_at, acknowledged_by, acknowledged_at, verdict FROM follow_ups";

/// A row as stored, before the packet is decoded.
struct RawFollowUp {
    id: i64,
    created_at: String,
    packet: String,
    resolution: Option<String>,
    resolved_by: Option<String>,
    resolved_note: Option<String>,
    resolved_at: Option<String>,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<String>,
    verdict: Option<String>,
}

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawFollowUp> {
    Ok(RawFollowUp {
        id: r.get(0)?,
        created_at: r.get(1)?,
        packet: r.get(2)?,
        resolution: r.get(3)?,
        resolved_by: r.get(4)?,
        resolved_note: r.get(5)?,
        resolved_at: r.get(6)?,
        acknowledged_by: r.get(7)?,
        acknowledged_at: r.get(8)?,
        verdict: r.get(9)?,
    })
}

fn decode(raw: RawFollowUp) -> Result<FollowUp, StoreError> {
    let id = raw.id;
    Ok(FollowUp {
        id,
        created_at: raw.created_at,
        packet: serde_json::from_str(&raw.packet)
            .map_err(|e| StoreError::Corrupt(format!("follow-up {id}: {e}")))?,
        resolution: raw
            .resolution
            .map(|r| {
                Resolution::parse(&r)
                    .ok_or_else(|| StoreError::Corrupt(format!("follow-up {id}: resolution {r:?}")))
            })
            .transpose()?,
        resolved_by: raw.resolved_by,
        resolved_note: raw.resolved_note,
        resolved_at: raw.resolved_at,
        acknowledged_by: raw.acknowledged_by,
        acknowledged_at: raw.acknowledged_at,
        verdict: raw
            .verdict
            .map(|v| {
                crate::model::ResolutionVerdict::parse(&v)
                    .ok_or_else(|| StoreError::Corrupt(format!("follow-up {id}: verdict {v:?}")))
            })
            .transpose()?,
    })
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<FollowUp>, StoreError> {
    conn.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?
        .query_row([id], read)
        .optional()?
        .map(decode)
        .transpose()
}

/// Which follow-ups [`list`] returns.
#[derive(Debug, Default, Clone, Copy)]
pub struct Which<'a> {
    /// Resolved ones too, not only those still open.
    pub resolved_too: bool,
    /// Only those routed to this role.
    pub route_to: Option<&'a str>,
    /// Only open ones whose due time is before this one (RFC 3339, as
    /// [`crate::store::now_rfc3339`] writes it): overdue then.
    pub due_before: Option<&'a str>,
}

/// Follow-ups, newest first.
pub fn list(conn: &Connection, which: Which<'_>) -> Result<Vec<FollowUp>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "{SELECT} WHERE (?1 OR resolution IS NULL) AND (?2 IS NULL OR route_to = ?2)
           AND (?3 IS NULL OR (resolution IS NULL AND due_at < ?3)) ORDER BY id DESC"
    ))?;
    let rows = stmt.query_map(
        params![which.resolved_too, which.route_to, which.due_before],
        read,
    )?;
    rows.map(|r| decode(r?)).collect()
}

/// How many open follow-ups are past their due time at `now`.
pub fn overdue(conn: &Connection, now: &str) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM follow_ups WHERE resolution IS NULL AND due_at < ?1",
        [now],
        |r| r.get(0),
    )?)
}

/// Whether a person resumed the run from its latest follow-up (resolved
/// it with `resume`).
pub fn latest_resumed(conn: &Connection, run_id: &str) -> Result<bool, StoreError> {
    let latest: Option<Option<String>> = conn
        .prepare_cached(
            "SELECT resolution FROM follow_ups WHERE run_id = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([run_id], |r| r.get(0))
        .optional()?;
    Ok(latest.flatten().as_deref() == Some(Resolution::Resume.name()))
}

/// A run's follow-ups, oldest first.
pub fn for_run(conn: &Connection, run_id: &str) -> Result<Vec<FollowUp>, StoreError> {
    let mut stmt = conn.prepare(&format!("{SELECT} WHERE run_id = ?1 ORDER BY id"))?;
    let rows = stmt.query_map([run_id], read)?;
    rows.map(|r| decode(r?)).collect()
}

/// Record a resolution (and whether the packet was needed, when said);
/// false when the follow-up was already resolved.
pub fn resolve(
    tx: &Write<'_>,
    id: i64,
    resolution: Resolution,
    by: &str,
    note: &str,
    verdict: Option<crate::model::ResolutionVerdict>,
) -> Result<bool, StoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE follow_ups SET resolution = ?1, resolved_by = ?2, resolved_note = ?3,
             resolved_at = ?4, acknowledged_by = COALESCE(acknowledged_by, ?2),
             acknowledged_at = COALESCE(acknowledged_at, ?4), verdict = ?6
         WHERE id = ?5 AND resolution IS NULL",
        )?
        .execute(params![
            resolution.name(),
            by,
            note,
            now_rfc3339(),
            id,
            verdict.map(|v| v.name())
        ])?;
    Ok(changed == 1)
}

/// Record that `by` has taken an open follow-up on; false when it was
/// already acknowledged or is resolved.
pub fn acknowledge(tx: &Write<'_>, id: i64, by: &str) -> Result<bool, StoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE follow_ups SET acknowledged_by = ?1, acknowledged_at = ?2
         WHERE id = ?3 AND resolution IS NULL AND acknowledged_at IS NULL",
        )?
        .execute(params![by, now_rfc3339(), id])?;
    Ok(changed == 1)
}
