//! Intake, the first stage: an event is matched to its one configured,
//! approved policy, its trigger state checked and every template its run
//! will need filled in, its plan made (so a missing value fails before
//! anything is written); then the store records the event with its run and
//! the run's plan, once per (source, id) and business key
//! ([`crate::store::intake`]).

use super::business_key::business_key;
use super::host::Host;
use super::{Accepted, ConfiguredPolicy, Engine, RunError, approval_problem, known_types};
use crate::model::CloudEvent;
use crate::policy::Policy;
use crate::policy::plan::{self, PlannedStep};
use crate::policy::template::{Scope, TemplateError};
use crate::store::Store;
use crate::store::intake::Delivery;
use crate::store::runs::NewRun;

/// An event that passed every check of `accept` and can be stored.
pub(crate) struct Admitted {
    pub policy_id: String,
    pub policy_sha256: String,
    pub business_key: Option<String>,
    /// Its run's steps, with their keys.
    pub plan: Vec<PlannedStep>,
}

impl Admitted {
    fn new_run<'a>(&'a self, context: &'a serde_json::Value) -> NewRun<'a> {
        NewRun {
            policy_id: &self.policy_id,
            policy_sha256: &self.policy_sha256,
            context,
            plan: &self.plan,
        }
    }
}

impl Engine {
    /// Match an event's policy, check everything its run will need can be
    /// filled in, and record it with its run and plan (or recognise a
    /// duplicate), in one transaction. Bad input fails here with nothing
    /// written. When this returns, the event is durable: the run can be
    /// driven now or after a restart.
    pub fn accept(
        &mut self,
        event: &CloudEvent,
        context: &serde_json::Value,
    ) -> Result<Accepted, RunError> {
        accept(&self.host, &mut self.store, event, context)
    }

    /// [`Engine::accept`] for several events, stored in one transaction
    /// (group commit). Each event gets its own answer, in order: one that
    /// is refused does not hold back the others.
    pub fn accept_batch(
        &mut self,
        events: &[&CloudEvent],
        context: &serde_json::Value,
    ) -> Vec<Result<Accepted, RunError>> {
        let admitted: Vec<Result<Admitted, RunError>> = events
            .iter()
            .map(|e| admit(&self.host, &self.store, e, context))
            .collect();
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
}

/// [`Engine::accept`] on a store and the process's policies.
pub fn accept(
    host: &Host,
    store: &mut Store,
    event: &CloudEvent,
    context: &serde_json::Value,
) -> Result<Accepted, RunError> {
    let admitted = admit(host, store, event, context)?;
    let new = admitted.new_run(context);
    let intake = store.intake_run(event, admitted.business_key.as_deref(), Some(&new))?;
    Ok(Accepted::from(intake))
}

/// Everything `accept` checks before writing: the policy for the event's
/// type, its approval, the trigger state, and that every template the run
/// will need can be filled in.
fn admit(
    host: &Host,
    store: &Store,
    event: &CloudEvent,
    context: &serde_json::Value,
) -> Result<Admitted, RunError> {
    let configured = policy_for(host, event)?;
    require_approved(store, configured)?;
    admit_under(&configured.policy, event, context)
}

/// The configured policy an event's type triggers.
pub(crate) fn policy_for<'h>(
    host: &'h Host,
    event: &CloudEvent,
) -> Result<&'h ConfiguredPolicy, RunError> {
    host.policies()
        .iter()
        .find(|p| p.policy.trigger.event_type == event.event_type)
        .ok_or_else(|| RunError::NoPolicy {
            event_type: event.event_type.clone(),
            known: known_types(host.policies()),
        })
}

/// Refused unless the configured policy's exact text is approved.
pub(crate) fn require_approved(
    store: &Store,
    configured: &ConfiguredPolicy,
) -> Result<(), RunError> {
    match approval_problem(configured, store.policy_status(&configured.policy)?) {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

/// Everything `accept` checks of an event under its policy, apart from the
/// approval: the trigger state, and that every template the run will need
/// can be filled in; the run's plan.
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
    let plan = render_all(
        policy,
        scope,
        plan::Decision {
            source: &event.source,
            key: business_key.as_deref().unwrap_or(&event.id),
        },
    )?;
    Ok(Admitted {
        policy_id: policy.id.clone(),
        policy_sha256: policy.sha256.clone(),
        business_key,
        plan,
    })
}

/// Fill every template the run will need, now, so that a missing value
/// fails before anything is written; the plan is kept.
fn render_all(
    policy: &Policy,
    scope: Scope<'_>,
    decision: plan::Decision<'_>,
) -> Result<Vec<PlannedStep>, TemplateError> {
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
    plan::plan(policy, scope, decision)
}
