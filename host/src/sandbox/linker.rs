//! What an instance is linked against, and the state each store carries.
//!
//! Every instance links the same interfaces: WASI (with an empty context
//! unless a surface's gate adds directories or a socket check), the handoff
//! `host` interface, and each registered surface's interfaces
//! ([`super::surfaces::add_to_linker`]). What the instance can actually
//! reach is decided by the gates built from its grant.

use super::bindings::handoff::adapter::{host, types};
use super::bindings::wit;
use super::decision::DecisionLog;
use super::guest_log::GuestLog;
use super::surfaces::limits::{CallClock, MemoryLimiter};
use super::surfaces::{Gates, HasGates};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The state of one instance's store.
pub struct HostState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub config: Arc<BTreeMap<String, String>>,
    pub log: DecisionLog,
    /// What the guest logs, within its budget for the call.
    pub guest_log: GuestLog,
    /// Its choke points, one per surface.
    pub gates: Gates,
    /// The time limit of the call it is in.
    pub clock: CallClock,
    /// Whether the call is an `apply` of a step a person resumed.
    pub person_resumed: bool,
}

impl HasGates for HostState {
    fn gates(&mut self) -> &mut Gates {
        &mut self.gates
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            // Every request the guest sends goes through the HTTP
            // surface's gate.
            hooks: &mut self.gates.http,
        }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    async fn log(&mut self, level: wit::Level, message: String) {
        // Bounded: a log line is for an operator, not a data channel.
        let instance = self.log.ident().instance.clone();
        self.guest_log.line(&instance, level, &message);
    }

    async fn config(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    async fn person_resumed(&mut self) -> bool {
        self.person_resumed
    }
}

/// The linker every adapter is instantiated with.
pub fn build(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    host::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    types::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    super::surfaces::add_to_linker(&mut linker)?;
    Ok(linker)
}
