//! Reconciliation: find decisions that never arrived as events, because
//! webhooks get lost.
//!
//! For each configured policy, its source adapter's `list-changes` is read
//! from the cursor the store keeps for that adapter and policy. Every change
//! in one of the policy's trigger states is read in full (`read-decision`)
//! and turned into the event a sender would have delivered: `data` holds the
//! decision's fields, its `state`, and the record id under the key the
//! policy's source record names (`{{event.data.review_id}}` → `review_id`).
//! It is then taken in like any other event, by the door the caller gives
//! ([`Engine::reconcile_with`]: the service's commit path, with room in the
//! run queue reserved first), so its business key is the one the delivered
//! event had: a decision that did arrive is a duplicate, not a second run.
//! The cursor is saved after the page's events are stored; a crash in
//! between reads the page again and intake suppresses the repeats. Calls go
//! through the adapter-call service, like a run's.

use super::calls::AdapterCalls;
use super::{Accepted, Engine, RunError};
use crate::model::CloudEvent;
use crate::policy::Policy;
use crate::sandbox::Decision;
use crate::store::Store;
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
    /// One pass over every configured policy's source, each decision found
    /// taken in by this engine's own intake transaction.
    pub async fn reconcile(&mut self, context: &Value) -> Result<Reconciled, RunError> {
        let host = self.host.clone();
        self.reconcile_with(async |store: &mut Store, event: CloudEvent| {
            super::intake::accept(&host, store, &event, context)
        })
        .await
    }

    /// One pass, each decision found handed to `take` (with this engine's
    /// store), which stores it and says what became of it.
    pub async fn reconcile_with(
        &mut self,
        mut take: impl AsyncFnMut(&mut Store, CloudEvent) -> Result<Accepted, RunError>,
    ) -> Result<Reconciled, RunError> {
        let mut found = Reconciled::default();
        let mut calls = AdapterCalls::new(self.host.clone(), &self.store);
        for configured in self.host.policies().to_vec() {
            let policy = &configured.policy;
            let adapter = policy.source.adapter.as_str();
            let Some(field) = id_field(policy) else {
                tracing::warn!(
                    policy = %policy.id,
                    "not reconciled: source.record.id is not one {{{{event.data.FIELD}}}}"
                );
                continue;
            };
            let mut cursor = self
                .store
                .poll_cursor(adapter, &policy.id)?
                .unwrap_or_default();
            loop {
                let page = calls
                    .list_changes(adapter, &cursor, PAGE)
                    .await?
                    .map_err(|halt| reconcile_error(adapter, halt.summary))?;
                for change in &page.changes {
                    if change.record.kind != policy.source.record.kind
                        || !policy.trigger.states.contains(&change.state)
                    {
                        found.ignored += 1;
                        continue;
                    }
                    let decision = calls
                        .read_decision(adapter, &change.record)
                        .await?
                        .map_err(|halt| reconcile_error(adapter, halt.summary))?;
                    if !policy.trigger.states.contains(&decision.state) {
                        found.ignored += 1; // changed again since it was listed
                        continue;
                    }
                    let raw = event_for(policy, adapter, field, &decision);
                    let event = CloudEvent::from_value(raw, "reconciliation")
                        .map_err(|e| reconcile_error(adapter, e.to_string()))?;
                    let event_id = event.id.clone();
                    match take(&mut self.store, event).await {
                        Ok(Accepted::New { run_id }) => found.new_runs.push(run_id),
                        Ok(Accepted::Duplicate { .. }) => found.duplicates += 1,
                        Err(e @ RunError::Store(_)) => return Err(e),
                        // One unrunnable decision does not stop the others.
                        Err(e) => tracing::warn!(%event_id, error = %e, "not taken in"),
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
}

fn reconcile_error(adapter: &str, problem: String) -> RunError {
    RunError::Reconcile {
        adapter: adapter.to_string(),
        problem,
    }
}
