//! The whole release-readiness scenario on real servers: Redmine, NATS
//! JetStream and the SMTP receiver, with the evidence archive on disk.
//! Every assertion reads the systems themselves: Redmine over REST, NATS
//! through async-nats, mail from the receiver's Maildir.

use crate::support::scenario::*;
use crate::support::servers::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const EVIDENCE: &str = "https://evidence.example.internal/releases/R-2026.11/evidence.tar";

/// The mails about this review (the notification names it).
fn mails_for(seeded: &Seeded) -> Vec<String> {
    mails_containing(&format!("(review {} v3)", seeded.review))
}

fn intake_messages(n: &Nats, seeded: &Seeded) -> Vec<(String, Value)> {
    n.messages(&format!("{}.scheduler-intake", seeded.prefix))
}

/// Every target in its end state, each written once.
fn assert_all_done_once(r: &Redmine, n: &Nats, seeded: &Seeded) {
    assert_eq!(r.status_of(seeded.checklist), "Closed");
    assert_eq!(r.status_of(seeded.release), "Approved");
    let release_notes = r.notes(seeded.release);
    assert_eq!(
        release_notes
            .iter()
            .filter(|n| n.contains(EVIDENCE))
            .count(),
        1,
        "{release_notes:?}"
    );
    let mut keys = keys_in(&release_notes);
    keys.extend(keys_in(&r.notes(seeded.checklist)));
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "one note per Redmine step: {keys:?}");

    let (operation, _) = n.entry(&seeded.review.to_string()).expect("the entry");
    assert_eq!(operation, "Delete", "the review-queue entry is cleared");
    let messages = intake_messages(n, seeded);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (msg_id, payload) = &messages[0];
    assert!(
        msg_id.starts_with("hk1-"),
        "Nats-Msg-Id is the key: {msg_id}"
    );
    assert_eq!(payload["idempotency_key"], msg_id.as_str());
    assert_eq!(payload["subject"], "release R-2026.11 ready-for-handoff");
    assert_eq!(payload["links"][0]["url"], EVIDENCE);

    let mails = mails_for(seeded);
    assert_eq!(mails.len(), 1, "one mail to the coordinators");
    let mail = &mails[0];
    assert!(
        mail.contains("X-RcptTo: release-coordinators@example.internal"),
        "{mail}"
    );
    assert!(mail.contains("From: handoff@example.internal"), "{mail}");
    let id_line = mail
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .expect("a Message-ID");
    assert!(id_line.contains("@handoff>"), "{id_line}");
    assert!(mail.contains(EVIDENCE), "{mail}");
    assert!(
        r.notes(seeded.review).iter().all(|n| n == NARRATIVE),
        "the decision itself is never written"
    );
}

#[test]
fn release_readiness_on_real_servers_is_done_once_even_when_delivered_ten_more_times() {
    let (r, n) = (Redmine::from_env(), Nats::from_env());
    let seeded = seed(&r, &n);
    let s = scenario(&r, &n, &seeded);
    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("completed")),
        "{report}"
    );
    for i in 0..10 {
        let event = ["events/redmine-resent.json", "events/redmine.json"][i % 2];
        let (code, again) = run(&s, event);
        assert_eq!(
            (code, again["outcome"].as_str()),
            (0, Some("duplicate-suppressed"))
        );
    }
    assert_all_done_once(&r, &n, &seeded);

    let verify = s.handoff(&["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    let show = text(&s.handoff(&["runs", "show", "run-1"]).stdout);
    for touched in [
        format!("review/{}", seeded.review),
        format!("checklist/{}", seeded.checklist),
        format!("release/{}", seeded.release),
        format!("milestone/{}", seeded.milestone),
        format!("review-queue/{}", seeded.review),
        "channel/scheduler-intake".to_string(),
        "channel/release-coordinators".to_string(),
    ] {
        assert!(show.contains(&touched), "{touched} missing from:\n{show}");
    }
}

#[test]
fn messages_mails_notes_and_audit_carry_identifiers_states_and_links_never_the_narrative() {
    let (r, n) = (Redmine::from_env(), Nats::from_env());
    let seeded = seed(&r, &n);
    let s = scenario(&r, &n, &seeded);
    assert!(r.issue(seeded.review)["description"] == NARRATIVE, "seeded");
    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("completed")),
        "{report}"
    );

    let secret = "CONFIDENTIAL-7731";
    let messages = intake_messages(&n, &seeded);
    let mails = mails_for(&seeded);
    let (checklist_notes, release_notes) = (r.notes(seeded.checklist), r.notes(seeded.release));
    // One message, one mail, the checklist's closing note, the release's
    // state and evidence notes.
    assert_eq!(
        (
            messages.len(),
            mails.len(),
            checklist_notes.len(),
            release_notes.len()
        ),
        (1, 1, 1, 2)
    );
    let mut carried: Vec<String> = messages.into_iter().map(|(_, p)| p.to_string()).collect();
    carried.extend(mails);
    carried.extend(checklist_notes);
    carried.extend(release_notes);
    carried.push(text(&s.handoff(&["audit", "export"]).stdout));
    for c in &carried {
        assert!(
            !c.contains(secret),
            "the reviewer's narrative leaked into:\n{c}"
        );
        assert!(!c.contains("rollback drill"), "narrative leaked into:\n{c}");
    }
    // What they do carry: the identifiers and the link.
    assert!(carried[0].contains("R-2026.11") && carried[0].contains(EVIDENCE));
    assert!(carried[1].contains(&format!("review {}", seeded.review)));
}

/// A NATS server of the test's own, so that stopping it disturbs no other
/// test. Its data directory survives a restart, as JetStream's does.
struct OwnNats {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl OwnNats {
    fn start() -> OwnNats {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = OwnNats::spawn(dir.path(), port);
        OwnNats { dir, port, child }
    }

    fn spawn(dir: &std::path::Path, port: u16) -> Child {
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start nats-server: {e} ({NEEDS})"));
        // Ready when it says so (it logs this once it accepts clients); the
        // rest of its log is drained so that it never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server is ready") {
                    let _ = tx.send(());
                }
            }
        });
        assert!(
            rx.recv().is_ok(),
            "nats-server on {port} exited before it was ready"
        );
        child
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn restart(&mut self) {
        self.child = OwnNats::spawn(self.dir.path(), self.port);
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn evidence_that_does_not_match_its_hash_halts_with_nothing_written_anywhere() {
    let (r, n) = (Redmine::from_env(), Nats::from_env());
    let seeded = seed(&r, &n);
    let s = scenario(&r, &n, &seeded);
    let bundle = s.context()["evidence_bundle"].as_str().unwrap().to_string();
    S3Store::from_env().put(
        &format!("releases/{bundle}"),
        b"a bundle replaced after the review",
    );
    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (3, Some("halted-for-follow-up")),
        "{report}"
    );
    assert_eq!(report["packet"]["reason"], "evidence-hash-mismatch");
    assert_nothing_written(&r, &n, &seeded);
}

/// Every target as seeded: no status changed, no note, the queue entry
/// still there, no message, no mail.
fn assert_nothing_written(r: &Redmine, n: &Nats, seeded: &Seeded) {
    assert_eq!(r.status_of(seeded.checklist), "New");
    assert_eq!(r.status_of(seeded.release), "In Progress");
    assert!(r.notes(seeded.checklist).is_empty() && r.notes(seeded.release).is_empty());
    let (operation, _) = n.entry(&seeded.review.to_string()).expect("the entry");
    assert_eq!(operation, "Put", "the review-queue entry is still there");
    assert!(intake_messages(n, seeded).is_empty());
    assert!(mails_for(seeded).is_empty());
}

#[test]
fn a_dry_run_on_real_servers_reads_them_all_and_writes_to_none() {
    let (r, n) = (Redmine::from_env(), Nats::from_env());
    let seeded = seed(&r, &n);
    let s = scenario(&r, &n, &seeded);
    let (code, preview) = crate::pipeline::dry_run::dry_run(&s, "events/redmine.json");
    assert_eq!(
        (code, preview["outcome"].as_str()),
        (0, Some("completed")),
        "{preview}"
    );
    let would: Vec<_> = crate::pipeline::dry_run::would(&preview)
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    assert_eq!(would, ["apply"; 6], "{preview}");
    assert_eq!(preview["steps"][0]["state"], "new", "read from Redmine");
    assert_nothing_written(&r, &n, &seeded);
    assert_eq!(s.runs().len() as i64, 0);
    // What the adapters reached for is audited as always, against the event.
    let event_id = format!("redmine-{}", seeded.review);
    let audited = s
        .store()
        .audit_rows(None)
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.kind == "capability-decision"
                && r.run_id.is_none()
                && r.event_id.as_deref() == Some(event_id.as_str())
        })
        .count();
    assert!(audited > 0, "the reads' capability decisions are audited");

    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!((code, report["outcome"].as_str()), (0, Some("completed")));
    assert_all_done_once(&r, &n, &seeded);
}

#[test]
fn nats_stopped_mid_run_leaves_a_partial_run_and_resume_does_only_the_rest() {
    let r = Redmine::from_env();
    let mut own = OwnNats::start();
    let (seeded, s) = {
        let n = Nats::connect(&own.server());
        let seeded = seed(&r, &n);
        let s = scenario(&r, &n, &seeded);
        (seeded, s)
    };
    own.stop();

    let (code, report) = run(&s, "events/redmine.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (3, Some("partially-completed")),
        "{report}"
    );
    assert_eq!(report["packet"]["reason"], "retries-exhausted", "{report}");
    assert_eq!(
        report["packet"]["done"].as_array().unwrap().len(),
        3,
        "{report}"
    );
    let notes_before = (r.notes(seeded.checklist), r.notes(seeded.release));
    assert_eq!(r.status_of(seeded.checklist), "Closed");
    assert!(
        mails_for(&seeded).is_empty(),
        "the mail comes after the queue"
    );

    own.restart();
    let n = Nats::connect(&own.server());
    assert_eq!(
        n.entry(&seeded.review.to_string()).unwrap().0,
        "Put",
        "still queued"
    );
    let id = report["follow_up"].as_i64().unwrap().to_string();
    let o = s.handoff(&[
        "follow-ups",
        "resolve",
        &id,
        "--action",
        "resume",
        "--by",
        "release-coordinator",
        "--note",
        "NATS is back",
        "--json",
    ]);
    let resumed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (o.status.code(), resumed["outcome"].as_str()),
        (Some(0), Some("completed")),
        "{resumed}"
    );
    assert_all_done_once(&r, &n, &seeded);
    assert_eq!(
        (r.notes(seeded.checklist), r.notes(seeded.release)),
        notes_before,
        "the Redmine steps were not written again"
    );
}

#[test]
fn killed_after_any_write_on_real_servers_resumes_without_writing_it_again() {
    let (r, n) = (Redmine::from_env(), Nats::from_env());
    // Each step's write, on each server: Redmine (an issue's status, a
    // link in a note), the NATS bucket (the delete marker carries the key)
    // and subject, the mail. Each carries its key, so the resumed run
    // recognises the write as its own rather than skipping the step.
    for point in [
        "after-apply:close-checklist",
        "after-apply:sync-tracker",
        "after-apply:attach-evidence",
        "after-apply:clear-review-queue",
        "after-apply:tell-scheduler",
        "after-apply:notify-coordinator",
    ] {
        let seeded = seed(&r, &n);
        let s = scenario(&r, &n, &seeded);
        let mut child = s.spawn_paused_with("events/redmine.json", point);
        let paused = BufReader::new(child.stderr.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains(handoff::pipeline::faults::PAUSED));
        assert!(paused, "{point}: the run never reached its pause point");
        child.kill().unwrap(); // SIGKILL, after the write and before its record
        child.wait().unwrap();

        let o = s.handoff(&["resume", "--json"]);
        let resumed: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{point}: {e}: {}", text(&o.stderr)));
        assert_eq!(resumed["outcome"], "completed", "{point}: {resumed}");
        let recovered = s
            .store()
            .audit_rows(Some("run-1"))
            .unwrap()
            .into_iter()
            .filter(|row| row.kind == "step-applied")
            .filter(|row| serde_json::from_str::<Value>(&row.payload).unwrap()["recovered"] == true)
            .count();
        assert_eq!(
            recovered, 1,
            "{point}: the write before the kill is recognised"
        );
        assert_all_done_once(&r, &n, &seeded);
        let verify = s.handoff(&["audit", "verify"]);
        assert_eq!(verify.status.code(), Some(0), "{point}");
    }
}

/// The example's own seeding script, run as an operator would, seeds what
/// the scenario needs; the event it writes then completes on the servers.
#[test]
fn the_examples_seed_script_prepares_the_servers_for_a_run_that_completes() {
    let (r, n) = (Redmine::from_env(), Nats::from_env());
    let s = Scenario::with_config("handoff-servers.toml", &SERVER_PACKAGES);
    // This test's own subjects, so that its message count is its own.
    let prefix = format!("handoff.seed-script-{}", std::process::id());
    s.edit_config(
        "subject-prefix = \"handoff\"",
        &format!("subject-prefix = \"{prefix}\""),
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/release-readiness/seed-servers");
    let o = Command::new("python3")
        .arg(&script)
        .arg("--workspace")
        .arg(s.path(""))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ids: Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
    let id = |name: &str| ids[name].as_u64().unwrap();
    let seeded = Seeded {
        review: id("review"),
        checklist: id("checklist"),
        release: id("release"),
        milestone: id("milestone"),
        prefix,
    };
    assert_eq!(r.status_of(seeded.review), "Accepted");
    assert_eq!(r.issue(seeded.review)["description"], NARRATIVE);
    assert_eq!(r.status_of(seeded.release), "In Progress");
    let (operation, _) = n.entry(&seeded.review.to_string()).expect("queued");
    assert_eq!(operation, "Put");

    std::fs::copy(s.path("context-servers.json"), s.path("context.json")).unwrap();
    let (code, report) = run(&s, "events/servers-accepted.json");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("completed")),
        "{report}"
    );
    let (code, again) = run(&s, "events/servers-accepted-resent.json");
    assert_eq!(code, 0, "{again}");
    assert_all_done_once(&r, &n, &seeded);
}
