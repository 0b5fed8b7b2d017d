//! What an instance is linked against, and the state each store carries.
//!
//! Every instance links the same interfaces: WASI (with an empty context
//! unless the grant adds directories or sockets), wasi-http (through the
//! [`HttpGate`]), and the handoff `host` interface. What the instance can
//! actually reach is decided by the per-store state built from its grant.

use super::decision::DecisionLog;
use super::guest_log::GuestLog;
use super::http::HttpGate;
use super::jetstream::NatsGate;
use super::limits::MemoryLimiter;
use super::mail::MailGate;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

wasmtime::component::bindgen!({
    world: "host-runtime",
    path: "../wit",
    imports: { default: async },
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
    /// What the guest logs, within its budget for the call.
    pub guest_log: GuestLog,
    pub nats: NatsGate,
    pub mail: MailGate,
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
    async fn log(&mut self, level: wit::Level, message: String) {
        // Bounded: a log line is for an operator, not a data channel.
        let instance = self.log.ident().instance.clone();
        self.guest_log.line(&instance, level, &message);
    }

    async fn config(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
}

use self::handoff::adapter::{jetstream, mail};

impl jetstream::Host for HostState {
    async fn publish(
        &mut self,
        server: String,
        subject: String,
        msg_id: String,
        payload: Vec<u8>,
    ) -> Result<jetstream::PublishAck, wit::AdapterError> {
        self.nats.publish(server, subject, msg_id, payload).await
    }

    async fn recent_msg_ids(
        &mut self,
        server: String,
        subject: String,
        limit: u32,
    ) -> Result<Vec<String>, wit::AdapterError> {
        self.nats.recent_msg_ids(server, subject, limit).await
    }

    async fn kv_get(
        &mut self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<Option<jetstream::KvEntry>, wit::AdapterError> {
        self.nats.kv_get(server, bucket, key).await
    }

    async fn kv_delete(
        &mut self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<(), wit::AdapterError> {
        self.nats.kv_delete(server, bucket, key).await
    }
}

impl mail::Host for HostState {
    async fn send(&mut self, server: String, email: mail::Email) -> Result<(), wit::AdapterError> {
        self.mail.send(server, email).await
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
    jetstream::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    mail::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}
