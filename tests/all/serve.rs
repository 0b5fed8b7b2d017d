//! `handoff serve` over real HTTP on 127.0.0.1: the binary is started on a
//! free port in a copy of the example (filesystem adapters), events are
//! signed as Standard Webhooks and GitHub senders sign them, and results are
//! read from the store and the targets' journals.

use crate::scenario::*;
use handoff::serve::signature::{sign_github, sign_standard, standard_key};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The Standard Webhooks specification's example key.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GITHUB_SECRET: &str = "a-github-webhook-secret";
const SOURCE: &str = "governance/release-reviews";

fn serve_config(workers: usize, max_queued: usize, reconcile_seconds: u64, source: &str) -> String {
    format!(
        r#"
[serve]
context = "context.json"
workers = {workers}
max-queued = {max_queued}
max-body-bytes = 8192
shutdown-grace-seconds = 1
reconcile-seconds = {reconcile_seconds}

[serve.sources."{source}"]
signature = "standard-webhooks"
secrets = [{{ env = "HANDOFF_TEST_WEBHOOK_SECRET" }}]

[serve.sources."github/releases"]
signature = "github"
secrets = [{{ file = "github-secret" }}]
"#
    )
}

/// A running `handoff serve`; killed when dropped.
struct Service {
    child: Child,
    url: String,
    stderr: mpsc::Receiver<String>,
}

impl Service {
    fn start(s: &Scenario, pause_at: Option<&str>) -> Service {
        Service::start_logging(s, pause_at, "error")
    }

    /// As `start`, with the service's log at `level` on its stderr.
    fn start_logging(s: &Scenario, pause_at: Option<&str>, level: &str) -> Service {
        Service::start_under(s, &[], pause_at, level)
    }

    /// As `start_logging`, run through `wrapper`.
    fn start_under(s: &Scenario, wrapper: &[&str], pause_at: Option<&str>, level: &str) -> Service {
        let mut command = s.command_under(wrapper, &["serve", "--listen", "127.0.0.1:0"]);
        command
            .env("HANDOFF_LOG", level)
            .env("HANDOFF_TEST_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(point) = pause_at {
            command.env("HANDOFF_FAULT_PAUSE", point);
        }
        let mut child = command.spawn().expect("spawn handoff serve");
        let stderr = drain(child.stderr.take().unwrap());
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line.trim().strip_prefix("handoff serve: listening on ") else {
            let _ = child.kill();
            let err: Vec<String> = stderr.try_iter().collect();
            panic!("serve did not start: {line:?}\n{}", err.join("\n"));
        };
        Service {
            url: addr.to_string(),
            child,
            stderr,
        }
    }

    /// Wait for a line on the service's stderr (a fault point reached).
    fn wait_for(&self, needle: &str) {
        self.line_with(needle);
    }

    /// The next line on the service's stderr that holds `needle` (within a
    /// minute, however many other lines come).
    fn line_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {needle:?} on the service's stderr"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn post(&self, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        let mut request = ureq::post(&format!("{}/v1/events", self.url));
        for (k, v) in headers {
            request = request.set(k, v);
        }
        let response = match request.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("POST: {e}"),
        };
        let status = response.status();
        let retry_after = response.header("retry-after").map(str::to_string);
        let mut value: Value = response.into_json().unwrap_or(Value::Null);
        if let Some(r) = retry_after {
            value["retry-after"] = json!(r);
        }
        (status, value)
    }

    fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&format!("{}{path}", self.url)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        self.stop()
    }

    /// SIGTERM, then the exit status; what it wrote stays readable.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

type Headers = Vec<(&'static str, String)>;

/// Standard Webhooks headers for a body, signed at `at` with `key`.
fn signed_at(key: &[u8], id: &str, at: i64, body: &[u8]) -> Headers {
    vec![
        ("content-type", "application/cloudevents+json".into()),
        ("webhook-id", id.into()),
        ("webhook-timestamp", at.to_string()),
        ("webhook-signature", sign_standard(key, id, at, body)),
    ]
}

fn signed(id: &str, body: &[u8]) -> Headers {
    signed_at(&standard_key(SECRET).unwrap(), id, now(), body)
}

/// An accepted decision for a review of its own (its own business key).
fn decision(event_id: &str, review: &str) -> Vec<u8> {
    json!({
        "specversion": "1.0", "id": event_id, "source": SOURCE,
        "type": "release.review.decided", "subject": review,
        "data": { "review_id": review, "review_version": "3",
                  "release_id": "R-2026.11", "state": "accepted" },
    })
    .to_string()
    .into_bytes()
}

fn scenario(workers: usize, max_queued: usize) -> Scenario {
    let s = Scenario::new();
    with_serve(&s, serve_config(workers, max_queued, 0, SOURCE));
    s
}

fn with_serve(s: &Scenario, serve: String) {
    let config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    std::fs::write(s.path("handoff.toml"), config + &serve).unwrap();
    std::fs::write(s.path("github-secret"), format!("{GITHUB_SECRET}\n")).unwrap();
}

/// Wait until the store shows the run finished; its outcome.
fn outcome_of(s: &Scenario, run_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(outcome) = finished_outcome(s, run_id) {
            return outcome;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The run's outcome in the store, once it has one.
fn finished_outcome(s: &Scenario, run_id: &str) -> Option<String> {
    s.store()
        .conn()
        .unwrap()
        .query_row(
            "SELECT outcome FROM runs WHERE run_id = ?1",
            [run_id],
            |r| r.get::<_, Option<String>>(0),
        )
        .unwrap()
}

fn events_stored(s: &Scenario) -> i64 {
    s.count("SELECT COUNT(*) FROM events")
}

#[test]
fn a_signed_event_is_stored_before_the_answer_then_driven_once_whatever_the_redeliveries() {
    let s = scenario(2, 100);
    let service = Service::start(&s, None);
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let (status, answer) = service.post(&signed("msg-1", &body), &body);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "accepted");
    // Durable before the answer: the event is in the store already.
    assert_eq!(events_stored(&s), 1);
    let run_id = answer["run_id"].as_str().unwrap().to_string();

    // The same delivery again, and the same decision under a new event id.
    let (status, again) = service.post(&signed("msg-1", &body), &body);
    assert_eq!(
        (status, &again["status"]),
        (200, &json!("duplicate")),
        "{again}"
    );
    assert_eq!(again["run_id"], run_id.as_str());
    let resent = std::fs::read(s.path("events/accepted-resent.json")).unwrap();
    let (status, resent) = service.post(&signed("msg-2", &resent), &resent);
    assert_eq!(
        (status, resent["run_id"].as_str()),
        (200, Some(run_id.as_str())),
        "{resent}"
    );

    assert_eq!(outcome_of(&s, &run_id), "completed");
    assert_eq!(s.writes().len(), 6, "each step written once");
    assert_eq!(events_stored(&s), 1);

    let (code, metrics) = service.get("/metrics");
    assert_eq!(code, 200);
    assert_lines(
        &metrics,
        &[
            "handoff_events_accepted_total 1",
            "handoff_events_duplicate_total 2",
            "handoff_runs{outcome=\"completed\"} 1",
            "handoff_intake_seconds_count 3",
            "# TYPE handoff_adapter_log_lines_dropped_total counter",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_open_fds gauge",
        ],
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("handoff_build_info{version=") && l.ends_with(" 1")),
        "{metrics}"
    );
    let rss: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rss > 1e6, "a resident size of {rss} bytes");
    // The run's transitions were written in turns at the one writer.
    let held: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("handoff_store_write_held_seconds_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no writer time in {metrics}"));
    assert!(held > 0.0, "the writer was never held: {held}");
    assert_eq!(service.get("/healthz").0, 200);
    assert_eq!(service.get("/readyz").0, 200);
}

#[test]
fn missing_wrong_expired_and_unknown_signatures_are_refused_counted_and_not_stored() {
    let s = scenario(1, 100);
    let service = Service::start(&s, None);
    let body = decision("evt-sig", "RV-300");
    let key = standard_key(SECRET).unwrap();
    let other = standard_key("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    let unsigned = vec![("content-type", "application/cloudevents+json".to_string())];
    // (what, headers, expected status, expected reason)
    let cases: Vec<(&str, Headers, u16, &str)> = vec![
        ("unsigned", unsigned, 401, "signature-missing"),
        (
            "wrong key",
            signed_at(&other, "m", now(), &body),
            401,
            "signature-mismatch",
        ),
        (
            "expired",
            signed_at(&key, "m", now() - 600, &body),
            401,
            "signature-expired",
        ),
        (
            "from the future",
            signed_at(&key, "m", now() + 600, &body),
            401,
            "signature-expired",
        ),
    ];
    for (name, headers, status, reason) in cases {
        let (code, answer) = service.post(&headers, &body);
        assert_eq!(
            (code, answer["reason"].as_str()),
            (status, Some(reason)),
            "{name}: {answer}"
        );
        assert!(
            answer["error"].as_str().unwrap().starts_with("signature"),
            "{answer}"
        );
    }
    // Signed for one body, sent with another.
    let tampered = decision("evt-sig", "RV-301");
    let (code, answer) = service.post(&signed("m", &body), &tampered);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (401, Some("signature-mismatch"))
    );

    let stranger = json!({"specversion": "1.0", "id": "x", "source": "elsewhere", "type": "t"})
        .to_string()
        .into_bytes();
    let (code, answer) = service.post(&signed("m", &stranger), &stranger);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (403, Some("unknown-source")),
        "{answer}"
    );

    let huge = vec![b' '; 9000];
    let (code, answer) = service.post(&signed("m", &huge), &huge);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (413, Some("too-large")),
        "{answer}"
    );

    assert_eq!(events_stored(&s), 0, "nothing refused is stored");
    let (_, metrics) = service.get("/metrics");
    assert_lines(
        &metrics,
        &[
            "handoff_requests_refused_total{reason=\"signature-missing\"} 1",
            "handoff_requests_refused_total{reason=\"signature-mismatch\"} 2",
            "handoff_requests_refused_total{reason=\"signature-expired\"} 2",
            "handoff_requests_refused_total{reason=\"unknown-source\"} 1",
            "handoff_requests_refused_total{reason=\"too-large\"} 1",
        ],
    );

    // The same request, correctly signed, is taken.
    let (code, answer) = service.post(&signed("m", &body), &body);
    assert_eq!(code, 202, "{answer}");
}

#[test]
fn a_replayed_request_inside_the_window_is_a_duplicate_not_a_second_run() {
    let s = scenario(1, 100);
    let service = Service::start(&s, None);
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let headers = signed("msg-replayed", &body);
    let (first, answer) = service.post(&headers, &body);
    assert_eq!(first, 202, "{answer}");
    let (replay, again) = service.post(&headers, &body);
    assert_eq!((replay, &again["status"]), (200, &json!("duplicate")));
    assert_eq!(again["run_id"], answer["run_id"]);
    assert_eq!(
        outcome_of(&s, answer["run_id"].as_str().unwrap()),
        "completed"
    );
    assert_eq!(s.writes().len(), 6);
}

#[test]
fn binary_mode_is_refused_since_no_signature_covers_its_headers_and_github_signatures_are_accepted()
{
    let s = scenario(1, 100);
    let service = Service::start(&s, None);
    // Binary mode: attributes in headers, the data is the body. The
    // signature covers webhook-id and the body, not the ce-* headers: the
    // same capture under another ce-id would verify too.
    let data = json!({ "review_id": "RV-118", "review_version": "3",
                       "release_id": "R-2026.11", "state": "accepted" })
    .to_string()
    .into_bytes();
    for ce_id in ["bin-evt-1", "bin-evt-2"] {
        let mut headers = signed("bin-1", &data);
        headers[0] = ("content-type", "application/json".into());
        for (k, v) in [
            ("ce-specversion", "1.0"),
            ("ce-id", ce_id),
            ("ce-source", SOURCE),
            ("ce-type", "release.review.decided"),
            ("ce-subject", "RV-118"),
        ] {
            headers.push((k, v.to_string()));
        }
        let (code, answer) = service.post(&headers, &data);
        assert_eq!(
            (code, answer["reason"].as_str()),
            (400, Some("binary-mode")),
            "{answer}"
        );
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("structured mode")
        );
    }
    assert_eq!(s.count("SELECT COUNT(*) FROM events"), 0);

    let mut body: Value = serde_json::from_slice(&decision("gh-1", "RV-400")).unwrap();
    body["source"] = json!("github/releases");
    let body = body.to_string().into_bytes();
    let github = |secret: &str, delivery: &str| {
        vec![
            ("content-type", "application/json".to_string()),
            ("x-github-delivery", delivery.to_string()),
            ("x-hub-signature-256", sign_github(secret.as_bytes(), &body)),
        ]
    };
    let (code, answer) = service.post(&github("not-the-secret-at-all", "d-1"), &body);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (401, Some("signature-mismatch"))
    );
    let (code, answer) = service.post(&github(GITHUB_SECRET, "d-1"), &body);
    assert_eq!(code, 202, "{answer}");
    // GitHub signs no timestamp: a capture can be sent again at any time,
    // under any delivery header. The event id is in the signed body, so it
    // is the same event: a duplicate.
    let (code, again) = service.post(&github(GITHUB_SECRET, "d-2"), &body);
    assert_eq!((code, again["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(again["run_id"], answer["run_id"]);
}

#[test]
fn a_body_cut_short_is_400_not_413_and_a_foreign_content_type_is_415() {
    use std::io::{Read, Write};
    let s = scenario(1, 100);
    let service = Service::start(&s, None);
    let body = decision("cut-1", "RV-601");
    let headers = signed("cut-1", &body);
    let addr = service.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let mut request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in &headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    // Either a 400 saying so, or the connection dropped: never a final 413.
    assert!(!answer.contains(" 413 "), "{answer}");
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("body-unreadable"), "{answer}");
    }
    // The whole body, later, is taken.
    let (code, _) = service.post(&headers, &body);
    assert_eq!(code, 202);

    let other = decision("cut-2", "RV-602");
    let mut headers = signed("cut-2", &other);
    headers[0] = ("content-type", "text/plain".into());
    let (code, answer) = service.post(&headers, &other);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (415, Some("unsupported-media-type")),
        "{answer}"
    );
    headers[0] = (
        "content-type",
        "application/cloudevents+json; charset=utf-8".into(),
    );
    assert_eq!(service.post(&headers, &other).0, 202);
}

#[test]
fn a_thousand_slow_connections_under_a_1024_file_limit_do_not_stop_service() {
    use std::io::{Read, Write};
    let s = Scenario::new();
    // The slow connections would be closed by the header timeout only
    // after 20 s: a well-formed request is answered well before, because
    // the service closes the connection that waited longest for its
    // headers when every place is taken.
    with_serve(
        &s,
        serve_config(1, 100, 0, SOURCE).replace(
            "shutdown-grace-seconds = 1",
            "shutdown-grace-seconds = 1\nheader-read-timeout-seconds = 20\n\
             body-read-timeout-seconds = 20\nmax-connections = 64",
        ),
    );
    // systemd's default limit of open files, for the service alone.
    let service = Service::start_under(&s, &["prlimit", "--nofile=1024:1024"], None, "error");
    let addr = service.url.trim_start_matches("http://").to_string();
    // A third trickle their headers, a third say nothing, a third send
    // headers and then a body that never comes.
    let body = decision("slow-ok", "RV-701");
    let mut slow = Vec::new();
    for i in 0..1000 {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        match i % 3 {
            0 => c
                .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
                .unwrap(),
            1 => {}
            _ => c
                .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
                .unwrap(),
        }
        slow.push(c);
    }
    // A well-formed request is answered while they hang on, long before
    // any of them times out.
    let mut request =
        ureq::post(&format!("{}/v1/events", service.url)).timeout(Duration::from_secs(10));
    for (k, v) in signed("slow-ok", &body) {
        request = request.set(k, &v);
    }
    let answered = request.send_bytes(&body).map(|r| r.status());
    assert_eq!(answered.ok(), Some(202));
    assert_eq!(service.get("/healthz").0, 200);
    // The service closed all but the places it has: no more than 64 of
    // the slow connections are still open.
    let mut open = 0;
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    open += 1;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    assert!(open <= 64, "{open} slow connections still open");
}

#[test]
fn a_flood_beyond_the_queue_gets_429_and_nothing_beyond_it_is_stored() {
    // One worker, held at a fault point by the first run; room for one more.
    let s = scenario(1, 1);
    let service = Service::start(&s, Some("after-apply:close-checklist"));
    // The seeded review, so that its run gets as far as the first write.
    let first = std::fs::read(s.path("events/accepted.json")).unwrap();
    assert_eq!(service.post(&signed("f0", &first), &first).0, 202);
    service.wait_for("paused at fault point");
    let second = decision("flood-1", "RV-501");
    assert_eq!(service.post(&signed("f1", &second), &second).0, 202);
    let mut refused = 0;
    for i in 2..12 {
        let body = decision(&format!("flood-{i}"), &format!("RV-5{i:02}"));
        let (code, answer) = service.post(&signed("f", &body), &body);
        assert_eq!(
            (code, answer["reason"].as_str()),
            (429, Some("backpressure")),
            "{answer}"
        );
        assert_eq!(answer["retry-after"], "1");
        refused += 1;
    }
    assert_eq!(refused, 10);
    assert_eq!(events_stored(&s), 2, "only what was answered 202 is stored");
    let (code, _) = service.get("/healthz");
    assert_eq!(code, 200, "still serving");
}

#[test]
fn sigterm_during_a_run_then_a_restart_completes_it_once() {
    let s = scenario(1, 10);
    let service = Service::start(&s, Some("after-apply:sync-tracker"));
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let (code, answer) = service.post(&signed("t-1", &body), &body);
    assert_eq!(code, 202, "{answer}");
    let run_id = answer["run_id"].as_str().unwrap().to_string();
    service.wait_for("paused at fault point");
    let status = service.terminate();
    assert!(status.success(), "a stop is not a failure: {status:?}");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM runs WHERE outcome IS NULL"),
        1
    );

    let service = Service::start(&s, None);
    assert_eq!(outcome_of(&s, &run_id), "completed");
    assert_eq!(
        s.writes().len(),
        6,
        "the write made before the stop is not repeated"
    );
    drop(service);
}

#[test]
fn a_source_without_a_usable_secret_refuses_to_start() {
    let s = scenario(1, 10);
    s.edit_config("secrets = [{ file = \"github-secret\" }]", "secrets = []");
    let o = s.handoff(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("github/releases") && err.contains("unsigned"),
        "{err}"
    );

    let s = scenario(1, 10);
    let o = s
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env_remove("HANDOFF_TEST_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("HANDOFF_TEST_WEBHOOK_SECRET is not set"),
        "{err}"
    );
}

#[test]
fn the_service_starts_on_a_store_whose_directory_does_not_exist_yet() {
    let s = scenario(1, 10);
    s.edit_config(
        "path = \"state/handoff.db\"",
        "path = \"not-yet/made/handoff.db\"",
    );
    let service = Service::start(&s, None);
    assert_eq!(service.get("/readyz").0, 200);
    assert!(service.terminate().success());
    assert!(s.path("not-yet/made/handoff.db").is_file());
}

#[test]
fn reconciliation_finds_a_decision_made_in_redmine_that_no_event_announced() {
    let (s, r, seeded) = crate::servers::polling_scenario();
    // One pass at start, none after during the test.
    with_serve(&s, serve_config(1, 10, 3600, "redmine/release-reviews"));
    let service = Service::start(&s, None);

    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        let found: Option<String> = s
            .store()
            .conn()
            .unwrap()
            .query_row("SELECT run_id FROM runs", [], |r| r.get(0))
            .ok();
        if let Some(run_id) = found {
            break run_id;
        }
        assert!(Instant::now() < deadline, "reconciliation created no run");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(outcome_of(&s, &run_id), "completed");
    let source: String = s
        .store()
        .conn()
        .unwrap()
        .query_row("SELECT source FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(source, "handoff/reconcile/governance");
    assert_eq!(r.status_of(seeded.checklist), "Closed");
    assert_eq!(r.status_of(seeded.release), "Approved");

    // The webhook arrives late: the same decision, not a second run.
    let body = std::fs::read(s.path("events/redmine.json")).unwrap();
    let (code, answer) = service.post(&signed("late", &body), &body);
    assert_eq!(
        (code, answer["run_id"].as_str()),
        (200, Some(run_id.as_str())),
        "{answer}"
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM runs"), 1);
    let (_, metrics) = service.get("/metrics");
    assert_lines(&metrics, &["handoff_reconciled_runs_total 1"]);
}

#[test]
fn a_reconciliation_pass_waits_for_room_at_the_source_adapter() {
    let (s, _, _) = crate::servers::polling_scenario();
    s.edit_config(
        "[adapters.governance]\n",
        "[adapters.governance]\nconcurrency = 1\n",
    );
    let context = s.context();
    let (mut engine, throttle, rt) = s.engine_sharing_throttle();
    rt.block_on(async {
        // Another caller holds the source adapter's only room.
        let held = throttle.acquire("governance").await.unwrap();
        let mut pass = std::pin::pin!(engine.reconcile(&context));
        tokio::select! {
            biased;
            done = &mut pass => panic!("the pass called the adapter without room: {:?}",
                done.map(|r| r.new_runs)),
            () = throttle.until_waiting("governance", 1) => {}
        }
        drop(held);
        let found = pass.await.unwrap();
        assert_eq!(found.new_runs.len(), 1, "the decision made in Redmine");
    });
}

/// A stream of the test's own on the shared NATS server, and a client.
fn decisions_stream(
    tag: &str,
) -> (
    String,
    String,
    async_nats::jetstream::Context,
    tokio::runtime::Runtime,
) {
    let server = std::env::var("HANDOFF_TEST_NATS_URL")
        .unwrap_or_else(|_| panic!("{}", crate::servers::NEEDS))
        .trim_start_matches("nats://")
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = format!("DECISIONS_{tag}_{}", std::process::id());
    let js = rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(server.as_str()).await.unwrap());
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("decisions.{tag}.{}.>", std::process::id())],
            ..Default::default()
        })
        .await
        .unwrap();
        js
    });
    (server, stream, js, rt)
}

#[test]
fn a_nats_event_published_twice_and_redelivered_after_a_restart_makes_one_run() {
    let tag = "twice";
    let (server, stream, js, rt) = decisions_stream(tag);
    let subject = format!("decisions.{tag}.{}.review", std::process::id());
    let s = scenario(1, 10);
    let config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    let filter = format!("decisions.{tag}.{}.>", std::process::id());
    let nats = format!(
        "\n[serve.nats]\nserver = \"{server}\"\nstream = \"{stream}\"\n\
         subject = \"{filter}\"\ndurable = \"handoff\"\nack-wait-seconds = 1\n"
    );
    std::fs::write(s.path("handoff.toml"), config + &nats).unwrap();
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let publish = |body: Vec<u8>| {
        rt.block_on(async {
            js.publish(subject.clone(), body.into())
                .await
                .unwrap()
                .await
                .unwrap();
        })
    };

    // First life: stored, then killed before the ack.
    let service = Service::start(&s, Some("intake:nats-before-ack"));
    publish(body.clone());
    service.wait_for("paused at fault point intake:nats-before-ack");
    assert_eq!(events_stored(&s), 1, "stored before the ack");
    drop(service); // SIGKILL: the message is unacknowledged

    // Second life: the message comes back, and the same event again.
    let service = Service::start(&s, None);
    publish(body);
    let deadline = Instant::now() + Duration::from_secs(60);
    let consumer_done = || {
        rt.block_on(async {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
                .get_stream(&stream)
                .await
                .unwrap()
                .get_consumer("handoff")
                .await
                .unwrap();
            let info = consumer.info().await.unwrap();
            info.num_pending == 0
                && info.num_ack_pending == 0
                && info.delivered.stream_sequence == 2
        })
    };
    while !consumer_done() {
        assert!(
            Instant::now() < deadline,
            "the consumer did not acknowledge both messages"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run_id: String = s
        .store()
        .conn()
        .unwrap()
        .query_row("SELECT run_id FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(outcome_of(&s, &run_id), "completed");
    assert_eq!(s.count("SELECT COUNT(*) FROM runs"), 1);
    assert_eq!(events_stored(&s), 1);
    assert_eq!(s.writes().len(), 6);
    let (_, metrics) = service.get("/metrics");
    // The redelivery and the second publish are duplicates.
    assert_lines(&metrics, &["handoff_events_duplicate_total 2"]);
    drop(service);

    // A stream that does not exist refuses the start, naming it.
    s.edit_config(
        &format!("stream = \"{stream}\""),
        "stream = \"NO_SUCH_STREAM\"",
    );
    let o = s
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("HANDOFF_TEST_WEBHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("NO_SUCH_STREAM"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn an_adapter_limit_holds_across_workers_and_each_step_and_call_is_timed_by_adapter() {
    // The example lets each filesystem instance take 4 calls at once, but
    // one per record (its read-change-write has no lock); four workers
    // then share it. Every run here closes the same release record:
    // without the per-record turns, two runs changing it at once can lose
    // one change, and the loser halts as not confirmed. The notification
    // channel is held to one call at a time, which four workers would
    // exceed without the limit.
    let s = Scenario::new();
    with_serve(&s, serve_config(4, 100, 0, SOURCE));
    s.edit_config(
        "[adapters.notify]\nconcurrency = 4",
        "[adapters.notify]\nconcurrency = 1",
    );
    let reviews: Vec<String> = (0..6).map(|i| format!("RV-30{i}")).collect();
    for review in &reviews {
        let decision_record = s.record("governance", "review", "RV-118");
        s.write_record("governance", "review", review, decision_record);
        let entry = s.record("queue", "review-queue", "RV-118");
        s.write_record("queue", "review-queue", review, entry);
    }
    let service = Service::start(&s, None);
    let runs: Vec<String> = reviews
        .iter()
        .map(|review| {
            let body = decision(&format!("evt-{review}"), review);
            let (code, answer) = service.post(&signed(&format!("msg-{review}"), &body), &body);
            assert_eq!(code, 202, "{answer}");
            answer["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    for run in &runs {
        let outcome = outcome_of(&s, run);
        assert!(outcome.starts_with("completed"), "{run}: {outcome}");
    }
    // No update lost: each run's message is on the shared channels.
    for (system, channel) in [
        ("notify", "release-coordinators"),
        ("queue", "scheduler-intake"),
    ] {
        let messages = s.messages(system, channel);
        assert_eq!(messages.len(), 6, "{messages:#?}");
    }

    let (_, metrics) = service.get("/metrics");
    assert_lines(
        &metrics,
        &[
            "handoff_adapter_concurrency_limit{adapter=\"tracker\"} 4",
            "handoff_adapter_concurrency_limit{adapter=\"notify\"} 1",
            // The limit held: never two calls into notify at once.
            "handoff_adapter_calls_peak{adapter=\"notify\"} 1",
            // Every run has finished: nobody waits at a limit any more.
            "handoff_adapter_calls_waiting{adapter=\"tracker\"} 0",
            "handoff_adapter_calls_waiting_for_record{adapter=\"tracker\"} 0",
            // Six runs: two tracker steps and one checklist step each.
            "handoff_step_seconds_count{adapter=\"tracker\"} 12",
            "handoff_step_seconds_count{adapter=\"checklist\"} 6",
            // One fresh instance of each adapter per run.
            "handoff_adapter_call_seconds_count{adapter=\"checklist\",call=\"instantiate\"} 6",
            "handoff_adapter_call_seconds_count{adapter=\"tracker\",call=\"instantiate\"} 6",
            "handoff_runs_in_flight 0",
        ],
    );
    // Each checklist step observes once, and once more to confirm a write
    // (how many runs found the shared checklist still open varies).
    let count = |call: &str| -> u64 {
        let prefix =
            format!("handoff_adapter_call_seconds_count{{adapter=\"checklist\",call=\"{call}\"}} ");
        let line = metrics.lines().find_map(|l| l.strip_prefix(&prefix));
        line.unwrap_or_else(|| panic!("no {prefix}in:\n{metrics}"))
            .parse()
            .unwrap()
    };
    let applied = count("apply");
    assert!((1..=6).contains(&applied), "{metrics}");
    assert_eq!(count("observe"), 6 + applied, "{metrics}");
}

/// The anchor (`SEQ:HASH`) an "audit head" log line carries.
fn anchor_in(line: &str) -> String {
    let start = line.find("anchor=").expect("an anchor field") + "anchor=".len();
    line[start..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn the_service_logs_the_audit_head_as_anchors_that_verify_accepts() {
    let s = scenario(1, 10);
    s.edit_config(
        "reconcile-seconds = 0",
        "reconcile-seconds = 0\nanchor-log-seconds = 1",
    );
    let mut service = Service::start_logging(&s, None, "info");
    let at_start = anchor_in(&service.line_with("when=\"start\""));
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let (code, answer) = service.post(&signed("a-1", &body), &body);
    assert_eq!(code, 202, "{answer}");
    let run_id = answer["run_id"].as_str().unwrap().to_string();
    assert_eq!(outcome_of(&s, &run_id), "completed");
    // A periodic line after the run: its head is past the start's.
    let seq = |a: &str| a.split(':').next().unwrap().parse::<i64>().unwrap();
    let periodic = loop {
        let anchor = anchor_in(&service.line_with("when=\"periodic\""));
        if seq(&anchor) > seq(&at_start) + 20 {
            break anchor;
        }
    };
    assert!(service.stop().success());
    let at_stop = anchor_in(&service.line_with("when=\"stop\""));
    let head = text(&s.handoff(&["audit", "head"]).stdout);
    assert_eq!(at_stop, head.trim());
    let (code, out, err) = outcome(&s.handoff(&[
        "audit", "verify", "--anchor", &at_start, "--anchor", &periodic, "--anchor", &at_stop,
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("holds all 3 anchored rows"), "{out}");
}

#[test]
fn a_backup_taken_while_events_arrive_verifies() {
    let s = scenario(2, 1000);
    let service = Service::start(&s, None);
    let url = service.url.clone();
    let sender = std::thread::spawn(move || {
        let mut accepted = 0;
        for i in 0..60 {
            let body = decision(&format!("load-{i}"), &format!("RV-9{i:02}"));
            let mut request = ureq::post(&format!("{url}/v1/events"));
            for (k, v) in signed(&format!("load-{i}"), &body) {
                request = request.set(k, &v);
            }
            if request.send_bytes(&body).is_ok_and(|r| r.status() == 202) {
                accepted += 1;
            }
        }
        accepted
    });
    let mut taken = Vec::new();
    for n in 0..3 {
        let copy = s.path(&format!("backups/copy-{n}.db"));
        let out = s.handoff(&["store", "backup", copy.to_str().unwrap(), "--json"]);
        let answer: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.code(), Some(0), "{answer}");
        assert_eq!(answer["verified"], true, "{answer}");
        taken.push((copy, answer["rows"].as_u64().unwrap()));
    }
    assert_eq!(sender.join().unwrap(), 60);
    for (copy, rows) in &taken {
        assert!(*rows > 0);
        // The copy is a store of its own: verify reads it as one.
        let out = s.handoff(&["--store", copy.to_str().unwrap(), "audit", "verify"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A backup never overwrites.
    let again = s.handoff(&["store", "backup", taken[0].0.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}

#[test]
fn logs_at_a_terminal_have_colours_unless_no_color_is_set() {
    let s = scenario(1, 10);
    let bin = env!("CARGO_BIN_EXE_handoff");
    // `script` gives the service a terminal; its log is read back from it.
    let first_line = |no_color: bool| -> String {
        let env = if no_color { "NO_COLOR=1 " } else { "" };
        let mut child = std::process::Command::new("script")
            .current_dir(s.path(""))
            .args([
                "-qec",
                &format!(
                    "env {env}HANDOFF_LOG=info HANDOFF_TEST_WEBHOOK_SECRET={SECRET} {bin} serve --listen 127.0.0.1:0"
                ),
                "/dev/null",
            ])
            .env_remove("HANDOFF_CONFIG")
            .env_remove("HANDOFF_STORE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux)");
        let line = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("audit head"))
            .expect("the service logs its anchor at start");
        // The service leads the terminal's session: it gets a hangup when
        // `script`, holding the terminal, goes.
        let _ = child.kill();
        let _ = child.wait();
        line
    };
    assert!(first_line(false).contains('\x1b'), "colours at a terminal");
    let plain = first_line(true);
    assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
}
