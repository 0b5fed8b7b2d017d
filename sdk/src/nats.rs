//! NATS JetStream through the host (`[[capabilities.nats]]`).
//!
//! The host holds the connection and checks every call against the granted
//! server, subject patterns and buckets; a refusal comes back as
//! [`AdapterError::Denied`], as is a publish or delete past the 16 one call
//! may make. Servers are named `IP:port`, as declared.
//! Only available inside a component: natively every call answers
//! `unsupported`, so unit tests exercise the rest of an adapter's logic and
//! the real server is reached in integration tests.

use crate::AdapterError;

pub use crate::bindings::jetstream::{KvEntry, PublishAck};

/// Publish with `Nats-Msg-Id` = `msg_id`; a repeat inside the stream's
/// duplicate window is stored once (and acknowledged as `duplicate`).
pub fn publish(
    server: &str,
    subject: &str,
    msg_id: &str,
    payload: &[u8],
) -> Result<PublishAck, AdapterError> {
    backend::publish(server, subject, msg_id, payload)
}

/// The `Nats-Msg-Id`s of the latest messages on exactly `subject`, oldest first.
pub fn recent_msg_ids(
    server: &str,
    subject: &str,
    limit: u32,
) -> Result<Vec<String>, AdapterError> {
    backend::recent_msg_ids(server, subject, limit)
}

/// A key's latest entry (a delete marker included), if the bucket has one.
pub fn kv_get(server: &str, bucket: &str, key: &str) -> Result<Option<KvEntry>, AdapterError> {
    backend::kv_get(server, bucket, key)
}

/// Delete a key, leaving a delete marker.
pub fn kv_delete(server: &str, bucket: &str, key: &str) -> Result<(), AdapterError> {
    backend::kv_delete(server, bucket, key)
}

/// Delete a key, its delete marker carrying `Nats-Msg-Id` = `msg_id` (the
/// step's idempotency key), which [`kv_msg_id`] reads back.
pub fn kv_delete_keyed(
    server: &str,
    bucket: &str,
    key: &str,
    msg_id: &str,
) -> Result<(), AdapterError> {
    backend::kv_delete_keyed(server, bucket, key, msg_id)
}

/// The `Nats-Msg-Id` of a key's latest entry (a delete marker included),
/// if it carries one.
pub fn kv_msg_id(server: &str, bucket: &str, key: &str) -> Result<Option<String>, AdapterError> {
    backend::kv_msg_id(server, bucket, key)
}

#[cfg(target_arch = "wasm32")]
mod backend {
    pub use crate::bindings::jetstream::{
        kv_delete, kv_delete_keyed, kv_get, kv_msg_id, publish, recent_msg_ids,
    };
}

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use super::{AdapterError, KvEntry, PublishAck};

    fn native() -> AdapterError {
        AdapterError::Unsupported("NATS is reached through the host: run inside a component".into())
    }

    pub fn publish(_: &str, _: &str, _: &str, _: &[u8]) -> Result<PublishAck, AdapterError> {
        Err(native())
    }

    pub fn recent_msg_ids(_: &str, _: &str, _: u32) -> Result<Vec<String>, AdapterError> {
        Err(native())
    }

    pub fn kv_get(_: &str, _: &str, _: &str) -> Result<Option<KvEntry>, AdapterError> {
        Err(native())
    }

    pub fn kv_delete(_: &str, _: &str, _: &str) -> Result<(), AdapterError> {
        Err(native())
    }

    pub fn kv_delete_keyed(_: &str, _: &str, _: &str, _: &str) -> Result<(), AdapterError> {
        Err(native())
    }

    pub fn kv_msg_id(_: &str, _: &str, _: &str) -> Result<Option<String>, AdapterError> {
        Err(native())
    }
}
