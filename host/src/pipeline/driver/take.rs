//! How an engine takes a run: in a `run` span joined to the trace its
//! event names, claimed under a lease (or found finished, or held by
//! another driver), then driven live or in shadow.

use super::{Driver, Ending};
use crate::pipeline::record::Recording;
use crate::pipeline::{Engine, Report, RunError};
use crate::policy::Mode;
use crate::store::StoreError;
use crate::store::runs::{self, Claim, RunRecord};
use tracing::Instrument as _;

impl Engine {
    /// Drive a run from where it stands to an outcome.
    pub async fn drive(&mut self, run_id: &str) -> Result<Report, RunError> {
        self.drive_traced(run_id, None).await
    }

    /// [`Engine::drive`], in a `run` span that joins the trace of the
    /// event (its CloudEvents `traceparent`), or else `traceparent` (what
    /// the request that brought it carried).
    pub async fn drive_traced(
        &mut self,
        run_id: &str,
        traceparent: Option<&str>,
    ) -> Result<Report, RunError> {
        let span = tracing::info_span!(
            "run",
            run_id = %run_id,
            event_id = tracing::field::Empty,
            policy = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        // The trace is joined before the span is first entered (after that,
        // its place in a trace is settled): the event's own `traceparent`
        // goes first, then the one its request carried.
        let run = runs::get(&*self.store.conn()?, run_id)?;
        if let Some(run) = &run {
            span.record("event_id", run.event_id.as_str());
            span.record("policy", run.policy_id.as_str());
            let field = |name: &str| run.event.get(name).and_then(|v| v.as_str());
            crate::telemetry::join(
                &span,
                field("traceparent").or(traceparent),
                field("tracestate"),
            );
        }
        let report = self
            .drive_claiming(run_id, run)
            .instrument(span.clone())
            .await;
        if let Ok(r) = &report {
            span.record("outcome", r.outcome.name());
        }
        report
    }

    /// Claim the run and drive it. `run` is its record as read before the
    /// claim: a claim changes only its lease (and a finished run's outcome
    /// is the claim's answer), none of which the driver reads.
    async fn drive_claiming(
        &mut self,
        run_id: &str,
        run: Option<RunRecord>,
    ) -> Result<Report, RunError> {
        let no_run = || RunError::NoSuchRun(run_id.to_string());
        match runs::claim(&mut self.store, run_id, &self.owner, self.lease_ttl)? {
            Claim::Taken => {}
            Claim::Missing => return Err(no_run()),
            Claim::Held { owner, until } => {
                return Err(RunError::Busy {
                    run_id: run_id.to_string(),
                    owner,
                    until,
                });
            }
            Claim::Finished(outcome) => {
                let run = run.ok_or_else(no_run)?;
                return Ok(Report {
                    run_id: run.run_id,
                    event_id: run.event_id,
                    outcome,
                    follow_up: None,
                });
            }
        }
        let owner = self.owner.clone();
        let result = match run {
            Some(run) => self.drive_claimed(run).await,
            None => Err(no_run()),
        };
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

    async fn drive_claimed(&mut self, run: RunRecord) -> Result<Report, RunError> {
        self.host.follow_approvals(&self.store)?;
        let policy = self
            .host
            .approved_policy(&run.policy_sha256, &self.store)?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "run {}: policy {} has no approved text",
                    run.run_id, run.policy_sha256
                ))
            })?;
        if policy.mode == Mode::Shadow {
            return self.shadow(run, policy).await;
        }
        let mut driver = Driver::new(self, run, policy, Recording::On, None)?;
        match driver.stages().await? {
            Ending::Completed => driver.complete(),
            Ending::Halted(halt) => driver.halt(halt),
        }
    }
}
