//! Outbound HTTP: the wasi-http send hook is the one choke point.
//!
//! For every request the guest sends:
//! 1. the origin (scheme, host exactly as declared, port) must be granted,
//!    and the method must be in that origin's list; anything else is
//!    `HTTP-request-denied` before any lookup or connection;
//! 2. the host name is resolved by the host and every address checked
//!    against the ceiling (link-local/metadata and operator-denied networks):
//!    another name for a denied address is still denied;
//! 3. the request goes to the checked address itself, so a second lookup
//!    cannot swap the destination (there is none): plain HTTP keeps its
//!    Host header, HTTPS ([`super::https`]) asks TLS for the origin's name
//!    and verifies the certificate for it (against the instance's
//!    `http-ca-file`, else the public web roots);
//! 4. the operator's secret header is added by the host; the guest may not
//!    set that header itself, nor read it from a response (it is forbidden to
//!    it, like `Host`).
//!
//! Redirects are responses like any other; the SDK follows them by sending a
//! new request, which comes through this hook again.

use super::decision::{DecisionLog, Surface};
use super::manifest::{HttpGrant, Origin, split_host_port};
use crate::config::HostCeiling;
use http::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks, default_send_request,
};

/// How the host looks up a name: the system's resolver, or one a test
/// puts in its place (a resolver that answers differently each time is
/// what DNS rebinding looks like).
pub trait Resolve: Send + Sync {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The system's resolver.
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host, port))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// What an instance may send, shared by all its requests.
pub struct HttpPolicy {
    pub grants: BTreeMap<Origin, HttpGrant>,
    /// Header values to inject, by origin (resolved from operator secrets at load).
    pub inject: BTreeMap<Origin, (HeaderName, HeaderValue)>,
    pub ceiling: HostCeiling,
    pub resolver: Arc<dyn Resolve>,
    /// The TLS client for HTTPS (the instance's CA file, or the web roots).
    pub tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for HttpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPolicy")
            .field("grants", &self.grants)
            .field("ceiling", &self.ceiling)
            .finish_non_exhaustive()
    }
}

impl HttpPolicy {
    fn injected_names(&self) -> Vec<HeaderName> {
        self.inject.values().map(|(n, _)| n.clone()).collect()
    }
}

/// The per-instance hooks.
pub struct HttpGate {
    policy: Arc<HttpPolicy>,
    log: DecisionLog,
}

impl HttpGate {
    pub fn new(policy: Arc<HttpPolicy>, log: DecisionLog) -> Self {
        HttpGate { policy, log }
    }
}

/// A request's destination, read from its URI.
fn destination(req: &http::Request<WasiBody>) -> Result<(Origin, String), String> {
    let uri = req.uri();
    let scheme = uri
        .scheme_str()
        .ok_or("the request has no scheme")?
        .to_ascii_lowercase();
    let authority = uri.authority().ok_or("the request has no authority")?;
    let (host, _) = split_host_port(authority.as_str()).ok_or("unreadable authority")?;
    let port = match (uri.port_u16(), scheme.as_str()) {
        (Some(p), _) => p,
        (None, "http") => 80,
        (None, "https") => 443,
        (None, other) => return Err(format!("scheme {other} is not HTTP")),
    };
    let origin = Origin {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    };
    let shown = format!("{} {}{}", req.method(), origin, uri.path());
    Ok((origin, shown))
}

/// The check of step 1: which grant covers this request, or why none does.
fn permit<'a>(
    policy: &'a HttpPolicy,
    origin: &Origin,
    method: &str,
) -> Result<&'a HttpGrant, String> {
    let Some(grant) = policy.grants.get(origin) else {
        let same_host: Vec<String> = policy
            .grants
            .keys()
            .filter(|o| o.host == origin.host)
            .map(|o| o.to_string())
            .collect();
        return Err(if same_host.is_empty() {
            format!("origin {origin} is not in capabilities.http")
        } else {
            format!(
                "origin {origin} is not granted (granted for this host: {})",
                same_host.join(", ")
            )
        });
    };
    if !grant.methods.contains(method) {
        return Err(format!(
            "method {method} is not granted for {origin} (granted: {})",
            grant.methods.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(grant)
}

/// Step 2: every address the host name stands for, looked up once and
/// checked.
async fn resolve_checked(
    origin: &Origin,
    ceiling: &HostCeiling,
    resolver: &dyn Resolve,
) -> Result<Vec<IpAddr>, String> {
    let ips: Vec<IpAddr> = match origin.host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolver
            .lookup(&origin.host, origin.port)
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", origin.host))?,
    };
    if ips.is_empty() {
        return Err(format!("{} resolves to no address", origin.host));
    }
    for ip in &ips {
        if let Some(why) = ceiling.denies_ip(*ip) {
            return Err(format!("{} resolves to {ip}: {why}", origin.host));
        }
    }
    Ok(ips)
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for HttpGate {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        let injected = self.policy.injected_names();
        let log = self.log.clone();
        Arc::new(move |name| {
            if injected.contains(name) {
                // Called both when the guest sets a header and when a
                // response's headers are handed to it: in either direction
                // the secret header never crosses into the guest.
                log.deny(
                    Surface::Http,
                    format!("header {name}"),
                    "withheld from the guest: the host injects it from an operator secret".into(),
                );
                return true;
            }
            DEFAULT_FORBIDDEN_HEADERS.contains(name)
        })
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let (origin, shown) = match destination(&request) {
            Ok(d) => d,
            Err(why) => {
                self.log.deny(Surface::Http, request.uri().to_string(), why);
                return Box::new(async { Err(HttpError::HttpRequestUriInvalid) });
            }
        };
        if let Err(why) = permit(&self.policy, &origin, request.method().as_str()) {
            self.log.deny(Surface::Http, shown, why);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        if let Some((name, value)) = self.policy.inject.get(&origin) {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let policy = self.policy.clone();
        let log = self.log.clone();
        Box::new(async move {
            let ips = match resolve_checked(&origin, &policy.ceiling, &*policy.resolver).await {
                Ok(ips) => ips,
                Err(why) => {
                    log.deny(Surface::Http, shown, why);
                    return Err(HttpError::DestinationIpProhibited);
                }
            };
            let addr = SocketAddr::new(ips[0], origin.port);
            log.allow(
                Surface::Http,
                shown,
                format!("granted origin {origin}, sent to {addr}"),
            );
            keep_host(&mut request)?;
            if origin.scheme == "https" {
                return super::https::send(
                    request,
                    addr,
                    &origin.host,
                    policy.tls.clone(),
                    options,
                )
                .await;
            }
            pin_address(&mut request, addr)?;
            let (response, io) = default_send_request(request, options).await?;
            Ok((
                response.map(http_body_util::BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// The Host header names the origin, whatever address the request is
/// sent to (it is set before this hook runs; set here if not).
fn keep_host(request: &mut http::Request<WasiBody>) -> Result<(), HttpError> {
    if !request.headers().contains_key(http::header::HOST) {
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let value = HeaderValue::from_str(&host).map_err(|_| HttpError::HttpRequestUriInvalid)?;
        request.headers_mut().insert(http::header::HOST, value);
    }
    Ok(())
}

/// Point a plain-HTTP request at a checked address.
fn pin_address(request: &mut http::Request<WasiBody>, addr: SocketAddr) -> Result<(), HttpError> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .scheme("http")
        .authority(addr.to_string())
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn policy(url: &str, methods: &[&str]) -> HttpPolicy {
        let origin = Origin::parse(url).unwrap();
        let grant = HttpGrant {
            origin: origin.clone(),
            methods: methods
                .iter()
                .map(|m| m.to_string())
                .collect::<BTreeSet<_>>(),
            inject_header: None,
        };
        HttpPolicy {
            grants: [(origin, grant)].into(),
            inject: BTreeMap::new(),
            ceiling: HostCeiling::default(),
            resolver: Arc::new(SystemResolver),
            tls: super::super::https::client(None).unwrap(),
        }
    }

    #[test]
    fn only_the_exact_declared_origin_and_method_pass() {
        let p = policy("http://127.0.0.1:3000", &["GET"]);
        let o = |u: &str| Origin::parse(u).unwrap();
        assert!(permit(&p, &o("http://127.0.0.1:3000"), "GET").is_ok());
        assert!(permit(&p, &o("http://127.0.0.1:3000"), "PUT").is_err());
        assert!(permit(&p, &o("http://127.0.0.1:3001"), "GET").is_err());
        assert!(permit(&p, &o("https://127.0.0.1:3000"), "GET").is_err());
        assert!(permit(&p, &o("http://localhost:3000"), "GET").is_err());
        assert!(permit(&p, &o("http://[::ffff:127.0.0.1]:3000"), "GET").is_err());
        assert!(permit(&p, &o("http://2130706433:3000"), "GET").is_err());
    }

    #[test]
    fn a_wrong_port_names_the_granted_ones() {
        let p = policy("http://127.0.0.1:3000", &["GET"]);
        let why = permit(&p, &Origin::parse("http://127.0.0.1:9").unwrap(), "GET").unwrap_err();
        assert!(why.contains("http://127.0.0.1:3000"), "{why}");
    }
}
