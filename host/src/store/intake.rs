//! Intake's transaction: an event recorded exactly once, with its run and
//! the run's plan. A delivery whose (source, id) or business key is already
//! stored is a duplicate: no new run. The event row, its run, its steps and
//! their audit rows commit together.

use super::runs::{self, NewRun};
use super::{Store, StoreError};
use crate::audit::Entry;
use crate::model::{CloudEvent, DuplicateOf};

/// What intake did with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// First delivery: stored as event `seq`, with its run when one was asked for.
    New { seq: i64, run_id: Option<String> },
    /// Already stored as event `seq`: suppressed, no new run. `run_id` is
    /// the run the first delivery started, if any.
    Duplicate {
        seq: i64,
        of: DuplicateOf,
        run_id: Option<String>,
    },
}

impl Store {
    /// Record a delivery once. Concurrent deliveries of one event, from any
    /// number of connections or processes, yield exactly one `New`.
    pub fn intake(
        &mut self,
        event: &CloudEvent,
        business_key: Option<&str>,
    ) -> Result<Intake, StoreError> {
        self.intake_run(event, business_key, None)
    }

    /// Record a delivery once and, when it is new, create its run in the
    /// same transaction: an event is never stored without the run it
    /// starts, nor a run without its event.
    pub fn intake_run(
        &mut self,
        event: &CloudEvent,
        business_key: Option<&str>,
        run: Option<&NewRun<'_>>,
    ) -> Result<Intake, StoreError> {
        let tx = self.write()?;
        let outcome = record(&tx, event, business_key, run)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Record several deliveries, each with its run, in one transaction
    /// (group commit: the service's intake takes whatever arrived while the
    /// previous commit was being written). Deliveries in one batch are
    /// recognised as duplicates of each other exactly as across batches.
    /// When any of them fails, the whole transaction is rolled back and each
    /// is tried again in its own, so one bad delivery costs the others
    /// nothing but time.
    pub fn intake_batch(&mut self, deliveries: &[Delivery<'_>]) -> Vec<Result<Intake, StoreError>> {
        let together = (|| {
            let tx = self.write()?;
            let outcomes = deliveries
                .iter()
                .map(|d| record(&tx, d.event, d.business_key, d.run.as_ref()))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok::<_, StoreError>(outcomes)
        })();
        match together {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(_) if deliveries.len() > 1 => deliveries
                .iter()
                .map(|d| self.intake_run(d.event, d.business_key, d.run.as_ref()))
                .collect(),
            Err(e) => vec![Err(e)],
        }
    }
}

/// One delivery for [`Store::intake_batch`].
pub struct Delivery<'a> {
    pub event: &'a CloudEvent,
    pub business_key: Option<&'a str>,
    pub run: Option<NewRun<'a>>,
}

/// The event, its run and the audit row, inside the caller's transaction.
fn record(
    conn: &crate::store::Write<'_>,
    event: &CloudEvent,
    business_key: Option<&str>,
    run: Option<&NewRun<'_>>,
) -> Result<Intake, StoreError> {
    let existing = crate::store::events::find(conn, &event.source, &event.id, business_key)?;
    let (outcome, kind) = match existing {
        Some((seq, of)) => {
            let run_id = runs::for_event(conn, seq)?;
            (
                Intake::Duplicate { seq, of, run_id },
                "duplicate-suppressed",
            )
        }
        None => {
            let seq = crate::store::events::insert(conn, event, business_key)?;
            let run_id = run
                .map(|new| {
                    let run_id = runs::insert(conn, seq, &event.id, new)?;
                    crate::store::steps::insert_plan(conn, &run_id, new.plan)?;
                    Ok::<_, StoreError>(run_id)
                })
                .transpose()?;
            (Intake::New { seq, run_id }, "event-received")
        }
    };
    let (seq, run_id) = match &outcome {
        Intake::New { seq, run_id } | Intake::Duplicate { seq, run_id, .. } => (*seq, run_id),
    };
    crate::store::audit::append(
        conn,
        &Entry {
            run_id: run_id.clone(),
            event_id: Some(event.id.clone()),
            kind: kind.into(),
            payload: serde_json::json!({
                "source": event.source,
                "type": event.event_type,
                "business_key": business_key,
                "event_seq": seq,
            }),
            policy_sha256: run.map(|r| r.policy_sha256.to_string()),
            ..Default::default()
        },
    )?;
    if let (
        Intake::New {
            run_id: Some(run_id),
            ..
        },
        Some(new),
    ) = (&outcome, run)
    {
        crate::store::audit::append(
            conn,
            &Entry {
                run_id: Some(run_id.clone()),
                event_id: Some(event.id.clone()),
                kind: "planned".into(),
                payload: crate::policy::plan::summary(new.plan),
                policy_sha256: Some(new.policy_sha256.to_string()),
                ..Default::default()
            },
        )?;
    }
    Ok(outcome)
}
