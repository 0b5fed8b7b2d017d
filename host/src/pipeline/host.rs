//! What a process builds once and every engine of it shares: the sandbox
//! (one wasmtime engine, its epoch ticker, its artifact cache, the clients
//! surfaces share such as NATS connections), the adapters loaded from it
//! (while the approvals they were loaded under stand), the configured
//! policies and the approved texts runs started under, the per-adapter
//! throttle, the retry policy and the timing observer. Intake, every
//! worker and the reconciler hold the same `Arc<Host>`; each has its own
//! store handle and its own runs.

use super::faults::Faults;
use super::throttle::Throttle;
use super::{ConfiguredPolicy, RunError, Timed, TimingObserver, configure_policy, same_trigger};
use crate::config::{AdapterInstance, Config, Retry};
use crate::follow_up::notices::Roles;
use crate::policy::Policy;
use crate::sandbox::manifest::Manifest;
use crate::sandbox::package::Package;
use crate::sandbox::{LoadError, LoadedAdapter, Sandbox};
use crate::store::adapters::ApprovalsStamp;
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Adapters loaded so far, and the approvals they were loaded under.
#[derive(Default)]
struct Loaded {
    /// By instance name.
    adapters: BTreeMap<String, Arc<LoadedAdapter>>,
    /// The same instances as shadow runs have them (reading only), loaded
    /// when a shadow run first calls one.
    shadow: BTreeMap<String, Arc<LoadedAdapter>>,
    /// The approvals as last seen by a run's start.
    approvals: Option<ApprovalsStamp>,
    /// Counts the times the adapters were forgotten: a load that began
    /// before the latest is not kept.
    generation: u64,
}

impl Loaded {
    fn forget(&mut self) {
        self.adapters.clear();
        self.shadow.clear();
        self.generation += 1;
    }

    fn of(&mut self, shadow: bool) -> &mut BTreeMap<String, Arc<LoadedAdapter>> {
        if shadow {
            &mut self.shadow
        } else {
            &mut self.adapters
        }
    }
}

/// The process's shared state. See the module documentation.
pub struct Host {
    sandbox: Sandbox,
    instances: BTreeMap<String, AdapterInstance>,
    loaded: Mutex<Loaded>,
    policies: Vec<ConfiguredPolicy>,
    /// Approved policy texts runs were started under, parsed, by sha256.
    approved: Mutex<BTreeMap<String, Arc<Policy>>>,
    pub(crate) retry: Retry,
    /// How long a run's lease lasts without a renewal.
    pub(crate) lease: Duration,
    pub(crate) throttle: Arc<Throttle>,
    pub(crate) faults: Faults,
    /// Told how long each step and each adapter call took (the service's
    /// metrics, the benchmark's breakdown).
    timings: Option<TimingObserver>,
    /// Who follow-ups are routed to, and how each role is told.
    pub(crate) roles: Roles,
    /// Where the console is reached, for the links in notices.
    pub(crate) public_url: Option<String>,
}

/// The configured instances, each taking one call per record at a time when
/// its configuration says so or its adapter's manifest declares that it
/// must (`adapter.one-call-per-record`: its writes read a record and write
/// it back). Read once, as the process starts; a package whose manifest
/// cannot be read is left as configured, and refused when it is loaded.
pub fn taking_declared_turns(
    instances: &BTreeMap<String, AdapterInstance>,
) -> BTreeMap<String, AdapterInstance> {
    instances
        .iter()
        .map(|(name, instance)| {
            let mut instance = instance.clone();
            instance.one_call_per_record |= Package::find(&instance.package)
                .ok()
                .and_then(|(_, manifest)| Manifest::load(&manifest).ok())
                .is_some_and(|m| m.one_call_per_record);
            (name.clone(), instance)
        })
        .collect()
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("instances", &self.instances.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Read the configured policies and check that every adapter they name
    /// is configured, with a package where its configuration says; build
    /// the sandbox. Nothing is loaded or run yet.
    pub fn new(config: &Config) -> Result<Host, RunError> {
        Host::with_room(config, crate::sandbox::engine::POOL_INSTANCES)
    }

    /// A host for a service driving `runs` runs at once: room in the
    /// sandbox for an instance of every configured adapter for each, and
    /// for the service's other engines (intake, the API, delivery,
    /// reconciliation).
    pub fn for_runs(config: &Config, runs: usize) -> Result<Host, RunError> {
        let room = crate::sandbox::engine::room_for_runs(runs, config.adapters.len());
        Host::with_room(config, u32::try_from(room).unwrap_or(u32::MAX))
    }

    fn with_room(config: &Config, instances: u32) -> Result<Host, RunError> {
        let mut policies: Vec<ConfiguredPolicy> = Vec::new();
        for path in &config.policies {
            let configured = configure_policy(config, path)?;
            if let Some(clash) = same_trigger(&policies, &configured.policy) {
                return Err(clash);
            }
            policies.push(configured);
        }
        Ok(Host {
            policies,
            ..Host::adapters_in(config, instances)?
        })
    }

    /// A host for calling the configured adapter instances only (no
    /// policy is read): `adapter conform`.
    pub fn for_adapters(config: &Config) -> Result<Host, RunError> {
        Host::adapters_in(config, crate::sandbox::engine::POOL_INSTANCES)
    }

    fn adapters_in(config: &Config, instances: u32) -> Result<Host, RunError> {
        let sandbox = Sandbox::with_room(&config.cache_dir, config.ceiling.clone(), instances)?;
        let adapters = taking_declared_turns(&config.adapters);
        Ok(Host {
            sandbox,
            throttle: Arc::new(
                Throttle::new(adapters.values()).across_processes(&config.store_path),
            ),
            instances: adapters,
            loaded: Mutex::default(),
            policies: Vec::new(),
            approved: Mutex::default(),
            retry: config.retry,
            lease: config.lease,
            faults: Faults::from_env(),
            timings: None,
            roles: config.roles.clone(),
            public_url: config.serve.public_url.clone(),
        })
    }

    /// Report how long each step and each adapter call takes to `observer`.
    pub fn with_timings(mut self, observer: TimingObserver) -> Host {
        self.timings = Some(observer);
        self
    }

    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.throttle
    }

    pub fn policies(&self) -> &[ConfiguredPolicy] {
        &self.policies
    }

    pub(crate) fn took(&self, what: Timed<'_>, took: Duration) {
        if let Some(observe) = &self.timings {
            observe(what, took);
        }
    }

    /// The loaded adapter for an instance name, loaded once per process
    /// while the approvals stay as they are (for a shadow run, its
    /// reading-only form: no actions, surfaces narrowed to reading). A
    /// refused load is recorded as a capability decision; a store that
    /// cannot record it fails the load too (nothing is dropped).
    pub(crate) fn adapter(
        &self,
        name: &str,
        store: &mut Store,
        shadow: bool,
    ) -> Result<Arc<LoadedAdapter>, AdapterLoad> {
        let generation = {
            let mut loaded = lock(&self.loaded);
            if let Some(a) = loaded.of(shadow).get(name) {
                return Ok(a.clone());
            }
            loaded.generation
        };
        let configured = self.instances.get(name).ok_or_else(|| {
            AdapterLoad::Refused(LoadError::Binding {
                instance: name.to_string(),
                problem: "is not configured in [adapters]".into(),
            })
        })?;
        let shadowed;
        let instance = if shadow {
            shadowed = configured.for_shadow();
            &shadowed
        } else {
            configured
        };
        let package =
            Package::read(&instance.package).map_err(|e| AdapterLoad::Refused(e.into()))?;
        let approval = store
            .latest_approval(&package.manifest.name)
            .map_err(AdapterLoad::Store)?;
        let loaded = match self.sandbox.load(&package, approval.as_ref(), instance) {
            Ok(l) => Arc::new(l),
            Err(err) => {
                let decision = err.decision(name, &package.component_sha256);
                store
                    .record_decisions(&[decision])
                    .map_err(AdapterLoad::Store)?;
                return Err(AdapterLoad::Refused(err));
            }
        };
        let mut cache = lock(&self.loaded);
        // Kept only if the approvals it was read under still hold.
        if cache.generation == generation {
            cache.of(shadow).insert(name.to_string(), loaded.clone());
        }
        Ok(loaded)
    }

    /// The digest of a loaded adapter's component, for audit rows.
    pub(crate) fn adapter_sha(&self, name: &str) -> Option<String> {
        lock(&self.loaded)
            .adapters
            .get(name)
            .map(|a| a.component_sha256().to_string())
    }

    /// Forget loaded adapters (their approval may have changed).
    pub fn reload_adapters(&self) {
        lock(&self.loaded).forget();
    }

    /// At a run's start: forget the loaded adapters if any approval was
    /// given or revoked since the last run started, so that no run
    /// starting after a revocation uses what it revoked (one read of the
    /// store per run).
    pub(crate) fn follow_approvals(&self, store: &Store) -> Result<(), StoreError> {
        let now = store.approvals_stamp()?;
        let mut loaded = lock(&self.loaded);
        if loaded.approvals != Some(now) {
            loaded.forget();
            loaded.approvals = Some(now);
        }
        Ok(())
    }

    /// The approved text a run started under, parsed once per process: an
    /// approval's text never changes (its sha256 names it); whether it is
    /// still in force is asked separately, on every drive.
    pub(crate) fn approved_policy(
        &self,
        sha256: &str,
        store: &Store,
    ) -> Result<Option<Arc<Policy>>, StoreError> {
        if let Some(policy) = lock(&self.approved).get(sha256) {
            return Ok(Some(policy.clone()));
        }
        let Some(policy) = store.approved_policy(sha256)? else {
            return Ok(None);
        };
        let policy = Arc::new(policy);
        lock(&self.approved).insert(sha256.to_string(), policy.clone());
        Ok(Some(policy))
    }
}

/// Why an adapter could not be had.
#[derive(Debug)]
pub(crate) enum AdapterLoad {
    /// The sandbox refused it (recorded as a capability decision).
    Refused(LoadError),
    /// The store could not be read or written.
    Store(StoreError),
}

impl std::fmt::Display for AdapterLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdapterLoad::Refused(e) => e.fmt(f),
            AdapterLoad::Store(e) => e.fmt(f),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
