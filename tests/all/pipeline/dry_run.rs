//! `handoff run --dry-run` on the release-readiness example: it reads what
//! a run would read and says what the run would do, and writes nothing,
//! neither to the targets (counted in their own journals) nor to the store.

use crate::support::scenario::*;
use serde_json::{Value, json};

/// `handoff run --dry-run` of an event file, with the example's context:
/// exit code, stdout, stderr.
fn dry_run_as(s: &Scenario, event: &str, json: bool) -> (i32, String, String) {
    let mut args = vec!["run", "--dry-run", "--event", event];
    args.extend(["--context", "context.json"]);
    if json {
        args.push("--json");
    }
    outcome(&s.handoff(&args))
}

/// `handoff run --dry-run --json` of an event file: exit code and preview.
pub fn dry_run(s: &Scenario, event: &str) -> (i32, Value) {
    let (code, out, err) = dry_run_as(s, event, true);
    let preview = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("exit {code}, not a JSON preview ({e}): {out}\n{err}"));
    (code, preview)
}

/// (step, what a run would do with it), in plan order.
pub fn would(preview: &Value) -> Vec<(String, String)> {
    preview["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap().to_string();
            (field("step"), field("would"))
        })
        .collect()
}

fn kinds(preview: &Value) -> Vec<&str> {
    preview["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect()
}

/// What a dry run may not change: the targets' journals and records,
/// every table of the store (the audit chain included), and what is beside
/// the store (the lock file of the runs' turns on records, which only a
/// run that writes makes).
fn untouched(s: &Scenario) -> Value {
    let tables = ["events", "runs", "steps", "follow_ups", "audit"];
    json!({
        "turns": s.path("state/handoff.db.turns").exists(),
        "writes": s.writes(),
        "checklist": s.record("checklist", "checklist", "CL-7"),
        "release": s.record("tracker", "release", "R-2026.11"),
        "rows": tables.map(|t| s.count(&format!("SELECT COUNT(*) FROM {t}"))),
    })
}

const STEPS: [&str; 6] = [
    "close-checklist",
    "sync-tracker",
    "attach-evidence",
    "clear-review-queue",
    "tell-scheduler",
    "notify-coordinator",
];

fn all(would: &str) -> Vec<(String, String)> {
    STEPS
        .iter()
        .map(|s| (s.to_string(), would.to_string()))
        .collect()
}

#[test]
fn a_dry_run_reads_everything_writes_nothing_and_the_event_still_runs_after() {
    let s = Scenario::new();
    let before = untouched(&s);
    let (code, p) = dry_run(&s, "events/accepted.json");
    assert_eq!((code, p["outcome"].as_str()), (0, Some("completed")), "{p}");
    assert_eq!(would(&p), all("apply"));
    assert_eq!(kinds(&p), ["revalidated", "check-passed", "check-passed"]);
    assert_eq!(p["reads"][0]["payload"]["state"], "accepted");
    assert_eq!(p["steps"][0]["state"], "open");
    assert_eq!((&p["refused"], &p["halt"]), (&Value::Null, &Value::Null));
    assert_eq!(untouched(&s), before);

    // The event was not taken in: it runs for real, every step written,
    // each on its record's turn.
    let o = s.run();
    assert_eq!(outcome(&o).0, 0, "{}", text(&o.stderr));
    assert_eq!(s.writes().len(), 6);
    assert!(s.path("state/handoff.db.turns").is_file());

    // Now a run would be suppressed, and the dry run says by which run.
    let (code, p) = dry_run(&s, "events/accepted.json");
    assert_eq!(code, 0);
    assert_eq!(p["outcome"], "duplicate-suppressed");
    assert_eq!(
        p["duplicate_of"],
        json!({ "run_id": "run-1", "by": "event-id" })
    );
    assert_eq!((kinds(&p).len(), would(&p).len()), (0, 0));
    let (_, p) = dry_run(&s, "events/accepted-resent.json");
    assert_eq!(p["duplicate_of"]["by"], "business-key");
    assert_eq!(s.writes().len(), 6);
}

#[test]
fn a_dry_run_shows_steps_already_done_and_where_a_run_would_stop() {
    let s = Scenario::new();
    s.set(
        "checklist",
        "checklist",
        "CL-7",
        &["state"],
        json!("closed"),
    );
    let (code, p) = dry_run(&s, "events/accepted.json");
    assert_eq!(
        (code, p["outcome"].as_str()),
        (0, Some("completed-with-skips")),
        "{p}"
    );
    let mut expected = all("apply");
    expected[0].1 = "skip".into();
    assert_eq!(would(&p), expected);

    // A target that cannot be observed: the run would stop there, resumable.
    std::fs::write(s.path("state/queue/OFFLINE"), b"").unwrap();
    let (code, p) = dry_run(&s, "events/accepted.json");
    assert_eq!(
        (code, p["outcome"].as_str()),
        (3, Some("partially-completed")),
        "{p}"
    );
    let w: Vec<_> = would(&p).into_iter().map(|(_, w)| w).collect();
    assert_eq!(
        w,
        ["skip", "apply", "apply", "stop", "not-reach", "not-reach"]
    );
    assert_eq!(p["halt"]["reason"], "retries-exhausted");
    std::fs::remove_file(s.path("state/queue/OFFLINE")).unwrap();

    // The decision reopened: the run would stop before planning.
    s.set_review(&["state"], json!("reopened"));
    let before = untouched(&s);
    let (code, p) = dry_run(&s, "events/accepted.json");
    assert_eq!(code, 3, "{p}");
    assert_eq!(p["halt"]["reason"], "stale-approval");
    assert_eq!(kinds(&p), ["revalidated"]);
    assert_eq!(p["reads"][0]["payload"]["still-authorized"], false);
    assert_eq!(would(&p).len(), 0);
    assert_eq!(untouched(&s), before, "no follow-up, no audit row");

    let (code, out, err) = dry_run_as(&s, "events/accepted.json", false);
    assert_eq!(code, 3, "{err}");
    assert!(out.contains("nothing was written"), "{out}");
    assert!(
        out.contains("revalidated  governance review/RV-118: reopened"),
        "{out}"
    );
    assert!(
        out.contains("a run would stop for a person (stale-approval)"),
        "{out}"
    );
}

#[test]
fn a_policy_change_can_be_tried_before_approval_and_a_real_run_stays_refused() {
    let s = Scenario::new();
    s.edit_policy("id = \"tell-scheduler\"", "id = \"hand-to-scheduler\"");
    let (code, p) = dry_run(&s, "events/accepted.json");
    assert_eq!(code, 1, "{p}");
    let refused = p["refused"].as_str().unwrap();
    assert!(
        refused.contains("changed since it was approved"),
        "{refused}"
    );
    assert_eq!(p["steps"][4]["step"], "hand-to-scheduler");
    assert_eq!(p["steps"][4]["would"], "apply");
    assert_eq!(p["outcome"], "completed");

    let (_, out, _) = dry_run_as(&s, "events/accepted.json", false);
    assert!(
        out.contains("once approved, a run would end completed"),
        "{out}"
    );

    let (code, _, err) = outcome(&s.run());
    assert_eq!(code, 1);
    assert!(err.contains("changed since it was approved"), "{err}");
    assert_eq!(s.runs().len() as i64, 0);
    assert!(s.writes().is_empty());

    // Bad input is refused as a run would refuse it.
    let event = std::fs::read_to_string(s.path("events/accepted.json")).unwrap();
    std::fs::write(
        s.path("events/rejected.json"),
        event.replace("\"accepted\"", "\"rejected\""),
    )
    .unwrap();
    let (code, _, err) =
        outcome(&s.handoff(&["run", "--dry-run", "--event", "events/rejected.json"]));
    assert_eq!(code, 1);
    assert!(err.contains("does not authorize policy"), "{err}");
}

#[test]
fn past_events_are_replayed_each_on_its_own_with_a_summary() {
    let s = Scenario::new();
    let event = std::fs::read_to_string(s.path("events/accepted.json")).unwrap();
    std::fs::write(
        s.path("events/rejected.json"),
        event.replace("\"accepted\"", "\"rejected\""),
    )
    .unwrap();
    let before = untouched(&s);
    let mut args = vec!["run", "--dry-run", "--context", "context.json"];
    for e in [
        "events/accepted.json",
        "events/rejected.json",
        "events/accepted-resent.json",
    ] {
        args.extend(["--event", e]);
    }
    let (code, out, err) = outcome(&s.handoff(&args));
    assert_eq!(code, 1, "the gravest: one could not be tried\n{out}{err}");
    assert!(
        out.contains("events/rejected.json: could not be tried: event gov-evt-5531: decision state \"rejected\" does not authorize"),
        "{out}"
    );
    assert!(
        out.ends_with("3 events: 2 would end completed, 1 could not be tried\n"),
        "{out}"
    );

    args.push("--json");
    let (_, out, _) = outcome(&s.handoff(&args));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["outcome"], "completed");
    assert!(lines[1]["error"].as_str().unwrap().contains("rejected"));
    assert_eq!(lines[2]["event_id"], "gov-evt-5532");
    assert_eq!(untouched(&s), before);

    let (code, _, err) = outcome(&s.handoff(&[
        "run",
        "--event",
        "events/accepted.json",
        "--event",
        "events/accepted-resent.json",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("a run takes one event (2 given)"), "{err}");
    assert!(s.writes().is_empty());
}

#[test]
fn a_dry_run_where_no_store_is_makes_none() {
    let s = Scenario::unapproved();
    let store = s.path("state/handoff.db");
    assert!(!store.exists());
    let (code, out, err) = dry_run_as(&s, "events/accepted.json", false);
    // As a real run would be: refused, the policy not approved.
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("is not approved") && out.contains("adapter approve"),
        "{out}"
    );
    let made: Vec<_> = std::fs::read_dir(s.path("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("handoff.db"))
        .collect();
    assert!(made.is_empty(), "no store, log or index made: {made:?}");
}
