//! What the store can say of itself in numbers, for `/metrics`: the
//! `counters` its triggers keep as changes happen (runs by outcome,
//! follow-ups by reason, decisions by verdict, duplicates, times to
//! acknowledge and resolve, the handoff per policy and role), and the
//! follow-ups open and overdue now.

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

/// The handoff by policy and role, from the `handoffs/MEASURE/POLICY/ROLE`
/// counters the store's triggers keep (migration 11): no table is scanned.
pub fn handoffs(counters: &BTreeMap<String, f64>) -> Vec<Handoffs> {
    let mut rows: BTreeMap<(String, String), Handoffs> = BTreeMap::new();
    for (name, n) in counters.range("handoffs/".to_string()..) {
        let Some(rest) = name.strip_prefix("handoffs/") else {
            break;
        };
        // A role name has no '/'; a policy id might.
        let Some((measure, rest)) = rest.split_once('/') else {
            continue;
        };
        let Some((policy, role)) = rest.rsplit_once('/') else {
            continue;
        };
        let row = rows
            .entry((policy.to_string(), role.to_string()))
            .or_insert_with(|| Handoffs {
                policy: policy.to_string(),
                role: role.to_string(),
                ..Handoffs::default()
            });
        let field = match measure {
            "opened" => &mut row.volume,
            "rework" => &mut row.rework,
            "acknowledged" => &mut row.acknowledged,
            "acknowledged-seconds" => &mut row.acknowledge_seconds,
            "resolved" => &mut row.resolved,
            "resolved-seconds" => &mut row.resolve_seconds,
            "unnecessary" => &mut row.unnecessary,
            _ => continue,
        };
        *field = *n;
    }
    rows.into_values().collect()
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

    /// Runs that ended in the last `days` days, by day (UTC) and outcome,
    /// newest day first: the console's outcomes over time.
    pub fn outcomes_by_day(&self, days: u32) -> Result<Vec<(String, String, i64)>, StoreError> {
        let since = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT substr(updated_at, 1, 10) AS day, outcome, COUNT(*) FROM runs
             WHERE outcome IS NOT NULL AND updated_at >= ?1
             GROUP BY day, outcome ORDER BY day DESC, outcome",
        )?;
        let rows = stmt.query_map([super::rfc3339(since)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
