//! Traces over OTLP (built with the `otlp` feature), received by the test
//! OTLP receiver (`support::otlp`): a run joins the trace its event names
//! (the CloudEvents `traceparent`, or the webhook's `traceparent` header),
//! with a span for each stage, step and adapter call; the `OTEL_*`
//! variables are honoured. (An adapter's request carrying the trace on is
//! in `systems::webhook`.)

use crate::support::otlp::{OtlpReceiver, Span};
use crate::support::scenario::*;
use crate::support::service::*;
use serde_json::{Value, json};

pub(crate) const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// The example's accepted decision, carrying the tracing extension.
pub(crate) fn traced_event(s: &Scenario) -> String {
    let mut event: Value =
        serde_json::from_slice(&std::fs::read(s.path("events/accepted.json")).unwrap()).unwrap();
    event["traceparent"] = json!(format!("00-{TRACE}-{PARENT}-01"));
    std::fs::write(s.path("events/traced.json"), event.to_string()).unwrap();
    "events/traced.json".into()
}

fn run_traced(s: &Scenario, env: &[(&str, &str)]) -> Value {
    let event = traced_event(s);
    let o = s
        .command(&[
            "run",
            "--event",
            &event,
            "--context",
            "context.json",
            "--json",
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[test]
fn a_run_joins_its_events_trace_with_a_span_for_each_stage_step_and_call() {
    let receiver = OtlpReceiver::start();
    let s = Scenario::new();
    let report = run_traced(&s, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)]);
    // The process sends what is batched before it exits.
    let spans = receiver.spans();
    let runs = named(&spans, "run");
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let run = runs[0];
    assert_eq!(run.trace_id, TRACE);
    assert_eq!(run.parent_span_id, PARENT, "a child of the event's span");
    assert_eq!(run.service, "handoff");
    assert_eq!(
        run.attribute("run_id").as_deref(),
        report["run_id"].as_str()
    );
    assert_eq!(run.attribute("outcome").as_deref(), Some("completed"));
    assert!(spans.iter().all(|s| s.trace_id == TRACE), "one trace");

    for stage in ["revalidate", "validate"] {
        let found = named(&spans, stage);
        assert_eq!(found.len(), 1, "{stage}");
        assert_eq!(found[0].parent_span_id, run.span_id, "{stage}");
    }
    let steps = named(&spans, "step");
    assert_eq!(steps.len(), 6);
    assert!(steps.iter().all(|s| s.parent_span_id == run.span_id));
    let step_ids: Vec<String> = steps.iter().filter_map(|s| s.attribute("step")).collect();
    assert!(
        step_ids.contains(&"close-checklist".to_string()),
        "{step_ids:?}"
    );

    // Every adapter call is in the stage or step that made it.
    let calls = named(&spans, "adapter call");
    let parents: Vec<&String> = spans
        .iter()
        .filter(|s| ["revalidate", "validate", "step"].contains(&s.name.as_str()))
        .map(|s| &s.span_id)
        .collect();
    assert!(
        calls.len() >= 6 * 3,
        "observe, apply, confirm per step: {}",
        calls.len()
    );
    assert!(calls.iter().all(|c| parents.contains(&&c.parent_span_id)));
    let applied = calls
        .iter()
        .filter(|c| c.attribute("call").as_deref() == Some("apply"))
        .count();
    assert_eq!(applied, 6);
}

#[test]
fn the_otel_variables_name_the_service_and_turn_export_off() {
    let receiver = OtlpReceiver::start();
    let s = Scenario::new();
    run_traced(
        &s,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint),
            ("OTEL_SERVICE_NAME", "closure-runner"),
        ],
    );
    let spans = receiver.spans();
    assert!(!spans.is_empty());
    assert!(spans.iter().all(|s| s.service == "closure-runner"));

    let receiver = OtlpReceiver::start();
    let s = Scenario::new();
    run_traced(
        &s,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    );
    assert!(receiver.spans().is_empty(), "nothing exported");
}

#[test]
fn a_webhook_run_joins_the_trace_of_the_request_that_brought_it() {
    let receiver = OtlpReceiver::start();
    let s = scenario(1, 100);
    let service = Service::start_with(
        &s,
        &[],
        None,
        "error",
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)],
    );
    let body = decision("decision-traced", "RV-118");
    let mut headers = signed("msg-traced", &body);
    let sender_span = "b7ad6b7169203331";
    headers.push(("traceparent", format!("00-{TRACE}-{sender_span}-01")));
    let (code, accepted) = service.post(&headers, &body);
    assert_eq!(code, 202, "{accepted}");
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    assert_eq!(outcome_of(&s, &run_id), "completed");
    // Stopped, the service sends what it batched.
    let mut service = service;
    assert!(service.stop().success());
    let spans = receiver.spans();
    let run = named(&spans, "run")
        .into_iter()
        .find(|r| r.attribute("run_id").as_deref() == Some(run_id.as_str()))
        .unwrap_or_else(|| panic!("no run span: {spans:#?}"));
    assert_eq!(run.trace_id, TRACE);
    assert_eq!(run.parent_span_id, sender_span);
}
