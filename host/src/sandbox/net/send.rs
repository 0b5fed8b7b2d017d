//! HTTP(S) to the address a surface checked. The connection goes to that
//! address, never to the name again: a name that answered a granted address
//! to the check and another one to a second lookup (DNS rebinding) cannot
//! move the request. For HTTPS the origin's name is still what TLS asks for
//! (SNI) and what the certificate must be valid for, against the
//! instance's CA file when it names one, else the public web roots.

use super::pool::{Key, Pool, READY_WITHIN, Returning};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::SendRequest;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::io::TokioIo;

/// The TLS client an instance's HTTPS requests use: the PEM certificates in
/// `ca_file` (named by `key` in errors: `http-ca-file`), else the web roots.
pub fn tls_client(ca_file: Option<&Path>, key: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let at = path.display();
            let pem = crate::files::read_at_most(path, crate::files::CERTIFICATES_BYTES)
                .map_err(|e| format!("{key} {at}: cannot read: {e}"))?;
            let mut found = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{key} {at}: not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{key} {at}: not a CA certificate: {e}"))?;
                found += 1;
            }
            if found == 0 {
                return Err(format!("{key} {at}: no BEGIN CERTIFICATE block"));
            }
        }
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Why nothing was answered.
#[derive(Debug)]
pub enum Failure {
    Connect(std::io::Error),
    ConnectTimeout,
    Tls(std::io::Error),
    /// The origin's name cannot be a TLS server name.
    ServerName(rustls::pki_types::InvalidDnsNameError),
    Protocol(hyper::Error),
    FirstByteTimeout,
    Uri,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::ConnectTimeout => f.write_str("connecting timed out"),
            Failure::Tls(e) => write!(f, "TLS: {e}"),
            Failure::ServerName(e) => write!(f, "the name is not a TLS server name: {e}"),
            Failure::Protocol(e) => write!(f, "HTTP: {e}"),
            Failure::FirstByteTimeout => f.write_str("no answer in time"),
            Failure::Uri => f.write_str("the request's URI cannot be sent"),
        }
    }
}

/// How long connecting, waiting for the answer's head, and waiting between
/// two parts of its body may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

/// TLS for the origin's `name`, over a connection to `addr`.
pub struct Tls<'a> {
    pub name: &'a str,
    pub client: Arc<rustls::ClientConfig>,
}

/// Send `request` to `addr` (over TLS for `tls`'s name when given), on a
/// connection kept in `pool` when one is idle there, else on a new one:
/// the answer, whose body gives the connection back to `pool` once read to
/// its end.
pub async fn send<B>(
    mut request: http::Request<B>,
    addr: SocketAddr,
    tls: Option<Tls<'_>>,
    timeouts: Timeouts,
    pool: &Pool<B>,
) -> Result<http::Response<Returning<B>>, Failure>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // On the wire the request names only its path: the connection is the
    // authority (the Host header names the origin).
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Failure::Uri)?;
    let key = Key {
        addr,
        tls_name: tls.as_ref().map(|t| t.name.to_string()),
        runtime: tokio::runtime::Handle::current().id(),
    };
    let answered = |sender, response: http::Response<Incoming>| {
        let (parts, body) = response.into_parts();
        let body = pool.returning(body, key.clone(), sender, timeouts.between_bytes);
        http::Response::from_parts(parts, body)
    };
    // A few kept connections at most, so that a pool of ones that will not
    // be ready costs a request a bounded wait before a new connection.
    for _ in 0..KEPT_TRIED {
        let Some(mut sender) = pool.take(&key) else {
            break;
        };
        let within = timeouts.connect.min(READY_WITHIN);
        match tokio::time::timeout(within, sender.ready()).await {
            Ok(Ok(())) => {}
            // Closed, or not ready in time: the next one, or a new one.
            _ => continue,
        }
        match ask(&mut sender, request, timeouts).await? {
            Ok(response) => {
                super::pool::count_request(true);
                return Ok(answered(sender, response));
            }
            // The kept connection closed before it took the request: the
            // request was never sent, so it may go on another.
            Err(mut unsent) => match unsent.take_message() {
                Some(again) => request = again,
                None => return Err(Failure::Protocol(unsent.into_error())),
            },
        }
    }
    let mut sender = tokio::time::timeout(timeouts.connect, connect(addr, tls))
        .await
        .map_err(|_| Failure::ConnectTimeout)??;
    match ask(&mut sender, request, timeouts).await? {
        Ok(response) => {
            super::pool::count_request(false);
            Ok(answered(sender, response))
        }
        Err(failed) => Err(Failure::Protocol(failed.into_error())),
    }
}

/// Kept connections a request tries before it opens a new one.
const KEPT_TRIED: usize = 3;

type Asked<B> = Result<http::Response<Incoming>, TrySendError<http::Request<B>>>;

/// The answer's head to `request` on `sender`, within the first-byte time.
async fn ask<B>(
    sender: &mut SendRequest<B>,
    request: http::Request<B>,
    timeouts: Timeouts,
) -> Result<Asked<B>, Failure>
where
    B: Body + Send + 'static,
{
    tokio::time::timeout(timeouts.first_byte, sender.try_send_request(request))
        .await
        .map_err(|_| Failure::FirstByteTimeout)
}

/// A new connection to `addr` (TLS for `tls`'s name when given).
async fn connect<B>(addr: SocketAddr, tls: Option<Tls<'_>>) -> Result<SendRequest<B>, Failure>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(Failure::Connect)?;
    let Some(tls) = tls else {
        return handshake(tcp).await;
    };
    let server_name = match tls.name.parse::<std::net::IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::from(ip),
        Err(_) => rustls::pki_types::ServerName::try_from(tls.name.to_string())
            .map_err(Failure::ServerName)?,
    };
    let stream = tokio_rustls::TlsConnector::from(tls.client)
        .connect(server_name, tcp)
        .await
        .map_err(Failure::Tls)?;
    handshake(stream).await
}

async fn handshake<B, IO>(io: IO) -> Result<SendRequest<B>, Failure>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, B>(TokioIo::new(io))
        .await
        .map_err(Failure::Protocol)?;
    // The connection is driven by a task of its own for as long as it is
    // open: it outlives the request while it waits in the pool, and ends
    // when its last sender is dropped or the server closes it.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Read a whole body, refusing one longer than `max` bytes.
pub async fn read_bounded<B>(body: B, max: usize) -> Result<Option<Vec<u8>>, B::Error>
where
    B: Body<Data = hyper::body::Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut body = http_body_util::Limited::new(body, max);
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Err(e) => match e.downcast::<B::Error>() {
                Ok(e) => return Err(*e),
                // Over the limit.
                Err(_) => return Ok(None),
            },
        }
    }
    Ok(Some(out))
}
