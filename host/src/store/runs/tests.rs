//! Leases, claims and the runs filter, against an in-memory store.

use super::*;
use crate::model::CloudEvent;
use crate::store::Store;
use crate::store::intake::Intake;

pub(crate) fn store_with_run() -> (Store, String) {
    let mut store = Store::in_memory().unwrap();
    let event = CloudEvent::parse(
        br#"{"specversion":"1.0","id":"e1","source":"s","type":"t"}"#,
        "test",
    )
    .unwrap();
    let context = serde_json::json!({});
    let new = NewRun {
        policy_id: "p",
        policy_sha256: "abc",
        context: &context,
        plan: &[],
    };
    let Intake::New { run_id, .. } = store.intake_run(&event, None, Some(&new)).unwrap() else {
        panic!("not new")
    };
    (store, run_id.unwrap())
}

#[test]
fn a_live_lease_keeps_other_drivers_out_until_it_ends() {
    let (mut store, run) = store_with_run();
    let ttl = Duration::from_secs(60);
    let me = lease_owner();
    // Another host's live lease: held.
    assert_eq!(
        claim(&mut store, &run, "elsewhere:1", ttl).unwrap(),
        Claim::Taken
    );
    assert!(matches!(
        claim(&mut store, &run, &me, ttl).unwrap(),
        Claim::Held { owner, .. } if owner == "elsewhere:1"
    ));
    // Its holder gives it back: free again.
    release(&store.conn().unwrap(), &run, "elsewhere:1").unwrap();
    assert_eq!(claim(&mut store, &run, &me, ttl).unwrap(), Claim::Taken);
    // A finished run is not driven again.
    let tx = store.write().unwrap();
    set_outcome(&tx, &run, Some(Outcome::Completed)).unwrap();
    tx.commit().unwrap();
    assert_eq!(
        claim(&mut store, &run, "elsewhere:1", ttl).unwrap(),
        Claim::Finished(Outcome::Completed)
    );
}

#[test]
fn a_filter_names_the_outcomes_a_run_ends_with_and_no_other() {
    assert_eq!(Which::parse(""), Ok(Which::All));
    assert_eq!(Which::parse("unfinished"), Ok(Which::Unfinished));
    assert_eq!(
        Which::parse("completed"),
        Ok(Which::Ended(Outcome::Completed))
    );
    for bad in ["duplicate-suppressed", "done", "Completed"] {
        let e = Which::parse(bad).unwrap_err();
        let listed = e.split("one of ").nth(1).unwrap();
        assert!(listed.contains("completed, "), "{e}");
        assert!(!listed.contains("duplicate-suppressed"), "{e}");
    }
}

#[test]
fn a_driver_whose_lease_was_taken_over_cannot_renew_it() {
    let (mut store, run) = store_with_run();
    let ttl = Duration::from_secs(60);
    assert_eq!(
        claim(&mut store, &run, "first:1", ttl).unwrap(),
        Claim::Taken
    );
    let tx = store.write().unwrap();
    renew(&tx, &run, "first:1", ttl).unwrap();
    tx.commit().unwrap();
    // Its lease ran out while it was paused; another driver took it.
    store
        .conn()
        .unwrap()
        .execute(
            "UPDATE runs SET lease_until = '2000-01-01T00:00:00.000Z' WHERE run_id = ?1",
            [&run],
        )
        .unwrap();
    assert_eq!(
        claim(&mut store, &run, "second:1", ttl).unwrap(),
        Claim::Taken
    );
    let tx = store.write().unwrap();
    let err = renew(&tx, &run, "first:1", ttl).unwrap_err();
    assert!(
        matches!(&err, StoreError::LeaseLost { holder, .. } if holder == "second:1"),
        "{err}"
    );
    drop(tx);
    let tx = store.write().unwrap();
    renew(&tx, &run, "second:1", ttl).unwrap();
    tx.commit().unwrap();
}

#[test]
fn a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once() {
    let (mut store, run) = store_with_run();
    let ttl = Duration::from_secs(600);
    let me = lease_owner();
    let host = me.rsplit_once(':').unwrap().0;
    assert!(
        host.matches('/').count() >= 2,
        "host, boot and namespace: {me}"
    );
    // No process has pid u32::MAX - 1 on Linux (pid_max is far lower).
    let dead = format!("{host}:{}", u32::MAX - 1);
    assert_eq!(claim(&mut store, &run, &dead, ttl).unwrap(), Claim::Taken);
    assert_eq!(claim(&mut store, &run, &me, ttl).unwrap(), Claim::Taken);
    // The live one (this process) is respected in turn.
    let other_live = format!("{host}:1");
    assert!(matches!(
        claim(&mut store, &run, &other_live, ttl).unwrap(),
        Claim::Held { .. }
    ));
}

#[test]
fn a_dead_looking_pid_in_another_namespace_or_boot_is_left_to_its_lease() {
    let ttl = Duration::from_secs(600);
    let me = lease_owner();
    let (place, _) = me.rsplit_once(':').unwrap();
    let (host, rest) = place.split_once('/').unwrap();
    let (boot, ns) = rest.split_once('/').unwrap();
    for other in [
        format!("{host}/{boot}/4026531999:{}", u32::MAX - 1),
        format!("{host}/another-boot/{ns}:{}", u32::MAX - 1),
        format!("{host}:{}", u32::MAX - 1),
    ] {
        let (mut store, run) = store_with_run();
        assert_eq!(claim(&mut store, &run, &other, ttl).unwrap(), Claim::Taken);
        assert!(
            matches!(
                claim(&mut store, &run, &me, ttl).unwrap(),
                Claim::Held { .. }
            ),
            "{other}'s lease was taken early"
        );
    }
}
