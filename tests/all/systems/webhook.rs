//! CONTRACT TEST: Slack's incoming webhooks are a hosted API that cannot run
//! here, so the `webhook` adapter is checked against a hand-written receiver
//! that answers the way Slack documents it: `200 ok`, `429` with
//! `Retry-After` when rate limited, `404 no_service` for a revoked URL,
//! `500 rollup_error` on its own failures. The rest of the scenario runs on
//! the filesystem adapters. The receiver is a real HTTP server on 127.0.0.1;
//! the adapter's manifest is re-declared for its origin and approved, as an
//! operator does for their own chat system.

use crate::support::scenario::Scenario;
use crate::support::servers::run;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const HOOK_PATH: &str = "/services/T0001/B0002/hook-secret";

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
struct Posted {
    path: String,
    webhook_id: Option<String>,
    content_type: Option<String>,
    /// Read by the trace test, built with `otlp`.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    traceparent: Option<String>,
    body: Value,
}

struct Receiver {
    posted: Vec<Posted>,
    /// Answers to give, in order; after they run out, `200 ok`. [`KILL`]
    /// kills the process that posted, once it is known, instead.
    script: VecDeque<u16>,
    /// The process [`KILL`] kills (0 until the test names it).
    poster: tokio::sync::watch::Receiver<u32>,
}

/// In a script: SIGKILL the process that posted, after the post arrived
/// and before it is answered (the moment its sent log cannot record).
const KILL: u16 = 0;

/// The fake Slack receiver, served on its own thread's runtime so that the
/// test can drive the `handoff` binary synchronously.
struct FakeSlack {
    origin: String,
    state: Arc<Mutex<Receiver>>,
    poster: tokio::sync::watch::Sender<u32>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeSlack {
    fn start(script: &[u16]) -> FakeSlack {
        let (poster, watching) = tokio::sync::watch::channel(0);
        let state = Arc::new(Mutex::new(Receiver {
            posted: Vec::new(),
            script: script.iter().copied().collect(),
            poster: watching,
        }));
        let app = Router::new().fallback(answer).with_state(state.clone());
        let (origin, runtime) = crate::support::serve_in_background(app);
        FakeSlack {
            origin,
            state,
            poster,
            _runtime: runtime,
        }
    }

    /// The process a [`KILL`] in the script kills.
    fn posting_from(&self, pid: u32) {
        self.poster.send_replace(pid);
    }

    fn posted(&self) -> Vec<Posted> {
        self.state.lock().unwrap().posted.clone()
    }
}

async fn answer(
    State(state): State<Arc<Mutex<Receiver>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // Taken (and recorded) before anything else: a kill comes after.
    let mut poster = {
        let mut state = state.lock().unwrap();
        state.posted.push(Posted {
            path: uri.path().to_string(),
            webhook_id: header("webhook-id"),
            content_type: header("content-type"),
            traceparent: header("traceparent"),
            body: serde_json::from_str(&body).unwrap_or(Value::Null),
        });
        (state.script.front() == Some(&KILL)).then(|| state.poster.clone())
    };
    if let Some(poster) = poster.as_mut() {
        let pid = *poster.wait_for(|pid| *pid != 0).await.unwrap();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success(), "kill {pid}");
    }
    let mut state = state.lock().unwrap();
    if uri.path() != HOOK_PATH {
        return (StatusCode::NOT_FOUND, "no_service").into_response();
    }
    match state.script.pop_front().unwrap_or(200) {
        200 | KILL => (StatusCode::OK, "ok").into_response(),
        429 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "rate_limited",
        )
            .into_response(),
        404 => (StatusCode::NOT_FOUND, "no_service").into_response(),
        code => (StatusCode::from_u16(code).unwrap(), "rollup_error").into_response(),
    }
}

/// The steps a packet leaves pending.
fn pending_steps(packet: &Value) -> Vec<&str> {
    packet["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_str().unwrap())
        .collect()
}

/// The filesystem example with `notify` served by the webhook adapter,
/// whose manifest now declares the receiver's origin (and is approved).
fn scenario(slack: &FakeSlack) -> Scenario {
    scenario_with(slack, "")
}

/// As [`scenario`], with more of the instance's config (`, key = "value"`).
fn scenario_with(slack: &FakeSlack, more_config: &str) -> Scenario {
    let s = Scenario::new();
    let package = s.path("packages/webhook");
    std::fs::create_dir_all(&package).unwrap();
    let built = crate::support::built("webhook");
    std::fs::copy(built.join("webhook.wasm"), package.join("webhook.wasm")).unwrap();
    let manifest = std::fs::read_to_string(built.join("adapter.toml")).unwrap();
    assert!(manifest.contains("url = \"https://hooks.slack.com\""));
    std::fs::write(
        package.join("adapter.toml"),
        manifest.replace("https://hooks.slack.com", &slack.origin),
    )
    .unwrap();
    s.notify_through(
        &package,
        &format!(
            "url-release-coordinators = \"{}{HOOK_PATH}\"{more_config}",
            slack.origin
        ),
    );
    s
}

#[test]
fn one_post_with_the_key_as_webhook_id_even_when_the_event_is_delivered_again() {
    let slack = FakeSlack::start(&[]);
    let s = scenario(&slack);
    let (code, first) = run(&s, "events/accepted.json");
    assert_eq!(
        (code, first["outcome"].as_str()),
        (0, Some("completed")),
        "{first}"
    );
    for _ in 0..10 {
        let (code, again) = run(&s, "events/accepted.json");
        assert_eq!(code, 0, "{again}");
    }
    let posted = slack.posted();
    assert_eq!(posted.len(), 1, "{posted:#?}");
    let post = &posted[0];
    assert_eq!(post.path, HOOK_PATH);
    assert_eq!(post.content_type.as_deref(), Some("application/json"));
    let key = post.webhook_id.as_deref().expect("a webhook-id header");
    let sent = std::fs::read_to_string(s.path("state/sent/release-coordinators.sent")).unwrap();
    assert_eq!(
        sent.lines().collect::<Vec<_>>(),
        vec![key],
        "the key is recorded once"
    );
    let text = post.body["text"].as_str().expect("Slack's `text` field");
    assert!(text.contains("R-2026.11"), "{text}");
    assert!(
        text.contains("<https://evidence.example.internal/releases/R-2026.11/evidence.tar|"),
        "the evidence link in Slack's form: {text}"
    );
}

#[test]
fn rate_limited_and_server_errors_are_retried_with_the_same_webhook_id() {
    let slack = FakeSlack::start(&[429, 500]);
    let s = scenario(&slack);
    let (code, report) = run(&s, "events/accepted.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("completed")),
        "{report}"
    );
    let ids: Vec<Option<String>> = slack.posted().into_iter().map(|p| p.webhook_id).collect();
    assert_eq!(ids.len(), 3, "429, 500, then 200: {ids:?}");
    assert!(
        ids[0].is_some() && ids.iter().all(|id| *id == ids[0]),
        "{ids:?}"
    );
}

/// The one moment a sent log cannot cover: the receiver has the post and
/// the process is killed before it hears the answer. The run resumed after
/// it does not post again; it hands the step to a person, saying the post
/// may have arrived, and posts once more only when that person resumes it.
#[test]
fn a_process_killed_while_its_post_is_answered_asks_a_person_before_posting_again() {
    let slack = FakeSlack::start(&[KILL]);
    let s = scenario(&slack);
    s.run_killed(|pid| slack.posting_from(pid));
    assert_eq!(slack.posted().len(), 1);

    let (code, resumed) = s.resume_json();
    assert_eq!(code, 3, "a person is asked: {resumed}");
    assert_eq!(slack.posted().len(), 1, "not posted again: {resumed}");
    let packet = s.follow_up(1)["packet"].clone();
    assert_eq!(packet["reason"], "target-refused", "{packet}");
    let summary = packet["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(
            "notify apply: the post \"Release R-2026.11 closure done (review RV-118 v3)\" to \
             channel release-coordinators (key hk1-"
        ) && summary.contains(
            "may have been delivered already (an earlier try ended without learning whether it arrived)"
        ),
        "{summary}"
    );
    assert_eq!(pending_steps(&packet), ["notify-coordinator"], "{packet}");

    // The person looked, found nothing, and resumes: posted once more.
    let done = s.resume_follow_up(1);
    assert_eq!(done["outcome"], "completed", "{done}");
    let posted = slack.posted();
    assert_eq!(posted.len(), 2, "{posted:#?}");
    assert_eq!(posted[0].webhook_id, posted[1].webhook_id);
    let key = posted[0].webhook_id.clone().unwrap();
    let sent = std::fs::read_to_string(s.path("state/sent/release-coordinators.sent")).unwrap();
    assert_eq!(sent.lines().collect::<Vec<_>>(), [key.as_str()]);
    // And nothing more on another delivery of the event.
    let (code, again) = run(&s, "events/accepted.json");
    assert_eq!(code, 0, "{again}");
    assert_eq!(slack.posted().len(), 2);
}

/// The run's own record of asking a person can be lost too: a resume that
/// found the post may have arrived, killed before it recorded its packet,
/// leaves the next resume to find the same, and post nothing.
#[test]
fn a_resume_killed_before_it_recorded_its_question_still_posts_nothing() {
    use std::io::{BufRead, BufReader};
    let slack = FakeSlack::start(&[KILL]);
    let s = scenario(&slack);
    s.run_killed(|pid| slack.posting_from(pid));
    let mut resuming = s
        .command(&["resume"])
        .env(
            "HANDOFF_FAULT_PAUSE",
            "after-failed-apply:notify-coordinator",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let paused = BufReader::new(resuming.stderr.take().unwrap())
        .lines()
        .map(|l| l.unwrap())
        .find(|l| l.contains(handoff::pipeline::faults::PAUSED));
    assert!(paused.is_some(), "the resume never reached its pause point");
    resuming.kill().unwrap();
    resuming.wait().unwrap();
    assert_eq!(
        s.count("SELECT COUNT(*) FROM follow_ups"),
        0,
        "no packet recorded"
    );

    let (code, resumed) = s.resume_json();
    assert_eq!(code, 3, "a person is asked: {resumed}");
    assert_eq!(slack.posted().len(), 1, "never posted again: {resumed}");
}

/// A receiver its operator says drops a repeated `webhook-id` (as
/// Standard Webhooks asks) is posted to again after the same kill, with
/// the same `webhook-id`, and the run completes with nobody asked.
#[test]
fn a_receiver_that_drops_repeats_is_posted_to_again_after_a_kill_without_asking_anyone() {
    let slack = FakeSlack::start(&[KILL]);
    let s = scenario_with(&slack, ", receiver-dedupes = \"true\"");
    s.run_killed(|pid| slack.posting_from(pid));
    let (code, resumed) = s.resume_json();
    assert_eq!(
        (code, resumed["outcome"].as_str()),
        (0, Some("completed")),
        "{resumed}"
    );
    let posted = slack.posted();
    assert_eq!(posted.len(), 2, "{posted:#?}");
    assert_eq!(posted[0].webhook_id, posted[1].webhook_id);
}

#[test]
fn a_revoked_webhook_url_is_refused_not_retried_and_goes_to_a_person() {
    let slack = FakeSlack::start(&[404]);
    let s = scenario(&slack);
    let (code, report) = run(&s, "events/accepted.json");
    assert_ne!(report["outcome"].as_str(), Some("completed"), "{report}");
    assert_eq!(code, 3, "a run that hands work to a person: {report}");
    assert_eq!(slack.posted().len(), 1, "a refusal is not retried");
    let packet = &report["packet"];
    assert_eq!(packet["reason"], "target-refused", "{packet}");
    assert_eq!(pending_steps(packet), ["notify-coordinator"], "{packet}");
    assert!(
        packet["summary"].as_str().unwrap().contains("404"),
        "the receiver's answer is in the packet: {packet}"
    );
    assert!(
        std::fs::read_to_string(s.path("state/sent/release-coordinators.sent"))
            .unwrap_or_default()
            .is_empty(),
        "nothing recorded as delivered"
    );
}

/// Built with `otlp` and given an endpoint, the post carries the trace of
/// the adapter call that made it on, in its `traceparent`.
#[cfg(feature = "otlp")]
#[test]
fn the_post_carries_the_runs_trace_on() {
    use crate::pipeline::traces::{TRACE, traced_event};
    let receiver = crate::support::otlp::OtlpReceiver::start();
    let slack = FakeSlack::start(&[]);
    let s = scenario(&slack);
    let event = traced_event(&s);
    let o = s
        .command(&[
            "run",
            "--event",
            &event,
            "--context",
            "context.json",
            "--json",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        crate::support::scenario::text(&o.stderr)
    );
    let posted = slack.posted();
    assert_eq!(posted.len(), 1);
    let carried = posted[0].traceparent.clone().expect("a traceparent header");
    let parts: Vec<&str> = carried.split('-').collect();
    assert_eq!((parts.len(), parts[1]), (4, TRACE), "{carried}");
    // It names the adapter call that made the request.
    let calls: Vec<String> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.name == "adapter call")
        .map(|s| s.span_id)
        .collect();
    assert!(
        calls.contains(&parts[2].to_string()),
        "{carried} not among {calls:?}"
    );
}
