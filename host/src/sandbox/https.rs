//! HTTPS to the address the choke point checked. The connection goes to
//! that address, never to the name again: a name that answered a granted
//! address to the check and another one to a second lookup (DNS
//! rebinding) cannot move the request. The origin's name is still what TLS
//! asks for (SNI) and what the certificate must be valid for, against the
//! instance's `http-ca-file` when it names one, else the public web roots.

use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// The TLS client an instance's HTTPS requests use.
pub fn client(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let at = path.display();
            let pem =
                std::fs::read(path).map_err(|e| format!("http-ca-file {at}: cannot read: {e}"))?;
            let mut found = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("http-ca-file {at}: not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("http-ca-file {at}: not a CA certificate: {e}"))?;
                found += 1;
            }
            if found == 0 {
                return Err(format!("http-ca-file {at}: no BEGIN CERTIFICATE block"));
            }
        }
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

/// Send `request` over TLS to `addr`, verifying the certificate for `name`.
pub async fn send(
    mut request: http::Request<WasiBody>,
    addr: SocketAddr,
    name: &str,
    tls: Arc<rustls::ClientConfig>,
    options: Option<RequestOptions>,
) -> Result<Sent, HttpError> {
    let long = Duration::from_secs(600);
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(long);
    let first_byte_timeout = options.and_then(|o| o.first_byte_timeout).unwrap_or(long);
    let server_name = match name.parse::<std::net::IpAddr>() {
        Ok(ip) => rustls::pki_types::ServerName::from(ip),
        Err(_) => rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(HttpError::InvalidDnsNameError)?,
    };
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(HttpError::Connect)?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(HttpError::Tls)?;
        hyper::client::conn::http1::Builder::new()
            .handshake::<_, WasiBody>(TokioIo::new(stream))
            .await
            .map_err(HttpError::from)
    };
    let (mut sender, conn) = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)??;
    // On the wire the request names only its path: the connection is the
    // authority.
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    // The connection is driven while the answer is awaited, and whatever
    // is left of it afterwards is handed back to be driven to its end.
    let mut conn = Box::pin(conn);
    let mut conn_done = false;
    let answer = sender.send_request(request);
    tokio::pin!(answer);
    let waited = tokio::time::timeout(first_byte_timeout, async {
        loop {
            tokio::select! {
                res = &mut answer => break res.map_err(HttpError::from),
                end = &mut conn, if !conn_done => {
                    conn_done = true;
                    end.map_err(HttpError::from)?;
                }
            }
        }
    })
    .await
    .map_err(|_| HttpError::ConnectionReadTimeout)??;
    let response = waited.map(|body| body.map_err(HttpError::from).boxed_unsync());
    let rest = async move {
        if !conn_done {
            conn.await.map_err(HttpError::from)?;
        }
        Ok(())
    };
    Ok((response, Box::new(rest)))
}
