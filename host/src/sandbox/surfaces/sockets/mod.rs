//! The sockets surface: `[[capabilities.sockets]]` grants TCP connections to
//! exact `IP:port` addresses, nothing else. UDP and name lookup stay off.
//! The check runs for every bind and connect; the implicit bind to the
//! wildcard address that precedes a connect is allowed, since the connect
//! itself is what is checked. The ceiling can turn sockets off for every
//! adapter (`[ceiling] sockets = false`).

pub mod writes;

use crate::sandbox::budget::Budget;
use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::net::normalize_socket;
use crate::sandbox::surface::{Change, HasGate, LoadContext, NoBinding, Surface, SurfaceId};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::WasiHttpView;

/// The sockets surface.
pub struct Sockets;

const SOCKETS: SurfaceId = SurfaceId {
    name: "sockets",
    fix: "if the adapter should connect there, declare the address under \
          [[capabilities.sockets]], then approve it again",
};

/// One `[[capabilities.sockets]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSocket {
    address: String,
}

impl Surface for Sockets {
    const ID: SurfaceId = SOCKETS;
    const IMPORTS: &'static [&'static str] = &["wasi:sockets/*"];
    const UNDECLARED: &'static str = "declare [[capabilities.sockets]] or remove the network code";
    const BINDING_KEYS: &'static [&'static str] = &[];

    type Entry = RawSocket;
    type Grant = BTreeSet<SocketAddr>;
    type Binding = NoBinding;
    type Shared = ();
    type Policy = BTreeSet<SocketAddr>;
    type Gate = Budget;

    fn parse(entries: Vec<RawSocket>) -> Result<BTreeSet<SocketAddr>, String> {
        let mut out = BTreeSet::new();
        for (i, socket) in entries.into_iter().enumerate() {
            let at = format!("[{i}]");
            let addr: SocketAddr = socket.address.parse().map_err(|_| {
                format!(
                    "{at}.address {:?}: use an IP address and port, e.g. \"127.0.0.1:4222\" \
                     (names are not resolved for sockets)",
                    socket.address
                )
            })?;
            if addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(format!(
                    "{at}.address {addr}: a wildcard address or port grants too much"
                ));
            }
            out.insert(normalize_socket(addr));
        }
        Ok(out)
    }

    fn is_empty(grant: &BTreeSet<SocketAddr>) -> bool {
        grant.is_empty()
    }

    fn compare(approved: &Self::Grant, declared: &Self::Grant, out: &mut Vec<Change>) {
        for addr in declared.difference(approved) {
            out.push(Change::Widened(format!("socket tcp {addr}")));
        }
        for addr in approved.difference(declared) {
            out.push(Change::Narrowed(format!("socket tcp {addr}")));
        }
    }

    fn intersect(
        declared: &Self::Grant,
        approved: &Self::Grant,
        ceiling: &HostCeiling,
    ) -> Self::Grant {
        if !ceiling.sockets {
            return BTreeSet::new();
        }
        declared.intersection(approved).copied().collect()
    }

    fn lines(grant: &Self::Grant, _: Option<&NoBinding>) -> Vec<String> {
        grant.iter().map(|addr| format!("tcp {addr}")).collect()
    }

    fn load(
        grant: &Self::Grant,
        _: &NoBinding,
        _: &Arc<()>,
        _: &LoadContext<'_>,
    ) -> Result<Self::Grant, String> {
        Ok(grant.clone())
    }

    fn gate(
        granted: &Arc<Self::Grant>,
        wasi: &mut WasiCtxBuilder,
        log: &DecisionLog,
    ) -> wasmtime::Result<Budget> {
        wasi.allow_udp(false).allow_ip_name_lookup(false);
        wasi.allow_tcp(!granted.is_empty());
        let (granted, log) = (granted.clone(), log.clone());
        wasi.socket_addr_check(move |addr, use_| {
            let verdict = check(&granted, addr, use_, &log);
            Box::pin(async move { verdict })
        });
        Ok(Budget::new(writes::MOST_BYTES_PER_CALL))
    }

    fn per_call(grant: &Self::Grant) -> Option<String> {
        (!grant.is_empty()).then(|| format!("{} MiB sent", writes::MOST_BYTES_PER_CALL >> 20))
    }

    fn begin_call(gate: &mut Budget) {
        gate.refill();
    }

    fn stopped_call(trap: &wasmtime::Error) -> Option<(SurfaceId, String)> {
        trap.downcast_ref::<writes::SentTooMuch>()
            .map(|sent| (writes::SENT, sent.to_string()))
    }

    fn add_to_linker<T: HasGate<Self> + WasiView + WasiHttpView + Send + 'static>(
        linker: &mut Linker<T>,
    ) -> wasmtime::Result<()> {
        // wasi:sockets is linked for every instance with WASI; the address
        // check installed by `gate` decides every bind and connect, and what
        // a call sends through its connections is bounded.
        writes::add_to_linker(linker)
    }
}

fn check(
    granted: &BTreeSet<SocketAddr>,
    addr: SocketAddr,
    use_: SocketAddrUse,
    log: &DecisionLog,
) -> bool {
    let target = format!("{use_:?} {addr}");
    match use_ {
        SocketAddrUse::TcpBind if addr.ip().is_unspecified() && addr.port() == 0 => true,
        SocketAddrUse::TcpConnect if granted.contains(&normalize_socket(addr)) => {
            log.allow(SOCKETS, target, "granted address".into());
            true
        }
        SocketAddrUse::TcpConnect => {
            log.deny(
                SOCKETS,
                target,
                "address not in capabilities.sockets".into(),
            );
            false
        }
        _ => {
            log.deny(
                SOCKETS,
                target,
                "adapters may only open outbound TCP connections".into(),
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Entries {
        sockets: Vec<RawSocket>,
    }

    fn grant(text: &str) -> Result<BTreeSet<SocketAddr>, String> {
        Sockets::parse(toml::from_str::<Entries>(text).unwrap().sockets)
    }

    #[test]
    fn addresses_are_ip_literals_in_one_spelling() {
        let g = grant("[[sockets]]\naddress = \"[::ffff:127.0.0.1]:4222\"\n").unwrap();
        assert_eq!(g.iter().next().unwrap().to_string(), "127.0.0.1:4222");
        let err = grant("[[sockets]]\naddress = \"localhost:4222\"\n").unwrap_err();
        assert!(err.contains("IP address"), "{err}");
    }

    #[test]
    fn the_ceiling_can_turn_sockets_off() {
        let g = grant("[[sockets]]\naddress = \"127.0.0.1:4222\"\n").unwrap();
        let off = HostCeiling {
            sockets: false,
            ..HostCeiling::default()
        };
        assert!(Sockets::intersect(&g, &g, &off).is_empty());
        assert_eq!(Sockets::intersect(&g, &g, &HostCeiling::default()), g);
    }
}
