//! The `jetstream` interface for one instance: every call checked against
//! its scopes first, then made by the host on connections it holds (one
//! per server, shared by every adapter of the process).

mod kv;

use super::NATS;
use super::grant::{NatsScope, ScopeKind, concrete_subject, subject_matches, valid_key};
use crate::sandbox::bindings::handoff::adapter::jetstream::{self, KvEntry, PublishAck};
use crate::sandbox::bindings::wit::AdapterError;
use crate::sandbox::budget::Budget;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::net::parse_server;
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting or one JetStream request may take. Below the default
/// call limit, so an unreachable server is a `transient` error (retried by
/// the pipeline) rather than a stopped call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// `recent-msg-ids` answers at most this many ids...
const MAX_RECENT: u32 = 1_000;
/// ...looking back at most this many stream sequences.
const LOOKBACK: u64 = 10_000;
/// Largest payload a guest may publish.
const MAX_PAYLOAD: usize = 1 << 20;

/// Connections, one per server, shared by every adapter of a sandbox.
#[derive(Default)]
pub struct NatsPool {
    clients: tokio::sync::Mutex<HashMap<SocketAddr, async_nats::Client>>,
}

impl NatsPool {
    async fn context(&self, server: SocketAddr) -> Result<async_nats::jetstream::Context, String> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&server) {
            if client.connection_state() == async_nats::connection::State::Connected {
                return Ok(context(client.clone()));
            }
            // Reconnecting in the background: answer now rather than
            // queueing the request behind a connection that may not return.
            return Err(format!(
                "not connected to nats {server} (the server went away; reconnecting)"
            ));
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(REQUEST_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            // Only the approved address: never servers the cluster advertises.
            .ignore_discovered_servers()
            .connect(format!("nats://{server}"))
            .await
            .map_err(|e| format!("cannot connect to nats {server}: {e}"))?;
        clients.insert(server, client.clone());
        Ok(context(client))
    }
}

fn context(client: async_nats::Client) -> async_nats::jetstream::Context {
    let mut ctx = async_nats::jetstream::new(client);
    ctx.set_timeout(REQUEST_TIMEOUT);
    ctx
}

/// The most messages one call may publish and entries it may delete, all
/// together: a grant says where an adapter may write, not how often, and a
/// step publishes one message or clears one entry.
pub const MOST_WRITES_PER_CALL: u32 = 16;

/// The uses of the interface that write.
const WRITES: [&str; 2] = ["publish", "kv-delete"];

/// The `jetstream` interface for one instance: its effective scopes and the
/// shared connections.
pub struct NatsGate {
    scopes: Arc<BTreeSet<NatsScope>>,
    pool: Arc<NatsPool>,
    log: DecisionLog,
    /// Writes the call it is in may still make.
    writes: Budget,
}

impl NatsGate {
    pub fn new(scopes: Arc<BTreeSet<NatsScope>>, pool: Arc<NatsPool>, log: DecisionLog) -> Self {
        NatsGate {
            scopes,
            pool,
            log,
            writes: Budget::new(MOST_WRITES_PER_CALL.into()),
        }
    }

    /// A new call: nothing written yet.
    pub fn begin_call(&mut self) {
        self.writes.refill();
    }

    /// Check one use against the grant; a denial is logged and returned.
    fn check(
        &self,
        server: &str,
        kind: ScopeKind,
        name: &str,
        what: &str,
    ) -> Result<SocketAddr, AdapterError> {
        let target = format!("{what} nats {server} {name}");
        let deny = |reason: String| {
            self.log.deny(NATS, target.clone(), reason.clone());
            AdapterError::Denied(format!("{target}: {reason}"))
        };
        let addr = parse_server(server).map_err(deny)?;
        let granted = self.scopes.iter().any(|s| {
            s.server == addr
                && s.kind == kind
                && match kind {
                    ScopeKind::Subject => subject_matches(&s.name, name),
                    ScopeKind::Bucket => s.name == name,
                }
        });
        if !granted {
            let noun = match kind {
                ScopeKind::Subject => "subject",
                ScopeKind::Bucket => "bucket",
            };
            return Err(deny(format!(
                "{noun} not granted on this server by capabilities.nats"
            )));
        }
        if WRITES.contains(&what) && !self.writes.take(1) {
            return Err(deny(format!(
                "more than {MOST_WRITES_PER_CALL} publishes and deletes in one call"
            )));
        }
        self.log
            .allow(NATS, target, "granted by capabilities.nats".into());
        Ok(addr)
    }

    async fn jetstream(
        &self,
        server: SocketAddr,
    ) -> Result<async_nats::jetstream::Context, AdapterError> {
        self.pool
            .context(server)
            .await
            .map_err(AdapterError::Transient)
    }

    pub async fn publish(
        &self,
        server: String,
        subject: String,
        msg_id: String,
        payload: Vec<u8>,
    ) -> Result<PublishAck, AdapterError> {
        if !concrete_subject(&subject) {
            return Err(AdapterError::Invalid(format!(
                "publish: {subject:?} is not a concrete subject"
            )));
        }
        valid_msg_id("publish", &msg_id)?;
        if payload.len() > MAX_PAYLOAD {
            return Err(AdapterError::Invalid(format!(
                "publish: payload of {} bytes exceeds {MAX_PAYLOAD}",
                payload.len()
            )));
        }
        let addr = self.check(&server, ScopeKind::Subject, &subject, "publish")?;
        let js = self.jetstream(addr).await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        let transient =
            |e: &dyn fmt::Display| AdapterError::Transient(format!("publish to {subject}: {e}"));
        let ack = js
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|e| transient(&e))?
            .await
            .map_err(|e| {
                use async_nats::jetstream::context::PublishErrorKind as K;
                match e.kind() {
                    K::StreamNotFound => AdapterError::NotFound(format!(
                        "no stream on nats {addr} captures subject {subject}"
                    )),
                    _ => transient(&e),
                }
            })?;
        Ok(PublishAck {
            stream_name: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    pub async fn recent_msg_ids(
        &self,
        server: String,
        subject: String,
        limit: u32,
    ) -> Result<Vec<String>, AdapterError> {
        if !concrete_subject(&subject) {
            return Err(AdapterError::Invalid(format!(
                "recent-msg-ids: {subject:?} is not a concrete subject"
            )));
        }
        let addr = self.check(&server, ScopeKind::Subject, &subject, "read")?;
        let js = self.jetstream(addr).await?;
        let limit = limit.min(MAX_RECENT) as usize;
        let transient = |e: &dyn fmt::Display| {
            AdapterError::Transient(format!("read recent messages on {subject}: {e}"))
        };
        let stream_name = match js.stream_by_subject(subject.clone()).await {
            Ok(name) => name,
            Err(e) => {
                use async_nats::jetstream::context::GetStreamByNameErrorKind as K;
                return Err(match e.kind() {
                    K::NotFound => AdapterError::NotFound(format!(
                        "no stream on nats {addr} captures subject {subject}"
                    )),
                    _ => transient(&e),
                });
            }
        };
        let stream = js
            .get_stream_no_info(&stream_name)
            .await
            .map_err(|e| transient(&e))?;
        let last = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message.sequence,
            Err(e) => {
                use async_nats::jetstream::stream::LastRawMessageErrorKind as K;
                return match e.kind() {
                    K::NoMessageFound => Ok(Vec::new()),
                    _ => Err(transient(&e)),
                };
            }
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let config = async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: last.saturating_sub(LOOKBACK).max(1),
            },
            ..Default::default()
        };
        let read = async {
            let consumer = stream
                .create_consumer(config)
                .await
                .map_err(|e| transient(&e))?;
            let mut messages = consumer.messages().await.map_err(|e| transient(&e))?;
            let mut ids = VecDeque::with_capacity(limit);
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| transient(&e))?;
                let sequence = message.info().map_err(|e| transient(&e))?.stream_sequence;
                if let Some(id) = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
                    if ids.len() == limit {
                        ids.pop_front();
                    }
                    ids.push_back(id.to_string());
                }
                if sequence >= last {
                    break;
                }
            }
            Ok::<_, AdapterError>(ids.into_iter().collect())
        };
        tokio::time::timeout(REQUEST_TIMEOUT * 2, read)
            .await
            .unwrap_or_else(|_| Err(transient(&"timed out")))
    }
}

/// A `Nats-Msg-Id` the host sends: not empty, no control characters.
fn valid_msg_id(what: &str, msg_id: &str) -> Result<(), AdapterError> {
    if msg_id.is_empty() || msg_id.chars().any(|c| c.is_control()) {
        return Err(AdapterError::Invalid(format!(
            "{what}: the msg-id must be non-empty, without control characters"
        )));
    }
    Ok(())
}

impl jetstream::Host for NatsGate {
    async fn publish(
        &mut self,
        server: String,
        subject: String,
        msg_id: String,
        payload: Vec<u8>,
    ) -> Result<PublishAck, AdapterError> {
        NatsGate::publish(self, server, subject, msg_id, payload).await
    }

    async fn recent_msg_ids(
        &mut self,
        server: String,
        subject: String,
        limit: u32,
    ) -> Result<Vec<String>, AdapterError> {
        NatsGate::recent_msg_ids(self, server, subject, limit).await
    }

    async fn kv_get(
        &mut self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<Option<KvEntry>, AdapterError> {
        NatsGate::kv_get(self, server, bucket, key).await
    }

    async fn kv_delete(
        &mut self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<(), AdapterError> {
        NatsGate::kv_delete(self, server, bucket, key).await
    }

    async fn kv_delete_keyed(
        &mut self,
        server: String,
        bucket: String,
        key: String,
        msg_id: String,
    ) -> Result<(), AdapterError> {
        NatsGate::kv_delete_keyed(self, server, bucket, key, msg_id).await
    }

    async fn kv_msg_id(
        &mut self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<Option<String>, AdapterError> {
        NatsGate::kv_msg_id(self, server, bucket, key).await
    }
}
