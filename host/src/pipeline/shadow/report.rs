//! `handoff shadow report`: for each shadowed run, the targets observed
//! again (through the same reading-only instances) and compared with what
//! the run recorded: did people do what the automation would have done,
//! something else, or nothing? The evidence a process owner needs before
//! turning a policy live.

use super::super::calls::AdapterCalls;
use super::super::{Engine, Outcome, RunError};
use crate::policy::condition::{self, View};
use crate::store::runs::{self, RunRecord};
use crate::store::steps;
use serde::Serialize;
use serde_json::Value;

/// The most shadowed runs one report looks at (newest first).
pub const MAX_RUNS: usize = 1000;

/// A digest of what a target showed.
pub fn fingerprint(view: &View) -> String {
    let text = serde_json::to_string(view).unwrap_or_default();
    crate::sandbox::package::sha256_hex(text.as_bytes())
}

/// What became of one shadowed run's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every step the automation would have written is in its end state:
    /// people did what it would have done.
    Same,
    /// People changed the targets, but not (all) to the steps' end states.
    Different,
    /// No target the automation would have written has changed.
    Nothing,
    /// The automation would have stopped and handed the run to a person.
    WouldStop,
    /// Every target was already in its end state: nothing to do.
    NothingToDo,
    /// A target could not be observed again.
    Unknown,
}

impl Verdict {
    pub fn says(self) -> &'static str {
        match self {
            Verdict::Same => "people did what the automation would have done",
            Verdict::Different => "people did something else",
            Verdict::Nothing => "nobody has done it yet",
            Verdict::WouldStop => "the automation would have handed it to a person",
            Verdict::NothingToDo => "there was nothing to do",
            Verdict::Unknown => "a target could not be observed",
        }
    }
}

/// One step the automation would have written, as its target is now.
#[derive(Debug, Clone, Serialize)]
pub struct StepNow {
    pub step: String,
    pub adapter: String,
    pub record: String,
    pub action: String,
    /// `done` (in its end state), `changed` (not to its end state),
    /// `unchanged`, `unobservable`, or `not-comparable` (done only when
    /// the target carries the step's own key: a message it would have
    /// published).
    pub now: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunVerdict {
    pub run_id: String,
    pub event_id: String,
    pub policy: String,
    pub shadowed_at: String,
    pub verdict: Verdict,
    /// Why it would have stopped, when it would have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_stop: Option<String>,
    pub steps: Vec<StepNow>,
}

impl Engine {
    /// Each shadowed run since `since` (an RFC 3339 time; all when `None`),
    /// newest first and at most `limit` (at most [`MAX_RUNS`]), its targets
    /// observed again now.
    pub async fn shadow_report(
        &mut self,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunVerdict>, RunError> {
        let shadowed: Vec<RunRecord> = runs::list(
            &*self.store.conn()?,
            limit.min(MAX_RUNS),
            runs::Which::Ended(Outcome::Shadowed),
        )?
        .into_iter()
        .filter(|r| since.is_none_or(|s| r.updated_at.as_str() >= s))
        .collect();
        let mut out = Vec::with_capacity(shadowed.len());
        for run in shadowed {
            out.push(self.verdict_of(run).await?);
        }
        Ok(out)
    }

    async fn verdict_of(&mut self, run: RunRecord) -> Result<RunVerdict, RunError> {
        let rows = self.store.audit_rows(Some(&run.run_id))?;
        let planned = steps::for_run(&*self.store.conn()?, &run.run_id)?;
        let payload = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
        let would_stop = rows.iter().find(|r| r.kind == "shadow-halt").map(|r| {
            payload(&r.payload)["reason"]
                .as_str()
                .unwrap_or("")
                .to_string()
        });
        let mut result = RunVerdict {
            run_id: run.run_id.clone(),
            event_id: run.event_id.clone(),
            policy: run.policy_id.clone(),
            shadowed_at: run.updated_at.clone(),
            verdict: Verdict::NothingToDo,
            would_stop: would_stop.clone(),
            steps: Vec::new(),
        };
        if would_stop.is_some() {
            result.verdict = Verdict::WouldStop;
            return Ok(result);
        }
        let mut calls =
            AdapterCalls::new(self.host.clone(), &self.store).for_run(None, &run.event_id);
        calls = calls.shadowed();
        for row in rows.iter().filter(|r| r.kind == "shadow-step") {
            let step = payload(&row.payload);
            if step["would"] != "apply" {
                continue;
            }
            let id = step["step"].as_str().unwrap_or_default();
            let Some(plan) = planned.iter().find(|p| p.plan.id == id).map(|p| &p.plan) else {
                continue;
            };
            // A step done only when the target carries its own key (a
            // message the automation would have published) is not
            // something a person can do the same way: it is shown, and left
            // out of the verdict.
            let ours_only = plan.done_when.keys().all(|path| path == "applied");
            let observed = if ours_only {
                None
            } else {
                Some(calls.observe(&plan.adapter, &plan.record_ref()).await?)
            };
            let (now, error) = match observed {
                None => ("not-comparable", None),
                Some(Err(halt)) => ("unobservable", Some(halt.summary)),
                Some(Ok(observed)) => {
                    let view = View::from(&observed);
                    if condition::check(&plan.done_when, &view, Some(&plan.key)).is_ok() {
                        ("done", None)
                    } else if step["seen_sha256"].as_str() != Some(fingerprint(&view).as_str()) {
                        ("changed", None)
                    } else {
                        ("unchanged", None)
                    }
                }
            };
            result.steps.push(StepNow {
                step: plan.id.clone(),
                adapter: plan.adapter.clone(),
                record: format!("{}/{}", plan.record.kind, plan.record.id),
                action: plan.action.name().to_string(),
                now,
                error,
            });
        }
        let compared: Vec<&StepNow> = result
            .steps
            .iter()
            .filter(|s| s.now != "not-comparable")
            .collect();
        let all = |state: &str| compared.iter().all(|s| s.now == state);
        result.verdict = if compared.is_empty() {
            Verdict::NothingToDo
        } else if compared.iter().any(|s| s.now == "unobservable") {
            Verdict::Unknown
        } else if all("done") {
            Verdict::Same
        } else if all("unchanged") {
            Verdict::Nothing
        } else {
            Verdict::Different
        };
        Ok(result)
    }
}
