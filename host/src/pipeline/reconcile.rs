//! Reconciliation: find decisions that never arrived as events, because
//! webhooks get lost.
//!
//! For each configured policy, its source adapter's `list-changes` is read
//! from the cursor the store keeps for that adapter and policy. Every change
//! in one of the policy's trigger states is read in full (`read-decision`)
//! and turned into the event a sender would have delivered: `data` holds the
//! decision's fields, its `state`, and the record id under the key the
//! policy's source record names (`{{event.data.review_id}}` → `review_id`).
//! It is then accepted like any other event, so its business key is the one
//! the delivered event had: a decision that did arrive is a duplicate, not a
//! second run. The cursor is saved after the page's events are stored; a
//! crash in between reads the page again and intake suppresses the repeats.
//! Each call counts against the adapter's `concurrency`, like a run's calls.

use super::{Accepted, Engine, RunError};
use crate::model::CloudEvent;
use crate::policy::Policy;
use crate::sandbox::{Decision, Instance};
use serde_json::{Map, Value, json};

/// What one pass found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Runs created for decisions no event had brought.
    pub new_runs: Vec<String>,
    /// Decisions already taken in (their event arrived, or an earlier pass).
    pub duplicates: usize,
    /// Changes not in a trigger state, or not of the policy's record kind.
    pub ignored: usize,
}

const PAGE: u32 = 100;

/// The `event.data` key the policy's source record id comes from.
fn id_field(policy: &Policy) -> Option<&str> {
    let inner = policy
        .source
        .record
        .id
        .trim()
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim();
    inner
        .strip_prefix("event.data.")
        .filter(|f| !f.is_empty() && !f.contains('.'))
}

/// The event a sender would have delivered for this decision.
fn event_for(policy: &Policy, adapter: &str, id_field: &str, d: &Decision) -> Value {
    let mut data: Map<String, Value> = d
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    data.insert("state".into(), Value::String(d.state.clone()));
    data.insert(id_field.into(), Value::String(d.record.id.clone()));
    json!({
        "specversion": "1.0",
        "id": format!("{}/{}@{}", d.record.kind, d.record.id, d.revision.as_deref().unwrap_or("-")),
        "source": format!("handoff/reconcile/{adapter}"),
        "type": policy.trigger.event_type,
        "subject": d.record.id,
        "data": data,
    })
}

impl Engine {
    /// One reconciliation pass over every configured policy's source.
    pub async fn reconcile(&mut self, context: &Value) -> Result<Reconciled, RunError> {
        let mut found = Reconciled::default();
        for configured in self.policies.clone() {
            let policy = &configured.policy;
            let adapter = policy.source.adapter.as_str();
            let Some(field) = id_field(policy) else {
                tracing::warn!(
                    policy = %policy.id,
                    "not reconciled: source.record.id is not one {{{{event.data.FIELD}}}}"
                );
                continue;
            };
            let mut instance = self
                .adapter(adapter)?
                .instantiate()
                .await
                .map_err(|e| reconcile_error(adapter, e.to_string()))?;
            let mut cursor = self
                .store
                .poll_cursor(adapter, &policy.id)?
                .unwrap_or_default();
            loop {
                let permit = self.throttle.acquire(adapter).await;
                let page = instance.list_changes(&cursor, PAGE).await;
                drop(permit);
                self.keep_decisions(&mut instance);
                let page = flatten(adapter, "list-changes", page)?;
                for change in &page.changes {
                    if change.record.kind != policy.source.record.kind
                        || !policy.trigger.states.contains(&change.state)
                    {
                        found.ignored += 1;
                        continue;
                    }
                    let permit = self.throttle.acquire(adapter).await;
                    let decision = instance.read_decision(&change.record).await;
                    drop(permit);
                    self.keep_decisions(&mut instance);
                    let decision = flatten(adapter, "read-decision", decision)?;
                    if !policy.trigger.states.contains(&decision.state) {
                        found.ignored += 1; // changed again since it was listed
                        continue;
                    }
                    let raw = event_for(policy, adapter, field, &decision);
                    let bytes = serde_json::to_vec(&raw).expect("JSON serializes");
                    let event = CloudEvent::parse(&bytes, "reconciliation")
                        .map_err(|e| reconcile_error(adapter, e.to_string()))?;
                    match self.accept(&event, context) {
                        Ok(Accepted::New { run_id }) => found.new_runs.push(run_id),
                        Ok(Accepted::Duplicate { .. }) => found.duplicates += 1,
                        // One unrunnable decision does not stop the others.
                        Err(e) => tracing::warn!(event_id = %event.id, error = %e, "not taken in"),
                    }
                }
                self.store
                    .save_poll_cursor(adapter, &policy.id, &page.next_cursor)?;
                if page.changes.len() < PAGE as usize || page.next_cursor == cursor {
                    break;
                }
                cursor = page.next_cursor;
            }
        }
        Ok(found)
    }

    /// Persist the capability decisions an instance made (invariant 6).
    fn keep_decisions(&mut self, instance: &mut Instance) {
        let decisions = instance.take_decisions();
        if let Err(e) = self.store.record_decisions(&decisions) {
            tracing::error!(error = %e, "capability decisions could not be stored");
        }
    }
}

fn reconcile_error(adapter: &str, problem: String) -> RunError {
    RunError::Reconcile {
        adapter: adapter.to_string(),
        problem,
    }
}

fn flatten<T>(
    adapter: &str,
    call: &str,
    result: crate::sandbox::CallResult<T>,
) -> Result<T, RunError> {
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(reconcile_error(adapter, format!("{call}: {e:?}"))),
        Err(e) => Err(reconcile_error(adapter, format!("{call}: {e}"))),
    }
}
