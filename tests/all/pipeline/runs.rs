//! Runs that complete: every step once, duplicates suppressed, runs
//! listed, records taking turns, retention and the store's counts.

use super::*;
use crate::support::scenario::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};

#[test]
fn happy_path_all_closure_steps_done_and_confirmed_and_the_audit_verifies() {
    let s = Scenario::new();
    let (code, r) = run_json(&s);
    assert_eq!((code, r["outcome"].as_str()), (0, Some("completed")), "{r}");
    assert_all_closed(&s);
    let kinds: Vec<_> = audit_kinds(&s).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "step-verified").count(), 6);
    assert_eq!(kinds.last().map(String::as_str), Some("run-completed"));
    // Before each write the source was read again (the policy says so).
    assert_eq!(kinds.iter().filter(|k| *k == "revalidated").count(), 6);
    verify(&s);
    // The timeline names every record touched.
    let (_, show, _) = outcome(&s.handoff(&["runs", "show", "run-1"]));
    for touched in [
        "checklist/CL-7",
        "release/R-2026.11",
        "review-queue/RV-118",
        "channel/scheduler-intake",
        "channel/release-coordinators",
        "bundle/R-2026.11/evidence.tar",
        "review/RV-118",
    ] {
        assert!(show.contains(touched), "{touched} missing from:\n{show}");
    }
}

#[test]
fn the_same_event_delivered_ten_times_concurrently_is_one_run_writing_each_target_once() {
    let s = Scenario::new();
    // Ten deliveries at once: the same event id, and the same decision
    // re-sent under a new event id.
    let children: Vec<_> = (0..10)
        .map(|i| {
            let event = if i % 2 == 0 {
                "events/accepted.json"
            } else {
                "events/accepted-resent.json"
            };
            s.command(&[
                "run",
                "--event",
                event,
                "--context",
                "context.json",
                "--json",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let reports: Vec<Value> = children
        .into_iter()
        .map(|c| report(&c.wait_with_output().unwrap()))
        .collect();
    let outcomes: Vec<_> = reports
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "completed").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == "duplicate-suppressed")
            .count(),
        9
    );
    assert!(
        reports.iter().all(|r| r["run_id"] == "run-1"),
        "{reports:?}"
    );
    assert_eq!(s.runs().len() as i64, 1);
    assert_all_closed(&s);
    // And ten more, one after another, change nothing.
    for _ in 0..10 {
        let (code, r) = run_json(&s);
        assert_eq!(
            (code, r["outcome"].as_str()),
            (0, Some("duplicate-suppressed"))
        );
    }
    assert_all_closed(&s);
    verify(&s);
}

#[test]
fn runs_list_selects_runs_by_how_they_ended_or_that_they_have_not() {
    let s = Scenario::new();
    // run-1: the process killed before its first write, so not ended.
    let mut child = s.spawn_paused("before-apply:close-checklist");
    let paused = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(|l| l.unwrap())
        .find(|l| l.contains(handoff::pipeline::faults::PAUSED));
    assert!(paused.is_some(), "the run never reached its pause point");
    child.kill().unwrap();
    child.wait().unwrap();
    // run-2: a decision reopened since its event, halted for a person.
    let reopened = another_decision(&s, "RV-200", "reopened");
    let (_, halted) = run_event_json(&s, &reopened);
    assert_eq!(halted["outcome"], "halted-for-follow-up", "{halted}");
    // run-3: an accepted one, carried through.
    let accepted = another_decision(&s, "RV-300", "accepted");
    let (_, done) = run_event_json(&s, &accepted);
    let done_as = done["outcome"].as_str().unwrap().to_string();
    assert!(done_as.starts_with("completed"), "{done}");

    let listed = |filter: &[&str]| -> Vec<Value> {
        listed_json(&s, &["runs", "list"], filter)
            .into_iter()
            .map(|r| r["run_id"].clone())
            .collect()
    };
    assert_eq!(listed(&[]), ["run-3", "run-2", "run-1"]);
    assert_eq!(listed(&["--outcome", "unfinished"]), ["run-1"]);
    assert_eq!(listed(&["--outcome", "halted-for-follow-up"]), ["run-2"]);
    assert_eq!(listed(&["--outcome", &done_as]), ["run-3"]);
    assert!(listed(&["--outcome", "partially-completed"]).is_empty());
    assert_eq!(listed(&["--limit", "1"]), ["run-3"]);
    // No limit of nothing: 0 is refused, as a wrong command line.
    let (code, _, err) = outcome(&s.handoff(&["runs", "list", "--limit", "0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--limit"), "{err}");

    let (code, out, _) = outcome(&s.handoff(&["runs", "list", "--outcome", "partially-completed"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("no partially-completed runs in "), "{out}");
    let (code, out, _) = outcome(&s.handoff(&["runs", "list", "--outcome", "unfinished"]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("run-1 ") && out.contains(" unfinished "),
        "{out}"
    );
    // An outcome that does not exist is refused, naming the ones that do.
    let (code, _, err) = outcome(&s.handoff(&["runs", "list", "--outcome", "done"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("halted-for-follow-up"), "{err}");
}

#[test]
fn steps_already_done_by_hand_are_skipped_as_idempotent_and_logged() {
    let s = Scenario::new();
    s.set(
        "checklist",
        "checklist",
        "CL-7",
        &["state"],
        json!("closed"),
    );
    s.set(
        "tracker",
        "release",
        "R-2026.11",
        &["state"],
        json!("approved"),
    );
    let (code, r) = run_json(&s);
    assert_eq!(
        (code, r["outcome"].as_str()),
        (0, Some("completed-with-skips")),
        "{r}"
    );
    let skipped: Vec<_> = audit_kinds(&s)
        .into_iter()
        .filter(|(k, _)| k == "step-skipped")
        .map(|(_, p)| p["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(skipped, ["close-checklist", "sync-tracker"]);
    let written: Vec<_> = s.writes().iter().map(|w| w["action"].clone()).collect();
    assert_eq!(written.len(), 4, "{written:?}");
    assert!(s.journal("checklist").is_empty());
    verify(&s);
    assert_steps_walked_their_lifecycle(&s.store(), "run-1");
}

/// The example's record stores take several calls at once, one per record,
/// because their adapter declares it (the example's configuration does not
/// say so): a run's write to a record another call holds waits for its
/// turn, and goes ahead once that call ends.
#[test]
fn a_call_on_a_record_another_call_holds_waits_for_its_turn() {
    use handoff::model::CloudEvent;
    use handoff::pipeline::throttle::Processes;
    let s = Scenario::new();
    let configured = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    assert!(!configured.contains("one-call-per-record = true"));
    let context = s.context();
    let event = CloudEvent::parse(
        &std::fs::read(s.path("events/accepted.json")).unwrap(),
        "test",
    )
    .unwrap();
    let (mut engine, throttle, rt) = s.engine_sharing_throttle();
    let report = rt.block_on(async {
        let record = throttle.record_key(&handoff::sandbox::RecordRef {
            system: "checklist".into(),
            kind: "checklist".into(),
            id: "CL-7".into(),
        });
        let held = throttle.turn("checklist", &record, Processes::All).await;
        let mut run = std::pin::pin!(engine.submit(&event, &context));
        tokio::select! {
            biased;
            done = &mut run => panic!("the run did not wait for the record: {done:?}"),
            () = throttle.until_waiting_for_records("checklist", 1) => {}
        }
        assert_eq!(s.record("checklist", "checklist", "CL-7")["state"], "open");
        assert!(s.journal("checklist").is_empty());
        drop(held);
        run.await.unwrap()
    });
    assert_eq!(report.outcome, handoff::pipeline::Outcome::Completed);
    assert_eq!(
        s.record("checklist", "checklist", "CL-7")["state"],
        "closed"
    );
    assert_eq!(s.journal("checklist").len(), 1);
    assert_eq!(throttle.records_in_use("checklist"), 0);
}

#[test]
fn pruning_old_runs_keeps_the_chain_verifying_and_the_dedupe_of_their_decisions() {
    let s = Scenario::new();
    // A second decision whose review was reopened: halted, its packet open.
    let halted = another_decision(&s, "RV-h1", "reopened");
    let (code, r) = run_json(&s);
    assert_eq!((code, r["outcome"].as_str()), (0, Some("completed")));
    let (code, _, _) = outcome(&s.run_event(&halted));
    assert_eq!(code, 3);
    let bytes_before = s.count("SELECT SUM(LENGTH(raw)) FROM events");

    let out = s.handoff(&["store", "prune", "--older-than-days", "0", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pruned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        pruned["pruned"]["runs"], 1,
        "only the finished run with nothing open: {pruned}"
    );
    assert_eq!(pruned["pruned"]["steps"], 6);
    assert!(s.count("SELECT SUM(LENGTH(raw)) FROM events") < bytes_before);
    // Pruning again finds nothing more.
    let again: Value = serde_json::from_slice(
        &s.handoff(&["store", "prune", "--older-than-days", "0", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(again["pruned"]["runs"], 0);

    verify(&s);
    // The decision sent again is still the same decision.
    let (code, r) = run_json(&s);
    assert_eq!(
        (code, r["outcome"].as_str()),
        (0, Some("duplicate-suppressed")),
        "{r}"
    );
    assert_eq!(s.writes().len(), 6, "no second write");
    let shown = s.handoff(&["runs", "show", "run-1"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    // Without a retention, prune says what to set.
    let none = s.handoff(&["store", "prune"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("retain-days"));
}

#[test]
fn the_counters_metrics_read_match_what_the_store_holds_after_every_kind_of_change() {
    let s = Scenario::new();
    let halted = another_decision(&s, "RV-c1", "reopened");
    let (code, _) = run_json(&s);
    assert_eq!(code, 0);
    for _ in 0..3 {
        run_json(&s); // duplicates
    }
    let (code, out, err) = outcome(&s.run_event(&halted));
    assert_eq!(code, 3, "{out}{err}");
    let out = s.handoff(&["follow-ups", "ack", "1", "--by", "release-coordinator"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.handoff(&[
        "follow-ups",
        "resolve",
        "1",
        "--action",
        "abandon",
        "--by",
        "release-coordinator",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.handoff(&["store", "prune", "--older-than-days", "0"]);
    assert!(out.status.success());

    let counter = |name: &str| -> i64 {
        s.count(&format!(
            "SELECT CAST(COALESCE((SELECT n FROM counters WHERE name = '{name}'), 0) AS INTEGER)"
        ))
    };
    for (name, recount) in [
        (
            "runs/completed",
            "SELECT COUNT(*) FROM runs WHERE outcome = 'completed'",
        ),
        (
            "runs/halted-for-follow-up",
            "SELECT COUNT(*) FROM runs WHERE outcome = 'halted-for-follow-up'",
        ),
        (
            "runs/running",
            "SELECT COUNT(*) FROM runs WHERE outcome IS NULL",
        ),
        (
            "follow-ups/stale-approval",
            "SELECT COUNT(*) FROM follow_ups WHERE reason = 'stale-approval'",
        ),
        (
            "decisions/allowed",
            "SELECT COUNT(*) FROM capability_decisions WHERE verdict = 'allowed'",
        ),
        (
            "duplicates",
            "SELECT COUNT(*) FROM audit WHERE kind = 'duplicate-suppressed'",
        ),
        (
            "acknowledged",
            "SELECT COUNT(*) FROM follow_ups WHERE acknowledged_at IS NOT NULL",
        ),
        (
            "resolved",
            "SELECT COUNT(*) FROM follow_ups WHERE resolved_at IS NOT NULL",
        ),
        (
            "handoffs/opened/release-readiness-closure/release-coordinator",
            "SELECT COUNT(*) FROM follow_ups f JOIN runs r ON r.run_id = f.run_id
             WHERE r.policy_id = 'release-readiness-closure' AND f.route_to = 'release-coordinator'",
        ),
        (
            "handoffs/resolved/release-readiness-closure/release-coordinator",
            "SELECT COUNT(*) FROM follow_ups f JOIN runs r ON r.run_id = f.run_id
             WHERE r.policy_id = 'release-readiness-closure' AND f.route_to = 'release-coordinator'
               AND f.resolved_at IS NOT NULL",
        ),
    ] {
        assert_eq!(counter(name), s.count(recount), "{name}");
    }
    assert_eq!(counter("duplicates"), 3);
    assert_eq!(counter("runs/completed"), 1);
    assert_eq!(counter("resolved"), 1);
}

#[test]
fn tampering_with_a_pipeline_audit_row_is_detected_by_verify() {
    let s = Scenario::new();
    assert_eq!(run_json(&s).0, 0);
    let store = s.store();
    let seq: i64 = store
        .conn()
        .unwrap()
        .query_row(
            "SELECT seq FROM audit WHERE kind = 'step-applied' ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    store
        .conn()
        .unwrap()
        .execute(
            "UPDATE audit SET payload = replace(payload, 'CL-7', 'CL-8') WHERE seq = ?1",
            [seq],
        )
        .unwrap();
    drop(store);
    let (code, _, err) = outcome(&s.handoff(&["audit", "verify"]));
    assert_eq!(code, 4);
    assert!(err.contains(&format!("row {seq}")), "{err}");
}
