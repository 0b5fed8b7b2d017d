//! Objects in S3-compatible stores through the host (`[[capabilities.s3]]`).
//!
//! The host holds the credentials and signs every request; it checks the
//! endpoint, the bucket, the key (under a granted prefix) and, for a write,
//! that the grant is read-write. A refusal comes back as
//! [`AdapterError::Denied`], as is a put past the 64 MiB one call may put
//! in all. Only available inside a component: natively every call answers
//! `unsupported`, so unit tests exercise the rest of an adapter's logic and
//! the real store is reached in integration tests.

use crate::AdapterError;

pub use crate::bindings::s3::{Expected, ObjectChunk, ObjectInfo};

/// The most one [`get_object`] returns (the host's cap).
pub const MAX_CHUNK: u32 = 4 * 1024 * 1024;

/// An object's metadata, if it exists.
pub fn head_object(
    endpoint: &str,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectInfo>, AdapterError> {
    backend::head_object(endpoint, bucket, key)
}

/// At most `max_bytes` of an object from `offset`, if it exists.
pub fn get_object(
    endpoint: &str,
    bucket: &str,
    key: &str,
    offset: u64,
    max_bytes: u32,
) -> Result<Option<ObjectChunk>, AdapterError> {
    backend::get_object(endpoint, bucket, key, offset, max_bytes)
}

/// Write an object whole (where the grant is read-write).
pub fn put_object(
    endpoint: &str,
    bucket: &str,
    key: &str,
    body: &[u8],
    content_type: &str,
) -> Result<ObjectInfo, AdapterError> {
    backend::put_object(endpoint, bucket, key, body, content_type)
}

/// Write an object whole only if it is as `expected` when the store takes
/// the write: [`Expected::Absent`] to make it, [`Expected::Etag`] with the
/// entity tag a read returned to replace what was read. When another
/// writer (another run, another process) got there first, nothing is
/// written and the error is [`AdapterError::Conflict`]: read again, decide
/// again. What a read-change-write of a shared object needs.
pub fn put_object_if(
    endpoint: &str,
    bucket: &str,
    key: &str,
    body: &[u8],
    content_type: &str,
    expected: &Expected,
) -> Result<ObjectInfo, AdapterError> {
    backend::put_object_if(endpoint, bucket, key, body, content_type, expected)
}

/// Read a whole object in turns of at most [`MAX_CHUNK`] bytes, handing
/// each to `each`: its size and entity tag, or none when there is no such
/// object. An object replaced while it is read (its entity tag moves) is a
/// `conflict`: what was handed over is not one object.
pub fn read_each(
    endpoint: &str,
    bucket: &str,
    key: &str,
    mut each: impl FnMut(&[u8]),
) -> Result<Option<(u64, String)>, AdapterError> {
    let mut offset = 0u64;
    let mut first: Option<(u64, String)> = None;
    loop {
        let Some(chunk) = get_object(endpoint, bucket, key, offset, MAX_CHUNK)? else {
            return match first {
                None => Ok(None),
                Some(_) => Err(AdapterError::Conflict(format!(
                    "{bucket}/{key} was deleted while it was read"
                ))),
            };
        };
        let seen = (chunk.total_size, chunk.etag.clone());
        match &first {
            None => first = Some(seen),
            Some(f) if *f != seen => {
                return Err(AdapterError::Conflict(format!(
                    "{bucket}/{key} was replaced while it was read"
                )));
            }
            Some(_) => {}
        }
        if chunk.bytes.is_empty() && offset < chunk.total_size {
            return Err(AdapterError::Transient(format!(
                "{bucket}/{key}: the store returned nothing at offset {offset} of {}",
                chunk.total_size
            )));
        }
        each(&chunk.bytes);
        offset += chunk.bytes.len() as u64;
        if offset >= chunk.total_size {
            return Ok(first);
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod backend {
    use super::{AdapterError, ObjectChunk, ObjectInfo};
    use crate::bindings::s3;

    pub fn head_object(e: &str, b: &str, k: &str) -> Result<Option<ObjectInfo>, AdapterError> {
        s3::head_object(e, b, k)
    }

    pub fn get_object(
        e: &str,
        b: &str,
        k: &str,
        offset: u64,
        max: u32,
    ) -> Result<Option<ObjectChunk>, AdapterError> {
        s3::get_object(e, b, k, offset, max)
    }

    pub fn put_object(
        e: &str,
        b: &str,
        k: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<ObjectInfo, AdapterError> {
        s3::put_object(e, b, k, body, content_type)
    }

    pub fn put_object_if(
        e: &str,
        b: &str,
        k: &str,
        body: &[u8],
        content_type: &str,
        expected: &s3::Expected,
    ) -> Result<ObjectInfo, AdapterError> {
        s3::put_object_if(e, b, k, body, content_type, expected)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use super::{AdapterError, ObjectChunk, ObjectInfo};

    fn native() -> AdapterError {
        AdapterError::Unsupported("S3 is reached through the host: run inside a component".into())
    }

    pub fn head_object(_: &str, _: &str, _: &str) -> Result<Option<ObjectInfo>, AdapterError> {
        Err(native())
    }

    pub fn get_object(
        _: &str,
        _: &str,
        _: &str,
        _: u64,
        _: u32,
    ) -> Result<Option<ObjectChunk>, AdapterError> {
        Err(native())
    }

    pub fn put_object(
        _: &str,
        _: &str,
        _: &str,
        _: &[u8],
        _: &str,
    ) -> Result<ObjectInfo, AdapterError> {
        Err(native())
    }

    pub fn put_object_if(
        _: &str,
        _: &str,
        _: &str,
        _: &[u8],
        _: &str,
        _: &super::Expected,
    ) -> Result<ObjectInfo, AdapterError> {
        Err(native())
    }
}
