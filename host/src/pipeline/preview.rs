//! Preview (`handoff run --dry-run`): what a run of an event would do now,
//! found by reading only. It admits the event as intake would, then runs the
//! same driver and stages as a run with recording off: revalidate, the
//! policy's checks, and a look at each step's target against its end state,
//! stopping at each step where a run would record its first intent. No
//! adapter is asked to write, and the store keeps no event, run, step or
//! follow-up of it: the same event can be run for real afterwards.
//! (Capability decisions made by the adapters' reads are audited as
//! always, against the event.)
//!
//! A policy that is not approved as it stands can be previewed, so that a
//! change can be tried before it is approved; the preview says that a real
//! run would be refused.

use super::driver::{Driver, Ending, Traced};
use super::halt::Halt;
use super::record::Recording;
use super::{Engine, Outcome, RunError};
use crate::model::{CloudEvent, DuplicateOf};
use crate::policy::plan::PlannedStep;
use crate::store::runs::{self, RunRecord};
use serde::Serialize;
use std::sync::Arc;

pub use super::driver::Would;

/// What a run of the event would do, as far as reading can tell.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub event_id: String,
    /// The policy the event triggers, as `id vN`.
    pub policy: String,
    pub policy_sha256: String,
    /// Why a real run would be refused now (the policy is not approved as
    /// it stands), when it would be.
    pub refused: Option<String>,
    /// The run that already took this decision: a real run would be
    /// suppressed as a duplicate, and nothing is read.
    pub duplicate_of: Option<Duplicate>,
    /// What the reads found: the audit rows a run writes for them
    /// (revalidated, check-passed, check-failed), identifiers and states only.
    pub reads: Vec<Read>,
    /// Every step of the plan, in order (empty when the run would stop
    /// before looking at any).
    pub steps: Vec<StepPreview>,
    /// Where and why a run would stop for a person.
    pub halt: Option<Stop>,
    /// How a run would end, if the targets stay as they are now.
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    pub run_id: Option<String>,
    /// `event-id` (the same source and id) or `business-key`.
    pub by: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Read {
    pub kind: &'static str,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepPreview {
    pub step: String,
    pub adapter: String,
    /// `kind/id`.
    pub record: String,
    pub action: String,
    pub key: String,
    pub would: Would,
    /// The record's state as observed, when it was.
    pub state: Option<String>,
    /// The target already carries this step's key: an earlier run wrote it.
    pub ours: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stop {
    /// The follow-up's reason code.
    pub reason: &'static str,
    pub summary: String,
}

impl From<Halt> for Stop {
    fn from(halt: Halt) -> Stop {
        Stop {
            reason: halt.reason.name(),
            summary: halt.summary,
        }
    }
}

impl Engine {
    /// Find out, by reading only, what a run of `event` would do now.
    /// Bad input fails as it does for a real run.
    pub async fn preview(
        &mut self,
        event: &CloudEvent,
        context: &serde_json::Value,
    ) -> Result<Preview, RunError> {
        let configured = super::intake::policy_for(&self.host, event)?;
        let refused = match super::intake::require_approved(&self.store, configured) {
            Ok(()) => None,
            Err(refusal @ RunError::PolicyNotApproved { .. }) => Some(refusal.to_string()),
            Err(other) => return Err(other),
        };
        let policy = Arc::new(configured.policy.clone());
        let admitted = super::intake::admit_under(&policy, event, context)?;
        let mut preview = Preview {
            event_id: event.id.clone(),
            policy: format!("{} v{}", policy.id, policy.version),
            policy_sha256: policy.sha256.clone(),
            refused,
            duplicate_of: None,
            reads: Vec::new(),
            steps: Vec::new(),
            halt: None,
            outcome: Outcome::DuplicateSuppressed,
        };
        let known = {
            let conn = self.store.conn()?;
            let found = crate::store::events::find(
                &conn,
                &event.source,
                &event.id,
                admitted.business_key.as_deref(),
            )?;
            match found {
                Some((seq, of)) => Some((runs::for_event(&conn, seq)?, of)),
                None => None,
            }
        };
        if let Some((run_id, of)) = known {
            preview.duplicate_of = Some(Duplicate {
                run_id,
                by: match of {
                    DuplicateOf::EventId => "event-id",
                    DuplicateOf::BusinessKey => "business-key",
                },
            });
            return Ok(preview);
        }

        let now = crate::model::time::now_rfc3339();
        let run = RunRecord {
            run_id: "dry-run".into(),
            event_seq: 0,
            event_id: event.id.clone(),
            business_key: admitted.business_key.clone(),
            event_source: event.source.clone(),
            policy_id: policy.id.clone(),
            policy_sha256: policy.sha256.clone(),
            context: context.clone(),
            event: event.raw.clone(),
            outcome: None,
            created_at: now.clone(),
            updated_at: now,
        };
        let plan = admitted.plan.clone();
        let mut driver = Driver::new(self, run, policy, Recording::Off, Some(plan.clone()))?;
        let ending = driver.stages().await?;
        preview.reads = driver
            .recorder
            .take_reads()
            .into_iter()
            .map(|row| Read {
                kind: row.kind,
                payload: row.payload,
            })
            .collect();
        let halt = match ending {
            Ending::Completed => None,
            Ending::Halted(halt) => Some(halt),
        };
        // A run that stops before looking at any step never reaches them:
        // the steps are shown only once the checks passed.
        if !driver.trace.is_empty() || halt.is_none() {
            preview.steps = plan
                .iter()
                .map(|step| step_preview(step, driver.trace.iter().find(|t| t.step == step.id)))
                .collect();
        }
        preview.outcome = would_end(halt.as_ref(), &preview.steps);
        preview.halt = halt.map(Stop::from);
        Ok(preview)
    }
}

/// How a run would end, from where it would stop and what it would do at
/// each step, if the targets stay as they were seen.
pub(super) fn would_end(halt: Option<&Halt>, steps: &[StepPreview]) -> Outcome {
    match halt {
        Some(halt) => halt.outcome(steps.iter().any(|s| s.would == Would::Apply)),
        None if steps.iter().any(|s| s.would == Would::Skip) => Outcome::CompletedWithSkips,
        None => Outcome::Completed,
    }
}

pub(super) fn step_preview(step: &PlannedStep, traced: Option<&Traced>) -> StepPreview {
    let seen = traced.and_then(|t| t.seen.as_ref());
    StepPreview {
        step: step.id.clone(),
        adapter: step.adapter.clone(),
        record: format!("{}/{}", step.record.kind, step.record.id),
        action: step.action.name().into(),
        key: step.key.clone(),
        would: traced.map_or(Would::NotReach, |t| t.would),
        state: seen.map(|v| v.state.clone()),
        ours: seen.is_some_and(|v| v.applied_keys.contains(&step.key)),
    }
}
