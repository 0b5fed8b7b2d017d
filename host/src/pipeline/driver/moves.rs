//! What the driver records: a step moved by an event of its lifecycle,
//! now (the intent, a failure) or with the next transition (an end state
//! the target shows), and the run's ending (its outcome, and for a halt
//! the follow-up packet), each with its audit rows in one transaction.

use super::Driver;
use crate::follow_up::notices;
use crate::model::{Outcome, StepEvent, StepState};
use crate::pipeline::halt::{self, Halt};
use crate::pipeline::record::Row;
use crate::pipeline::{Report, RunError};
use crate::store::runs;
use crate::store::steps::{self, StepRow};
use crate::store::{StoreError, Write};
use serde_json::json;

impl Driver<'_> {
    /// Commit whatever waits, now.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.recorder
            .commit(&mut self.engine.store, &self.run, |_| Ok(((), Vec::new())))?;
        Ok(())
    }

    pub(super) fn row(&self, step_id: &str) -> Option<&StepRow> {
        self.steps.iter().find(|r| r.plan.id == step_id)
    }

    /// Where `event` moves the step, by its lifecycle's table.
    fn next_state(&self, step_id: &str, event: StepEvent) -> Result<StepState, RunError> {
        let current = self.row(step_id).map(|r| r.state).ok_or_else(|| {
            RunError::Store(StoreError::Corrupt(format!(
                "run {}: step {step_id} is not in its plan",
                self.run.run_id
            )))
        })?;
        Ok(current.on(event)?)
    }

    /// Move one step by `event`, with its audit rows, now.
    pub(super) fn move_step(
        &mut self,
        step_id: &str,
        event: StepEvent,
        attempts: u32,
        error: Option<&str>,
        rows: Vec<Row>,
    ) -> Result<(), RunError> {
        let state = self.next_state(step_id, event)?;
        let run_id = self.run.run_id.clone();
        self.recorder
            .commit(&mut self.engine.store, &self.run, |tx: &Write<'_>| {
                steps::set_state(tx, &run_id, step_id, state, attempts, error)?;
                Ok(((), rows))
            })?;
        self.moved(step_id, state, attempts, error);
        Ok(())
    }

    /// Move a step to its end state (verified or skipped) with the next
    /// transition: the target shows that end state, so a stop before then
    /// only means the next drive observes it again and records it then,
    /// without writing.
    pub(super) fn settle(
        &mut self,
        step_id: &str,
        event: StepEvent,
        rows: Vec<Row>,
    ) -> Result<(), RunError> {
        let state = self.next_state(step_id, event)?;
        debug_assert!(state.is_final());
        let (run_id, id) = (self.run.run_id.clone(), step_id.to_string());
        self.recorder.defer(
            Box::new(move |tx| steps::set_state(tx, &run_id, &id, state, 0, None)),
            rows,
        );
        self.moved(step_id, state, 0, None);
        Ok(())
    }

    fn moved(&mut self, step_id: &str, state: StepState, attempts: u32, error: Option<&str>) {
        if let Some(row) = self.steps.iter_mut().find(|r| r.plan.id == step_id) {
            row.state = state;
            row.attempts = attempts;
            row.error = error.map(str::to_string);
        }
    }

    /// Stop for a person: the outcome, the packet and their audit rows in
    /// one transaction.
    pub(super) fn halt(&mut self, halt: Halt) -> Result<Report, RunError> {
        let (packet, outcome) = halt::packet(
            halt,
            halt::Seen {
                run: &self.run,
                policy: &self.policy,
                steps: &self.steps,
                snapshot: self.snapshot.as_ref(),
                links: &self.links,
            },
        );
        let run_id = self.run.run_id.clone();
        let pending_ids: Vec<_> = packet.pending.iter().map(|s| s.step.clone()).collect();
        let roles = &self.engine.host.roles;
        let id = self
            .recorder
            .commit(&mut self.engine.store, &self.run, |tx| {
                let id = crate::store::follow_ups::insert(tx, &packet)?;
                // Who is told, and when: scheduled with the packet, so a
                // crash loses none of it.
                let notices = notices::schedule(id, &packet, roles, jiff::Timestamp::now());
                crate::store::notices::schedule(tx, id, &notices)?;
                runs::set_outcome(tx, &run_id, Some(outcome))?;
                let rows = vec![
                    Row::new(
                        "follow-up-emitted",
                        json!({
                            "follow_up": id, "reason": packet.reason.name(),
                            "route_to": packet.route_to, "due_at": packet.due_at,
                            "pending": pending_ids,
                        }),
                    ),
                    Row::new("run-halted", json!({ "outcome": outcome.name() })),
                ];
                Ok((id, rows))
            })?;
        Ok(Report {
            run_id,
            event_id: self.run.event_id.clone(),
            outcome,
            follow_up: id,
        })
    }

    pub(super) fn complete(&mut self) -> Result<Report, RunError> {
        let ids = |state: StepState| -> Vec<String> {
            self.steps
                .iter()
                .filter(|r| r.state == state)
                .map(|r| r.plan.id.clone())
                .collect()
        };
        let skipped = ids(StepState::Skipped);
        let outcome = if skipped.is_empty() {
            Outcome::Completed
        } else {
            Outcome::CompletedWithSkips
        };
        let payload = json!({
            "outcome": outcome.name(),
            "verified": ids(StepState::Verified),
            "skipped": skipped,
        });
        let run_id = self.run.run_id.clone();
        self.recorder
            .commit(&mut self.engine.store, &self.run, |tx| {
                runs::set_outcome(tx, &run_id, Some(outcome))?;
                Ok(((), vec![Row::new("run-completed", payload)]))
            })?;
        Ok(Report {
            run_id,
            event_id: self.run.event_id.clone(),
            outcome,
            follow_up: None,
        })
    }
}
