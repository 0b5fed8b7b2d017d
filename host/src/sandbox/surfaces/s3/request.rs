//! One signed request of the `s3` surface on the wire: sent to the address
//! the host looked up and checked against the ceiling (TLS for the
//! endpoint's name when it is HTTPS), its answer's body read within a
//! bound, and the answer read back as the contract's values and errors.

use super::S3_ID;
use super::gate::{S3Gate, Signed};
use crate::sandbox::bindings::handoff::adapter::s3::ObjectInfo;
use crate::sandbox::bindings::wit::AdapterError;
use crate::sandbox::net::resolve_checked;
use crate::sandbox::net::send::{self, Timeouts, Tls, read_bounded};
use http_body_util::Full;
use hyper::body::Bytes;
use std::net::SocketAddr;
use std::time::Duration;

/// Connecting, and waiting for an answer's head; below the default call
/// limit, so an unreachable store is a `transient` error.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    first_byte: Duration::from_secs(3),
    between_bytes: Duration::from_secs(3),
};
/// What is read of an error answer (S3's XML names the error).
pub(super) const ERROR_BODY: usize = 16 * 1024;

/// A request about to be sent: its method, signed URL and headers.
pub(super) struct Outgoing {
    pub method: http::Method,
    pub url: url::Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl S3Gate {
    /// Send a signed request to the endpoint's checked address: the
    /// answer's status, headers and (bounded) body.
    pub(super) async fn send(
        &self,
        signed: &Signed,
        outgoing: Outgoing,
        max_body: usize,
    ) -> Result<(http::StatusCode, http::HeaderMap, Option<Vec<u8>>), AdapterError> {
        let origin = &signed.scope.endpoint;
        let transient = |m: String| AdapterError::Transient(format!("s3 {origin}: {m}"));
        let ips = resolve_checked(
            &origin.host,
            origin.port,
            &self.policy.ceiling,
            &*self.policy.resolver,
        )
        .await
        .map_err(|why| {
            self.log.deny(S3_ID, format!("s3 {origin}"), why.clone());
            AdapterError::Denied(format!("s3 {origin}: {why}"))
        })?;
        let addr = SocketAddr::new(ips[0], origin.port);
        let path = match outgoing.url.query() {
            Some(q) => format!("{}?{q}", outgoing.url.path()),
            None => outgoing.url.path().to_string(),
        };
        let authority = outgoing
            .url
            .host_str()
            .map(|h| match outgoing.url.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
            .unwrap_or_default();
        let mut request = http::Request::builder()
            .method(outgoing.method)
            .uri(path)
            .header(http::header::HOST, authority);
        for (name, value) in &outgoing.headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(outgoing.body))
            .map_err(|e| AdapterError::Invalid(format!("s3 request: {e}")))?;
        let tls = (origin.scheme == "https").then(|| Tls {
            name: &origin.host,
            client: self.policy.tls.clone(),
        });
        let response = send::send(request, addr, tls, TIMEOUTS, &self.policy.pool)
            .await
            .map_err(|f| transient(f.to_string()))?;
        let (parts, body) = response.into_parts();
        let limit = if parts.status.is_success() {
            max_body
        } else {
            ERROR_BODY
        };
        let body = read_bounded(body, limit)
            .await
            .map_err(|e| transient(format!("reading the answer: {e}")))?;
        Ok((parts.status, parts.headers, body))
    }
}

pub(super) fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn etag(headers: &http::HeaderMap) -> String {
    header(headers, "etag")
        .unwrap_or("")
        .trim_matches('"')
        .to_string()
}

pub(super) fn info(headers: &http::HeaderMap, size: Option<u64>) -> ObjectInfo {
    ObjectInfo {
        size: size
            .or_else(|| header(headers, "content-length").and_then(|l| l.parse().ok()))
            .unwrap_or(0),
        etag: etag(headers),
        content_type: header(headers, "content-type").map(str::to_string),
    }
}

/// `Content-Range: bytes 0-9/1234` → 1234.
pub(super) fn content_range_total(headers: &http::HeaderMap) -> Option<u64> {
    header(headers, "content-range")?
        .rsplit_once('/')?
        .1
        .parse()
        .ok()
}

pub(super) fn oversize(key: &str, max: u64) -> AdapterError {
    AdapterError::Invalid(format!(
        "get-object {key}: the store sent more than the {max} bytes asked for"
    ))
}

/// An answer that is not what was asked: the store's error code, sorted
/// like the contract's errors.
pub(super) fn refusal(
    what: &str,
    bucket: &str,
    key: &str,
    status: http::StatusCode,
    body: Option<Vec<u8>>,
) -> AdapterError {
    let text = body
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_string())
        .unwrap_or_default();
    let message = crate::kept::render(&format!("s3 {what} {bucket}/{key}: {status} {code}"), 1024);
    match status.as_u16() {
        401 | 403 => AdapterError::Denied(message),
        404 => AdapterError::NotFound(message),
        409 | 412 => AdapterError::Conflict(message),
        429 | 500..=599 => AdapterError::Transient(message),
        _ => AdapterError::Invalid(message),
    }
}

/// The longest entity tag a conditional put may name (a store's are an
/// MD5 in hex, with a part count for a multipart upload).
const MAX_ETAG: usize = 128;

/// An entity tag as `If-Match` carries it: quoted, as the store sends it
/// (the adapter has it without quotes; quoted ones are taken too).
pub(super) fn quoted_etag(tag: &str) -> Result<String, AdapterError> {
    let bare = tag.trim_matches('"');
    if bare.is_empty()
        || bare.len() > MAX_ETAG
        || !bare.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
    {
        return Err(AdapterError::Invalid(format!(
            "put-object-if: the entity tag must be 1 to {MAX_ETAG} printable characters \
             without quotes, as a read returned it (given {})",
            crate::kept::render(tag, 80)
        )));
    }
    Ok(format!("\"{bare}\""))
}
