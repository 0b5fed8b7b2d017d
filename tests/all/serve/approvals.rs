//! A running service follows approvals as they change: an adapter revoked
//! while `serve` runs (its instances loaded by an earlier run) is used by
//! no run that starts after the revocation, and approved again, it is used
//! by the next run, with no restart either time.

use crate::support::scenario::*;
use crate::support::service::*;
use serde_json::json;

/// The seeded decision again, as decided again at `version`: a decision
/// of its own, whose closure work is found done (nothing to write, but
/// every record store must be asked).
fn decided_again(s: &Scenario, version: u32) -> Vec<u8> {
    s.set_review(&["fields", "review_version"], json!(version.to_string()));
    let mut again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("events/accepted.json")).unwrap()).unwrap();
    again["id"] = json!(format!("gov-evt-v{version}"));
    again["data"]["review_version"] = json!(version.to_string());
    again.to_string().into_bytes()
}

#[test]
fn an_adapter_revoked_while_the_service_runs_is_used_by_no_later_run() {
    let s = scenario(1, 10);
    let service = Service::start(&s, None);
    let first = std::fs::read(s.path("events/accepted.json")).unwrap();
    let (code, answer) = service.post(&signed("m1", &first), &first);
    assert_eq!(code, 202, "{answer}");
    let run = answer["run_id"].as_str().unwrap().to_string();
    assert_eq!(outcome_of(&s, &run), "completed");

    let revoke = s.handoff(&["adapter", "revoke", "fs-records", "--by", "security-review"]);
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    let again = decided_again(&s, 4);
    let (code, answer) = service.post(&signed("m2", &again), &again);
    assert_eq!(code, 202, "{answer}");
    let run = answer["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        outcome_of(&s, &run),
        "halted-for-follow-up",
        "a run after the revocation"
    );
    // Refused at load, naming the revocation; the run's packet says why.
    let refused = s.count(
        "SELECT COUNT(*) FROM audit WHERE kind = 'capability-decision' \
         AND payload LIKE '%fs-records: its approval was revoked by security-review%'",
    );
    assert!(refused > 0, "no refusal names the revocation");
    let denied = s.count(&format!(
        "SELECT COUNT(*) FROM audit WHERE run_id = '{run}' AND kind = 'follow-up-emitted' \
         AND json_extract(payload, '$.reason') = 'capability-denied'"
    ));
    assert_eq!(denied, 1, "the run's follow-up gives the reason");

    // Approved again: the next run loads it and completes.
    let package = format!("{}/fs-records", handoff::BUILT_PACKAGES_DIR);
    let approve = s.handoff(&["adapter", "approve", &package, "--by", "security-review"]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    let again = decided_again(&s, 5);
    let (code, answer) = service.post(&signed("m3", &again), &again);
    assert_eq!(code, 202, "{answer}");
    let run = answer["run_id"].as_str().unwrap().to_string();
    assert_eq!(outcome_of(&s, &run), "completed-with-skips");
}
