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
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: port {p:?} is not a number from 0 to 65535"))?,
            None => default_port,
        };
        Ok(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
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
