//! The `s3` interface for one instance: every call checked against the
//! grant first (endpoint, bucket, a key that cannot read as another path,
//! under a granted prefix, a write only where read-write), then signed by
//! the host with the operator's credentials and sent to the address the
//! host looked up and checked, like an HTTP request of the `http` surface.

use super::S3_ID;
use super::grant::{S3Scope, key_problem};
use crate::sandbox::bindings::handoff::adapter::s3::{self, ObjectChunk, ObjectInfo};
use crate::sandbox::bindings::wit::AdapterError;
use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::net::send::{self, Timeouts, Tls, read_bounded};
use crate::sandbox::net::{Resolve, resolve_checked};
use crate::sandbox::surfaces::files::FileMode;
use crate::sandbox::surfaces::http::Origin;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The most one `get-object` returns and one `put-object` writes.
pub const MAX_CHUNK: u32 = 4 * 1024 * 1024;
/// How long a signed request stays valid: it is sent at once, by the host.
const SIGNED_FOR: Duration = Duration::from_secs(60);
/// Connecting, and waiting for an answer's head; below the default call
/// limit, so an unreachable store is a `transient` error.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    first_byte: Duration::from_secs(3),
};
/// What is read of an error answer (S3's XML names the error).
const ERROR_BODY: usize = 16 * 1024;

/// One scope with what signing needs.
pub struct Signed {
    pub scope: S3Scope,
    bucket: Bucket,
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// What an instance may reach, fixed when it is loaded: its scopes with
/// their credentials (read from the operator's secrets), the ceiling, the
/// resolver and the TLS client.
pub struct S3Policy {
    pub scopes: Vec<Signed>,
    pub ceiling: HostCeiling,
    pub resolver: Arc<dyn Resolve>,
    pub tls: Arc<rustls::ClientConfig>,
}

impl S3Policy {
    /// Everything signing needs, made once: a bucket per scope, and the
    /// credentials from `secret` (a problem stops the load).
    pub fn load(
        scopes: &[S3Scope],
        secret: impl Fn(&str) -> Result<String, String>,
        ceiling: HostCeiling,
        resolver: Arc<dyn Resolve>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<S3Policy, String> {
        let mut signed = Vec::new();
        for scope in scopes {
            let endpoint = url::Url::parse(&scope.endpoint.to_string())
                .map_err(|e| format!("s3 endpoint {}: {e}", scope.endpoint))?;
            let bucket = Bucket::new(
                endpoint,
                UrlStyle::Path,
                scope.bucket.clone(),
                scope.region.clone(),
            )
            .map_err(|e| format!("s3 bucket {}: {e:?}", scope.bucket))?;
            let credentials = match &scope.credentials {
                None => None,
                Some(c) => Some(Credentials::new(
                    secret(&c.access_key)?,
                    secret(&c.secret_key)?,
                )),
            };
            signed.push(Signed {
                scope: scope.clone(),
                bucket,
                credentials,
            });
        }
        Ok(S3Policy {
            scopes: signed,
            ceiling,
            resolver,
            tls,
        })
    }
}

/// The `s3` interface for one instance.
pub struct S3Gate {
    policy: Arc<S3Policy>,
    log: DecisionLog,
}

/// A request about to be sent: its method, signed URL and headers.
struct Outgoing {
    method: http::Method,
    url: url::Url,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

impl S3Gate {
    pub fn new(policy: Arc<S3Policy>, log: DecisionLog) -> Self {
        S3Gate { policy, log }
    }

    /// The scope that lets `what` happen to `key`, or the denial, logged.
    fn check(
        &self,
        what: &str,
        endpoint: &str,
        bucket: &str,
        key: &str,
        write: bool,
    ) -> Result<&Signed, AdapterError> {
        let target = format!("{what} s3 {endpoint} {bucket}/{key}");
        let target = crate::kept::render(&target, 512);
        let deny = |reason: String| {
            self.log.deny(S3_ID, target.clone(), reason.clone());
            AdapterError::Denied(format!("{target}: {reason}"))
        };
        let Ok(origin) = Origin::parse(endpoint) else {
            return Err(deny(
                "not an endpoint (scheme://host[:port]) granted by capabilities.s3".into(),
            ));
        };
        let on_endpoint: Vec<&Signed> = self
            .policy
            .scopes
            .iter()
            .filter(|s| s.scope.endpoint == origin)
            .collect();
        if on_endpoint.is_empty() {
            return Err(deny(format!(
                "endpoint {origin} is not granted by capabilities.s3"
            )));
        }
        let in_bucket: Vec<&Signed> = on_endpoint
            .iter()
            .copied()
            .filter(|s| s.scope.bucket == bucket)
            .collect();
        if in_bucket.is_empty() {
            let granted: Vec<&str> = on_endpoint
                .iter()
                .map(|s| s.scope.bucket.as_str())
                .collect();
            return Err(deny(format!(
                "bucket {bucket:?} is not granted on {origin} (granted: {})",
                granted.join(", ")
            )));
        }
        if let Some(problem) = key_problem(key, false) {
            return Err(deny(format!("the key {problem}")));
        }
        let under: Vec<&Signed> = in_bucket
            .iter()
            .copied()
            .filter(|s| s.scope.holds(key))
            .collect();
        if under.is_empty() {
            let prefixes: Vec<String> = in_bucket
                .iter()
                .map(|s| format!("{}*", s.scope.prefix))
                .collect();
            return Err(deny(format!(
                "the key is outside the granted prefixes ({})",
                prefixes.join(", ")
            )));
        }
        let allowed = under
            .iter()
            .copied()
            .find(|s| !write || s.scope.mode == FileMode::ReadWrite);
        let Some(signed) = allowed else {
            return Err(deny(format!(
                "the grant on {bucket}/{}* is read-only",
                under[0].scope.prefix
            )));
        };
        self.log.allow(
            S3_ID,
            target,
            format!(
                "granted by capabilities.s3 ({}/{}* {})",
                signed.scope.bucket, signed.scope.prefix, signed.scope.mode
            ),
        );
        Ok(signed)
    }

    /// Send a signed request to the endpoint's checked address: the
    /// answer's status, headers and (bounded) body.
    async fn send(
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
        let (response, rest) = send::send(request, addr, tls, TIMEOUTS)
            .await
            .map_err(|f| transient(f.to_string()))?;
        tokio::spawn(async move {
            let _ = rest.await;
        });
        let (parts, body) = response.into_parts();
        let limit = if parts.status.is_success() {
            max_body
        } else {
            ERROR_BODY
        };
        let body = read(body, limit)
            .await
            .map_err(|e| transient(format!("reading the answer: {e}")))?;
        Ok((parts.status, parts.headers, body))
    }

    pub async fn head_object(
        &self,
        endpoint: String,
        bucket: String,
        key: String,
    ) -> Result<Option<ObjectInfo>, AdapterError> {
        let signed = self.check("head", &endpoint, &bucket, &key, false)?;
        let action = signed.bucket.head_object(signed.credentials.as_ref(), &key);
        let outgoing = Outgoing {
            method: http::Method::HEAD,
            url: action.sign(SIGNED_FOR),
            headers: Vec::new(),
            body: Bytes::new(),
        };
        let (status, headers, body) = self.send(signed, outgoing, 0).await?;
        match status.as_u16() {
            200 => Ok(Some(info(&headers, None))),
            404 => Ok(None),
            _ => Err(refusal("head", &bucket, &key, status, body)),
        }
    }

    pub async fn get_object(
        &self,
        endpoint: String,
        bucket: String,
        key: String,
        offset: u64,
        max_bytes: u32,
    ) -> Result<Option<ObjectChunk>, AdapterError> {
        let signed = self.check("get", &endpoint, &bucket, &key, false)?;
        let max = max_bytes.clamp(1, MAX_CHUNK) as u64;
        let range = format!("bytes={offset}-{}", offset + max - 1);
        let mut action = signed.bucket.get_object(signed.credentials.as_ref(), &key);
        action.headers_mut().insert("range", range.clone());
        let outgoing = Outgoing {
            method: http::Method::GET,
            url: action.sign(SIGNED_FOR),
            headers: vec![("range", range)],
            body: Bytes::new(),
        };
        // A store that ignores the range answers the whole object: read at
        // most what a chunk from the start holds, and refuse past that.
        let limit = (offset + max) as usize;
        let (status, headers, body) = self.send(signed, outgoing, limit).await?;
        let etag = etag(&headers);
        match status.as_u16() {
            206 => {
                let bytes = body.ok_or_else(|| oversize(&key, max))?;
                let total = content_range_total(&headers).unwrap_or(offset + bytes.len() as u64);
                Ok(Some(ObjectChunk {
                    bytes,
                    total_size: total,
                    etag,
                }))
            }
            200 => {
                let whole = body.ok_or_else(|| oversize(&key, max))?;
                let total = whole.len() as u64;
                let from = (offset.min(total)) as usize;
                let to = (offset.saturating_add(max)).min(total) as usize;
                Ok(Some(ObjectChunk {
                    bytes: whole[from..to].to_vec(),
                    total_size: total,
                    etag,
                }))
            }
            // Past the end: nothing more to read.
            416 => Ok(Some(ObjectChunk {
                bytes: Vec::new(),
                total_size: content_range_total(&headers).unwrap_or(offset),
                etag,
            })),
            404 => Ok(None),
            _ => Err(refusal("get", &bucket, &key, status, body)),
        }
    }

    pub async fn put_object(
        &self,
        endpoint: String,
        bucket: String,
        key: String,
        body: Vec<u8>,
        content_type: String,
    ) -> Result<ObjectInfo, AdapterError> {
        if body.len() > MAX_CHUNK as usize {
            return Err(AdapterError::Invalid(format!(
                "put-object: {} bytes; an object written through s3 is at most {MAX_CHUNK}",
                body.len()
            )));
        }
        if content_type.is_empty()
            || content_type.len() > 255
            || content_type.chars().any(|c| c.is_control())
        {
            return Err(AdapterError::Invalid(
                "put-object: the content type must be 1 to 255 characters, no control characters"
                    .into(),
            ));
        }
        let signed = self.check("put", &endpoint, &bucket, &key, true)?;
        let action = signed.bucket.put_object(signed.credentials.as_ref(), &key);
        let size = body.len() as u64;
        let outgoing = Outgoing {
            method: http::Method::PUT,
            url: action.sign(SIGNED_FOR),
            headers: vec![
                ("content-type", content_type.clone()),
                ("content-length", size.to_string()),
            ],
            body: Bytes::from(body),
        };
        let (status, headers, answer) = self.send(signed, outgoing, ERROR_BODY).await?;
        if !status.is_success() {
            return Err(refusal("put", &bucket, &key, status, answer));
        }
        Ok(ObjectInfo {
            size,
            etag: etag(&headers),
            content_type: Some(content_type),
        })
    }
}

async fn read(body: Incoming, limit: usize) -> Result<Option<Vec<u8>>, hyper::Error> {
    read_bounded(body, limit).await
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn etag(headers: &http::HeaderMap) -> String {
    header(headers, "etag")
        .unwrap_or("")
        .trim_matches('"')
        .to_string()
}

fn info(headers: &http::HeaderMap, size: Option<u64>) -> ObjectInfo {
    ObjectInfo {
        size: size
            .or_else(|| header(headers, "content-length").and_then(|l| l.parse().ok()))
            .unwrap_or(0),
        etag: etag(headers),
        content_type: header(headers, "content-type").map(str::to_string),
    }
}

/// `Content-Range: bytes 0-9/1234` → 1234.
fn content_range_total(headers: &http::HeaderMap) -> Option<u64> {
    header(headers, "content-range")?
        .rsplit_once('/')?
        .1
        .parse()
        .ok()
}

fn oversize(key: &str, max: u64) -> AdapterError {
    AdapterError::Invalid(format!(
        "get-object {key}: the store sent more than the {max} bytes asked for"
    ))
}

/// An answer that is not what was asked: the store's error code, sorted
/// like the contract's errors.
fn refusal(
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

impl s3::Host for S3Gate {
    async fn head_object(
        &mut self,
        endpoint: String,
        bucket: String,
        key: String,
    ) -> Result<Option<ObjectInfo>, AdapterError> {
        S3Gate::head_object(self, endpoint, bucket, key).await
    }

    async fn get_object(
        &mut self,
        endpoint: String,
        bucket: String,
        key: String,
        offset: u64,
        max_bytes: u32,
    ) -> Result<Option<ObjectChunk>, AdapterError> {
        S3Gate::get_object(self, endpoint, bucket, key, offset, max_bytes).await
    }

    async fn put_object(
        &mut self,
        endpoint: String,
        bucket: String,
        key: String,
        body: Vec<u8>,
        content_type: String,
    ) -> Result<ObjectInfo, AdapterError> {
        S3Gate::put_object(self, endpoint, bucket, key, body, content_type).await
    }
}
