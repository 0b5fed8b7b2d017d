//! One mail's SMTP exchange in two parts, so that a failure can say on
//! which side of the handover it came. [`prepare`] goes up to the server's
//! `354` for `DATA`: the server holds nothing yet, a failure there is
//! `not-delivered`, and a mail prepared and dropped is never sent.
//! [`hand_over`] writes the message and its closing dot, and only the
//! server's answer tells: a reply with a code (`4xx`, `5xx`) says it did
//! not take the mail; a connection that breaks, or no answer in time,
//! leaves it `unsure`. An adapter marks the mail as under way between the
//! two (the SDK's `SentLog::deliver`), so that a process killed before the
//! handover leaves nothing to ask a person about.

use super::grant::Transport;
use crate::sandbox::bindings::handoff::adapter::mail::DeliveryFailure;
use crate::sandbox::bindings::wit::AdapterError;
use lettre::Message;
use lettre::transport::smtp::Error;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// Connecting (what lettre's connection bounds by itself).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One mail's whole exchange, from connecting to the server's answer to
/// its end. lettre bounds the connection, not each read: a server that
/// takes the connection and never answers would otherwise hold the call
/// until its limit stopped it (the `smtp` adapter's is 10 s), reported as
/// a call that ran too long rather than as the server's fault.
const SEND_TIMEOUT: Duration = Duration::from_secs(8);
/// Saying goodbye once the mail is taken: nothing depends on it.
const QUIT_TIMEOUT: Duration = Duration::from_secs(1);

/// How the server is reached: its address, TLS (implicit or STARTTLS),
/// and a login.
pub struct Route<'a> {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub tls: Option<&'a TlsParameters>,
    pub login: Option<&'a (String, String)>,
}

/// A mail the server is ready to take: the connection after `354`.
pub struct Ready {
    addr: SocketAddr,
    conn: AsyncSmtpConnection,
    bytes: Vec<u8>,
    /// When the whole exchange must have ended.
    deadline: Instant,
}

/// What a failure before the handover is: a certificate that does not
/// verify is `denied` (it will not verify on the next try either: a person
/// must look), a permanent refusal `conflict`, the rest `transient`.
fn classify(message: String, e: &Error) -> AdapterError {
    if e.is_tls() || refused_certificate(e) {
        AdapterError::Denied(message)
    } else if e.is_permanent() {
        AdapterError::Conflict(message)
    } else {
        AdapterError::Transient(message)
    }
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

/// Send `message` through `route` in one go.
pub async fn exchange(route: &Route<'_>, message: &Message) -> Result<(), DeliveryFailure> {
    let ready = prepare(route, message)
        .await
        .map_err(DeliveryFailure::NotDelivered)?;
    hand_over(ready).await
}

/// Everything up to the server's `354` for `DATA`; nothing handed over.
pub async fn prepare(route: &Route<'_>, message: &Message) -> Result<Ready, AdapterError> {
    let addr = route.addr;
    let deadline = Instant::now() + SEND_TIMEOUT;
    let bytes = message.formatted();
    match timeout_at(deadline, before_handover(route, message, &bytes)).await {
        Ok(Ok(conn)) => Ok(Ready {
            addr,
            conn,
            bytes,
            deadline,
        }),
        Ok(Err(Refused::Smtp(e))) => Err(classify(format!("smtp {addr}: {e}"), &e)),
        Ok(Err(Refused::Unfit(why))) => Err(AdapterError::Invalid(format!("smtp {addr}: {why}"))),
        Err(_) => Err(AdapterError::Transient(format!(
            "smtp {addr}: no answer within {} s (the server took the connection but did not \
             take the mail; nothing was handed over)",
            SEND_TIMEOUT.as_secs()
        ))),
    }
}

/// Write the message and wait for the server's answer, within what is
/// left of the exchange's time.
pub async fn hand_over(ready: Ready) -> Result<(), DeliveryFailure> {
    let Ready {
        addr,
        mut conn,
        bytes,
        deadline,
    } = ready;
    // From here on the server may hold the mail.
    match timeout_at(deadline, conn.message(&bytes)).await {
        Ok(Ok(_)) => {
            let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.quit()).await;
            Ok(())
        }
        // The server answered the message with a code: it did not take it.
        Ok(Err(e)) if e.status().is_some() => Err(DeliveryFailure::NotDelivered(classify(
            format!("smtp {addr}: {e}"),
            &e,
        ))),
        Ok(Err(e)) => Err(DeliveryFailure::Unsure(format!(
            "smtp {addr}: the message was handed over and then {e}: the server may hold it"
        ))),
        Err(_) => Err(DeliveryFailure::Unsure(format!(
            "smtp {addr}: no answer within {} s (the message was handed over and its answer \
             never came: the server may hold it)",
            SEND_TIMEOUT.as_secs()
        ))),
    }
}

/// Why the exchange stopped before the handover.
enum Refused {
    /// lettre's error (the connection, TLS, or the server's answer).
    Smtp(Error),
    /// The mail needs what the server does not offer.
    Unfit(String),
}

/// Everything up to the server's `354` for `DATA`: connecting, TLS,
/// login, the envelope. A failure here leaves nothing with the server.
async fn before_handover(
    route: &Route<'_>,
    message: &Message,
    bytes: &[u8],
) -> Result<AsyncSmtpConnection, Refused> {
    let hello = ClientId::default();
    let implicit = match route.transport {
        Transport::ImplicitTls(_) => route.tls.cloned(),
        _ => None,
    };
    let mut conn = AsyncSmtpConnection::connect_tokio1(
        (route.addr.ip(), route.addr.port()),
        Some(CONNECT_TIMEOUT),
        &hello,
        implicit,
        None,
    )
    .await
    .map_err(Refused::Smtp)?;
    // On a failure the connection is dropped, not closed with QUIT: after
    // a failed TLS upgrade lettre's stream is gone, and its `abort` panics
    // writing to it.
    envelope(&mut conn, route, &hello, message, bytes).await?;
    Ok(conn)
}

/// TLS, the login, and the envelope up to `DATA`, on an open connection.
async fn envelope(
    conn: &mut AsyncSmtpConnection,
    route: &Route<'_>,
    hello: &ClientId,
    message: &Message,
    bytes: &[u8],
) -> Result<(), Refused> {
    if let (Transport::StartTls(_), Some(tls)) = (&route.transport, route.tls) {
        conn.starttls(tls.clone(), hello)
            .await
            .map_err(Refused::Smtp)?;
    }
    if let Some((user, password)) = route.login {
        let credentials = Credentials::new(user.clone(), password.clone());
        conn.auth(DEFAULT_MECHANISMS, &credentials)
            .await
            .map_err(Refused::Smtp)?;
    }
    let envelope = message.envelope();
    let mut options = Vec::new();
    let mut needs = |wanted: bool, option: MailParameter, extension: Extension| {
        if !wanted {
            return Ok(());
        }
        if !conn.server_info().supports_feature(extension) {
            return Err(Refused::Unfit(format!(
                "the server does not offer {extension}, which this mail needs"
            )));
        }
        options.push(option);
        Ok(())
    };
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    needs(
        non_ascii_address,
        MailParameter::SmtpUtfEight,
        Extension::SmtpUtfEight,
    )?;
    needs(
        !bytes.is_ascii(),
        MailParameter::Body(MailBodyParameter::EightBitMime),
        Extension::EightBitMime,
    )?;
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(Refused::Smtp)?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), Vec::new()))
            .await
            .map_err(Refused::Smtp)?;
    }
    conn.command(Data).await.map_err(Refused::Smtp)?;
    Ok(())
}
