//! Who is calling the API: bearer tokens per role, read from their secrets
//! when the service starts and kept only as SHA-256 hashes, compared in
//! constant time against every configured one; a rate limit per caller (a
//! role, or everyone not yet authenticated, together); and what a caller
//! may see and do.

use super::super::App;
use super::refusal::{Refusal, refusal};
use crate::config::roles::{Access, Scope};
use crate::follow_up::FollowUp;
use crate::follow_up::notices::{Roles, escalation_chain};
use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;
use subtle::ConstantTimeEq;

/// The shortest token accepted: one that can be guessed is refused at start.
pub const MIN_TOKEN_CHARS: usize = 24;

/// A caller the API knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: String,
    pub scope: Scope,
}

/// The configured tokens, as hashes.
#[derive(Default)]
pub struct Tokens {
    hashes: Vec<([u8; 32], Principal)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.hashes.len())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Every role's tokens, read now; a token that cannot be read, is too
    /// short, or is given to two roles stops the service from starting.
    pub fn read(access: &BTreeMap<String, Access>) -> Result<Tokens, String> {
        let mut hashes: Vec<([u8; 32], Principal)> = Vec::new();
        for (role, a) in access {
            for (n, source) in a.tokens.iter().enumerate() {
                let token = source
                    .read()
                    .map_err(|why| format!("roles.{role}.tokens[{n}]: {why}"))?;
                if token.chars().count() < MIN_TOKEN_CHARS || token.contains(char::is_whitespace) {
                    return Err(format!(
                        "roles.{role}.tokens[{n}]: a token is at least {MIN_TOKEN_CHARS} \
                         characters with no spaces (for example: openssl rand -hex 32)"
                    ));
                }
                let hash = digest(&token);
                if let Some((_, other)) = hashes.iter().find(|(h, _)| *h == hash) {
                    return Err(format!(
                        "roles.{role}.tokens[{n}] is also a token of {}: each role needs its own",
                        other.role
                    ));
                }
                hashes.push((
                    hash,
                    Principal {
                        role: role.clone(),
                        scope: a.scope,
                    },
                ));
            }
        }
        Ok(Tokens { hashes })
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The caller a presented token names. Every configured hash is
    /// compared, in constant time, whichever matches.
    pub fn identify(&self, presented: &str) -> Option<&Principal> {
        let hash = digest(presented);
        let mut found = None;
        for (h, principal) in &self.hashes {
            if bool::from(h.ct_eq(&hash)) {
                found = Some(principal);
            }
        }
        found
    }
}

/// Requests per caller: a bucket of `burst` refilled at `per_second`.
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: Mutex<BTreeMap<String, (f64, Instant)>>,
}

impl RateLimit {
    pub fn new(per_second: f64, burst: f64) -> RateLimit {
        RateLimit {
            per_second,
            burst,
            buckets: Mutex::default(),
        }
    }

    /// Whether `caller` may make a request now; `None` when it may, or
    /// the seconds until it may.
    pub fn take(&self, caller: &str) -> Option<u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // The callers are the configured roles and one bucket for everyone
        // else: the map cannot grow past them.
        let (tokens, at) = buckets
            .entry(caller.to_string())
            .or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            None
        } else {
            Some(((1.0 - *tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// What a request's `Authorization` headers present.
#[derive(Debug)]
enum Presented<'a> {
    /// One header, of the bearer scheme: its token.
    Bearer(&'a str),
    /// No header, or one of another scheme or not text.
    Nothing,
    /// More than one header: which credential is meant cannot be told, so
    /// none is taken (a proxy may have added one).
    Several,
}

/// The bearer token of a request's one `Authorization` header. The scheme
/// is matched without regard to case (RFC 9110 §11.1).
fn presented(headers: &HeaderMap) -> Presented<'_> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(first), None) = (all.next(), all.next()) else {
        return if headers.contains_key(header::AUTHORIZATION) {
            Presented::Several
        } else {
            Presented::Nothing
        };
    };
    let Some((scheme, token)) = first.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Presented::Nothing;
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        Presented::Bearer(token)
    } else {
        Presented::Nothing
    }
}

/// The caller, from its bearer token, within its rate.
pub(super) fn caller(app: &App, headers: &HeaderMap) -> Result<Principal, Refusal> {
    let presented = presented(headers);
    let token = match presented {
        Presented::Bearer(token) => Some(token),
        Presented::Nothing | Presented::Several => None,
    };
    identify(app, token).map_err(|r| match presented {
        Presented::Nothing if r.status == StatusCode::UNAUTHORIZED => refusal(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send Authorization: Bearer TOKEN (a role's token from [roles.NAME] tokens)",
        ),
        Presented::Several if r.status == StatusCode::UNAUTHORIZED => refusal(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send one Authorization header: with several, which is meant cannot be told",
        ),
        _ => r,
    })
}

/// The role a presented token names, within its rate (the API's bearer
/// token, the console's login form).
pub(in crate::serve) fn identify(app: &App, presented: Option<&str>) -> Result<Principal, Refusal> {
    let limited = |caller: &str| {
        app.api.limit.take(caller).map(|secs| Refusal {
            retry_after: Some(secs),
            ..refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("too many requests; try again in {secs} s"),
            )
        })
    };
    let found = presented
        .and_then(|t| app.api.tokens.identify(t.trim()))
        .cloned();
    match found {
        Some(p) => match limited(&p.role) {
            Some(r) => Err(r),
            None => Ok(p),
        },
        None => {
            // Everyone not yet known shares one bucket: guessing is slow.
            if let Some(r) = limited("") {
                return Err(r);
            }
            Err(refusal(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the token is not one of any role",
            ))
        }
    }
}

/// Whether `role` may see and act on packets routed to `route_to`: it is
/// that role, or on its escalation chain.
pub(in crate::serve) fn owns(roles: &Roles, role: &str, route_to: &str) -> bool {
    route_to == role
        || escalation_chain(roles, route_to)
            .iter()
            .any(|(name, _)| *name == role)
}

pub(in crate::serve) fn may_see(app: &App, who: &Principal, f: &FollowUp) -> Result<(), Refusal> {
    if who.scope == Scope::Reviewer || owns(&app.api.roles, &who.role, &f.packet.route_to) {
        Ok(())
    } else {
        Err(refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "follow-up {} is routed to {}, not to {} or the roles it escalates to",
                f.id, f.packet.route_to, who.role
            ),
        ))
    }
}

pub(in crate::serve) fn may_act(who: &Principal) -> Result<(), Refusal> {
    match who.scope {
        Scope::Role => Ok(()),
        Scope::Reviewer => Err(refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{} reviews: it reads and does not act", who.role),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;

    fn access(dir: &std::path::Path, token: &str, scope: Scope) -> Access {
        let path = dir.join(format!("{}.token", token.len()));
        std::fs::write(&path, format!("{token}\n")).unwrap();
        Access {
            tokens: vec![SecretSource::File(path)],
            scope,
        }
    }

    #[test]
    fn tokens_are_known_by_their_hash_and_weak_or_shared_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let token = "a-token-long-enough-for-the-api-1";
        let roles: BTreeMap<_, _> =
            [("coordinator".to_string(), access(d, token, Scope::Role))].into();
        let tokens = Tokens::read(&roles).unwrap();
        assert_eq!(
            tokens
                .identify("a-token-long-enough-for-the-api-1")
                .map(|p| p.role.as_str()),
            Some("coordinator")
        );
        assert_eq!(tokens.identify("a-token-long-enough-for-the-api-2"), None);
        assert!(!format!("{tokens:?}").contains("a-token"), "never shown");

        let weak: BTreeMap<_, _> = [("c".to_string(), access(d, "short", Scope::Role))].into();
        assert!(Tokens::read(&weak).unwrap_err().contains("at least 24"));
        let unset = Access {
            tokens: vec![SecretSource::Env("HANDOFF_T_AUTH_NEVER_SET".into())],
            scope: Scope::Role,
        };
        let unset: BTreeMap<_, _> = [("c".to_string(), unset)].into();
        assert!(
            Tokens::read(&unset)
                .unwrap_err()
                .contains("roles.c.tokens[0]")
        );
        let shared: BTreeMap<_, _> = [
            ("a".to_string(), access(d, token, Scope::Role)),
            ("b".to_string(), access(d, token, Scope::Reviewer)),
        ]
        .into();
        assert!(
            Tokens::read(&shared)
                .unwrap_err()
                .contains("each role needs its own")
        );
    }

    #[test]
    fn one_authorization_header_of_the_bearer_scheme_in_any_case_presents_its_token() {
        use axum::http::HeaderValue;
        let with = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(header::AUTHORIZATION, HeaderValue::from_static(v));
            }
            headers
        };
        let seen = |values: &[&'static str]| match presented(&with(values)) {
            Presented::Bearer(t) => format!("token {t}"),
            Presented::Nothing => "nothing".to_string(),
            Presented::Several => "several".to_string(),
        };
        assert_eq!(seen(&["Bearer abc"]), "token abc");
        assert_eq!(seen(&["bearer abc"]), "token abc");
        assert_eq!(seen(&["BEARER abc"]), "token abc");
        assert_eq!(seen(&[]), "nothing");
        assert_eq!(seen(&["Basic YWJj"]), "nothing");
        assert_eq!(seen(&["Bearer"]), "nothing");
        assert_eq!(seen(&["Bearerabc"]), "nothing");
        assert_eq!(seen(&["Bearer abc", "Bearer def"]), "several");
        assert_eq!(seen(&["Bearer abc", "Basic YWJj"]), "several");
    }

    #[test]
    fn a_caller_past_its_burst_waits() {
        let limit = RateLimit::new(1.0, 3.0);
        assert_eq!((0..3).filter_map(|_| limit.take("a")).count(), 0);
        assert_eq!(limit.take("a"), Some(1));
        assert_eq!(limit.take("b"), None, "each caller its own bucket");
    }
}
