//! A run whose lease is taken over while its driver waits (as when the
//! service is paused past the lease and another driver claims the run):
//! the first driver, when its post returns, writes nothing more and posts
//! nothing more, not even a second attempt of a post that failed; the run
//! is left to the driver that holds it.

use super::*;
use axum::extract::State;
use std::sync::mpsc;

/// A receiver that holds the first post until told to answer it, then
/// answers it with `first` (every later post: 200).
#[derive(Default)]
struct Holding {
    posts: Mutex<Vec<String>>,
    arrived: Mutex<Option<mpsc::Sender<()>>>,
    answer: tokio::sync::Notify,
    first: StatusCode,
}

async fn hold_the_first(State(h): State<Arc<Holding>>, headers: HeaderMap) -> StatusCode {
    let key = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    h.posts.lock().unwrap().push(key);
    let first = h.arrived.lock().unwrap().take();
    if let Some(arrived) = first {
        arrived.send(()).unwrap();
        h.answer.notified().await;
        return h.first;
    }
    StatusCode::OK
}

/// A run's first post held by the receiver while its lease becomes
/// another driver's, then answered with `first`: the run is left to that
/// driver, with no post after the first and no transition after the post's
/// intent (the first driver logs that it lost the run).
fn taken_over_while_its_first_post_waits(first: StatusCode) {
    let holding = Arc::new(Holding {
        first,
        ..Holding::default()
    });
    let (arrived_tx, arrived) = mpsc::channel();
    *holding.arrived.lock().unwrap() = Some(arrived_tx);
    let app = Router::new()
        .fallback(hold_the_first)
        .with_state(holding.clone());
    let (origin, _runtime) = crate::support::serve_in_background(app);
    let s = fanout_to(&origin);
    reviews(&s, 1);
    let service = Service::start_logging(&s, None, "warn");
    let run_id = accept(&service, 0);
    arrived
        .recv_timeout(Duration::from_secs(60))
        .expect("the run's first post");

    // Meanwhile its lease is another driver's. (The post's own capability
    // decision may still be on its way to the store: it was made before.)
    let transitions = || -> Vec<String> {
        s.store()
            .audit_rows(Some(&run_id))
            .unwrap()
            .into_iter()
            .filter(|r| r.kind != "capability-decision")
            .map(|r| r.kind)
            .collect()
    };
    let before = transitions();
    assert!(
        before.last().is_some_and(|k| k == "step-observed"),
        "the post's intent is durable before it: {before:?}"
    );
    s.store()
        .conn()
        .unwrap()
        .execute(
            "UPDATE runs SET lease_owner = 'elsewhere:1', lease_until = '2999-01-01T00:00:00.000Z'
             WHERE run_id = ?1",
            [&run_id],
        )
        .unwrap();
    holding.answer.notify_one();

    let line = service.line_with("taken over");
    assert!(line.contains(&run_id), "{line}");
    assert!(line.contains("elsewhere:1"), "{line}");
    assert_eq!(
        holding.posts.lock().unwrap().len(),
        1,
        "posted again after losing the run"
    );
    assert_eq!(
        transitions(),
        before,
        "wrote a transition of a run it no longer held"
    );
    let (outcome, owner): (Option<String>, Option<String>) = s
        .store()
        .conn()
        .unwrap()
        .query_row(
            "SELECT outcome, lease_owner FROM runs WHERE run_id = ?1",
            [&run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(outcome, None);
    assert_eq!(owner.as_deref(), Some("elsewhere:1"));
}

#[test]
fn a_run_taken_over_while_its_post_waited_stops_without_writing_or_posting_again() {
    taken_over_while_its_first_post_waits(StatusCode::OK);
}

/// The post answered 503: the adapter says "try again", and the run
/// pauses before a second attempt. That attempt is a write made after a
/// wait, so the lease is renewed first, and found taken.
#[test]
fn a_run_taken_over_before_it_tried_its_post_again_does_not_post_again() {
    taken_over_while_its_first_post_waits(StatusCode::SERVICE_UNAVAILABLE);
}
