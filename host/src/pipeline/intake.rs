//! Intake, the first stage: an event is matched to its one configured,
//! approved policy, its trigger state checked and every template its run
//! will need filled in (so a missing value fails before anything is
//! written); then the store records the event with its run, once per
//! (source, id) and business key ([`crate::store::intake`]).

use super::{Accepted, ConfiguredPolicy, Engine, RunError, approval_problem, known_types};
use crate::model::CloudEvent;
use crate::policy::Policy;
use crate::policy::plan;
use crate::policy::template::{Scope, TemplateError};
use crate::store::intake::Delivery;
use crate::store::runs::NewRun;

/// An event that passed every check of `accept` and can be stored.
pub(crate) struct Admitted {
    pub policy_id: String,
    pub policy_sha256: String,
    pub business_key: Option<String>,
}

impl Admitted {
    fn new_run<'a>(&'a self, context: &'a serde_json::Value) -> NewRun<'a> {
        NewRun {
            policy_id: &self.policy_id,
            policy_sha256: &self.policy_sha256,
            context,
        }
    }
}

impl Engine {
    /// Match an event's policy, check everything its run will need can be
    /// filled in, and record it with its run (or recognise a duplicate), in
    /// one transaction. Bad input fails here with nothing written. When this
    /// returns, the event is durable: the run can be driven now or after a
    /// restart.
    pub fn accept(
        &mut self,
        event: &CloudEvent,
        context: &serde_json::Value,
    ) -> Result<Accepted, RunError> {
        let admitted = self.admit(event, context)?;
        let new = admitted.new_run(context);
        let intake = self
            .store
            .intake_run(event, admitted.business_key.as_deref(), Some(&new))?;
        Ok(Accepted::from(intake))
    }

    /// [`Engine::accept`] for several events, stored in one transaction
    /// (group commit). Each event gets its own answer, in order: one that
    /// is refused does not hold back the others.
    pub fn accept_batch(
        &mut self,
        events: &[&CloudEvent],
        context: &serde_json::Value,
    ) -> Vec<Result<Accepted, RunError>> {
        let admitted: Vec<Result<Admitted, RunError>> =
            events.iter().map(|e| self.admit(e, context)).collect();
        let deliveries: Vec<Delivery<'_>> = events
            .iter()
            .zip(&admitted)
            .filter_map(|(event, a)| {
                let a = a.as_ref().ok()?;
                Some(Delivery {
                    event,
                    business_key: a.business_key.as_deref(),
                    run: Some(a.new_run(context)),
                })
            })
            .collect();
        let mut stored = self.store.intake_batch(&deliveries).into_iter();
        admitted
            .into_iter()
            .map(|a| {
                a?;
                let intake = stored.next().expect("one answer per delivery")?;
                Ok(Accepted::from(intake))
            })
            .collect()
    }

    /// Everything `accept` checks before writing: the policy for the event's
    /// type, its approval, the trigger state, and that every template the
    /// run will need can be filled in.
    fn admit(&self, event: &CloudEvent, context: &serde_json::Value) -> Result<Admitted, RunError> {
        let configured = self.policy_for(event)?;
        self.require_approved(configured)?;
        admit_under(&configured.policy, event, context)
    }

    /// The configured policy an event's type triggers.
    pub(crate) fn policy_for(&self, event: &CloudEvent) -> Result<&ConfiguredPolicy, RunError> {
        self.policies
            .iter()
            .find(|p| p.policy.trigger.event_type == event.event_type)
            .ok_or_else(|| RunError::NoPolicy {
                event_type: event.event_type.clone(),
                known: known_types(&self.policies),
            })
    }

    pub(crate) fn require_approved(&self, configured: &ConfiguredPolicy) -> Result<(), RunError> {
        match approval_problem(configured, self.store.policy_status(&configured.policy)?) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

/// Everything `accept` checks of an event under its policy, apart from the
/// approval: the trigger state, and that every template the run will need
/// can be filled in.
pub(crate) fn admit_under(
    policy: &Policy,
    event: &CloudEvent,
    context: &serde_json::Value,
) -> Result<Admitted, RunError> {
    let state = event
        .data
        .get("state")
        .and_then(|s| s.as_str())
        .ok_or_else(|| RunError::Trigger {
            event_id: event.id.clone(),
            problem: format!(
                "data.state is missing; policy {} acts on decisions in states {:?}",
                policy.id, policy.trigger.states
            ),
        })?;
    if !policy.trigger.states.contains(state) {
        return Err(RunError::Trigger {
            event_id: event.id.clone(),
            problem: format!(
                "decision state {state:?} does not authorize policy {} (it acts on {:?}); nothing to do",
                policy.id, policy.trigger.states
            ),
        });
    }
    let scope = Scope {
        event: &event.raw,
        context,
    };
    let business_key = business_key(policy, scope)?;
    dry_render(
        policy,
        scope,
        &event.source,
        business_key.as_deref(),
        &event.id,
    )?;

    Ok(Admitted {
        policy_id: policy.id.clone(),
        policy_sha256: policy.sha256.clone(),
        business_key,
    })
}

/// The business key: the policy's id and its parts, encoded by
/// [`encode_business_key`], or none.
fn business_key(policy: &Policy, scope: Scope<'_>) -> Result<Option<String>, TemplateError> {
    if policy.source.business_key.is_empty() {
        return Ok(None);
    }
    let parts = policy
        .source
        .business_key
        .iter()
        .enumerate()
        .map(|(i, t)| {
            crate::policy::template::render(t, scope, &format!("source.business-key[{i}]"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(encode_business_key(&policy.id, &parts)))
}

/// `ID:PART/PART/...`, with `\` escaping a `\` or `:` in the id and a `\`
/// or `/` in a part, so that two different part lists never share a key
/// (`RV-77/1` + `2` is `RV-77\/1/2`, `RV-77` + `1/2` is `RV-77/1\/2`). A key
/// without any of those characters reads as it always did, so keys stored
/// before the escaping still match their decisions.
pub fn encode_business_key(policy_id: &str, parts: &[String]) -> String {
    fn escaped(out: &mut String, text: &str, special: char) {
        for c in text.chars() {
            if c == '\\' || c == special {
                out.push('\\');
            }
            out.push(c);
        }
    }
    let mut key = String::with_capacity(
        policy_id.len() + 1 + parts.iter().map(String::len).sum::<usize>() + parts.len(),
    );
    escaped(&mut key, policy_id, ':');
    key.push(':');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push('/');
        }
        escaped(&mut key, part, '/');
    }
    key
}

/// Fill every template the run will need, now, so that a missing value
/// fails before anything is written.
fn dry_render(
    policy: &Policy,
    scope: Scope<'_>,
    source: &str,
    business_key: Option<&str>,
    event_id: &str,
) -> Result<(), TemplateError> {
    use crate::policy::condition;
    policy
        .source
        .record
        .render(&policy.source.adapter, scope, "source.")?;
    condition::render(&policy.source.must_match, scope, "source.must-match")?;
    for check in &policy.checks {
        let place = format!("check {:?}", check.name);
        check
            .record
            .render(&check.adapter, scope, &format!("{place} "))?;
        condition::render(&check.expect, scope, &format!("{place} expect"))?;
    }
    plan::plan(
        policy,
        scope,
        plan::Decision {
            source,
            key: business_key.unwrap_or(event_id),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::encode_business_key;
    use proptest::prelude::*;

    /// Read a key back into its id and parts (the test's proof that the
    /// encoding loses nothing, so no two inputs share a key).
    fn decode(key: &str) -> (String, Vec<String>) {
        let (mut id, mut parts, mut part) = (String::new(), Vec::new(), String::new());
        let mut in_id = true;
        let mut chars = key.chars();
        while let Some(c) = chars.next() {
            let target = if in_id { &mut id } else { &mut part };
            match c {
                '\\' => target.push(chars.next().expect("an escape is followed")),
                ':' if in_id => in_id = false,
                '/' if !in_id => parts.push(std::mem::take(&mut part)),
                c => target.push(c),
            }
        }
        parts.push(part);
        (id, parts)
    }

    #[test]
    fn parts_holding_the_separator_no_longer_collide() {
        let a = encode_business_key("p", &["RV-77/1".into(), "2".into()]);
        let b = encode_business_key("p", &["RV-77".into(), "1/2".into()]);
        assert_ne!(a, b);
        assert_eq!(a, r"p:RV-77\/1/2");
        // A key of plain parts is what it was before the escaping.
        assert_eq!(
            encode_business_key("p", &["RV-77".into(), "3".into()]),
            "p:RV-77/3"
        );
        let c = encode_business_key("a:b", &["c".into()]);
        let d = encode_business_key("a", &["b:c".into()]);
        assert_ne!(c, d);
    }

    proptest! {
        #[test]
        fn distinct_part_lists_never_share_a_key(
            id in "[a-z:/\\\\]{0,6}",
            parts in proptest::collection::vec("[a-z0-9:/\\\\]{0,6}", 1..5),
            other in proptest::collection::vec("[a-z0-9:/\\\\]{0,6}", 1..5),
        ) {
            let key = encode_business_key(&id, &parts);
            prop_assert_eq!(decode(&key), (id.clone(), parts.clone()));
            if parts != other {
                prop_assert_ne!(key, encode_business_key(&id, &other));
            }
        }
    }
}
