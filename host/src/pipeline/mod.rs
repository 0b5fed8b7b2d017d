//! The pipeline: intake → revalidate → validate → plan → execute → confirm →
//! completion record. Each stage is a module with one job that reads and
//! decides ([`intake`] admits and plans at once; [`revalidate`],
//! [`validate`], [`execute`], [`confirm`]); the [`driver`] alone records,
//! moving a run through them in the one order it writes down, every state
//! transition and its audit row in one transaction ([`record`]). Adapters
//! are called only through the adapter-call service ([`calls`]); what the
//! process builds once (the sandbox, loaded adapters, policies, throttle)
//! is its [`host::Host`], shared by every [`Engine`] of the process. The
//! dry run ([`preview`]) is the driver with recording off; reconciliation
//! ([`reconcile`]) and follow-up resolution ([`resolve`]) are doors onto
//! the same engine.

pub mod business_key;
pub mod calls;
pub mod confirm;
pub mod deliver;
pub mod driver;
pub mod error;
pub mod execute;
pub mod faults;
pub mod halt;
pub mod host;
pub mod intake;
pub mod lease;
pub mod preview;
pub mod reconcile;
pub mod record;
pub mod resolve;
pub mod revalidate;
pub mod shadow;
pub mod stage;
pub mod throttle;
pub mod validate;

use crate::config::Config;
use crate::model::CloudEvent;
use crate::policy::Policy;
use crate::sandbox::package::Package;
use crate::store::Store;
use crate::store::intake::Intake;
use crate::store::policies::PolicyStatus;
use crate::store::runs;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::model::Outcome;
pub use business_key::encode_business_key;
pub use error::RunError;
pub use halt::Halt;
pub use host::Host;

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

/// What the engine timed, by adapter instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timed<'a> {
    /// One step: observe, apply, confirm, with retries and waits.
    Step { adapter: &'a str },
    /// Making a fresh instance for a run (`call` is `instantiate`), or one
    /// call into it (`observe`, `apply`, `read-decision`, `list-changes`):
    /// the adapter's own time, without waiting for room at its
    /// concurrency limit.
    Call {
        adapter: &'a str,
        call: &'static str,
    },
}

/// Receives each timing as it is taken.
pub type TimingObserver = Arc<dyn Fn(Timed<'_>, Duration) + Send + Sync>;

/// One user of the process's [`Host`] with a store handle of its own:
/// intake, a worker, the reconciler, a command.
pub struct Engine {
    pub(crate) host: Arc<Host>,
    pub(crate) store: Store,
    /// Who this engine is, as a run's lease holder.
    pub(crate) owner: String,
    pub(crate) lease_ttl: Duration,
}

impl Engine {
    /// An engine on a host of its own (a command run once): the configured
    /// policies read and checked, the sandbox built. Nothing is loaded or
    /// run yet.
    pub fn new(config: &Config, store: Store) -> Result<Engine, RunError> {
        Ok(Engine::with_host(Arc::new(Host::new(config)?), store))
    }

    /// An engine on the process's shared host.
    pub fn with_host(host: Arc<Host>, store: Store) -> Engine {
        Engine {
            lease_ttl: host.lease,
            host,
            store,
            owner: runs::lease_owner(),
        }
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn policies(&self) -> &[ConfiguredPolicy] {
        self.host.policies()
    }

    /// Forget loaded adapters (their approval may have changed).
    pub fn reload_adapters(&self) {
        self.host.reload_adapters();
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
