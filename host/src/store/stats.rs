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

/// The handoff to people, for one policy and the role its packets go to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Handoffs {
    pub policy: String,
    pub role: String,
    /// Packets opened.
    pub volume: f64,
    pub acknowledged: f64,
    pub acknowledge_seconds: f64,
    pub resolved: f64,
    pub resolve_seconds: f64,
    /// Packets of runs a person had resumed before: the run halted again.
    pub rework: f64,
    /// Packets resolved as needing no action: false positives.
    pub unnecessary: f64,
}

impl Store {
    /// The handoff by policy and role. A scan of the follow-ups, grouped:
    /// as many rows as policies times roles.
    pub fn handoffs(&self) -> Result<Vec<Handoffs>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT r.policy_id, f.route_to, COUNT(*),
                COUNT(f.acknowledged_at),
                COALESCE(SUM((julianday(f.acknowledged_at) - julianday(f.created_at)) * 86400.0), 0),
                COUNT(f.resolved_at),
                COALESCE(SUM((julianday(f.resolved_at) - julianday(f.created_at)) * 86400.0), 0),
                COALESCE(SUM(EXISTS (SELECT 1 FROM follow_ups e WHERE e.run_id = f.run_id
                    AND e.id < f.id AND e.resolution = 'resume')), 0),
                COALESCE(SUM(f.verdict = 'unnecessary'), 0)
             FROM follow_ups f JOIN runs r ON r.run_id = f.run_id
             GROUP BY r.policy_id, f.route_to ORDER BY r.policy_id, f.route_to",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Handoffs {
                policy: r.get(0)?,
                role: r.get(1)?,
                volume: r.get(2)?,
                acknowledged: r.get(3)?,
                acknowledge_seconds: r.get(4)?,
                resolved: r.get(5)?,
                resolve_seconds: r.get(6)?,
                rework: r.get(7)?,
                unnecessary: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

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
