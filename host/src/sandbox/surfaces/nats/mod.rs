//! The NATS surface: `[[capabilities.nats]]` grants subject patterns and
//! key-value buckets on servers given as `IP:port`. The host holds the
//! connections and makes every JetStream call itself through the
//! `jetstream` interface ([`gate`]); a guest only names a server, a
//! concrete subject or a bucket and key, each checked before anything is
//! sent.

mod gate;
mod grant;

pub use gate::{MOST_WRITES_PER_CALL, NatsGate, NatsPool};
pub use grant::{NatsScope, ScopeKind, parse_grant, subject_matches};

use crate::sandbox::bindings::handoff::adapter::jetstream;
use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::surface::{
    Change, GateOf, HasGate, LoadContext, NoBinding, Surface, SurfaceId, compare_sets,
};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::WasiHttpView;

/// The NATS surface.
pub struct Nats;

pub(crate) const NATS: SurfaceId = SurfaceId {
    name: "nats",
    fix: "if the adapter should reach it, declare the server with the subject pattern or \
          bucket under [[capabilities.nats]], then approve it again",
};

/// One `[[capabilities.nats]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawNats {
    server: String,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    buckets: Vec<String>,
}

/// What loading gives each instance: its scopes, and the process's pool.
pub struct NatsPolicy {
    scopes: Arc<BTreeSet<NatsScope>>,
    pool: Arc<NatsPool>,
}

impl Surface for Nats {
    const ID: SurfaceId = NATS;
    const IMPORTS: &'static [&'static str] = &["handoff:adapter/jetstream"];
    const UNDECLARED: &'static str = "declare [[capabilities.nats]] or remove the NATS code";
    const BINDING_KEYS: &'static [&'static str] = &[];

    type Entry = RawNats;
    type Grant = BTreeSet<NatsScope>;
    type Binding = NoBinding;
    type Shared = NatsPool;
    type Policy = NatsPolicy;
    type Gate = NatsGate;

    fn parse(entries: Vec<RawNats>) -> Result<Self::Grant, String> {
        let mut out = BTreeSet::new();
        for (i, nats) in entries.into_iter().enumerate() {
            let scopes = parse_grant(&nats.server, &nats.subjects, &nats.buckets)
                .map_err(|p| format!("[{i}]: {p}"))?;
            out.extend(scopes);
        }
        Ok(out)
    }

    fn is_empty(grant: &Self::Grant) -> bool {
        grant.is_empty()
    }

    fn compare(approved: &Self::Grant, declared: &Self::Grant, out: &mut Vec<Change>) {
        compare_sets(approved, declared, out);
    }

    fn intersect(
        declared: &Self::Grant,
        approved: &Self::Grant,
        ceiling: &HostCeiling,
    ) -> Self::Grant {
        // Servers are addresses, checked against the ceiling's denied
        // networks here, once, since nothing is resolved later.
        declared
            .intersection(approved)
            .filter(|s| ceiling.denies_ip(s.server.ip()).is_none())
            .cloned()
            .collect()
    }

    fn lines(grant: &Self::Grant, _: Option<&NoBinding>) -> Vec<String> {
        grant
            .iter()
            .map(|s| s.to_string().trim_start_matches("nats ").to_string())
            .collect()
    }

    fn load(
        grant: &Self::Grant,
        _: &NoBinding,
        pool: &Arc<NatsPool>,
        _: &LoadContext<'_>,
    ) -> Result<NatsPolicy, String> {
        Ok(NatsPolicy {
            scopes: Arc::new(grant.clone()),
            pool: pool.clone(),
        })
    }

    fn gate(
        policy: &Arc<NatsPolicy>,
        _: &mut WasiCtxBuilder,
        log: &DecisionLog,
    ) -> wasmtime::Result<NatsGate> {
        Ok(NatsGate::new(
            policy.scopes.clone(),
            policy.pool.clone(),
            log.clone(),
        ))
    }

    fn per_call(grant: &Self::Grant) -> Option<String> {
        (!grant.is_empty()).then(|| format!("{MOST_WRITES_PER_CALL} publishes and deletes"))
    }

    fn begin_call(gate: &mut NatsGate) {
        gate.begin_call();
    }

    fn add_to_linker<T: HasGate<Self> + WasiView + WasiHttpView + Send + 'static>(
        linker: &mut Linker<T>,
    ) -> wasmtime::Result<()> {
        jetstream::add_to_linker::<T, GateOf<Nats>>(linker, |state| state.gate())
    }
}
