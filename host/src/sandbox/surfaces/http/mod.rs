//! The HTTP surface: `[[capabilities.http]]` grants origins
//! (`scheme://host[:port]`, no paths) and methods, with an optional header
//! the host injects from an operator secret. Every outbound request goes
//! through the wasi-http send hook ([`gate`]). An instance may narrow its
//! methods (`http-methods`) and trust a private CA for HTTPS
//! (`http-ca-file`).

mod body;
mod gate;
mod origin;
#[cfg(test)]
mod tests;

pub use body::MOST_BODY_BYTES_PER_CALL;
pub use gate::{HttpGate, HttpPolicy, MOST_WRITES_PER_CALL};
pub use origin::Origin;

use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::net::send::tls_client;
use crate::sandbox::surface::{Change, HasGate, LoadContext, Surface, SurfaceId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::WasiHttpView;

/// The HTTP surface.
pub struct Http;

pub(crate) const HTTP: SurfaceId = SurfaceId {
    name: "http",
    fix: "if the adapter should reach it, declare the origin and method under \
          [[capabilities.http]] in its adapter.toml, then `handoff adapter approve` it again",
};

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

/// The HTTP grant: per origin. Stored as a list (JSON object keys must be
/// strings; each grant carries its origin anyway).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpGrants(pub BTreeMap<Origin, HttpGrant>);

impl Serialize for HttpGrants {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.values().collect::<Vec<_>>().serialize(s)
    }
}

impl<'de> Deserialize<'de> for HttpGrants {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HttpGrants, D::Error> {
        let list = Vec::<HttpGrant>::deserialize(d)?;
        Ok(HttpGrants(
            list.into_iter().map(|g| (g.origin.clone(), g)).collect(),
        ))
    }
}

impl std::ops::Deref for HttpGrants {
    type Target = BTreeMap<Origin, HttpGrant>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// One `[[capabilities.http]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHttp {
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

/// `http-methods` and `http-ca-file` of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpBinding {
    /// The methods this instance may use, on every granted origin (upper
    /// case), when the operator narrows them.
    pub http_methods: Option<BTreeSet<String>>,
    /// The CA certificates (PEM) HTTPS servers' certificates are verified
    /// against, instead of the public web roots: for an internal tracker
    /// with a private CA.
    pub http_ca_file: Option<PathBuf>,
}

fn methods(g: &HttpGrant) -> String {
    g.methods.iter().cloned().collect::<Vec<_>>().join(",")
}

impl Surface for Http {
    const ID: SurfaceId = HTTP;
    const IMPORTS: &'static [&'static str] = &["wasi:http/outgoing-handler", "wasi:http/types"];
    const UNDECLARED: &'static str = "declare [[capabilities.http]] or remove the HTTP code";
    const BINDING_KEYS: &'static [&'static str] = &["http-methods", "http-ca-file"];

    type Entry = RawHttp;
    type Grant = HttpGrants;
    type Binding = HttpBinding;
    type Shared = ();
    type Policy = HttpPolicy;
    type Gate = HttpGate;

    fn parse(entries: Vec<RawHttp>) -> Result<HttpGrants, String> {
        let mut grants = BTreeMap::new();
        for (i, http) in entries.into_iter().enumerate() {
            let at = format!("[{i}]");
            let origin = Origin::parse(&http.url).map_err(|p| format!("{at}.url: {p}"))?;
            let methods = match http.methods {
                None => DEFAULT_METHODS.iter().map(|m| m.to_string()).collect(),
                Some(list) => {
                    let mut set = BTreeSet::new();
                    for m in list {
                        let upper = m.to_ascii_uppercase();
                        if !KNOWN_METHODS.contains(&upper.as_str()) {
                            return Err(format!(
                                "{at}.methods: {m:?} is not one of {}",
                                KNOWN_METHODS.join(", ")
                            ));
                        }
                        if !set.insert(upper) {
                            return Err(format!("{at}.methods: {m:?} is listed twice"));
                        }
                    }
                    if set.is_empty() {
                        return Err(format!(
                            "{at}.methods is empty: an origin with no method grants nothing; remove the entry"
                        ));
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
                        return Err(format!(
                            "{at}.inject-header.name {:?} cannot be injected",
                            raw.name
                        ));
                    }
                    if raw.secret.is_empty() {
                        return Err(format!("{at}.inject-header.secret is empty"));
                    }
                    Some(InjectHeader {
                        name,
                        secret: raw.secret,
                    })
                }
            };
            if grants.contains_key(&origin) {
                return Err(format!(
                    "{at}: origin {origin} is declared twice; merge the entries"
                ));
            }
            grants.insert(
                origin.clone(),
                HttpGrant {
                    origin,
                    methods,
                    inject_header,
                },
            );
        }
        Ok(HttpGrants(grants))
    }

    fn is_empty(grant: &HttpGrants) -> bool {
        grant.is_empty()
    }

    fn compare(approved: &HttpGrants, declared: &HttpGrants, out: &mut Vec<Change>) {
        for (origin, d) in declared.iter() {
            match approved.get(origin) {
                None => out.push(Change::Widened(format!("http {origin} {}", methods(d)))),
                Some(a) => {
                    for m in d.methods.difference(&a.methods) {
                        out.push(Change::Widened(format!("http {origin} method {m}")));
                    }
                    for m in a.methods.difference(&d.methods) {
                        out.push(Change::Narrowed(format!("http {origin} method {m}")));
                    }
                    if d.inject_header != a.inject_header {
                        let show = |g: &HttpGrant| match &g.inject_header {
                            Some(h) => format!("header {} from secret {}", h.name, h.secret),
                            None => "no injected header".to_string(),
                        };
                        let change = format!("http {origin} {} (approved: {})", show(d), show(a));
                        out.push(if d.inject_header.is_some() {
                            Change::Widened(change)
                        } else {
                            Change::Narrowed(change)
                        });
                    }
                }
            }
        }
        for (origin, a) in approved.iter() {
            if !declared.contains_key(origin) {
                out.push(Change::Narrowed(format!("http {origin} {}", methods(a))));
            }
        }
    }

    fn intersect(
        declared: &HttpGrants,
        approved: &HttpGrants,
        ceiling: &HostCeiling,
    ) -> HttpGrants {
        let mut out = BTreeMap::new();
        for (origin, d) in declared.iter() {
            let Some(a) = approved.get(origin) else {
                continue;
            };
            if !ceiling.allows_origin(origin) {
                continue;
            }
            let methods: BTreeSet<String> = d.methods.intersection(&a.methods).cloned().collect();
            if methods.is_empty() {
                continue;
            }
            out.insert(
                origin.clone(),
                HttpGrant {
                    origin: origin.clone(),
                    methods,
                    inject_header: if d.inject_header == a.inject_header {
                        d.inject_header.clone()
                    } else {
                        None
                    },
                },
            );
        }
        HttpGrants(out)
    }

    fn read_only(grant: &mut HttpGrants) {
        for g in grant.0.values_mut() {
            g.methods.retain(|m| m == "GET" || m == "HEAD");
        }
    }

    fn narrow(grant: &mut HttpGrants, binding: &HttpBinding) -> Result<(), String> {
        let Some(methods) = &binding.http_methods else {
            return Ok(());
        };
        let granted: BTreeSet<&String> = grant.values().flat_map(|g| &g.methods).collect();
        if let Some(extra) = methods.iter().find(|m| !granted.contains(m)) {
            let granted: Vec<&str> = granted.iter().map(|m| m.as_str()).collect();
            return Err(format!(
                "http-methods: {extra} is not a method its grant holds on any origin ({}); \
                 write methods in upper case",
                if granted.is_empty() {
                    "none".into()
                } else {
                    granted.join(", ")
                }
            ));
        }
        for g in grant.0.values_mut() {
            g.methods.retain(|m| methods.contains(m));
        }
        Ok(())
    }

    fn resolve_paths(binding: &mut HttpBinding, resolve: &dyn Fn(&Path) -> PathBuf) {
        if let Some(p) = &binding.http_ca_file {
            binding.http_ca_file = Some(resolve(p));
        }
    }

    fn lines(grant: &HttpGrants, _: Option<&HttpBinding>) -> Vec<String> {
        grant
            .values()
            .map(|g| {
                let inject = match &g.inject_header {
                    Some(h) => format!("  + host injects {} from secret {}", h.name, h.secret),
                    None => String::new(),
                };
                format!("{}  {}{inject}", g.origin, methods(g))
            })
            .collect()
    }

    fn load(
        grant: &HttpGrants,
        binding: &HttpBinding,
        _: &Arc<()>,
        cx: &LoadContext<'_>,
    ) -> Result<HttpPolicy, String> {
        let mut inject = BTreeMap::new();
        for (origin, g) in grant.iter() {
            if let Some(h) = &g.inject_header {
                let value = cx.secrets.value(&h.secret)?;
                let name = http::HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| format!("bad header name {}", h.name))?;
                let mut value = http::HeaderValue::from_str(&value)
                    .map_err(|_| format!("secret {} is not a valid header value", h.secret))?;
                value.set_sensitive(true);
                inject.insert(origin.clone(), (name, value));
            }
        }
        Ok(HttpPolicy {
            grants: grant.0.clone(),
            inject,
            ceiling: cx.ceiling.clone(),
            resolver: cx.resolver.clone(),
            tls: tls_client(binding.http_ca_file.as_deref(), "http-ca-file")?,
            pool: Default::default(),
        })
    }

    fn gate(
        policy: &Arc<HttpPolicy>,
        _: &mut WasiCtxBuilder,
        log: &DecisionLog,
    ) -> wasmtime::Result<HttpGate> {
        Ok(HttpGate::new(policy.clone(), log.clone()))
    }

    fn per_call(grant: &HttpGrants) -> Option<String> {
        let writes = grant
            .values()
            .flat_map(|g| &g.methods)
            .any(|m| !matches!(m.as_str(), "GET" | "HEAD" | "OPTIONS"));
        writes.then(|| {
            format!(
                "{MOST_WRITES_PER_CALL} requests that write, {} MiB of bodies",
                MOST_BODY_BYTES_PER_CALL >> 20
            )
        })
    }

    fn begin_call(gate: &mut HttpGate) {
        gate.begin_call();
    }

    fn add_to_linker<T: HasGate<Self> + WasiView + WasiHttpView + Send + 'static>(
        linker: &mut Linker<T>,
    ) -> wasmtime::Result<()> {
        // Every request of the guest reaches the send hook of the state's
        // view, which is this surface's gate (see `linker.rs`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }
}
