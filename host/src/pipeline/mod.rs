//! The pipeline: intake → revalidate → validate → plan → execute → confirm →
//! completion record. Each stage is a module with one job; the [`Engine`]
//! holds what they share (store, sandbox, approved policies) and
//! [`driver`] moves a run through them, writing every state transition and
//! its audit row in one transaction.

pub mod calls;
pub mod confirm;
pub mod driver;
pub mod error;
pub mod execute;
pub mod faults;
pub mod intake;
pub mod preview;
pub mod reconcile;
pub mod resolve;
pub mod revalidate;
pub mod throttle;
pub mod validate;

use crate::config::{AdapterInstance, Config};
use crate::model::CloudEvent;
use crate::policy::Policy;
use crate::sandbox::package::Package;
use crate::sandbox::{LoadError, LoadedAdapter, Sandbox};
use crate::store::Store;
use crate::store::intake::Intake;
use crate::store::policies::PolicyStatus;
use crate::store::runs;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use throttle::Throttle;

pub use crate::model::Outcome;
pub use error::RunError;
pub use intake::encode_business_key;

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

pub(crate) fn known_types(policies: &[ConfiguredPolicy]) -> String {
    if policies.is_empty() {
        return "none; list policy files under `policies` in handoff.toml".into();
    }
    policies
        .iter()
        .map(|p| format!("{:?} → {}", p.policy.trigger.event_type, p.policy.id))
        .collect::<Vec<_>>()
        .join(", ")
}
