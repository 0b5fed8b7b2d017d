//! `POST /v1/events`: the door. A request becomes a stored event and run,
//! or a refusal with a status and a body saying what is wrong.
//!
//! Order: size (413) → CloudEvents mode, structured or binary (400) → the
//! event's `source` must be configured (403) → its signature (401) → the
//! event itself (400) → room in the run queue (429, nothing stored) →
//! stored with its run (group commit) → 202 with the run id, or 200 `duplicate` with
//! the existing run's id. The answer is sent only after the commit.

use super::App;
use crate::pipeline::intake::CloudEvent;
use crate::pipeline::{Accepted, RunError};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
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

/// The event as one JSON object, from either CloudEvents HTTP mode.
fn structured(headers: &HeaderMap, body: &Bytes) -> Result<Value, String> {
    if headers.contains_key("ce-specversion") {
        // Binary mode: attributes in ce-* headers, the body is the data.
        let mut event = Map::new();
        for (name, value) in headers {
            if let Some(attribute) = name.as_str().strip_prefix("ce-") {
                let value = value
                    .to_str()
                    .map_err(|_| format!("header {name} is not visible ASCII"))?;
                event.insert(attribute.to_string(), Value::String(value.to_string()));
            }
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        let data = if content_type.starts_with("application/json")
            || content_type.ends_with("+json")
        {
            serde_json::from_slice(body).map_err(|e| format!("the body (data) is not JSON: {e}"))?
        } else {
            return Err(format!(
                "binary-mode data of type {content_type:?}: handoff reads JSON data"
            ));
        };
        event.insert("datacontenttype".into(), Value::String(content_type.into()));
        event.insert("data".into(), data);
        return Ok(Value::Object(event));
    }
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "not a structured CloudEvent (JSON) and no ce-specversion header for binary mode: {e}"
        )
    })
}

pub async fn post_event(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let arrived = Instant::now();
    if app.stopping.load(Ordering::SeqCst) {
        return refuse(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "handoff is shutting down; send again later".into(),
        );
    }
    let body = match axum::body::to_bytes(body, app.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                &app,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "the body is over {} bytes (serve.max-body-bytes)",
                    app.max_body_bytes
                ),
            );
        }
    };
    let raw = match structured(&headers, &body) {
        Ok(v) => v,
        Err(e) => return refuse(&app, StatusCode::BAD_REQUEST, "bad-event", e),
    };
    let Some(source) = raw.get("source").and_then(Value::as_str) else {
        return refuse(
            &app,
            StatusCode::BAD_REQUEST,
            "bad-event",
            "the event has no source".into(),
        );
    };
    let Some(verifier) = app.verifiers.get(source) else {
        return refuse(
            &app,
            StatusCode::FORBIDDEN,
            "unknown-source",
            format!("source {source:?} is not configured under [serve.sources]"),
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
    let bytes = serde_json::to_vec(&raw).expect("a JSON value serializes");
    let event = match CloudEvent::parse(&bytes, "the request") {
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
    match take(&app, event, permit, arrived).await {
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
    permit: tokio::sync::mpsc::OwnedPermit<String>,
    arrived: Instant,
) -> Result<(Accepted, String), RunError> {
    let event_id = event.id.clone();
    let accepted = app.committer.accept(event).await?;
    app.metrics.intake_latency.observe(arrived.elapsed());
    match &accepted {
        Accepted::New { run_id } => {
            app.metrics.accepted.fetch_add(1, Ordering::Relaxed);
            app.metrics.queued.fetch_add(1, Ordering::Relaxed);
            permit.send(run_id.clone());
        }
        Accepted::Duplicate { .. } => {
            app.metrics.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok((accepted, event_id))
}
