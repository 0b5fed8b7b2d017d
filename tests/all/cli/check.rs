//! `handoff check` on the release-readiness example: every policy and
//! adapter instance that would refuse or stop a run is named, with its fix,
//! before any event needs it; and nothing is written.

use crate::support::scenario::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

/// `handoff check --json`: exit code and (subject → problem) for each finding.
fn check_json(s: &Scenario) -> (i32, Vec<(String, Option<String>)>) {
    let (code, out, err) = outcome(&s.handoff(&["check", "--json"]));
    let answer: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("exit {code}, not JSON ({e}): {out}\n{err}"));
    let findings = answer["findings"].as_array().unwrap();
    let pairs = findings
        .iter()
        .map(|f| {
            let problem = f["problem"].as_str().map(str::to_string);
            (f["subject"].as_str().unwrap().to_string(), problem)
        })
        .collect();
    (code, pairs)
}

/// The problem `check` reported for `subject`.
fn problem_of(findings: &[(String, Option<String>)], subject: &str) -> String {
    findings
        .iter()
        .find_map(|(s, p)| (s == subject).then(|| p.clone()).flatten())
        .unwrap_or_else(|| panic!("no problem for {subject}: {findings:?}"))
}

/// A second policy in the configuration: the example's with `from`
/// replaced by `to`, as `policies/NAME`.
fn add_policy(s: &Scenario, name: &str, from: &str, to: &str) {
    let policy = std::fs::read_to_string(s.path("policies/release-readiness.toml")).unwrap();
    assert!(
        policy.contains(from),
        "{from:?} not in the example's policy"
    );
    std::fs::write(
        s.path(&format!("policies/{name}")),
        policy.replace(from, to),
    )
    .unwrap();
    s.edit_config(
        "policies = [\"policies/release-readiness.toml\"]",
        &format!("policies = [\"policies/release-readiness.toml\", \"policies/{name}\"]"),
    );
}

const ADAPTERS: [&str; 6] = [
    "archive",
    "checklist",
    "governance",
    "notify",
    "queue",
    "tracker",
];

#[test]
fn check_names_every_missing_approval_and_is_ready_once_they_are_given() {
    let s = Scenario::unapproved();
    let (code, findings) = check_json(&s);
    assert_eq!(code, 1);
    let subjects: Vec<&str> = findings.iter().map(|(s, _)| s.as_str()).collect();
    let mut expected = vec!["policy policies/release-readiness.toml".to_string()];
    expected.extend(ADAPTERS.map(|a| format!("adapter {a}")));
    assert_eq!(subjects, expected);
    for (subject, problem) in &findings {
        let problem = problem.as_deref().unwrap_or_default();
        assert!(problem.contains("not approved"), "{subject}: {problem}");
    }
    let (_, out, _) = outcome(&s.handoff(&["check"]));
    assert!(out.contains("Approve it: handoff adapter approve"), "{out}");
    assert!(out.ends_with("7 problems: runs that need them are refused or stop for a person until they are fixed\n"), "{out}");
    assert_eq!(
        s.store().audit_rows(None).unwrap().len(),
        0,
        "a check records nothing, not even the refused loads"
    );

    for package in ["fs-records", "fs-archive"] {
        let path = crate::support::built(package);
        let o = s.handoff(&[
            "adapter",
            "approve",
            path.to_str().unwrap(),
            "--by",
            "security-review",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let (code, findings) = check_json(&s);
    assert_eq!(code, 1);
    let open: Vec<_> = findings.iter().filter(|(_, p)| p.is_some()).collect();
    assert_eq!(open.len(), 1, "only the policy is left: {findings:?}");
    s.approve_policy();

    let (code, out, err) = outcome(&s.handoff(&["check"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("adapter checklist: fs-records 0.1.0"), "{out}");
    assert!(out.contains("used by release-readiness-closure"), "{out}");
    assert!(
        out.ends_with(
            "ready: 1 policy and 6 adapter instances checked; nothing stands in the way\n"
        ),
        "{out}"
    );
}

#[test]
fn check_reports_every_problem_at_once_each_with_its_place() {
    let s = Scenario::new();
    // A second policy with a key no policy has.
    add_policy(
        &s,
        "extra.toml",
        "[follow-up]",
        "[follow-up]\nescalate = true",
    );
    // The approved policy changed since its approval.
    s.edit_policy("id = \"tell-scheduler\"", "id = \"hand-to-scheduler\"");
    // An adapter bound to a directory that is not there.
    s.edit_config("state/archive", "state/nowhere");

    let (code, findings) = check_json(&s);
    assert_eq!(code, 1);
    let problems: Vec<(&str, &str)> = findings
        .iter()
        .filter_map(|(s, p)| Some((s.as_str(), p.as_deref()?)))
        .collect();
    assert_eq!(problems.len(), 3, "{findings:?}");
    let named = |subject: &str, words: &[&str]| {
        let problem = problem_of(&findings, subject);
        for w in words {
            assert!(problem.contains(w), "{subject}: {w:?} not in {problem}");
        }
    };
    named(
        "policy policies/release-readiness.toml",
        &["changed since it was approved", "handoff policy approve"],
    );
    named("policy policies/extra.toml", &["escalate"]);
    named("adapter archive", &["state/nowhere", "not a directory"]);
    let ready = findings.iter().filter(|(_, p)| p.is_none()).count();
    assert_eq!(ready, 5, "the other adapters: {findings:?}");
}

#[test]
fn serve_says_at_its_start_what_stands_in_the_way() {
    let s = Scenario::new();
    s.edit_config("state/archive", "state/nowhere");
    let mut child = s
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("HANDOFF_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn handoff serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // The warnings are written before the address is announced.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(line.contains("listening on"), "{line}\n{err}");
    let warning = err
        .lines()
        .find(|l| l.contains("not ready"))
        .unwrap_or_else(|| panic!("no warning in:\n{err}"));
    assert!(warning.contains("adapter archive"), "{warning}");
    assert!(warning.contains("state/nowhere"), "{warning}");
}

#[test]
fn a_misspelt_adapter_config_key_is_named_by_check_and_stops_the_run_before_any_write() {
    let s = Scenario::new();
    s.edit_config(
        "config = { base_url = ",
        "config = { base-url = \"https://evidence.example.internal/x\", base_url = ",
    );
    let (code, findings) = check_json(&s);
    assert_eq!(code, 1);
    let problem = problem_of(&findings, "adapter archive");
    assert!(
        problem.contains("config key \"base-url\" is not read by fs-archive (it reads base_url)"),
        "{problem}"
    );
    let (code, out, err) = outcome(&s.run());
    assert_eq!(code, 3, "{out}{err}");
    assert!(s.writes().is_empty());
}

#[test]
fn check_reach_shows_what_each_instance_may_touch_and_what_it_is_asked() {
    let s = Scenario::new();
    let (code, out, err) = outcome(&s.handoff(&["check", "--reach"]));
    assert_eq!(code, 0, "{out}{err}");
    let block: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("ready    adapter queue:"))
        .skip(1)
        .take_while(|l| l.starts_with("           "))
        .map(str::trim)
        .collect();
    let expected = [
        "actions   clear-entry, publish",
        "http      (none)",
        "files     /records = state/queue  read-write",
        "sockets   (none)",
        "limits    memory 64 MiB, 5000 ms per call",
        "per call  at most files 64 MiB written, 1024 entries made",
        "config    (none set)",
        "asked     release-readiness-closure: step clear-review-queue (clear-entry on review-queue)",
        "asked     release-readiness-closure: step tell-scheduler (publish on channel)",
    ];
    assert_eq!(block, expected, "{out}");
    assert!(
        !out.contains("spare "),
        "the example grants no spare action:\n{out}"
    );

    // Without its narrowing, the checklist may apply four actions no
    // policy asks of it, and check says how to take them away.
    s.edit_config("actions = [\"set-state\"]\n", "");
    let (_, out, _) = outcome(&s.handoff(&["check", "--reach"]));
    let spare = "spare     no policy asks for attach-link, annotate, clear-entry, publish; \
                 `actions = [\"set-state\"]` in [adapters.checklist] would take them away";
    assert!(out.lines().any(|l| l.trim() == spare), "{out}");

    // The checklist bound where the decision source reads could rewrite
    // its decisions, and a queue bound inside the tracker's directory
    // shares it: each instance's reach says so. Stores side by side, or
    // two that only read, share nothing worth a line.
    s.edit_config(
        "directories = { records = \"state/checklist\" }",
        "directories = { records = \"state/governance\" }",
    );
    s.edit_config(
        "directories = { records = \"state/queue\" }",
        "directories = { records = \"state/tracker/queue\" }",
    );
    std::fs::create_dir_all(s.path("state/tracker/queue")).unwrap();
    let (code, out, err) = outcome(&s.handoff(&["check", "--reach"]));
    assert_eq!(code, 0, "{out}{err}");
    let shares: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("shares "))
        .collect();
    let expected = [
        "shares    /records = state/governance with checklist's /records = state/governance: \
         checklist can change what it reads there",
        "shares    /records = state/governance with governance's /records = state/governance: \
         it can change what governance reads there",
        "shares    /records = state/tracker with queue's /records = state/tracker/queue: \
         it and queue can each change what the other reads there",
        "shares    /records = state/tracker/queue with tracker's /records = state/tracker: \
         it and tracker can each change what the other reads there",
    ];
    let mut sorted = shares.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{out}");
    s.edit_config(
        "\"state/governance\" }\n\n[adapters.tracker]",
        "\"state/checklist\" }\n\n[adapters.tracker]",
    );
    s.edit_config("\"state/tracker/queue\"", "\"state/queue\"");
    let (_, out, _) = outcome(&s.handoff(&["check", "--json"]));
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    let findings = answer["findings"].as_array().unwrap();
    let archive = findings
        .iter()
        .find(|f| f["subject"] == "adapter archive")
        .unwrap();
    let reach: Vec<&str> = archive["reach"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        reach.contains(&"files     /archive = state/archive  read-only"),
        "{reach:?}"
    );
    assert!(reach.contains(&"config    base_url"), "{reach:?}");
    assert!(
        reach.contains(&"asked     release-readiness-closure: check \"evidence bundle\""),
        "{reach:?}"
    );
}

/// Two instances of one S3 archive package, one narrowed to reading: the
/// one that writes can change what the other reads, and both say so.
#[test]
fn two_instances_reaching_one_buckets_keys_say_who_can_change_what() {
    let s = Scenario::new();
    let package = crate::support::built("s3-archive");
    let approved = s.handoff(&[
        "adapter",
        "approve",
        package.to_str().unwrap(),
        "--by",
        "reviewer",
    ]);
    assert!(approved.status.success(), "{}", text(&approved.stderr));
    let instance = |name: &str, more: &str| {
        format!(
            "\n[adapters.{name}]\npackage = {package:?}\n\
             config = {{ endpoint = \"http://127.0.0.1:8433\", bucket = \"evidence\" }}\n\
             secrets = {{ s3_access_key = {{ env = \"ARCHIVE_KEY\" }}, s3_secret_key = {{ env = \"ARCHIVE_KEY\" }} }}\n{more}"
        )
    };
    let config = std::fs::read_to_string(s.path("handoff.toml")).unwrap()
        + &instance("evidence", "")
        + &instance("evidence-reader", "s3-read-only = true\n");
    std::fs::write(s.path("handoff.toml"), config).unwrap();
    let o = s
        .command(&["check", "--reach"])
        .env("ARCHIVE_KEY", "not-used-by-check")
        .output()
        .unwrap();
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let shares: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("shares ") && l.contains("s3 "))
        .collect();
    let keys = "s3 http://127.0.0.1:8433 evidence/releases/*";
    assert_eq!(
        shares,
        [
            format!(
                "shares    {keys} with evidence-reader's {keys}: it can change what evidence-reader reads there"
            ),
            format!(
                "shares    {keys} with evidence's {keys}: evidence can change what it reads there"
            ),
        ],
        "{out}"
    );
}

#[test]
fn an_instance_narrowed_by_the_operator_is_not_asked_to_do_more() {
    let s = Scenario::new();
    // A policy that asks the decision source, narrowed to no action and a
    // read-only directory, to annotate: approved, but the instance may not.
    std::fs::write(
        crate::pipeline::policy_path(&s),
        crate::pipeline::with_annotate_step(&s, "governance"),
    )
    .unwrap();
    s.approve_policy();
    let (code, findings) = check_json(&s);
    assert_eq!(code, 1);
    let problem = problem_of(&findings, "adapter governance");
    assert!(
        problem.contains("release-readiness-closure step annotate (annotate); it may apply none"),
        "{problem}"
    );
    let run = s.handoff(&[
        "run",
        "--event",
        "events/accepted.json",
        "--context",
        "context.json",
        "--json",
    ]);
    let (code, out, err) = outcome(&run);
    assert_eq!(code, 3, "{out}{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    let packet = &s.follow_up(report["follow_up"].as_i64().unwrap())["packet"];
    assert_eq!(packet["reason"], "capability-denied", "{packet}");
    assert!(
        packet["summary"].as_str().unwrap().contains("annotate"),
        "{packet}"
    );

    // Naming an action the grant does not hold is refused at load.
    s.edit_config(
        "actions = [\"publish\"]",
        "actions = [\"publish\", \"annotat\"]",
    );
    let (code, _, err) = outcome(&s.handoff(&["check"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("adapters.notify.actions: \"annotat\" is not an action"),
        "{err}"
    );
}

#[test]
fn check_shows_each_setting_in_force_and_where_it_came_from() {
    let s = Scenario::new();
    s.edit_config(
        "[store]\n",
        "[serve]\nmax-in-flight = 3\nmax-queued = 50\n\n[store]\n",
    );
    let out = s
        .command(&["check", "--json"])
        .env("HANDOFF_SERVE_MAX_IN_FLIGHT", "6")
        .env("HANDOFF_STORE_DURABILITY", "process")
        .env("HANDOFF_SERVE_LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let setting = |key: &str| {
        let s = &answer["configuration"][key];
        (
            s["value"].as_str().unwrap().to_string(),
            s["from"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        setting("serve.max-in-flight"),
        ("6".into(), "env HANDOFF_SERVE_MAX_IN_FLIGHT".into())
    );
    assert_eq!(
        setting("serve.max-queued"),
        ("50".into(), "handoff.toml".into())
    );
    assert_eq!(
        setting("serve.max-connections"),
        ("512".into(), "default".into())
    );
    assert_eq!(
        setting("store.durability"),
        ("process".into(), "env HANDOFF_STORE_DURABILITY".into())
    );
    assert_eq!(setting("serve.listen").0, "127.0.0.1:9999");
    // The ceiling and the retries, file only.
    assert_eq!(
        setting("retry.attempts"),
        ("3".into(), "handoff.toml".into())
    );
    assert_eq!(
        setting("ceiling.max-memory-mib"),
        ("256".into(), "default".into())
    );
    // The text form says the same, and a bad value names its variable.
    let text = s
        .command(&["check"])
        .env("HANDOFF_SERVE_MAX_IN_FLIGHT", "6")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines().any(|l| l.contains("serve.max-in-flight")
            && l.contains("6")
            && l.contains("env HANDOFF_SERVE_MAX_IN_FLIGHT")),
        "{text}"
    );
    let bad = s
        .command(&["check"])
        .env("HANDOFF_SERVE_MAX_IN_FLIGHT", "lots")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("HANDOFF_SERVE_MAX_IN_FLIGHT") && said.contains("whole number"),
        "{said}"
    );
    // With no handoff.toml, the error names no file that is not there.
    let empty = tempfile::tempdir().unwrap();
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("check")
        .current_dir(empty.path())
        .env("HANDOFF_SERVE_MAX_IN_FLIGHT", "lots")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.starts_with("error: the embedded defaults: HANDOFF_SERVE_MAX_IN_FLIGHT is \"lots\""),
        "{said}"
    );
}

/// A store named on the command line is held to what the configuration's
/// own is: no adapter's directory may reach it. Elsewhere, it is in force
/// and said to come from the command line.
#[test]
fn a_store_given_on_the_command_line_may_not_lie_in_an_adapters_directory() {
    let s = Scenario::new();
    let out = s.handoff(&["--store", "state/notify/handoff.db", "check"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("adapters.notify.directories.records") && err.contains("the store"),
        "{err}"
    );
    assert!(!s.path("state/notify/handoff.db").exists());
    let out = s.handoff(&["--store", "state/other.db", "check", "--json"]);
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let setting = &answer["configuration"]["store.path"];
    assert_eq!(setting["from"], "env --store or HANDOFF_STORE", "{setting}");
    assert!(
        setting["value"]
            .as_str()
            .unwrap()
            .ends_with("state/other.db"),
        "{setting}"
    );
}

#[test]
fn a_table_written_as_its_values_in_order_is_refused_where_it_stands() {
    let s = Scenario::new();
    // A policy whose record is its kind and id in order: serde alone would
    // read them as the two fields.
    add_policy(
        &s,
        "in-order.toml",
        "record = { kind = \"checklist\", id = \"{{context.checklist_id}}\" }",
        "record = [\"checklist\", \"{{context.checklist_id}}\"]",
    );
    let (code, findings) = check_json(&s);
    assert_eq!(code, 1);
    let problem = problem_of(&findings, "policy policies/in-order.toml");
    assert!(problem.contains("given by position"), "{problem}");

    // The operator's own file: attempts, base delay and maximum delay in
    // order would have been read as such, and shown as defaults.
    s.edit_config(
        "[retry]\nattempts = 3\nbase-delay-ms = 5\nmax-delay-ms = 20\n",
        "",
    );
    s.edit_config("[store]", "retry = [3, 100, 1000]\n\n[store]");
    for command in [&["check"][..], &["run", "--event", "events/accepted.json"]] {
        let (code, _, err) = outcome(&s.handoff(command));
        assert_eq!(code, 1, "{command:?}: {err}");
        assert!(
            err.contains("given by position") && err.contains("retry = [3, 100, 1000]"),
            "{command:?}: {err}"
        );
    }
    assert!(s.writes().is_empty(), "nothing was written");
}
