//! What `/metrics` says: label values escaped, buckets to the largest timeout, limits and waits.

use super::*;
use crate::config::AdapterInstance;
use crate::pipeline::throttle::{Processes, Throttle};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

#[test]
fn a_label_value_cannot_end_its_label_or_its_line() {
    assert_eq!(label("plain"), "plain");
    assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn a_call_near_the_largest_timeout_lands_in_a_bucket_of_its_own() {
    let h = Histogram::default();
    h.observe(Duration::from_secs(45));
    let mut out = String::new();
    h.render(&mut out, "t", "");
    assert!(out.contains("t_bucket{le=\"30\"} 0"), "{out}");
    assert!(out.contains("t_bucket{le=\"60\"} 1"), "{out}");
}

#[test]
fn an_adapter_limit_and_the_calls_waiting_at_it_are_exposed() {
    let mut tracker = AdapterInstance::new("tracker", std::path::Path::new("p"));
    tracker.concurrency = Some(1);
    let mut records = AdapterInstance::new("records", std::path::Path::new("p"));
    records.one_call_per_record = true;
    let throttle = std::sync::Arc::new(Throttle::new([&tracker, &records]));
    let metrics = Metrics::with_throttle(throttle.clone());
    let store = Store::in_memory().unwrap();
    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }
    let first = pin!(throttle.acquire("tracker"));
    let held = match poll(first) {
        std::task::Poll::Ready(permit) => permit,
        std::task::Poll::Pending => panic!("the first call has room"),
    };
    let mut second = pin!(throttle.acquire("tracker"));
    assert!(poll(second.as_mut()).is_pending());
    let record_turn = match poll(pin!(throttle.turn(
        "records",
        "r/queue/Q-1",
        Processes::All
    ))) {
        std::task::Poll::Ready(turn) => turn,
        std::task::Poll::Pending => panic!("the first call on the record has its turn"),
    };
    let mut same_record = pin!(throttle.turn("records", "r/queue/Q-1", Processes::All));
    assert!(poll(same_record.as_mut()).is_pending());
    let step = match poll(pin!(throttle.step_on("r/checklist/CL-1", Processes::All))) {
        std::task::Poll::Ready(turn) => turn,
        std::task::Poll::Pending => panic!("the first step on the record has its turn"),
    };
    let mut same_step = pin!(throttle.step_on("r/checklist/CL-1", Processes::All));
    assert!(poll(same_step.as_mut()).is_pending());
    let text = metrics.render(&store, None);
    for line in [
        "handoff_adapter_concurrency_limit{adapter=\"tracker\"} 1",
        "handoff_adapter_calls_waiting{adapter=\"tracker\"} 1",
        "handoff_adapter_calls_waiting_for_record{adapter=\"records\"} 1",
        "handoff_steps_waiting_for_record 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    drop(held);
    assert!(poll(second.as_mut()).is_ready());
    drop(record_turn);
    assert!(poll(same_record.as_mut()).is_ready());
    drop(step);
    assert!(poll(same_step.as_mut()).is_ready());
    let text = metrics.render(&store, None);
    for line in [
        "handoff_adapter_calls_waiting{adapter=\"tracker\"} 0",
        "handoff_adapter_calls_waiting_for_record{adapter=\"records\"} 0",
        "handoff_steps_waiting_for_record 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
}
