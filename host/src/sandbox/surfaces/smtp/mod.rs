//! The SMTP surface: `[[capabilities.smtp]]` grants, per server (`IP:port`),
//! the transport (plain text, or TLS with the certificate verified for a
//! named `tls-name`: STARTTLS, or implicit TLS from the first byte), an
//! optional login whose password is an operator secret, exact senders and
//! recipient domains. The host builds and sends every mail itself through
//! the `mail` interface ([`gate`]). An instance may trust a private CA for
//! TLS (`smtp-ca-file`). The transport is one scope per server, so dropping
//! TLS widens the grant.

mod exchange;
mod gate;
mod grant;

pub use gate::{MOST_MESSAGES_PER_CALL, MailGate, MailPolicy};
pub use grant::{
    Login, PLAIN, ScopeKind, SmtpScope, SmtpScopes, Transport, one_transport_per_server,
    parse_grant, parse_login, parse_transport,
};

use crate::sandbox::bindings::handoff::adapter::mail;
use crate::sandbox::ceiling::HostCeiling;
use crate::sandbox::decision::DecisionLog;
use crate::sandbox::surface::{
    Change, GateOf, HasGate, LoadContext, Surface, SurfaceId, compare_sets,
};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::WasiHttpView;

/// The SMTP surface.
pub struct Smtp;

pub(crate) const SMTP: SurfaceId = SurfaceId {
    name: "smtp",
    fix: "if the adapter should send it, declare the server, sender and recipient domain \
          under [[capabilities.smtp]], then approve it again",
};

/// One `[[capabilities.smtp]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSmtp {
    server: String,
    tls: Option<String>,
    tls_name: Option<String>,
    login: Option<RawLogin>,
    senders: Vec<String>,
    recipient_domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLogin {
    username: String,
    password_secret: String,
}

/// `smtp-ca-file` of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SmtpBinding {
    /// The CA certificate (PEM) that TLS mail servers of this
    /// instance's grant must chain to, instead of the public web roots.
    pub smtp_ca_file: Option<PathBuf>,
}

impl Surface for Smtp {
    const ID: SurfaceId = SMTP;
    const IMPORTS: &'static [&'static str] = &["handoff:adapter/mail"];
    const UNDECLARED: &'static str = "declare [[capabilities.smtp]] or remove the mail code";
    const BINDING_KEYS: &'static [&'static str] = &["smtp-ca-file"];

    type Entry = RawSmtp;
    type Grant = SmtpScopes;
    type Binding = SmtpBinding;
    type Shared = ();
    type Policy = MailPolicy;
    type Gate = MailGate;

    fn parse(entries: Vec<RawSmtp>) -> Result<SmtpScopes, String> {
        let mut scopes = BTreeSet::new();
        for (i, smtp) in entries.into_iter().enumerate() {
            let at = |p: String| format!("[{i}]: {p}");
            let transport =
                parse_transport(smtp.tls.as_deref(), smtp.tls_name.as_deref()).map_err(at)?;
            let login = smtp
                .login
                .map(|l| parse_login(&transport, &l.username, &l.password_secret))
                .transpose()
                .map_err(at)?;
            let entry = parse_grant(
                &smtp.server,
                &transport,
                login.as_ref(),
                &smtp.senders,
                &smtp.recipient_domains,
            )
            .map_err(at)?;
            scopes.extend(entry);
        }
        one_transport_per_server(&mut scopes).map_err(|p| format!(": {p}"))?;
        Ok(SmtpScopes(scopes))
    }

    fn is_empty(grant: &SmtpScopes) -> bool {
        grant.is_empty()
    }

    fn compare(approved: &SmtpScopes, declared: &SmtpScopes, out: &mut Vec<Change>) {
        compare_sets(&approved.0, &declared.0, out);
    }

    fn intersect(
        declared: &SmtpScopes,
        approved: &SmtpScopes,
        ceiling: &HostCeiling,
    ) -> SmtpScopes {
        // Servers are addresses, checked against the ceiling's denied
        // networks here, once, since nothing is resolved later.
        SmtpScopes(
            declared
                .intersection(approved)
                .filter(|s| ceiling.denies_ip(s.server.ip()).is_none())
                .cloned()
                .collect(),
        )
    }

    fn resolve_paths(binding: &mut SmtpBinding, resolve: &dyn Fn(&Path) -> PathBuf) {
        if let Some(p) = &binding.smtp_ca_file {
            binding.smtp_ca_file = Some(resolve(p));
        }
    }

    fn lines(grant: &SmtpScopes, _: Option<&SmtpBinding>) -> Vec<String> {
        grant
            .iter()
            .map(|s| s.to_string().trim_start_matches("smtp ").to_string())
            .collect()
    }

    fn load(
        grant: &SmtpScopes,
        binding: &SmtpBinding,
        _: &Arc<()>,
        cx: &LoadContext<'_>,
    ) -> Result<MailPolicy, String> {
        MailPolicy::load(grant.0.clone(), binding.smtp_ca_file.as_deref(), |secret| {
            cx.secrets.value(secret)
        })
    }

    fn gate(
        policy: &Arc<MailPolicy>,
        _: &mut WasiCtxBuilder,
        log: &DecisionLog,
    ) -> wasmtime::Result<MailGate> {
        Ok(MailGate::new(policy.clone(), log.clone()))
    }

    fn per_call(grant: &SmtpScopes) -> Option<String> {
        (!grant.is_empty()).then(|| format!("{MOST_MESSAGES_PER_CALL} mails"))
    }

    fn begin_call(gate: &mut MailGate) {
        gate.begin_call();
    }

    fn add_to_linker<T: HasGate<Self> + WasiView + WasiHttpView + Send + 'static>(
        linker: &mut Linker<T>,
    ) -> wasmtime::Result<()> {
        mail::add_to_linker::<T, GateOf<Smtp>>(linker, |state| state.gate())
    }
}
