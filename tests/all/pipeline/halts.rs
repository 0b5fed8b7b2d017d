//! Halts: anything stale, mismatched, missing, oversized or unconfirmed
//! stops the run before its next write, with a packet saying why.

use super::*;
use crate::support::scenario::*;
use serde_json::json;

#[test]
fn a_review_reopened_after_the_event_halts_before_any_write_with_the_snapshot() {
    let s = Scenario::new();
    s.set_review(&["state"], json!("reopened"));
    let packet = halts_before_any_write(&s, "stale-approval");
    let snapshot = &packet["packet"]["source_snapshot"];
    assert_eq!(snapshot["state"], "reopened");
    assert_eq!(snapshot["fields"]["review_version"], "3");
    assert_eq!(packet["packet"]["mismatch"]["path"], "state");
}

#[test]
fn what_a_system_holds_is_shown_at_a_terminal_without_driving_it() {
    // A reopened review whose state, as its system holds it, ends in an
    // escape that would clear the reader's screen, and a bell.
    let s = Scenario::new();
    s.set_review(&["state"], json!("reopened\u{1b}[2J\u{7}"));
    let packet = halts_before_any_write(&s, "stale-approval");
    assert_eq!(
        packet["packet"]["source_snapshot"]["state"],
        "reopened\u{1b}[2J\u{7}"
    );
    let id = packet["id"].to_string();
    for args in [&["follow-ups", "show", &id][..], &["runs", "show", "run-1"]] {
        let (code, out, err) = outcome(&s.handoff(args));
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!out.contains(['\u{1b}', '\u{7}']), "{args:?}: {out:?}");
        assert!(out.contains(r"reopened\u{1b}[2J\u{7}"), "{args:?}: {out}");
    }
}

#[test]
fn a_superseded_review_version_halts_before_any_write() {
    let s = Scenario::new();
    s.set_review(&["fields", "review_version"], json!("4"));
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
    s.set_review(&["state"], json!("reopened"));
    s.set_review(&["fields", "analyst_notes"], json!("SENSITIVE narrative"));
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
    s.set_review(&["fields", "analyst_notes"], json!("n".repeat(5_000_000)));
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
    s.set_review(
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
        "[adapters.governance]\nconcurrency = 4\npackage = \"{}/fs-records\"",
        handoff::BUILT_PACKAGES_DIR
    );
    s.edit_config(
        &governance,
        &format!(
            "[adapters.governance]\nconcurrency = 4\npackage = \"{}\"",
            big.display()
        ),
    );
    s.set_review(&["fields", "analyst_notes"], json!("n".repeat(50_000_000)));
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
fn a_record_someone_set_outside_a_steps_from_states_goes_to_a_person_unwritten() {
    let s = Scenario::new();
    // The checklist rejected by hand: the first step may close it only
    // from open.
    s.set(
        "checklist",
        "checklist",
        "CL-7",
        &["state"],
        json!("rejected"),
    );
    let packet = halts_before_any_write(&s, "mapping-conflict");
    assert_eq!(
        packet["packet"]["mismatch"],
        json!({ "path": "state", "expected": "one of open, new", "found": "rejected" })
    );
    assert_eq!(
        s.record("checklist", "checklist", "CL-7")["state"],
        "rejected"
    );

    // The release cancelled by hand: the checklist is closed, the release
    // left as it is, and the rest waits for a person.
    let s = Scenario::new();
    s.set(
        "tracker",
        "release",
        "R-2026.11",
        &["state"],
        json!("cancelled"),
    );
    let (code, r) = run_json(&s);
    assert_eq!(
        (code, r["outcome"].as_str()),
        (3, Some("halted-for-follow-up")),
        "{r}"
    );
    let packet = s.follow_up(r["follow_up"].as_i64().unwrap());
    assert_eq!(packet["packet"]["reason"], "mapping-conflict", "{packet:#}");
    assert_eq!(
        packet["packet"]["done"].as_array().unwrap().len(),
        1,
        "{packet:#}"
    );
    assert_eq!(
        s.writes().len(),
        1,
        "the checklist's close only: {:?}",
        s.writes()
    );
    assert_eq!(
        s.record("tracker", "release", "R-2026.11")["state"],
        "cancelled"
    );

    // Set back by the person who cancelled it, the run resumes and ends.
    s.set(
        "tracker",
        "release",
        "R-2026.11",
        &["state"],
        json!("in-review"),
    );
    let id = packet["id"].to_string();
    let (code, out, err) = outcome(&s.handoff(&[
        "follow-ups",
        "resolve",
        &id,
        "--action",
        "resume",
        "--by",
        "release-coordinator",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("completed"), "{out}");
    assert_eq!(
        s.record("tracker", "release", "R-2026.11")["state"],
        "approved"
    );
    verify(&s);
}
