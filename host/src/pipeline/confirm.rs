//! Confirm: after a write, look again. A step is done only when the target
//! shows its end state (`done-when`). A target that answered "ok" without
//! changing anything (a workflow that silently refuses a transition) is
//! caught here.

use super::calls::view_of;
use super::driver::{Driver, Halt};
use crate::follow_up::Reason;
use crate::policy::condition;
use crate::policy::plan::PlannedStep;

/// Observe the step's record and test its end state.
pub async fn confirm(d: &mut Driver<'_>, step: &PlannedStep) -> Result<(), Halt> {
    let seen = view_of(&d.observe(&step.adapter, &step.record_ref()).await?);
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
    })
}
