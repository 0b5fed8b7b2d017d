//! Who is looking at the console: a person logs in with their role's API
//! token once and gets a session cookie (`HttpOnly`, `SameSite=Strict`,
//! `Secure` behind an `https://` public URL); every form carries the
//! session's CSRF token, and a form posted from another site is refused
//! even before it is checked. Sessions live in memory: a restart logs
//! everyone out, which costs a token paste and keeps no secret on disk.

use super::super::App;
use super::super::api::auth::{Principal, identify};
use super::super::api::refusal::{Refusal, refusal};
use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "handoff_session";
/// How long a login lasts.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions one role keeps at once: a role's next login ends its
/// own oldest session, so a flood of logins with one token can only push
/// out that token's sessions, never lock anyone else out.
const MAX_SESSIONS_PER_ROLE: usize = 256;
/// The most sessions kept at once: past it (expired ones gone first) a
/// login ends the oldest session of whichever role holds the most.
const MAX_SESSIONS: usize = 4096;

/// A logged-in person: their role, and the token their forms carry.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub who: Principal,
    pub csrf: String,
}

struct Session {
    visitor: Visitor,
    expires: Instant,
}

/// The sessions, by the SHA-256 of their cookie value.
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
    /// `Secure` on the cookie (the public URL is `https://`).
    pub secure: bool,
}

fn random_hex() -> Result<String, Refusal> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a console session");
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "failed",
            "a session could not be made; try again",
        )
    })?;
    Ok(hex::encode(bytes))
}

fn hash(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl Sessions {
    pub fn new(secure: bool) -> Sessions {
        Sessions {
            by_hash: Mutex::default(),
            secure,
        }
    }

    /// Start a session for `who`; the cookie value to set.
    fn start(&self, who: Principal) -> Result<String, Refusal> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        make_room(&mut map, &who.role, now);
        map.insert(
            hash(&id),
            Session {
                visitor: Visitor { who, csrf },
                expires: now + LIFETIME,
            },
        );
        Ok(id)
    }

    #[cfg(test)]
    fn count(&self) -> usize {
        self.by_hash.lock().unwrap().len()
    }

    fn find(&self, id: &str) -> Option<Visitor> {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        let key = hash(id);
        match map.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.visitor.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    fn end(&self, id: &str) {
        self.by_hash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hash(id));
    }

    /// The `Set-Cookie` value that keeps `id`.
    fn cookie(&self, id: &str) -> String {
        format!(
            "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
            LIFETIME.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that forgets the session.
    pub fn cleared(&self) -> String {
        format!(
            "{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

/// Make room for one more session of `role`: expired sessions go when a
/// bound is reached, then the oldest of `role` past its own bound, then
/// the oldest of the role holding the most past the overall one.
fn make_room(map: &mut HashMap<[u8; 32], Session>, role: &str, now: Instant) {
    let of_role = |map: &HashMap<[u8; 32], Session>, role: &str| {
        map.values().filter(|s| s.visitor.who.role == role).count()
    };
    if map.len() >= MAX_SESSIONS || of_role(map, role) >= MAX_SESSIONS_PER_ROLE {
        map.retain(|_, s| s.expires > now);
    }
    let crowded = if of_role(map, role) >= MAX_SESSIONS_PER_ROLE {
        Some(role.to_string())
    } else if map.len() >= MAX_SESSIONS {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for s in map.values() {
            *counts.entry(s.visitor.who.role.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(r, _)| r.to_string())
    } else {
        None
    };
    let Some(crowded) = crowded else { return };
    let oldest = map
        .iter()
        .filter(|(_, s)| s.visitor.who.role == crowded)
        .min_by_key(|(_, s)| s.expires)
        .map(|(k, _)| *k);
    if let Some(key) = oldest {
        tracing::info!(role = %crowded, "console login past the session bound: the role's oldest session ended");
        map.remove(&key);
    }
}

/// The session cookie's value in a request, if it has one.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The person behind a request, or `None` when not logged in.
pub fn visitor(app: &App, headers: &HeaderMap) -> Option<Visitor> {
    session_id(headers).and_then(|id| app.console.sessions.find(&id))
}

/// A form posted from a page of another site is refused whatever it
/// carries (browsers say where a request comes from in `Sec-Fetch-Site`
/// and `Origin`).
pub fn same_site(headers: &HeaderMap) -> Result<(), Refusal> {
    let cross = |why: &str| {
        refusal(
            StatusCode::FORBIDDEN,
            "cross-site",
            format!("{why}: the console takes forms from its own pages only"),
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(cross(&format!("the form came from a {site} page")));
    }
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        if origin != "null" && origin_host != host {
            return Err(cross(&format!("the form came from {origin}")));
        }
    }
    Ok(())
}

/// The CSRF token a form carried matches its session's.
pub fn check_csrf(visitor: &Visitor, presented: Option<&str>) -> Result<(), Refusal> {
    let ok = presented
        .map(|p| bool::from(p.as_bytes().ct_eq(visitor.csrf.as_bytes())))
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(refusal(
            StatusCode::FORBIDDEN,
            "bad-csrf",
            "the form's token is not this session's: reload the page and send it again",
        ))
    }
}

/// Log in with a role's token: the cookie to set.
pub fn log_in(app: &App, token: &str) -> Result<String, Refusal> {
    let who = identify(app, Some(token))?;
    tracing::info!(role = %who.role, "console login");
    let id = app.console.sessions.start(who)?;
    Ok(app.console.sessions.cookie(&id))
}

/// End the request's session.
pub fn log_out(app: &App, headers: &HeaderMap) {
    if let Some(id) = session_id(headers) {
        app.console.sessions.end(&id);
    }
}

/// Where to go after logging in: a console page, never another site.
pub fn next_page(asked: Option<&str>) -> String {
    match asked {
        Some(p)
            if p.starts_with("/ui/")
                && !p.contains("//")
                && !p.contains('\\')
                && p.len() <= 512
                && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/ui/follow-ups".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::roles::Scope;

    fn who() -> Principal {
        Principal {
            role: "release-coordinator".into(),
            scope: Scope::Role,
        }
    }

    #[test]
    fn a_session_is_found_by_its_cookie_until_it_ends() {
        let sessions = Sessions::new(false);
        let id = sessions.start(who()).unwrap();
        assert_eq!(id.len(), 64);
        let v = sessions.find(&id).unwrap();
        assert_eq!(v.who, who());
        assert_eq!(v.csrf.len(), 64);
        assert_ne!(v.csrf, id, "the form token is not the cookie");
        let last = if id.ends_with('0') { '1' } else { '0' };
        let another = format!("{}{last}", &id[..63]);
        assert!(sessions.find(&another).is_none(), "one character off");
        let cookie = sessions.cookie(&id);
        for part in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(!cookie.contains("Secure"));
        assert!(Sessions::new(true).cookie(&id).ends_with("; Secure"));
        sessions.end(&id);
        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn a_flood_of_logins_with_one_token_ends_only_that_roles_oldest_sessions() {
        let sessions = Sessions::new(false);
        let other = Principal {
            role: "security-reviewer".into(),
            scope: Scope::Role,
        };
        let theirs = sessions.start(other).unwrap();
        let first = sessions.start(who()).unwrap();
        let second = sessions.start(who()).unwrap();
        for _ in 0..MAX_SESSIONS_PER_ROLE * 3 {
            sessions.start(who()).unwrap();
        }
        assert_eq!(sessions.count(), MAX_SESSIONS_PER_ROLE + 1);
        assert!(
            sessions.find(&theirs).is_some(),
            "another role keeps its session"
        );
        assert!(sessions.find(&first).is_none() && sessions.find(&second).is_none());
        let newest = sessions.start(who()).unwrap();
        assert!(sessions.find(&newest).is_some());
    }

    #[test]
    fn past_the_overall_bound_the_most_crowded_role_gives_way() {
        let sessions = Sessions::new(false);
        let role = |i: usize| Principal {
            role: format!("role-{i}"),
            scope: Scope::Role,
        };
        // Sixteen roles of 255 sessions each, and one of 16: 4,096.
        let mut ids = Vec::new();
        for r in 0..16 {
            for _ in 0..MAX_SESSIONS_PER_ROLE - 1 {
                ids.push((r, sessions.start(role(r)).unwrap()));
            }
        }
        let small: Vec<String> = (0..16).map(|_| sessions.start(role(99)).unwrap()).collect();
        assert_eq!(sessions.count(), MAX_SESSIONS);
        sessions.start(role(99)).unwrap();
        assert_eq!(sessions.count(), MAX_SESSIONS);
        assert!(small.iter().all(|id| sessions.find(id).is_some()));
        let gone = ids
            .iter()
            .filter(|(_, id)| sessions.find(id).is_none())
            .count();
        assert_eq!(gone, 1, "one session of a crowded role made room");
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; handoff_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(session_id(&headers).as_deref(), Some("abc"));
        headers.insert(header::COOKIE, "handoff_sessionx=abc".parse().unwrap());
        assert_eq!(session_id(&headers), None);
    }

    #[test]
    fn forms_from_other_sites_and_without_the_token_are_refused() {
        let v = Visitor {
            who: who(),
            csrf: "t".repeat(64),
        };
        assert!(check_csrf(&v, Some(&"t".repeat(64))).is_ok());
        assert!(check_csrf(&v, Some(&"t".repeat(63))).is_err());
        assert!(check_csrf(&v, None).is_err());

        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_site(&h).is_ok());
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(same_site(&h).unwrap_err().reason, "cross-site");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert_eq!(same_site(&h).unwrap_err().reason, "cross-site");
    }

    #[test]
    fn after_login_only_console_pages() {
        assert_eq!(next_page(Some("/ui/follow-ups/3")), "/ui/follow-ups/3");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/ui//x",
            "/v1/runs",
        ] {
            assert_eq!(next_page(Some(bad)), "/ui/follow-ups", "{bad}");
        }
        assert_eq!(next_page(None), "/ui/follow-ups");
    }
}
