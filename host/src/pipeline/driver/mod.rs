//! The driver moves one run through the stages, in order, from whatever the
//! store says it last reached: the policy still in force → revalidate →
//! validate → each step (look; when it must be written: revalidate if the
//! policy asks, the intent, the write, confirm) → the outcome. The order is
//! written here once ([`Driver::stages`]). Stages read and decide; the
//! driver alone records, through its [`Recorder`]: each run and step
//! transition commits with its audit rows. A dry run is the same driver
//! with recording off, stopping at each step where a run would record its
//! intent. How an engine takes a run to drive (its trace, its lease, live
//! or shadow) is in `take.rs`.

mod moves;
mod take;

use super::calls::AdapterCalls;
use super::execute::{self, Look};
use super::halt::Halt;
use super::lease::Lease;
use super::record::{Recorder, Recording, Row};
use super::stage::Reading;
use super::{Engine, RunError, Timed, confirm, revalidate, validate};
use crate::model::{Reason, StepEvent, StepState};
use crate::policy::Revalidate;
use crate::policy::condition::View;
use crate::policy::plan::{self, PlannedAction, PlannedStep};
use crate::policy::template::Scope;
use crate::policy::{Mode, Policy};
use crate::store::runs::RunRecord;
use crate::store::steps::{self, StepRow};
use std::sync::Arc;
use tracing::Instrument as _;

/// What a run would do with a step, as far as its target shows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Would {
    /// Write it: the target is not in the step's end state.
    Apply,
    /// Skip it as idempotent: the target is already in its end state.
    Skip,
    /// Stop at it: its target could not be observed.
    Stop,
    /// Never get to it: the run would stop before.
    NotReach,
}

/// What the driver saw of one step.
#[derive(Debug, Clone)]
pub struct Traced {
    pub step: String,
    pub would: Would,
    pub seen: Option<View>,
}

/// How the stages ended.
#[derive(Debug)]
pub enum Ending {
    Completed,
    Halted(Halt),
}

/// A run being driven.
pub struct Driver<'e> {
    engine: &'e mut Engine,
    pub run: RunRecord,
    pub policy: Arc<Policy>,
    calls: AdapterCalls,
    pub recorder: Recorder,
    /// The source as last read.
    snapshot: Option<View>,
    /// Links seen on the way (evidence), for a follow-up packet.
    links: Vec<String>,
    /// The run's steps as this driver last moved them (it holds the lease,
    /// so no one else moves them), including moves not yet committed.
    steps: Vec<StepRow>,
    /// What each step's target showed, in the order looked at.
    pub trace: Vec<Traced>,
}

impl<'e> Driver<'e> {
    /// A driver for `run`. Its steps are the stored ones; a run stored
    /// before plans were stored at intake is planned now (the plan is pure:
    /// the same steps every time), stored with its next transition. A dry
    /// run's `planned` steps are given.
    pub fn new(
        engine: &'e mut Engine,
        run: RunRecord,
        policy: Arc<Policy>,
        recording: Recording,
        planned: Option<Vec<PlannedStep>>,
    ) -> Result<Driver<'e>, RunError> {
        let lease = Lease::new(engine.owner.clone(), engine.lease_ttl);
        let mut calls = AdapterCalls::new(engine.host.clone(), &engine.store).for_run(
            (recording == Recording::On).then_some(run.run_id.as_str()),
            &run.event_id,
        );
        match recording {
            Recording::On => calls = calls.leased(lease.clone()),
            Recording::Off => calls = calls.recording_nothing(),
        }
        if policy.mode == Mode::Shadow {
            calls = calls.shadowed();
        }
        let recorder = Recorder::new(recording, lease);
        let mut driver = Driver {
            engine,
            run,
            policy,
            calls,
            recorder,
            snapshot: None,
            links: Vec::new(),
            steps: Vec::new(),
            trace: Vec::new(),
        };
        driver.steps = match planned {
            Some(plan) => rows(plan),
            None => driver.stored_steps()?,
        };
        Ok(driver)
    }

    fn stored_steps(&mut self) -> Result<Vec<StepRow>, RunError> {
        let existing = steps::for_run(&*self.engine.store.conn()?, &self.run.run_id)?;
        if !existing.is_empty() || self.policy.steps.is_empty() {
            return Ok(existing);
        }
        let plan = plan::plan(&self.policy, self.scope(), self.decision())?;
        let summary = plan::summary(&plan);
        let (run_id, stored) = (self.run.run_id.clone(), plan.clone());
        self.recorder.defer(
            Box::new(move |tx| steps::insert_plan(tx, &run_id, &stored)),
            vec![Row::new("planned", summary)],
        );
        Ok(rows(plan))
    }

    pub fn scope(&self) -> Scope<'_> {
        Scope {
            event: &self.run.event,
            context: &self.run.context,
        }
    }

    /// The decision the run's keys derive from.
    fn decision(&self) -> plan::Decision<'_> {
        plan::Decision {
            source: &self.run.event_source,
            key: self
                .run
                .business_key
                .as_deref()
                .unwrap_or(&self.run.event_id),
        }
    }

    /// The stages, in order, up to an ending.
    pub async fn stages(&mut self) -> Result<Ending, RunError> {
        if let Some(halt) = self.policy_withdrawn()? {
            return Ok(Ending::Halted(halt));
        }
        let reading = self
            .revalidate()
            .instrument(tracing::info_span!("revalidate"))
            .await?;
        if let Some(halt) = self.read(reading) {
            return Ok(Ending::Halted(halt));
        }
        let scope = Scope {
            event: &self.run.event,
            context: &self.run.context,
        };
        let reading = validate::validate(&mut self.calls, &self.policy, scope)
            .instrument(tracing::info_span!("validate"))
            .await?;
        if let Some(halt) = self.read(reading) {
            return Ok(Ending::Halted(halt));
        }
        // The source was just read: the first write needs no second look.
        let mut fresh = true;
        for index in 0..self.steps.len() {
            if self.steps[index].state.is_final() {
                continue;
            }
            let started = std::time::Instant::now();
            let step = self.steps[index].plan.clone();
            let span = tracing::info_span!(
                "step",
                step = %step.id,
                adapter = %step.adapter,
                action = step.action.name(),
            );
            let stopped = self.step(&step, &mut fresh).instrument(span).await?;
            let adapter = &step.adapter;
            self.engine
                .host
                .took(Timed::Step { adapter }, started.elapsed());
            if let Some(halt) = stopped {
                return Ok(Ending::Halted(halt));
            }
        }
        Ok(Ending::Completed)
    }

    /// One step, or why the run stops at it.
    async fn step(
        &mut self,
        step: &PlannedStep,
        fresh: &mut bool,
    ) -> Result<Option<Halt>, RunError> {
        // The look, the write and the confirmation, with no other run's step
        // on this record in between (see `throttle`). A message is the
        // run's own, found by its own key: runs publishing to one channel
        // go side by side.
        let throttle = &self.engine.host.throttle;
        let _step_turn = match step.action {
            PlannedAction::Publish { .. } => None,
            _ => Some(
                throttle
                    .step_on(
                        &throttle.record_key(&step.record_ref()),
                        self.calls.processes(),
                    )
                    .await?,
            ),
        };
        let look = match execute::look(&mut self.calls, step).await? {
            Ok(look) => look,
            Err(halt) => {
                self.traced(step, Would::Stop, None);
                let wrote = self.row(&step.id).is_some_and(StepRow::may_have_written);
                return self.fail(step, halt, wrote);
            }
        };
        let (row, seen) = match look {
            Look::Done { event, rows, seen } => {
                self.traced(step, Would::Skip, Some(seen));
                self.settle(&step.id, event, rows)?;
                return Ok(None);
            }
            Look::Write { row, seen } => (row, seen),
        };
        self.traced(step, Would::Apply, Some(seen));
        if self.recorder.recording() == Recording::Off {
            // A dry run goes no further than where a run records its intent.
            return Ok(None);
        }
        if self.policy.source.revalidate == Revalidate::BeforeEachWrite && !*fresh {
            let reading = self.revalidate().await?;
            if let Some(halt) = self.read(reading) {
                return Ok(Some(halt));
            }
        }
        // Read before the intent moves the step on: a failed step whose
        // run a person resumed since is written as they decided.
        let person_resumed = self.person_resumed(&step.id)?;
        // The intent, with its key, is on record before the write.
        self.move_step(&step.id, StepEvent::IntentRecorded, 1, None, vec![row])?;
        // ...and committed (and synced, with power durability) when the
        // store commits in groups (a service's runs share commits and
        // syncs; see store::group): only then may the write go out.
        self.engine.store.durable().await?;
        let faults = self.engine.host.faults.clone();
        faults.point("before-apply", &step.id).await;
        if let Err(halt) = execute::write(&mut self.calls, step, person_resumed).await? {
            // A crash here, after the target's answer and before the run
            // records it, must not let the next try write again.
            faults.point("after-failed-apply", &step.id).await;
            return self.fail(step, halt, true);
        }
        *fresh = false;
        faults.point("after-apply", &step.id).await;
        // The write and its confirmation are recorded together: a stop
        // between them leaves the step `observed`, and the next drive finds
        // the key on the target and records it then.
        let sha = self.calls.adapter_sha(&step.adapter);
        let applied = Row::new("step-applied", execute::ids(step)).by(sha.clone());
        if let Err(halt) = confirm::confirm(&mut self.calls, step).await? {
            self.recorder.note(applied);
            return self.fail(step, halt, true);
        }
        let verified = Row::new("step-verified", execute::ids(step)).by(sha);
        self.settle(&step.id, StepEvent::Confirmed, vec![applied, verified])?;
        if faults.armed("after-record", &step.id) {
            // The point means what it says: the record is committed.
            self.flush()?;
        }
        faults.point("after-record", &step.id).await;
        Ok(None)
    }

    /// Whether a person resumed this step: it failed, and the run's latest
    /// follow-up was resolved with `resume` (after a crash the step has
    /// moved on from `failed`, so a later drive is no longer theirs).
    fn person_resumed(&self, step_id: &str) -> Result<bool, RunError> {
        if self.row(step_id).map(|r| r.state) != Some(StepState::Failed) {
            return Ok(false);
        }
        let conn = self.engine.store.conn()?;
        Ok(crate::store::follow_ups::latest_resumed(
            &conn,
            &self.run.run_id,
        )?)
    }

    async fn revalidate(&mut self) -> Result<Reading, RunError> {
        let scope = Scope {
            event: &self.run.event,
            context: &self.run.context,
        };
        revalidate::revalidate(&mut self.calls, &self.policy, scope).await
    }

    /// Take a stage's reading: its rows wait for the next transition.
    fn read(&mut self, reading: Reading) -> Option<Halt> {
        for row in reading.rows {
            self.recorder.note(row);
        }
        if reading.snapshot.is_some() {
            self.snapshot = reading.snapshot;
        }
        self.links.extend(reading.links);
        reading.halt
    }

    fn traced(&mut self, step: &PlannedStep, would: Would, seen: Option<View>) {
        self.trace.push(Traced {
            step: step.id.clone(),
            would,
            seen,
        });
    }

    /// Record the step as failed, and stop the run. `intended` is whether
    /// its intent was ever recorded (kept as `attempts` 1, so the run's
    /// outcome can tell a step that may have written from one that never
    /// got so far).
    fn fail(
        &mut self,
        step: &PlannedStep,
        halt: Halt,
        intended: bool,
    ) -> Result<Option<Halt>, RunError> {
        let halt = halt.about(&step.adapter, &step.record.kind, &step.record.id);
        let row = execute::failed_row(step, &halt, self.calls.adapter_sha(&step.adapter));
        self.move_step(
            &step.id,
            StepEvent::Failed,
            u32::from(intended),
            Some(&halt.summary),
            vec![row],
        )?;
        Ok(Some(halt))
    }

    /// A run resumed after its policy's approval was revoked stops.
    fn policy_withdrawn(&self) -> Result<Option<Halt>, RunError> {
        if self.recorder.recording() == Recording::Off {
            // A dry run says whether the policy would be refused itself.
            return Ok(None);
        }
        let revoked = self
            .engine
            .store
            .policy_revoked_by(&self.run.policy_sha256)?;
        Ok(revoked.map(|by| {
            Halt::new(
                Reason::OutOfScope,
                format!(
                    "the approval of policy {} was revoked by {by}; nothing more is written under it",
                    self.policy.id
                ),
            )
        }))
    }
}

/// Planned steps as rows, every one `planned`.
fn rows(plan: Vec<PlannedStep>) -> Vec<StepRow> {
    let now = crate::model::time::now_rfc3339();
    plan.into_iter()
        .map(|step| StepRow {
            plan: step,
            state: StepState::Planned,
            attempts: 0,
            error: None,
            updated_at: now.clone(),
        })
        .collect()
}
