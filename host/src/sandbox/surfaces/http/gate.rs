//! The HTTP choke point: the wasi-http send hook of one instance.
//!
//! For every request the guest sends:
//! 1. the origin (scheme, host exactly as declared, port) must be granted,
//!    and the method must be in that origin's list; anything else is
//!    `HTTP-request-denied` before any lookup or connection;
//! 2. a request carrying AWS signature authentication (a presigned S3 URL,
//!    an `Authorization: AWS4-HMAC-SHA256 ...` header) is refused: S3 goes
//!    through the `s3` surface, where bucket and prefix are checked, and a
//!    signed URL smuggled into an HTTP request would skip both;
//! 3. the host name is resolved by the host and every address checked
//!    against the ceiling (link-local/metadata and operator-denied networks):
//!    another name for a denied address is still denied;
//! 4. the request goes to the checked address itself, so a second lookup
//!    cannot swap the destination (there is none): plain HTTP keeps its
//!    Host header, HTTPS asks TLS for the origin's name and verifies the
//!    certificate for it (against the instance's `http-ca-file`, else the
//!    public web roots); a connection this instance opened to that address
//!    (for HTTPS, for that name) and kept idle is used again
//!    ([`crate::sandbox::net::pool`]);
//! 5. the operator's secret header is added by the host; the guest may not
//!    set that header itself, nor read it from a response (it is forbidden to
//!    it, like `Host`).
//!
//! Redirects are responses like any other; the SDK follows them by sending a
//! new request, which comes through this hook again.

use super::body::{MOST_BODY_BYTES_PER_CALL, limited};
use super::{HTTP, HttpGrant, Origin};
use crate::sandbox::budget::Budget;
use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::net::pool::{BodyError, Pool};
use crate::sandbox::net::send::{self, Failure, Timeouts, Tls};
use crate::sandbox::net::{Resolve, resolve_checked, split_host_port};
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

/// What an instance may send, shared by all its requests.
pub struct HttpPolicy {
    pub grants: BTreeMap<Origin, HttpGrant>,
    /// Header values to inject, by origin (resolved from operator secrets at load).
    pub inject: BTreeMap<Origin, (HeaderName, HeaderValue)>,
    pub ceiling: HostCeiling,
    pub resolver: Arc<dyn Resolve>,
    /// The TLS client for HTTPS (the instance's CA file, or the web roots).
    pub tls: Arc<rustls::ClientConfig>,
    /// The connections the instance keeps open between requests.
    pub pool: Pool<WasiBody>,
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
    /// Requests of a method that writes the call it is in may still send.
    writes: Budget,
    /// What is left of the call's budget of request-body bytes.
    bodies: Budget,
}

/// The most requests of a method other than `GET`, `HEAD` and `OPTIONS` one
/// call may send: a grant says where an adapter may write, not how often,
/// and a step's write is a request or two.
pub const MOST_WRITES_PER_CALL: u32 = 16;

impl HttpGate {
    pub fn new(policy: Arc<HttpPolicy>, log: DecisionLog) -> Self {
        HttpGate {
            policy,
            log,
            writes: Budget::new(MOST_WRITES_PER_CALL.into()),
            bodies: Budget::new(MOST_BODY_BYTES_PER_CALL),
        }
    }

    /// A new call: nothing written yet.
    pub fn begin_call(&mut self) {
        self.writes.refill();
        self.bodies.refill();
    }

    /// Whether a request of `method` is one write too many for this call
    /// (counting it when it is not).
    fn one_write_too_many(&self, method: &http::Method) -> bool {
        let reads = matches!(
            *method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        !reads && !self.writes.take(1)
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
pub(super) fn permit<'a>(
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

/// The check of step 2: a request that carries AWS signature
/// authentication, in its query (a presigned URL) or its headers.
pub(super) fn aws_signed(request: &http::Request<WasiBody>) -> Option<String> {
    let query = request.uri().query().unwrap_or("");
    let signed_query = query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        [
            "x-amz-signature",
            "x-amz-credential",
            "x-amz-security-token",
        ]
        .contains(&name.to_ascii_lowercase().as_str())
            || name.eq_ignore_ascii_case("Signature") && query.contains("AWSAccessKeyId")
    });
    if signed_query {
        return Some("its URL is a presigned S3 request".into());
    }
    let signed_header = request.headers().iter().any(|(name, value)| {
        let v = value.as_bytes();
        (name == http::header::AUTHORIZATION && (v.starts_with(b"AWS4-") || v.starts_with(b"AWS ")))
            || name.as_str().eq_ignore_ascii_case("x-amz-security-token")
    });
    signed_header.then(|| "it carries AWS signature authentication".into())
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
                    HTTP,
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
                self.log.deny(HTTP, request.uri().to_string(), why);
                return Box::new(async { Err(HttpError::HttpRequestUriInvalid) });
            }
        };
        if let Err(why) = permit(&self.policy, &origin, request.method().as_str()) {
            self.log.deny(HTTP, shown, why);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        if self.one_write_too_many(request.method()) {
            self.log.deny(
                HTTP,
                shown,
                format!(
                    "more than {MOST_WRITES_PER_CALL} requests that write (not GET, HEAD or \
                     OPTIONS) in one call"
                ),
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        if let Some(why) = aws_signed(&request) {
            self.log.deny(
                HTTP,
                shown,
                format!("{why}: S3 is reached through capabilities.s3, never through HTTP"),
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        if let Some((name, value)) = self.policy.inject.get(&origin) {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        // The trace the call is part of goes on with the request.
        for (name, value) in crate::telemetry::carried() {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                request.headers_mut().insert(name, value);
            }
        }
        let mut request =
            request.map(|body| limited(body, &self.bodies, self.log.clone(), shown.clone()));
        let policy = self.policy.clone();
        let log = self.log.clone();
        Box::new(async move {
            let ips = match resolve_checked(
                &origin.host,
                origin.port,
                &policy.ceiling,
                &*policy.resolver,
            )
            .await
            {
                Ok(ips) => ips,
                Err(why) => {
                    log.deny(HTTP, shown, why);
                    return Err(HttpError::DestinationIpProhibited);
                }
            };
            let addr = SocketAddr::new(ips[0], origin.port);
            log.allow(
                HTTP,
                shown,
                format!("granted origin {origin}, sent to {addr}"),
            );
            keep_host(&mut request)?;
            let tls = (origin.scheme == "https").then(|| Tls {
                name: &origin.host,
                client: policy.tls.clone(),
            });
            send_to(request, addr, tls, options, &policy.pool).await
        })
    }
}

/// The request to the checked address (for HTTPS, TLS asking for the
/// origin's name), on a connection the instance keeps there when one is
/// idle.
async fn send_to(
    request: http::Request<WasiBody>,
    addr: SocketAddr,
    tls: Option<Tls<'_>>,
    options: Option<RequestOptions>,
    pool: &Pool<WasiBody>,
) -> SendResult {
    // wasi-http's own default for a time the guest does not set.
    let long = Duration::from_secs(600);
    let timeouts = Timeouts {
        connect: options.and_then(|o| o.connect_timeout).unwrap_or(long),
        first_byte: options.and_then(|o| o.first_byte_timeout).unwrap_or(long),
        between_bytes: options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(long),
    };
    let response = send::send(request, addr, tls, timeouts, pool)
        .await
        .map_err(|failure| match failure {
            Failure::Connect(e) => HttpError::Connect(e),
            Failure::ConnectTimeout => HttpError::ConnectionTimeout,
            Failure::Tls(e) => HttpError::Tls(e),
            Failure::ServerName(e) => HttpError::InvalidDnsNameError(e),
            Failure::Protocol(e) => HttpError::from(e),
            Failure::FirstByteTimeout => HttpError::ConnectionReadTimeout,
            Failure::Uri => HttpError::HttpRequestUriInvalid,
        })?;
    let response = response.map(|body| {
        body.map_err(|e| match e {
            BodyError::Http(e) => HttpError::from(e),
            BodyError::Stalled => HttpError::HttpResponseTimeout,
        })
        .boxed_unsync()
    });
    // The connection is driven by a task of its own (`net::send`): there is
    // nothing more for wasi-http to drive.
    Ok((response, Box::new(async { Ok(()) })))
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
