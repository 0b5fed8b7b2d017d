//! Webhook signatures: who may hand handoff an event.
//!
//! Two schemes, chosen per source in `handoff.toml`:
//! - **Standard Webhooks**: `webhook-id`, `webhook-timestamp` (Unix
//!   seconds) and `webhook-signature` (space-separated `v1,<base64>`
//!   entries, so a sender can sign with an old and a new key while rotating),
//!   HMAC-SHA256 over `id.timestamp.body` with the base64 key after `whsec_`.
//!   A timestamp outside the tolerance window is refused, so a captured
//!   request cannot be replayed later; a replay inside the window carries the
//!   same event and is suppressed as a duplicate by intake.
//! - **GitHub**: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 over the
//!   body with the secret's bytes.
//!
//! Every comparison is constant-time (`Mac::verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The most `webhook-signature` entries a request may carry. A sender
/// rotating keys signs with two or three; more would only make each
/// request cost more to refuse.
const MAX_SIGNATURES: usize = 16;

/// How one source signs its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    /// Any of the keys may have signed (rotation).
    StandardWebhooks {
        keys: Vec<Vec<u8>>,
        tolerance_secs: i64,
    },
    GitHub {
        secrets: Vec<Vec<u8>>,
    },
}

/// Why a request is refused. The text is sent back to the caller, so it
/// names what is wrong without revealing anything about the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("header {0} is malformed: {1}")]
    Malformed(&'static str, String),
    #[error("timestamp is {age} seconds away from now; accepted: within {tolerance}")]
    Expired { age: i64, tolerance: i64 },
    #[error("no signature matches")]
    Mismatch,
}

impl SignatureError {
    /// The counter label for `/metrics`.
    pub fn label(&self) -> &'static str {
        match self {
            SignatureError::Missing(_) => "missing",
            SignatureError::Malformed(..) => "malformed",
            SignatureError::Expired { .. } => "expired",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

/// A Standard Webhooks key from its `whsec_<base64>` form.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    BASE64
        .decode(encoded.trim())
        .map_err(|e| format!("not a whsec_<base64> key: {e}"))
        .and_then(|k| {
            if k.len() < 16 {
                Err(format!("the key is {} bytes; use at least 16", k.len()))
            } else {
                Ok(k)
            }
        })
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, SignatureError> {
    headers
        .get(name)
        .ok_or(SignatureError::Missing(name))?
        .to_str()
        .map_err(|_| SignatureError::Malformed(name, "not visible ASCII".into()))
}

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

impl Verifier {
    /// Check a request's signature; `now` is Unix seconds.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), SignatureError> {
        match self {
            Verifier::StandardWebhooks {
                keys,
                tolerance_secs,
            } => {
                let id = header(headers, "webhook-id")?;
                let timestamp = header(headers, "webhook-timestamp")?;
                let signatures = header(headers, "webhook-signature")?;
                let sent: i64 = timestamp.parse().map_err(|_| {
                    SignatureError::Malformed("webhook-timestamp", "not Unix seconds".into())
                })?;
                // Any i64 can be sent: a time that far off is expired, not
                // an overflow.
                let age = now.saturating_sub(sent);
                if age.unsigned_abs() > tolerance_secs.unsigned_abs() {
                    return Err(SignatureError::Expired {
                        age,
                        tolerance: *tolerance_secs,
                    });
                }
                let entries: Vec<&str> = signatures.split(' ').filter(|s| !s.is_empty()).collect();
                if entries.len() > MAX_SIGNATURES {
                    return Err(SignatureError::Malformed(
                        "webhook-signature",
                        format!(
                            "{} entries; at most {MAX_SIGNATURES} are tried",
                            entries.len()
                        ),
                    ));
                }
                let mut candidates = Vec::new();
                for entry in entries {
                    // Other versions (v1a: asymmetric) are skipped, not refused.
                    if let Some(encoded) = entry.strip_prefix("v1,") {
                        let decoded = BASE64.decode(encoded).map_err(|_| {
                            SignatureError::Malformed("webhook-signature", "not base64".into())
                        })?;
                        candidates.push(decoded);
                    }
                }
                if candidates.is_empty() {
                    return Err(SignatureError::Malformed(
                        "webhook-signature",
                        "no v1,<base64> entry".into(),
                    ));
                }
                // The body is hashed once per key, however many entries
                // there are: each is checked against a copy of that state.
                for key in keys {
                    let mut m = mac(key);
                    m.update(id.as_bytes());
                    m.update(b".");
                    m.update(timestamp.as_bytes());
                    m.update(b".");
                    m.update(body);
                    for candidate in &candidates {
                        if m.clone().verify_slice(candidate).is_ok() {
                            return Ok(());
                        }
                    }
                }
                Err(SignatureError::Mismatch)
            }
            Verifier::GitHub { secrets } => {
                let name = "x-hub-signature-256";
                let value = header(headers, name)?;
                let hex_digest = value.strip_prefix("sha256=").ok_or_else(|| {
                    SignatureError::Malformed(name, "expected sha256=<hex>".into())
                })?;
                let digest = hex::decode(hex_digest)
                    .map_err(|_| SignatureError::Malformed(name, "not hex".into()))?;
                for secret in secrets {
                    let mut m = mac(secret);
                    m.update(body);
                    if m.verify_slice(&digest).is_ok() {
                        return Ok(());
                    }
                }
                Err(SignatureError::Mismatch)
            }
        }
    }
}

/// Sign as a Standard Webhooks sender does: the `webhook-signature` value.
pub fn sign_standard(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(key);
    m.update(format!("{id}.{timestamp}.").as_bytes());
    m.update(body);
    format!("v1,{}", BASE64.encode(m.finalize().into_bytes()))
}

/// Sign as GitHub does: the `X-Hub-Signature-256` value.
pub fn sign_github(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const NOW: i64 = 1_795_000_000;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn standard(keys: &[&[u8]]) -> Verifier {
        Verifier::StandardWebhooks {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            tolerance_secs: 300,
        }
    }

    #[test]
    fn the_standard_webhooks_reference_example_verifies() {
        // The example from the Standard Webhooks specification's test suite.
        let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
            ("webhook-timestamp", "1614265330".into()),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into(),
            ),
        ]);
        let v = Verifier::StandardWebhooks {
            keys: vec![key],
            tolerance_secs: 300,
        };
        assert_eq!(v.verify(&h, body, 1614265330), Ok(()));
        assert_eq!(
            v.verify(&h, br#"{"test": 2432232315}"#, 1614265330),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn standard_webhooks_refuses_missing_wrong_expired_and_accepts_rotation() {
        let (old, new) = (
            b"old-key-0123456789".as_slice(),
            b"new-key-0123456789".as_slice(),
        );
        let body = b"{}";
        let signed = |key: &[u8], at: i64| {
            headers(&[
                ("webhook-id", "evt-1".into()),
                ("webhook-timestamp", at.to_string()),
                ("webhook-signature", sign_standard(key, "evt-1", at, body)),
            ])
        };
        let v = standard(&[new]);
        assert_eq!(v.verify(&signed(new, NOW), body, NOW), Ok(()));
        assert_eq!(
            v.verify(&signed(old, NOW), body, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v.verify(&signed(new, NOW - 301), body, NOW),
            Err(SignatureError::Expired {
                age: 301,
                tolerance: 300
            })
        );
        assert!(matches!(
            v.verify(&signed(new, NOW + 301), body, NOW),
            Err(SignatureError::Expired { .. })
        ));
        for far in [i64::MIN, i64::MAX, -1] {
            assert!(
                matches!(
                    v.verify(&signed(new, far), body, NOW),
                    Err(SignatureError::Expired { .. })
                ),
                "{far}"
            );
        }
        assert_eq!(
            v.verify(&headers(&[]), body, NOW),
            Err(SignatureError::Missing("webhook-id"))
        );
        // A sender rotating its key sends both signatures.
        let mut both = signed(new, NOW);
        let two = format!(
            "{} {}",
            sign_standard(old, "evt-1", NOW, body),
            sign_standard(new, "evt-1", NOW, body)
        );
        both.insert("webhook-signature", HeaderValue::from_str(&two).unwrap());
        assert_eq!(standard(&[old]).verify(&both, body, NOW), Ok(()));
        assert_eq!(v.verify(&both, body, NOW), Ok(()));
    }

    #[test]
    fn a_signature_among_many_is_found_and_past_the_limit_none_is_tried() {
        let key = b"the-key-0123456789".as_slice();
        let body = b"{}";
        let with = |entries: Vec<String>| {
            headers(&[
                ("webhook-id", "evt-1".into()),
                ("webhook-timestamp", NOW.to_string()),
                ("webhook-signature", entries.join(" ")),
            ])
        };
        let right = sign_standard(key, "evt-1", NOW, body);
        let wrong = sign_standard(b"another-key-01234567", "evt-1", NOW, body);
        // The right one last, after as many wrong ones as may be sent.
        let mut entries = vec![wrong.clone(); MAX_SIGNATURES - 1];
        entries.push(right.clone());
        let v = standard(&[b"a-third-key-0123456", key]);
        assert_eq!(v.verify(&with(entries.clone()), body, NOW), Ok(()));
        // One more entry and the request is refused before any is tried:
        // each would cost a hash of the body to refuse.
        entries.insert(0, wrong);
        assert_eq!(
            v.verify(&with(entries), body, NOW),
            Err(SignatureError::Malformed(
                "webhook-signature",
                format!(
                    "{} entries; at most {MAX_SIGNATURES} are tried",
                    MAX_SIGNATURES + 1
                )
            ))
        );
    }

    #[test]
    fn github_signatures_cover_the_body() {
        let v = Verifier::GitHub {
            secrets: vec![b"It's a Secret to Everybody".to_vec()],
        };
        // GitHub's documented example.
        let h = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        )]);
        assert_eq!(v.verify(&h, b"Hello, World!", NOW), Ok(()));
        assert_eq!(
            v.verify(&h, b"Hello, World?", NOW),
            Err(SignatureError::Mismatch)
        );
        let bad = headers(&[("x-hub-signature-256", "sha1=00".into())]);
        assert!(matches!(
            v.verify(&bad, b"x", NOW),
            Err(SignatureError::Malformed(..))
        ));
    }

    #[test]
    fn weak_or_malformed_keys_are_refused() {
        assert!(
            standard_key("whsec_c2hvcnQ=")
                .unwrap_err()
                .contains("at least 16")
        );
        assert!(standard_key("whsec_***").is_err());
    }
}
