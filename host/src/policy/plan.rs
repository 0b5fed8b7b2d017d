//! Plan: the policy's steps with every template filled and an idempotency
//! key each. Pure: the same policy, event and context always give the same
//! plan, byte for byte, so a resumed run and a re-sent decision carry the
//! same keys to the targets.

use crate::model::ActionKind;
use crate::policy::condition::{self, Rendered};
use crate::policy::template::{Scope, TemplateError, render};
use crate::policy::{ActionTemplate, Policy};
use crate::sandbox::{Action, Link, Message, RecordRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The record a step acts on, in its adapter's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub kind: String,
    pub id: String,
}

/// An action with its values filled in: what is stored and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlannedAction {
    SetState(String),
    AttachLink {
        url: String,
        title: String,
    },
    Annotate(String),
    ClearEntry,
    Publish {
        subject: String,
        body: String,
        links: Vec<String>,
    },
}

impl PlannedAction {
    /// The contract's form of the action.
    pub fn to_wit(&self) -> Action {
        match self {
            PlannedAction::SetState(s) => Action::SetState(s.clone()),
            PlannedAction::AttachLink { url, title } => Action::AttachLink(Link {
                url: url.clone(),
                title: title.clone(),
            }),
            PlannedAction::Annotate(n) => Action::Annotate(n.clone()),
            PlannedAction::ClearEntry => Action::ClearEntry,
            PlannedAction::Publish {
                subject,
                body,
                links,
            } => Action::Publish(Message {
                subject: subject.clone(),
                body: body.clone(),
                links: links
                    .iter()
                    .map(|url| Link {
                        url: url.clone(),
                        title: url.clone(),
                    })
                    .collect(),
            }),
        }
    }

    /// Which of the closed set of actions it is.
    pub fn kind(&self) -> ActionKind {
        match self {
            PlannedAction::SetState(_) => ActionKind::SetState,
            PlannedAction::AttachLink { .. } => ActionKind::AttachLink,
            PlannedAction::Annotate(_) => ActionKind::Annotate,
            PlannedAction::ClearEntry => ActionKind::ClearEntry,
            PlannedAction::Publish { .. } => ActionKind::Publish,
        }
    }

    /// Its name in the closed set.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

/// One step, ready to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub id: String,
    pub adapter: String,
    pub record: TargetRecord,
    pub action: PlannedAction,
    pub done_when: Rendered,
    pub key: String,
    /// The states its record may be changed from; empty: any. (Runs
    /// planned before there were any have none.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_states: Vec<String>,
}

impl PlannedStep {
    pub fn record_ref(&self) -> RecordRef {
        RecordRef {
            system: self.adapter.clone(),
            kind: self.record.kind.clone(),
            id: self.record.id.clone(),
        }
    }
}

/// A plan as its audit row records it: each step's identifiers, action
/// and key.
pub fn summary(plan: &[PlannedStep]) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = plan
        .iter()
        .map(|s| {
            serde_json::json!({
                "step": s.id, "adapter": s.adapter, "kind": s.record.kind,
                "id": s.record.id, "action": s.action.name(), "key": s.key,
            })
        })
        .collect();
    serde_json::json!({ "steps": steps })
}

/// Which decision the work is for: the event's source, and its business key
/// when the policy defines one (so a re-sent decision under a new event id
/// gets the same keys), else the event id.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub source: &'a str,
    pub key: &'a str,
}

/// The idempotency key of one step: sha256 over the decision, the step, the
/// target record and the action, as one JSON array (no two inputs encode
/// alike).
pub fn idempotency_key(
    decision: Decision<'_>,
    step_id: &str,
    adapter: &str,
    record: &TargetRecord,
    action: &PlannedAction,
) -> String {
    let encoded = serde_json::to_string(&(
        decision.source,
        decision.key,
        step_id,
        adapter,
        &record.kind,
        &record.id,
        action,
    ))
    .expect("strings encode");
    format!("hk1-{}", hex::encode(Sha256::digest(encoded.as_bytes())))
}

/// Fill the policy's steps.
pub fn plan(
    policy: &Policy,
    scope: Scope<'_>,
    decision: Decision<'_>,
) -> Result<Vec<PlannedStep>, TemplateError> {
    policy
        .steps
        .iter()
        .map(|step| {
            let place = format!("step {}", step.id);
            let filled = step
                .record
                .render(&step.adapter, scope, &format!("{place} "))?;
            let record = TargetRecord {
                kind: filled.kind,
                id: filled.id,
            };
            let r = |t: &str| render(t, scope, &format!("{place} action"));
            let action = match &step.action {
                ActionTemplate::SetState(s) => PlannedAction::SetState(r(s)?),
                ActionTemplate::AttachLink(l) => PlannedAction::AttachLink {
                    url: r(&l.url)?,
                    title: r(&l.title)?,
                },
                ActionTemplate::Annotate(n) => PlannedAction::Annotate(r(n)?),
                ActionTemplate::ClearEntry => PlannedAction::ClearEntry,
                ActionTemplate::Publish(m) => PlannedAction::Publish {
                    subject: r(&m.subject)?,
                    body: r(&m.body)?,
                    links: m.links.iter().map(|l| r(l)).collect::<Result<_, _>>()?,
                },
            };
            let done_when =
                condition::render(&step.done_when, scope, &format!("{place} done-when"))?;
            let key = idempotency_key(decision, &step.id, &step.adapter, &record, &action);
            Ok(PlannedStep {
                id: step.id.clone(),
                adapter: step.adapter.clone(),
                record,
                action,
                done_when,
                key,
                from_states: step.from_states.clone().unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn policy() -> Policy {
        Policy::parse(
            crate::policy::tests::RELEASE,
            Path::new("policies/release.toml"),
        )
        .unwrap()
    }

    fn event(id: &str) -> serde_json::Value {
        serde_json::json!({"id": id, "data": {"review_id": "RV-9", "review_version": "3", "release_id": "R-42"}})
    }

    fn context() -> serde_json::Value {
        serde_json::json!({"checklist_id": "CL-7", "milestone_id": "M-1", "evidence_url": "archive:///r42"})
    }

    fn planned(event: &serde_json::Value, decision: &str) -> Vec<PlannedStep> {
        let context = context();
        plan(
            &policy(),
            Scope {
                event,
                context: &context,
            },
            Decision {
                source: "governance",
                key: decision,
            },
        )
        .unwrap()
    }

    #[test]
    fn steps_are_filled_in_policy_order() {
        let steps = planned(&event("e1"), "RV-9/3");
        let ids: Vec<_> = steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            ["close-checklist", "clear-queue-entry", "notify-coordinator"]
        );
        assert_eq!(steps[0].record.id, "CL-7");
        assert_eq!(
            steps[2].action,
            PlannedAction::Publish {
                subject: "Release R-42 ready for scheduling".into(),
                body: String::new(),
                links: vec!["archive:///r42".into()],
            }
        );
    }

    #[test]
    fn keys_follow_the_decision_not_the_delivery() {
        // A re-sent decision (new event id, same business key): same keys.
        let a = planned(&event("e1"), "RV-9/3");
        let b = planned(&event("e2"), "RV-9/3");
        assert_eq!(a, b);
        // Another decision: every key differs, and keys differ across steps.
        let c = planned(&event("e1"), "RV-9/4");
        for (x, y) in a.iter().zip(&c) {
            assert_ne!(x.key, y.key);
        }
        let keys: std::collections::BTreeSet<_> = a.iter().map(|s| &s.key).collect();
        assert_eq!(keys.len(), a.len());
    }

    #[test]
    fn a_missing_value_is_an_error_naming_the_step() {
        let event = event("e1");
        let context = serde_json::json!({"milestone_id": "M-1"});
        let err = plan(
            &policy(),
            Scope {
                event: &event,
                context: &context,
            },
            Decision {
                source: "governance",
                key: "k",
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("step close-checklist record.id"),
            "{err}"
        );
    }
}
