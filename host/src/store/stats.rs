//! What the store can say of itself in numbers, for `/metrics`: the
//! `counters` its triggers keep as changes happen (runs by outcome,
//! follow-ups by reason, decisions by verdict, duplicates, times to
//! acknowledge and resolve), and the follow-ups open and overdue now.

use super::{Store, StoreError};
use std::collections::BTreeMap;

/// The store's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Every counter by name (`runs/completed`, `follow-ups/revoked`...).
    pub counters: BTreeMap<String, f64>,
    /// Follow-ups waiting for a person.
    pub open: f64,
    /// Open follow-ups past their due time.
    pub overdue: f64,
}

impl Store {
    /// The store's numbers, read in one turn.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let conn = self.conn()?;
        // Kept as they happen, by the store's own triggers (migration 9):
        // one small table, however long the store's history.
        let mut counters = BTreeMap::new();
        let mut stmt = conn.prepare_cached("SELECT name, n FROM counters ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
        for row in rows {
            let (name, n) = row?;
            counters.insert(name, n);
        }
        // Open ones have an index of their own; the overdue are among them.
        let open: f64 = conn.query_row(
            "SELECT COUNT(*) FROM follow_ups WHERE resolution IS NULL",
            [],
            |r| r.get(0),
        )?;
        let overdue = super::follow_ups::overdue(&conn, &super::now_rfc3339())? as f64;
        Ok(Stats {
            counters,
            open,
            overdue,
        })
    }
}
