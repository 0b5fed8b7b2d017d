//! The S3 grant: per endpoint (an HTTP(S) origin) and bucket, a key prefix,
//! a mode (read-only or read-write), and the names of the operator secrets
//! that hold the access key and its secret (the host signs with them; the
//! adapter never sees them).

use crate::sandbox::surfaces::files::FileMode;
use crate::sandbox::surfaces::http::Origin;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The operator secrets a grant signs with, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CredentialSecrets {
    pub access_key: String,
    pub secret_key: String,
}

/// One bucket prefix on one endpoint an adapter may use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct S3Scope {
    pub endpoint: Origin,
    pub bucket: String,
    /// Keys must start with this: empty (the whole bucket) or ending in `/`.
    pub prefix: String,
    pub mode: FileMode,
    pub region: String,
    /// None: requests are sent unsigned.
    pub credentials: Option<CredentialSecrets>,
}

impl S3Scope {
    /// What identifies the scope (everything but what it allows there).
    pub fn place(&self) -> (&Origin, &str, &str) {
        (&self.endpoint, &self.bucket, &self.prefix)
    }

    /// Whether `key` lies under this scope's prefix.
    pub fn holds(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }
}

impl fmt::Display for S3Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s3 {} {}/{}* {}",
            self.endpoint, self.bucket, self.prefix, self.mode
        )?;
        if self.region != DEFAULT_REGION {
            write!(f, " region {}", self.region)?;
        }
        match &self.credentials {
            Some(c) => write!(
                f,
                "  + host signs with secrets {} / {}",
                c.access_key, c.secret_key
            ),
            None => f.write_str("  (unsigned)"),
        }
    }
}

/// The region requests are signed for when the grant names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A bucket name as S3 allows it: 3 to 63 lower-case letters, digits, `-`
/// and `.`, starting and ending with a letter or digit.
pub fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Why a key (or a prefix, with `prefix` set) cannot be used: one that a
/// server or a proxy could read as another path (`.` or `..` segments,
/// empty segments, a leading `/`, a backslash), control characters, or
/// longer than S3 allows (1024 bytes).
pub fn key_problem(key: &str, prefix: bool) -> Option<String> {
    if key.len() > 1024 {
        return Some(format!(
            "{} bytes long; S3 keys are at most 1024",
            key.len()
        ));
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return Some("holds a control character or a backslash".into());
    }
    if key.starts_with('/') {
        return Some("starts with '/'".into());
    }
    let body = if prefix {
        if key.is_empty() {
            return None;
        }
        match key.strip_suffix('/') {
            Some(body) => body,
            None => return Some("a prefix is empty or ends with '/'".into()),
        }
    } else {
        if key.is_empty() {
            return Some("is empty".into());
        }
        key
    };
    if body
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Some("has an empty, '.' or '..' segment".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_read_as_another_path_are_refused() {
        for bad in [
            "releases/../secrets/key",
            "releases/./x",
            "releases//x",
            "/releases/x",
            "releases\\..\\x",
            "releases/x\n",
            "",
        ] {
            assert!(key_problem(bad, false).is_some(), "{bad:?} was accepted");
        }
        assert!(key_problem("releases/rel-42/evidence.tar", false).is_none());
        assert!(key_problem(&"a".repeat(1025), false).is_some());
        assert!(key_problem("releases/", true).is_none());
        assert!(key_problem("", true).is_none());
        assert!(key_problem("releases", true).is_some());
        assert!(key_problem("a/../", true).is_some());
    }

    #[test]
    fn bucket_names_are_what_s3_allows() {
        assert!(valid_bucket("evidence"));
        assert!(valid_bucket("release-evidence.2026"));
        for bad in [
            "ev",
            "Evidence",
            "-evidence",
            "evidence-",
            "evi_dence",
            "evi/dence",
        ] {
            assert!(!valid_bucket(bad), "{bad} was accepted");
        }
    }
}
