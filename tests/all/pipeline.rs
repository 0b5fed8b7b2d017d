//! The hand-off pipeline end to end on the embedded default: the
//! release-readiness example, the real `handoff` binary, the filesystem
//! reference adapters as real components. Writes are counted in the
//! targets' own journals, never in our store.

use crate::scenario::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

fn report(o: &std::process::Output) -> Value {
    let (code, out, err) = outcome(o);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("exit {code}, not a JSON report ({e}): {out}\n{err}"))
}

fn run_json(s: &Scenario) -> (i32, Value) {
    run_event_json(s, "events/accepted.json")
}

/// `handoff run --json` of an event file, with the example's context.
fn run_event_json(s: &Scenario, event: &str) -> (i32, Value) {
    let o = s.handoff(&[
        "run",
        "--event",
        event,
        "--context",
        "context.json",
        "--json",
    ]);
    (o.status.code().unwrap(), report(&o))
}

/// The store's size on disk: the database and its write-ahead log.
fn store_bytes(s: &Scenario) -> u64 {
    ["handoff.db", "handoff.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(s.path(&format!("state/{f}"))).ok())
        .map(|m| m.len())
        .sum()
}

fn verify(s: &Scenario) {
    let (code, out, err) = outcome(&s.handoff(&["audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
}

fn audit_kinds(s: &Scenario) -> Vec<(String, Value)> {
    s.store()
        .audit_rows(Some("run-1"))
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, serde_json::from_str(&r.payload).unwrap()))
        .collect()
}

fn step_states(s: &Scenario) -> Vec<(String, String)> {
    let store = s.store();
    handoff::store::steps::for_run(&store.conn().unwrap(), "run-1")
        .unwrap()
        .into_iter()
        .map(|r| (r.plan.id, r.state.name().to_string()))
        .collect()
}

/// Every target in its end state, each written exactly once per step.
fn assert_all_closed(s: &Scenario) {
    assert_eq!(
        s.record("checklist", "checklist", "CL-7")["state"],
        "closed"
    );
    let release = s.record("tracker", "release", "R-2026.11");
    assert_eq!(release["state"], "approved");
    assert_eq!(
        release["links"],
        json!(["https://evidence.example.internal/releases/R-2026.11/evidence.tar"])
    );
    assert_eq!(
        s.record("queue", "review-queue", "RV-118")["state"],
        "cleared"
    );
    assert_eq!(s.messages("queue", "scheduler-intake").len(), 1);
    let coordinators = s.messages("notify", "release-coordinators");
    assert_eq!(coordinators.len(), 1);
    assert_eq!(
        coordinators[0]["links"],
        json!(["https://evidence.example.internal/releases/R-2026.11/evidence.tar"])
    );
    let writes = s.writes();
    let keys: std::collections::BTreeSet<_> = writes.iter().map(|w| w["key"].to_string()).collect();
    assert_eq!(writes.len(), 6, "{writes:#?}");
    assert_eq!(keys.len(), 6, "a key written twice: {writes:#?}");
}

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
    assert_eq!(s.count("SELECT COUNT(*) FROM runs"), 1);
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

fn halts_before_any_write(s: &Scenario, reason: &str) -> Value {
    let (code, r) = run_json(s);
    assert_eq!(code, 3, "{r}");
    assert_eq!(r["outcome"], "halted-for-follow-up");
    assert!(s.writes().is_empty(), "written: {:?}", s.writes());
    let packet = s.follow_up(r["follow_up"].as_i64().unwrap());
    assert_eq!(packet["packet"]["reason"], reason, "{packet:#}");
    assert_eq!(packet["packet"]["route_to"], "release-coordinator");
    assert_eq!(packet["packet"]["pending"].as_array().unwrap().len(), 6);
    assert!(packet["packet"]["done"].as_array().unwrap().is_empty());
    verify(s);
    packet
}

/// Another decision of the example's kind, for review `id` in `state`:
/// its record in the source and its entry in the review queue (as the
/// example's are before any run), and an event for it in `events/<id>.json`.
fn another_decision(s: &Scenario, id: &str, state: &str) -> String {
    let mut review = s.record("governance", "review", "RV-118");
    review["state"] = json!(state);
    s.write_record("governance", "review", id, review);
    let entry = s.record("queue", "review-queue", "RV-118");
    assert_eq!(
        entry["state"], "waiting",
        "the example's queue entry, untouched"
    );
    s.write_record("queue", "review-queue", id, entry);
    let mut event: Value =
        serde_json::from_slice(&std::fs::read(s.path("events/accepted.json")).unwrap()).unwrap();
    event["id"] = json!(format!("decision-{id}"));
    event["subject"] = json!(id);
    event["data"]["review_id"] = json!(id);
    let path = format!("events/{id}.json");
    std::fs::write(s.path(&path), event.to_string()).unwrap();
    path
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

/// What a `list` command answers with `--json` and `filter`.
fn listed_json(s: &Scenario, command: &[&str], filter: &[&str]) -> Vec<Value> {
    let args: Vec<&str> = [command, &["--json"], filter].concat();
    let (code, out, err) = outcome(&s.handoff(&args));
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// The example policy with `sla-hours` set to `hours`, approved.
fn with_sla_hours(s: &Scenario, hours: u32) {
    let path = s.path("policies/release-readiness.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find("sla-hours = ")
        .expect("the example sets sla-hours");
    let end = start + text[start..].find('\n').unwrap();
    let edited = format!("{}sla-hours = {hours}{}", &text[..start], &text[end..]);
    std::fs::write(&path, edited).unwrap();
    s.approve_policy();
}

#[test]
fn follow_ups_past_their_due_time_are_listed_and_counted_as_overdue() {
    let s = Scenario::new();
    // Follow-up 1 gets no time at all: due the moment it is raised.
    with_sla_hours(&s, 0);
    let first = another_decision(&s, "RV-200", "reopened");
    let (code, r) = run_event_json(&s, &first);
    assert_eq!((code, r["follow_up"].as_i64()), (3, Some(1)), "{r}");
    // Follow-up 2 gets eight hours.
    with_sla_hours(&s, 8);
    let second = another_decision(&s, "RV-300", "reopened");
    let (code, r) = run_event_json(&s, &second);
    assert_eq!((code, r["follow_up"].as_i64()), (3, Some(2)), "{r}");

    let listed = |filter: &[&str]| -> Vec<Value> {
        listed_json(&s, &["follow-ups", "list"], filter)
            .into_iter()
            .map(|f| f["id"].clone())
            .collect()
    };
    assert_eq!(listed(&[]), [2, 1]);
    assert_eq!(listed(&["--overdue"]), [1]);
    assert_eq!(listed(&["--role", "release-coordinator"]), [2, 1]);
    assert!(listed(&["--role", "someone-else"]).is_empty());
    let (_, out, _) =
        outcome(&s.handoff(&["follow-ups", "list", "--overdue", "--role", "someone-else"]));
    assert_eq!(out.trim(), "no overdue follow-ups for someone-else");
    let (_, out, _) = outcome(&s.handoff(&["follow-ups", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("2 ") && lines[0].ends_with("  open"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("1 ") && lines[1].ends_with("  open, overdue"),
        "{out}"
    );
    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store());
    assert_lines(
        &metrics,
        &["handoff_follow_ups_open 2", "handoff_follow_ups_overdue 1"],
    );

    // Decided: no longer waiting, so no longer overdue.
    let o = s.handoff(&[
        "follow-ups",
        "resolve",
        "1",
        "--action",
        "abandon",
        "--by",
        "release-coordinator",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(listed(&["--overdue"]).is_empty());
    assert_eq!(listed(&["--all"]), [2, 1]);
    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store());
    assert_lines(
        &metrics,
        &["handoff_follow_ups_open 1", "handoff_follow_ups_overdue 0"],
    );
    // Overdue means open: with --all it would mean nothing.
    let (code, _, err) = outcome(&s.handoff(&["follow-ups", "list", "--overdue", "--all"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_review_reopened_after_the_event_halts_before_any_write_with_the_snapshot() {
    let s = Scenario::new();
    s.set(
        "governance",
        "review",
        "RV-118",
        &["state"],
        json!("reopened"),
    );
    let packet = halts_before_any_write(&s, "stale-approval");
    let snapshot = &packet["packet"]["source_snapshot"];
    assert_eq!(snapshot["state"], "reopened");
    assert_eq!(snapshot["fields"]["review_version"], "3");
    assert_eq!(packet["packet"]["mismatch"]["path"], "state");
}

#[test]
fn a_superseded_review_version_halts_before_any_write() {
    let s = Scenario::new();
    s.set(
        "governance",
        "review",
        "RV-118",
        &["fields", "review_version"],
        json!("4"),
    );
    let packet = halts_before_any_write(&s, "version-mismatch");
    assert_eq!(
        packet["packet"]["source_snapshot"]["fields"]["review_version"],
        "4"
    );
}

#[test]
fn a_missing_milestone_mapping_halts_before_any_write() {
    let s = Scenario::new();
    std::fs::remove_file(s.path("state/tracker/milestone/M-2026.11.json")).unwrap();
    halts_before_any_write(&s, "mapping-missing");
}

#[test]
fn a_milestone_mapped_to_another_release_halts_before_any_write() {
    let s = Scenario::new();
    s.set(
        "tracker",
        "milestone",
        "M-2026.11",
        &["fields", "release_id"],
        json!("R-2026.12"),
    );
    halts_before_any_write(&s, "mapping-conflict");
}

#[test]
fn a_renamed_milestone_halts_before_any_write() {
    let s = Scenario::new();
    s.set(
        "tracker",
        "milestone",
        "M-2026.11",
        &["fields", "name"],
        json!("M-2026.11 (moved)"),
    );
    halts_before_any_write(&s, "mapping-conflict");
}

#[test]
fn an_evidence_hash_mismatch_halts_before_any_write() {
    let s = Scenario::new();
    std::fs::write(s.path("state/archive/R-2026.11/evidence.tar"), b"tampered").unwrap();
    let packet = halts_before_any_write(&s, "evidence-hash-mismatch");
    assert_eq!(packet["packet"]["mismatch"]["path"], "fields.sha256");
}

#[test]
fn an_evidence_hash_mismatch_packet_links_the_bundle_and_names_its_record() {
    let s = Scenario::new();
    std::fs::write(s.path("state/archive/R-2026.11/evidence.tar"), b"tampered").unwrap();
    let packet = halts_before_any_write(&s, "evidence-hash-mismatch");
    let p = &packet["packet"];
    assert_eq!(p["run_outcome"], "halted-for-follow-up");
    assert_eq!(
        p["records"],
        json!(["archive bundle/R-2026.11/evidence.tar"])
    );
    let links = p["links"].as_array().unwrap();
    assert!(
        !links.is_empty(),
        "the bundle the check saw is linked: {p:#}"
    );
    // Halted before planning: the pending steps are filled in, not templates.
    let pending = p["pending"].as_array().unwrap();
    assert_eq!(pending[0]["record"], "checklist/CL-7", "{pending:?}");
    assert!(!p.to_string().contains("{{"), "no template is left: {p:#}");
    let md = s.handoff(&["follow-ups", "show", &packet["id"].to_string()]);
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.contains("**Run outcome:** halted-for-follow-up"), "{md}");
    assert!(md.contains("archive bundle/R-2026.11/evidence.tar"), "{md}");
}

#[test]
fn a_packet_shows_the_source_fields_the_policy_names_and_only_counts_the_rest() {
    let s = Scenario::new();
    s.set(
        "governance",
        "review",
        "RV-118",
        &["state"],
        json!("reopened"),
    );
    s.set(
        "governance",
        "review",
        "RV-118",
        &["fields", "analyst_notes"],
        json!("SENSITIVE narrative"),
    );
    let packet = halts_before_any_write(&s, "stale-approval");
    let snapshot = &packet["packet"]["source_snapshot"];
    assert_eq!(snapshot["fields"]["review_version"], "3");
    assert!(
        snapshot["fields"].get("analyst_notes").is_none(),
        "{snapshot:#}"
    );
    assert!(
        snapshot["other_fields"].as_u64().unwrap() >= 1,
        "{snapshot:#}"
    );
    assert!(!packet.to_string().contains("SENSITIVE"), "{packet:#}");
    let md = s.handoff(&["follow-ups", "show", &packet["id"].to_string()]);
    assert!(!String::from_utf8_lossy(&md.stdout).contains("SENSITIVE"));
}

#[test]
fn a_source_answering_with_megabytes_is_refused_and_the_store_barely_grows() {
    let s = Scenario::new();
    // Planted in the decision record: a 5 MB field (the source's memory
    // grant is 64 MiB), then 20,000 links.
    s.set(
        "governance",
        "review",
        "RV-118",
        &["fields", "analyst_notes"],
        json!("n".repeat(5_000_000)),
    );
    let before = store_bytes(&s);
    let packet = halts_before_any_write(&s, "capability-denied");
    let grew = store_bytes(&s).saturating_sub(before);
    assert!(grew < 1024 * 1024, "the store grew by {grew} bytes");
    let summary = packet["packet"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("governance") && summary.contains("ceiling.result-string-bytes"),
        "{summary}"
    );
    assert!(
        packet.to_string().len() < 16 * 1024,
        "{} bytes",
        packet.to_string().len()
    );

    let s = Scenario::new();
    s.set(
        "governance",
        "review",
        "RV-118",
        &["links"],
        json!(
            (0..20_000)
                .map(|i| format!("https://e.example/{i}"))
                .collect::<Vec<_>>()
        ),
    );
    let packet = halts_before_any_write(&s, "capability-denied");
    let summary = packet["packet"]["summary"].as_str().unwrap();
    assert!(summary.contains("ceiling.result-list-entries"), "{summary}");
}

#[test]
fn a_run_whose_first_step_cannot_be_observed_wrote_nothing_and_halted() {
    let s = Scenario::new();
    std::fs::write(s.path("state/checklist/OFFLINE"), b"").unwrap();
    let (code, r) = run_json(&s);
    assert_eq!(
        (code, r["outcome"].as_str()),
        (3, Some("halted-for-follow-up")),
        "nothing was written: {r}"
    );
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    let packet = s.follow_up(r["follow_up"].as_i64().unwrap());
    assert_eq!(packet["packet"]["reason"], "retries-exhausted");
    assert_eq!(packet["packet"]["run_outcome"], "halted-for-follow-up");
    assert_eq!(
        packet["packet"]["records"],
        json!(["checklist checklist/CL-7"])
    );
}

#[test]
fn one_target_unavailable_mid_run_is_partial_and_resume_does_only_the_rest() {
    let s = Scenario::new();
    std::fs::write(s.path("state/queue/OFFLINE"), b"").unwrap();
    let (code, r) = run_json(&s);
    assert_eq!(
        (code, r["outcome"].as_str()),
        (3, Some("partially-completed")),
        "{r}"
    );
    let states = step_states(&s);
    assert_eq!(
        states.iter().map(|(_, st)| st.as_str()).collect::<Vec<_>>(),
        [
            "verified", "verified", "verified", "failed", "planned", "planned"
        ]
    );
    let written_before = s.writes();
    assert_eq!(written_before.len(), 3);
    let id = r["follow_up"].as_i64().unwrap();
    let packet = s.follow_up(id);
    assert_eq!(packet["packet"]["reason"], "retries-exhausted");
    assert_eq!(packet["packet"]["done"].as_array().unwrap().len(), 3);
    assert_eq!(packet["packet"]["pending"].as_array().unwrap().len(), 3);

    // A person takes it on (time to acknowledge), once.
    let ack = |by: &str| s.handoff(&["follow-ups", "ack", &id.to_string(), "--by", by]);
    let o = ack("release-coordinator");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = ack("someone-else");
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("already acknowledged by release-coordinator"),
        "{}",
        text(&o.stderr)
    );
    let list = text(&s.handoff(&["follow-ups", "list"]).stdout);
    assert!(list.contains("acknowledged"), "{list}");
    let acknowledged_at = s.follow_up(id)["acknowledged_at"].clone();
    assert!(acknowledged_at.is_string(), "{acknowledged_at}");
    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store());
    assert_lines(&metrics, &["handoff_follow_up_acknowledge_seconds_count 1"]);

    // The queue is back; a person resumes.
    std::fs::remove_file(s.path("state/queue/OFFLINE")).unwrap();
    let o = s.handoff(&[
        "follow-ups",
        "resolve",
        &id.to_string(),
        "--action",
        "resume",
        "--by",
        "release-coordinator",
        "--note",
        "queue maintenance over",
        "--json",
    ]);
    let r = report(&o);
    assert_eq!(
        (o.status.code(), r["outcome"].as_str()),
        (Some(0), Some("completed"))
    );
    assert_all_closed(&s);
    // The first three were not written again, and not even re-applied.
    for w in &written_before {
        assert_eq!(
            s.writes().iter().filter(|x| x["key"] == w["key"]).count(),
            1
        );
    }
    let kinds = audit_kinds(&s);
    let resolved = kinds
        .iter()
        .find(|(k, _)| k == "follow-up-resolved")
        .unwrap();
    assert_eq!(resolved.1["by"], "release-coordinator");
    assert_eq!(resolved.1["action"], "resume");
    assert!(
        !kinds
            .iter()
            .any(|(_, p)| p.to_string().contains("maintenance over")),
        "the note is not audit material"
    );
    let acked = kinds
        .iter()
        .find(|(k, _)| k == "follow-up-acknowledged")
        .unwrap();
    assert_eq!(acked.1["by"], "release-coordinator");
    let shown = s.follow_up(id);
    assert_eq!(shown["resolution"], "resume");
    assert_eq!(shown["resolved_note"], "queue maintenance over");
    assert_eq!(shown["acknowledged_at"], acknowledged_at, "kept, not reset");
    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store());
    assert_lines(
        &metrics,
        &[
            "# TYPE handoff_follow_up_resolve_seconds summary",
            "handoff_follow_up_resolve_seconds_count 1",
            "handoff_follow_up_acknowledge_seconds_count 1",
        ],
    );
    // Resolved: nothing left to take on.
    assert!(!ack("release-coordinator").status.success());
    verify(&s);
    assert_steps_walked_their_lifecycle(&s.store(), "run-1");
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

#[test]
fn a_target_that_acknowledges_a_write_without_changing_is_caught_by_confirm() {
    let s = Scenario::new();
    // The tracker's workflow silently refuses status changes on releases.
    s.edit_config(
        "directories = { records = \"state/tracker\" }",
        "directories = { records = \"state/tracker\" }\nconfig = { frozen-kinds = \"release\" }",
    );
    let (code, r) = run_json(&s);
    assert_eq!(
        (code, r["outcome"].as_str()),
        (3, Some("partially-completed")),
        "{r}"
    );
    let packet = s.follow_up(r["follow_up"].as_i64().unwrap());
    assert_eq!(packet["packet"]["reason"], "not-confirmed");
    assert_eq!(packet["packet"]["mismatch"]["found"], "\"in-review\"");
    assert_eq!(
        s.record("tracker", "release", "R-2026.11")["state"],
        "in-review"
    );
    let states = step_states(&s);
    assert_eq!(
        states[1],
        ("sync-tracker".to_string(), "failed".to_string())
    );
    assert_eq!(
        states[2].1, "planned",
        "nothing after the unconfirmed step ran"
    );
    assert_steps_walked_their_lifecycle(&s.store(), "run-1");
}

#[test]
fn a_process_killed_between_a_write_and_its_record_resumes_without_duplicates() {
    for point in [
        "before-apply:close-checklist",
        "after-apply:close-checklist",
        "after-record:attach-evidence",
        "after-apply:clear-review-queue",
        "after-apply:notify-coordinator",
    ] {
        let s = Scenario::new();
        let mut child = s.spawn_paused(point);
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let paused = lines
            .by_ref()
            .map(|l| l.unwrap())
            .find(|l| l.contains(handoff::pipeline::faults::PAUSED));
        assert!(
            paused.is_some(),
            "{point}: the run never reached its pause point"
        );
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "{point}: {status:?}");
        assert_eq!(
            s.count("SELECT COUNT(*) FROM runs WHERE outcome IS NULL"),
            1
        );

        let o = s.handoff(&["resume", "--json"]);
        let r = report(&o);
        assert_eq!(r["outcome"], "completed", "{point}: {r}");
        assert_all_closed(&s);
        verify(&s);
        assert_steps_walked_their_lifecycle(&s.store(), "run-1");
        if point.starts_with("after-apply") {
            let recovered = audit_kinds(&s)
                .into_iter()
                .filter(|(k, p)| k == "step-applied" && p["recovered"] == true)
                .count();
            assert_eq!(
                recovered, 1,
                "{point}: the write before the kill is recognised"
            );
        }
        // A second resume finds nothing to do.
        let (_, out, _) = outcome(&s.handoff(&["resume"]));
        assert!(out.contains("no unfinished runs"), "{out}");
    }
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

/// Bad input fails with the place named, exit 1, and nothing stored.
fn refused(s: &Scenario, o: &std::process::Output, expected: &[&str]) {
    let (code, out, err) = outcome(o);
    assert_eq!(code, 1, "{out}{err}");
    for e in expected {
        assert!(err.contains(e), "{e:?} not in: {err}");
    }
    if s.path("state/handoff.db").exists() {
        assert_eq!(s.count("SELECT COUNT(*) FROM events"), 0);
        assert_eq!(s.count("SELECT COUNT(*) FROM runs"), 0);
    }
    assert!(s.writes().is_empty());
}

#[test]
fn bad_input_is_refused_naming_the_place_with_nothing_half_written() {
    let s = Scenario::new();
    std::fs::write(
        s.path("events/broken.json"),
        "{\"id\": \"x\",\n \"source\": }",
    )
    .unwrap();
    let o = s.run_event("events/broken.json");
    refused(&s, &o, &["events/broken.json", "line 2"]);

    std::fs::write(
        s.path("context.json"),
        r#"{"milestone_id": "M-2026.11", "milestone_name": "M-2026.11"}"#,
    )
    .unwrap();
    let o = s.run();
    refused(
        &s,
        &o,
        &[
            "check \"evidence bundle\" record.id",
            "context.evidence_bundle",
        ],
    );

    let s = Scenario::new();
    s.edit_policy("[follow-up]", "[follow-up]\nescalate = true");
    refused(&s, &s.run(), &["release-readiness.toml", "escalate"]);

    let s = Scenario::new();
    s.edit_policy("adapter = \"notify\"", "adapter = \"pager\"");
    refused(
        &s,
        &s.run(),
        &["adapter instance \"pager\"", "[adapters.pager]"],
    );

    // Configured, but its package is not where the configuration says.
    let s = Scenario::new();
    s.edit_config(
        "[adapters.notify]\nconcurrency = 4\none-call-per-record = true\npackage = \"",
        "[adapters.notify]\nconcurrency = 4\none-call-per-record = true\npackage = \"/nowhere",
    );
    refused(
        &s,
        &s.run(),
        &[
            "adapter instance \"notify\" has no package",
            "/nowhere",
            "adapter.toml",
            "[adapters.notify]",
        ],
    );
}

pub fn policy_path(s: &Scenario) -> std::path::PathBuf {
    s.path("policies/release-readiness.toml")
}

#[test]
fn a_policy_runs_only_once_approved_and_a_widened_one_waits_for_a_new_approval() {
    let s = Scenario::new();
    // The tracker instance may annotate (its binding allows it); the
    // approved policy never asked it to.
    s.edit_config(
        "actions = [\"set-state\", \"attach-link\"]",
        "actions = [\"set-state\", \"attach-link\", \"annotate\"]",
    );
    std::fs::write(policy_path(&s), with_annotate_step(&s, "tracker")).unwrap();
    refused(
        &s,
        &s.run(),
        &[
            "reaches further",
            "tracker: annotate",
            "handoff policy approve",
        ],
    );
    let o = s.handoff(&[
        "policy",
        "approve",
        "policies/release-readiness.toml",
        "--by",
        "release-owner",
    ]);
    assert!(o.status.success(), "{}", text_of(&o));
    assert_eq!(run_json(&s).1["outcome"], "completed");

    let s = Scenario::unapproved();
    let o = s.run();
    let (code, _, err) = outcome(&o);
    assert_eq!(code, 1);
    assert!(err.contains("is not approved"), "{err}");
}

/// The example policy with a last step annotating the release through
/// `adapter` (a new `adapter: annotate` pair in its reach).
pub fn with_annotate_step(s: &Scenario, adapter: &str) -> String {
    let text = std::fs::read_to_string(policy_path(s)).unwrap();
    format!(
        "{text}\n[[step]]\nid = \"annotate\"\nadapter = \"{adapter}\"\n\
         record = {{ kind = \"release\", id = \"{{{{context.release_record}}}}\" }}\n\
         action = {{ annotate = \"closed by handoff\" }}\ndone-when = {{ applied = true }}\n"
    )
}

fn text_of(o: &std::process::Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

#[test]
fn a_follow_up_renders_for_people_and_an_abandon_is_recorded() {
    let s = Scenario::new();
    s.set(
        "governance",
        "review",
        "RV-118",
        &["state"],
        json!("withdrawn"),
    );
    let (code, r) = run_json(&s);
    assert_eq!(code, 3);
    let id = r["follow_up"].as_i64().unwrap().to_string();
    let (_, md, _) = outcome(&s.handoff(&["follow-ups", "show", &id]));
    for part in [
        "revoked",
        "**Route to:** release-coordinator",
        "## Still pending",
        "`close-checklist`",
        "state: \"withdrawn\"",
        "--action resume",
    ] {
        assert!(md.contains(part), "{part:?} not in:\n{md}");
    }
    let (_, list, _) = outcome(&s.handoff(&["follow-ups", "list"]));
    assert!(list.contains("revoked") && list.contains("open"), "{list}");
    assert!(md.contains("open, not yet acknowledged"), "{md}");
    let o = s.handoff(&[
        "follow-ups",
        "resolve",
        &id,
        "--action",
        "abandon",
        "--by",
        "release-coordinator",
    ]);
    assert!(o.status.success(), "{}", text_of(&o));
    let (_, list, _) = outcome(&s.handoff(&["follow-ups", "list"]));
    assert!(list.contains("no open follow-ups"), "{list}");
    let o = s.handoff(&[
        "follow-ups",
        "resolve",
        &id,
        "--action",
        "resume",
        "--by",
        "release-coordinator",
    ]);
    assert!(text_of(&o).contains("already resolved"), "{}", text_of(&o));
    assert!(s.writes().is_empty());
    // Never acknowledged: the resolution counts as taking it on.
    let shown = s.follow_up(id.parse().unwrap());
    assert_eq!(shown["acknowledged_by"], "release-coordinator");
    assert_eq!(shown["acknowledged_at"], shown["resolved_at"]);
}

/// The example's record stores take several calls at once, one per record:
/// a run's write to a record another call holds waits for its turn, and
/// goes ahead once that call ends.
#[test]
fn a_call_on_a_record_another_call_holds_waits_for_its_turn() {
    use handoff::model::CloudEvent;
    let s = Scenario::new();
    let context = s.context();
    let event = CloudEvent::parse(
        &std::fs::read(s.path("events/accepted.json")).unwrap(),
        "test",
    )
    .unwrap();
    let (mut engine, throttle, rt) = s.engine_sharing_throttle();
    let report = rt.block_on(async {
        let held = throttle.turn("checklist", "checklist/checklist/CL-7").await;
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
fn two_processes_in_separate_pid_namespaces_do_not_take_each_others_lease() {
    // Each under `unshare --pid --fork`: both are pid 1, in namespaces of
    // their own, on one store (containers sharing a volume).
    let s = Scenario::new();
    let mut holder = s
        .command_under(
            &["unshare", "--pid", "--fork"],
            &[
                "run",
                "--event",
                "events/accepted.json",
                "--context",
                "context.json",
            ],
        )
        .env("HANDOFF_FAULT_PAUSE", "after-apply:close-checklist")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare");
    let mut lines = BufReader::new(holder.stderr.take().unwrap()).lines();
    let paused = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains(handoff::pipeline::faults::PAUSED));
    assert!(paused.is_some(), "the holder never reached its pause point");
    let other = s
        .command_under(&["unshare", "--pid", "--fork"], &["resume", "--json"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&other.stdout),
        String::from_utf8_lossy(&other.stderr)
    );
    assert!(said.contains("\"held_by\""), "{said}");
    assert_eq!(
        s.journal("checklist").len(),
        1,
        "only the holder's write: {said}"
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM runs WHERE outcome IS NULL"),
        1
    );
    let _ = holder.kill();
    let _ = holder.wait();
}

/// What the record stores of `system` hold as written by handoff: one
/// `kind/id key` for each key a record carries and each message line.
fn written_facts(s: &Scenario, system: &str) -> Vec<String> {
    let mut facts = Vec::new();
    let root = s.path(&format!("state/{system}"));
    let Ok(kinds) = std::fs::read_dir(&root) else {
        return facts;
    };
    for kind in kinds.flatten().filter(|k| k.path().is_dir()) {
        let kind_name = kind.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(kind.path()).unwrap().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let text = || std::fs::read_to_string(file.path()).unwrap();
            if let Some(id) = name.strip_suffix(".messages.jsonl") {
                for line in text().lines() {
                    let v: Value = serde_json::from_str(line).unwrap();
                    facts.push(format!("{kind_name}/{id} {}", v["key"].as_str().unwrap()));
                }
            } else if let Some(id) = name.strip_suffix(".json") {
                let v: Value = serde_json::from_str(text().trim_end()).unwrap();
                for key in v["applied_keys"].as_array().into_iter().flatten() {
                    facts.push(format!("{kind_name}/{id} {}", key.as_str().unwrap()));
                }
            }
        }
    }
    facts.sort();
    facts
}

#[test]
fn sigkill_at_random_moments_never_publishes_twice_and_the_journals_count_every_write() {
    let s = Scenario::new();
    // A seeded, reproducible spread of kill moments over a run's life.
    let mut seed: u64 = 0x5eed_1234;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..30 {
        let event = another_decision(&s, &format!("RV-k{i}"), "accepted");
        let mut child = s
            .command(&["run", "--event", &event, "--context", "context.json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Fault injection, not synchronization: the kill lands wherever
        // the run happens to be (or after it ended).
        std::thread::sleep(std::time::Duration::from_micros(next() % 250_000));
        let _ = child.kill();
        let _ = child.wait();
        let resumed = s.handoff(&["resume"]);
        assert!(
            resumed.status.code().is_some_and(|c| c == 0 || c == 3),
            "{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
    }
    assert_eq!(
        s.count("SELECT COUNT(*) FROM runs WHERE outcome IS NULL"),
        0
    );
    for system in crate::scenario::TARGETS {
        let facts = written_facts(&s, system);
        let mut unique = facts.clone();
        unique.dedup();
        assert_eq!(facts, unique, "{system}: something was written twice");
        let mut journaled: Vec<String> = s
            .journal(system)
            .iter()
            .map(|l| {
                format!(
                    "{}/{} {}",
                    l["kind"].as_str().unwrap(),
                    l["id"].as_str().unwrap(),
                    l["key"].as_str().unwrap()
                )
            })
            .collect();
        journaled.sort();
        assert_eq!(journaled, facts, "{system}: the journal is not exact");
    }
    verify(&s);
}

/// Peak resident memory (KiB) of `handoff ARGS` in the scenario, as GNU
/// time reports it, and its exit code.
fn peak_rss_kib(s: &Scenario, args: &[&str]) -> (u64, i32) {
    let report = s.path("time-report");
    let out = s
        .command_under(
            &["/usr/bin/time", "-f", "%M", "-o", report.to_str().unwrap()],
            args,
        )
        .output()
        .unwrap();
    // A non-zero exit is said on a line before the figure.
    let text = std::fs::read_to_string(&report).unwrap();
    let kib = text.lines().last().unwrap().trim().parse().unwrap();
    (kib, out.status.code().unwrap_or(-1))
}

#[test]
fn a_source_answering_fifty_megabytes_leaves_the_host_under_twice_its_grant() {
    let run = [
        "run",
        "--event",
        "events/accepted.json",
        "--context",
        "context.json",
    ];
    let baseline = peak_rss_kib(&Scenario::new(), &run);
    assert_eq!(baseline.1, 0, "the example completes");

    let s = Scenario::new();
    // The decision source's package, granted 192 MiB: enough to read a
    // 50 MB record and hand it back.
    let big = s.path("big-source");
    std::fs::create_dir_all(&big).unwrap();
    let built = crate::support::built("fs-records");
    std::fs::copy(built.join("fs-records.wasm"), big.join("fs-records.wasm")).unwrap();
    let manifest = std::fs::read_to_string(built.join("adapter.toml")).unwrap();
    assert!(manifest.contains("memory-mib = 64"));
    std::fs::write(
        big.join("adapter.toml"),
        manifest.replace("memory-mib = 64", "memory-mib = 192"),
    )
    .unwrap();
    let pkg = handoff::sandbox::package::Package::read(&big).unwrap();
    s.store()
        .approve_adapter(&handoff::store::adapters::NewApproval::of(
            &pkg,
            "security-review",
        ))
        .unwrap();
    let governance = format!(
        "[adapters.governance]\nconcurrency = 4\none-call-per-record = true\npackage = \"{}/fs-records\"",
        handoff::BUILT_PACKAGES_DIR
    );
    s.edit_config(
        &governance,
        &format!(
            "[adapters.governance]\nconcurrency = 4\none-call-per-record = true\npackage = \"{}\"",
            big.display()
        ),
    );
    s.set(
        "governance",
        "review",
        "RV-118",
        &["fields", "analyst_notes"],
        json!("n".repeat(50_000_000)),
    );
    let before = store_bytes(&s);
    let (peak, code) = peak_rss_kib(&s, &run);
    assert_eq!(code, 3, "halted for a person");
    let grant_kib = 192 * 1024;
    println!("peak {peak} KiB against a baseline of {} KiB", baseline.0);
    assert!(
        peak < baseline.0 + 2 * grant_kib,
        "peak {peak} KiB, baseline {} KiB, grant {grant_kib} KiB",
        baseline.0
    );
    let grew = store_bytes(&s).saturating_sub(before);
    assert!(grew < 1024 * 1024, "the store grew by {grew} bytes");
    let listed = s.handoff(&["follow-ups", "list", "--json"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("capability-denied"), "{text}");
    assert!(text.len() < 64 * 1024, "{} bytes of follow-ups", text.len());
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
    ] {
        assert_eq!(counter(name), s.count(recount), "{name}");
    }
    assert_eq!(counter("duplicates"), 3);
    assert_eq!(counter("runs/completed"), 1);
    assert_eq!(counter("resolved"), 1);
}
