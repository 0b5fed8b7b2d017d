//! What the network-facing surfaces share: addresses in one spelling,
//! `IP:port` servers, host names looked up once and checked against the
//! ceiling ([`resolve`]), and HTTP(S) sent to the checked address itself
//! ([`send`]), so a second lookup can never move a request, on a
//! connection the instance keeps open between calls when it has one idle
//! there ([`pool`]).

pub mod pool;
pub mod resolve;
pub mod send;

pub use resolve::{Resolve, SystemResolver, resolve_checked};

use std::net::{IpAddr, SocketAddr};

/// IPv4-mapped IPv6 addresses are the IPv4 address: one spelling per address.
pub fn normalize_socket(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(normalize_ip(addr.ip()), addr.port())
}

pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `IP:port`; names are not resolved, so what is approved is what is reached.
pub fn parse_server(server: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = server.parse().map_err(|_| {
        format!(
            "server {server:?}: use an IP address and port, e.g. \"127.0.0.1:4222\" \
             (names are not resolved)"
        )
    })?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(format!(
            "server {addr}: a wildcard address or port grants too much"
        ));
    }
    Ok(normalize_socket(addr))
}

/// Split `host[:port]`, where an IPv6 host is bracketed.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_reads_brackets_and_plain_hosts() {
        assert_eq!(split_host_port("h:80"), Some(("h", Some("80"))));
        assert_eq!(split_host_port("h"), Some(("h", None)));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", Some("80"))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("::1"), None);
    }

    #[test]
    fn servers_are_exact_addresses() {
        assert_eq!(
            parse_server("[::ffff:127.0.0.1]:4222").unwrap().to_string(),
            "127.0.0.1:4222"
        );
        assert!(parse_server("nats.example:4222").is_err());
        assert!(parse_server("0.0.0.0:4222").is_err());
        assert!(parse_server("127.0.0.1:0").is_err());
    }
}
