//! Runs of different decisions in processes of their own at once (a script
//! starting `handoff run` for each event, or a run beside `handoff serve`),
//! on one store: the example's context names one checklist and one release
//! for every decision. Each process's runs take their turn on a record
//! across the processes too, so the shared records are written once and
//! each decision's own entry and message once each.

use super::another_decision;
use crate::support::scenario::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

const PROCESSES: usize = 12;

fn actions(s: &Scenario, system: &str) -> BTreeMap<String, usize> {
    let mut counted = BTreeMap::new();
    for line in s.journal(system) {
        let field = |name: &str| line[name].as_str().unwrap_or_default().to_string();
        let what = format!(
            "{} {}/{} {}",
            field("action"),
            field("kind"),
            field("id"),
            field("key")
        );
        *counted.entry(what).or_default() += 1;
    }
    counted
}

#[test]
fn decisions_run_by_processes_at_once_write_their_shared_records_once() {
    let s = Scenario::new();
    let events: Vec<String> = (0..PROCESSES)
        .map(|i| another_decision(&s, &format!("RV-p{i}"), "accepted"))
        .collect();
    let children: Vec<_> = events
        .iter()
        .map(|event| {
            s.command(&["run", "--event", event, "--context", "context.json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let (code, out, err) = outcome(&child.wait_with_output().unwrap());
        assert_eq!(code, 0, "{out}\n{err}");
    }

    let total = |counted: &BTreeMap<String, usize>| counted.values().sum::<usize>();
    let checklist = actions(&s, "checklist");
    assert_eq!(total(&checklist), 1, "closed once: {checklist:#?}");
    let tracker = actions(&s, "tracker");
    assert_eq!(total(&tracker), 2, "synced and linked once: {tracker:#?}");
    // Each decision's own: its entry cleared once, its message (one key)
    // journaled once.
    let queue = actions(&s, "queue");
    assert!(queue.values().all(|n| *n == 1), "{queue:#?}");
    for i in 0..PROCESSES {
        let cleared = format!("clear-entry review-queue/RV-p{i} ");
        let found = queue.keys().filter(|k| k.starts_with(&cleared)).count();
        assert_eq!(found, 1, "{queue:#?}");
    }
    assert_eq!(total(&queue), 2 * PROCESSES, "{queue:#?}");
    let notify = actions(&s, "notify");
    assert_eq!(total(&notify), PROCESSES, "{notify:#?}");
    assert!(s.handoff(&["audit", "verify"]).status.success());
}

/// Two instances of the record store on one directory (each narrowed to
/// other actions) reach the same records: a step through one waits while
/// another process's step through the other holds the record, as it would
/// through one instance.
#[test]
fn instances_bound_to_one_directory_take_their_turns_on_its_records_together() {
    let s = Scenario::new();
    let links = format!(
        "[adapters.tracker-links]\n\
         package = \"{}/fs-records\"\n\
         directories = {{ records = \"./state/../state/tracker\" }}\n\
         actions = [\"attach-link\"]\n\n\
         [adapters.queue]",
        handoff::BUILT_PACKAGES_DIR
    );
    s.edit_config("[adapters.queue]", &links);
    s.edit_policy(
        "id = \"attach-evidence\"\nadapter = \"tracker\"",
        "id = \"attach-evidence\"\nadapter = \"tracker-links\"",
    );
    s.approve_policy();
    let other = another_decision(&s, "RV-p1", "accepted");

    // The first decision stops after linking the evidence through
    // `tracker-links`, holding the release record's step turn.
    let mut first = s.spawn_paused("after-apply:attach-evidence");
    let mut first_err = BufReader::new(first.stderr.take().unwrap()).lines();
    assert!(
        first_err
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains(handoff::pipeline::faults::PAUSED)),
        "the first run never reached its pause point"
    );

    // The second syncs the same release through `tracker`: it waits for
    // the record before that step, with nothing of the step recorded.
    let mut second = s
        .command(&["run", "--event", &other, "--context", "context.json"])
        .env("HANDOFF_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut second_err = BufReader::new(second.stderr.take().unwrap()).lines();
    let waiting = second_err
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("waiting for another process"));
    assert!(
        waiting
            .as_ref()
            .is_some_and(|l| l.contains("step=sync-tracker") && l.contains("turn=step")),
        "the second run did not wait for the release at its sync-tracker step: {waiting:?}"
    );
    let sync_recorded = s.count(
        "SELECT COUNT(*) FROM steps JOIN runs USING (run_id) \
         WHERE runs.event_id = 'decision-RV-p1' AND step_id = 'sync-tracker' \
         AND state <> 'planned'",
    );
    assert_eq!(
        sync_recorded, 0,
        "the second run took its sync-tracker step while the first held the release"
    );

    first.kill().unwrap(); // SIGKILL: the turn goes with the process
    first.wait().unwrap();
    std::thread::spawn(move || second_err.for_each(drop));
    let (code, out, err) = outcome(&second.wait_with_output().unwrap());
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = outcome(&s.handoff(&["resume"]));
    assert_eq!(code, 0, "{out}\n{err}");

    let tracker = actions(&s, "tracker");
    let total: usize = tracker.values().sum();
    assert_eq!(total, 2, "synced and linked once: {tracker:#?}");
    assert!(s.handoff(&["audit", "verify"]).status.success());
}
