//! The store fails under runs in flight: a group of their writes cannot be
//! committed, so the store refuses every write from then on. The service
//! stops and exits with an error; started again on the mended store,
//! every run completes, and each step was posted once.

use super::*;

/// A row that breaks a reference checked only when its group commits: a
/// step that moves from now on makes the next commit fail.
const POISON: &str = "CREATE TABLE parent (n INTEGER PRIMARY KEY);
    CREATE TABLE child (n INTEGER REFERENCES parent (n) DEFERRABLE INITIALLY DEFERRED);
    CREATE TRIGGER poison AFTER UPDATE ON steps BEGIN INSERT INTO child VALUES (99); END;";
const MENDED: &str = "DROP TRIGGER poison; DROP TABLE child; DROP TABLE parent;";

#[test]
fn a_commit_that_fails_under_runs_in_flight_loses_no_step_and_doubles_none() {
    let held = Holding::start();
    let s = fanout_to(&held.origin);
    let runs_sent = 40;
    reviews(&s, runs_sent);
    let service = Service::start(&s, None);
    let runs: Vec<String> = (0..runs_sent).map(|i| accept(&service, i)).collect();
    // Every run at its first post (its intent on disk), held there.
    held.wait_until_open(runs_sent);
    let store = rusqlite::Connection::open(s.path("state/handoff.db")).unwrap();
    store.busy_timeout(Duration::from_secs(30)).unwrap();
    store.execute_batch(POISON).unwrap();
    // The posts answered, each run records its step: that commit fails.
    held.release();
    let (status, _) = service.ended();
    assert_eq!(status.code(), Some(1), "it stops with an error");
    assert_eq!(s.unfinished(), runs_sent, "every run was cut off");
    store.execute_batch(MENDED).unwrap();

    let service = Service::start(&s, None);
    for run_id in &runs {
        assert_eq!(outcome_of(&s, run_id), "completed", "{run_id}");
    }
    drop(service);
    let keys = held.keys();
    let mut distinct = keys.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), runs_sent * STEPS, "every step of every run");
    assert_eq!(keys.len(), runs_sent * STEPS, "each posted once");
    the_chain_holds_each_runs_rows_in_their_order(&s, runs_sent);
}
