//! The `notices` table: the notices follow-up packets send to people,
//! scheduled with their packet, each sent at most once by its key, with
//! what became of it. A deliverer claims a notice before sending it, so two
//! deliverers on one store never send one together; a claim runs out, and
//! one held by a process known to be gone is taken over at once (as a
//! run's lease is).

use super::{StoreError, Write, now_rfc3339};
use crate::follow_up::notices::Notice;
use crate::model::{NoticeKind, NoticeState};
use rusqlite::{Connection, OptionalExtension, params};

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

/// Claim a pending notice for `owner` until `until`; false when another
/// deliverer that is still alive holds an unexpired claim on it, or it is
/// no longer pending.
pub fn claim(tx: &Write<'_>, id: i64, owner: &str, until: &str) -> Result<bool, StoreError> {
    let held: Option<(Option<String>, Option<String>)> = tx
        .prepare_cached(
            "SELECT claimed_by, claimed_until FROM notices WHERE id = ?1 AND state = 'pending'",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((by, claimed_until)) = held else {
        return Ok(false);
    };
    if let (Some(by), Some(claimed_until)) = (by, claimed_until)
        && by != owner
        && claimed_until > now_rfc3339()
        && !super::runs::holder_is_gone(&by, owner)
    {
        return Ok(false);
    }
    tx.prepare_cached("UPDATE notices SET claimed_by = ?1, claimed_until = ?2 WHERE id = ?3")?
        .execute(params![owner, until, id])?;
    Ok(true)
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
            "UPDATE notices SET state = ?1, attempts = attempts + 1, last_error = ?2, sent_at = ?3,
                 claimed_by = NULL, claimed_until = NULL
             WHERE id = ?4 AND state = 'pending'",
        )?
        .execute(params![state.name(), error, sent_at, id])?;
    Ok(changed == 1)
}

/// A failed try: counted, and the notice due again at `retry_at`.
pub fn retry(tx: &Write<'_>, id: i64, error: &str, retry_at: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE notices SET attempts = attempts + 1, last_error = ?1, send_at = ?2,
             claimed_by = NULL, claimed_until = NULL
         WHERE id = ?3 AND state = 'pending'",
    )?
    .execute(params![error, retry_at, id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A store holding one pending notice (id 1).
    fn one_notice() -> Store {
        let store = Store::in_memory().unwrap();
        store
            .conn()
            .unwrap()
            .execute_batch(
                "INSERT INTO events (seq, source, event_id, event_type, received_at, raw)
                     VALUES (1, 's', 'e', 't', 'now', '{}');
                 INSERT INTO runs (run_id, event_seq, event_id, policy_id, policy_sha256,
                                   context, created_at, updated_at)
                     VALUES ('run-1', 1, 'e', 'p', 'sha', '{}', 'now', 'now');
                 INSERT INTO follow_ups (run_id, reason, route_to, due_at, packet, created_at)
                     VALUES ('run-1', 'revoked', 'r', 'd', '{}', 'now');
                 INSERT INTO notices (follow_up_id, kind, role, instance, notice_key, send_at,
                                      state)
                     VALUES (1, 'opened', 'r', 'mail', 'hn1-x', 'now', 'pending');",
            )
            .unwrap();
        store
    }

    #[test]
    fn a_notice_claimed_by_a_live_deliverer_is_left_to_it_until_its_claim_runs_out() {
        let mut store = one_notice();
        let me = crate::store::runs::lease_owner();
        let place = me.rsplit_once(':').unwrap().0;
        // pid 1 is alive in any namespace; a pid past the kernel's limit is not.
        let alive = format!("{place}:1");
        let gone = format!("{place}:4294967295");
        let later = crate::model::time::rfc3339_in(std::time::Duration::from_secs(600));
        let claim_as = |store: &mut Store, owner: &str, until: &str| {
            let tx = store.write().unwrap();
            let taken = claim(&tx, 1, owner, until).unwrap();
            tx.commit().unwrap();
            taken
        };
        assert!(claim_as(&mut store, &alive, &later));
        assert!(
            !claim_as(&mut store, &me, &later),
            "held by a live deliverer"
        );
        assert!(claim_as(&mut store, &alive, "2000-01-01T00:00:00.000Z"));
        assert!(claim_as(&mut store, &me, &later), "its claim ran out");
        assert!(claim_as(&mut store, &me, "2000-01-01T00:00:00.000Z"));
        assert!(claim_as(&mut store, &gone, &later));
        assert!(
            claim_as(&mut store, &me, &later),
            "held by a process that is gone"
        );
        let tx = store.write().unwrap();
        assert!(settle(&tx, 1, NoticeState::Sent, None).unwrap());
        assert!(!claim(&tx, 1, &me, &later).unwrap(), "no longer pending");
    }
}
