//! The `mail` interface for one instance: the message built and sent by
//! the host (lettre), so a guest can set only what the interface offers
//! (sender, recipients, subject, a plain-text body and the Message-ID);
//! each is checked against the grant, and a header injection through CR/LF
//! is refused before anything is sent. A mail prepared (`prepare`) waits,
//! connected, for its `hand-over` until the call ends; how the exchange
//! goes is `exchange.rs`.

use super::SMTP;
use super::exchange::{self, Ready, Route, exchange};
use super::grant::{Login, ScopeKind, SmtpScope, Transport, transport_of};
use crate::sandbox::bindings::handoff::adapter::mail::{self, DeliveryFailure, Email, ReadyMail};
use crate::sandbox::bindings::wit::AdapterError;
use crate::sandbox::budget::Budget;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::net::parse_server;
use lettre::Message;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::Resource;

const MAX_BODY: usize = 256 * 1024;
const MAX_RECIPIENTS: usize = 50;

/// What an instance may send, and how, fixed when it is loaded.
#[derive(Default)]
pub struct MailPolicy {
    pub(super) scopes: BTreeSet<SmtpScope>,
    /// Per TLS server (STARTTLS or implicit): the TLS client for its granted
    /// name, trusting the operator's CA (`smtp-ca-file`) or else the public
    /// web roots.
    pub(super) tls: BTreeMap<SocketAddr, TlsParameters>,
    /// Username and password per server with a granted login (the password
    /// read from the operator's secret at load).
    pub(super) credentials: BTreeMap<SocketAddr, (String, String)>,
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
    let pem = crate::files::read_at_most(path, crate::files::CERTIFICATES_BYTES)
        .map_err(|e| format!("smtp-ca-file {at}: cannot read: {e}"))?;
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
    /// CA file read, a TLS client per TLS server, each login's password
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
                    let Some(transport) = Transport::from_scope_value(&scope.value) else {
                        continue;
                    };
                    let Some(name) = transport.tls_name() else {
                        continue;
                    };
                    let mut builder = TlsParameters::builder(name.to_string());
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

/// The most messages one call may send: a grant says who may be written
/// to, not how often, and a notice is one message (to up to
/// 50 addresses).
pub const MOST_MESSAGES_PER_CALL: u32 = 16;

/// The `mail` interface for one instance.
pub struct MailGate {
    policy: Arc<MailPolicy>,
    log: DecisionLog,
    /// Messages the call it is in may still send.
    sent: Budget,
    /// Mails prepared in this call and not yet handed over, by their
    /// resource's number; dropped (and so never sent) when the call ends.
    ready: HashMap<u32, Ready>,
    next_ready: u32,
}

impl MailGate {
    pub fn new(policy: Arc<MailPolicy>, log: DecisionLog) -> Self {
        MailGate {
            policy,
            log,
            sent: Budget::new(MOST_MESSAGES_PER_CALL.into()),
            ready: HashMap::new(),
            next_ready: 0,
        }
    }

    /// A new call: nothing sent yet.
    pub fn begin_call(&mut self) {
        self.sent.refill();
        self.ready.clear();
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
            self.log.deny(SMTP, target.clone(), reason.clone());
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
        if !self.sent.take(1) {
            return Err(deny(format!(
                "more than {MOST_MESSAGES_PER_CALL} messages in one call"
            )));
        }
        self.log
            .allow(SMTP, target, "granted by capabilities.smtp".into());
        Ok(addr)
    }

    /// Send one mail in one go, a mail perhaps taken being `transient`.
    pub async fn send(&self, server: String, email: Email) -> Result<(), AdapterError> {
        let (route, message) = self.prepare_mail(&server, &email)?;
        exchange(&route, &message)
            .await
            .map_err(|failure| match failure {
                DeliveryFailure::NotDelivered(e) => e,
                // The older function: tried again with the same Message-ID.
                DeliveryFailure::Unsure(m) => AdapterError::Transient(m),
            })
    }

    /// A mail taken up to the handover, kept for this call.
    pub async fn prepare(
        &mut self,
        server: String,
        email: Email,
    ) -> Result<Resource<ReadyMail>, AdapterError> {
        let (route, message) = self.prepare_mail(&server, &email)?;
        let ready = exchange::prepare(&route, &message).await?;
        let rep = self.next_ready;
        self.next_ready = self.next_ready.wrapping_add(1);
        self.ready.insert(rep, ready);
        Ok(Resource::new_own(rep))
    }

    /// The mail checked against the grant and built, and how its server is
    /// reached.
    fn prepare_mail(
        &self,
        server: &str,
        email: &Email,
    ) -> Result<(Route<'_>, Message), AdapterError> {
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
        let addr = self.check(server, email)?;
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
        // To an approved IP address; names are never resolved. Over TLS
        // (STARTTLS, or implicit from the first byte), nothing is sent
        // before the session is encrypted and the certificate verified for
        // the granted name.
        let tls = match transport.tls_name() {
            None => None,
            Some(name) => Some(self.policy.tls.get(&addr).ok_or_else(|| {
                // Made at load for every TLS server; fail closed.
                AdapterError::Denied(format!("smtp {addr}: no TLS client for {name}"))
            })?),
        };
        let login = self.policy.credentials.get(&addr);
        // Only ever over TLS (the grant cannot say otherwise; checked
        // again here, failing closed).
        if login.is_some() && transport == Transport::Plain {
            return Err(AdapterError::Denied(format!(
                "smtp {addr}: a login without TLS is never used"
            )));
        }
        let route = Route {
            addr,
            transport,
            tls,
            login,
        };
        Ok((route, message))
    }
}

impl mail::Host for MailGate {
    async fn send(&mut self, server: String, email: Email) -> Result<(), AdapterError> {
        MailGate::send(self, server, email).await
    }

    async fn prepare(
        &mut self,
        server: String,
        email: Email,
    ) -> Result<Resource<ReadyMail>, AdapterError> {
        MailGate::prepare(self, server, email).await
    }
}

impl mail::HostReadyMail for MailGate {
    async fn hand_over(&mut self, mail: Resource<ReadyMail>) -> Result<(), DeliveryFailure> {
        match self.ready.remove(&mail.rep()) {
            Some(ready) => exchange::hand_over(ready).await,
            None => Err(DeliveryFailure::NotDelivered(AdapterError::Invalid(
                "mail: this mail was handed over already, or prepared in an earlier call (a \
                 prepared mail lasts as long as its call)"
                    .into(),
            ))),
        }
    }

    async fn drop(&mut self, mail: Resource<ReadyMail>) -> wasmtime::Result<()> {
        // Dropped before the handover: the server discards the envelope.
        self.ready.remove(&mail.rep());
        Ok(())
    }
}
