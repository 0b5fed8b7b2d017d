//! Reconciliation against Redmine through the service's commit path (the
//! NATS door: `nats_door.rs`).

use crate::support::scenario::*;
use crate::support::service::*;
use std::time::{Duration, Instant};

#[test]
fn reconciliation_finds_a_decision_made_in_redmine_that_no_event_announced() {
    let (s, r, seeded) = crate::support::servers::polling_scenario();
    // One pass at start, none after during the test.
    with_serve(&s, serve_config(1, 10, 3600, "redmine/release-reviews"));
    let service = Service::start(&s, None);

    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        let found: Option<String> = s.runs().first().map(|r| r.run_id.clone());
        if let Some(run_id) = found {
            break run_id;
        }
        assert!(Instant::now() < deadline, "reconciliation created no run");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(outcome_of(&s, &run_id), "completed");
    let source = s.events()[0].0.clone();
    assert_eq!(source, "handoff/reconcile/governance");
    assert_eq!(r.status_of(seeded.checklist), "Closed");
    assert_eq!(r.status_of(seeded.release), "Approved");

    // The webhook arrives late: the same decision, not a second run.
    let body = std::fs::read(s.path("events/redmine.json")).unwrap();
    let (code, answer) = service.post(&signed("late", &body), &body);
    assert_eq!(
        (code, answer["run_id"].as_str()),
        (200, Some(run_id.as_str())),
        "{answer}"
    );
    assert_eq!(s.runs().len() as i64, 1);
    let (_, metrics) = service.get("/metrics");
    assert_lines(&metrics, &["handoff_reconciled_runs_total 1"]);
}

#[test]
fn a_reconciliation_pass_waits_for_room_at_the_source_adapter() {
    let (s, _, _) = crate::support::servers::polling_scenario();
    s.edit_config(
        "[adapters.governance]\n",
        "[adapters.governance]\nconcurrency = 1\n",
    );
    let context = s.context();
    let (mut engine, throttle, rt) = s.engine_sharing_throttle();
    rt.block_on(async {
        // Another caller holds the source adapter's only room.
        let held = throttle.acquire("governance").await.unwrap();
        let mut pass = std::pin::pin!(engine.reconcile(&context));
        tokio::select! {
            biased;
            done = &mut pass => panic!("the pass called the adapter without room: {:?}",
                done.map(|r| r.new_runs)),
            () = throttle.until_waiting("governance", 1) => {}
        }
        drop(held);
        let found = pass.await.unwrap();
        assert_eq!(found.new_runs.len(), 1, "the decision made in Redmine");
    });
}

#[test]
fn the_test_servers_leave_the_services_default_address_free() {
    // Up, or this fails saying how to start them.
    crate::support::servers::env_var("HANDOFF_TEST_S3_ENDPOINT");
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["check", "--json"])
        .current_dir(empty.path())
        .output()
        .unwrap();
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listen = &found["configuration"]["serve.listen"];
    assert_eq!(listen["from"], "default", "{found}");
    let address = listen["value"].as_str().unwrap();
    // A `handoff serve` started beside the test servers with the embedded
    // defaults must be able to listen.
    if let Err(e) = std::net::TcpListener::bind(address) {
        panic!("{address}, where the service listens by default, is taken: {e}");
    }
}
