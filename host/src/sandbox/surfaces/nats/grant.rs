//! The NATS grant: subject patterns and key-value buckets, per server
//! (`IP:port`, never resolved). Subjects under `$` (the server's own API)
//! and `_INBOX` can never be granted, so a guest cannot reach JetStream's
//! management API through a publish.

use crate::sandbox::net::parse_server;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

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

pub(super) fn valid_key(key: &str) -> bool {
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

pub(super) fn concrete_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">")
        && !subject.chars().any(|c| c.is_whitespace() || c.is_control())
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
