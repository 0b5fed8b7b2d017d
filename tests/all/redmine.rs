//! The release-readiness scenario against a real Redmine on 127.0.0.1
//! (started by `scripts/test-servers start`): the governance review, the
//! readiness checklist, the release tracker and its milestone live in
//! Redmine and are reached only through the `redmine` adapter component.
//! Every result is read back with an independent REST client.

use crate::scenario::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

/// The Redmine the tests seed and read back, as an admin.
struct Redmine {
    url: String,
    key: String,
}

const NEEDS: &str = "this test needs the real test servers: run `scripts/test` \
     (starts them, runs every test, stops them), or `scripts/test-servers start` \
     and then `. target/test-servers/env` before `cargo test`";

impl Redmine {
    fn from_env() -> Redmine {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {NEEDS}"))
        };
        Redmine {
            url: var("HANDOFF_TEST_REDMINE_URL"),
            key: var("HANDOFF_TEST_REDMINE_KEY"),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let request = ureq::request(method, &format!("{}{path}", self.url))
            .set("X-Redmine-API-Key", &self.key);
        let response = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e} ({NEEDS})"));
        let text = response.into_string().unwrap();
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    fn get(&self, path: &str) -> Value {
        self.call("GET", path, None)
    }

    fn status_id(&self, name: &str) -> u64 {
        self.get("/issue_statuses.json")["issue_statuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| {
                panic!("no status {name}; was Redmine set up by scripts/test-servers?")
            })["id"]
            .as_u64()
            .unwrap()
    }

    fn field_id(&self, name: &str, customized: &str) -> u64 {
        self.get("/custom_fields.json")["custom_fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name && f["customized_type"] == customized)
            .unwrap_or_else(|| panic!("no {customized} field {name:?}"))["id"]
            .as_u64()
            .unwrap()
    }

    fn issue(&self, id: u64) -> Value {
        self.get(&format!("/issues/{id}.json?include=journals"))["issue"].clone()
    }

    fn status_of(&self, id: u64) -> String {
        self.issue(id)["status"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The notes written on an issue (journals with text).
    fn notes(&self, id: u64) -> Vec<String> {
        self.issue(id)["journals"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|j| j["notes"].as_str())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn set_status(&self, id: u64, status: &str) {
        let status_id = self.status_id(status);
        self.call(
            "PUT",
            &format!("/issues/{id}.json"),
            Some(json!({ "issue": { "status_id": status_id } })),
        );
        assert_eq!(self.status_of(id), status, "the test's own status change");
    }

    fn create_issue(&self, project: u64, subject: &str, fields: Value) -> u64 {
        self.call(
            "POST",
            "/issues.json",
            Some(json!({ "issue": {
                "project_id": project, "tracker_id": 2, "subject": subject,
                "custom_fields": fields,
            }})),
        )["issue"]["id"]
            .as_u64()
            .unwrap()
    }
}

/// What one test seeded in its own project.
struct Seeded {
    review: u64,
    checklist: u64,
    release: u64,
    milestone: u64,
}

static PROJECTS: AtomicU32 = AtomicU32::new(0);

fn seed(r: &Redmine) -> Seeded {
    let n = PROJECTS.fetch_add(1, Ordering::SeqCst);
    let ident = format!("rr-{}-{n}", std::process::id());
    let project = r.call(
        "POST",
        "/projects.json",
        Some(json!({ "project": {
            "name": format!("Release readiness {ident}"), "identifier": ident,
            "tracker_ids": [1, 2, 3],
        }})),
    )["project"]["id"]
        .as_u64()
        .unwrap();
    let review_version = r.field_id("Review version", "issue");
    let release_field = r.field_id("Release ID", "issue");
    let version_release = r.field_id("Release ID", "version");
    let milestone = r.call(
        "POST",
        &format!("/projects/{project}/versions.json"),
        Some(json!({ "version": {
            "name": "M-2026.11",
            "custom_fields": [{ "id": version_release, "value": "R-2026.11" }],
        }})),
    )["version"]["id"]
        .as_u64()
        .unwrap();
    let review = r.create_issue(
        project,
        "Release review RV for R-2026.11",
        json!([{ "id": review_version, "value": "3" }, { "id": release_field, "value": "R-2026.11" }]),
    );
    r.set_status(review, "Accepted");
    let checklist = r.create_issue(project, "Readiness checklist R-2026.11", json!([]));
    let release = r.create_issue(
        project,
        "Release R-2026.11",
        json!([{ "id": release_field, "value": "R-2026.11" }]),
    );
    r.set_status(release, "In Progress");
    Seeded {
        review,
        checklist,
        release,
        milestone,
    }
}

/// The example under its Redmine configuration, with an event and context
/// naming the seeded records.
fn scenario(r: &Redmine, seeded: &Seeded) -> Scenario {
    let s = Scenario::with_config(
        "handoff-redmine.toml",
        &["redmine", "fs-records", "fs-archive"],
    );
    // The adapter's manifest declares this origin; a reviewer approved it.
    assert_eq!(
        r.url, "http://127.0.0.1:3100",
        "the redmine manifest grants only this origin"
    );
    let event = json!({
        "specversion": "1.0", "id": format!("redmine-{}", seeded.review),
        "source": "redmine/release-reviews", "type": "release.review.decided",
        "subject": seeded.review.to_string(), "time": "2026-11-22T09:14:03Z",
        "data": { "review_id": seeded.review.to_string(), "review_version": "3",
                  "release_id": "R-2026.11", "state": "accepted" },
    });
    std::fs::write(s.path("events/redmine.json"), event.to_string()).unwrap();
    let mut resent = event.clone();
    resent["id"] = json!(format!("redmine-{}-resent", seeded.review));
    std::fs::write(s.path("events/redmine-resent.json"), resent.to_string()).unwrap();
    // The review-queue entry (a filesystem record here) is the review's.
    std::fs::rename(
        s.path("state/queue/review-queue/RV-118.json"),
        s.path(&format!("state/queue/review-queue/{}.json", seeded.review)),
    )
    .unwrap();
    let mut context: Value =
        serde_json::from_slice(&std::fs::read(s.path("context.json")).unwrap()).unwrap();
    context["checklist_id"] = json!(seeded.checklist.to_string());
    context["release_record"] = json!(seeded.release.to_string());
    context["milestone_id"] = json!(seeded.milestone.to_string());
    std::fs::write(s.path("context.json"), context.to_string()).unwrap();
    s
}

/// `handoff run`; the report carries its follow-up packet, if any.
fn run(s: &Scenario, event: &str) -> (i32, Value) {
    let o = s.handoff(&[
        "run",
        "--event",
        event,
        "--context",
        "context.json",
        "--json",
    ]);
    let out = text(&o.stdout);
    let mut report: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("not a JSON report ({e}): {out}\n{}", text(&o.stderr)));
    if let Some(id) = report["follow_up"].as_i64() {
        report["packet"] = s.follow_up(id)["packet"].clone();
    }
    (o.status.code().unwrap(), report)
}

fn keys_in(notes: &[String]) -> Vec<String> {
    notes
        .iter()
        .flat_map(|n| n.lines())
        .filter_map(|l| l.strip_prefix("handoff-key: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn redmine_scenario_closes_everything_once_even_when_delivered_ten_more_times() {
    let r = Redmine::from_env();
    let seeded = seed(&r);
    let s = scenario(&r, &seeded);
    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("completed")),
        "{report}"
    );
    for i in 0..10 {
        let event = if i % 2 == 0 {
            "events/redmine-resent.json"
        } else {
            "events/redmine.json"
        };
        let (code, again) = run(&s, event);
        assert_eq!(
            (code, again["outcome"].as_str()),
            (0, Some("duplicate-suppressed"))
        );
    }

    // Read back from Redmine itself.
    assert_eq!(r.status_of(seeded.checklist), "Closed");
    assert_eq!(r.status_of(seeded.release), "Approved");
    let release_notes = r.notes(seeded.release);
    let evidence = "https://evidence.example.internal/releases/R-2026.11/evidence.tar";
    assert_eq!(
        release_notes
            .iter()
            .filter(|n| n.contains(evidence))
            .count(),
        1,
        "{release_notes:?}"
    );
    // One note per step, each carrying its own key once.
    let mut keys = keys_in(&release_notes);
    keys.extend(keys_in(&r.notes(seeded.checklist)));
    assert_eq!(keys.len(), 3, "{keys:?}");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3);
    assert!(
        r.notes(seeded.review).is_empty(),
        "the decision itself is never written"
    );
    assert_eq!(s.journal("queue").len(), 2);
    assert_eq!(s.journal("notify").len(), 1);

    let verify = s.handoff(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    let show = text(&s.handoff(&["runs", "show", "run-1"]).stdout);
    for touched in [
        format!("review/{}", seeded.review),
        format!("checklist/{}", seeded.checklist),
        format!("release/{}", seeded.release),
        format!("milestone/{}", seeded.milestone),
    ] {
        assert!(show.contains(&touched), "{touched} missing from:\n{show}");
    }
}

#[test]
fn a_status_change_redmines_workflow_forbids_answers_204_and_confirm_catches_it() {
    let r = Redmine::from_env();
    let seeded = seed(&r);
    let s = scenario(&r, &seeded);
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
    let seeded = seed(&r);
    let s = scenario(&r, &seeded);
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
    assert!(s.writes().is_empty());
}

#[test]
fn a_milestone_missing_or_mapped_to_another_release_halts_before_any_write() {
    let r = Redmine::from_env();
    for (change, reason) in [("delete", "mapping-missing"), ("remap", "mapping-conflict")] {
        let seeded = seed(&r);
        let s = scenario(&r, &seeded);
        let path = format!("/versions/{}.json", seeded.milestone);
        match change {
            "delete" => {
                r.call("DELETE", &path, None);
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
