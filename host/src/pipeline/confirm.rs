//! Confirm: after a write, look again. A step is done only when the target
//! shows its end state (`done-when`). A target that answered "ok" without
//! changing anything (a workflow that silently refuses a transition) is
//! caught here.

use super::RunError;
use super::calls::AdapterCalls;
use super::halt::Halt;
use crate::model::Reason;
use crate::policy::condition::{self, View};
use crate::policy::plan::PlannedStep;

/// Observe the step's record and test its end state.
pub async fn confirm(
    calls: &mut AdapterCalls,
    step: &PlannedStep,
) -> Result<Result<(), Halt>, RunError> {
    let seen = match calls.observe(&step.adapter, &step.record_ref()).await? {
        Ok(o) => View::from(&o),
        Err(halt) => return Ok(Err(halt)),
    };
    Ok(
        condition::check(&step.done_when, &seen, Some(&step.key)).map_err(|mismatch| Halt {
            reason: Reason::NotConfirmed,
            summary: format!(
                "step {}: {} acknowledged {} on {}/{} but does not show it: {mismatch}",
                step.id,
                step.adapter,
                step.action.name(),
                step.record.kind,
                step.record.id
            ),
            mismatch: Some(mismatch),
            record: None,
        }),
    )
}
