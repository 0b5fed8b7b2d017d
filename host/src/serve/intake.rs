//! `POST /v1/events`: the door. A request becomes a stored event and run,
//! or a refusal with a status and a body saying what is wrong.
//!
//! Order: the body, within its size (413; before it is sent when the
//! sender waits for `100 Continue` and declares more) and time (408; a
//! body cut short is 400) → structured mode only (binary mode: 400, since
//! no signature covers the `ce-*` headers that would route and dedupe the
//! event; a content type other than CloudEvents JSON or JSON: 415) → the
//! event's `source` must be configured (403) → its signature (401) → the
//! event itself (400) → room in the run queue (429, nothing stored) →
//! stored with its run (group commit) → 202 with the run id, or 200
//! `duplicate` with the existing run's id. The answer is sent only after
//! the commit.

use super::App;
use super::api::refusal::shown;
use crate::model::CloudEvent;
use crate::pipeline::{Accepted, RunError};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn refuse(app: &App, status: StatusCode, reason: &str, message: String) -> Response {
    app.metrics.refuse(reason);
    tracing::info!(status = status.as_u16(), reason, %message, "event refused");
    let mut response = (
        status,
        axum::Json(json!({ "status": "refused", "reason": reason, "error": message })),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// Why a request is refused before its signature is checked.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    message: String,
}

fn refusal(status: StatusCode, reason: &'static str, message: String) -> Refusal {
    Refusal {
        status,
        reason,
        message,
    }
}

/// The event as one JSON object: a structured-mode CloudEvent.
///
/// Binary mode is refused: its attributes travel in `ce-*` headers, and
/// neither Standard Webhooks (which signs `webhook-id`, the timestamp and
/// the body) nor GitHub (the body alone) covers them, so a captured
/// request could be sent again under another `ce-id`, `ce-type` or
/// `ce-subject` and still verify.
fn structured(headers: &HeaderMap, body: &Bytes) -> Result<Value, Refusal> {
    if headers.contains_key("ce-specversion") {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "binary-mode",
            "binary-mode CloudEvents are refused: no signature covers their ce-* headers (id, \
             type, source, subject); send the event in structured mode, as a JSON body with \
             Content-Type: application/cloudevents+json"
                .into(),
        ));
    }
    if let Some(value) = headers.get(header::CONTENT_TYPE) {
        let media = crate::model::event::media_essence(value.to_str().unwrap_or_default());
        if media != "application/cloudevents+json" && media != "application/json" {
            return Err(refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                format!(
                    "content type {:?}: a structured CloudEvent is application/cloudevents+json \
                     (or application/json)",
                    shown(&String::from_utf8_lossy(value.as_bytes()))
                ),
            ));
        }
    }
    crate::model::json::from_slice(body).map_err(|e| {
        refusal(
            StatusCode::BAD_REQUEST,
            "bad-event",
            format!("not a structured CloudEvent (a JSON object): {e}"),
        )
    })
}

/// Whether reading a body failed because it is over the size limit (and
/// not because the client stopped sending it).
fn too_large(app: &App) -> Response {
    refuse(
        app,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        format!(
            "the body is over {} bytes (serve.max-body-bytes)",
            app.max_body_bytes
        ),
    )
}

/// The body's length as its `Content-Length` declares it (hyper has
/// refused a request whose header is not one number).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether the sender sends its body only once told to continue.
fn waits_to_send(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn is_over_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

pub async fn post_event(
    State(app): State<Arc<App>>,
    reading: Option<axum::Extension<super::listener::Reading>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    if app.stopping.load(Ordering::SeqCst) {
        return refuse(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "handoff is shutting down; send again later".into(),
        );
    }
    // The door reads no parameters: one a sender adds (`?source=...`)
    // would otherwise pass as if it had been applied.
    if let Err(refused) = super::api::refusal::no_query(uri.query()) {
        return refuse(&app, refused.status, refused.reason, refused.error);
    }
    // A sender that waits to be told to send its body (`Expect:
    // 100-continue`), declaring one larger than the door takes, is refused
    // before it sends it. One already sending is read up to the limit
    // instead: closing on a body still arriving resets the connection, and
    // the sender may lose the answer with it.
    if waits_to_send(&headers)
        && declared_length(&headers).is_some_and(|n| n > app.max_body_bytes as u64)
    {
        return too_large(&app);
    }
    let read = tokio::time::timeout(
        app.body_read_timeout,
        axum::body::to_bytes(body, app.max_body_bytes),
    );
    let read = read.await;
    if let Some(reading) = reading {
        reading.body_read();
    }
    let body = match read {
        Ok(Ok(b)) => b,
        Ok(Err(e)) if is_over_limit(&e) => return too_large(&app),
        Ok(Err(e)) => {
            // Cut short, or not what its headers said: not final for the
            // sender, who may send it again whole.
            return refuse(
                &app,
                StatusCode::BAD_REQUEST,
                "body-unreadable",
                format!("the body could not be read whole: {e}"),
            );
        }
        Err(_) => {
            return refuse(
                &app,
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                format!(
                    "the body did not arrive within {} s (serve.body-read-timeout-seconds)",
                    app.body_read_timeout.as_secs()
                ),
            );
        }
    };
    let raw = match structured(&headers, &body) {
        Ok(v) => v,
        Err(r) => return refuse(&app, r.status, r.reason, r.message),
    };
    let Some(source) = raw.get("source").and_then(Value::as_str) else {
        let why = match &raw {
            Value::Object(o) if o.contains_key("source") => {
                "the event's source is not a string".to_string()
            }
            Value::Object(_) => "the event has no source".to_string(),
            other => format!(
                "not a structured CloudEvent: the body is JSON {}, not an object",
                crate::model::json::kind(other)
            ),
        };
        return refuse(&app, StatusCode::BAD_REQUEST, "bad-event", why);
    };
    let Some(verifier) = app.verifiers.get(source) else {
        return refuse(
            &app,
            StatusCode::FORBIDDEN,
            "unknown-source",
            format!(
                "source {:?} is not configured under [serve.sources]",
                shown(source)
            ),
        );
    };
    let now = jiff::Timestamp::now().as_second();
    if let Err(e) = verifier.verify(&headers, &body, now) {
        let reason = format!("signature-{}", e.label());
        return refuse(
            &app,
            StatusCode::UNAUTHORIZED,
            &reason,
            format!("signature: {e}"),
        );
    }
    // Read once, as JSON, for the source and the signature: validated from
    // that same value.
    let event = match CloudEvent::from_value(raw, "the request") {
        Ok(e) => e,
        Err(e) => return refuse(&app, StatusCode::BAD_REQUEST, "bad-event", e.to_string()),
    };
    // Room for the run before anything is stored: when the workers are
    // behind, the sender waits, and this process's memory does not grow.
    let permit = match app.queue.clone().try_reserve_owned() {
        Ok(p) => p,
        Err(_) => {
            return refuse(
                &app,
                StatusCode::TOO_MANY_REQUESTS,
                "backpressure",
                format!("{} runs are waiting; send again later", app.max_queued),
            );
        }
    };
    // The trace the sender was in, for the run to join (a CloudEvents
    // `traceparent` in the event itself goes first).
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match take(&app, event, permit, arrived, traceparent).await {
        Ok((Accepted::New { run_id }, event_id)) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "accepted", "run_id": run_id, "event_id": event_id })),
        )
            .into_response(),
        Ok((Accepted::Duplicate { run_id }, event_id)) => (
            StatusCode::OK,
            axum::Json(json!({ "status": "duplicate", "run_id": run_id, "event_id": event_id })),
        )
            .into_response(),
        Err(RunError::Store(e)) => refuse(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            "store",
            format!("the event could not be stored: {e}"),
        ),
        Err(e) => refuse(
            &app,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-runnable",
            e.to_string(),
        ),
    }
}

/// Store an event with its run (group commit, see [`super::commit`]) and,
/// when the run is new, queue it with the room reserved beforehand. Every
/// door calls this; when it returns, the event is durable.
pub(super) async fn take(
    app: &Arc<App>,
    event: CloudEvent,
    permit: tokio::sync::mpsc::OwnedPermit<super::workers::RunTicket>,
    arrived: Instant,
    traceparent: Option<String>,
) -> Result<(Accepted, String), RunError> {
    let event_id = event.id.clone();
    let accepted = app.committer.accept(event).await?;
    app.metrics.intake_latency.observe(arrived.elapsed());
    match &accepted {
        Accepted::New { run_id } => {
            app.metrics.accepted.fetch_add(1, Ordering::Relaxed);
            app.metrics.queued.fetch_add(1, Ordering::Relaxed);
            permit.send(super::workers::RunTicket {
                run_id: run_id.clone(),
                event_id: event_id.clone(),
                traceparent,
            });
        }
        Accepted::Duplicate { .. } => {
            app.metrics.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok((accepted, event_id))
}
