//! Redmine's own behaviour in the scenario: a status change its workflow
//! forbids, a review reopened after the event, a milestone missing or
//! mapped to another release, updates stamped in whole seconds. Read back
//! with an independent REST client.

use crate::support::servers::*;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[test]
fn a_status_change_redmines_workflow_forbids_answers_204_and_confirm_catches_it() {
    let r = Redmine::from_env();
    let n = Nats::from_env();
    let seeded = seed(&r, &n);
    let s = scenario(&r, &n, &seeded);
    // The tracker step asks for a status no workflow transition reaches.
    let policy = s.path("policies/release-readiness.toml");
    let text_before = std::fs::read_to_string(&policy).unwrap();
    let edited = text_before
        .replace(
            "action = { set-state = \"approved\" }",
            "action = { set-state = \"archived\" }",
        )
        .replace(
            "done-when = { state = \"approved\" }",
            "done-when = { state = \"archived\" }",
        );
    assert_ne!(edited, text_before);
    std::fs::write(&policy, edited).unwrap();
    s.approve_policy();

    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (3, Some("partially-completed")),
        "{report}"
    );
    assert_eq!(report["packet"]["reason"], "not-confirmed", "{report}");
    assert_eq!(
        r.status_of(seeded.release),
        "In Progress",
        "Redmine ignored the change"
    );
    assert_eq!(
        r.status_of(seeded.checklist),
        "Closed",
        "the step before it was done"
    );
}

#[test]
fn a_review_reopened_in_redmine_after_the_event_halts_with_nothing_written() {
    let r = Redmine::from_env();
    let n = Nats::from_env();
    let seeded = seed(&r, &n);
    let s = scenario(&r, &n, &seeded);
    r.set_status(seeded.review, "Reopened");
    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (3, Some("halted-for-follow-up")),
        "{report}"
    );
    assert_eq!(report["packet"]["reason"], "stale-approval");
    assert_eq!(
        report["packet"]["source_snapshot"]["state"], "reopened",
        "{report}"
    );
    for id in [seeded.checklist, seeded.release] {
        assert!(r.notes(id).is_empty(), "issue {id} was written");
    }
    assert_eq!(r.status_of(seeded.checklist), "New");
    assert_eq!(
        n.entry(&seeded.review.to_string()).unwrap().0,
        "Put",
        "still queued"
    );
    assert!(
        n.messages(&format!("{}.scheduler-intake", seeded.prefix))
            .is_empty()
    );
}

#[test]
fn a_milestone_missing_renamed_or_mapped_to_another_release_halts_before_any_write() {
    let r = Redmine::from_env();
    let n = Nats::from_env();
    for (change, reason) in [
        ("delete", "mapping-missing"),
        ("rename", "mapping-conflict"),
        ("remap", "mapping-conflict"),
    ] {
        let seeded = seed(&r, &n);
        let s = scenario(&r, &n, &seeded);
        let path = format!("/versions/{}.json", seeded.milestone);
        match change {
            "delete" => {
                // The test Redmine's SQLite tables give a new row the
                // highest id plus one, so deleting the newest version would
                // let another test's next milestone (same name, same
                // release) take its id: a later version keeps it from being
                // the newest.
                let project = &r.get(&path)["version"]["project"]["id"];
                r.call(
                    "POST",
                    &format!("/projects/{project}/versions.json"),
                    Some(json!({ "version": { "name": "placeholder" } })),
                );
                r.call("DELETE", &path, None);
            }
            "rename" => {
                r.call(
                    "PUT",
                    &path,
                    Some(json!({ "version": { "name": "M-2026.11 (moved)" } })),
                );
            }
            _ => {
                let field = r.field_id("Release ID", "version");
                r.call(
                    "PUT",
                    &path,
                    Some(json!({ "version": { "custom_fields": [{ "id": field, "value": "R-2027.01" }] } })),
                );
            }
        }
        let (code, report) = run(&s, "events/redmine.json");
        assert_eq!(
            (code, report["outcome"].as_str()),
            (3, Some("halted-for-follow-up")),
            "{change}: {report}"
        );
        assert_eq!(report["packet"]["reason"], reason, "{change}: {report}");
        assert!(r.notes(seeded.checklist).is_empty() && r.notes(seeded.release).is_empty());
    }
}

/// Until this machine's clock (Redmine's too: it runs here) starts a new
/// second. Not a wait for anything to happen: the test needs what follows
/// to fall within one second, and a whole one is then ahead of it.
fn start_of_a_second() {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(Duration::from_nanos(u64::from(1_000_000_000 - into)));
}

#[test]
fn reconciliation_finds_a_decision_made_in_the_second_it_last_listed() {
    // Redmine stamps updates in whole seconds and lists them by that stamp,
    // then by id. Here review `later` changes, a pass lists it, and review
    // `earlier` (a lower id) is accepted, all in one second: a cursor at
    // (that second, `later`) would never list `earlier`'s decision.
    let (s, r, seeded) = polling_scenario();
    let project = r.issue(seeded.review)["project"]["id"].as_u64().unwrap();
    let fields = json!([
        { "id": r.field_id("Review version", "issue"), "value": "1" },
        { "id": r.field_id("Release ID", "issue"), "value": "R-2026.11" },
    ]);
    let context = s.context();
    let (mut engine, _, rt) = s.engine_sharing_throttle();
    let mut pass = || rt.block_on(engine.reconcile(&context)).unwrap();
    let updated_on = |id: u64| r.issue(id)["updated_on"].as_str().unwrap().to_string();
    // A slow moment can carry the three across a second: then again, with
    // a new pair (what the earlier attempts accepted is found meanwhile).
    let earlier = (1..=5)
        .find_map(|_| {
            let earlier = r.create_issue(project, "Release review, second one", fields.clone());
            let later = r.create_issue(project, "Release review, third one", json!([]));
            start_of_a_second();
            r.set_status(later, "In Progress");
            pass();
            r.set_status(earlier, "Accepted");
            (updated_on(earlier) == updated_on(later)).then_some(earlier)
        })
        .expect("five attempts to change two issues and list them within one second");

    let found = pass();
    let runs: Vec<String> = found
        .new_runs
        .iter()
        .map(|run| {
            let store = s.store();
            let conn = store.conn().unwrap();
            handoff::store::runs::get(&conn, run)
                .unwrap()
                .expect("the run")
                .event_id
        })
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "one new decision, review {earlier}'s: {runs:?}"
    );
    assert!(
        runs[0].starts_with(&format!("review/{earlier}@")),
        "review {earlier}'s decision: {runs:?}"
    );
}
