//! Delivery driven by `serve` from the store: a notice whose publish went
//! out just before the service was killed is found at the target after the
//! restart, recorded as sent, and not sent again.

use crate::pipeline::another_decision;
use crate::support::scenario::*;
use crate::support::service::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The notices of follow-up `id`, as `follow-ups notices --json` shows them.
fn notices(s: &Scenario, id: &str) -> Vec<Value> {
    let o = s.handoff(&["follow-ups", "notices", id, "--json"]);
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_service_killed_after_a_publish_sends_it_no_second_time_when_it_comes_back() {
    let s = scenario(1, 100);
    s.edit_config(
        "reconcile-seconds = 0",
        "reconcile-seconds = 0\ndeliver-seconds = 1",
    );
    let mut config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    config.push_str("\n[roles.release-coordinator]\nreach = [\"notify\"]\n");
    std::fs::write(s.path("handoff.toml"), config).unwrap();
    let event = another_decision(&s, "RV-600", "reopened");
    let o = s.handoff(&["run", "--event", &event, "--context", "context.json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));

    let service = Service::start(&s, Some("after-notice:opened"));
    service.wait_for(handoff::pipeline::faults::PAUSED);
    drop(service); // SIGKILL, between the publish and its record
    assert_eq!(s.messages("notify", "release-coordinator").len(), 1);
    assert_eq!(notices(&s, "1")[0]["state"], "pending");

    let _service = Service::start(&s, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while notices(&s, "1")[0]["state"] != "sent" {
        assert!(
            Instant::now() < deadline,
            "the restarted service never delivered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        s.messages("notify", "release-coordinator").len(),
        1,
        "sent once"
    );
    let rows = s.handoff(&["audit", "export"]);
    let sent: Vec<Value> = text(&rows.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "notice-sent")
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["payload"]["already_there"], true,
        "found at the target, not sent again"
    );
}
