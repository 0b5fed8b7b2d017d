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
//! between reads the page again and intake suppresses the repeats. A change
//! that can never be taken in (the source refuses for good to read it, or
//! its decision makes no acceptable event) is logged and passed over, so it
//! cannot hold up every later decision pass after pass; a transient failure
//! fails the pass, which the next one repeats. Calls go through the
//! adapter-call service, like a run's.

use super::calls::AdapterCalls;
use super::{Accepted, Engine, RunError};
use crate::model::{CloudEvent, Reason};
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
    /// Changes listed that cannot be taken in, each logged and passed over
    /// so that it holds up no later one: the source refused to read the
    /// decision for good (a transient failure fails the pass instead, to be
    /// tried again), or its decision makes no event handoff may take (a
    /// record id no CloudEvent may carry, no runnable policy).
    pub passed_over: usize,
}

const PAGE: u32 = 100;

/// The most pages of one policy's source read in one pass: a source that
/// always has more (a long backlog, or a cursor that goes round in a
/// circle) holds up neither the other policies nor the pass's end; the
/// next pass goes on from the saved cursor.
pub const PAGES_PER_PASS: usize = 50;

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
            for pages in 1.. {
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
                    let decision = match calls.read_decision(adapter, &change.record).await? {
                        Ok(decision) => decision,
                        // This record's own refusal (gone, unreadable, an
                        // answer past the bounds): asking again gets it again.
                        // `list-changes` answered just before under the same
                        // grant, so a denial is this record's too.
                        Err(halt)
                            if matches!(
                                halt.reason,
                                Reason::MappingMissing
                                    | Reason::TargetRefused
                                    | Reason::CapabilityDenied
                            ) =>
                        {
                            found.passed_over += 1;
                            tracing::warn!(adapter, error = %halt.summary, "a listed decision could not be read; passed over");
                            continue;
                        }
                        // Worth another try (or the adapter reads no decision
                        // at all): the next pass reads from here again.
                        Err(halt) => return Err(reconcile_error(adapter, halt.summary)),
                    };
                    if !policy.trigger.states.contains(&decision.state) {
                        found.ignored += 1; // changed again since it was listed
                        continue;
                    }
                    let raw = event_for(policy, adapter, field, &decision);
                    let event = match CloudEvent::from_value(raw, "reconciliation") {
                        Ok(event) => event,
                        Err(e) => {
                            found.passed_over += 1;
                            tracing::warn!(adapter, error = %e, "a listed decision makes no event handoff takes; passed over");
                            continue;
                        }
                    };
                    let event_id = event.id.clone();
                    match take(&mut self.store, event).await {
                        Ok(Accepted::New { run_id }) => found.new_runs.push(run_id),
                        Ok(Accepted::Duplicate { .. }) => found.duplicates += 1,
                        Err(e @ RunError::Store(_)) => return Err(e),
                        // One unrunnable decision does not stop the others.
                        Err(e) => {
                            found.passed_over += 1;
                            tracing::warn!(%event_id, error = %e, "not taken in");
                        }
                    }
                }
                self.store
                    .save_poll_cursor(adapter, &policy.id, &page.next_cursor)?;
                if page.changes.len() < PAGE as usize || page.next_cursor == cursor {
                    break;
                }
                if pages == PAGES_PER_PASS {
                    tracing::warn!(
                        policy = %policy.id,
                        adapter,
                        "reconciliation read {PAGES_PER_PASS} pages of changes in one pass; the \
                         next pass goes on from there"
                    );
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
