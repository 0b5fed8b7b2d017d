//! Adapters ready to run, and live instances. A [`LoadedAdapter`] is
//! instantiated afresh for each run (pooling allocator, pre-linked
//! `InstancePre`), its state holding one gate per surface; an
//! [`Instance`]'s calls are guarded: a deadline and a memory limit each,
//! every result measured as it is lifted, and after any trap the instance
//! refuses further calls.

use super::bindings::exports::handoff::adapter::{source, target};
use super::bindings::wit::{Action, AdapterError, ChangePage, Decision, Observed, RecordRef};
use super::bounds;
use super::decision::{ACTION, AdapterIdent, CapabilityDecision, DecisionLog};
use super::engine::{CacheOutcome, EpochTicker};
use super::error::CallError;
use super::guest_log;
use super::linker::HostState;
use super::manifest::Grants;
use super::surfaces::limits::{
    self, CPU, CallClock, Limits, MEMORY, MOST_HOST_RESOURCES, MemoryLimiter, RESOURCES, WAITING,
};
use super::surfaces::{self, Bindings, Policies};
use crate::model::{ActionKind, World};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

/// Where a world's exports are found in a pre-linked component.
pub struct Guests {
    source: Option<source::GuestIndices>,
    target: Option<target::GuestIndices>,
}

impl Guests {
    pub fn new(pre: &InstancePre<HostState>, world: World) -> wasmtime::Result<Guests> {
        Ok(Guests {
            source: world
                .exports_source()
                .then(|| source::GuestIndices::new(pre))
                .transpose()?,
            target: world
                .exports_target()
                .then(|| target::GuestIndices::new(pre))
                .transpose()?,
        })
    }
}

/// A live instance's exports.
struct Exports {
    source: Option<source::Guest>,
    target: Option<target::Guest>,
}

/// An adapter ready to be instantiated, as often as needed.
pub struct LoadedAdapter {
    pub(super) ident: Arc<AdapterIdent>,
    pub(super) grants: Grants,
    pub(super) bindings: Bindings,
    pub(super) policies: Policies,
    pub(super) config: Arc<BTreeMap<String, String>>,
    pub(super) engine: Engine,
    pub(super) _ticker: Arc<EpochTicker>,
    pub(super) pre: InstancePre<HostState>,
    pub(super) guests: Guests,
    /// Whether the component came from the artifact cache.
    pub cache: CacheOutcome,
    pub(super) results: bounds::ResultLimits,
    pub(super) log_budget: guest_log::LogBudget,
}

impl std::fmt::Debug for LoadedAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedAdapter")
            .field("ident", &self.ident)
            .field("grants", &self.grants)
            .finish()
    }
}

impl LoadedAdapter {
    pub fn instance_name(&self) -> &str {
        &self.ident.instance
    }

    pub fn component_sha256(&self) -> &str {
        &self.ident.component_sha256
    }

    /// The effective grant it runs with.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// What the operator bound to it, surface by surface (directories...).
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// The configuration values it was given.
    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.config
    }

    /// A fresh instance: nothing carries over from any earlier one.
    pub async fn instantiate(&self) -> Result<Instance, CallError> {
        let log = DecisionLog::new(self.ident.clone());
        let failed = |e: wasmtime::Error| CallError::Instantiate {
            adapter: self.ident.instance.clone(),
            message: format!("{e:#}"),
        };
        let mut builder = WasiCtxBuilder::new();
        // File operations on local mounts take microseconds: doing them on
        // the calling thread beats a hand-off to tokio's blocking pool and
        // back for each one. Every run's thread is a worker of its own.
        builder.allow_blocking_current_thread(true);
        let gates = self.policies.gates(&mut builder, &log).map_err(failed)?;
        let state = HostState {
            wasi: builder.build(),
            http: WasiHttpCtx::new(),
            table: limits::resource_table(),
            limiter: MemoryLimiter::new(self.grants.limits.memory_mib, log.clone()),
            config: self.config.clone(),
            guest_log: guest_log::GuestLog::new(self.log_budget),
            log,
            gates,
            // Instantiating (start functions included) is held to a call's limit.
            clock: CallClock::start(self.grants.limits.call_timeout_ms),
            person_resumed: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|store| Ok(store.data().clock.at_tick()));
        store.set_epoch_deadline(1);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(failed)?;
        let source = match &self.guests.source {
            Some(i) => Some(i.load(&mut store, &instance).map_err(failed)?),
            None => None,
        };
        let target = match &self.guests.target {
            Some(i) => Some(i.load(&mut store, &instance).map_err(failed)?),
            None => None,
        };
        Ok(Instance {
            store,
            guests: Exports { source, target },
            adapter: self.ident.instance.clone(),
            world: self.grants.world.to_string(),
            actions: self.grants.actions.clone(),
            limits: self.grants.limits,
            results: self.results,
            dead: false,
        })
    }
}

/// A live instance. Calls are guarded: a deadline and a memory limit each,
/// and after any trap the instance refuses further calls.
pub struct Instance {
    store: Store<HostState>,
    guests: Exports,
    adapter: String,
    world: String,
    actions: BTreeSet<ActionKind>,
    limits: Limits,
    results: bounds::ResultLimits,
    dead: bool,
}

/// What a call returns: the adapter's own result, or why there is none.
pub type CallResult<T> = Result<Result<T, AdapterError>, CallError>;

impl Instance {
    /// Capability decisions made since the last call to this.
    pub fn take_decisions(&mut self) -> Vec<CapabilityDecision> {
        self.store.data().log.drain()
    }

    fn begin(&mut self) -> Result<(), CallError> {
        if self.dead {
            return Err(CallError::Dead {
                adapter: self.adapter.clone(),
            });
        }
        let state = self.store.data_mut();
        state.clock = CallClock::start(self.limits.call_timeout_ms);
        state.person_resumed = false;
        state.gates.begin_call();
        self.store.set_epoch_deadline(1);
        Ok(())
    }

    fn timeout(&self) -> Duration {
        // The epoch deadline stops guest code; this stops a call parked in
        // the host (waiting on the network) for the same limit.
        Duration::from_millis(self.limits.call_timeout_ms)
    }

    fn finish<T>(
        &mut self,
        call: &'static str,
        outcome: Result<wasmtime::Result<Result<T, AdapterError>>, tokio::time::error::Elapsed>,
    ) -> CallResult<T>
    where
        Result<T, AdapterError>: bounds::Bounded,
    {
        let adapter = self.adapter.clone();
        self.store.data_mut().guest_log.end_call(&adapter);
        let err = match outcome {
            Ok(Ok(result)) => {
                // Measured as lifted, before anything copies it; an
                // oversize result is dropped here, unread.
                let Err(over) = bounds::check(&result, self.results) else {
                    return Ok(bounds::one_reading(result).map_err(bounds::plain));
                };
                drop(result);
                self.dead = true;
                self.store
                    .data()
                    .log
                    .deny_call(MEMORY, format!("{call} result"), over.to_string());
                return Err(CallError::Oversize {
                    adapter,
                    call,
                    over,
                });
            }
            Ok(Err(err)) => Some(err),
            Err(_elapsed) => None,
        };
        self.dead = true;
        let log = self.store.data().log.clone();
        if let Some(asked) = self.store.data_mut().limiter.exceeded.take() {
            return Err(CallError::Memory {
                adapter,
                asked_mib: asked.div_ceil(1024 * 1024),
                granted_mib: self.limits.memory_mib,
            });
        }
        // The host's own deadline ends a call parked in a host call (the
        // guest waits on a server); the epoch interrupts guest code that
        // runs on.
        let waiting = err.is_none();
        let timed_out = match &err {
            None => true,
            Some(e) => matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)),
        };
        if timed_out {
            let ms = self.limits.call_timeout_ms;
            let (surface, doing) = if waiting {
                (WAITING, "waiting for an answer")
            } else {
                (CPU, "running its own code")
            };
            log.deny_call(
                surface,
                "call".into(),
                format!("ran past {ms} ms {doing} (limits.call-timeout-ms)"),
            );
            return Err(CallError::Timeout {
                adapter,
                ms,
                waiting,
            });
        }
        let err = err.expect("not a timeout");
        if limits::ran_out_of_resources(&err) {
            log.deny_call(
                RESOURCES,
                "call".into(),
                format!("held more than {MOST_HOST_RESOURCES} host resources at once"),
            );
            return Err(CallError::Resources {
                adapter,
                most: MOST_HOST_RESOURCES,
            });
        }
        if let Some((surface, why)) = surfaces::stopped_call(&err) {
            log.deny_call(surface, "call".into(), why.clone());
            return Err(CallError::Stopped {
                adapter,
                surface: surface.name,
                why,
            });
        }
        Err(CallError::Trap {
            adapter,
            message: format!("{err:#}"),
        })
    }

    fn target(&self) -> Result<target::Guest, CallError> {
        self.guests
            .target
            .clone()
            .ok_or_else(|| CallError::NotExported {
                adapter: self.adapter.clone(),
                interface: "target",
                world: self.world.clone(),
            })
    }

    fn source(&self) -> Result<source::Guest, CallError> {
        self.guests
            .source
            .clone()
            .ok_or_else(|| CallError::NotExported {
                adapter: self.adapter.clone(),
                interface: "source",
                world: self.world.clone(),
            })
    }

    pub async fn observe(&mut self, record: &RecordRef) -> CallResult<Observed> {
        let target = self.target()?;
        self.begin()?;
        let timeout = self.timeout();
        let outcome =
            tokio::time::timeout(timeout, target.call_observe(&mut self.store, record)).await;
        self.finish("observe", outcome)
    }

    /// Apply an action. One the grant does not list is refused here, as a
    /// `denied` result, without calling the adapter.
    pub async fn apply(
        &mut self,
        record: &RecordRef,
        action: &Action,
        idempotency_key: &str,
    ) -> CallResult<Observed> {
        self.apply_as(record, action, idempotency_key, false).await
    }

    /// [`Instance::apply`], saying whether a person resumed the step (the
    /// adapter asks with `host.person-resumed`).
    pub async fn apply_as(
        &mut self,
        record: &RecordRef,
        action: &Action,
        idempotency_key: &str,
        person_resumed: bool,
    ) -> CallResult<Observed> {
        let target = self.target()?;
        let kind = action_kind(action);
        if !self.actions.contains(&kind) {
            let reason = format!(
                "action {} is not in this adapter's approved actions (adapter.actions)",
                kind.name()
            );
            self.store
                .data()
                .log
                .deny_call(ACTION, kind.name().into(), reason.clone());
            return Ok(Err(AdapterError::Denied(format!(
                "{}: {reason}",
                self.adapter
            ))));
        }
        self.begin()?;
        self.store.data_mut().person_resumed = person_resumed;
        let timeout = self.timeout();
        let outcome = tokio::time::timeout(
            timeout,
            target.call_apply(&mut self.store, record, action, idempotency_key),
        )
        .await;
        self.finish("apply", outcome)
    }

    pub async fn read_decision(&mut self, record: &RecordRef) -> CallResult<Decision> {
        let source = self.source()?;
        self.begin()?;
        let timeout = self.timeout();
        let outcome =
            tokio::time::timeout(timeout, source.call_read_decision(&mut self.store, record)).await;
        self.finish("read-decision", outcome)
    }

    pub async fn list_changes(&mut self, cursor: &str, limit: u32) -> CallResult<ChangePage> {
        let source = self.source()?;
        self.begin()?;
        let timeout = self.timeout();
        let outcome = tokio::time::timeout(
            timeout,
            source.call_list_changes(&mut self.store, cursor, limit),
        )
        .await;
        self.finish("list-changes", outcome)
    }
}

/// The contract's kind of a WIT action.
pub fn action_kind(action: &Action) -> ActionKind {
    match action {
        Action::SetState(_) => ActionKind::SetState,
        Action::AttachLink(_) => ActionKind::AttachLink,
        Action::Annotate(_) => ActionKind::Annotate,
        Action::ClearEntry => ActionKind::ClearEntry,
        Action::Publish(_) => ActionKind::Publish,
    }
}
