//! Follow-ups: due and overdue, acknowledged, resolved by resume (only the
//! unfinished steps) or abandon, rendered for people.

use super::*;
use crate::support::scenario::*;
use serde_json::{Value, json};

/// `handoff follow-ups resolve ID --action ACTION --by BY`, then `more`.
fn resolve(s: &Scenario, id: &str, action: &str, by: &str, more: &[&str]) -> std::process::Output {
    let mut args = vec!["follow-ups", "resolve", id, "--action", action, "--by", by];
    args.extend_from_slice(more);
    s.handoff(&args)
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
    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store(), None);
    assert_lines(
        &metrics,
        &["handoff_follow_ups_open 2", "handoff_follow_ups_overdue 1"],
    );

    // Decided: no longer waiting, so no longer overdue.
    let o = resolve(&s, "1", "abandon", "release-coordinator", &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(listed(&["--overdue"]).is_empty());
    assert_eq!(listed(&["--all"]), [2, 1]);
    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store(), None);
    assert_lines(
        &metrics,
        &["handoff_follow_ups_open 1", "handoff_follow_ups_overdue 0"],
    );
    // Overdue means open: with --all it would mean nothing.
    let (code, _, err) = outcome(&s.handoff(&["follow-ups", "list", "--overdue", "--all"]));
    assert_eq!(code, 2, "{err}");
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
    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store(), None);
    assert_lines(&metrics, &["handoff_follow_up_acknowledge_seconds_count 1"]);

    // The queue is back; a person resumes.
    std::fs::remove_file(s.path("state/queue/OFFLINE")).unwrap();
    let o = resolve(
        &s,
        &id.to_string(),
        "resume",
        "release-coordinator",
        &["--note", "queue maintenance over", "--json"],
    );
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
    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store(), None);
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
fn a_follow_up_renders_for_people_and_an_abandon_is_recorded() {
    let s = Scenario::new();
    s.set_review(&["state"], json!("withdrawn"));
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
    // A note is a reason, not the story: as long as the API allows.
    let long = "x".repeat(handoff::follow_up::MAX_NOTE_BYTES + 1);
    let o = resolve(
        &s,
        &id,
        "abandon",
        "release-coordinator",
        &["--note", &long],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text_of(&o));
    assert!(
        text_of(&o).contains("the note is 4097 bytes; at most 4096"),
        "{}",
        text_of(&o)
    );
    // Plain text only, as it is shown again at someone's terminal: a line
    // break in a note is fine, an escape is not, nor any control in a role.
    // (A role that is no plain line is a wrong command line: exit 2.)
    for (by, note, code, says) in [
        (
            "release-coordinator",
            "clear\x1b[2J",
            1,
            "the note holds the control character U+001B",
        ),
        (
            "release\x07coordinator",
            "why",
            2,
            "holds the control character U+0007; a name is one line",
        ),
        (
            "release\u{202e}rotanidrooc",
            "why",
            2,
            "holds the bidirectional formatting character U+202E; a name is one line",
        ),
        (
            "release-coordinator",
            "done \u{2066}by someone else",
            1,
            "the note holds the bidirectional formatting character U+2066",
        ),
    ] {
        let o = resolve(&s, &id, "abandon", by, &["--note", note]);
        assert_eq!(o.status.code(), Some(code), "{}", text_of(&o));
        assert!(text_of(&o).contains(says), "{}", text_of(&o));
    }
    let o = s.handoff(&["follow-ups", "ack", &id, "--by", "release\x1bcoordinator"]);
    assert_eq!(o.status.code(), Some(2), "{}", text_of(&o));
    let o = resolve(&s, &id, "abandon", "release-coordinator", &[]);
    assert!(o.status.success(), "{}", text_of(&o));
    let (_, list, _) = outcome(&s.handoff(&["follow-ups", "list"]));
    assert!(list.contains("no open follow-ups"), "{list}");
    let o = resolve(&s, &id, "resume", "release-coordinator", &[]);
    assert!(text_of(&o).contains("already resolved"), "{}", text_of(&o));
    assert!(s.writes().is_empty());
    // Never acknowledged: the resolution counts as taking it on.
    let shown = s.follow_up(id.parse().unwrap());
    assert_eq!(shown["acknowledged_by"], "release-coordinator");
    assert_eq!(shown["acknowledged_at"], shown["resolved_at"]);
}

#[test]
fn a_packet_tells_its_role_once_and_a_resolution_stops_what_was_still_to_come() {
    let s = Scenario::new();
    let mut config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    config.push_str("\n[roles.release-coordinator]\nreach = [\"notify\"]\n");
    std::fs::write(s.path("handoff.toml"), config).unwrap();
    let event = another_decision(&s, "RV-400", "reopened");
    let (code, r) = run_event_json(&s, &event);
    assert_eq!(code, 3, "{r}");
    let id = r["follow_up"].as_i64().unwrap().to_string();
    let deliver = |now: &str| {
        let mut args = vec!["follow-ups", "deliver", "--json"];
        if !now.is_empty() {
            args.extend(["--now", now]);
        }
        let (code, out, err) = outcome(&s.handoff(&args));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    assert_eq!(
        deliver(""),
        json!({"sent": 1, "retried": 0, "failed": 0, "cancelled": 0})
    );
    assert_eq!(deliver("")["sent"], 0, "sent once");
    let told = s.messages("notify", "release-coordinator");
    assert_eq!(told.len(), 1, "{told:?}");
    let subject = told[0]["subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!("handoff follow-up {id} ["))
            && subject.contains("needs a person (release-coordinator, due "),
        "{subject}"
    );
    assert!(told[0]["key"].as_str().unwrap().starts_with("hn1-"));

    let o = resolve(&s, &id, "abandon", "release-coordinator", &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Long after the due time: the reminder and the overdue notice are
    // dropped, not sent.
    assert_eq!(
        deliver("2100-01-01T00:00:00Z"),
        json!({"sent": 0, "retried": 0, "failed": 0, "cancelled": 2})
    );
    assert_eq!(s.messages("notify", "release-coordinator").len(), 1);
    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store(), None);
    assert_lines(
        &metrics,
        &["handoff_notices{state=\"sent\",kind=\"opened\"} 1"],
    );
    let (_, out, _) = outcome(&s.handoff(&["follow-ups", "notices", &id]));
    assert_eq!(
        out.lines()
            .map(|l| l.split_whitespace().last().unwrap())
            .collect::<Vec<_>>(),
        ["sent", "cancelled", "cancelled"],
        "{out}"
    );
}

#[test]
fn the_handoff_is_measured_per_policy_and_role_with_rework_and_false_positives() {
    let s = Scenario::new();
    let event = another_decision(&s, "RV-500", "reopened");
    let (code, r) = run_event_json(&s, &event);
    assert_eq!(code, 3, "{r}");
    let resolve = |id: &str, action: &str, verdict: Option<&str>| {
        let more = verdict.map(|v| vec!["--verdict", v]).unwrap_or_default();
        outcome(&resolve(&s, id, action, "release-coordinator", &more))
    };
    // A resumed packet needed a person: no verdict goes with it.
    let (code, _, err) = resolve("1", "resume", Some("unnecessary"));
    assert_eq!(code, 1);
    assert!(
        err.contains("--verdict goes with mark-resolved or abandon"),
        "{err}"
    );
    // Resumed while the decision is still reopened: the run halts again.
    let (code, _, err) = resolve("1", "resume", None);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = resolve("2", "mark-resolved", Some("unnecessary"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.follow_up(2)["verdict"], "unnecessary");

    let metrics = handoff::serve::metrics::Metrics::default().render(&s.store(), None);
    let labels = r#"{policy="release-readiness-closure",role="release-coordinator"}"#;
    assert_lines(
        &metrics,
        &[
            &format!("handoff_handoffs{labels} 2"),
            &format!("handoff_handoffs_rework{labels} 1"),
            &format!("handoff_handoffs_unnecessary{labels} 1"),
            &format!("handoff_handoff_resolve_seconds_count{labels} 2"),
            &format!("handoff_handoff_acknowledge_seconds_count{labels} 2"),
        ],
    );
}

#[test]
fn a_resumed_run_goes_on_under_its_own_text_and_a_revocation_stops_it_whichever() {
    // Two runs left partial by a queue offline, then the policy changed and
    // the change approved.
    let partial = || {
        let s = Scenario::new();
        std::fs::write(s.path("state/queue/OFFLINE"), b"").unwrap();
        let (code, r) = run_json(&s);
        assert_eq!(
            (code, r["outcome"].as_str()),
            (3, Some("partially-completed")),
            "{r}"
        );
        std::fs::remove_file(s.path("state/queue/OFFLINE")).unwrap();
        s.edit_policy("sla-hours = 8", "sla-hours = 4");
        s.approve_policy();
        (s, r["follow_up"].to_string())
    };

    // Resumed: under the text it started with, to the end.
    let (s, id) = partial();
    let started_under = s.runs()[0].policy_sha256.clone();
    let o = resolve(&s, &id, "resume", "release-coordinator", &[]);
    assert!(
        text(&o.stdout).contains("completed"),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(s.runs()[0].policy_sha256, started_under);
    assert_eq!(s.writes().len(), 6);

    // Revoked after the change: the older text's run stops too, unwritten.
    let (s, id) = partial();
    let o = s.handoff(&[
        "policy",
        "revoke",
        "release-readiness-closure",
        "--by",
        "release-owner",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = resolve(&s, &id, "resume", "release-coordinator", &[]);
    assert!(
        text(&o.stdout).contains("halted-for-follow-up"),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(s.writes().len(), 3, "nothing written after the revocation");
    assert_eq!(
        s.record("queue", "review-queue", "RV-118")["state"],
        "waiting"
    );
}
