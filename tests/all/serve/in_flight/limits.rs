//! Limits that hold however many runs are in flight. An adapter's own:
//! with `concurrency = 3` and `one-call-per-record = true` on the webhook
//! adapter, a receiver answering each post after 20 ms never has more than
//! three posts open at once, nor two on one channel, while a hundred runs
//! of five posts each are driven together. The service's: with every run
//! in flight waiting on its target, intake takes exactly `max-queued` more
//! and answers 429 to the rest, storing nothing of them.

use super::*;
use axum::extract::State;

/// Posts open now and at most, in all and per channel path.
#[derive(Default)]
struct Open {
    now: usize,
    peak: usize,
    by_path: BTreeMap<String, (usize, usize)>,
    answered: usize,
}

async fn count_open(State(open): State<Arc<Mutex<Open>>>, uri: axum::http::Uri) -> StatusCode {
    let path = uri.path().to_string();
    {
        let mut o = open.lock().unwrap();
        o.now += 1;
        o.peak = o.peak.max(o.now);
        let (now, peak) = o.by_path.entry(path.clone()).or_default();
        *now += 1;
        *peak = (*peak).max(*now);
    }
    tokio::time::sleep(DELAY).await;
    let mut o = open.lock().unwrap();
    o.now -= 1;
    o.by_path.get_mut(&path).unwrap().0 -= 1;
    o.answered += 1;
    StatusCode::OK
}

#[test]
fn an_adapters_concurrency_and_one_call_per_record_hold_with_a_hundred_runs_in_flight() {
    const LIMITED_RUNS: usize = 100;
    let open: Arc<Mutex<Open>> = Arc::default();
    let app = Router::new().fallback(count_open).with_state(open.clone());
    let (origin, _runtime) = crate::support::serve_in_background(app);
    let s = fanout_to(&origin);
    let config = std::fs::read_to_string(s.path("handoff.toml")).unwrap();
    let limited = config.replace(
        "[adapters.hook]\n",
        "[adapters.hook]\nconcurrency = 3\none-call-per-record = true\n",
    );
    assert_ne!(
        config, limited,
        "the hook adapter's section is where it was"
    );
    std::fs::write(s.path("handoff.toml"), limited).unwrap();
    reviews(&s, LIMITED_RUNS);
    let service = Service::start(&s, None);
    let runs: Vec<String> = (0..LIMITED_RUNS).map(|i| accept(&service, i)).collect();
    for run_id in &runs {
        assert_eq!(outcome_of(&s, run_id), "completed", "{run_id}");
    }
    let o = open.lock().unwrap();
    assert_eq!(
        o.answered,
        LIMITED_RUNS * STEPS,
        "one post per step per run"
    );
    // Three at once were reached (the limit is a limit, not a queue of
    // one), and never passed.
    assert_eq!(o.peak, 3, "posts open at once");
    assert_eq!(o.by_path.len(), STEPS);
    for (path, (_, peak)) in &o.by_path {
        assert_eq!(*peak, 1, "posts open at once on {path}");
    }
}

#[test]
fn with_every_run_in_flight_waiting_intake_takes_exactly_the_queue_and_refuses_the_rest() {
    const IN_FLIGHT: usize = 4;
    const QUEUED: usize = 2;
    let held = Holding::start();
    let s = fanout_to(&held.origin);
    s.edit_config(
        "max-in-flight = 256\n",
        &format!("max-in-flight = {IN_FLIGHT}\n"),
    );
    s.edit_config("max-queued = 1000\n", &format!("max-queued = {QUEUED}\n"));
    reviews(&s, 12);
    let service = Service::start(&s, None);
    // Each run taken off the queue (at its first post, held there) before
    // the next is sent: the queue holds only QUEUED, and a run not yet taken
    // would fill it.
    let mut runs = Vec::new();
    for i in 0..IN_FLIGHT {
        runs.push(accept(&service, i));
        held.wait_until_open(i + 1);
    }
    runs.extend((IN_FLIGHT..IN_FLIGHT + QUEUED).map(|i| accept(&service, i)));
    for i in IN_FLIGHT + QUEUED..12 {
        let body = decision(i).to_string().into_bytes();
        let (code, answer) = service.post(&signed(&format!("msg-{i}"), &body), &body);
        assert_eq!(
            (code, answer["reason"].as_str()),
            (429, Some("backpressure")),
            "decision {i}: {answer}"
        );
    }
    assert_eq!(
        events_stored(&s),
        (IN_FLIGHT + QUEUED) as i64,
        "only what was answered 202 is stored"
    );
    assert_eq!(held.open(), IN_FLIGHT, "no run beyond the limit");
    held.release();
    for run_id in &runs {
        assert_eq!(outcome_of(&s, run_id), "completed", "{run_id}");
    }
    assert_eq!(held.answered(), runs.len() * STEPS);
}
