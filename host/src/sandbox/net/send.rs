//! HTTP(S) to the address a surface checked. The connection goes to that
//! address, never to the name again: a name that answered a granted address
//! to the check and another one to a second lookup (DNS rebinding) cannot
//! move the request. For HTTPS the origin's name is still what TLS asks for
//! (SNI) and what the certificate must be valid for, against the
//! instance's CA file when it names one, else the public web roots.

use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
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
            let pem = std::fs::read(path).map_err(|e| format!("{key} {at}: cannot read: {e}"))?;
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

/// The rest of a connection, driven to its end after the answer's head.
pub type Rest = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

/// How long connecting, and waiting for the answer's head, may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
}

/// TLS for the origin's `name`, over a connection to `addr`.
pub struct Tls<'a> {
    pub name: &'a str,
    pub client: Arc<rustls::ClientConfig>,
}

/// Send `request` to `addr` (over TLS for `tls`'s name when given): the
/// answer's head, and the rest of the connection to drive.
pub async fn send<B>(
    mut request: http::Request<B>,
    addr: SocketAddr,
    tls: Option<Tls<'_>>,
    timeouts: Timeouts,
) -> Result<(http::Response<Incoming>, Rest), Failure>
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
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(Failure::Connect)?;
        match tls {
            None => handshake(tcp).await,
            Some(tls) => {
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
        }
    };
    let (mut sender, mut conn) = tokio::time::timeout(timeouts.connect, connect)
        .await
        .map_err(|_| Failure::ConnectTimeout)??;

    // The connection is driven while the answer is awaited, and whatever
    // is left of it afterwards is handed back to be driven to its end.
    let mut conn_done = false;
    let answer = sender.send_request(request);
    tokio::pin!(answer);
    let response = tokio::time::timeout(timeouts.first_byte, async {
        loop {
            tokio::select! {
                res = &mut answer => break res.map_err(Failure::Protocol),
                end = &mut conn, if !conn_done => {
                    conn_done = true;
                    end.map_err(Failure::Protocol)?;
                }
            }
        }
    })
    .await
    .map_err(|_| Failure::FirstByteTimeout)??;
    let rest: Rest = Box::pin(async move {
        if !conn_done {
            conn.await?;
        }
        Ok(())
    });
    Ok((response, rest))
}

type Handshake<B> = (hyper::client::conn::http1::SendRequest<B>, Rest);

async fn handshake<B, IO>(io: IO) -> Result<Handshake<B>, Failure>
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
    Ok((sender, Box::pin(conn)))
}

/// Read a whole body, refusing one longer than `max` bytes.
pub async fn read_bounded(body: Incoming, max: usize) -> Result<Option<Vec<u8>>, hyper::Error> {
    let mut body = http_body_util::Limited::new(body, max);
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Err(e) => match e.downcast::<hyper::Error>() {
                Ok(e) => return Err(*e),
                // Over the limit.
                Err(_) => return Ok(None),
            },
        }
    }
    Ok(Some(out))
}
