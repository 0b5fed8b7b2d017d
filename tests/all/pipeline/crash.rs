//! Crashes: a process killed at any point resumes without repeating a
//! write, leases keep two processes off one run, and a storm of kills
//! leaves every journal counting each write once.

use super::*;
use crate::support::scenario::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[test]
fn a_process_killed_between_a_write_and_its_record_resumes_without_duplicates() {
    for point in [
        "before-apply:close-checklist",
        "after-apply:close-checklist",
        "after-record:attach-evidence",
        "after-apply:clear-review-queue",
        "after-apply:notify-coordinator",
    ] {
        let s = Scenario::new();
        let mut child = s.spawn_paused(point);
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let paused = lines
            .by_ref()
            .map(|l| l.unwrap())
            .find(|l| l.contains(handoff::pipeline::faults::PAUSED));
        assert!(
            paused.is_some(),
            "{point}: the run never reached its pause point"
        );
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "{point}: {status:?}");
        assert_eq!(s.unfinished() as i64, 1);

        let o = s.handoff(&["resume", "--json"]);
        let r = report(&o);
        assert_eq!(r["outcome"], "completed", "{point}: {r}");
        assert_all_closed(&s);
        verify(&s);
        assert_steps_walked_their_lifecycle(&s.store(), "run-1");
        if point.starts_with("after-apply") {
            let recovered = audit_kinds(&s)
                .into_iter()
                .filter(|(k, p)| k == "step-applied" && p["recovered"] == true)
                .count();
            assert_eq!(
                recovered, 1,
                "{point}: the write before the kill is recognised"
            );
        }
        // A second resume finds nothing to do.
        let (_, out, _) = outcome(&s.handoff(&["resume"]));
        assert!(out.contains("no unfinished runs"), "{out}");
    }
}

#[test]
fn two_processes_in_separate_pid_namespaces_do_not_take_each_others_lease() {
    // Each under `unshare --pid --fork`: both are pid 1, in namespaces of
    // their own, on one store (containers sharing a volume).
    let s = Scenario::new();
    let mut holder = s
        .command_under(
            &["unshare", "--pid", "--fork", "--kill-child=SIGKILL"],
            &[
                "run",
                "--event",
                "events/accepted.json",
                "--context",
                "context.json",
            ],
        )
        .env("HANDOFF_FAULT_PAUSE", "after-apply:close-checklist")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare");
    let mut lines = BufReader::new(holder.stderr.take().unwrap()).lines();
    let paused = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains(handoff::pipeline::faults::PAUSED));
    assert!(paused.is_some(), "the holder never reached its pause point");
    let other = s
        .command_under(
            &["unshare", "--pid", "--fork", "--kill-child=SIGKILL"],
            &["resume", "--json"],
        )
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&other.stdout),
        String::from_utf8_lossy(&other.stderr)
    );
    assert!(said.contains("\"held_by\""), "{said}");
    assert_eq!(
        s.journal("checklist").len(),
        1,
        "only the holder's write: {said}"
    );
    assert_eq!(s.unfinished() as i64, 1);
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn sigkill_at_random_moments_never_publishes_twice_and_the_journals_count_every_write() {
    let s = Scenario::new();
    // A seeded, reproducible spread of kill moments over a run's life.
    let mut seed: u64 = 0x5eed_1234;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..30 {
        let event = another_decision(&s, &format!("RV-k{i}"), "accepted");
        let mut child = s
            .command(&["run", "--event", &event, "--context", "context.json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Fault injection, not synchronization: the kill lands wherever
        // the run happens to be (or after it ended).
        std::thread::sleep(std::time::Duration::from_micros(next() % 250_000));
        let _ = child.kill();
        let _ = child.wait();
        let resumed = s.handoff(&["resume"]);
        assert!(
            resumed.status.code().is_some_and(|c| c == 0 || c == 3),
            "{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
    }
    assert_eq!(s.unfinished() as i64, 0);
    for system in crate::support::scenario::TARGETS {
        let facts = written_facts(&s, system);
        let mut unique = facts.clone();
        unique.dedup();
        assert_eq!(facts, unique, "{system}: something was written twice");
        let mut journaled: Vec<String> = s
            .journal(system)
            .iter()
            .map(|l| {
                format!(
                    "{}/{} {}",
                    l["kind"].as_str().unwrap(),
                    l["id"].as_str().unwrap(),
                    l["key"].as_str().unwrap()
                )
            })
            .collect();
        journaled.sort();
        assert_eq!(journaled, facts, "{system}: the journal is not exact");
    }
    verify(&s);
}

/// A run holds its lease for `[store] lease-seconds` from its last
/// transition: what another process waits out when the driver stopped
/// answering.
#[test]
fn a_parked_run_holds_the_configured_lease() {
    let s = Scenario::new();
    s.edit_config("[store]\n", "[store]\nlease-seconds = 150\n");
    let mut child = s.spawn_paused("after-apply:close-checklist");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let paused = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains(handoff::pipeline::faults::PAUSED));
    assert!(paused.is_some(), "the run never reached its pause point");
    let held: f64 = s
        .store()
        .conn()
        .unwrap()
        .query_row(
            "SELECT (julianday(lease_until) - julianday(updated_at)) * 86400.0 FROM runs",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!((149.0..=151.0).contains(&held), "held for {held} s");
}
