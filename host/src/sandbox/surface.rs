//! The shape every capability surface has. A surface (HTTP, files,
//! sockets, NATS, SMTP, S3) is one folder under [`super::surfaces`] that
//! implements [`Surface`]: the `[[capabilities.NAME]]` entries of a manifest
//! and their parse into a grant, the comparison of a declared grant with an
//! approved one (what widens, what narrows), declared ∩ approved ∩ ceiling,
//! the WIT imports the grant makes linkable, the lines a reviewer reads, the
//! keys of an operator's `[adapters.X]` table it reads and the narrowing
//! they make, what loading an instance builds (secrets read, TLS made),
//! the per-instance gate every call goes through first (with what it
//! bounds per call, and the calls it stopped), and the linker wiring. The
//! shared sandbox code never names a surface: it iterates over
//! the registered ones ([`super::surfaces`]).

use super::binding::Secrets;
use super::ceiling::HostCeiling;
use super::decision::DecisionLog;
use super::net::Resolve;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::WasiHttpView;

/// A surface's name and what an operator does about a legitimate denial on
/// it; every capability decision carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurfaceId {
    /// `http`, `files`, ... (also `cpu`, `memory`, `action`, `load` for the
    /// checks that are not a capability surface's).
    pub name: &'static str,
    pub fix: &'static str,
}

/// One difference between an approval and a declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The declaration asks for more than was approved.
    Widened(String),
    /// The declaration asks for less (it loads, with the smaller grant).
    Narrowed(String),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Widened(s) => write!(f, "+ {s}"),
            Change::Narrowed(s) => write!(f, "- {s}"),
        }
    }
}

/// Compare two grants that are sets of scopes: each declared and not
/// approved widens, each approved and not declared narrows.
pub fn compare_sets<T: Ord + fmt::Display>(
    approved: &BTreeSet<T>,
    declared: &BTreeSet<T>,
    out: &mut Vec<Change>,
) {
    for s in declared.difference(approved) {
        out.push(Change::Widened(s.to_string()));
    }
    for s in approved.difference(declared) {
        out.push(Change::Narrowed(s.to_string()));
    }
}

/// What loading an instance may use: the host's ceiling, how names are
/// looked up, and the instance's secrets.
pub struct LoadContext<'a> {
    pub instance: &'a str,
    pub ceiling: &'a HostCeiling,
    pub resolver: &'a Arc<dyn Resolve>,
    pub secrets: &'a Secrets,
}

/// The binding of a surface that reads no key of `[adapters.X]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBinding {}

/// The linker's view of one surface's gate: what a host function of its
/// interface is called on.
pub struct GateOf<S: ?Sized>(std::marker::PhantomData<S>);

impl<S: Surface + ?Sized> wasmtime::component::HasData for GateOf<S> {
    type Data<'a> = &'a mut S::Gate;
}

/// Lets the linker reach one surface's gate in an instance's state.
pub trait HasGate<S: Surface + ?Sized> {
    fn gate(&mut self) -> &mut S::Gate;
}

/// One capability surface. See the module documentation.
pub trait Surface: 'static {
    /// Its name and fix, as capability decisions record them.
    const ID: SurfaceId;
    /// The WIT interfaces its grant makes linkable, as `package/interface`
    /// (`wasi:http/outgoing-handler`), or `package/*` for all of a package.
    const IMPORTS: &'static [&'static str];
    /// What to do when a component imports one of them undeclared.
    const UNDECLARED: &'static str;
    /// The keys of an operator's `[adapters.X]` table it reads.
    const BINDING_KEYS: &'static [&'static str];

    /// One `[[capabilities.NAME]]` entry, as written.
    type Entry: DeserializeOwned;
    /// The normalized grant: compared with approvals, intersected, stored.
    type Grant: Clone + Default + PartialEq + Eq + fmt::Debug + Serialize + DeserializeOwned;
    /// Its keys of the instance's `[adapters.X]` table.
    type Binding: Clone + Default + PartialEq + Eq + fmt::Debug + DeserializeOwned + Send + Sync;
    /// What every instance of the process shares (a connection pool).
    type Shared: Default + Send + Sync + 'static;
    /// What loading an instance makes, once: shared by its instances.
    type Policy: Send + Sync + 'static;
    /// One instance's choke point.
    type Gate: Send + 'static;

    /// The manifest's entries as one grant; a problem names the entry
    /// (`[1].url: ...`).
    fn parse(entries: Vec<Self::Entry>) -> Result<Self::Grant, String>;

    /// Whether the grant allows nothing.
    fn is_empty(grant: &Self::Grant) -> bool;

    /// Every difference between an approved grant and a declared one.
    fn compare(approved: &Self::Grant, declared: &Self::Grant, out: &mut Vec<Change>);

    /// declared ∩ approved ∩ ceiling: never more than any of them.
    fn intersect(
        declared: &Self::Grant,
        approved: &Self::Grant,
        ceiling: &HostCeiling,
    ) -> Self::Grant;

    /// The grant narrowed to reading, for a shadow run. A surface with no
    /// reading form keeps its grant (a socket, a NATS subject a target is
    /// observed through, an SMTP server): the instance has no action then,
    /// so nothing asks the guest to write through them.
    fn read_only(_grant: &mut Self::Grant) {}

    /// The operator's narrowing of one instance's grant: it only takes
    /// away, and naming what the grant lacks is refused.
    fn narrow(_grant: &mut Self::Grant, _binding: &Self::Binding) -> Result<(), String> {
        Ok(())
    }

    /// Relative paths in a binding, made absolute against the
    /// configuration file's directory.
    fn resolve_paths(_binding: &mut Self::Binding, _resolve: &dyn Fn(&Path) -> PathBuf) {}

    /// The grant as lines a reviewer reads (without the surface's name,
    /// which the caller puts in front); with the instance's binding, where
    /// it binds something (a directory's real path).
    fn lines(grant: &Self::Grant, binding: Option<&Self::Binding>) -> Vec<String>;

    /// Build what every instance of a loaded adapter shares: read secrets,
    /// make TLS clients, check bound paths. A problem refuses the load.
    fn load(
        grant: &Self::Grant,
        binding: &Self::Binding,
        shared: &Arc<Self::Shared>,
        cx: &LoadContext<'_>,
    ) -> Result<Self::Policy, String>;

    /// One instance's gate; surfaces enforced by WASI itself (files,
    /// sockets) set up the WASI context here.
    fn gate(
        policy: &Arc<Self::Policy>,
        wasi: &mut WasiCtxBuilder,
        log: &DecisionLog,
    ) -> wasmtime::Result<Self::Gate>;

    /// What the gate lets one call write under this grant, for a reviewer
    /// (`64 MiB put`); none when the grant writes nothing.
    fn per_call(_grant: &Self::Grant) -> Option<String> {
        None
    }

    /// A call begins: what the gate bounds per call starts again.
    fn begin_call(_gate: &mut Self::Gate) {}

    /// Whether a trapped call was stopped by this surface's gate: the
    /// denial's surface and why.
    fn stopped_call(_trap: &wasmtime::Error) -> Option<(SurfaceId, String)> {
        None
    }

    /// Link the interfaces whose every call goes through the gate.
    /// (wasi-http's types are linked by the HTTP surface; it needs the
    /// instance's state to be a `WasiHttpView`.)
    fn add_to_linker<T: HasGate<Self> + WasiView + WasiHttpView + Send + 'static>(
        linker: &mut Linker<T>,
    ) -> wasmtime::Result<()>;
}
