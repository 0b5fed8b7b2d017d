//! Shadow mode on the release-readiness example: a run of a policy with
//! `mode = "shadow"` looks at every target and writes to none (the targets'
//! own journals stay empty), records what each step would have done, and
//! `handoff shadow report` later tells, per run, whether people did what it
//! would have done, something else, or nothing. Turning the policy live is a
//! change that needs approval.

use super::*;
use crate::support::scenario::*;
use serde_json::{Value, json};

/// The example with its policy in shadow mode, approved, and the accepted
/// decision run: shadowed, nothing written.
pub(crate) fn shadowed() -> (Scenario, String) {
    let s = Scenario::new();
    s.edit_policy("version = \"1\"\n", "version = \"1\"\nmode = \"shadow\"\n");
    s.approve_policy();
    let (code, r) = run_json(&s);
    assert_eq!((code, r["outcome"].as_str()), (0, Some("shadowed")), "{r}");
    // Written to nowhere: each target's own journal is empty, and no
    // message went out.
    for target in TARGETS {
        assert_eq!(s.journal(target), Vec::<Value>::new(), "{target}");
    }
    assert!(s.messages("notify", "release-coordinators").is_empty());
    let run_id = r["run_id"].as_str().unwrap().to_string();
    (s, run_id)
}

fn report_of(s: &Scenario) -> Vec<Value> {
    let (code, out, err) = outcome(&s.handoff(&["shadow", "report", "--json"]));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_shadow_run_writes_nothing_and_records_what_each_step_would_have_done() {
    let (s, run_id) = shadowed();
    let exported = s.handoff(&["audit", "export", "--run", &run_id]);
    let rows: Vec<Value> = text(&exported.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let would: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r["kind"] == "shadow-step")
        .map(|r| {
            (
                r["payload"]["step"].as_str().unwrap().to_string(),
                r["payload"]["would"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(would.len(), 6, "{would:?}");
    assert!(would.iter().all(|(_, w)| w == "apply"), "{would:?}");
    assert!(rows.iter().any(|r| r["kind"] == "revalidated"));
    // No step moved: no intent, no write, no verification on record.
    assert!(
        !rows
            .iter()
            .any(|r| r["kind"].as_str().unwrap().starts_with("step-")),
        "{rows:?}"
    );
    let last = rows.last().unwrap();
    assert_eq!(last["kind"], "run-shadowed");
    assert_eq!(last["payload"]["would_end"], "completed");
    assert!(s.handoff(&["audit", "verify"]).status.success());
    // Nobody is handed a packet, and the event is taken once.
    assert_eq!(s.count("SELECT COUNT(*) FROM follow_ups"), 0);
    let (code, again) = run_json(&s);
    assert_eq!(
        (code, again["outcome"].as_str()),
        (0, Some("duplicate-suppressed")),
        "{again}"
    );

    // Turning it live is a change of the policy: refused until approved.
    s.edit_policy("mode = \"shadow\"\n", "mode = \"live\"\n");
    let (code, _, err) = outcome(&s.run_event(&super::another_decision(&s, "RV-500", "accepted")));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("approve"), "{err}");
    assert!(s.writes().is_empty());
}

#[test]
fn the_report_tells_done_the_same_from_done_otherwise_and_not_done() {
    // People closed everything the automation would have.
    let (same, _) = shadowed();
    let evidence = same.context()["evidence_url"].as_str().unwrap().to_string();
    same.set(
        "checklist",
        "checklist",
        "CL-7",
        &["state"],
        json!("closed"),
    );
    same.set(
        "tracker",
        "release",
        "R-2026.11",
        &["state"],
        json!("approved"),
    );
    same.set(
        "tracker",
        "release",
        "R-2026.11",
        &["links"],
        json!([evidence]),
    );
    same.set(
        "queue",
        "review-queue",
        "RV-118",
        &["state"],
        json!("cleared"),
    );
    // People did something else: the checklist archived, not closed.
    let (other, _) = shadowed();
    other.set(
        "checklist",
        "checklist",
        "CL-7",
        &["state"],
        json!("archived"),
    );
    // Nobody did anything.
    let (left, _) = shadowed();

    for (s, verdict) in [(&same, "same"), (&other, "different"), (&left, "nothing")] {
        let report = report_of(s);
        assert_eq!(report.len(), 1, "{report:?}");
        assert_eq!(report[0]["verdict"], verdict, "{:#}", report[0]);
        let steps = report[0]["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 6);
        // The messages it would have published cannot be told apart from
        // people's own, so they are shown and not counted.
        let not_comparable = steps
            .iter()
            .filter(|s| s["now"] == "not-comparable")
            .count();
        assert_eq!(not_comparable, 2);
        // Looking again writes nothing either.
        assert!(s.writes().is_empty());
    }
    let other_report = report_of(&other);
    let close = other_report[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "close-checklist")
        .unwrap()
        .clone();
    assert_eq!(close["now"], "changed", "{close}");

    // As text, for a person.
    let (code, out, _) = outcome(&left.handoff(&["shadow", "report"]));
    assert_eq!(code, 0);
    assert!(out.contains("nobody has done it yet"), "{out}");
    assert!(
        out.contains("1 shadowed runs: 0 the same, 0 different, 1 not done"),
        "{out}"
    );
}
