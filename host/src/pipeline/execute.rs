//! Execute: one step at a time. Observe first: if the end state already
//! holds, the step is skipped as idempotent (or, when the target carries
//! this step's own key, recognised as our write from before a crash).
//! Otherwise revalidate when the policy asks for it, record the intent,
//! apply with the step's idempotency key, confirm, and record both.
//!
//! The intent is committed before the write. A step's end state (verified
//! or skipped) is committed with the next transition (the next step's
//! intent, or the run's outcome): it only repeats what the target shows,
//! so a stop before then costs a second look, never a second write.

use super::RunError;
use super::calls::view_of;
use super::confirm::confirm;
use super::driver::{Driver, Halt, Row};
use super::revalidate::revalidate;
use crate::model::StepEvent;
use crate::policy::Revalidate;
use crate::policy::condition;
use crate::store::steps::StepRow;
use serde_json::json;

/// Carry one step to verified or skipped, or say why the run stops.
/// `fresh` is whether the source was read since the last write.
pub async fn execute(
    d: &mut Driver<'_>,
    row: &StepRow,
    fresh: &mut bool,
) -> Result<Result<(), Halt>, RunError> {
    let step = &row.plan;
    let record = step.record_ref();
    let ids = json!({
        "step": step.id, "adapter": step.adapter, "kind": step.record.kind,
        "id": step.record.id, "action": step.action.name(), "key": step.key,
    });
    let with = |extra: serde_json::Value| {
        let mut v = ids.clone();
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    };

    let before = match d.observe(&step.adapter, &record).await {
        Ok(o) => o,
        Err(halt) => return fail(d, row, halt, row.may_have_written()),
    };
    let sha = d.adapter_sha(&step.adapter);
    let ours = before.applied_keys.contains(&step.key);
    if condition::check(&step.done_when, &view_of(&before), Some(&step.key)).is_ok() {
        if ours {
            // Written by an earlier attempt that stopped before recording it.
            d.step_settled(
                &step.id,
                StepEvent::FoundOurs,
                vec![
                    Row::new("step-applied", with(json!({ "recovered": true }))).by(sha.clone()),
                    Row::new("step-verified", ids.clone()).by(sha),
                ],
            )?;
        } else {
            d.step_settled(
                &step.id,
                StepEvent::FoundDone,
                vec![
                    Row::new("step-observed", with(json!({ "done": true }))).by(sha.clone()),
                    Row::new(
                        "step-skipped",
                        with(json!({ "why": "already in its end state" })),
                    )
                    .by(sha),
                ],
            )?;
        }
        return Ok(Ok(()));
    }

    if d.policy.source.revalidate == Revalidate::BeforeEachWrite
        && !*fresh
        && let Err(halt) = revalidate(d).await?
    {
        return Ok(Err(halt));
    }
    // The intent, with its key, is on record before the write.
    d.step_transition(
        &step.id,
        StepEvent::IntentRecorded,
        1,
        None,
        vec![Row::new("step-observed", with(json!({ "done": false }))).by(sha.clone())],
    )?;
    d.engine.faults.point("before-apply", &step.id);
    if let Err(halt) = d
        .apply(&step.adapter, &record, step.action.to_wit(), &step.key)
        .await
    {
        return fail(d, row, halt, true);
    }
    *fresh = false;
    d.engine.faults.point("after-apply", &step.id);
    // The write and its confirmation are recorded together: a stop between
    // them leaves the step `observed`, and the next drive finds the key on
    // the target and records it then.
    let applied = Row::new("step-applied", ids.clone()).by(sha.clone());
    if let Err(halt) = confirm(d, step).await {
        d.note(applied);
        return fail(d, row, halt, true);
    }
    d.step_settled(
        &step.id,
        StepEvent::Confirmed,
        vec![applied, Row::new("step-verified", ids).by(sha)],
    )?;
    if d.engine.faults.armed("after-record", &step.id) {
        // The point means what it says: the record is committed.
        d.flush()?;
    }
    d.engine.faults.point("after-record", &step.id);
    Ok(Ok(()))
}

/// Record the step as failed, and stop the run. `intended` is whether its
/// intent was ever recorded (kept as `attempts` 1, so the run's outcome can
/// tell a step that may have written from one that never got so far).
fn fail(
    d: &mut Driver<'_>,
    row: &StepRow,
    halt: Halt,
    intended: bool,
) -> Result<Result<(), Halt>, RunError> {
    let step = &row.plan;
    let halt = halt.about(&step.adapter, &step.record.kind, &step.record.id);
    let sha = d.adapter_sha(&step.adapter);
    let payload = json!({
        "step": step.id, "adapter": step.adapter, "kind": step.record.kind,
        "id": step.record.id, "reason": halt.reason.name(),
    });
    d.step_transition(
        &step.id,
        StepEvent::Failed,
        u32::from(intended),
        Some(&halt.summary),
        vec![Row::new("step-failed", payload).by(sha)],
    )?;
    Ok(Err(halt))
}
