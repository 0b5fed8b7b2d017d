//! Traces. The pipeline always makes `tracing` spans: a run, its stages
//! (`revalidate`, `validate`), each step and each adapter call. Built with
//! the `otlp` feature, and given an endpoint by the standard OpenTelemetry
//! variables (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER=none`),
//! those spans are also sent as OTLP over HTTP (JSON, or protobuf when
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`) to a collector, batched on a
//! thread of the exporter's own. A run joins the trace that asked for it:
//! the CloudEvent's `traceparent` (the distributed-tracing extension), or
//! the `traceparent` header of the webhook that brought it; an adapter's
//! outbound HTTP request carries the trace on in its own `traceparent`.
//!
//! Without the feature, or without an endpoint, nothing is exported and
//! nothing is added to requests.

use tracing::Span;

/// Keeps the exporter until dropped; dropping it sends what is still
/// batched.
#[must_use]
pub struct Guard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("handoff: traces not all sent: {e}");
        }
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    fn set(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }

    /// The exporter and the layer that feeds it, when the environment asks
    /// for one; a problem is said on stderr and traces are left off.
    pub fn start<S>() -> Option<(
        SdkTracerProvider,
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
    )>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none")
            || (set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
                && set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none())
        {
            return None;
        }
        let protocol = match set("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            Some("http/protobuf") => Protocol::HttpBinary,
            Some("http/json") | None => Protocol::HttpJson,
            Some(other) => {
                eprintln!(
                    "handoff: OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported \
                     (http/json or http/protobuf); traces are not exported"
                );
                return None;
            }
        };
        // The endpoint, headers and timeout are the exporter's own reading
        // of the OTEL_EXPORTER_OTLP_* variables.
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .build()
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!(
                    "handoff: the OTLP exporter could not be made ({e}); traces are not exported"
                );
                return None;
            }
        };
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(set("OTEL_SERVICE_NAME").unwrap_or_else(|| "handoff".into()))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let tracer = provider.tracer("handoff");
        Some((provider, tracing_opentelemetry::layer().with_tracer(tracer)))
    }
}

/// The subscriber's exporting layer (none without the feature or an
/// endpoint), and the guard that keeps it.
#[cfg(feature = "otlp")]
pub fn layer<S>() -> (Option<impl tracing_subscriber::Layer<S>>, Guard)
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    match otlp::start::<S>() {
        Some((provider, layer)) => (
            Some(layer),
            Guard {
                provider: Some(provider),
            },
        ),
        None => (None, Guard { provider: None }),
    }
}

/// The subscriber's exporting layer: none, this build has no `otlp`.
#[cfg(not(feature = "otlp"))]
pub fn layer<S>() -> (Option<tracing_subscriber::layer::Identity>, Guard)
where
    S: tracing::Subscriber,
{
    (None, Guard {})
}

/// The longest `traceparent` or `tracestate` taken from outside.
const MAX_HEADER_CHARS: usize = 512;

/// Make `span` a child of the trace `traceparent` (W3C Trace Context)
/// names; a value that is not one is ignored.
pub fn join(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(parent) = traceparent.filter(|t| t.len() <= MAX_HEADER_CHARS) else {
        return;
    };
    #[cfg(feature = "otlp")]
    {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let mut carrier = std::collections::HashMap::new();
        carrier.insert("traceparent".to_string(), parent.to_string());
        if let Some(state) = tracestate.filter(|t| t.len() <= MAX_HEADER_CHARS) {
            carrier.insert("tracestate".to_string(), state.to_string());
        }
        let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
    #[cfg(not(feature = "otlp"))]
    let _ = (span, parent, tracestate);
}

/// The current span's trace as a `traceparent` (and `tracestate`), for a
/// request leaving the process; none when nothing is traced.
pub fn carried() -> Vec<(&'static str, String)> {
    #[cfg(feature = "otlp")]
    {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let cx = Span::current().context();
        if !cx.span().span_context().is_valid() {
            return Vec::new();
        }
        let mut carrier = std::collections::HashMap::new();
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
        carrier
            .into_iter()
            .filter_map(|(k, v)| match k.as_str() {
                "traceparent" => Some(("traceparent", v)),
                "tracestate" if !v.is_empty() => Some(("tracestate", v)),
                _ => None,
            })
            .collect()
    }
    #[cfg(not(feature = "otlp"))]
    Vec::new()
}
