//! What an instance is linked against, and the state each store carries.
//!
//! Every instance links the same interfaces: WASI (with an empty context
//! unless the grant adds directories or sockets), wasi-http (through the
//! [`HttpGate`]), and the handoff `host` interface. What the instance can
//! actually reach is decided by the per-store state built from its grant.

use super::decision::DecisionLog;
use super::http::HttpGate;
use super::limits::MemoryLimiter;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

wasmtime::component::bindgen!({
    world: "adapter",
    path: "../wit",
    exports: { default: async },
});

pub use self::handoff::adapter::types as wit;

/// The state of one instance's store.
pub struct HostState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub gate: HttpGate,
    pub limiter: MemoryLimiter,
    pub config: Arc<BTreeMap<String, String>>,
    pub log: DecisionLog,
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
            hooks: &mut self.gate,
        }
    }
}

impl self::handoff::adapter::types::Host for HostState {}

impl self::handoff::adapter::host::Host for HostState {
    fn log(&mut self, level: wit::Level, message: String) {
        let adapter = &self.log.ident().instance;
        // Bounded: a log line is for an operator, not a data channel.
        let message: String = message.chars().take(4096).collect();
        match level {
            wit::Level::Trace => tracing::trace!(%adapter, "{message}"),
            wit::Level::Debug => tracing::debug!(%adapter, "{message}"),
            wit::Level::Info => tracing::info!(%adapter, "{message}"),
            wit::Level::Warn => tracing::warn!(%adapter, "{message}"),
            wit::Level::Error => tracing::error!(%adapter, "{message}"),
        }
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
}

/// The linker every adapter is instantiated with.
pub fn build(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    self::handoff::adapter::host::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    self::handoff::adapter::types::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;
    Ok(linker)
}
