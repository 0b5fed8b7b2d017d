//! Reconciliation against a source that lists whatever a test writes (the
//! `listing` test adapter): a listed decision that can never be taken in is
//! passed over, and holds up neither the decisions after it nor the cursor.

use crate::support::built;
use crate::support::scenario::*;
use handoff::sandbox::package::Package;
use handoff::store::adapters::NewApproval;
use serde_json::json;

/// The example with its governance source read through `listing`.
fn listed_scenario() -> Scenario {
    let s = Scenario::new();
    let pkg = Package::read(&built("listing")).unwrap();
    s.store()
        .approve_adapter(&NewApproval::of(&pkg, "security-review"))
        .unwrap();
    let built_dir = handoff::BUILT_PACKAGES_DIR;
    s.edit_config(
        &format!(
            "package = \"{built_dir}/fs-records\"\ndirectories = {{ records = \"state/governance\" }}"
        ),
        &format!(
            "package = \"{built_dir}/listing\"\ndirectories = {{ records = \"state/governance\" }}"
        ),
    );
    s
}

fn review(s: &Scenario, id: &str) {
    let path = s.path(&format!("state/governance/review/{id}.json"));
    let record = json!({"state": "accepted", "revision": 1,
                        "fields": {"review_version": "1", "release_id": "R-2026.11"}});
    std::fs::write(path, record.to_string()).unwrap();
}

#[test]
fn a_listed_decision_that_cannot_be_taken_in_is_passed_over_not_retried_forever() {
    let s = listed_scenario();
    // A record gone since it was listed; one whose id no CloudEvent may
    // carry (a terminal escape; the file exists, so it is read); one whose
    // name no file system takes; and two decisions that are fine.
    let escape = "RV-\u{1b}[2J";
    review(&s, escape);
    review(&s, "RV-201");
    let listed = |id: &str| json!({"kind": "review", "id": id, "state": "accepted"});
    let changes = json!([
        listed("RV-gone"),
        listed(escape),
        listed(&"x".repeat(3000)),
        listed("RV-118"),
        listed("RV-201"),
    ]);
    std::fs::write(s.path("state/governance/changes.json"), changes.to_string()).unwrap();

    let context = s.context();
    let (mut engine, _, rt) = s.engine_sharing_throttle();
    let found = rt.block_on(engine.reconcile(&context)).unwrap();
    assert_eq!(found.new_runs.len(), 2, "{found:?}");
    assert_eq!(found.passed_over, 3, "{found:?}");
    let taken: Vec<String> = s.events().into_iter().map(|(_, id)| id).collect();
    assert_eq!(taken, ["review/RV-118@4", "review/RV-201@1"]);
    let cursor = s
        .store()
        .poll_cursor("governance", "release-readiness-closure")
        .unwrap();
    assert_eq!(cursor.as_deref(), Some("5"), "past all five");

    // The next pass starts after them: nothing is read again.
    let again = rt.block_on(engine.reconcile(&context)).unwrap();
    assert_eq!(
        (again.new_runs.len(), again.passed_over),
        (0, 0),
        "{again:?}"
    );
}

#[test]
fn a_source_that_always_has_more_is_read_a_bounded_number_of_pages_a_pass() {
    let s = listed_scenario();
    // Full pages of changes of another kind, without end.
    let page: Vec<_> = (0..100)
        .map(|i| json!({"kind": "other", "id": format!("O-{i}"), "state": "accepted"}))
        .collect();
    std::fs::write(
        s.path("state/governance/changes.json"),
        json!(page).to_string(),
    )
    .unwrap();
    std::fs::write(s.path("state/governance/ENDLESS"), "").unwrap();
    let context = s.context();
    let (mut engine, _, rt) = s.engine_sharing_throttle();
    let pass = |engine: &mut handoff::pipeline::Engine| {
        rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(120),
                engine.reconcile(&context),
            )
            .await
        })
        .expect("the pass ends")
        .unwrap()
    };
    let pages = handoff::pipeline::reconcile::PAGES_PER_PASS;
    let found = pass(&mut engine);
    assert_eq!(found.ignored, pages * 100);
    let cursor = || {
        s.store()
            .poll_cursor("governance", "release-readiness-closure")
            .unwrap()
    };
    assert_eq!(cursor(), Some((pages * 100).to_string()));
    // The next pass goes on from there.
    pass(&mut engine);
    assert_eq!(cursor(), Some((2 * pages * 100).to_string()));
}

#[test]
fn a_source_that_fails_for_now_keeps_the_cursor_for_the_next_pass() {
    let s = listed_scenario();
    std::fs::write(
        s.path("state/governance/changes.json"),
        json!([{"kind": "review", "id": "RV-118", "state": "accepted"}]).to_string(),
    )
    .unwrap();
    // The listed decision's file cannot be read as a decision: the adapter
    // answers `invalid` for this record alone, and it is passed over ...
    std::fs::write(s.path("state/governance/review/RV-118.json"), "{").unwrap();
    let context = s.context();
    let (mut engine, _, rt) = s.engine_sharing_throttle();
    let found = rt.block_on(engine.reconcile(&context)).unwrap();
    assert_eq!(
        (found.new_runs.len(), found.passed_over),
        (0, 1),
        "{found:?}"
    );

    // ... while a listing that cannot be read fails the pass, and the
    // cursor stays where it was.
    std::fs::write(s.path("state/governance/changes.json"), "[").unwrap();
    let before = s
        .store()
        .poll_cursor("governance", "release-readiness-closure")
        .unwrap();
    assert_eq!(before.as_deref(), Some("1"));
    let failed = rt.block_on(engine.reconcile(&context));
    assert!(failed.is_err(), "{failed:?}");
    let after = s
        .store()
        .poll_cursor("governance", "release-readiness-closure")
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn the_service_counts_what_reconciliation_passed_over_and_its_failed_passes() {
    use crate::support::service::*;
    let s = listed_scenario();
    with_serve(&s, serve_config(1, 10, 1, SOURCE));
    std::fs::write(
        s.path("state/governance/changes.json"),
        json!([
            {"kind": "review", "id": "RV-gone", "state": "accepted"},
            {"kind": "review", "id": "RV-118", "state": "accepted"},
        ])
        .to_string(),
    )
    .unwrap();
    let service = Service::start(&s, None);
    let metric = |name: &str| -> Option<u64> {
        let (_, text) = service.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(|v| v.parse().unwrap())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // The pass's counts are added when it ends, its runs as they are made.
    while metric("handoff_reconcile_passed_over_total") != Some(1) {
        assert!(std::time::Instant::now() < deadline, "no pass ended");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(metric("handoff_reconciled_runs_total"), Some(1));
    assert_eq!(metric("handoff_reconcile_failed_passes_total"), Some(0));
    // The source cannot list now: passes fail, and are counted.
    std::fs::write(s.path("state/governance/changes.json"), "[").unwrap();
    while metric("handoff_reconcile_failed_passes_total") == Some(0) {
        assert!(std::time::Instant::now() < deadline, "no pass failed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(metric("handoff_reconcile_passed_over_total"), Some(1));
}
