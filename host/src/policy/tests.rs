//! Policies parsed strictly: their digest and reach, and every refusal naming its place.

use super::*;

pub(crate) const RELEASE: &str = r#"
[policy]
id = "release-readiness-closure"
version = "3"

[trigger]
type = "release.review.decided"
states = ["accepted"]

[source]
adapter = "governance"
record = { kind = "review", id = "{{event.data.review_id}}" }
must-match = { state = "accepted", "fields.review_version" = "{{event.data.review_version}}" }
revalidate = "before-each-write"
business-key = ["{{event.data.review_id}}", "{{event.data.review_version}}"]

[[check]]
name = "milestone mapping"
adapter = "tracker"
record = { kind = "version", id = "{{context.milestone_id}}" }
expect = { exists = true, "fields.release_id" = "{{event.data.release_id}}" }

[[step]]
id = "close-checklist"
adapter = "checklist"
record = { kind = "issue", id = "{{context.checklist_id}}" }
action = { set-state = "closed" }
done-when = { state = "closed" }

[[step]]
id = "clear-queue-entry"
adapter = "queue"
record = { kind = "entry", id = "{{event.data.review_id}}" }
action = "clear-entry"
done-when = { state = "cleared" }

[[step]]
id = "notify-coordinator"
adapter = "notify"
record = { kind = "channel", id = "release-coordinators" }
action = { publish = { subject = "Release {{event.data.release_id}} ready for scheduling", links = ["{{context.evidence_url}}"] } }
done-when = { exists = true }

[follow-up]
route-to = "release-coordinator"
"#;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, Path::new("policies/release.toml"))
}

#[test]
fn the_release_policy_parses_with_its_digest_and_reach() {
    let p = parse(RELEASE).unwrap();
    assert_eq!(
        (p.id.as_str(), p.version.as_str()),
        ("release-readiness-closure", "3")
    );
    assert_eq!(p.sha256.len(), 64);
    assert_eq!(p.steps[1].action, ActionTemplate::ClearEntry);
    assert_eq!(p.follow_up.sla_hours, 24);
    assert!(
        p.reach()
            .contains(&("notify".to_string(), ActionKind::Publish))
    );
    assert_ne!(
        parse(&RELEASE.replace("\"3\"", "\"4\"")).unwrap().sha256,
        p.sha256
    );
}

#[test]
fn unknown_keys_and_actions_are_refused_with_their_names() {
    let err = parse(&RELEASE.replace("revalidate =", "retries = 3\nrevalidate =")).unwrap_err();
    assert!(err.problem.contains("retries"), "{err}");
    let err =
        parse(&RELEASE.replace("{ set-state = \"closed\" }", "{ deploy = \"prod\" }")).unwrap_err();
    assert!(err.problem.contains("deploy"), "{err}");
}

#[test]
fn a_record_or_a_message_given_by_position_is_refused() {
    for (named, positional) in [
        (
            "{ kind = \"issue\", id = \"{{context.checklist_id}}\" }",
            "[\"issue\", \"{{context.checklist_id}}\"]",
        ),
        (
            "{ subject = \"Release {{event.data.release_id}} ready for scheduling\", links = \
             [\"{{context.evidence_url}}\"] }",
            "[\"Release {{event.data.release_id}} ready\", \"body\", [\"{{context.evidence_url}}\"]]",
        ),
    ] {
        let err = parse(&RELEASE.replace(named, positional)).unwrap_err();
        assert!(
            err.problem.contains("given by position"),
            "{positional}: {err}"
        );
        assert!(err.problem.contains("line "), "where it is: {err}");
    }
}

#[test]
fn bad_templates_and_conditions_fail_at_load_naming_the_step() {
    let err = parse(&RELEASE.replace("{{context.checklist_id}}", "{{env.HOME}}")).unwrap_err();
    assert!(
        err.problem.contains("step close-checklist record.id"),
        "{err}"
    );
    let err = parse(&RELEASE.replace(
        "done-when = { state = \"closed\" }",
        "done-when = { status = \"closed\" }",
    ))
    .unwrap_err();
    assert!(
        err.problem.contains("unknown condition \"status\""),
        "{err}"
    );
    let err = parse(&RELEASE.replace("exists = true,", "exists = \"yes\",")).unwrap_err();
    assert!(err.problem.contains("exists takes true or false"), "{err}");
    // A number, a table: what a value may be is said, not the enum's name.
    for value in ["5", "{ is = \"closed\" }"] {
        let err = parse(&RELEASE.replace(
            "done-when = { state = \"closed\" }",
            &format!("done-when = {{ state = {value} }}"),
        ))
        .unwrap_err();
        assert!(
            err.problem
                .contains("text (a template, in quotes) or true / false")
                && !err.problem.contains("untagged"),
            "{value}: {err}"
        );
    }
}

#[test]
fn duplicate_step_ids_and_empty_triggers_are_refused() {
    let err = parse(&RELEASE.replace("id = \"clear-queue-entry\"", "id = \"close-checklist\""))
        .unwrap_err();
    assert!(err.problem.contains("used twice"), "{err}");
    let err = parse(&RELEASE.replace("states = [\"accepted\"]", "states = []")).unwrap_err();
    assert!(err.problem.contains("trigger.states is empty"), "{err}");
}

#[test]
fn a_policy_is_plain_text_with_line_breaks_allowed_in_values() {
    // An escape in a message's subject would reach a reviewer's terminal
    // and every recipient of the message.
    let err = parse(&RELEASE.replace("ready for scheduling", "ready\\u001b[2J for scheduling"))
        .unwrap_err();
    assert!(
        err.problem.starts_with("step[2].action.publish.subject") && err.problem.contains("U+001B"),
        "{err}"
    );
    // A body of several lines is fine, also from a file saved with CRLF
    // line ends (TOML keeps them in a multi-line string).
    let crlf = RELEASE.replace(
        "links = [",
        "body = \"\"\"Line one.\r\nLine two.\"\"\", links = [",
    );
    let policy = parse(&crlf).unwrap();
    assert!(
        matches!(&policy.steps[2].action, ActionTemplate::Publish(m) if m.body.contains("\r\n")),
        "{:?}",
        policy.steps[2].action
    );
    // A body of several lines is fine.
    parse(&RELEASE.replace(
        "links = [",
        "body = \"\"\"Line one.\n\tLine two.\"\"\", links = [",
    ))
    .unwrap();
}

#[test]
fn a_must_match_that_does_not_hold_the_state_to_an_authorizing_one_is_refused() {
    let must = "must-match = { state = \"accepted\", ";
    assert!(RELEASE.contains(must));
    for (instead, why) in [
        ("must-match = { ", "no state: a revoked decision would pass"),
        (
            "must-match = { state = \"revoked\", ",
            "a state the trigger does not take",
        ),
        (
            "must-match = { state = \"{{event.data.review_id}}\", ",
            "not the event's state",
        ),
    ] {
        let err = parse(&RELEASE.replace(must, instead)).unwrap_err();
        assert!(
            err.problem.starts_with(
                "source.must-match must hold state to one of trigger.states (accepted)"
            ),
            "{why}: {err}"
        );
    }
    let empty = RELEASE.replace(
        "must-match = { state = \"accepted\", \"fields.review_version\" = \"{{event.data.review_version}}\" }",
        "must-match = {}",
    );
    assert_ne!(empty, RELEASE);
    assert!(parse(&empty).is_err());
    // The state the event carried, which intake held to the trigger's.
    let two = RELEASE
        .replace(
            "states = [\"accepted\"]",
            "states = [\"accepted\", \"approved\"]",
        )
        .replace(must, "must-match = { state = \"{{ event.data.state }}\", ");
    parse(&two).unwrap();
    parse(&RELEASE.replace(must, "must-match = { state = \"{{event.data.state}}\", ")).unwrap();
}

#[test]
fn a_business_key_naming_nothing_of_the_event_is_refused() {
    let key = "business-key = [\"{{event.data.review_id}}\", \"{{event.data.review_version}}\"]";
    assert!(RELEASE.contains(key));
    for instead in [
        "business-key = [\"release\"]",
        "business-key = [\"{{context.checklist_id}}\", \"v1\"]",
    ] {
        let err = parse(&RELEASE.replace(key, instead)).unwrap_err();
        assert!(
            err.problem
                .starts_with("source.business-key names nothing of the event"),
            "{instead}: {err}"
        );
    }
    parse(&RELEASE.replace(
        key,
        "business-key = [\"{{context.checklist_id}}\", \"{{event.subject}}\"]",
    ))
    .unwrap();
    let none = parse(&RELEASE.replace(key, "")).unwrap();
    assert!(none.source.business_key.is_empty());
}

#[test]
fn empty_names_repeated_check_names_and_empty_expectations_are_refused() {
    for (from, to, says) in [
        (
            "type = \"release.review.decided\"",
            "type = \" \"",
            "trigger.type is empty",
        ),
        (
            "states = [\"accepted\"]",
            "states = [\"accepted\", \"\"]",
            "trigger.states holds an empty state",
        ),
        (
            "name = \"milestone mapping\"",
            "name = \"\"",
            "a [[check]]'s name is empty",
        ),
        (
            "id = \"close-checklist\"",
            "id = \"\"",
            "a [[step]]'s id is empty",
        ),
        (
            "expect = { exists = true, \"fields.release_id\" = \"{{event.data.release_id}}\" }",
            "expect = {}",
            "check \"milestone mapping\": expect is empty",
        ),
    ] {
        let text = RELEASE.replace(from, to);
        assert_ne!(text, RELEASE, "{from}");
        let err = parse(&text).unwrap_err();
        assert!(err.problem.starts_with(says), "{to}: {err}");
    }
    let two = RELEASE.replace(
        "[[step]]\nid = \"close-checklist\"",
        "[[check]]\nname = \"milestone mapping\"\nadapter = \"tracker\"\n\
         record = { kind = \"version\", id = \"M-1\" }\nexpect = { exists = true }\n\n\
         [[step]]\nid = \"close-checklist\"",
    );
    assert_ne!(two, RELEASE);
    let err = parse(&two).unwrap_err();
    assert!(
        err.problem
            .contains("check name \"milestone mapping\" is used twice"),
        "{err}"
    );
    // No time at all is a choice: due as it opens. More than a year is not.
    let sla = |hours: u32| {
        parse(&RELEASE.replace(
            "route-to = \"release-coordinator\"",
            &format!("route-to = \"release-coordinator\"\nsla-hours = {hours}"),
        ))
    };
    sla(0).unwrap();
    sla(8784).unwrap();
    let err = sla(8785).unwrap_err();
    assert!(
        err.problem
            .contains("follow-up.sla-hours is 8785; at most 8784"),
        "{err}"
    );
}

#[test]
fn from_states_name_each_state_a_step_may_change_once_or_are_left_out() {
    let with = |list: &str| {
        RELEASE.replace(
            "done-when = { state = \"closed\" }",
            &format!("done-when = {{ state = \"closed\" }}\nfrom-states = {list}"),
        )
    };
    let step = parse(&with("[\"open\", \"new\"]")).unwrap();
    assert_eq!(
        step.steps[0].from_states.as_deref(),
        Some(&["open".to_string(), "new".to_string()][..])
    );
    assert_eq!(
        parse(RELEASE).unwrap().steps[0].from_states,
        None,
        "any state"
    );
    for (list, says) in [
        ("[]", "from-states is empty"),
        ("[\"open\", \" \"]", "from-states holds an empty state"),
        ("[\"open\", \"open\"]", "from-states names \"open\" twice"),
    ] {
        let err = parse(&with(list)).unwrap_err();
        assert!(err.problem.contains(says), "{list}: {err}");
    }
}

#[test]
fn a_policy_that_would_show_in_another_order_than_it_reads_is_refused() {
    // A comment, as much as a value: a reviewer approves what they see.
    let commented = RELEASE.replace(
        "action = { set-state = \"closed\" }",
        "action = { set-state = \"closed\" } # \u{202E} {\u{2066}",
    );
    assert_ne!(commented, RELEASE);
    let err = parse(&commented).unwrap_err();
    assert!(
        err.problem.starts_with("line 27 holds U+202E") && err.problem.contains("another order"),
        "{err}"
    );
    // Right-to-left text itself is text.
    parse(&RELEASE.replace("ready for scheduling", "ready for scheduling (שלום)")).unwrap();
}

#[test]
fn a_policy_has_at_most_a_hundred_checks_and_a_hundred_steps() {
    let steps = |n: usize| {
        (0..n)
            .map(|i| {
                format!(
                    "\n[[step]]\nid = \"s{i}\"\nadapter = \"checklist\"\n\
                     record = {{ kind = \"issue\", id = \"c{i}\" }}\n\
                     action = {{ set-state = \"closed\" }}\ndone-when = {{ state = \"closed\" }}\n"
                )
            })
            .collect::<String>()
    };
    let (head, tail) = RELEASE.split_once("\n[follow-up]").unwrap();
    parse(&format!("{head}{}\n[follow-up]{tail}", steps(97))).unwrap();
    let err = parse(&format!("{head}{}\n[follow-up]{tail}", steps(98))).unwrap_err();
    assert!(
        err.problem
            .contains("101 [[step]]s; a policy has at most 100"),
        "{err}"
    );
    let checks: String = (0..100)
        .map(|i| {
            format!(
                "\n[[check]]\nname = \"c{i}\"\nadapter = \"tracker\"\n\
                 record = {{ kind = \"version\", id = \"v{i}\" }}\nexpect = {{ exists = true }}\n"
            )
        })
        .collect();
    let err = parse(&format!("{head}{checks}\n[follow-up]{tail}")).unwrap_err();
    assert!(err.problem.contains("101 [[check]]s"), "{err}");
}

#[test]
fn every_name_a_policy_gives_is_bounded_like_a_name_an_event_fills_in() {
    let long = "n".repeat(crate::policy::MAX_NAME_BYTES + 1);
    let most = "n".repeat(crate::policy::MAX_NAME_BYTES);
    for (from, place) in [
        ("id = \"release-readiness-closure\"", "policy.id"),
        ("version = \"3\"", "policy.version"),
        ("type = \"release.review.decided\"", "trigger.type"),
        ("name = \"milestone mapping\"", "a check's name"),
        ("id = \"close-checklist\"", "a step's id"),
        ("route-to = \"release-coordinator\"", "follow-up.route-to"),
    ] {
        let (key, _) = from.split_once(" = ").unwrap();
        let at_most = RELEASE.replacen(from, &format!("{key} = \"{most}\""), 1);
        parse(&at_most).unwrap_or_else(|e| panic!("{place} of {} bytes: {e}", most.len()));
        let err = parse(&RELEASE.replacen(from, &format!("{key} = \"{long}\""), 1)).unwrap_err();
        assert!(
            err.problem
                .contains(&format!("{place} is 513 bytes; at most 512")),
            "{place}: {err}"
        );
        assert!(
            !err.problem.contains(&long),
            "the error repeats the name whole"
        );
    }
}
