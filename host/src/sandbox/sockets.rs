//! Sockets: TCP to the exact addresses granted, nothing else. UDP and name
//! lookup stay off. The check runs for every bind and connect; the implicit
//! bind to the wildcard address that precedes a connect is allowed, since
//! the connect itself is what is checked.

use super::decision::{DecisionLog, Surface};
use super::manifest::normalize_socket;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// Install the address check; TCP is enabled only when something is granted.
pub fn install(builder: &mut WasiCtxBuilder, granted: &BTreeSet<SocketAddr>, log: DecisionLog) {
    builder.allow_udp(false).allow_ip_name_lookup(false);
    builder.allow_tcp(!granted.is_empty());
    let granted = Arc::new(granted.clone());
    builder.socket_addr_check(move |addr, use_| {
        let verdict = check(&granted, addr, use_, &log);
        Box::pin(async move { verdict })
    });
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
            log.allow(Surface::Sockets, target, "granted address".into());
            true
        }
        SocketAddrUse::TcpConnect => {
            log.deny(
                Surface::Sockets,
                target,
                "address not in capabilities.sockets".into(),
            );
            false
        }
        _ => {
            log.deny(
                Surface::Sockets,
                target,
                "adapters may only open outbound TCP connections".into(),
            );
            false
        }
    }
}
