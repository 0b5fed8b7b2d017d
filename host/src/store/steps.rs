//! The `steps` table: each planned step of a run and where it stands.
//!
//! Each step's state moves only as its lifecycle allows
//! ([`crate::model::step`]).

use super::Write;
use super::{StoreError, now_rfc3339};
use crate::policy::plan::PlannedStep;
use rusqlite::{Connection, params};
use serde::Serialize;

pub use crate::model::StepState;

/// A stored step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRow {
    pub plan: PlannedStep,
    pub state: StepState,
    pub attempts: u32,
    pub error: Option<String>,
    pub updated_at: String,
}

impl StepRow {
    /// Whether the step may have written to its target: it was verified,
    /// or its intent was recorded (a failed step keeps `attempts` above
    /// zero once its intent was).
    pub fn may_have_written(&self) -> bool {
        match self.state {
            StepState::Verified | StepState::Observed => true,
            StepState::Failed => self.attempts > 0,
            StepState::Planned | StepState::Skipped => false,
        }
    }
}

/// Store a run's plan, every step `planned`.
pub fn insert_plan(tx: &Write<'_>, run_id: &str, steps: &[PlannedStep]) -> Result<(), StoreError> {
    let now = now_rfc3339();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO steps (run_id, position, step_id, adapter, plan, idem_key, state, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned', ?7)",
    )?;
    for (position, step) in steps.iter().enumerate() {
        let plan = serde_json::to_string(step).expect("a plan encodes");
        stmt.execute(params![
            run_id,
            position as i64,
            step.id,
            step.adapter,
            plan,
            step.key,
            now
        ])?;
    }
    Ok(())
}

/// A run's steps in plan order.
pub fn for_run(conn: &Connection, run_id: &str) -> Result<Vec<StepRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan, state, attempts, error, updated_at FROM steps
         WHERE run_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map([run_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (plan, state, attempts, error, updated_at) = row?;
        Ok(StepRow {
            plan: serde_json::from_str(&plan)
                .map_err(|e| StoreError::Corrupt(format!("stored plan: {e}")))?,
            state: StepState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("step state {state:?}")))?,
            attempts,
            error,
            updated_at,
        })
    })
    .collect()
}

/// Move a step to `state`; `attempts` adds to its count of write attempts.
pub fn set_state(
    tx: &Write<'_>,
    run_id: &str,
    step_id: &str,
    state: StepState,
    attempts: u32,
    error: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE steps SET state = ?1, attempts = attempts + ?2, error = ?3, updated_at = ?4
         WHERE run_id = ?5 AND step_id = ?6",
    )?
    .execute(params![
        state.name(),
        attempts,
        error,
        now_rfc3339(),
        run_id,
        step_id
    ])?;
    Ok(())
}
