//! Runs of different decisions that share a target record, driven at once:
//! the example's context names one checklist and one release for every
//! decision, so each run looks at them; the first to take its step writes,
//! and every other run, looking after that write, finds the step done.
//! Each run's own queue entry and message are written once each.

use crate::pipeline::another_decision;
use crate::support::service::*;
use std::collections::BTreeMap;

const DECISIONS: usize = 24;

#[test]
fn decisions_whose_runs_share_a_record_write_it_once_when_driven_at_once() {
    let s = scenario(DECISIONS, 1000);
    let bodies: Vec<Vec<u8>> = (0..DECISIONS)
        .map(|i| {
            let event = another_decision(&s, &format!("RV-s{i}"), "accepted");
            std::fs::read(s.path(&event)).unwrap()
        })
        .collect();
    let service = Service::start(&s, None);
    let url = format!("{}/v1/events", service.url);
    // Each from a thread of its own, so that the runs are in flight together.
    let runs: Vec<String> = std::thread::scope(|scope| {
        let senders: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let url = &url;
                scope.spawn(move || {
                    let mut request = ureq::post(url);
                    for (k, v) in signed(&format!("shared-{i}"), body) {
                        request = request.set(k, &v);
                    }
                    let r: serde_json::Value =
                        request.send_bytes(body).unwrap().into_json().unwrap();
                    r["run_id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        senders.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run_id in &runs {
        let outcome = outcome_of(&s, run_id);
        assert!(outcome.starts_with("completed"), "{run_id}: {outcome}");
    }

    let actions = |system: &str| -> BTreeMap<String, usize> {
        let mut counted = BTreeMap::new();
        for line in s.journal(system) {
            let field = |name: &str| line[name].as_str().unwrap_or_default().to_string();
            let what = format!("{} {}/{}", field("action"), field("kind"), field("id"));
            *counted.entry(what).or_default() += 1;
        }
        counted
    };
    // The shared records: closed once, synced and linked once.
    let checklist = actions("checklist");
    assert_eq!(checklist.values().sum::<usize>(), 1, "{checklist:?}");
    let tracker = actions("tracker");
    assert_eq!(tracker.values().sum::<usize>(), 2, "{tracker:?}");
    // Each decision's own: its queue entry cleared once, its message sent
    // once.
    let queue = actions("queue");
    for i in 0..DECISIONS {
        let cleared = format!("clear-entry review-queue/RV-s{i}");
        assert_eq!(queue.get(&cleared), Some(&1), "{queue:?}");
    }
    let notify = s.journal("notify");
    assert_eq!(notify.len(), DECISIONS, "{notify:?}");
}
