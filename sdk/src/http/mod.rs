//! Outbound HTTP for adapters.
//!
//! Requests go through the host, which checks each one against the adapter's
//! granted origins and methods, adds any secret header the operator
//! configured, and refuses the rest. A refusal comes back as
//! [`AdapterError::Denied`] naming the request, so an adapter can simply use
//! `?`. Redirects are followed (GET and HEAD, at most [`MAX_REDIRECTS`]), and
//! every hop is checked by the host again. One call may send at most 16
//! requests of a method that writes (any but GET, HEAD and OPTIONS) and 64
//! MiB of request bodies in all; the host refuses the request past either.

use crate::AdapterError;

/// How many redirects a GET or HEAD follows before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// The most of a response body an adapter reads: a record, a listing, a
/// page of changes, never an archive. Past it the call fails as
/// [`AdapterError::Invalid`] naming the request, before the rest is read
/// (the instance's memory would otherwise end it less clearly).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// `Ok` while a body of `len` bytes is within [`MAX_RESPONSE_BYTES`].
fn within_bound(what: &str, len: usize) -> Result<(), AdapterError> {
    if len > MAX_RESPONSE_BYTES {
        return Err(AdapterError::Invalid(format!(
            "{what}: the response body is over {MAX_RESPONSE_BYTES} bytes, the most an adapter \
             reads"
        )));
    }
    Ok(())
}

/// An outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A response; any status, including 4xx and 5xx, is a `Response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A JSON body (the caller serializes), with its content type.
    pub fn json(self, body: impl Into<Vec<u8>>) -> Self {
        let mut request = self.header("content-type", "application/json");
        request.body = body.into();
        request
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Map a non-2xx status to the adapter error the host acts on: 404 is
    /// not-found, 409/412/422 conflict, 401/403 denied, 408/429/5xx transient.
    pub fn error_for_status(self, what: &str) -> Result<Response, AdapterError> {
        if self.is_success() {
            return Ok(self);
        }
        let message = format!("{what}: HTTP {}", self.status);
        Err(match self.status {
            404 | 410 => AdapterError::NotFound(message),
            409 | 412 | 422 => AdapterError::Conflict(message),
            401 | 403 => AdapterError::Denied(message),
            408 | 429 | 500..=599 => AdapterError::Transient(message),
            _ => AdapterError::Invalid(message),
        })
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, AdapterError> {
    send(Request::new("GET", url))
}

/// Why a request has no response, and whether the server may have
/// received it all the same.
#[derive(Debug)]
pub struct NoResponse {
    pub error: AdapterError,
    /// The whole request went out and then the exchange broke (the
    /// connection closed, or no answer in time): the server may have acted
    /// on it. `false` when it certainly did not get it (the host refused
    /// it, the name did not resolve, the connection or its TLS failed).
    pub maybe_received: bool,
}

/// Send one request, following no redirect, and say on failure whether
/// the server may have received it: what an adapter needs to deliver at
/// most once ([`crate::sent::SentLog::deliver`]).
pub fn send_once(request: &Request) -> Result<Response, NoResponse> {
    backend::send_once(request)
}

/// Send a request, following redirects for GET and HEAD.
pub fn send(request: Request) -> Result<Response, AdapterError> {
    let follows = request.method == "GET" || request.method == "HEAD";
    let mut request = request;
    for _ in 0..=MAX_REDIRECTS {
        let response = backend::send_once(&request).map_err(|n| n.error)?;
        let location = response.header("location").map(str::to_string);
        match (follows, response.status, location) {
            (true, 301 | 302 | 303 | 307 | 308, Some(location)) => {
                request.url = resolve_location(&request.url, &location);
            }
            _ => return Ok(response),
        }
    }
    Err(AdapterError::Invalid(format!(
        "{} {}: more than {MAX_REDIRECTS} redirects",
        request.method, request.url
    )))
}

/// The parts of an absolute `http(s)` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub scheme: String,
    pub authority: String,
    pub path_and_query: String,
}

/// Split `scheme://authority/path?query`; anything else is `invalid`.
pub fn split_url(url: &str) -> Result<UrlParts, AdapterError> {
    let invalid = || AdapterError::Invalid(format!("not an absolute http(s) URL: {url:?}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(invalid());
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid());
    }
    let path_and_query = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok(UrlParts {
        scheme,
        authority: authority.to_string(),
        path_and_query,
    })
}

fn resolve_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    match split_url(base) {
        Ok(parts) if location.starts_with('/') => {
            format!("{}://{}{}", parts.scheme, parts.authority, location)
        }
        Ok(parts) => {
            let dir = parts
                .path_and_query
                .rsplit_once('/')
                .map(|(d, _)| d)
                .unwrap_or("");
            format!("{}://{}{}/{}", parts.scheme, parts.authority, dir, location)
        }
        Err(_) => location.to_string(),
    }
}

#[cfg(target_arch = "wasm32")]
mod wasi;
#[cfg(target_arch = "wasm32")]
use wasi as backend;

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use super::{NoResponse, Request, Response};

    /// The harness's answer; its errors stand for requests that never
    /// left.
    pub fn send_once(request: &Request) -> Result<Response, NoResponse> {
        let not_sent = |error| NoResponse {
            error,
            maybe_received: false,
        };
        let response =
            crate::testing::with_current(|h| h.answer_http(request)).map_err(not_sent)?;
        let what = format!("{} {}", request.method, request.url);
        super::within_bound(&what, response.body.len()).map_err(|error| NoResponse {
            error,
            maybe_received: true,
        })?;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_url_separates_scheme_authority_and_path() {
        let parts = split_url("HTTP://127.0.0.1:3000/issues/1.json?include=journals").unwrap();
        assert_eq!(parts.scheme, "http");
        assert_eq!(parts.authority, "127.0.0.1:3000");
        assert_eq!(parts.path_and_query, "/issues/1.json?include=journals");
        assert_eq!(split_url("https://h?q=1").unwrap().path_and_query, "/?q=1");
        assert_eq!(split_url("https://h").unwrap().path_and_query, "/");
    }

    #[test]
    fn split_url_refuses_other_schemes_and_userinfo() {
        assert!(split_url("ftp://h/x").is_err());
        assert!(split_url("/relative").is_err());
        assert!(split_url("http://user:pw@h/").is_err());
    }

    #[test]
    fn relative_redirects_resolve_against_the_request() {
        assert_eq!(resolve_location("http://a:1/x/y", "/z"), "http://a:1/z");
        assert_eq!(resolve_location("http://a:1/x/y", "z"), "http://a:1/x/z");
        assert_eq!(resolve_location("http://a:1/x", "http://b/"), "http://b/");
    }
}
