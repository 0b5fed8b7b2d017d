//! Outbound mail: the `mail` interface, scoped by SMTP server, sender
//! address and recipient domain.
//!
//! The host builds and sends the message itself (lettre), so a guest can set
//! only what the interface offers: sender, recipients, subject, a plain-text
//! body and the Message-ID. Each is checked against the effective grant, and
//! a header injection through CR/LF is refused before anything is sent.

use super::decision::{DecisionLog, Surface};
use super::jetstream::parse_server;
use super::linker::handoff::adapter::mail::Email;
use super::linker::wit::AdapterError;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Connecting and each SMTP command; below the default call limit so an
/// unreachable server is a `transient` error.
const SMTP_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BODY: usize = 256 * 1024;
const MAX_RECIPIENTS: usize = 50;

/// What a grant scope names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeKind {
    /// An exact sender address.
    Sender,
    /// A domain every recipient address must be in (exactly, not a subdomain).
    RecipientDomain,
    /// How mail reaches the server: [`PLAIN`], or `starttls NAME` (the
    /// session upgraded to TLS before anything is sent, the server's
    /// certificate verified for NAME). One per server, so that asking for
    /// less protection than approved is a change, not a narrowing.
    Transport,
    /// `USER SECRET`: log in as USER with the password the operator binds
    /// to secret SECRET (only over STARTTLS). At most one per server.
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
    fn scope_value(&self) -> String {
        format!("{} {}", self.username, self.password_secret)
    }

    fn from_scope_value(value: &str) -> Option<Login> {
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
}

impl Transport {
    fn scope_value(&self) -> String {
        match self {
            Transport::Plain => PLAIN.into(),
            Transport::StartTls(name) => format!("starttls {name}"),
        }
    }

    fn from_scope_value(value: &str) -> Option<Transport> {
        match value.split_once(' ') {
            None if value == PLAIN => Some(Transport::Plain),
            Some(("starttls", name)) => Some(Transport::StartTls(name.to_string())),
            _ => None,
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
    match (tls.unwrap_or("none"), tls_name) {
        ("none", None) => Ok(Transport::Plain),
        ("none", Some(_)) => Err("tls-name goes with tls = \"starttls\"".into()),
        ("starttls", None) => Err(
            "tls = \"starttls\" needs tls-name, the name the server's certificate is for \
             (the server itself is an address)"
                .into(),
        ),
        ("starttls", Some(name)) => {
            let name = name.to_ascii_lowercase();
            if !is_domain(&name) {
                return Err(format!("tls-name {name:?} is not a DNS name"));
            }
            Ok(Transport::StartTls(name))
        }
        (other, _) => Err(format!(
            "tls {other:?}: \"none\" (plain text) or \"starttls\""
        )),
    }
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
            "login needs tls = \"starttls\": a password is never sent in plain text".into(),
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

/// Whether the server's certificate did not verify: rustls says so from
/// inside the I/O error that ended the handshake.
fn refused_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(err) = at {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(err), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                );
            }
        }
        at = err.source();
    }
    false
}

/// How the scopes say `server` is reached.
fn transport_of(scopes: &BTreeSet<SmtpScope>, server: SocketAddr) -> Option<Transport> {
    scopes
        .iter()
        .find(|s| s.server == server && s.kind == ScopeKind::Transport)
        .and_then(|s| Transport::from_scope_value(&s.value))
}

/// Reads stored scopes as [`one_transport_per_server`] completes them.
pub fn deserialize_scopes<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeSet<SmtpScope>, D::Error> {
    let mut scopes = BTreeSet::<SmtpScope>::deserialize(d)?;
    one_transport_per_server(&mut scopes).map_err(serde::de::Error::custom)?;
    Ok(scopes)
}

/// What an instance may send, and how, fixed when it is loaded.
#[derive(Default)]
pub struct MailPolicy {
    scopes: BTreeSet<SmtpScope>,
    /// Per STARTTLS server: the TLS client for its granted name, trusting the
    /// operator's CA (`smtp-ca-file`) or else the public web roots.
    tls: BTreeMap<SocketAddr, TlsParameters>,
    /// Username and password per server with a granted login (the password
    /// read from the operator's secret at load).
    credentials: BTreeMap<SocketAddr, (String, String)>,
}

impl fmt::Debug for MailPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailPolicy")
            .field("scopes", &self.scopes)
            .field("tls", &self.tls.keys().collect::<Vec<_>>())
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What opens a PEM certificate: the parser skips anything else, so a file
/// without one would trust nothing, silently.
const CERTIFICATE_BEGINS: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// The operator's CA file, read and checked.
fn read_ca_file(path: &std::path::Path) -> Result<Certificate, String> {
    let at = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("smtp-ca-file {at}: cannot read: {e}"))?;
    let not_pem = |why: String| format!("smtp-ca-file {at}: not a PEM certificate ({why})");
    if !pem
        .windows(CERTIFICATE_BEGINS.len())
        .any(|w| w == CERTIFICATE_BEGINS)
    {
        return Err(not_pem("no BEGIN CERTIFICATE block".into()));
    }
    Certificate::from_pem(&pem).map_err(|e| not_pem(e.to_string()))
}

impl MailPolicy {
    /// Everything sending needs, made once when the instance is loaded: the
    /// CA file read, a TLS client per STARTTLS server, each login's password
    /// from `secret`. Any of them missing or broken stops the load.
    pub fn load(
        scopes: BTreeSet<SmtpScope>,
        ca_file: Option<&std::path::Path>,
        secret: impl Fn(&str) -> Result<String, String>,
    ) -> Result<MailPolicy, String> {
        let root = ca_file.map(read_ca_file).transpose()?;
        let mut tls = BTreeMap::new();
        let mut credentials = BTreeMap::new();
        for scope in &scopes {
            match scope.kind {
                ScopeKind::Transport => {
                    let Some(Transport::StartTls(name)) = Transport::from_scope_value(&scope.value)
                    else {
                        continue;
                    };
                    let mut builder = TlsParameters::builder(name.clone());
                    if let Some(root) = &root {
                        builder = builder
                            .certificate_store(CertificateStore::None)
                            .add_root_certificate(root.clone());
                    }
                    let params = builder
                        .build_rustls()
                        .map_err(|e| format!("smtp {}: TLS for {name}: {e}", scope.server))?;
                    tls.insert(scope.server, params);
                }
                ScopeKind::Login => {
                    if let Some(login) = Login::from_scope_value(&scope.value) {
                        let password = secret(&login.password_secret)?;
                        credentials.insert(scope.server, (login.username, password));
                    }
                }
                ScopeKind::Sender | ScopeKind::RecipientDomain => {}
            }
        }
        Ok(MailPolicy {
            scopes,
            tls,
            credentials,
        })
    }
}

/// The `mail` interface for one instance.
pub struct MailGate {
    policy: Arc<MailPolicy>,
    log: DecisionLog,
}

impl MailGate {
    pub fn new(policy: Arc<MailPolicy>, log: DecisionLog) -> Self {
        MailGate { policy, log }
    }

    fn granted(&self, server: SocketAddr, kind: ScopeKind, value: &str) -> bool {
        self.policy.scopes.contains(&SmtpScope {
            server,
            kind,
            value: value.to_ascii_lowercase(),
        })
    }

    /// Check everything about the mail against the grant, logging the verdict.
    fn check(&self, server: &str, email: &Email) -> Result<SocketAddr, AdapterError> {
        let target = format!(
            "send smtp {server} from {} to {}",
            email.sender,
            email.recipients.join(",")
        );
        let deny = |reason: String| {
            self.log.deny(Surface::Smtp, target.clone(), reason.clone());
            AdapterError::Denied(format!("{target}: {reason}"))
        };
        let addr = parse_server(server).map_err(&deny)?;
        if !self.policy.scopes.iter().any(|s| s.server == addr) {
            return Err(deny("server not granted by capabilities.smtp".into()));
        }
        if !self.granted(addr, ScopeKind::Sender, &email.sender) {
            return Err(deny(format!(
                "sender {} not granted on this server",
                email.sender
            )));
        }
        for to in &email.recipients {
            let domain = to.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            if !self.granted(addr, ScopeKind::RecipientDomain, domain) {
                return Err(deny(format!(
                    "recipient {to}: domain {domain:?} not granted on this server"
                )));
            }
        }
        self.log
            .allow(Surface::Smtp, target, "granted by capabilities.smtp".into());
        Ok(addr)
    }

    pub async fn send(&self, server: String, email: Email) -> Result<(), AdapterError> {
        let invalid = |m: String| AdapterError::Invalid(format!("mail: {m}"));
        if email.recipients.is_empty() || email.recipients.len() > MAX_RECIPIENTS {
            return Err(invalid(format!(
                "between 1 and {MAX_RECIPIENTS} recipients, not {}",
                email.recipients.len()
            )));
        }
        if email.body.len() > MAX_BODY {
            return Err(invalid(format!("body exceeds {MAX_BODY} bytes")));
        }
        let id = &email.message_id;
        if !id.contains('@')
            || id
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>".contains(c))
        {
            return Err(invalid(format!(
                "message-id {id:?}: use left@right, without angle brackets or spaces"
            )));
        }
        if email.subject.chars().any(|c| c.is_control()) {
            return Err(invalid("the subject contains control characters".into()));
        }
        let addr = self.check(&server, &email)?;
        let Some(transport) = transport_of(&self.policy.scopes, addr) else {
            // The grant always names one; fail closed if it does not.
            return Err(AdapterError::Denied(format!(
                "smtp {addr}: no transport granted"
            )));
        };
        let mailbox = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| invalid(format!("{a:?}: {e}")))
        };
        let mut builder = Message::builder()
            .from(mailbox(&email.sender)?)
            .subject(email.subject.clone())
            .message_id(Some(format!("<{id}>")))
            .header(ContentType::TEXT_PLAIN);
        for to in &email.recipients {
            builder = builder.to(mailbox(to)?);
        }
        let message = builder
            .body(email.body.clone())
            .map_err(|e| invalid(e.to_string()))?;
        // To an approved IP address; names are never resolved. With
        // STARTTLS, nothing is sent before the session is encrypted and the
        // certificate verified for the granted name.
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
                .port(addr.port())
                .timeout(Some(SMTP_TIMEOUT));
        if let Transport::StartTls(name) = &transport {
            let Some(params) = self.policy.tls.get(&addr) else {
                // Made at load for every STARTTLS server; fail closed.
                return Err(AdapterError::Denied(format!(
                    "smtp {addr}: no TLS client for {name}"
                )));
            };
            builder = builder.tls(Tls::Required(params.clone()));
        }
        if let Some((user, password)) = self.policy.credentials.get(&addr) {
            // Only ever over TLS (the grant cannot say otherwise; checked
            // again here, failing closed).
            if transport == Transport::Plain {
                return Err(AdapterError::Denied(format!(
                    "smtp {addr}: a login without TLS is never used"
                )));
            }
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        builder
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| {
                let m = format!("smtp {addr}: {e}");
                if e.is_tls() || refused_certificate(&e) {
                    // A certificate that does not verify will not verify on
                    // the next try either: a person must look.
                    AdapterError::Denied(m)
                } else if e.is_permanent() {
                    AdapterError::Conflict(m)
                } else {
                    AdapterError::Transient(m)
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_need_exact_addresses_and_domains() {
        let plain = &Transport::Plain;
        let ok = parse_grant(
            "127.0.0.1:25",
            plain,
            None,
            &["Handoff@Example.Internal".into()],
            &["example.internal".into()],
        )
        .unwrap();
        assert_eq!(ok[1].value, "handoff@example.internal");
        let bad = |server: &str, senders: &[&str], domains: &[&str]| {
            let s: Vec<String> = senders.iter().map(|x| x.to_string()).collect();
            let d: Vec<String> = domains.iter().map(|x| x.to_string()).collect();
            parse_grant(server, plain, None, &s, &d).is_err()
        };
        assert!(bad("127.0.0.1:25", &["not an address"], &["a.b"]));
        assert!(bad("127.0.0.1:25", &["a@b.c"], &["*.b.c"]));
        assert!(bad("127.0.0.1:25", &["a@b.c"], &["@b.c"]));
        assert!(bad("127.0.0.1:25", &[], &["b.c"]));
        assert!(bad("mail.example:25", &["a@b.c"], &["b.c"]));
    }

    #[test]
    fn starttls_names_the_certificate_and_plain_text_is_the_default() {
        assert_eq!(parse_transport(None, None), Ok(Transport::Plain));
        assert_eq!(parse_transport(Some("none"), None), Ok(Transport::Plain));
        assert_eq!(
            parse_transport(Some("starttls"), Some("SMTP.Example.Internal")),
            Ok(Transport::StartTls("smtp.example.internal".into()))
        );
        for (tls, name, says) in [
            (Some("starttls"), None, "needs tls-name"),
            (Some("none"), Some("smtp.example.internal"), "goes with"),
            (
                Some("starttls"),
                Some("*.example.internal"),
                "not a DNS name",
            ),
            (Some("tls"), None, "\"none\" (plain text) or \"starttls\""),
        ] {
            let err = parse_transport(tls, name).unwrap_err();
            assert!(err.contains(says), "{tls:?} {name:?}: {err}");
        }
    }

    #[test]
    fn a_login_goes_only_over_tls_and_names_its_secret() {
        let tls = Transport::StartTls("mx.b.c".into());
        let login = parse_login(&tls, "handoff@b.c", "smtp_password").unwrap();
        let scopes: BTreeSet<SmtpScope> = parse_grant(
            "127.0.0.1:587",
            &tls,
            Some(&login),
            &["a@b.c".into()],
            &["b.c".into()],
        )
        .unwrap()
        .into_iter()
        .collect();
        let server: SocketAddr = "127.0.0.1:587".parse().unwrap();
        let policy = MailPolicy::load(scopes.clone(), None, |secret| {
            assert_eq!(secret, "smtp_password");
            Ok("hunter2".into())
        })
        .unwrap();
        assert_eq!(
            policy.credentials.get(&server),
            Some(&("handoff@b.c".to_string(), "hunter2".to_string()))
        );
        assert!(policy.tls.contains_key(&server));
        assert!(!format!("{policy:?}").contains("hunter2"), "{policy:?}");
        let shown: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        assert!(
            shown.contains(
                &"smtp 127.0.0.1:587 login as handoff@b.c (password: secret smtp_password)".into()
            ),
            "{shown:?}"
        );
        for (transport, user, secret, says) in [
            (
                &Transport::Plain,
                "handoff@b.c",
                "smtp_password",
                "never sent in plain text",
            ),
            (&tls, "two words", "smtp_password", "one word"),
            (&tls, "handoff@b.c", "not a name!", "the name of a secret"),
        ] {
            let err = parse_login(transport, user, secret).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn an_approval_from_before_transports_were_scoped_reads_as_plain_text() {
        let server: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let stored = serde_json::json!([
            { "server": "127.0.0.1:25", "kind": "sender", "value": "a@b.c" },
            { "server": "127.0.0.1:25", "kind": "recipient-domain", "value": "b.c" },
        ]);
        let text = stored.to_string();
        let mut d = serde_json::Deserializer::from_str(&text);
        let scopes = deserialize_scopes(&mut d).unwrap();
        assert_eq!(transport_of(&scopes, server), Some(Transport::Plain));

        let mut two: BTreeSet<SmtpScope> = parse_grant(
            "127.0.0.1:25",
            &Transport::Plain,
            None,
            &["a@b.c".into()],
            &["b.c".into()],
        )
        .unwrap()
        .into_iter()
        .collect();
        two.extend(
            parse_grant(
                "127.0.0.1:25",
                &Transport::StartTls("mx.b.c".into()),
                None,
                &["a@b.c".into()],
                &["b.c".into()],
            )
            .unwrap(),
        );
        let err = one_transport_per_server(&mut two).unwrap_err();
        assert!(err.contains("one transport per server"), "{err}");
    }
}
