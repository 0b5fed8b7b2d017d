//! `adapter.toml`: what an adapter declares it is and may touch.
//!
//! Parsing is strict: unknown fields, unknown actions, paths in HTTP origins,
//! host names in socket addresses are all refused with the file and the field
//! named. The result is a normalized [`Manifest`] whose capability sets can be
//! compared (for approval) and intersected (for the effective grant).

use super::jetstream::NatsScope;
use super::mail::SmtpScope;
use super::settings::{ConfigKey, RawConfigKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The manifest's file name inside a package directory.
pub const MANIFEST_FILE: &str = "adapter.toml";

/// Default memory limit when the manifest sets none.
pub const DEFAULT_MEMORY_MIB: u32 = 32;
/// Default per-call time limit when the manifest sets none.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Error)]
#[error("{path}: {problem}")]
pub struct ManifestError {
    pub path: PathBuf,
    pub problem: String,
}

pub use crate::model::{ActionKind, World};

/// `scheme://host[:port]`, normalized: lower-case, explicit port.
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

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// A header the host adds to requests for an origin, from an operator secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InjectHeader {
    /// Lower-case header name.
    pub name: String,
    /// The name of the operator secret whose value is sent.
    pub secret: String,
}

/// Outbound HTTP to one origin.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HttpGrant {
    pub origin: Origin,
    pub methods: BTreeSet<String>,
    pub inject_header: Option<InjectHeader>,
}

crate::closed_enum! {
    /// How a granted directory is mounted.
    pub enum FileMode {
        ReadOnly = "read-only",
        ReadWrite = "read-write",
    }
}

/// A directory, by logical name; the operator binds it to a real path, and
/// the guest sees it at `/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileGrant {
    pub name: String,
    pub mode: FileMode,
}

/// Declared capabilities, normalized so that they compare and intersect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(with = "grants_by_origin")]
    pub http: BTreeMap<Origin, HttpGrant>,
    pub files: BTreeMap<String, FileMode>,
    /// TCP connections to exact addresses.
    pub sockets: BTreeSet<SocketAddr>,
    /// NATS JetStream subjects and buckets, per server.
    #[serde(default)]
    pub nats: BTreeSet<NatsScope>,
    /// SMTP senders, recipient domains and transport, per server.
    #[serde(default, deserialize_with = "super::mail::deserialize_scopes")]
    pub smtp: BTreeSet<SmtpScope>,
}

/// HTTP grants are keyed by origin in memory and stored as a list (JSON
/// object keys must be strings; each grant carries its origin anyway).
mod grants_by_origin {
    use super::{HttpGrant, Origin};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<Origin, HttpGrant>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        map.values().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Origin, HttpGrant>, D::Error> {
        let list = Vec::<HttpGrant>::deserialize(d)?;
        Ok(list.into_iter().map(|g| (g.origin.clone(), g)).collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_mib: u32,
    pub call_timeout_ms: u64,
}

/// Everything that an approval covers: compared field by field when a
/// package changes, to tell a widening from a narrowing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    pub world: World,
    pub actions: BTreeSet<ActionKind>,
    pub capabilities: Capabilities,
    pub limits: Limits,
}

/// A parsed, validated `adapter.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub grants: Grants,
    /// The configuration keys it reads (`[[config]]`).
    pub config: Vec<ConfigKey>,
}

// ---- raw TOML shape -------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    adapter: RawAdapter,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    config: Vec<RawConfigKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAdapter {
    name: String,
    version: String,
    world: String,
    #[serde(default)]
    actions: Vec<String>,
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCapabilities {
    #[serde(default)]
    http: Vec<RawHttp>,
    #[serde(default)]
    files: Vec<RawFiles>,
    #[serde(default)]
    sockets: Vec<RawSocket>,
    #[serde(default)]
    nats: Vec<RawNats>,
    #[serde(default)]
    smtp: Vec<RawSmtp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNats {
    server: String,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    buckets: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSmtp {
    server: String,
    tls: Option<String>,
    tls_name: Option<String>,
    login: Option<RawLogin>,
    senders: Vec<String>,
    recipient_domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLogin {
    username: String,
    password_secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHttp {
    url: String,
    methods: Option<Vec<String>>,
    inject_header: Option<RawInject>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInject {
    name: String,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFiles {
    name: String,
    mode: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSocket {
    address: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    memory_mib: Option<u32>,
    call_timeout_ms: Option<u64>,
}

/// Methods an HTTP grant allows when it lists none: the safe ones.
pub const DEFAULT_METHODS: [&str; 2] = ["GET", "HEAD"];
const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers a manifest may not ask the host to inject: they steer the
/// connection itself, not the application.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

impl Manifest {
    /// Read `adapter.toml` from a file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            problem: format!("cannot read: {e}"),
        })?;
        Manifest::parse(&text, path)
    }

    /// Parse manifest text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let err = |problem: String| ManifestError {
            path: path.to_path_buf(),
            problem,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;

        let name = raw.adapter.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(err(format!(
                "adapter.name {name:?}: use lower-case letters, digits, '-' and '_'"
            )));
        }
        let version = raw.adapter.version;
        if version.split('.').count() != 3
            || !version
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(err(format!(
                "adapter.version {version:?}: use MAJOR.MINOR.PATCH, e.g. \"0.1.0\""
            )));
        }
        let world = World::parse(&raw.adapter.world).ok_or_else(|| {
            err(format!(
                "adapter.world {:?} is not a handoff world; use one of: {}",
                raw.adapter.world,
                World::names()
            ))
        })?;

        let mut actions = BTreeSet::new();
        for action in &raw.adapter.actions {
            let kind = ActionKind::parse(action).ok_or_else(|| {
                err(format!(
                    "adapter.actions: {action:?} is not an action handoff can request; \
                         the closed set is: {}",
                    ActionKind::names()
                ))
            })?;
            if !actions.insert(kind) {
                return Err(err(format!("adapter.actions: {action:?} is listed twice")));
            }
        }
        if !actions.is_empty() && !world.exports_target() {
            return Err(err(format!(
                "adapter.actions: a {world} adapter cannot apply actions; remove them or use a target world"
            )));
        }

        let mut capabilities = Capabilities::default();
        for (i, http) in raw.capabilities.http.into_iter().enumerate() {
            let at = format!("capabilities.http[{i}]");
            let origin = Origin::parse(&http.url).map_err(|p| err(format!("{at}.url: {p}")))?;
            let methods = match http.methods {
                None => DEFAULT_METHODS.iter().map(|m| m.to_string()).collect(),
                Some(list) => {
                    let mut set = BTreeSet::new();
                    for m in list {
                        let upper = m.to_ascii_uppercase();
                        if !KNOWN_METHODS.contains(&upper.as_str()) {
                            return Err(err(format!(
                                "{at}.methods: {m:?} is not one of {}",
                                KNOWN_METHODS.join(", ")
                            )));
                        }
                        set.insert(upper);
                    }
                    if set.is_empty() {
                        return Err(err(format!(
                            "{at}.methods is empty: an origin with no method grants nothing; remove the entry"
                        )));
                    }
                    set
                }
            };
            let inject_header = match http.inject_header {
                None => None,
                Some(raw) => {
                    let name = raw.name.to_ascii_lowercase();
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                        || RESERVED_HEADERS.contains(&name.as_str())
                    {
                        return Err(err(format!(
                            "{at}.inject-header.name {:?} cannot be injected",
                            raw.name
                        )));
                    }
                    if raw.secret.is_empty() {
                        return Err(err(format!("{at}.inject-header.secret is empty")));
                    }
                    Some(InjectHeader {
                        name,
                        secret: raw.secret,
                    })
                }
            };
            if capabilities.http.contains_key(&origin) {
                return Err(err(format!(
                    "{at}: origin {origin} is declared twice; merge the entries"
                )));
            }
            capabilities.http.insert(
                origin.clone(),
                HttpGrant {
                    origin,
                    methods,
                    inject_header,
                },
            );
        }
        for (i, files) in raw.capabilities.files.into_iter().enumerate() {
            let at = format!("capabilities.files[{i}]");
            if files.name.is_empty()
                || !files
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(err(format!(
                    "{at}.name {:?}: a logical directory name (letters, digits, '-', '_'), not a path",
                    files.name
                )));
            }
            let mode = match files.mode.as_str() {
                "read-only" => FileMode::ReadOnly,
                "read-write" => FileMode::ReadWrite,
                other => {
                    return Err(err(format!(
                        "{at}.mode {other:?}: use \"read-only\" or \"read-write\""
                    )));
                }
            };
            if capabilities
                .files
                .insert(files.name.clone(), mode)
                .is_some()
            {
                return Err(err(format!(
                    "{at}: directory {:?} is declared twice",
                    files.name
                )));
            }
        }
        for (i, socket) in raw.capabilities.sockets.into_iter().enumerate() {
            let at = format!("capabilities.sockets[{i}]");
            let addr: SocketAddr = socket.address.parse().map_err(|_| {
                err(format!(
                    "{at}.address {:?}: use an IP address and port, e.g. \"127.0.0.1:4222\" \
                     (names are not resolved for sockets)",
                    socket.address
                ))
            })?;
            if addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(err(format!(
                    "{at}.address {addr}: a wildcard address or port grants too much"
                )));
            }
            capabilities.sockets.insert(normalize_socket(addr));
        }
        for (i, nats) in raw.capabilities.nats.into_iter().enumerate() {
            let scopes = super::jetstream::parse_grant(&nats.server, &nats.subjects, &nats.buckets)
                .map_err(|p| err(format!("capabilities.nats[{i}]: {p}")))?;
            capabilities.nats.extend(scopes);
        }
        for (i, smtp) in raw.capabilities.smtp.into_iter().enumerate() {
            let at = |p: String| err(format!("capabilities.smtp[{i}]: {p}"));
            let transport =
                super::mail::parse_transport(smtp.tls.as_deref(), smtp.tls_name.as_deref())
                    .map_err(at)?;
            let login = smtp
                .login
                .map(|l| super::mail::parse_login(&transport, &l.username, &l.password_secret))
                .transpose()
                .map_err(at)?;
            let scopes = super::mail::parse_grant(
                &smtp.server,
                &transport,
                login.as_ref(),
                &smtp.senders,
                &smtp.recipient_domains,
            )
            .map_err(at)?;
            capabilities.smtp.extend(scopes);
        }
        super::mail::one_transport_per_server(&mut capabilities.smtp)
            .map_err(|p| err(format!("capabilities.smtp: {p}")))?;

        let limits = Limits {
            memory_mib: raw.limits.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
            call_timeout_ms: raw
                .limits
                .call_timeout_ms
                .unwrap_or(DEFAULT_CALL_TIMEOUT_MS),
        };
        if limits.memory_mib == 0 || limits.call_timeout_ms == 0 {
            return Err(err(
                "limits: memory-mib and call-timeout-ms must be above 0".into(),
            ));
        }

        let config = super::settings::parse(raw.config).map_err(err)?;

        Ok(Manifest {
            config,
            name,
            version,
            description: raw.adapter.description,
            grants: Grants {
                world,
                actions,
                capabilities,
                limits,
            },
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("adapter.toml"))
    }

    const MINIMAL: &str = r#"
[adapter]
name = "tracker"
version = "0.1.0"
world = "handoff:adapter/target-adapter@0.1.0"
actions = ["set-state", "annotate"]
"#;

    #[test]
    fn a_minimal_manifest_grants_nothing_but_defaults_limits() {
        let m = parse(MINIMAL).unwrap();
        assert_eq!(m.grants.world, World::Target);
        assert_eq!(m.grants.capabilities, Capabilities::default());
        assert_eq!(m.grants.limits.memory_mib, DEFAULT_MEMORY_MIB);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = parse(&format!("{MINIMAL}\n[capabilities]\nshell = true\n")).unwrap_err();
        assert!(err.problem.contains("shell"), "{err}");
        let err = parse(&MINIMAL.replace("actions", "permissions")).unwrap_err();
        assert!(err.problem.contains("permissions"), "{err}");
    }

    #[test]
    fn actions_outside_the_closed_set_are_refused() {
        let err = parse(&MINIMAL.replace("\"annotate\"", "\"deploy\"")).unwrap_err();
        assert!(err.problem.contains("\"deploy\""), "{err}");
        assert!(err.problem.contains("clear-entry"), "{err}");
    }

    #[test]
    fn origins_are_normalized_and_paths_refused() {
        let m = parse(&format!(
            "{MINIMAL}\n[[capabilities.http]]\nurl = \"HTTP://Tracker.Example:8080/\"\nmethods = [\"get\", \"put\"]\n"
        ))
        .unwrap();
        let grant = m.grants.capabilities.http.values().next().unwrap();
        assert_eq!(grant.origin.to_string(), "http://tracker.example:8080");
        assert_eq!(grant.methods.iter().collect::<Vec<_>>(), ["GET", "PUT"]);
        let err = parse(&format!(
            "{MINIMAL}\n[[capabilities.http]]\nurl = \"http://h/api\"\n"
        ))
        .unwrap_err();
        assert!(err.problem.contains("capabilities.http[0].url"), "{err}");
    }

    #[test]
    fn http_without_methods_allows_only_safe_methods() {
        let m = parse(&format!(
            "{MINIMAL}\n[[capabilities.http]]\nurl = \"https://h\"\n"
        ))
        .unwrap();
        let grant = m.grants.capabilities.http.values().next().unwrap();
        assert_eq!(grant.origin.port, 443);
        assert_eq!(grant.methods.iter().collect::<Vec<_>>(), ["GET", "HEAD"]);
    }

    #[test]
    fn sockets_need_ip_literals_and_are_normalized() {
        let m = parse(&format!(
            "{MINIMAL}\n[[capabilities.sockets]]\naddress = \"[::ffff:127.0.0.1]:4222\"\n"
        ))
        .unwrap();
        assert_eq!(
            m.grants
                .capabilities
                .sockets
                .iter()
                .next()
                .unwrap()
                .to_string(),
            "127.0.0.1:4222"
        );
        let err = parse(&format!(
            "{MINIMAL}\n[[capabilities.sockets]]\naddress = \"localhost:4222\"\n"
        ))
        .unwrap_err();
        assert!(err.problem.contains("IP address"), "{err}");
    }

    #[test]
    fn file_names_are_logical_not_paths() {
        let err = parse(&format!(
            "{MINIMAL}\n[[capabilities.files]]\nname = \"../etc\"\nmode = \"read-only\"\n"
        ))
        .unwrap_err();
        assert!(err.problem.contains("logical directory name"), "{err}");
    }

    #[test]
    fn split_host_port_reads_brackets_and_plain_hosts() {
        assert_eq!(split_host_port("h:80"), Some(("h", Some("80"))));
        assert_eq!(split_host_port("h"), Some(("h", None)));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", Some("80"))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("::1"), None);
    }
}
