//! `scheme://host[:port]`: what an HTTP grant names, normalized so that two
//! spellings of one origin are one origin.

use crate::sandbox::net::split_host_port;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An origin, normalized: lower-case, explicit port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parse an origin; a path, query, user info or other scheme is an error.
    pub fn parse(url: &str) -> Result<Origin, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not scheme://host[:port]"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => {
                return Err(format!(
                    "{url:?}: only http and https origins can be declared"
                ));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{url:?}: an origin is scheme://host[:port], without path, query or user info"
            ));
        }
        let (host, port) =
            split_host_port(rest).ok_or_else(|| format!("{url:?}: cannot read host and port"))?;
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(format!(
                        "{url:?}: port {p:?} is not a number from 1 to 65535"
                    ));
                }
                Ok(p) => p,
            },
            None => default_port,
        };
        let host = host.to_ascii_lowercase();
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() => Err(format!(
                "{url:?}: {host} is a wildcard address, which grants too much; name the \
                 server's own address"
            )),
            Err(_) if !dns_name(&host) => Err(format!(
                "{url:?}: {host:?} is neither a host name (labels of letters, digits, '-' and \
                 '_', joined by dots) nor an IP address; a grant names one host, no pattern"
            )),
            _ => Ok(Origin { scheme, host, port }),
        }
    }
}

/// A host name as DNS has it: at most 253 characters, in labels of 1 to 63
/// letters, digits, `-` (not at either end) and `_` (service names some
/// private networks resolve), joined by dots.
fn dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}
