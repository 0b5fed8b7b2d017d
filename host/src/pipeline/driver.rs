//! The driver moves one run through the stages, in order, from whatever the
//! store says it last reached. It owns the run's lease and its adapter
//! instances, and it is the only writer of run and step transitions: each
//! one commits together with its audit row.

use super::calls::Calls;
use super::{Engine, Outcome, Report, RunError, execute, revalidate, validate};
use crate::audit::Entry;
use crate::follow_up::{Packet, Reason, Resolution, Snapshot, StepLine};
use crate::model::{StepEvent, StepState};
use crate::policy::Policy;
use crate::policy::condition::{Mismatch, View};
use crate::policy::template::Scope;
use crate::store::StoreError;
use crate::store::Write;
use crate::store::runs::{self, Claim, RunRecord};
use crate::store::steps::{self, StepRow};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
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

/// One audit row a transition appends (run, event and policy are filled in).
pub struct Row {
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub adapter_sha256: Option<String>,
}

impl Row {
    pub fn new(kind: &'static str, payload: serde_json::Value) -> Row {
        Row {
            kind,
            payload,
            adapter_sha256: None,
        }
    }

    pub fn by(mut self, adapter_sha256: Option<String>) -> Row {
        self.adapter_sha256 = adapter_sha256;
        self
    }
}

/// A run being driven.
pub struct Driver<'e> {
    pub engine: &'e mut Engine,
    pub run: RunRecord,
    pub policy: Arc<Policy>,
    pub calls: Calls,
    /// The source as last read.
    pub snapshot: Option<View>,
    /// Links seen on the way (evidence), for a follow-up packet.
    pub links: Vec<String>,
    /// Whether the run is in the store. A dry run's is not: nothing of it
    /// is written, and the capability decisions its reads make are
    /// recorded against its event alone.
    pub stored: bool,
    /// The run's steps as this driver last moved them (it holds the lease,
    /// so no one else moves them), including moves not yet committed.
    steps: Option<Vec<StepRow>>,
    /// What waits for the next transition's transaction, in order.
    pending: Vec<Pending>,
}

/// A record that may wait for the next transition's transaction, because
/// losing it in a stop costs nothing: the next drive finds the same thing
/// again and records it then.
enum Pending {
    /// The audit row of a read (revalidated, check passed...).
    Read(Row),
    /// A change that repeats what the targets already show (a step found
    /// or confirmed in its end state) or what is derived again the same way
    /// (the plan), with its audit rows.
    Change(Change, Vec<Row>),
}

type Change = Box<dyn FnOnce(&Write<'_>) -> Result<(), StoreError> + Send>;

/// An audit entry of this run.
fn entry(run: &RunRecord, row: Row) -> Entry {
    Entry {
        run_id: Some(run.run_id.clone()),
        event_id: Some(run.event_id.clone()),
        kind: row.kind.into(),
        payload: row.payload,
        policy_sha256: Some(run.policy_sha256.clone()),
        adapter_sha256: row.adapter_sha256,
    }
}

impl Engine {
    /// Drive a run from where it stands to an outcome.
    pub async fn drive(&mut self, run_id: &str) -> Result<Report, RunError> {
        match runs::claim(&mut self.store, run_id, &self.owner, self.lease_ttl)? {
            Claim::Taken => {}
            Claim::Missing => return Err(RunError::NoSuchRun(run_id.to_string())),
            Claim::Held { owner, until } => {
                return Err(RunError::Busy {
                    run_id: run_id.to_string(),
                    owner,
                    until,
                });
            }
            Claim::Finished(outcome) => {
                let run = runs::get(&*self.store.conn()?, run_id)?
                    .ok_or_else(|| RunError::NoSuchRun(run_id.to_string()))?;
                return Ok(Report {
                    run_id: run.run_id,
                    event_id: run.event_id,
                    outcome,
                    follow_up: None,
                });
            }
        }
        let run = runs::get(&*self.store.conn()?, run_id)?
            .ok_or_else(|| RunError::NoSuchRun(run_id.to_string()))?;
        let policy = self.approved_policy(&run)?;
        let owner = self.owner.clone();
        let mut driver = Driver::new(self, run, policy, true);
        let result = driver.run().await;
        if result.is_err()
            && let Ok(conn) = self.store.conn()
        {
            // Leave it unfinished and free for the next driver; if the
            // store cannot be had now, the lease runs out. Either way the
            // run's own error is the one to report.
            let _ = runs::release(&conn, run_id, &owner);
        }
        result
    }

    /// The approved text a run started under, parsed once per engine: an
    /// approval's text never changes (its sha256 names it), and whether it
    /// is still in force is asked separately, on every drive.
    fn approved_policy(&mut self, run: &RunRecord) -> Result<Arc<Policy>, StoreError> {
        let sha256 = &run.policy_sha256;
        if let Some(policy) = self.approved.get(sha256) {
            return Ok(policy.clone());
        }
        let policy = Arc::new(self.store.approved_policy(sha256)?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "run {}: policy {sha256} has no approved text",
                run.run_id
            ))
        })?);
        self.approved.insert(sha256.clone(), policy.clone());
        Ok(policy)
    }
}

impl<'e> Driver<'e> {
    pub fn new(engine: &'e mut Engine, run: RunRecord, policy: Arc<Policy>, stored: bool) -> Self {
        Driver {
            engine,
            run,
            policy,
            calls: Calls::default(),
            snapshot: None,
            links: Vec::new(),
            stored,
            steps: None,
            pending: Vec::new(),
        }
    }

    /// The audit rows of what was read and noted since the last
    /// transition, taken off the driver (changes waiting with them are
    /// dropped): what a dry run shows instead of storing.
    pub fn take_noted(&mut self) -> Vec<Row> {
        self.pending
            .drain(..)
            .flat_map(|pending| match pending {
                Pending::Read(row) => vec![row],
                Pending::Change(_, rows) => rows,
            })
            .collect()
    }
}

impl Driver<'_> {
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            event: &self.run.event,
            context: &self.run.context,
        }
    }

    async fn run(&mut self) -> Result<Report, RunError> {
        if let Some(halt) = self.policy_withdrawn()? {
            return self.halt(halt);
        }
        if let Err(halt) = revalidate::revalidate(self).await? {
            return self.halt(halt);
        }
        if let Err(halt) = validate::validate(self).await? {
            return self.halt(halt);
        }
        let steps = self.planned_steps()?;
        // The source was just read: the first write needs no second look.
        let mut fresh = true;
        for row in steps {
            if row.state.is_final() {
                continue;
            }
            let started = std::time::Instant::now();
            let executed = execute::execute(self, &row, &mut fresh).await?;
            let adapter = &row.plan.adapter;
            self.engine
                .took(super::Timed::Step { adapter }, started.elapsed());
            if let Err(halt) = executed {
                return self.halt(halt);
            }
        }
        self.complete()
    }

    /// A run resumed after its policy's approval was revoked stops.
    fn policy_withdrawn(&self) -> Result<Option<Halt>, RunError> {
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

    /// The decision the run's keys derive from.
    fn decision(&self) -> crate::policy::plan::Decision<'_> {
        crate::policy::plan::Decision {
            source: &self.run.event_source,
            key: self
                .run
                .business_key
                .as_deref()
                .unwrap_or(&self.run.event_id),
        }
    }

    /// The stored plan, or a new one, stored with the next transition (the
    /// plan is pure: a stop before then plans the same steps again).
    fn planned_steps(&mut self) -> Result<Vec<StepRow>, RunError> {
        let existing = steps::for_run(&*self.engine.store.conn()?, &self.run.run_id)?;
        if !existing.is_empty() {
            self.steps = Some(existing.clone());
            return Ok(existing);
        }
        let plan = crate::policy::plan::plan(&self.policy, self.scope(), self.decision())?;
        let summary: Vec<_> = plan
            .iter()
            .map(|s| {
                json!({
                    "step": s.id, "adapter": s.adapter, "kind": s.record.kind,
                    "id": s.record.id, "action": s.action.name(), "key": s.key,
                })
            })
            .collect();
        let rows: Vec<StepRow> = plan
            .iter()
            .map(|step| StepRow {
                plan: step.clone(),
                state: StepState::Planned,
                attempts: 0,
                error: None,
                updated_at: crate::store::now_rfc3339(),
            })
            .collect();
        let run_id = self.run.run_id.clone();
        self.pending.push(Pending::Change(
            Box::new(move |tx| steps::insert_plan(tx, &run_id, &plan)),
            vec![Row::new("planned", json!({ "steps": summary }))],
        ));
        self.steps = Some(rows.clone());
        Ok(rows)
    }

    /// Record a read: its audit row goes with the next transition.
    pub fn note(&mut self, row: Row) {
        self.pending.push(Pending::Read(row));
    }

    /// Commit whatever waits, now.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.transition(|_| Ok(()), Vec::new())
    }

    /// Commit a state change and its audit rows in one transaction, and
    /// extend the lease.
    pub fn transition(
        &mut self,
        change: impl FnOnce(&Write<'_>) -> Result<(), StoreError>,
        rows: Vec<Row>,
    ) -> Result<(), StoreError> {
        self.transition_with(|tx| change(tx).map(|()| ((), rows)))
    }

    /// As [`Driver::transition`], for a change whose audit rows depend on
    /// what it wrote (a new row's id).
    pub fn transition_with<T>(
        &mut self,
        change: impl FnOnce(&Write<'_>) -> Result<(T, Vec<Row>), StoreError>,
    ) -> Result<T, StoreError> {
        let (owner, ttl) = (self.engine.owner.clone(), self.engine.lease_ttl);
        let tx = self.engine.store.write()?;
        // Renew first: a change that finishes the run ends the lease.
        runs::renew(&tx, &self.run.run_id, &owner, ttl)?;
        // What waited goes first, in the order it happened; if this
        // transaction fails, it is lost with it, as a stop would lose it.
        let mut waited = Vec::new();
        for pending in self.pending.drain(..) {
            match pending {
                Pending::Read(row) => waited.push(row),
                Pending::Change(apply, rows) => {
                    apply(&tx)?;
                    waited.extend(rows);
                }
            }
        }
        let (value, rows) = change(&tx)?;
        for row in waited.into_iter().chain(rows) {
            crate::store::audit::append(&tx, &entry(&self.run, row))?;
        }
        tx.commit()?;
        Ok(value)
    }

    /// Move one step by `event`, with its audit rows, now.
    pub fn step_transition(
        &mut self,
        step_id: &str,
        event: StepEvent,
        attempts: u32,
        error: Option<&str>,
        rows: Vec<Row>,
    ) -> Result<(), RunError> {
        let state = self.next_state(step_id, event)?;
        let run_id = self.run.run_id.clone();
        self.transition(
            |tx| steps::set_state(tx, &run_id, step_id, state, attempts, error),
            rows,
        )?;
        self.moved(step_id, state, attempts, error);
        Ok(())
    }

    /// Move a step to its end state (verified or skipped) with the next
    /// transition: the target shows that end state, so a stop before then
    /// only means the next drive observes it again and records it then,
    /// without writing.
    pub fn step_settled(
        &mut self,
        step_id: &str,
        event: StepEvent,
        rows: Vec<Row>,
    ) -> Result<(), RunError> {
        let state = self.next_state(step_id, event)?;
        debug_assert!(state.is_final());
        let (run_id, id) = (self.run.run_id.clone(), step_id.to_string());
        self.pending.push(Pending::Change(
            Box::new(move |tx| steps::set_state(tx, &run_id, &id, state, 0, None)),
            rows,
        ));
        self.moved(step_id, state, 0, None);
        Ok(())
    }

    /// Where `event` moves the step, by its lifecycle's table.
    fn next_state(&self, step_id: &str, event: StepEvent) -> Result<StepState, RunError> {
        let current = self
            .steps
            .iter()
            .flatten()
            .find(|r| r.plan.id == step_id)
            .map(|r| r.state)
            .ok_or_else(|| {
                RunError::Store(StoreError::Corrupt(format!(
                    "run {}: step {step_id} is not in its plan",
                    self.run.run_id
                )))
            })?;
        Ok(current.on(event)?)
    }

    fn moved(&mut self, step_id: &str, state: StepState, attempts: u32, error: Option<&str>) {
        if let Some(row) = self
            .steps
            .iter_mut()
            .flatten()
            .find(|r| r.plan.id == step_id)
        {
            row.state = state;
            row.attempts = attempts;
            row.error = error.map(str::to_string);
        }
    }

    /// The run's steps as they stand, committed or waiting.
    fn current_steps(&self) -> Result<Vec<StepRow>, StoreError> {
        match &self.steps {
            Some(rows) => Ok(rows.clone()),
            None => steps::for_run(&*self.engine.store.conn()?, &self.run.run_id),
        }
    }

    fn lines(&self, rows: &[StepRow], pick: impl Fn(StepState) -> bool) -> Vec<StepLine> {
        rows.iter()
            .filter(|r| pick(r.state))
            .map(|r| StepLine {
                step: r.plan.id.clone(),
                adapter: r.plan.adapter.clone(),
                record: format!("{}/{}", r.plan.record.kind, r.plan.record.id),
                action: r.plan.action.name().into(),
            })
            .collect()
    }

    /// Stop for a person: the outcome, the packet and their audit rows in
    /// one transaction.
    pub fn halt(&mut self, halt: Halt) -> Result<Report, RunError> {
        let rows = self.current_steps()?;
        let outcome = halt.outcome(rows.iter().any(StepRow::may_have_written));
        let pending = if rows.is_empty() {
            // Never planned: every step of the policy is still to do, with
            // its record as the plan would fill it (admission filled every
            // template once, so this only fails for a run stored before).
            match crate::policy::plan::plan(&self.policy, self.scope(), self.decision()) {
                Ok(plan) => plan
                    .iter()
                    .map(|s| StepLine {
                        step: s.id.clone(),
                        adapter: s.adapter.clone(),
                        record: format!("{}/{}", s.record.kind, s.record.id),
                        action: s.action.name().into(),
                    })
                    .collect(),
                Err(_) => self
                    .policy
                    .steps
                    .iter()
                    .map(|s| StepLine {
                        step: s.id.clone(),
                        adapter: s.adapter.clone(),
                        record: format!("{}/{}", s.record.kind, s.record.id),
                        action: s.action.kind().name().into(),
                    })
                    .collect(),
            }
        } else {
            self.lines(&rows, |s| !s.is_final())
        };
        let named: BTreeSet<String> = self
            .policy
            .source
            .must_match
            .keys()
            .filter_map(|path| path.strip_prefix("fields.").map(str::to_string))
            .collect();
        let due = crate::store::rfc3339_in(Duration::from_secs(
            u64::from(self.policy.follow_up.sla_hours) * 3600,
        ));
        let packet = Packet {
            reason: halt.reason,
            summary: halt.summary,
            run_id: self.run.run_id.clone(),
            event_id: self.run.event_id.clone(),
            policy: format!("{} v{}", self.policy.id, self.policy.version),
            policy_sha256: self.policy.sha256.clone(),
            done: self.lines(&rows, |s| s == StepState::Verified),
            skipped: self.lines(&rows, |s| s == StepState::Skipped),
            pending,
            run_outcome: Some(outcome.name().into()),
            source_snapshot: self.snapshot.as_ref().map(|v| Snapshot::of(v, &named)),
            mismatch: halt.mismatch,
            records: halt.record.into_iter().collect(),
            links: self.links.clone(),
            next_actions: vec![
                Resolution::Resume,
                Resolution::Abandon,
                Resolution::MarkResolved,
            ],
            route_to: self.policy.follow_up.route_to.clone(),
            due_at: due,
        };
        let run_id = self.run.run_id.clone();
        let pending_ids: Vec<_> = packet.pending.iter().map(|s| s.step.clone()).collect();
        let id = self.transition_with(|tx| {
            let id = crate::store::follow_ups::insert(tx, &packet)?;
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
            follow_up: Some(id),
        })
    }

    fn complete(&mut self) -> Result<Report, RunError> {
        let rows = self.current_steps()?;
        let ids = |state: StepState| -> Vec<String> {
            rows.iter()
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
        let run_id = self.run.run_id.clone();
        let payload = json!({
            "outcome": outcome.name(),
            "verified": ids(StepState::Verified),
            "skipped": skipped,
        });
        self.transition(
            |tx| runs::set_outcome(tx, &run_id, Some(outcome)),
            vec![Row::new("run-completed", payload)],
        )?;
        Ok(Report {
            run_id,
            event_id: self.run.event_id.clone(),
            outcome,
            follow_up: None,
        })
    }
}
