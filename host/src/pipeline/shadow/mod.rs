//! Shadow mode: a run of a policy with `mode = "shadow"` is taken in,
//! revalidated, checked and planned like any run, and every step's target
//! is observed, through adapter instances loaded for reading only (no
//! actions, surfaces narrowed to reading: [`crate::sandbox::narrowing::to_reading`]),
//! so no write can reach a target. What each step would have done is
//! recorded (`shadow-step` audit rows, with the target's state as seen), and
//! the run ends `shadowed`; where it would have stopped for a person is
//! recorded too (`shadow-halt`), and nobody is handed a packet.
//!
//! Nothing is recorded until the end, in one transaction: a process killed
//! before it leaves the run unfinished, and the next drive looks again
//! (looking twice writes nothing). `handoff shadow report` later compares
//! what was recorded with the targets as they are then ([`report`]).

pub mod report;

use super::driver::{Driver, Ending};
use super::lease::Lease;
use super::preview::{StepPreview, step_preview, would_end};
use super::record::{Recorder, Recording, Row};
use super::{Engine, Outcome, Report, RunError};
use crate::policy::Policy;
use crate::store::runs::{self, RunRecord};
use crate::store::steps;
use serde_json::json;
use std::sync::Arc;

impl Engine {
    /// Drive a claimed run of a shadow policy to `shadowed`.
    pub(super) async fn shadow(
        &mut self,
        run: RunRecord,
        policy: Arc<Policy>,
    ) -> Result<Report, RunError> {
        let (ending, reads, trace) = {
            let mut driver = Driver::new(self, run.clone(), policy, Recording::Off, None)?;
            let ending = driver.stages().await?;
            let reads = driver.recorder.take_reads();
            (ending, reads, std::mem::take(&mut driver.trace))
        };
        let halt = match ending {
            Ending::Completed => None,
            Ending::Halted(halt) => Some(halt),
        };
        let planned = steps::for_run(&*self.store.conn()?, &run.run_id)?;
        // A run that would stop before looking at any step never reaches
        // them; otherwise each step says what it would have done.
        let looked: Vec<StepPreview> = if !trace.is_empty() || halt.is_none() {
            planned
                .iter()
                .map(|row| step_preview(&row.plan, trace.iter().find(|t| t.step == row.plan.id)))
                .collect()
        } else {
            Vec::new()
        };
        let would = would_end(halt.as_ref(), &looked);
        let mut rows: Vec<Row> = looked
            .iter()
            .map(|s| {
                // What the target showed, as a digest: the report tells a
                // target people changed from one nobody touched by it,
                // without keeping the record's fields.
                let seen = trace
                    .iter()
                    .find(|t| t.step == s.step)
                    .and_then(|t| t.seen.as_ref())
                    .map(report::fingerprint);
                let mut payload = json!(s);
                payload["seen_sha256"] = json!(seen);
                Row::new("shadow-step", payload)
            })
            .collect();
        if let Some(halt) = &halt {
            rows.push(Row::new(
                "shadow-halt",
                json!({ "reason": halt.reason.name(), "summary": halt.summary }),
            ));
        }
        rows.push(Row::new(
            "run-shadowed",
            json!({ "outcome": Outcome::Shadowed.name(), "would_end": would.name() }),
        ));
        let mut recorder = Recorder::new(
            Recording::On,
            Lease::new(self.owner.clone(), self.lease_ttl),
        );
        for read in reads {
            recorder.note(read);
        }
        let run_id = run.run_id.clone();
        recorder.commit(&mut self.store, &run, |tx| {
            runs::set_outcome(tx, &run_id, Some(Outcome::Shadowed))?;
            Ok(((), rows))
        })?;
        Ok(Report {
            run_id: run.run_id,
            event_id: run.event_id,
            outcome: Outcome::Shadowed,
            follow_up: None,
        })
    }
}
