//! NATS JetStream: the `jetstream` interface, scoped by server, subject
//! pattern and key-value bucket.
//!
//! The host holds the connections (one per server, shared by every adapter)
//! and makes every JetStream API call itself; a guest only names a server, a
//! concrete subject or a bucket and key, and each is checked against the
//! effective grant before anything is sent. Subjects under `$` (the server's
//! own API) and `_INBOX` can never be granted, so a guest cannot reach
//! JetStream's management API through a publish.

use super::decision::{DecisionLog, Surface};
use super::linker::handoff::adapter::jetstream::{KvEntry, PublishAck};
use super::linker::wit::AdapterError;
use super::manifest::normalize_socket;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
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

/// What a grant scope names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeKind {
    /// A subject pattern (`*` one token, `>` the rest) to publish to and read.
    Subject,
    /// A key-value bucket to read and delete keys in.
    Bucket,
}

/// One thing on one server an adapter may touch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NatsScope {
    pub server: SocketAddr,
    pub kind: ScopeKind,
    pub name: String,
}

impl fmt::Display for NatsScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ScopeKind::Subject => "subject",
            ScopeKind::Bucket => "bucket",
        };
        write!(f, "nats {} {kind} {}", self.server, self.name)
    }
}

/// Parse one `[[capabilities.nats]]` entry into its scopes.
pub fn parse_grant(
    server: &str,
    subjects: &[String],
    buckets: &[String],
) -> Result<Vec<NatsScope>, String> {
    let server = parse_server(server)?;
    if subjects.is_empty() && buckets.is_empty() {
        return Err(format!(
            "server {server} lists no subjects and no buckets: it grants nothing; remove the entry"
        ));
    }
    let mut out = Vec::new();
    for pattern in subjects {
        check_pattern(pattern).map_err(|p| format!("subjects: {pattern:?}: {p}"))?;
        out.push(NatsScope {
            server,
            kind: ScopeKind::Subject,
            name: pattern.clone(),
        });
    }
    for bucket in buckets {
        if !valid_bucket(bucket) {
            return Err(format!(
                "buckets: {bucket:?}: a bucket name is letters, digits, '-' and '_'"
            ));
        }
        out.push(NatsScope {
            server,
            kind: ScopeKind::Bucket,
            name: bucket.clone(),
        });
    }
    Ok(out)
}

/// `IP:port`; names are not resolved, so what is approved is what is reached.
pub fn parse_server(server: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = server.parse().map_err(|_| {
        format!(
            "server {server:?}: use an IP address and port, e.g. \"127.0.0.1:4222\" \
             (names are not resolved)"
        )
    })?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(format!(
            "server {addr}: a wildcard address or port grants too much"
        ));
    }
    Ok(normalize_socket(addr))
}

fn check_pattern(pattern: &str) -> Result<(), String> {
    let tokens: Vec<&str> = pattern.split('.').collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return Err("empty token (leading, trailing or double '.')".into());
    }
    if tokens
        .iter()
        .any(|t| t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err("subjects cannot contain spaces or control characters".into());
    }
    let first = tokens[0];
    if first == "*" || first == ">" {
        return Err("the first token must be literal: a pattern starting with a wildcard grants every subject".into());
    }
    if first.starts_with('$') || first == "_INBOX" {
        return Err(
            "subjects under '$' and '_INBOX' belong to the server and cannot be granted".into(),
        );
    }
    for (i, t) in tokens.iter().enumerate() {
        if (t.contains('*') && *t != "*") || (t.contains('>') && *t != ">") {
            return Err(format!("token {t:?}: a wildcard must be a whole token"));
        }
        if *t == ">" && i + 1 != tokens.len() {
            return Err("'>' may only be the last token".into());
        }
    }
    Ok(())
}

fn valid_bucket(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c))
}

/// Whether a concrete subject (no wildcards) matches a granted pattern.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject_tokens.next()) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(_)) => {}
            (literal, Some(s)) if literal == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

fn concrete_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">")
        && !subject.chars().any(|c| c.is_whitespace() || c.is_control())
}

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

/// The `jetstream` interface for one instance: its effective scopes and the
/// shared connections.
pub struct NatsGate {
    scopes: Arc<BTreeSet<NatsScope>>,
    pool: Arc<NatsPool>,
    log: DecisionLog,
}

impl NatsGate {
    pub fn new(scopes: Arc<BTreeSet<NatsScope>>, pool: Arc<NatsPool>, log: DecisionLog) -> Self {
        NatsGate { scopes, pool, log }
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
            self.log.deny(Surface::Nats, target.clone(), reason.clone());
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
        self.log
            .allow(Surface::Nats, target, "granted by capabilities.nats".into());
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
        if msg_id.is_empty() || msg_id.chars().any(|c| c.is_control()) {
            return Err(AdapterError::Invalid(
                "publish: the msg-id must be non-empty, without control characters".into(),
            ));
        }
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

    async fn bucket(
        &self,
        server: &str,
        bucket: &str,
        key: &str,
        what: &str,
    ) -> Result<async_nats::jetstream::kv::Store, AdapterError> {
        if !valid_key(key) {
            return Err(AdapterError::Invalid(format!(
                "{what}: key {key:?}: a key is letters, digits and '-/_=.', not starting or ending with '.'"
            )));
        }
        let addr = self.check(server, ScopeKind::Bucket, bucket, what)?;
        let js = self.jetstream(addr).await?;
        js.get_key_value(bucket).await.map_err(|e| {
            use async_nats::jetstream::context::KeyValueErrorKind as K;
            match e.kind() {
                K::GetBucket => {
                    AdapterError::NotFound(format!("bucket {bucket} on nats {addr}: {e}"))
                }
                _ => AdapterError::Transient(format!("bucket {bucket} on nats {addr}: {e}")),
            }
        })
    }

    pub async fn kv_get(
        &self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<Option<KvEntry>, AdapterError> {
        let store = self.bucket(&server, &bucket, &key, "kv-get").await?;
        let entry = store
            .entry(key.clone())
            .await
            .map_err(|e| AdapterError::Transient(format!("kv-get {bucket}/{key}: {e}")))?;
        Ok(entry.map(|e| KvEntry {
            revision: e.revision,
            deleted: e.operation != async_nats::jetstream::kv::Operation::Put,
            value: e.value.to_vec(),
        }))
    }

    pub async fn kv_delete(
        &self,
        server: String,
        bucket: String,
        key: String,
    ) -> Result<(), AdapterError> {
        let store = self.bucket(&server, &bucket, &key, "kv-delete").await?;
        store
            .delete(key.clone())
            .await
            .map_err(|e| AdapterError::Transient(format!("kv-delete {bucket}/{key}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_tokens_only() {
        assert!(subject_matches(
            "handoff.intake.>",
            "handoff.intake.scheduler"
        ));
        assert!(subject_matches("handoff.intake.>", "handoff.intake.a.b"));
        assert!(!subject_matches("handoff.intake.>", "handoff.intake"));
        assert!(subject_matches("handoff.*.ready", "handoff.x.ready"));
        assert!(!subject_matches("handoff.*.ready", "handoff.x.y.ready"));
        assert!(!subject_matches("handoff.intake", "handoff.intake.more"));
        assert!(!subject_matches("handoff.intake", "handoff.intakes"));
    }

    #[test]
    fn server_api_and_bare_wildcards_cannot_be_granted() {
        for bad in [
            ">",
            "*.x",
            "$JS.API.>",
            "_INBOX.>",
            "a.>.b",
            "a.b*",
            "a..b",
            "a b",
        ] {
            assert!(
                parse_grant("127.0.0.1:4222", &[bad.to_string()], &[]).is_err(),
                "{bad} was accepted"
            );
        }
        assert!(parse_grant("nats.example:4222", &["a.>".into()], &[]).is_err());
        assert!(parse_grant("127.0.0.1:4222", &[], &[]).is_err());
        assert!(parse_grant("127.0.0.1:4222", &[], &["review queue".into()]).is_err());
        let scopes = parse_grant("127.0.0.1:4222", &["a.>".into()], &["q".into()]).unwrap();
        assert_eq!(scopes.len(), 2);
    }
}
