//! The SMTP grant: per server (`IP:port`, never resolved), its transport
//! (plain text, or TLS for a named certificate: STARTTLS, or implicit TLS
//! from the first byte as on port 465), an optional login, the exact
//! senders and the recipient domains.

use crate::sandbox::net::parse_server;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

/// What a grant scope names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeKind {
    /// An exact sender address.
    Sender,
    /// A domain every recipient address must be in (exactly, not a subdomain).
    RecipientDomain,
    /// How mail reaches the server: [`PLAIN`], `starttls NAME` (the
    /// session upgraded to TLS before anything is sent, the server's
    /// certificate verified for NAME) or `implicit-tls NAME` (TLS from the
    /// connection's first byte, the certificate verified for NAME). One per
    /// server, so that asking for less protection than approved is a
    /// change, not a narrowing.
    Transport,
    /// `USER SECRET`: log in as USER with the password the operator binds
    /// to secret SECRET (only over TLS). At most one per server.
    Login,
}

/// A `login` of a `[[capabilities.smtp]]` entry: who to log in as, and the
/// secret that holds the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password_secret: String,
}

impl Login {
    /// Neither part holds a space (see [`parse_login`]).
    pub(super) fn scope_value(&self) -> String {
        format!("{} {}", self.username, self.password_secret)
    }

    pub(super) fn from_scope_value(value: &str) -> Option<Login> {
        let (username, secret) = value.split_once(' ')?;
        Some(Login {
            username: username.to_string(),
            password_secret: secret.to_string(),
        })
    }
}

/// The transport of a server granted without `tls`: plain text.
pub const PLAIN: &str = "plain";

/// How a granted server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Plain,
    /// STARTTLS, the certificate verified for this name.
    StartTls(String),
    /// TLS from the first byte (SMTPS), the certificate verified for this
    /// name.
    ImplicitTls(String),
}

impl Transport {
    pub(super) fn scope_value(&self) -> String {
        match self {
            Transport::Plain => PLAIN.into(),
            Transport::StartTls(name) => format!("starttls {name}"),
            Transport::ImplicitTls(name) => format!("implicit-tls {name}"),
        }
    }

    pub(super) fn from_scope_value(value: &str) -> Option<Transport> {
        match value.split_once(' ') {
            None if value == PLAIN => Some(Transport::Plain),
            Some(("starttls", name)) => Some(Transport::StartTls(name.to_string())),
            Some(("implicit-tls", name)) => Some(Transport::ImplicitTls(name.to_string())),
            _ => None,
        }
    }

    /// The name the server's certificate must be valid for, over TLS.
    pub(super) fn tls_name(&self) -> Option<&str> {
        match self {
            Transport::Plain => None,
            Transport::StartTls(name) | Transport::ImplicitTls(name) => Some(name),
        }
    }
}

/// One thing on one SMTP server an adapter may use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SmtpScope {
    pub server: SocketAddr,
    pub kind: ScopeKind,
    pub value: String,
}

impl fmt::Display for SmtpScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ScopeKind::Sender => write!(f, "smtp {} from {}", self.server, self.value),
            ScopeKind::RecipientDomain => write!(f, "smtp {} to @{}", self.server, self.value),
            ScopeKind::Transport => write!(f, "smtp {} over {}", self.server, self.value),
            ScopeKind::Login => match Login::from_scope_value(&self.value) {
                Some(l) => write!(
                    f,
                    "smtp {} login as {} (password: secret {})",
                    self.server, l.username, l.password_secret
                ),
                None => write!(f, "smtp {} login {}", self.server, self.value),
            },
        }
    }
}

/// `tls` and `tls-name` of a `[[capabilities.smtp]]` entry.
pub fn parse_transport(tls: Option<&str>, tls_name: Option<&str>) -> Result<Transport, String> {
    let tls = tls.unwrap_or("none");
    let over_tls: fn(String) -> Transport = match tls {
        "none" if tls_name.is_none() => return Ok(Transport::Plain),
        "none" => {
            return Err(
                "tls-name goes with tls = \"starttls\" or \"implicit\" (plain text names no \
                 certificate)"
                    .into(),
            );
        }
        "starttls" => Transport::StartTls,
        "implicit" => Transport::ImplicitTls,
        other => {
            return Err(format!(
                "tls {other:?}: \"none\" (plain text), \"starttls\" (upgraded before \
                 anything is sent, usually port 587) or \"implicit\" (TLS from the first \
                 byte, usually port 465)"
            ));
        }
    };
    let Some(name) = tls_name else {
        return Err(format!(
            "tls = \"{tls}\" needs tls-name, the name the server's certificate is for \
             (the server itself is an address)"
        ));
    };
    let name = name.to_ascii_lowercase();
    if !is_domain(&name) {
        return Err(format!("tls-name {name:?} is not a DNS name"));
    }
    Ok(over_tls(name))
}

fn is_domain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The `login` of a `[[capabilities.smtp]]` entry, for its transport.
pub fn parse_login(
    transport: &Transport,
    username: &str,
    password_secret: &str,
) -> Result<Login, String> {
    if *transport == Transport::Plain {
        return Err(
            "login needs tls = \"starttls\" or \"implicit\": a password is never sent in \
             plain text"
                .into(),
        );
    }
    if username.is_empty()
        || username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!("login username {username:?}: one word, no spaces"));
    }
    let secret_ok = !password_secret.is_empty()
        && password_secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !secret_ok {
        return Err(format!(
            "login password-secret {password_secret:?}: the name of a secret (letters, digits, '_', '-')"
        ));
    }
    Ok(Login {
        username: username.to_string(),
        password_secret: password_secret.to_string(),
    })
}

/// Parse one `[[capabilities.smtp]]` entry into its scopes.
pub fn parse_grant(
    server: &str,
    transport: &Transport,
    login: Option<&Login>,
    senders: &[String],
    recipient_domains: &[String],
) -> Result<Vec<SmtpScope>, String> {
    let server = parse_server(server)?;
    if senders.is_empty() || recipient_domains.is_empty() {
        return Err(format!(
            "server {server}: list at least one sender and one recipient domain"
        ));
    }
    let mut out = vec![SmtpScope {
        server,
        kind: ScopeKind::Transport,
        value: transport.scope_value(),
    }];
    if let Some(login) = login {
        out.push(SmtpScope {
            server,
            kind: ScopeKind::Login,
            value: login.scope_value(),
        });
    }
    for sender in senders {
        let address = sender.to_ascii_lowercase();
        if address.parse::<lettre::Address>().is_err() {
            return Err(format!("senders: {sender:?} is not a mail address"));
        }
        out.push(SmtpScope {
            server,
            kind: ScopeKind::Sender,
            value: address,
        });
    }
    for domain in recipient_domains {
        let domain = domain.to_ascii_lowercase();
        if !is_domain(&domain) {
            return Err(format!(
                "recipient-domains: {domain:?} is not a domain (no '@', no wildcards)"
            ));
        }
        out.push(SmtpScope {
            server,
            kind: ScopeKind::RecipientDomain,
            value: domain,
        });
    }
    Ok(out)
}

/// Every server with one transport, and none with two: scopes from
/// several `[[capabilities.smtp]]` entries, or read back from an approval.
/// An approval made before transports were scoped names none; its servers
/// were reached in plain text, which is what it approved.
pub fn one_transport_per_server(scopes: &mut BTreeSet<SmtpScope>) -> Result<(), String> {
    let servers: BTreeSet<SocketAddr> = scopes.iter().map(|s| s.server).collect();
    for server in servers {
        let transports: Vec<&str> = scopes
            .iter()
            .filter(|s| s.server == server && s.kind == ScopeKind::Transport)
            .map(|s| s.value.as_str())
            .collect();
        match transports[..] {
            [] => {
                scopes.insert(SmtpScope {
                    server,
                    kind: ScopeKind::Transport,
                    value: PLAIN.into(),
                });
            }
            [_] => {}
            _ => {
                return Err(format!(
                    "server {server}: one transport per server, not {}",
                    transports.join(" and ")
                ));
            }
        }
        let logins = scopes
            .iter()
            .filter(|s| s.server == server && s.kind == ScopeKind::Login)
            .count();
        if logins > 1 {
            return Err(format!(
                "server {server}: one login per server, not {logins}"
            ));
        }
    }
    Ok(())
}

/// How the scopes say `server` is reached.
pub(super) fn transport_of(scopes: &BTreeSet<SmtpScope>, server: SocketAddr) -> Option<Transport> {
    scopes
        .iter()
        .find(|s| s.server == server && s.kind == ScopeKind::Transport)
        .and_then(|s| Transport::from_scope_value(&s.value))
}

/// The SMTP grant: its scopes, every server with exactly one transport.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SmtpScopes(pub BTreeSet<SmtpScope>);

impl std::ops::Deref for SmtpScopes {
    type Target = BTreeSet<SmtpScope>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Stored scopes are read as [`one_transport_per_server`] completes them.
impl<'de> Deserialize<'de> for SmtpScopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SmtpScopes, D::Error> {
        let mut scopes = BTreeSet::<SmtpScope>::deserialize(d)?;
        one_transport_per_server(&mut scopes).map_err(serde::de::Error::custom)?;
        Ok(SmtpScopes(scopes))
    }
}

#[cfg(test)]
mod tests;
