//! The sandbox: loads adapter components only within the capabilities their
//! authors declared and an operator approved, and runs each call under
//! least privilege.
//!
//! One module per surface: [`http`], [`files`], [`sockets`], [`jetstream`]
//! (NATS), [`mail`] (SMTP), [`limits`] (CPU and memory); [`imports`] is the link-time check, [`approval`] the
//! digest and grant comparison, [`manifest`] and [`package`] what is on disk,
//! [`engine`] the wasmtime engine and artifact cache, [`linker`] the wiring.
//!
//! Load order, each step refusing with a message that names the adapter and
//! the fix: read the package → compile (or load the cached artifact) →
//! check imports against declared capabilities and exports against the
//! world → check the approval (digest, widening) → effective grant =
//! declared ∩ approved ∩ ceiling → the instance's narrowing → its config
//! keys against the declared ones → bind directories and secrets.

pub mod approval;
pub mod artifacts;
pub mod bounds;
pub mod conform;
pub mod decision;
pub mod engine;
pub mod files;
pub mod guest_log;
pub mod http;
pub mod https;
pub mod imports;
pub mod jetstream;
pub mod limits;
pub mod linker;
pub mod mail;
pub mod manifest;
pub mod narrowing;
pub mod package;
pub mod reach;
pub mod settings;
pub mod sockets;

use crate::config::{AdapterInstance, HostCeiling};
use crate::store::adapters::Approval;
use approval::Status;
use decision::{AdapterIdent, CapabilityDecision, DecisionLog, Surface};
use engine::{ArtifactCache, CacheOutcome, EpochTicker};
use imports::{Coverage, Import};
use linker::exports::handoff::adapter::{source, target};
use linker::{HostState, wit};
use manifest::{ActionKind, Grants};
use package::Package;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

pub use wit::{
    Action, AdapterError, Change, ChangePage, Decision, Link, Message, Observed, RecordRef,
};

/// Why an adapter was not loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Package(#[from] package::PackageError),
    #[error("adapter {adapter}: {path} is not a valid component: {message}")]
    Compile {
        adapter: String,
        path: String,
        message: String,
    },
    #[error(
        "adapter {adapter}: component {digest} is not approved.\n  Review it: handoff adapter inspect {package}\n  Approve it: handoff adapter approve {package} --by NAME"
    )]
    NotApproved {
        adapter: String,
        digest: String,
        package: String,
    },
    #[error(
        "adapter {adapter}: its approval was revoked by {by} at {at}; approve the package again to load it"
    )]
    Revoked {
        adapter: String,
        by: String,
        at: String,
    },
    #[error(
        "adapter {adapter}: the component changed since it was approved (approved {approved}, found {actual}).\n  Review it: handoff adapter inspect {package}\n  Approve it again: handoff adapter approve {package} --by NAME"
    )]
    ComponentChanged {
        adapter: String,
        approved: String,
        actual: String,
        package: String,
    },
    #[error(
        "adapter {adapter}: the manifest asks for more than was approved:\n{}\n  Review it: handoff adapter inspect {package}\n  Approve it again: handoff adapter approve {package} --by NAME",
        changes.iter().map(|c| format!("    {c}")).collect::<Vec<_>>().join("\n")
    )]
    Widened {
        adapter: String,
        changes: Vec<approval::Change>,
        package: String,
    },
    #[error(
        "adapter {adapter}: the component imports what its manifest does not declare:\n{}",
        imports.iter().map(|(n, why)| format!("    {n}: {why}")).collect::<Vec<_>>().join("\n")
    )]
    UncoveredImports {
        adapter: String,
        imports: Vec<(String, String)>,
    },
    #[error(
        "adapter {adapter}: its manifest says world {world}, but the component does not export {}",
        missing.join(", ")
    )]
    MissingExports {
        adapter: String,
        world: String,
        missing: Vec<String>,
    },
    #[error("adapter instance {instance}: {problem}")]
    Binding { instance: String, problem: String },
    #[error("cannot prepare the sandbox: {0}")]
    Host(String),
}

impl LoadError {
    /// The refusal as a capability decision, for the record.
    pub fn decision(&self, instance: &str, component_sha256: &str) -> CapabilityDecision {
        CapabilityDecision {
            at: crate::store::now_rfc3339(),
            adapter: instance.to_string(),
            component_sha256: component_sha256.to_string(),
            surface: Surface::Load,
            target: "load".into(),
            verdict: decision::Verdict::Denied,
            reason: self.to_string(),
        }
    }
}

/// Why a call produced no adapter result.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CallError {
    #[error(
        "adapter {adapter}: the call ran past its {ms} ms limit and was stopped (limits.call-timeout-ms)"
    )]
    Timeout { adapter: String, ms: u64 },
    #[error(
        "adapter {adapter}: memory limit exceeded (asked for {asked_mib} MiB, granted {granted_mib} MiB; limits.memory-mib)"
    )]
    Memory {
        adapter: String,
        asked_mib: usize,
        granted_mib: u32,
    },
    #[error("adapter {adapter}: trapped: {message}")]
    Trap { adapter: String, message: String },
    #[error(
        "adapter {adapter}: this instance trapped earlier and cannot be called again; instantiate a fresh one"
    )]
    Dead { adapter: String },
    #[error("adapter {adapter}: does not export the {interface} interface (world {world})")]
    NotExported {
        adapter: String,
        interface: &'static str,
        world: String,
    },
    #[error("adapter {adapter}: cannot instantiate: {message}")]
    Instantiate { adapter: String, message: String },
    #[error("adapter {adapter}: its {call} result was refused unread: {over}")]
    Oversize {
        adapter: String,
        call: &'static str,
        over: bounds::Oversize,
    },
}

/// The engine, linker and artifact cache shared by every adapter.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ArtifactCache,
    ceiling: HostCeiling,
    /// Shared with every loaded adapter: deadlines must keep firing for as
    /// long as anything can call a guest, even after the sandbox is dropped.
    ticker: Arc<EpochTicker>,
    /// NATS connections, one per server, shared by every adapter.
    nats: Arc<jetstream::NatsPool>,
    /// How HTTP host names are looked up (the system's resolver).
    resolver: Arc<dyn http::Resolve>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("ceiling", &self.ceiling)
            .finish()
    }
}

/// What `inspect` found about a package.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub imports: Vec<Import>,
    pub exports: Vec<String>,
    pub missing_exports: Vec<String>,
    pub status: Status,
    /// The grant it would run with (approved packages only).
    pub effective: Option<Grants>,
}

impl Inspection {
    /// Whether `Sandbox::load` would accept the package (bindings aside).
    pub fn loads(&self) -> bool {
        self.uncovered().is_empty() && self.missing_exports.is_empty() && self.status.allows_load()
    }

    pub fn uncovered(&self) -> Vec<(String, String)> {
        self.imports
            .iter()
            .filter_map(|i| match &i.coverage {
                Coverage::Uncovered(why) => Some((i.name.clone(), why.clone())),
                _ => None,
            })
            .collect()
    }
}

impl Sandbox {
    pub fn new(cache_dir: &Path, ceiling: HostCeiling) -> Result<Sandbox, LoadError> {
        let host = |e: String| LoadError::Host(e);
        let engine = engine::new_engine(&ceiling).map_err(|e| host(format!("engine: {e:#}")))?;
        let linker = linker::build(&engine).map_err(|e| host(format!("linker: {e:#}")))?;
        let cache = ArtifactCache::new(cache_dir, &engine)
            .map_err(|e| host(format!("artifact cache at {}: {e}", cache_dir.display())))?;
        let ticker = Arc::new(EpochTicker::start(&engine));
        Ok(Sandbox {
            engine,
            linker,
            cache,
            ceiling,
            ticker,
            nats: Arc::default(),
            resolver: Arc::new(http::SystemResolver),
        })
    }

    /// Look HTTP host names up with `resolver` instead of the system's
    /// (for adapters loaded from now on).
    pub fn with_resolver(mut self, resolver: Arc<dyn http::Resolve>) -> Sandbox {
        self.resolver = resolver;
        self
    }

    /// Compile (or load from the cache) a package's component.
    pub fn component(&self, package: &Package) -> Result<(Component, CacheOutcome), LoadError> {
        self.cache
            .get(&self.engine, &package.component_sha256, &package.component)
            .map_err(|e| LoadError::Compile {
                adapter: package.manifest.name.clone(),
                path: package.component_path.display().to_string(),
                message: format!("{e:#}"),
            })
    }

    /// Everything a reviewer needs, without refusing anything.
    pub fn inspect(
        &self,
        package: &Package,
        approval: Option<&Approval>,
    ) -> Result<Inspection, LoadError> {
        self.examine(package, approval)
            .map(|(inspection, _, _)| inspection)
    }

    /// The inspection, and the component it was made from (for linking).
    fn examine(
        &self,
        package: &Package,
        approval: Option<&Approval>,
    ) -> Result<(Inspection, Component, CacheOutcome), LoadError> {
        let (component, cache) = self.component(package)?;
        let declared = &package.manifest.grants;
        let ty = component.component_type();
        let imports = ty
            .imports(&self.engine)
            .map(|(name, _)| Import {
                name: name.to_string(),
                coverage: imports::classify(name, &declared.capabilities),
            })
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let missing_exports = declared
            .world
            .required_exports()
            .into_iter()
            .filter(|r| !exports.contains(r))
            .collect();
        let status = approval::status(package, approval);
        let effective = match (&status, approval) {
            (Status::Approved { .. }, Some(a)) => {
                Some(approval::effective(declared, &a.grants, &self.ceiling))
            }
            _ => None,
        };
        let inspection = Inspection {
            imports,
            exports,
            missing_exports,
            status,
            effective,
        };
        Ok((inspection, component, cache))
    }

    /// Load an adapter instance for running, or say exactly why not.
    pub fn load(
        &self,
        package: &Package,
        approval: Option<&Approval>,
        instance: &AdapterInstance,
    ) -> Result<LoadedAdapter, LoadError> {
        let name = package.manifest.name.clone();
        let shown = package.dir.display().to_string();
        let (inspection, component, cache) = self.examine(package, approval)?;
        // The approval verdict first: for bytes nobody approved, nothing
        // else about them matters yet.
        match inspection.status {
            Status::Approved { .. } => {}
            Status::NotApproved => {
                return Err(LoadError::NotApproved {
                    adapter: name,
                    digest: package.component_sha256.clone(),
                    package: shown,
                });
            }
            Status::Revoked { by, at } => {
                return Err(LoadError::Revoked {
                    adapter: name,
                    by,
                    at,
                });
            }
            Status::ComponentChanged { approved, actual } => {
                return Err(LoadError::ComponentChanged {
                    adapter: name,
                    approved,
                    actual,
                    package: shown,
                });
            }
            Status::Widened(changes) => {
                return Err(LoadError::Widened {
                    adapter: name,
                    changes,
                    package: shown,
                });
            }
        }
        let uncovered = inspection.uncovered();
        if !uncovered.is_empty() {
            return Err(LoadError::UncoveredImports {
                adapter: name,
                imports: uncovered,
            });
        }
        if !inspection.missing_exports.is_empty() {
            return Err(LoadError::MissingExports {
                adapter: name,
                world: package.manifest.grants.world.to_string(),
                missing: inspection.missing_exports,
            });
        }
        let mut grants = inspection
            .effective
            .expect("an approved package has an effective grant");
        let binding = |problem: String| LoadError::Binding {
            instance: instance.name.clone(),
            problem,
        };
        narrowing::narrow(&mut grants, instance).map_err(binding)?;

        settings::check(&name, &package.manifest.config, &instance.config).map_err(binding)?;
        let (mounts, unbound) = files::mounts(&grants.capabilities, &instance.directories);
        for name in &unbound {
            tracing::warn!(instance = %instance.name, directory = %name, "declared directory not bound by the operator; it is not mounted");
        }
        files::check_mounts(&mounts).map_err(binding)?;
        let mut inject = BTreeMap::new();
        for (origin, grant) in &grants.capabilities.http {
            if let Some(h) = &grant.inject_header {
                let value = instance
                    .secret_value(&h.secret)
                    .map_err(|e| binding(e.to_string()))?;
                let name = ::http::HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| binding(format!("bad header name {}", h.name)))?;
                let mut value = ::http::HeaderValue::from_str(&value).map_err(|_| {
                    binding(format!("secret {} is not a valid header value", h.secret))
                })?;
                value.set_sensitive(true);
                inject.insert(origin.clone(), (name, value));
            }
        }
        let mail_policy = mail::MailPolicy::load(
            grants.capabilities.smtp.clone(),
            instance.smtp_ca_file.as_deref(),
            |secret| instance.secret_value(secret).map_err(|e| e.to_string()),
        )
        .map_err(binding)?;
        let http_policy = Arc::new(http::HttpPolicy {
            grants: grants.capabilities.http.clone(),
            inject,
            ceiling: self.ceiling.clone(),
            resolver: self.resolver.clone(),
            tls: https::client(instance.http_ca_file.as_deref()).map_err(binding)?,
        });

        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Host(format!("link {name}: {e:#}")))?;
        let source = if grants.world.exports_source() {
            Some(
                source::GuestIndices::new(&pre)
                    .map_err(|e| LoadError::Host(format!("{name}: source exports: {e:#}")))?,
            )
        } else {
            None
        };
        let target = if grants.world.exports_target() {
            Some(
                target::GuestIndices::new(&pre)
                    .map_err(|e| LoadError::Host(format!("{name}: target exports: {e:#}")))?,
            )
        } else {
            None
        };
        Ok(LoadedAdapter {
            nats_scopes: Arc::new(grants.capabilities.nats.clone()),
            mail: Arc::new(mail_policy),
            ident: Arc::new(AdapterIdent {
                instance: instance.name.clone(),
                component_sha256: package.component_sha256.clone(),
            }),
            grants,
            mounts,
            config: Arc::new(instance.config.clone()),
            http: http_policy,
            nats: self.nats.clone(),
            engine: self.engine.clone(),
            _ticker: self.ticker.clone(),
            pre,
            source,
            target,
            cache,
            results: self.ceiling.results,
            log_budget: self.ceiling.log_budget,
        })
    }
}

/// An adapter ready to be instantiated, as often as needed.
pub struct LoadedAdapter {
    ident: Arc<AdapterIdent>,
    grants: Grants,
    mounts: Vec<files::Mount>,
    config: Arc<BTreeMap<String, String>>,
    http: Arc<http::HttpPolicy>,
    nats_scopes: Arc<std::collections::BTreeSet<jetstream::NatsScope>>,
    mail: Arc<mail::MailPolicy>,
    nats: Arc<jetstream::NatsPool>,
    engine: Engine,
    _ticker: Arc<EpochTicker>,
    pre: InstancePre<HostState>,
    source: Option<source::GuestIndices>,
    target: Option<target::GuestIndices>,
    /// Whether the component came from the artifact cache.
    pub cache: CacheOutcome,
    results: bounds::ResultLimits,
    log_budget: guest_log::LogBudget,
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

    /// The granted directories the operator bound, and where.
    pub fn mounts(&self) -> &[files::Mount] {
        &self.mounts
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
        files::preopen(&mut builder, &self.mounts).map_err(failed)?;
        sockets::install(&mut builder, &self.grants.capabilities.sockets, log.clone());
        let state = HostState {
            wasi: builder.build(),
            http: WasiHttpCtx::new(),
            table: Default::default(),
            gate: http::HttpGate::new(self.http.clone(), log.clone()),
            limiter: limits::MemoryLimiter::new(self.grants.limits.memory_mib, log.clone()),
            config: self.config.clone(),
            nats: jetstream::NatsGate::new(
                self.nats_scopes.clone(),
                self.nats.clone(),
                log.clone(),
            ),
            mail: mail::MailGate::new(self.mail.clone(), log.clone()),
            guest_log: guest_log::GuestLog::new(self.log_budget),
            log,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(limits::deadline_ticks(self.grants.limits.call_timeout_ms));
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(failed)?;
        let source = match &self.source {
            Some(i) => Some(i.load(&mut store, &instance).map_err(failed)?),
            None => None,
        };
        let target = match &self.target {
            Some(i) => Some(i.load(&mut store, &instance).map_err(failed)?),
            None => None,
        };
        Ok(Instance {
            store,
            source,
            target,
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
    source: Option<source::Guest>,
    target: Option<target::Guest>,
    adapter: String,
    world: String,
    actions: std::collections::BTreeSet<ActionKind>,
    limits: manifest::Limits,
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
        self.store
            .set_epoch_deadline(limits::deadline_ticks(self.limits.call_timeout_ms));
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
                    return Ok(result);
                };
                drop(result);
                self.dead = true;
                self.store.data().log.deny(
                    Surface::Memory,
                    format!("{call} result"),
                    over.to_string(),
                );
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
        let timed_out = match &err {
            None => true,
            Some(e) => matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)),
        };
        if timed_out {
            log.deny(
                Surface::Cpu,
                "call".into(),
                format!(
                    "ran past {} ms (limits.call-timeout-ms)",
                    self.limits.call_timeout_ms
                ),
            );
            return Err(CallError::Timeout {
                adapter,
                ms: self.limits.call_timeout_ms,
            });
        }
        Err(CallError::Trap {
            adapter,
            message: format!("{:#}", err.expect("not a timeout")),
        })
    }

    fn target(&self) -> Result<target::Guest, CallError> {
        self.target.clone().ok_or_else(|| CallError::NotExported {
            adapter: self.adapter.clone(),
            interface: "target",
            world: self.world.clone(),
        })
    }

    fn source(&self) -> Result<source::Guest, CallError> {
        self.source.clone().ok_or_else(|| CallError::NotExported {
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
                .deny(Surface::Action, kind.name().into(), reason.clone());
            return Ok(Err(AdapterError::Denied(format!(
                "{}: {reason}",
                self.adapter
            ))));
        }
        self.begin()?;
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

/// The manifest kind of a WIT action.
pub fn action_kind(action: &Action) -> ActionKind {
    match action {
        Action::SetState(_) => ActionKind::SetState,
        Action::AttachLink(_) => ActionKind::AttachLink,
        Action::Annotate(_) => ActionKind::Annotate,
        Action::ClearEntry => ActionKind::ClearEntry,
        Action::Publish(_) => ActionKind::Publish,
    }
}
