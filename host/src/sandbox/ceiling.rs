//! The host's ceiling: the upper bound an operator puts on every adapter's
//! grant (`[ceiling]` in `handoff.toml`), whatever was declared and approved.

use super::bounds::ResultLimits;
use super::guest_log::LogBudget;
use super::net::normalize_ip;
use super::surfaces::http::Origin;
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Destination ranges no adapter may reach, whatever it declares: link-local
/// (cloud metadata lives at 169.254.169.254), unspecified, multicast,
/// broadcast. Loopback and private ranges are reachable when declared: the
/// systems handoff closes work in usually live there.
pub const ALWAYS_DENIED_NETWORKS: [&str; 8] = [
    "0.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "fe80::/10",
    "ff00::/8",
    "100.100.100.200/32",
];

/// The host's upper bound on every adapter's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCeiling {
    pub max_memory_mib: u32,
    pub max_call_timeout_ms: u64,
    /// When set, only these origins can ever be granted.
    pub http_origins: Option<BTreeSet<Origin>>,
    /// Extra destination ranges denied to every adapter.
    pub denied_networks: Vec<IpNet>,
    /// Whether any adapter may open sockets at all.
    pub sockets: bool,
    /// How large a call's result may be (`result-string-bytes`,
    /// `result-list-entries`, `result-bytes`).
    pub results: ResultLimits,
    /// How much one call may log (`log-lines-per-call`, `log-bytes-per-call`).
    pub log_budget: LogBudget,
}

impl Default for HostCeiling {
    fn default() -> Self {
        HostCeiling {
            max_memory_mib: 256,
            max_call_timeout_ms: 60_000,
            http_origins: None,
            denied_networks: Vec::new(),
            sockets: true,
            results: Default::default(),
            log_budget: Default::default(),
        }
    }
}

impl HostCeiling {
    pub fn allows_origin(&self, origin: &Origin) -> bool {
        self.http_origins
            .as_ref()
            .is_none_or(|allowed| allowed.contains(origin))
    }

    /// Why an address is out of bounds, or `None` when it may be reached.
    pub fn denies_ip(&self, ip: IpAddr) -> Option<String> {
        let ip = normalize_ip(ip);
        ALWAYS_DENIED_NETWORKS
            .iter()
            .map(|n| n.parse::<IpNet>().expect("built-in network"))
            .chain(self.denied_networks.iter().copied())
            .find(|net| net.contains(&ip))
            .map(|net| format!("{ip} is in the denied network {net}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_addresses_are_always_denied() {
        let c = HostCeiling::default();
        assert!(c.denies_ip("169.254.169.254".parse().unwrap()).is_some());
        assert!(
            c.denies_ip("::ffff:169.254.169.254".parse().unwrap())
                .is_some()
        );
        assert!(c.denies_ip("127.0.0.1".parse().unwrap()).is_none());
        let c = HostCeiling {
            denied_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..HostCeiling::default()
        };
        assert!(c.denies_ip("127.0.0.1".parse().unwrap()).is_some());
    }
}
