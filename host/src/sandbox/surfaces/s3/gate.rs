//! The `s3` interface for one instance: every call checked against the
//! grant first (endpoint, bucket, a key that cannot read as another path,
//! under a granted prefix, a write only where read-write), then signed by
//! the host with the operator's credentials and sent to the address the
//! host looked up and checked, like an HTTP request of the `http` surface.

use super::S3_ID;
use super::grant::{S3Scope, key_problem};
use super::request::{
    ERROR_BODY, Outgoing, content_range_total, etag, info, oversize, quoted_etag, refusal,
};
use crate::sandbox::bindings::handoff::adapter::s3::{self, Expected, ObjectChunk, ObjectInfo};
use crate::sandbox::bindings::wit::AdapterError;
use crate::sandbox::budget::Budget;
use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::net::Resolve;
use crate::sandbox::net::pool::Pool;
use crate::sandbox::surfaces::files::FileMode;
use crate::sandbox::surfaces::http::Origin;
use http_body_util::Full;
use hyper::body::Bytes;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::sync::Arc;
use std::time::Duration;

/// The most one `get-object` returns and one `put-object` writes.
pub const MAX_CHUNK: u32 = 4 * 1024 * 1024;
/// The most one call may write through `put-object`, all its objects
/// together: a read-write grant says where an adapter may write, not how
/// much, and an adapter puts a links object or a record, not bulk data.
pub const MOST_PUT_BYTES_PER_CALL: u64 = 64 * 1024 * 1024;

/// The most read of a store that answers a ranged get with the whole
/// object (to cut the chunk from it): past it, the read is refused.
const MAX_WHOLE_READ: u64 = 64 * 1024 * 1024;
/// How long a signed request stays valid: it is sent at once, by the host.
const SIGNED_FOR: Duration = Duration::from_secs(60);
/// One scope with what signing needs.
pub struct Signed {
    pub scope: S3Scope,
    pub(super) bucket: Bucket,
    pub(super) credentials: Option<Credentials>,
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
/// resolver and the TLS client; and the connections it keeps open.
pub struct S3Policy {
    pub scopes: Vec<Signed>,
    pub ceiling: HostCeiling,
    pub resolver: Arc<dyn Resolve>,
    pub tls: Arc<rustls::ClientConfig>,
    pub pool: Pool<Full<Bytes>>,
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
            pool: Pool::default(),
        })
    }
}

/// The `s3` interface for one instance.
pub struct S3Gate {
    pub(super) policy: Arc<S3Policy>,
    pub(super) log: DecisionLog,
    /// What the call it is in may still put.
    put: Budget,
}

impl S3Gate {
    pub fn new(policy: Arc<S3Policy>, log: DecisionLog) -> Self {
        S3Gate {
            policy,
            log,
            put: Budget::new(MOST_PUT_BYTES_PER_CALL),
        }
    }

    /// A new call: nothing put yet.
    pub fn begin_call(&mut self) {
        self.put.refill();
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
        // Any u64 can be asked for: one past any object is said, not
        // overflowed.
        let Some(last) = offset.checked_add(max - 1) else {
            return Err(AdapterError::Invalid(format!(
                "get-object {key}: offset {offset} is past any object"
            )));
        };
        let range = format!("bytes={offset}-{last}");
        let mut action = signed.bucket.get_object(signed.credentials.as_ref(), &key);
        action.headers_mut().insert("range", range.clone());
        let outgoing = Outgoing {
            method: http::Method::GET,
            url: action.sign(SIGNED_FOR),
            headers: vec![("range", range)],
            body: Bytes::new(),
        };
        // A store that ignores the range answers the whole object: read at
        // most what a chunk from the start holds (within MAX_WHOLE_READ),
        // and refuse past that.
        let limit = (last + 1).min(MAX_WHOLE_READ) as usize;
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

    /// Put an object, only as `expected` when given (the store checks it
    /// as it takes the write; a refusal is `conflict`, nothing written).
    pub async fn put_object(
        &self,
        endpoint: String,
        bucket: String,
        key: String,
        body: Vec<u8>,
        content_type: String,
        expected: Option<Expected>,
    ) -> Result<ObjectInfo, AdapterError> {
        let condition = match &expected {
            None => None,
            Some(Expected::Absent) => Some(("if-none-match", "*".to_string())),
            Some(Expected::Etag(tag)) => Some(("if-match", quoted_etag(tag)?)),
        };
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
        let size = body.len() as u64;
        // Counted as sent, whether or not the store keeps it.
        if !self.put.take(body.len()) {
            let target = crate::kept::render(&format!("put s3 {endpoint} {bucket}/{key}"), 512);
            let reason = format!(
                "more than {} MiB put in one call",
                MOST_PUT_BYTES_PER_CALL >> 20
            );
            self.log.deny(S3_ID, target.clone(), reason.clone());
            return Err(AdapterError::Denied(format!("{target}: {reason}")));
        }
        let action = signed.bucket.put_object(signed.credentials.as_ref(), &key);
        let outgoing = Outgoing {
            method: http::Method::PUT,
            url: action.sign(SIGNED_FOR),
            headers: [
                ("content-type", content_type.clone()),
                ("content-length", size.to_string()),
            ]
            .into_iter()
            .chain(condition)
            .collect(),
            body: Bytes::from(body),
        };
        let (status, headers, answer) = self.send(signed, outgoing, ERROR_BODY).await?;
        if status == http::StatusCode::PRECONDITION_FAILED && expected.is_some() {
            let found = match expected {
                Some(Expected::Absent) => "an object is there",
                _ => "the object there is not the one read",
            };
            return Err(AdapterError::Conflict(crate::kept::render(
                &format!(
                    "s3 put {bucket}/{key}: {found} (another writer changed it); \
                     nothing was written: read it again"
                ),
                1024,
            )));
        }
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
        S3Gate::put_object(self, endpoint, bucket, key, body, content_type, None).await
    }

    async fn put_object_if(
        &mut self,
        endpoint: String,
        bucket: String,
        key: String,
        body: Vec<u8>,
        content_type: String,
        expected: Expected,
    ) -> Result<ObjectInfo, AdapterError> {
        S3Gate::put_object(
            self,
            endpoint,
            bucket,
            key,
            body,
            content_type,
            Some(expected),
        )
        .await
    }
}
