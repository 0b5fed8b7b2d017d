//! The pipeline through the real binary on the release-readiness example:
//! intake, the stages, halts and their packets, follow-ups and resume,
//! crashes, the audit chain, the dry run, the adapter-call service and the
//! reference adapters.

mod audit;
mod calls;
mod crash;
pub mod dry_run;
mod follow_ups;
mod halts;
mod intake;
mod reconcile;
mod reference;
mod refusals;
mod runs;
pub(crate) mod shadow;
mod side_by_side;
#[cfg(feature = "otlp")]
pub(crate) mod traces;

use crate::support::scenario::*;
use serde_json::{Value, json};

pub(crate) fn report(o: &std::process::Output) -> Value {
    let (code, out, err) = outcome(o);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("exit {code}, not a JSON report ({e}): {out}\n{err}"))
}

pub(crate) fn run_json(s: &Scenario) -> (i32, Value) {
    run_event_json(s, "events/accepted.json")
}

/// `handoff run --json` of an event file, with the example's context.
pub(crate) fn run_event_json(s: &Scenario, event: &str) -> (i32, Value) {
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
pub(crate) fn store_bytes(s: &Scenario) -> u64 {
    ["handoff.db", "handoff.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(s.path(&format!("state/{f}"))).ok())
        .map(|m| m.len())
        .sum()
}

pub(crate) fn verify(s: &Scenario) {
    let (code, out, err) = outcome(&s.handoff(&["audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
}

pub(crate) fn audit_kinds(s: &Scenario) -> Vec<(String, Value)> {
    s.store()
        .audit_rows(Some("run-1"))
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, serde_json::from_str(&r.payload).unwrap()))
        .collect()
}

pub(crate) fn step_states(s: &Scenario) -> Vec<(String, String)> {
    let store = s.store();
    handoff::store::steps::for_run(&store.conn().unwrap(), "run-1")
        .unwrap()
        .into_iter()
        .map(|r| (r.plan.id, r.state.name().to_string()))
        .collect()
}

/// Every target in its end state, each written exactly once per step.
pub(crate) fn assert_all_closed(s: &Scenario) {
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

pub(crate) fn halts_before_any_write(s: &Scenario, reason: &str) -> Value {
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
pub(crate) fn another_decision(s: &Scenario, id: &str, state: &str) -> String {
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

/// What a `list` command answers with `--json` and `filter`.
pub(crate) fn listed_json(s: &Scenario, command: &[&str], filter: &[&str]) -> Vec<Value> {
    let args: Vec<&str> = [command, &["--json"], filter].concat();
    let (code, out, err) = outcome(&s.handoff(&args));
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// The example policy with `sla-hours` set to `hours`, approved.
pub(crate) fn with_sla_hours(s: &Scenario, hours: u32) {
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

/// Bad input fails with the place named, exit 1, and nothing stored.
pub(crate) fn refused(s: &Scenario, o: &std::process::Output, expected: &[&str]) {
    let (code, out, err) = outcome(o);
    assert_eq!(code, 1, "{out}{err}");
    for e in expected {
        assert!(err.contains(e), "{e:?} not in: {err}");
    }
    if s.path("state/handoff.db").exists() {
        assert_eq!(s.events().len() as i64, 0);
        assert_eq!(s.runs().len() as i64, 0);
    }
    assert!(s.writes().is_empty());
}

pub fn policy_path(s: &Scenario) -> std::path::PathBuf {
    s.path("policies/release-readiness.toml")
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

pub(crate) fn text_of(o: &std::process::Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

/// What the record stores of `system` hold as written by handoff: one
/// `kind/id key` for each key a record carries and each message line.
pub(crate) fn written_facts(s: &Scenario, system: &str) -> Vec<String> {
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

/// Peak resident memory (KiB) of `handoff ARGS` in the scenario, as GNU
/// time reports it, and its exit code.
pub(crate) fn peak_rss_kib(s: &Scenario, args: &[&str]) -> (u64, i32) {
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
