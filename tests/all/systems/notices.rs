//! Follow-ups reach people: a halted run's packet is delivered to its role
//! by mail (the SMTP receiver) and on NATS, once, even when the process is
//! killed between the publish and its record; reminders, escalation and
//! the overdue notice go out at their times (the clock given with `--now`,
//! never slept) and stop when someone takes the packet on. Every count is
//! read from the receivers themselves.

use crate::support::scenario::*;
use crate::support::servers::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

/// The example's servers, with the coordinator reached by mail and on
/// NATS, escalating to the release manager (by mail) after 7 hours.
fn with_roles(r: &Redmine, n: &Nats) -> (Scenario, Seeded) {
    let seeded = seed(r, n);
    let s = scenario(r, n, &seeded);
    s.edit_config(
        "to-release-coordinators = \"release-coordinators@example.internal\"",
        "to-release-coordinators = \"release-coordinators@example.internal\", \
         to-release-coordinator = \"coordinator-on-duty@example.internal\", \
         to-release-manager = \"release-manager@example.internal\"",
    );
    let mut config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    config.push_str(
        "\n[roles.release-coordinator]\nreach = [\"notify\", \"queue\"]\n\
         escalate-to = \"release-manager\"\nafter-hours = 7\nremind-at = 75\n\n\
         [roles.release-manager]\nreach = [\"notify\"]\n",
    );
    std::fs::write(s.path("handoff.toml"), config).unwrap();
    // The evidence no longer matches its hash: the run halts for a person.
    let bundle = s.context()["evidence_bundle"].as_str().unwrap().to_string();
    S3Store::from_env().put(&format!("releases/{bundle}"), b"replaced after the review");
    (s, seeded)
}

fn json(s: &Scenario, args: &[&str]) -> Value {
    let o = s.handoff(args);
    let out = text(&o.stdout);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}\n{}", text(&o.stderr)))
}

fn deliver(s: &Scenario, now: Option<&str>) -> Value {
    let mut args = vec!["follow-ups", "deliver", "--json"];
    if let Some(now) = now {
        args.extend(["--now", now]);
    }
    json(s, &args)
}

/// The mails about this packet's run that say `what`, with their
/// quoted-printable soft line breaks undone.
fn mails(seeded: &Seeded, what: &str) -> Vec<String> {
    let run = format!("(event redmine-{})", seeded.review);
    mails_containing("")
        .into_iter()
        .map(|m| m.replace("=\n", ""))
        .filter(|m| m.contains(&run) && m.contains(what))
        .collect()
}

fn counts(delivered: &Value) -> [u64; 4] {
    ["sent", "retried", "failed", "cancelled"].map(|k| delivered[k].as_u64().unwrap())
}

#[test]
fn a_halted_run_tells_its_role_once_across_a_kill_then_reminds_and_escalates_on_the_clock() {
    let (r, n) = (Redmine::from_env(), Nats::from_env());
    let (s, seeded) = with_roles(&r, &n);
    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!(code, 3, "{report}");
    let id = report["follow_up"].as_i64().unwrap();
    let id_text = id.to_string();

    let scheduled = json(&s, &["follow-ups", "notices", &id_text, "--json"]);
    let shown: Vec<String> = scheduled
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{} {} {} {}",
                n["kind"], n["role"], n["instance"], n["state"]
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            r#""opened" "release-coordinator" "notify" "pending""#,
            r#""opened" "release-coordinator" "queue" "pending""#,
            r#""reminder" "release-coordinator" "notify" "pending""#,
            r#""reminder" "release-coordinator" "queue" "pending""#,
            r#""overdue" "release-coordinator" "notify" "pending""#,
            r#""overdue" "release-coordinator" "queue" "pending""#,
            r#""escalated" "release-manager" "notify" "pending""#,
        ]
    );
    let at = |kind: &str| {
        scheduled
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == kind)
            .unwrap()["send_at"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Killed after the mail went out and before it was recorded.
    let mut child = s
        .command(&["follow-ups", "deliver"])
        .env("HANDOFF_FAULT_PAUSE", "after-notice:opened")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let paused = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(|l| l.unwrap())
        .find(|l| l.contains(handoff::pipeline::faults::PAUSED));
    assert!(paused.is_some(), "delivery never reached its pause point");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(mails(&seeded, "needs a person").len(), 1);

    // The restart finds the mail's key at the target and sends it no
    // second time; the NATS message goes now.
    assert_eq!(counts(&deliver(&s, None)), [2, 0, 0, 0]);
    assert_eq!(
        counts(&deliver(&s, None)),
        [0, 0, 0, 0],
        "nothing due twice"
    );
    let opened = mails(&seeded, "needs a person");
    assert_eq!(opened.len(), 1, "one mail across the kill");
    let mail = &opened[0];
    assert!(
        mail.contains("X-RcptTo: coordinator-on-duty@example.internal"),
        "{mail}"
    );
    assert!(mail.contains("reason: evidence-hash-mismatch"), "{mail}");
    assert!(
        !mail.contains(NARRATIVE),
        "never the source's narrative: {mail}"
    );
    let subject = format!("{}.release-coordinator", seeded.prefix);
    let messages = n.messages(&subject);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].0.starts_with("hn1-"),
        "the notice's key is the msg-id"
    );

    // At 75 % of the 8-hour SLA: the reminders, nothing else.
    assert_eq!(counts(&deliver(&s, Some(&at("reminder")))), [2, 0, 0, 0]);
    assert_eq!(mails(&seeded, "reminder: not yet taken on").len(), 1);
    assert_eq!(n.messages(&subject).len(), 2);
    // At 7 hours, unacknowledged: the release manager is told.
    assert_eq!(counts(&deliver(&s, Some(&at("escalated")))), [1, 0, 0, 0]);
    let escalated = mails(&seeded, "escalated: not taken on in time");
    assert_eq!(escalated.len(), 1);
    assert!(escalated[0].contains("X-RcptTo: release-manager@example.internal"));

    // Someone takes it on: the overdue notices are no longer sent.
    let o = s.handoff(&["follow-ups", "ack", &id_text, "--by", "release-coordinator"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(counts(&deliver(&s, Some(&at("overdue")))), [0, 0, 0, 2]);
    assert!(mails(&seeded, "overdue").is_empty());
    assert_eq!(n.messages(&subject).len(), 2);

    // Each outcome has its audit row, and the chain holds.
    let rows = s.handoff(&[
        "audit",
        "export",
        "--run",
        report["run_id"].as_str().unwrap(),
    ]);
    let kinds: Vec<String> = text(&rows.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|k| k.starts_with("notice-"))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "notice-sent").count(),
        5,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "notice-cancelled").count(),
        2,
        "{kinds:?}"
    );
    assert!(s.handoff(&["audit", "verify"]).status.success());
}

#[test]
fn a_role_nobody_can_reach_is_retried_counted_and_never_fails_the_run() {
    let (r, n) = (Redmine::from_env(), Nats::from_env());
    let (s, seeded) = with_roles(&r, &n);
    // The coordinator's mail goes to a server that is granted but not
    // there (a port just closed): each try fails as the target being
    // unavailable, which is worth trying again.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    approved_copy(&s, "smtp", "127.0.0.1:8125", &closed.to_string());
    s.edit_config(
        "server = \"127.0.0.1:8125\"",
        &format!("server = \"{closed}\""),
    );
    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (3, Some("halted-for-follow-up"))
    );
    let id = report["follow_up"].as_i64().unwrap().to_string();

    let first = deliver(&s, None);
    assert_eq!(
        counts(&first),
        [1, 1, 0, 0],
        "NATS sent, mail put off: {first}"
    );
    let notices = json(&s, &["follow-ups", "notices", &id, "--json"]);
    let mail = &notices.as_array().unwrap()[0];
    assert_eq!(
        (mail["instance"].as_str(), mail["state"].as_str()),
        (Some("notify"), Some("pending"))
    );
    assert_eq!(mail["attempts"], 1);
    assert!(
        mail["last_error"]
            .as_str()
            .unwrap()
            .contains("retries-exhausted"),
        "{mail}"
    );
    // Not due again yet; then tried at its time until the tries run out.
    assert_eq!(counts(&deliver(&s, None)), [0, 0, 0, 0]);
    let mut outcome = [0; 4];
    for _ in 0..10 {
        let at = json(&s, &["follow-ups", "notices", &id, "--json"])
            .as_array()
            .unwrap()[0]["send_at"]
            .as_str()
            .unwrap()
            .to_string();
        outcome = counts(&deliver(&s, Some(&at)));
        if outcome[2] == 1 {
            break;
        }
        assert_eq!(outcome, [0, 1, 0, 0]);
    }
    assert_eq!(outcome, [0, 0, 1, 0], "failed for good after its last try");
    let mail = json(&s, &["follow-ups", "notices", &id, "--json"])[0].clone();
    assert_eq!(
        (mail["state"].as_str(), mail["attempts"].as_u64()),
        (Some("failed"), Some(5))
    );
    assert!(mails(&seeded, "needs a person").is_empty());
    // The run is as it was: halted, its packet open.
    let runs = json(
        &s,
        &["runs", "show", report["run_id"].as_str().unwrap(), "--json"],
    );
    assert_eq!(runs["run"]["outcome"], "halted-for-follow-up", "{runs}");
}
