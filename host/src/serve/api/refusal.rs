//! How the API says no: a status, a stable reason for programs, what went
//! wrong and what to do for people; each refusal counted in `/metrics`.

use super::super::App;
use crate::pipeline::RunError;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What a refusal answers with.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RefusalBody {
    /// Stable, for programs: `unauthenticated`, `forbidden`, `not-found`,
    /// `conflict`, `bad-query`, `bad-body`, `too-large`, `rate-limited`...
    reason: String,
    /// For people: what went wrong and what to do.
    error: String,
}

/// A refusal: its status, a stable reason, and what to do.
#[derive(Debug)]
pub struct Refusal {
    pub(in crate::serve) status: StatusCode,
    pub(in crate::serve) reason: &'static str,
    pub(in crate::serve) error: String,
    pub(in crate::serve) retry_after: Option<u64>,
}

pub(in crate::serve) fn refusal(
    status: StatusCode,
    reason: &'static str,
    error: impl Into<String>,
) -> Refusal {
    Refusal {
        status,
        reason,
        error: said(error.into()),
        retry_after: None,
    }
}

/// The most of an error a refusal says. Ours are a sentence or two; one
/// that repeats what was asked (a query's unknown field, an action, a role)
/// is cut here, so an answer stays small however long the request was.
const SAID_BYTES: usize = 320;

/// An error as a refusal says it: at most [`SAID_BYTES`] of it, with no
/// character left live that would change how a reader's screen shows it.
fn said(error: String) -> String {
    crate::kept::inert(&crate::kept::shortened(&error, SAID_BYTES)).into_owned()
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        tracing::error!(error = %e, "the API could not read the store");
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "the store could not be read; try again",
        )
    }
}

impl From<RunError> for Refusal {
    fn from(e: RunError) -> Refusal {
        match e {
            RunError::NoSuchFollowUp(id) => no_follow_up(id),
            e @ (RunError::AlreadyResolved(_) | RunError::AlreadyAcknowledged { .. }) => {
                refusal(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            e @ RunError::NotPlainText(..) => {
                refusal(StatusCode::BAD_REQUEST, "bad-body", e.to_string())
            }
            e @ RunError::NoteTooLong(_) => {
                refusal(StatusCode::PAYLOAD_TOO_LARGE, "too-large", e.to_string())
            }
            RunError::Store(e) => e.into(),
            e => {
                tracing::error!(error = %e, "an API action failed");
                refusal(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string())
            }
        }
    }
}

pub(in crate::serve) type Answer = Result<Response, Refusal>;

/// Count a refusal and answer it.
pub(in crate::serve) fn answer(app: &App, result: Answer) -> Response {
    match result {
        Ok(r) => r,
        Err(r) => {
            app.metrics.refuse(&format!("api-{}", r.reason));
            let mut response = (
                r.status,
                axum::Json(json!({ "reason": r.reason, "error": r.error })),
            )
                .into_response();
            let headers = response.headers_mut();
            if r.status == StatusCode::UNAUTHORIZED {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer".parse().expect("a header"),
                );
            }
            if let Some(secs) = r.retry_after {
                headers.insert(header::RETRY_AFTER, secs.into());
            }
            response
        }
    }
}

pub(super) fn ok(value: Value) -> Answer {
    Ok(axum::Json(value).into_response())
}

/// The most of an identifier from a request that an error repeats.
const SHOWN_ID_BYTES: usize = 128;

/// An identifier from a request as an error repeats it: whole when short,
/// else its start (a path may be many kilobytes long).
pub(in crate::serve) fn shown(id: &str) -> String {
    crate::kept::shortened(id, SHOWN_ID_BYTES).into_owned()
}

/// An endpoint that reads no query parameters refuses any, as the lists
/// refuse an unknown one: `?role=...` on one packet would otherwise pass as
/// if it had been applied.
pub(in crate::serve) fn no_query(query: Option<&str>) -> Result<(), Refusal> {
    match query {
        Some(q) if !q.is_empty() => Err(refusal(
            StatusCode::BAD_REQUEST,
            "bad-query",
            format!(
                "this endpoint takes no query parameters (given {:?}); send it without them",
                shown(q)
            ),
        )),
        _ => Ok(()),
    }
}

/// A list's query that does not read as its parameters: axum's words for
/// what went wrong (a parameter unknown or given twice, a number that is
/// none), without its preamble, and what the list takes.
pub(in crate::serve) fn bad_query(
    rejection: axum::extract::rejection::QueryRejection,
    takes: &str,
) -> Refusal {
    let why = unread(&rejection);
    refusal(
        StatusCode::BAD_REQUEST,
        "bad-query",
        // What the list takes first: a long parameter's name in `why` is
        // what the cut at the end of a refusal leaves off.
        format!("this list takes {takes}; the query does not read: {why}"),
    )
}

/// Why a query did not read, in serde's words without axum's preamble
/// (`Failed to deserialize query string: `), which says nothing a person
/// can act on.
pub(in crate::serve) fn unread(rejection: &axum::extract::rejection::QueryRejection) -> String {
    let text = rejection.body_text();
    match text.strip_prefix("Failed to deserialize query string: ") {
        Some(why) => why.to_string(),
        None => text,
    }
}

/// A follow-up's id from a path: a number as the API writes it (digits, no
/// sign or leading zero), or there is no such follow-up.
pub(in crate::serve) fn follow_up_id(id: &str) -> Result<i64, Refusal> {
    let canonical =
        id.bytes().all(|b| b.is_ascii_digit()) && !(id.len() > 1 && id.starts_with('0'));
    canonical.then(|| id.parse().ok()).flatten().ok_or_else(|| {
        refusal(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no follow-up {}", shown(id)),
        )
    })
}

/// A request's body as it was taken, or why it was not: over the route's
/// limit (413), or cut short.
pub(in crate::serve) fn taken(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, Refusal> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the body is over {} KiB; send a shorter one", limit / 1024),
            )
        } else {
            refusal(
                StatusCode::BAD_REQUEST,
                "bad-body",
                format!(
                    "the body could not be read ({}); send it again",
                    e.body_text()
                ),
            )
        }
    })
}

/// A body the API reads is JSON. One sent as something else (a form, as
/// `curl -d` sends it without `-H 'Content-Type: application/json'`, or
/// plain text) is refused 415, not read as JSON anyway; so is one with two
/// `Content-Type` headers. Without the header a body is taken as JSON, and
/// an empty body, having nothing to misread, is taken whatever it says.
pub(in crate::serve) fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<(), Refusal> {
    if body.is_empty() {
        return Ok(());
    }
    let mut said = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(first), None) = (said.next(), said.next()) else {
        return match headers.contains_key(header::CONTENT_TYPE) {
            false => Ok(()),
            true => Err(refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send one Content-Type header, application/json",
            )),
        };
    };
    let kind = String::from_utf8_lossy(first.as_bytes());
    if crate::model::event::media_essence(&kind) == "application/json" {
        return Ok(());
    }
    Err(refusal(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        format!(
            "the body is JSON: send it with Content-Type: application/json (this one says {:?})",
            shown(&kind)
        ),
    ))
}

pub(in crate::serve) fn no_follow_up(id: i64) -> Refusal {
    refusal(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no follow-up {id}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(values: &[&str], body: &str) -> Result<(), u16> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::CONTENT_TYPE, v.parse().unwrap());
        }
        json_body(&headers, &Bytes::copy_from_slice(body.as_bytes())).map_err(|r| r.status.as_u16())
    }

    #[test]
    fn a_body_is_read_as_json_only_when_it_says_so_or_says_nothing() {
        let body = r#"{"action": "abandon"}"#;
        assert_eq!(kinds(&[], body), Ok(()));
        assert_eq!(kinds(&["application/json"], body), Ok(()));
        assert_eq!(kinds(&["Application/JSON; charset=utf-8"], body), Ok(()));
        for other in [
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ] {
            assert_eq!(kinds(&[other], body), Err(415), "{other}");
        }
        assert_eq!(
            kinds(&["application/json", "application/json"], body),
            Err(415)
        );
        // An empty body has nothing to misread.
        assert_eq!(kinds(&["application/x-www-form-urlencoded"], ""), Ok(()));
    }
}
