//! Refusals: bad input and unapproved policies are refused naming the
//! place, with nothing half written.

use super::*;
use crate::support::scenario::*;

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

    // A member named twice could be read either way: refused, not chosen.
    let accepted = std::fs::read_to_string(s.path("events/accepted.json")).unwrap();
    let twice = accepted.replacen("\"state\":", "\"state\": \"rejected\", \"state\":", 1);
    assert_ne!(twice, accepted);
    std::fs::write(s.path("events/twice.json"), twice).unwrap();
    let o = s.run_event("events/twice.json");
    refused(&s, &o, &["events/twice.json", "\"state\" is given twice"]);
    let context = std::fs::read_to_string(s.path("context.json")).unwrap();
    std::fs::write(
        s.path("context.json"),
        context.replacen('{', "{\"evidence_bundle\": \"other\", ", 1),
    )
    .unwrap();
    refused(
        &s,
        &s.run(),
        &["context.json", "\"evidence_bundle\" is given twice"],
    );

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
        "[adapters.notify]\nconcurrency = 4\npackage = \"",
        "[adapters.notify]\nconcurrency = 4\npackage = \"/nowhere",
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

#[test]
fn files_past_their_bound_are_refused_naming_it_before_they_are_read_whole() {
    // An event larger than the service would take as a body (an endless
    // one too), and a context as large.
    let s = Scenario::new();
    let padded = format!(
        "{{\"padding\": \"{}\"}}",
        "x".repeat(handoff::config::serve::ServeConfig::default().max_body_bytes)
    );
    std::fs::write(s.path("events/large.json"), &padded).unwrap();
    let o = s.run_event("events/large.json");
    refused(&s, &o, &["events/large.json", "max-body-bytes = 262144"]);
    let o = s.handoff(&["run", "--event", "/dev/zero", "--context", "context.json"]);
    refused(&s, &o, &["/dev/zero", "larger than 262144 bytes"]);
    std::fs::write(s.path("context.json"), &padded).unwrap();
    refused(&s, &s.run(), &["context.json", "larger than 262144 bytes"]);

    // A policy of settings is at most 1 MiB.
    let s = Scenario::new();
    let policy = std::fs::read_to_string(policy_path(&s)).unwrap();
    let comment = format!("# {}\n", "x".repeat(1024 * 1024));
    std::fs::write(policy_path(&s), policy + &comment).unwrap();
    refused(
        &s,
        &s.run(),
        &["release-readiness.toml", "larger than 1048576 bytes"],
    );

    // So is the configuration.
    let s = Scenario::new();
    let config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    std::fs::write(s.path("handoff.toml"), config + &comment).unwrap();
    refused(&s, &s.run(), &["handoff.toml", "larger than 1048576 bytes"]);
}

#[test]
fn commands_that_read_the_store_refuse_a_missing_one_and_make_nothing() {
    let s = Scenario::new();
    let missing = s.path("typo/handoff.db");
    let store = missing.to_str().unwrap();
    // Reading or acting on what was stored: an empty store made at a
    // mistyped path would answer "no runs", or verify an empty chain.
    for args in [
        &["runs", "list"][..],
        &["runs", "show", "run-1"],
        &["audit", "verify"],
        &["audit", "head"],
        &["audit", "export"],
        &["follow-ups", "list"],
        &["follow-ups", "ack", "1", "--by", "someone"],
        &["shadow", "report"],
        &["store", "backup", "backup/copy.db"],
        &["store", "prune", "--older-than-days", "1"],
        &["adapter", "revoke", "tracker", "--by", "someone"],
    ] {
        let o = s.handoff(&[&["--store", store][..], args].concat());
        let (code, out, err) = outcome(&o);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains(&format!("there is no store at {store}")),
            "{args:?}: {err}"
        );
    }
    // Looking at what is approved finds nothing approved, and writes
    // nothing either.
    for args in [&["adapter", "list"][..], &["policy", "list"], &["check"]] {
        let o = s.handoff(&[&["--store", store][..], args].concat());
        let (code, out, err) = outcome(&o);
        assert!(
            out.contains("approved") || out.contains("Approve"),
            "{args:?} (exit {code}): {out}{err}"
        );
    }
    assert!(
        !s.path("typo").exists(),
        "a directory was made for the store"
    );
    assert!(
        !s.path("backup").exists(),
        "a directory was made for the copy"
    );
}

/// An event like the example's whose decision has the id `review`.
fn decision_named(s: &Scenario, review: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("events/accepted.json")).unwrap()).unwrap();
    event["id"] = serde_json::json!("decision-named");
    event["data"]["review_id"] = serde_json::json!(review);
    std::fs::write(s.path("events/named.json"), event.to_string()).unwrap();
    "events/named.json".into()
}

#[test]
fn record_names_from_an_event_are_bounded_and_one_no_store_can_hold_is_not_asked_again() {
    // Refused before anything is stored or any adapter asked: a record's
    // id from the context...
    for (checklist, says) in [
        ("c".repeat(513), "is 513 bytes; at most 512"),
        ("CL\n7".to_string(), "holds a control character"),
        (String::new(), "is empty"),
    ] {
        let s = Scenario::new();
        let mut context: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.path("context.json")).unwrap()).unwrap();
        context["checklist_id"] = serde_json::json!(checklist);
        std::fs::write(s.path("context.json"), context.to_string()).unwrap();
        refused(&s, &s.run(), &["close-checklist", "record.id", says]);
    }
    // ... and a part of the business key from the event.
    let s = Scenario::new();
    let mut event: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("events/accepted.json")).unwrap()).unwrap();
    event["data"]["review_version"] = serde_json::json!("3".repeat(513));
    std::fs::write(s.path("events/long.json"), event.to_string()).unwrap();
    refused(
        &s,
        &s.run_event("events/long.json"),
        &["source.business-key[1]", "is 513 bytes; at most 512"],
    );
    // Within the bound, but longer than a file name may be: the record
    // store's answer is final, so the run stops for a person at once
    // rather than asking twice more.
    let s = Scenario::new();
    let event = decision_named(&s, &"r".repeat(300));
    let (code, r) = run_event_json(&s, &event);
    assert_eq!(
        (code, r["outcome"].as_str()),
        (3, Some("halted-for-follow-up")),
        "{r}"
    );
    let packet = s.follow_up(r["follow_up"].as_i64().unwrap());
    assert_eq!(packet["packet"]["reason"], "target-refused", "{packet}");
    assert!(s.writes().is_empty(), "{:?}", s.writes());
}

#[test]
fn an_error_repeating_what_it_was_given_is_bounded_and_cannot_drive_the_terminal() {
    let s = Scenario::new();
    assert!(s.run().status.success());
    // An id pasted from elsewhere: an escape sequence that would colour the
    // terminal, an override that would turn the text after it around.
    let o = s.handoff(&["runs", "show", "run\u{1b}[31m-1\u{202e}"]);
    let (code, _, err) = outcome(&o);
    assert_eq!(code, 1, "{err}");
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{202e}'),
        "written out: {err:?}"
    );
    assert!(err.contains("run\\u{1b}[31m-1\\u{202e}"), "{err}");
    // A long one is said by its start and its length.
    let long = "r".repeat(20_000);
    let (code, _, err) = outcome(&s.handoff(&["runs", "show", &long]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.len() < 5_000 && err.contains("bytes)"),
        "{} bytes",
        err.len()
    );
    // A command line the parser itself refuses repeats its value too.
    for (args, says) in [
        (
            vec!["runs", "list", "--outcome", "done\u{1b}[2J\u{202e}"],
            "\\u{202e}' for '--outcome",
        ),
        (
            vec!["follow-ups", "ack", "1", "--by", "x\u{2067}y"],
            "bidirectional formatting character U+2067",
        ),
    ] {
        let (code, _, err) = outcome(&s.handoff(&args));
        assert_eq!(code, 2, "{err}");
        assert!(
            !err.contains('\u{1b}') && !err.contains('\u{202e}') && !err.contains('\u{2067}'),
            "written out: {err:?}"
        );
        assert!(err.contains(says), "{err}");
    }
    let (code, _, err) = outcome(&s.handoff(&["runs", "list", "--outcome", &long]));
    assert_eq!(code, 2, "{err}");
    assert!(err.len() < 5_000, "{} bytes", err.len());
    // Help is still help, on standard output.
    let (code, out, _) = outcome(&s.handoff(&["runs", "--help"]));
    assert_eq!(code, 0);
    assert!(out.contains("Usage: handoff runs"), "{out}");
}

#[test]
fn an_event_or_a_context_is_read_from_standard_input_for_a_dash_bounded_as_a_file_is() {
    use std::io::Write;
    use std::process::Stdio;
    let s = Scenario::new();
    let piped = |args: &[&str], input: &[u8]| {
        let mut child = s
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A refusal may come before all of a large input is read.
        let _ = child.stdin.take().unwrap().write_all(input);
        outcome(&child.wait_with_output().unwrap())
    };
    let event = std::fs::read(s.path("events/accepted.json")).unwrap();
    let context = std::fs::read(s.path("context.json")).unwrap();

    // Given twice, the second would read nothing: refused before anything.
    let (code, _, err) = piped(&["run", "--event", "-", "--context", "-"], &event);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("read once"), "{err}");
    // Past the bound the service keeps for a body, as a file would be.
    let big = vec![b' '; 300 * 1024];
    let (code, _, err) = piped(&["run", "--event", "-"], &big);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("standard input") && err.contains("262144"),
        "{err}"
    );
    assert!(s.runs().is_empty(), "nothing stored");

    let (code, out, err) = piped(
        &["run", "--event", "-", "--context", "context.json"],
        &event,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("completed"), "{out}");
    // The context the same way; the same decision is a duplicate of it.
    let (code, out, err) = piped(
        &["run", "--event", "events/accepted.json", "--context", "-"],
        &context,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("duplicate"), "{out}");
    assert_eq!(s.runs().len(), 1);
}

#[test]
fn a_damaged_store_is_said_to_be_one_with_what_to_do() {
    let s = Scenario::new();
    assert!(s.run().status.success());
    let store = s.path("state/handoff.db");
    // Half of it gone, as after a disk fault.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&store)
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len / 2).unwrap();
    drop(file);
    let _ = std::fs::remove_file(s.path("state/handoff.db-wal"));
    let _ = std::fs::remove_file(s.path("state/handoff.db-shm"));
    let (code, _, err) = outcome(&s.handoff(&["runs", "list"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("malformed"), "{err}");
    assert!(
        err.contains("what to do") && err.contains("store restore"),
        "{err}"
    );
    // A store that is only missing says nothing of the kind.
    std::fs::remove_file(&store).unwrap();
    let (code, _, err) = outcome(&s.handoff(&["runs", "list"]));
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("store restore"), "{err}");
}

#[test]
fn a_run_refused_where_no_store_is_leaves_none_behind() {
    // Approvals live in the store: with none yet, the policy is not
    // approved, and saying so makes no empty store.
    let s = Scenario::unapproved();
    let (code, _, err) = outcome(&s.run());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not approved"), "{err}");
    let made: Vec<_> = std::fs::read_dir(s.path("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("handoff.db"))
        .collect();
    assert!(made.is_empty(), "{made:?}");
    // Once something is approved, the store is there and runs go on.
    assert!(
        s.handoff(&[
            "policy",
            "approve",
            "policies/release-readiness.toml",
            "--by",
            "owner"
        ])
        .status
        .success()
    );
    assert!(s.path("state/handoff.db").exists());
}
