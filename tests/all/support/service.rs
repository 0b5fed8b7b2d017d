//! The service harness: `handoff serve` started as a real process on a
//! scenario, with a webhook source and its secret, requests signed as a
//! sender signs them, and what it logs read as it comes.

use crate::support::scenario::*;
use handoff::serve::signature::{sign_standard, standard_key};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The Standard Webhooks specification's example key.
pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub(crate) const GITHUB_SECRET: &str = "a-github-webhook-secret";

pub(crate) const SOURCE: &str = "governance/release-reviews";

pub(crate) fn serve_config(
    workers: usize,
    max_queued: usize,
    reconcile_seconds: u64,
    source: &str,
) -> String {
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
pub(crate) struct Service {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) stderr: mpsc::Receiver<String>,
    /// Its standard output after the line it started with.
    pub(crate) stdout: Option<BufReader<ChildStdout>>,
}

impl Service {
    pub(crate) fn start(s: &Scenario, pause_at: Option<&str>) -> Service {
        Service::start_logging(s, pause_at, "error")
    }

    /// As `start`, with the service's log at `level` on its stderr.
    pub(crate) fn start_logging(s: &Scenario, pause_at: Option<&str>, level: &str) -> Service {
        Service::start_under(s, &[], pause_at, level)
    }

    /// As `start_logging`, run through `wrapper`.
    pub(crate) fn start_under(
        s: &Scenario,
        wrapper: &[&str],
        pause_at: Option<&str>,
        level: &str,
    ) -> Service {
        Service::start_with(s, wrapper, pause_at, level, &[])
    }

    /// As `start_under`, with more environment variables.
    pub(crate) fn start_with(
        s: &Scenario,
        wrapper: &[&str],
        pause_at: Option<&str>,
        level: &str,
        env: &[(&str, &str)],
    ) -> Service {
        let mut command = s.command_under(wrapper, &["serve", "--listen", "127.0.0.1:0"]);
        command.envs(env.iter().copied());
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
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("handoff serve: listening on ") else {
            let _ = child.kill();
            let err: Vec<String> = stderr.try_iter().collect();
            panic!("serve did not start: {line:?}\n{}", err.join("\n"));
        };
        Service {
            url: addr.to_string(),
            child,
            stderr,
            stdout: Some(stdout),
        }
    }

    /// Wait for a line on the service's stderr (a fault point reached).
    pub(crate) fn wait_for(&self, needle: &str) {
        self.line_with(needle);
    }

    /// The next line on the service's stderr that holds `needle` (within a
    /// minute, however many other lines come).
    pub(crate) fn line_with(&self, needle: &str) -> String {
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

    pub(crate) fn post(&self, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        self.post_to("/v1/events", headers, body)
    }

    /// POST to `path` (the door, perhaps with a query).
    pub(crate) fn post_to(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, Value) {
        let mut request = ureq::post(&format!("{}{path}", self.url));
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

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&format!("{}{path}", self.url)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// SIGTERM, not waiting for the service to end.
    pub(crate) fn signal_term(&self) {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// The service's exit status, once it has ended (within a minute), and
    /// its standard output after the line it started with.
    pub(crate) fn ended(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the service did not end");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        if let Some(mut stdout) = self.stdout.take() {
            std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        }
        (status, out)
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        self.stop()
    }

    /// SIGTERM, then the exit status; what it wrote stays readable.
    pub(crate) fn stop(&mut self) -> std::process::ExitStatus {
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

pub(crate) fn drain(stderr: ChildStderr) -> mpsc::Receiver<String> {
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

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) type Headers = Vec<(&'static str, String)>;

/// Standard Webhooks headers for a body, signed at `at` with `key`.
pub(crate) fn signed_at(key: &[u8], id: &str, at: i64, body: &[u8]) -> Headers {
    vec![
        ("content-type", "application/cloudevents+json".into()),
        ("webhook-id", id.into()),
        ("webhook-timestamp", at.to_string()),
        ("webhook-signature", sign_standard(key, id, at, body)),
    ]
}

pub(crate) fn signed(id: &str, body: &[u8]) -> Headers {
    signed_at(&standard_key(SECRET).unwrap(), id, now(), body)
}

/// An accepted decision for a review of its own (its own business key).
pub(crate) fn decision(event_id: &str, review: &str) -> Vec<u8> {
    json!({
        "specversion": "1.0", "id": event_id, "source": SOURCE,
        "type": "release.review.decided", "subject": review,
        "data": { "review_id": review, "review_version": "3",
                  "release_id": "R-2026.11", "state": "accepted" },
    })
    .to_string()
    .into_bytes()
}

pub(crate) fn scenario(workers: usize, max_queued: usize) -> Scenario {
    let s = Scenario::new();
    with_serve(&s, serve_config(workers, max_queued, 0, SOURCE));
    s
}

pub(crate) fn with_serve(s: &Scenario, serve: String) {
    let config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    std::fs::write(s.path("handoff.toml"), config + &serve).unwrap();
    std::fs::write(s.path("github-secret"), format!("{GITHUB_SECRET}\n")).unwrap();
}

/// Wait until the store shows the run finished; its outcome.
pub(crate) fn outcome_of(s: &Scenario, run_id: &str) -> String {
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
pub(crate) fn finished_outcome(s: &Scenario, run_id: &str) -> Option<String> {
    let store = s.store();
    let conn = store.conn().unwrap();
    handoff::store::runs::get(&conn, run_id)
        .unwrap()
        .and_then(|r| r.outcome)
        .map(|o| o.name().to_string())
}

pub(crate) fn events_stored(s: &Scenario) -> i64 {
    s.events().len() as i64
}

/// The anchor (`SEQ:HASH`) an "audit head" log line carries.
pub(crate) fn anchor_in(line: &str) -> String {
    let start = line.find("anchor=").expect("an anchor field") + "anchor=".len();
    line[start..].split_whitespace().next().unwrap().to_string()
}

/// Give each `(role, token, more keys)` a `[roles.NAME]` table whose token
/// is read from a file of its own.
pub(crate) fn with_role_tokens(s: &Scenario, roles: &[(&str, &str, &str)]) {
    let mut config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    for (role, token, extra) in roles {
        std::fs::write(s.path(&format!("{role}.token")), format!("{token}\n")).unwrap();
        config.push_str(&format!(
            "\n[roles.{role}]\ntokens = [{{ file = \"{role}.token\" }}]\n{extra}"
        ));
    }
    std::fs::write(s.path("handoff.toml"), config).unwrap();
}
