//! The throttle's limits and turns, polled by hand: a future that is
//! pending is a caller held back.

use super::*;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

fn instance(name: &str, concurrency: Option<usize>) -> AdapterInstance {
    let mut i = AdapterInstance::new(name, std::path::Path::new("p"));
    i.concurrency = concurrency;
    i
}

pub(super) fn ready<F: Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
    match f.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

#[test]
fn a_limited_adapter_admits_that_many_calls_and_the_next_waits_for_a_release() {
    let throttle = Throttle::new(&[instance("tracker", Some(2)), instance("free", None)]);
    let first = ready(pin!(throttle.acquire("tracker"))).unwrap();
    let second = ready(pin!(throttle.acquire("tracker"))).unwrap();
    assert!(first.is_some() && second.is_some());
    let mut third = pin!(throttle.acquire("tracker"));
    assert!(ready(third.as_mut()).is_none(), "a third call must wait");
    assert_eq!(throttle.waiting("tracker"), 1);
    assert!(ready(pin!(throttle.until_waiting("tracker", 1))).is_some());
    assert!(ready(pin!(throttle.until_waiting("tracker", 2))).is_none());
    {
        // A wait given up on is no longer counted.
        let mut fourth = pin!(throttle.acquire("tracker"));
        assert!(ready(fourth.as_mut()).is_none());
        assert_eq!(throttle.waiting("tracker"), 2);
    }
    assert_eq!(throttle.waiting("tracker"), 1);
    drop(first);
    assert!(ready(third.as_mut()).unwrap().is_some());
    assert_eq!(throttle.waiting("tracker"), 0);
    // Unlimited and unknown adapters never wait.
    for _ in 0..10 {
        assert!(ready(pin!(throttle.acquire("free"))).unwrap().is_none());
    }
    drop(second);
}

#[test]
fn calls_on_one_record_take_turns_and_calls_on_other_records_do_not_wait() {
    let mut records = instance("records", Some(3));
    records.one_call_per_record = true;
    let throttle = Throttle::new(&[records, instance("tracker", Some(3))]);
    let first = ready(pin!(throttle.turn(
        "records",
        "r/checklist/CL-1",
        Processes::All
    )))
    .unwrap();
    let mut same = pin!(throttle.turn("records", "r/checklist/CL-1", Processes::All));
    assert!(ready(same.as_mut()).is_none(), "the same record waits");
    assert!(ready(pin!(throttle.until_waiting_for_records("records", 1))).is_some());
    assert!(ready(pin!(throttle.until_waiting_for_records("records", 2))).is_none());
    let other = ready(pin!(throttle.turn(
        "records",
        "r/checklist/CL-2",
        Processes::All
    )))
    .unwrap();
    assert_eq!(throttle.records_in_use("records"), 2);
    // The call waiting for its record holds no room: one is left of 3.
    let last_room = ready(pin!(throttle.acquire("records"))).unwrap();
    assert!(ready(pin!(throttle.acquire("records"))).is_none());
    drop(last_room);
    {
        // A wait given up on leaves nothing behind once the record is free.
        let mut given_up = pin!(throttle.turn("records", "r/checklist/CL-2", Processes::All));
        assert!(ready(given_up.as_mut()).is_none());
    }
    drop(other);
    assert_eq!(throttle.records_in_use("records"), 1);
    drop(first);
    let second = ready(same.as_mut()).expect("its turn came when the first ended");
    assert!(ready(pin!(throttle.until_waiting_for_records("records", 1))).is_none());
    drop(second);
    assert_eq!(throttle.records_in_use("records"), 0);
    {
        // A wait given up on after its turn came, before it took it.
        let held = ready(pin!(throttle.turn(
            "records",
            "r/checklist/CL-3",
            Processes::All
        )))
        .unwrap();
        let mut late = pin!(throttle.turn("records", "r/checklist/CL-3", Processes::All));
        assert!(ready(late.as_mut()).is_none());
        drop(held);
    }
    assert_eq!(throttle.records_in_use("records"), 0);
    // Without the setting, calls on one record do not take turns.
    let a = ready(pin!(throttle.turn(
        "tracker",
        "r/checklist/CL-1",
        Processes::All
    )))
    .unwrap();
    let b = ready(pin!(throttle.turn(
        "tracker",
        "r/checklist/CL-1",
        Processes::All
    )));
    assert!(b.is_some());
    assert_eq!(throttle.records_in_use("tracker"), 0);
    drop(a);
}

#[tokio::test]
async fn a_call_waiting_for_another_process_is_counted_and_goes_on_once_it_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("handoff.db");
    let mut records = instance("records", None);
    records.one_call_per_record = true;
    let throttle = Throttle::new(&[records]).across_processes(&store);
    // Another process, as another open file of the lock file.
    let other = Arc::new(Across::beside(&store));
    let theirs = other.hold(CALL, "r/queue/Q-1").await.unwrap();
    let mut ours = pin!(throttle.turn("records", "r/queue/Q-1", Processes::All));
    assert!(ready(ours.as_mut()).is_none(), "the other process holds it");
    assert!(ready(pin!(throttle.until_waiting_for_records("records", 1))).is_some());
    // A dry run's call does not wait for other processes.
    let dry = ready(pin!(throttle.turn(
        "records",
        "r/queue/Q-2",
        Processes::ThisProcess
    )));
    assert!(dry.is_some_and(|t| t.is_ok()));
    drop(theirs);
    assert!(ours.await.is_ok());
    assert!(ready(pin!(throttle.until_waiting_for_records("records", 1))).is_none());
}

#[test]
fn instances_bound_to_one_directory_share_their_records_turns_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tracker")).unwrap();
    std::fs::create_dir(dir.path().join("queue")).unwrap();
    let bound = |name: &str, directory: std::path::PathBuf| {
        let mut i = instance(name, None);
        i.one_call_per_record = true;
        i.surfaces
            .files
            .directories
            .insert("records".into(), directory);
        i
    };
    let throttle = Throttle::new(&[
        bound("tracker", dir.path().join("tracker")),
        // The same directory, spelled another way.
        bound("links", dir.path().join("queue/../tracker")),
        bound("queue", dir.path().join("queue")),
        instance("webhook", None),
    ]);
    let record = |system: &str| RecordRef {
        system: system.into(),
        kind: "release".into(),
        id: "R-1".into(),
    };
    let key = throttle.record_key(&record("tracker"));
    assert_eq!(key, throttle.record_key(&record("links")));
    assert!(
        key.starts_with("directories-") && key.ends_with("/release/R-1"),
        "{key}"
    );
    assert_ne!(key, throttle.record_key(&record("queue")));
    assert_eq!(
        throttle.record_key(&record("webhook")),
        "webhook/release/R-1"
    );

    let held = ready(pin!(throttle.turn("tracker", &key, Processes::ThisProcess))).unwrap();
    let mut other = pin!(throttle.turn("links", &key, Processes::ThisProcess));
    assert!(
        ready(other.as_mut()).is_none(),
        "a call through the other instance on the record waits"
    );
    assert_eq!(throttle.records_in_use("links"), 1);
    drop(held);
    assert!(ready(other.as_mut()).is_some());
}
