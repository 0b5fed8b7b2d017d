//! The sandbox: the wasmtime engine, linker, artifact cache and epoch
//! ticker every adapter shares, and the load of a package into an adapter
//! ready to instantiate, each step refusing with a message that names the
//! adapter and the fix: read the package → compile (or load the cached
//! artifact) → check imports against declared capabilities and exports
//! against the world → check the approval (digest, widening) → effective
//! grant = declared ∩ approved ∩ ceiling → the instance's narrowing → its
//! config keys against the declared ones → each surface's load (bound
//! directories checked, secrets read, TLS clients made).

use super::approval::{self, Approval, Status};
use super::binding::AdapterInstance;
use super::ceiling::HostCeiling;
use super::decision::AdapterIdent;
use super::engine::{self, ArtifactCache, CacheOutcome, EpochTicker};
use super::error::LoadError;
use super::imports::{self, Coverage, Import};
use super::instance::{Guests, LoadedAdapter};
use super::linker::{self, HostState};
use super::manifest::Grants;
use super::net::{Resolve, SystemResolver};
use super::package::Package;
use super::surface::LoadContext;
use super::surfaces::Shared;
use super::{narrowing, settings};
use std::path::Path;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// The engine, linker and artifact cache shared by every adapter.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ArtifactCache,
    ceiling: HostCeiling,
    /// Shared with every loaded adapter: deadlines must keep firing for as
    /// long as anything can call a guest, even after the sandbox is dropped.
    ticker: Arc<EpochTicker>,
    /// What every instance of the process shares, per surface (NATS
    /// connections, one per server).
    shared: Arc<Shared>,
    /// How host names are looked up (the system's resolver).
    resolver: Arc<dyn Resolve>,
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
        Sandbox::with_room(cache_dir, ceiling, engine::POOL_INSTANCES)
    }

    /// A sandbox with room for `instances` adapter instances alive at once
    /// (a service: an instance of each adapter for each run in flight).
    pub fn with_room(
        cache_dir: &Path,
        ceiling: HostCeiling,
        instances: u32,
    ) -> Result<Sandbox, LoadError> {
        let host = |e: String| LoadError::Host(e);
        let engine =
            engine::new_engine(&ceiling, instances).map_err(|e| host(format!("engine: {e:#}")))?;
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
            shared: Arc::default(),
            resolver: Arc::new(SystemResolver),
        })
    }

    /// Look host names up with `resolver` instead of the system's (for
    /// adapters loaded from now on).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Sandbox {
        self.resolver = resolver;
        self
    }

    /// The host's ceiling every grant is capped by.
    pub fn ceiling(&self) -> &HostCeiling {
        &self.ceiling
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
        if instance.shadow {
            narrowing::to_reading(&mut grants);
        }
        settings::check(&name, &package.manifest.config, &instance.config).map_err(binding)?;
        let cx = LoadContext {
            instance: &instance.name,
            ceiling: &self.ceiling,
            resolver: &self.resolver,
            secrets: &instance.secrets,
        };
        let policies = grants
            .capabilities
            .load(&instance.surfaces, &self.shared, &cx)
            .map_err(binding)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Host(format!("link {name}: {e:#}")))?;
        let guests = Guests::new(&pre, grants.world)
            .map_err(|e| LoadError::Host(format!("{name}: exports: {e:#}")))?;
        Ok(LoadedAdapter {
            ident: Arc::new(AdapterIdent {
                instance: instance.name.clone(),
                component_sha256: package.component_sha256.clone(),
            }),
            grants,
            bindings: instance.surfaces.clone(),
            policies,
            config: Arc::new(instance.config.clone()),
            engine: self.engine.clone(),
            _ticker: self.ticker.clone(),
            pre,
            guests,
            cache,
            results: self.ceiling.results,
            log_budget: self.ceiling.log_budget,
        })
    }
}
