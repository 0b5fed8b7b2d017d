//! TEST OTLP RECEIVER, not a collector: no OpenTelemetry Collector installs
//! from this machine's registries, so the traces `handoff` exports are
//! received by this hand-written OTLP/HTTP endpoint (`POST /v1/traces`,
//! the JSON encoding), a real HTTP server on 127.0.0.1 that keeps the spans
//! it is sent and answers as the specification says a collector does.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// One span as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// The resource's `service.name`.
    pub service: String,
    pub attributes: Value,
}

impl Span {
    /// A string attribute's value.
    pub(crate) fn attribute(&self, key: &str) -> Option<String> {
        self.attributes
            .as_array()?
            .iter()
            .find(|a| a["key"] == key)
            .and_then(|a| a["value"]["stringValue"].as_str().map(str::to_string))
    }
}

pub(crate) struct OtlpReceiver {
    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` is set to.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    _runtime: tokio::runtime::Runtime,
}

impl OtlpReceiver {
    pub(crate) fn start() -> OtlpReceiver {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let (endpoint, runtime) = super::serve_in_background(app);
        OtlpReceiver {
            endpoint,
            spans,
            _runtime: runtime,
        }
    }

    pub(crate) fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

async fn receive(State(spans): State<Arc<Mutex<Vec<Span>>>>, body: String) -> (StatusCode, String) {
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not OTLP JSON".into());
    };
    let mut kept = spans.lock().unwrap();
    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_string();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_string();
                kept.push(Span {
                    name: text("name"),
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent_span_id: text("parentSpanId"),
                    service: service.clone(),
                    attributes: span["attributes"].clone(),
                });
            }
        }
    }
    (StatusCode::OK, "{}".into())
}
