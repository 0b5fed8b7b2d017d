//! The service's life: a stop mid-run and a restart, a stop while it
//! starts, refusals at start,
//! audit anchors, a backup while events arrive, logs at a terminal, and an
//! adapter's limit held across workers.

use crate::support::scenario::*;
use crate::support::service::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

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
    assert_eq!(s.unfinished() as i64, 1);

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
fn a_second_sigterm_while_runs_finish_stops_at_once_and_the_run_resumes_once() {
    let s = scenario(1, 10);
    // Far longer than the test waits: only the second signal can end it.
    s.edit_config(
        "shutdown-grace-seconds = 1",
        "shutdown-grace-seconds = 3600",
    );
    let service = Service::start_logging(&s, Some("after-apply:sync-tracker"), "info");
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let (code, answer) = service.post(&signed("t-2", &body), &body);
    assert_eq!(code, 202, "{answer}");
    let run_id = answer["run_id"].as_str().unwrap().to_string();
    service.wait_for("paused at fault point");
    service.signal_term();
    service.wait_for("stopping: intake closed");
    service.signal_term();
    let (status, out) = service.ended();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("stopped at a second signal"), "{out}");
    assert_eq!(s.unfinished() as i64, 1);

    let service = Service::start(&s, None);
    assert_eq!(outcome_of(&s, &run_id), "completed");
    assert_eq!(s.writes().len(), 6, "nothing written twice");
    drop(service);
}

#[test]
fn a_store_that_refuses_writes_stops_the_service_with_an_error_until_it_starts_again() {
    let s = scenario(1, 10);
    let service = Service::start(&s, None);
    assert_eq!(service.get("/healthz"), (200, "ok\n".to_string()));
    // A fault only a commit meets: every event stored from now on carries
    // a row whose reference is checked when its group is committed.
    let poison = "CREATE TABLE parent (n INTEGER PRIMARY KEY);
        CREATE TABLE child (n INTEGER REFERENCES parent (n) DEFERRABLE INITIALLY DEFERRED);
        CREATE TRIGGER poison AFTER INSERT ON events BEGIN INSERT INTO child VALUES (99); END;";
    let store = rusqlite::Connection::open(s.path("state/handoff.db")).unwrap();
    store.execute_batch(poison).unwrap();
    let body = std::fs::read(s.path("events/accepted.json")).unwrap();
    let (code, answer) = service.post(&signed("p-1", &body), &body);
    assert!(code >= 500, "{code} {answer}");
    assert_eq!(events_stored(&s), 0, "nothing of it was committed");
    // It stops by itself and exits with an error, so that a supervisor
    // that restarts what fails (systemd's Restart=on-failure) starts it
    // again; nothing is left for a person to notice on a health page.
    let said = service.line_with("handoff exits with an error");
    assert!(said.contains("the store refuses every write"), "{said}");
    let last = service.line_with("error: the store refuses every write");
    assert!(last.contains("start handoff again"), "{last}");
    let (status, out) = service.ended();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(!out.contains("stopped"), "not a clean stop: {out}");
    store
        .execute_batch("DROP TRIGGER poison; DROP TABLE child; DROP TABLE parent;")
        .unwrap();
    // Started again, it is healthy and takes the event the sender retries.
    let service = Service::start(&s, None);
    assert_eq!(service.get("/healthz"), (200, "ok\n".to_string()));
    let (code, answer) = service.post(&signed("p-1", &body), &body);
    assert_eq!(code, 202, "{answer}");
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
fn sigterm_while_the_service_starts_stops_it_cleanly() {
    let s = scenario(1, 10);
    // A cache of its own: the start compiles every adapter (seconds), and
    // the store exists from before that.
    let cache = s.path("state/own-cache");
    s.edit_config(
        &format!(
            "cache-dir = \"{}/artifact-cache\"",
            env!("CARGO_TARGET_TMPDIR")
        ),
        &format!("cache-dir = \"{}\"", cache.display()),
    );
    let mut child = s
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("HANDOFF_TEST_WEBHOOK_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cache.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the start made no cache"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "serve ended while starting"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).ends_with("handoff serve: stopped\n"),
        "{}",
        text(&out.stdout)
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
            "handoff_steps_waiting_for_record 0",
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
fn a_backup_stopped_part_way_leaves_no_file_under_the_backups_name() {
    let s = scenario(1, 10);
    let (code, out, err) = outcome(&s.run());
    assert_eq!(code, 0, "{out}{err}");
    // Some 100 MB more to copy, so that the copy can be stopped midway.
    let conn = rusqlite::Connection::open(s.path("state/handoff.db")).unwrap();
    conn.execute_batch("CREATE TABLE filler (b BLOB)").unwrap();
    for _ in 0..12 {
        conn.execute("INSERT INTO filler VALUES (zeroblob(8 * 1024 * 1024))", [])
            .unwrap();
    }
    drop(conn);
    let copy = s.path("backups/copy.db");
    let partial = s.path("backups/copy.db.partial");
    let backup = || s.handoff(&["store", "backup", copy.to_str().unwrap()]);
    let mut child = s
        .command(&["store", "backup", copy.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed as soon as it has begun to write.
    while !(partial.exists() || copy.exists()) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the backup ended ({status}) before it began to write");
        }
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!copy.exists(), "a part-way copy has the backup's name");
    // The next backup to that name says what was left, and makes nothing.
    let (code, _, err) = outcome(&backup());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("copy.db.partial") && err.contains("stopped part-way"),
        "{err}"
    );
    assert!(!copy.exists());
    std::fs::remove_file(&partial).unwrap();
    let (code, out, err) = outcome(&backup());
    assert_eq!(code, 0, "{out}{err}");
    assert!(copy.exists() && !partial.exists());
    let verified = s.handoff(&["--store", copy.to_str().unwrap(), "audit", "verify"]);
    assert_eq!(verified.status.code(), Some(0));
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
