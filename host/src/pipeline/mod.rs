//! The pipeline: intake → revalidate → validate → plan → execute → confirm →
//! completion record. Each stage is a module with one job; the [`Engine`]
//! holds what they share (store, sandbox, approved policies) and
//! [`driver`] moves a run through them, writing every state transition and
//! its audit row in one transaction.

pub mod calls;
pub mod confirm;
pub mod driver;
pub mod execute;
pub mod faults;
pub mod intake;
pub mod plan;
pub mod preview;
pub mod reconcile;
pub mod resolve;
pub mod revalidate;
pub mod throttle;
pub mod validate;

use crate::config::{AdapterInstance, Config};
use crate::policy::template::{Scope, TemplateError};
use crate::policy::{Policy, PolicyError};
use crate::sandbox::package::Package;
use crate::sandbox::{LoadError, LoadedAdapter, Sandbox};
use crate::store::policies::PolicyStatus;
use crate::store::runs::{self, NewRun};
use crate::store::{Store, StoreError};
use intake::{CloudEvent, Delivery, EventError, Intake};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use throttle::Throttle;

/// How a run ended. Closed set: the CLI, the audit chain and the store use
/// these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every step applied and confirmed.
    Completed,
    /// Done; some steps were already in their end state (skipped as idempotent).
    CompletedWithSkips,
    /// A target failed after its retries, or did not confirm; resumable.
    PartiallyCompleted,
    /// Stale, revoked, superseded, mapping drift, evidence mismatch,
    /// out of scope, capability denied: a person decides.
    HaltedForFollowUp,
    /// The decision was already received: no new run.
    DuplicateSuppressed,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Completed,
        Outcome::CompletedWithSkips,
        Outcome::PartiallyCompleted,
        Outcome::HaltedForFollowUp,
        Outcome::DuplicateSuppressed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::CompletedWithSkips => "completed-with-skips",
            Outcome::PartiallyCompleted => "partially-completed",
            Outcome::HaltedForFollowUp => "halted-for-follow-up",
            Outcome::DuplicateSuppressed => "duplicate-suppressed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.name() == s)
    }

    /// Whether a person has something to do.
    pub fn needs_follow_up(self) -> bool {
        matches!(
            self,
            Outcome::PartiallyCompleted | Outcome::HaltedForFollowUp
        )
    }
}

/// Why the pipeline could not take or drive a run (as opposed to a run that
/// ended in a follow-up, which is an outcome).
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "no configured policy is triggered by events of type {event_type:?} (configured: {known})"
    )]
    NoPolicy { event_type: String, known: String },
    #[error(
        "policies {first} and {second} are both triggered by {event_type:?}; one event type, one policy"
    )]
    AmbiguousTrigger {
        event_type: String,
        first: String,
        second: String,
    },
    #[error(
        "policy {policy} ({path}): adapter instance {adapter:?} is not configured; add [adapters.{adapter}] to the configuration"
    )]
    UnknownAdapter {
        policy: String,
        path: PathBuf,
        adapter: String,
    },
    #[error(
        "policy {policy} ({path}): adapter instance {adapter:?} has no package: {problem}; build it, or fix `package` in [adapters.{adapter}]"
    )]
    MissingPackage {
        policy: String,
        path: PathBuf,
        adapter: String,
        problem: String,
    },
    #[error("policy {policy} ({path}) {problem}")]
    PolicyNotApproved {
        policy: String,
        path: PathBuf,
        problem: String,
    },
    #[error("event {event_id}: {problem}")]
    Trigger { event_id: String, problem: String },
    #[error("no run {0}; see handoff runs list")]
    NoSuchRun(String),
    #[error("run {run_id} is being driven by {owner} (lease until {until})")]
    Busy {
        run_id: String,
        owner: String,
        until: String,
    },
    #[error("no follow-up {0}; see handoff follow-ups list")]
    NoSuchFollowUp(i64),
    #[error("follow-up {0} is already resolved")]
    AlreadyResolved(i64),
    #[error("follow-up {id} was already acknowledged by {by} at {at}")]
    AlreadyAcknowledged { id: i64, by: String, at: String },
    #[error("reconciling source adapter {adapter}: {problem}")]
    Reconcile { adapter: String, problem: String },
}

/// What became of one event or one drive of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub run_id: String,
    pub event_id: String,
    pub outcome: Outcome,
    /// The follow-up opened by this drive, if any.
    pub follow_up: Option<i64>,
}

/// What intake made of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored with a new run, not yet driven.
    New { run_id: String },
    /// Already seen (same source and id, or same business key).
    Duplicate { run_id: Option<String> },
}

impl From<Intake> for Accepted {
    fn from(intake: Intake) -> Self {
        match intake {
            Intake::New { run_id, .. } => Accepted::New {
                run_id: run_id.expect("intake was asked for a run"),
            },
            Intake::Duplicate { run_id, .. } => Accepted::Duplicate { run_id },
        }
    }
}

/// An event that passed every check of `accept` and can be stored.
struct Admitted {
    policy_id: String,
    policy_sha256: String,
    business_key: Option<String>,
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

/// A policy as configured: parsed from its file.
#[derive(Debug, Clone)]
pub struct ConfiguredPolicy {
    pub path: PathBuf,
    pub policy: Policy,
}

/// What every stage shares.
pub struct Engine {
    pub(crate) store: Store,
    sandbox: Sandbox,
    instances: BTreeMap<String, AdapterInstance>,
    loaded: BTreeMap<String, Arc<LoadedAdapter>>,
    policies: Vec<ConfiguredPolicy>,
    /// Approved policy texts runs were started under, parsed, by sha256.
    approved: BTreeMap<String, Arc<Policy>>,
    pub(crate) retry: crate::config::Retry,
    pub(crate) owner: String,
    pub(crate) lease_ttl: Duration,
    pub(crate) faults: faults::Faults,
    pub(crate) throttle: Arc<Throttle>,
    /// Told how long each step and each adapter call took (the service's
    /// metrics, the benchmark's breakdown).
    timings: Option<TimingObserver>,
}

/// What the engine timed, by adapter instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timed<'a> {
    /// One step: observe, apply, confirm, with retries and waits.
    Step { adapter: &'a str },
    /// Making a fresh instance for a run (`call` is `instantiate`), or one
    /// call into it (`observe`, `apply`, `read-decision`): the adapter's
    /// own time, without waiting for room at its concurrency limit.
    Call {
        adapter: &'a str,
        call: &'static str,
    },
}

/// Receives each timing as it is taken.
pub type TimingObserver = Arc<dyn Fn(Timed<'_>, Duration) + Send + Sync>;

impl Engine {
    /// Read the configured policies and check that every adapter they name
    /// is configured, with a package where its configuration says. Nothing
    /// is loaded or run yet.
    pub fn new(config: &Config, store: Store) -> Result<Engine, RunError> {
        let sandbox = Sandbox::new(&config.cache_dir, config.ceiling.clone())?;
        let mut policies: Vec<ConfiguredPolicy> = Vec::new();
        for path in &config.policies {
            let configured = configure_policy(config, path)?;
            if let Some(clash) = same_trigger(&policies, &configured.policy) {
                return Err(clash);
            }
            policies.push(configured);
        }
        Ok(Engine {
            store,
            sandbox,
            instances: config.adapters.clone(),
            loaded: BTreeMap::new(),
            policies,
            approved: BTreeMap::new(),
            retry: config.retry,
            owner: runs::lease_owner(),
            lease_ttl: Duration::from_secs(300),
            faults: faults::Faults::from_env(),
            throttle: Arc::new(Throttle::new(config.adapters.values())),
            timings: None,
        })
    }

    /// The id of the event that started `run_id` (for logs: a run's span
    /// carries both), when the run exists.
    pub fn event_id_of(&self, run_id: &str) -> Option<String> {
        runs::event_id(&*self.store.conn().ok()?, run_id)
            .ok()
            .flatten()
    }

    /// Share per-adapter concurrency limits with other engines, so the
    /// limit holds across all of them rather than per engine.
    pub fn share_throttle(&mut self, throttle: Arc<Throttle>) {
        self.throttle = throttle;
    }

    /// Report how long each step and each adapter call takes to
    /// `observer`.
    pub fn observe_timings(&mut self, observer: TimingObserver) {
        self.timings = Some(observer);
    }

    pub(crate) fn took(&self, what: Timed<'_>, took: Duration) {
        if let Some(observe) = &self.timings {
            observe(what, took);
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn policies(&self) -> &[ConfiguredPolicy] {
        &self.policies
    }

    /// The loaded adapter for an instance name (loaded once, on first use).
    pub(crate) fn adapter(&mut self, name: &str) -> Result<Arc<LoadedAdapter>, LoadError> {
        if let Some(a) = self.loaded.get(name) {
            return Ok(a.clone());
        }
        let instance = self.instances.get(name).ok_or_else(|| LoadError::Binding {
            instance: name.to_string(),
            problem: "is not configured in [adapters]".into(),
        })?;
        let package = Package::read(&instance.package)?;
        let approval = self
            .store
            .latest_approval(&package.manifest.name)
            .map_err(|e| LoadError::Host(e.to_string()))?;
        let loaded = match self.sandbox.load(&package, approval.as_ref(), instance) {
            Ok(l) => Arc::new(l),
            Err(err) => {
                let decision = err.decision(name, &package.component_sha256);
                let _ = self.store.record_decisions(&[decision]);
                return Err(err);
            }
        };
        self.loaded.insert(name.to_string(), loaded.clone());
        Ok(loaded)
    }

    /// Forget loaded adapters (their approval may have changed).
    pub fn reload_adapters(&mut self) {
        self.loaded.clear();
    }

    /// Take one event: accept it, then drive its run.
    pub async fn submit(
        &mut self,
        event: &CloudEvent,
        context: &serde_json::Value,
    ) -> Result<Report, RunError> {
        match self.accept(event, context)? {
            Accepted::New { run_id } => self.drive(&run_id).await,
            Accepted::Duplicate { run_id } => Ok(Report {
                run_id: run_id.unwrap_or_default(),
                event_id: event.id.clone(),
                outcome: Outcome::DuplicateSuppressed,
                follow_up: None,
            }),
        }
    }

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
    fn policy_for(&self, event: &CloudEvent) -> Result<&ConfiguredPolicy, RunError> {
        self.policies
            .iter()
            .find(|p| p.policy.trigger.event_type == event.event_type)
            .ok_or_else(|| RunError::NoPolicy {
                event_type: event.event_type.clone(),
                known: known_types(&self.policies),
            })
    }

    fn require_approved(&self, configured: &ConfiguredPolicy) -> Result<(), RunError> {
        match approval_problem(configured, self.store.policy_status(&configured.policy)?) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// Drive every unfinished run (after a crash or a stop).
    pub async fn resume_unfinished(&mut self) -> Result<Resumed, RunError> {
        let mut resumed = Resumed::default();
        let unfinished = runs::unfinished(&*self.store.conn()?)?;
        for run_id in unfinished {
            match self.drive(&run_id).await {
                // Left to its holder: its lease says it is alive.
                Err(busy @ RunError::Busy { .. }) => resumed.held.push(busy),
                other => resumed.reports.push(other?),
            }
        }
        Ok(resumed)
    }
}

/// What `resume` did: the runs it drove, and those it left to the live
/// driver whose lease they are under.
#[derive(Debug, Default)]
pub struct Resumed {
    pub reports: Vec<Report>,
    pub held: Vec<RunError>,
}

/// Everything `accept` checks of an event under its policy, apart from the
/// approval: the trigger state, and that every template the run will need
/// can be filled in.
fn admit_under(
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

/// One policy file the configuration names: parsed, and every adapter it
/// names configured, with a package where its configuration says. (Its
/// digest and approval are checked when it loads, on first use.)
pub(crate) fn configure_policy(config: &Config, path: &Path) -> Result<ConfiguredPolicy, RunError> {
    let policy = Policy::load(path)?;
    for adapter in policy.adapters() {
        let Some(instance) = config.adapters.get(adapter) else {
            return Err(RunError::UnknownAdapter {
                policy: policy.id.clone(),
                path: path.to_path_buf(),
                adapter: adapter.to_string(),
            });
        };
        if let Err(e) = Package::find(&instance.package) {
            return Err(RunError::MissingPackage {
                policy: policy.id.clone(),
                path: path.to_path_buf(),
                adapter: adapter.to_string(),
                problem: e.to_string(),
            });
        }
    }
    Ok(ConfiguredPolicy {
        path: path.to_path_buf(),
        policy,
    })
}

/// The refusal when `policy` is triggered by the same event type as one of
/// `others`: one event type, one policy.
pub(crate) fn same_trigger(others: &[ConfiguredPolicy], policy: &Policy) -> Option<RunError> {
    let other = others
        .iter()
        .find(|p| p.policy.trigger.event_type == policy.trigger.event_type)?;
    Some(RunError::AmbiguousTrigger {
        event_type: policy.trigger.event_type.clone(),
        first: other.policy.id.clone(),
        second: policy.id.clone(),
    })
}

/// Why nothing may run under a configured policy with this approval
/// status, or `None` when its exact text is approved.
pub(crate) fn approval_problem(
    configured: &ConfiguredPolicy,
    status: PolicyStatus,
) -> Option<RunError> {
    let policy = &configured.policy;
    let fix = format!(
        "review it and approve it: handoff policy approve {} --by NAME",
        configured.path.display()
    );
    let problem = match status {
        PolicyStatus::Approved(_) => return None,
        PolicyStatus::NotApproved => format!("is not approved; {fix}"),
        PolicyStatus::Revoked { by, at } => format!(
            "was revoked by {by} at {at}; nothing runs under it until it is approved again ({fix})"
        ),
        PolicyStatus::Changed { widened, .. } if widened.is_empty() => format!(
            "changed since it was approved (sha256 {}); {fix}",
            policy.sha256
        ),
        PolicyStatus::Changed { widened, .. } => format!(
            "changed since it was approved and now reaches further: {}; {fix}",
            widened.join(", ")
        ),
    };
    Some(RunError::PolicyNotApproved {
        policy: policy.id.clone(),
        path: configured.path.clone(),
        problem,
    })
}

fn known_types(policies: &[ConfiguredPolicy]) -> String {
    if policies.is_empty() {
        return "none; list policy files under `policies` in handoff.toml".into();
    }
    policies
        .iter()
        .map(|p| format!("{:?} → {}", p.policy.trigger.event_type, p.policy.id))
        .collect::<Vec<_>>()
        .join(", ")
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
