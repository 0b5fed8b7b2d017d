//! Runs of different decisions in processes of their own at once (a script
//! starting `handoff run` for each event, or a run beside `handoff serve`),
//! on one store: the example's context names one checklist and one release
//! for every decision. Each process's runs take their turn on a record
//! across the processes too, so the shared records are written once and
//! each decision's own entry and message once each.

use super::another_decision;
use crate::support::scenario::*;
use std::collections::BTreeMap;
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
