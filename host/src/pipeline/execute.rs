//! Execute: one step at a time. Look first ([`look`]): if the end state
//! already holds, the step is skipped as idempotent (or, when the target
//! carries this step's own key, recognised as our write from before a
//! crash). Otherwise the driver records the intent, revalidating first when
//! the policy asks for it, and [`write`] applies the action with the step's
//! idempotency key; confirm follows.
//!
//! The intent is committed before the write. A step's end state (verified
//! or skipped) is committed with the next transition (the next step's
//! intent, or the run's outcome): it only repeats what the target shows,
//! so a stop before then costs a second look, never a second write.

use super::RunError;
use super::calls::AdapterCalls;
use super::halt::Halt;
use super::record::Row;
use crate::model::{Reason, StepEvent};
use crate::policy::condition::{self, Mismatch, View};
use crate::policy::plan::PlannedStep;
use serde_json::json;

/// What a look at a step's target found.
#[derive(Debug)]
pub enum Look {
    /// The end state holds: the step moves by `event` (found done, or found
    /// ours), with these audit rows; `seen` is what the target showed.
    Done {
        event: StepEvent,
        rows: Vec<Row>,
        seen: View,
    },
    /// It must be written; the intent's audit row.
    Write { row: Row, seen: View },
}

/// The step's identifiers, as its audit rows carry them.
pub fn ids(step: &PlannedStep) -> serde_json::Value {
    json!({
        "step": step.id, "adapter": step.adapter, "kind": step.record.kind,
        "id": step.record.id, "action": step.action.name(), "key": step.key,
    })
}

/// The identifiers with more.
pub fn with(step: &PlannedStep, extra: serde_json::Value) -> serde_json::Value {
    let mut v = ids(step);
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

/// Observe the step's target and decide.
pub async fn look(
    calls: &mut AdapterCalls,
    step: &PlannedStep,
) -> Result<Result<Look, Halt>, RunError> {
    let before = match calls.observe(&step.adapter, &step.record_ref()).await? {
        Ok(o) => View::from(&o),
        Err(halt) => return Ok(Err(halt)),
    };
    let sha = calls.adapter_sha(&step.adapter);
    if condition::check(&step.done_when, &before, Some(&step.key)).is_err() {
        if let Some(halt) = not_to_be_moved(step, &before) {
            return Ok(Err(halt));
        }
        let row = Row::new("step-observed", with(step, json!({ "done": false }))).by(sha);
        return Ok(Ok(Look::Write { row, seen: before }));
    }
    let look = if before.applied_keys.contains(&step.key) {
        // Written by an earlier attempt that stopped before recording it.
        Look::Done {
            event: StepEvent::FoundOurs,
            rows: vec![
                Row::new("step-applied", with(step, json!({ "recovered": true }))).by(sha.clone()),
                Row::new("step-verified", ids(step)).by(sha),
            ],
            seen: before,
        }
    } else {
        Look::Done {
            event: StepEvent::FoundDone,
            rows: vec![
                Row::new("step-observed", with(step, json!({ "done": true }))).by(sha.clone()),
                Row::new(
                    "step-skipped",
                    with(step, json!({ "why": "already in its end state" })),
                )
                .by(sha),
            ],
            seen: before,
        }
    };
    Ok(Ok(look))
}

/// Why a record that is not in its end state may not be written: it is in
/// a state the step may not move it out of (`from-states`). A record that
/// is not there is the write's to report (`not-found`).
fn not_to_be_moved(step: &PlannedStep, seen: &View) -> Option<Halt> {
    if step.from_states.is_empty() || !seen.exists || step.from_states.contains(&seen.state) {
        return None;
    }
    let expected = format!("one of {}", step.from_states.join(", "));
    let halt = Halt {
        reason: Reason::MappingConflict,
        summary: format!(
            "step {}: {}/{} is {:?}, and the step changes it only from {expected}; someone \
             may have set it so, and a person decides",
            step.id, step.record.kind, step.record.id, seen.state
        ),
        mismatch: Some(Mismatch {
            path: "state".into(),
            expected,
            found: seen.state.clone(),
        }),
        record: None,
    };
    Some(halt.about(&step.adapter, &step.record.kind, &step.record.id))
}

/// Apply the step's action with its key; `person_resumed` says a person
/// resumed it after it failed.
pub async fn write(
    calls: &mut AdapterCalls,
    step: &PlannedStep,
    person_resumed: bool,
) -> Result<Result<(), Halt>, RunError> {
    let applied = calls
        .apply(
            &step.adapter,
            &step.record_ref(),
            &step.action.to_wit(),
            &step.key,
            person_resumed,
        )
        .await?;
    Ok(applied.map(|_| ()))
}

/// The audit row of a step that failed for `halt`.
pub fn failed_row(step: &PlannedStep, halt: &Halt, sha: Option<String>) -> Row {
    Row::new(
        "step-failed",
        json!({
            "step": step.id, "adapter": step.adapter, "kind": step.record.kind,
            "id": step.record.id, "reason": halt.reason.name(),
        }),
    )
    .by(sha)
}
