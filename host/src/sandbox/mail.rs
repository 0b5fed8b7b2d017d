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
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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
        }
    }
}

/// Parse one `[[capabilities.smtp]]` entry into its scopes.
pub fn parse_grant(
    server: &str,
    senders: &[String],
    recipient_domains: &[String],
) -> Result<Vec<SmtpScope>, String> {
    let server = parse_server(server)?;
    if senders.is_empty() || recipient_domains.is_empty() {
        return Err(format!(
            "server {server}: list at least one sender and one recipient domain"
        ));
    }
    let mut out = Vec::new();
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
        if domain.is_empty()
            || domain.starts_with('.')
            || domain.ends_with('.')
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
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

/// The `mail` interface for one instance.
pub struct MailGate {
    scopes: Arc<BTreeSet<SmtpScope>>,
    log: DecisionLog,
}

impl MailGate {
    pub fn new(scopes: Arc<BTreeSet<SmtpScope>>, log: DecisionLog) -> Self {
        MailGate { scopes, log }
    }

    fn granted(&self, server: SocketAddr, kind: ScopeKind, value: &str) -> bool {
        self.scopes.contains(&SmtpScope {
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
        if !self.scopes.iter().any(|s| s.server == addr) {
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
        // Plain SMTP to an approved IP address; names are never resolved.
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
                .port(addr.port())
                .timeout(Some(SMTP_TIMEOUT))
                .build();
        transport.send(message).await.map(|_| ()).map_err(|e| {
            let m = format!("smtp {addr}: {e}");
            if e.is_permanent() {
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
        let ok = parse_grant(
            "127.0.0.1:25",
            &["Handoff@Example.Internal".into()],
            &["example.internal".into()],
        )
        .unwrap();
        assert_eq!(ok[0].value, "handoff@example.internal");
        assert!(parse_grant("127.0.0.1:25", &["not an address".into()], &["a.b".into()]).is_err());
        assert!(parse_grant("127.0.0.1:25", &["a@b.c".into()], &["*.b.c".into()]).is_err());
        assert!(parse_grant("127.0.0.1:25", &["a@b.c".into()], &["@b.c".into()]).is_err());
        assert!(parse_grant("127.0.0.1:25", &[], &["b.c".into()]).is_err());
        assert!(parse_grant("mail.example:25", &["a@b.c".into()], &["b.c".into()]).is_err());
    }
}
