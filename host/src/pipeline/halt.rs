//! A halt: why a run stops for a person, and the follow-up packet it
//! becomes (reason, summary, what was done, skipped and is still pending,
//! the source as seen, the records concerned, the links, the allowed next
//! actions, the role and the due time).

use crate::follow_up::{Packet, Snapshot, StepLine};
use crate::model::{Outcome, Reason, Resolution, StepState};
use crate::policy::Policy;
use crate::policy::condition::{Mismatch, View};
use crate::policy::plan::PlannedStep;
use crate::store::runs::RunRecord;
use crate::store::steps::StepRow;
use std::collections::BTreeSet;
use std::time::Duration;

/// Why a run stops for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    pub reason: Reason,
    pub summary: String,
    pub mismatch: Option<Mismatch>,
    /// The record the halt concerns (`adapter kind/id`), when it is one.
    pub record: Option<String>,
}

impl Halt {
    pub fn new(reason: Reason, summary: impl Into<String>) -> Halt {
        Halt {
            reason,
            summary: summary.into(),
            mismatch: None,
            record: None,
        }
    }

    /// The halt, saying which record it concerns.
    pub fn about(mut self, adapter: &str, kind: &str, id: &str) -> Halt {
        self.record
            .get_or_insert_with(|| format!("{adapter} {kind}/{id}"));
        self
    }

    /// A target that failed or did not confirm after something was written
    /// leaves the run partially completed, resumable as it stands; with
    /// nothing written, or for any other reason, it halted for a person.
    pub fn outcome(&self, wrote: bool) -> Outcome {
        match self.reason {
            Reason::RetriesExhausted | Reason::NotConfirmed if wrote => Outcome::PartiallyCompleted,
            _ => Outcome::HaltedForFollowUp,
        }
    }
}

/// What a packet is made from.
pub struct Seen<'a> {
    pub run: &'a RunRecord,
    pub policy: &'a Policy,
    /// The run's steps as they stand.
    pub steps: &'a [StepRow],
    pub snapshot: Option<&'a View>,
    pub links: &'a [String],
}

fn line(step: &PlannedStep) -> StepLine {
    StepLine {
        step: step.id.clone(),
        adapter: step.adapter.clone(),
        record: format!("{}/{}", step.record.kind, step.record.id),
        action: step.action.name().into(),
    }
}

/// The packet a halt hands to a person, and the run's outcome.
pub fn packet(halt: Halt, seen: Seen<'_>) -> (Packet, Outcome) {
    let rows = seen.steps;
    let outcome = halt.outcome(rows.iter().any(StepRow::may_have_written));
    let lines = |pick: &dyn Fn(StepState) -> bool| -> Vec<StepLine> {
        rows.iter()
            .filter(|r| pick(r.state))
            .map(|r| line(&r.plan))
            .collect()
    };
    let pending = lines(&|s| !s.is_final());
    let policy = seen.policy;
    let named: BTreeSet<String> = policy
        .source
        .must_match
        .keys()
        .filter_map(|path| path.strip_prefix("fields.").map(str::to_string))
        .collect();
    let due = crate::model::time::rfc3339_in(Duration::from_secs(
        u64::from(policy.follow_up.sla_hours) * 3600,
    ));
    let packet = Packet {
        reason: halt.reason,
        summary: halt.summary,
        run_id: seen.run.run_id.clone(),
        event_id: seen.run.event_id.clone(),
        policy: format!("{} v{}", policy.id, policy.version),
        policy_sha256: policy.sha256.clone(),
        done: lines(&|s| s == StepState::Verified),
        skipped: lines(&|s| s == StepState::Skipped),
        pending,
        run_outcome: Some(outcome.name().into()),
        source_snapshot: seen.snapshot.map(|v| Snapshot::of(v, &named)),
        mismatch: halt.mismatch,
        records: halt.record.into_iter().collect(),
        links: seen.links.to_vec(),
        next_actions: vec![
            Resolution::Resume,
            Resolution::Abandon,
            Resolution::MarkResolved,
        ],
        route_to: policy.follow_up.route_to.clone(),
        due_at: due,
    };
    (packet, outcome)
}
