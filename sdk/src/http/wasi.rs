//! In a component, a request goes out through `wasi:http`: the host
//! checks it against the grant and sends it; the answer's body is read up
//! to [`super::MAX_RESPONSE_BYTES`].

use super::{NoResponse, Request, Response, split_url};
use crate::AdapterError;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

/// The request sent; anything that fails before the whole of it went
/// out cannot have been acted on.
pub fn send_once(request: &Request) -> Result<Response, NoResponse> {
    let what = format!("{} {}", request.method, request.url);
    let pending = start(request, &what).map_err(|error| NoResponse {
        error,
        maybe_received: false,
    })?;
    pending.subscribe().block();
    let incoming = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => {
            let maybe_received = !before_the_request(&e);
            return Err(NoResponse {
                error: error_code(&what, e),
                maybe_received,
            });
        }
        Some(Err(())) | None => {
            return Err(NoResponse {
                error: AdapterError::Transient(format!("{what}: response already taken")),
                maybe_received: true,
            });
        }
    };
    // An answer came: the server has the request, whatever its body.
    read_response(incoming, &what).map_err(|error| NoResponse {
        error,
        maybe_received: true,
    })
}

/// Failures that come before a request can reach the server: the host
/// refused it, the name or the address led nowhere, the connection or
/// its TLS handshake failed.
fn before_the_request(e: &ErrorCode) -> bool {
    matches!(
        e,
        ErrorCode::DnsTimeout
            | ErrorCode::DnsError(_)
            | ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DestinationIpProhibited
            | ErrorCode::DestinationIpUnroutable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTimeout
            | ErrorCode::TlsProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_)
            | ErrorCode::HttpRequestDenied
            | ErrorCode::HttpRequestMethodInvalid
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::HttpRequestUriTooLong
            | ErrorCode::HttpRequestHeaderSectionSize(_)
            | ErrorCode::HttpRequestHeaderSize(_)
            | ErrorCode::HttpRequestBodySize(_)
    )
}

/// Everything up to the request's last byte handed to the host.
fn start(request: &Request, what: &str) -> Result<FutureIncomingResponse, AdapterError> {
    let url = split_url(&request.url)?;
    let headers = Fields::new();
    for (name, value) in &request.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| header_error(what, name, e))?;
    }
    // A body goes with its length: some servers (thin, under Redmine)
    // ignore a chunked request body.
    let has_length = request
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    if !request.body.is_empty() && !has_length {
        let length = request.body.len().to_string();
        headers
            .append("content-length", length.as_bytes())
            .map_err(|e| header_error(what, "content-length", e))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let method = match request.method.as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let scheme = if url.scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let invalid = |part: &str| AdapterError::Invalid(format!("{what}: invalid {part}"));
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(&url.authority))
        .map_err(|()| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(&url.path_and_query))
        .map_err(|()| invalid("path"))?;
    let body = outgoing.body().map_err(|()| invalid("body"))?;

    let pending = outgoing_handler::handle(outgoing, None).map_err(|e| error_code(what, e))?;
    {
        let stream = body.write().map_err(|()| invalid("body stream"))?;
        for chunk in request.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| AdapterError::Transient(format!("{what}: writing body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| error_code(what, e))?;
    Ok(pending)
}

/// The response's status, headers and body (at most
/// [`super::MAX_RESPONSE_BYTES`]).
fn read_response(incoming: IncomingResponse, what: &str) -> Result<Response, AdapterError> {
    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body_resource = incoming
        .consume()
        .map_err(|()| AdapterError::Transient(format!("{what}: response body unavailable")))?;
    let mut body = Vec::new();
    {
        let stream = body_resource
            .stream()
            .map_err(|()| AdapterError::Transient(format!("{what}: response body unavailable")))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    super::within_bound(what, body.len() + chunk.len())?;
                    body.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(AdapterError::Transient(format!(
                        "{what}: reading body: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn header_error(what: &str, name: &str, e: HeaderError) -> AdapterError {
    match e {
        HeaderError::Forbidden | HeaderError::Immutable => AdapterError::Denied(format!(
            "{what}: the host does not let this adapter set header {name:?} \
             (the host injects it, or it is forbidden)"
        )),
        HeaderError::InvalidSyntax => {
            AdapterError::Invalid(format!("{what}: invalid header {name:?}"))
        }
    }
}

fn error_code(what: &str, e: ErrorCode) -> AdapterError {
    match e {
        ErrorCode::HttpRequestDenied => AdapterError::Denied(format!(
            "{what}: refused by the host: not within this adapter's granted HTTP capabilities"
        )),
        ErrorCode::DestinationIpProhibited => AdapterError::Denied(format!(
            "{what}: refused by the host: the destination address is outside the host's ceiling"
        )),
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            AdapterError::Invalid(format!("{what}: {e:?}"))
        }
        other => AdapterError::Transient(format!("{what}: {other:?}")),
    }
}
